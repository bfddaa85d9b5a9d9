"""Typed settings from ``EAUTH_*`` environment variables and an optional ``$EAUTH_HOME/eauth.toml``.

Precedence: environment > eauth.toml > defaults. Unknown keys in either place are an error (a typo
in a setting must not silently fall back to a default). Secrets are ``SecretStr`` and never printed.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from ipaddress import ip_network
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from core.errors import Kind, Problem

ENV_PREFIX = "EAUTH_"


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    home: Path = Path("./var")
    database_url: str | None = None
    # A streaming replica of the PostgreSQL primary for read paths that tolerate replication lag
    # (core.db.Database.replica_read); the primary serves them when unset or unreachable.
    database_replica_url: str | None = None
    public_url: str = "http://127.0.0.1:8000"
    pkcs11_module: str | None = None
    token_label: str = "eauth"
    token_pin: SecretStr | None = None
    hsm_pool_size: int = Field(default=4, ge=1, le=64)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    language: Literal["zh-CN", "en"] = "zh-CN"

    audit_checkpoint_every: int = Field(default=1000, ge=1)
    max_upload_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    max_request_bytes: int = Field(default=30 * 1024 * 1024, ge=1024)
    # Slow-loris guard (core.web.SlowBodyGuard): seconds for a request body, +1 s per 500 bytes received.
    request_body_timeout: float = Field(default=20.0, gt=0, le=3600)
    trusted_proxies: list[str] = ["127.0.0.1/32", "::1/128"]

    serve_only: list[str] = []  # `eauth serve --only ocsp,crl`

    # Reliability (core.ratelimit, core.metrics)
    rate_limit_backend: Literal["memory", "database"] = "memory"
    rate_limits: list[str] = []  # overrides by area: "login=50/60,otp_send=off"
    metrics_token: SecretStr | None = None  # bearer token for /metrics; without it, loopback only

    # CA
    ca_issuing_name: str = "public-service"
    ca_key_spec: str = "ec-p256"
    crl_validity_hours: int = Field(default=24, ge=1)
    ocsp_validity_minutes: int = Field(default=240, ge=1)
    # Pre-signed OCSP responses each worker keeps in memory (≈ 1 KiB each); beyond it the oldest
    # tenth is dropped (ca.ocsp.ResponderState) and read again from the database when asked for.
    ocsp_cache_entries: int = Field(default=1_000_000, ge=1_000)

    # SSO
    session_idle_minutes: int = Field(default=30, ge=1)
    session_absolute_hours: int = Field(default=10, ge=1)
    access_token_minutes: int = Field(default=10, ge=1)
    sms_outbox: Path | None = None

    # Signing
    tsa_accuracy_ms: int = Field(default=1000, ge=1)
    # TSA policy (RFC 3161 §2.4.2). A 2.25.<UUID> OID (ITU-T X.667) until the province registers its arc.
    tsa_policy_oid: str = Field(default="2.25.171045935291426958093428541212387916841", pattern=r"^[0-2](\.\d+)+$")
    seal_key_spec: str = "ec-p256"
    # PEM files of external roots trusted when verifying documents, besides our own root.
    external_trust_anchors: list[Path] = []

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("rate_limits")
    @classmethod
    def _rate_limits(cls, value: list[str]) -> list[str]:
        from core.ratelimit import parse_overrides

        parse_overrides(value)
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            ip_network(item, strict=False)
        return value

    # -- derived -----------------------------------------------------------------------------------

    @property
    def db_url(self) -> str:
        if self.database_url:
            url = self.database_url
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url.split("://", 1)[1]
            return url
        return f"sqlite:///{(self.home / 'eauth.db').resolve()}"

    @property
    def db_replica_url(self) -> str | None:
        if not self.database_replica_url:
            return None
        url = self.database_replica_url
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url

    @property
    def softhsm_dir(self) -> Path:
        return self.home / "softhsm"

    @property
    def secrets_dir(self) -> Path:
        return self.home / "secrets"

    @property
    def outbox_dir(self) -> Path:
        return self.sms_outbox or self.home / "outbox"

    def redacted(self) -> dict[str, Any]:
        """Settings as shown to an operator: secrets replaced by ``***``."""
        out = self.model_dump(mode="json")
        for key, value in out.items():
            if isinstance(getattr(self, key), SecretStr) and value is not None:
                out[key] = "***"
        return out


def _coerce_env(name: str, raw: str) -> Any:
    field = Settings.model_fields[name]
    if field.annotation is not None and "list" in str(field.annotation):
        return [part.strip() for part in raw.split(",") if part.strip()]
    return raw


def load_settings(environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Build settings; raise ``Problem(Kind.INVALID_CONFIG)`` naming each bad key."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    home = Path(env.get(ENV_PREFIX + "HOME", overrides.get("home", "./var")))
    toml_path = home / "eauth.toml"
    if toml_path.exists():
        try:
            values.update(tomllib.loads(toml_path.read_text()))
        except tomllib.TOMLDecodeError as exc:
            raise Problem(Kind.INVALID_CONFIG, "config.toml_syntax", f"{toml_path}: {exc}") from exc
    unknown = []
    for key, raw in env.items():
        if not key.startswith(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX):].lower()
        if name not in Settings.model_fields:
            unknown.append(key)
            continue
        values[name] = _coerce_env(name, raw)
    if unknown:
        raise Problem(
            Kind.INVALID_CONFIG,
            "config.unknown_key",
            f"unknown setting(s): {', '.join(sorted(unknown))}",
            fields=[{"name": k, "reason": "unknown setting"} for k in sorted(unknown)],
        )
    values.update(overrides)
    values["home"] = home
    try:
        return Settings(**values)
    except ValidationError as exc:
        fields = [
            {"name": ".".join(str(p) for p in err["loc"]) or "settings", "reason": err["msg"]}
            for err in exc.errors(include_input=False, include_url=False)
        ]
        raise Problem(
            Kind.INVALID_CONFIG,
            "config.invalid",
            "invalid settings: " + "; ".join(f"{f['name']}: {f['reason']}" for f in fields),
            fields=fields,
        ) from None


def read_or_create_secret(path: Path, *, nbytes: int = 24) -> str:
    """A generated secret kept in a 0600 file under ``$EAUTH_HOME/secrets`` (created once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(nbytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value

"""Signing keys and the JWK Set (RFC 7517; OIDC Core §10.1.1 on rotation).

Keys live in the HSM as ``oidc/<kid>``: RS256 (mandatory for an OP, OIDC Core §15.1) and ES256.
A rotation makes a new key ``active`` and the old one ``previous``: it stays in the JWKS until
``publish_until`` — the moment the last token it signed expires — so relying parties that cached
the old set keep verifying. Each process keeps a :class:`KeyRing` (public keys, the signer per
algorithm) refreshed from the database every 30 s and at once when an unknown ``kid`` appears.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from auth_service import timestamps
from auth_service.models import SigningKey
from auth_service.oidc.jose import VerificationKey, public_jwk
from core.errors import Kind, Problem
from core.runtime import Runtime
from core.security import Actor
from hsm.keys import HsmEcPrivateKey, HsmRsaPrivateKey, KeySpec

KEY_SPECS = {"RS256": "rsa-2048", "ES256": "ec-p256"}
ACTIVE, PREVIOUS, RETIRED = "active", "previous", "retired"
REFRESH_SECONDS = 30.0
UNKNOWN_KID_REFRESH_SECONDS = 2.0
# The longest-lived token signed with these keys: ID tokens and access tokens live minutes, logout
# tokens two minutes; a day of overlap is generous and costs nothing.
PUBLISH_PREVIOUS_HOURS = 24


def label_for(kid: str) -> str:
    return f"oidc/{kid}"


def _new_kid(alg: str) -> str:
    return f"{alg.lower()}-{timestamps.now():%Y%m%d}-{secrets.token_hex(4)}"


def _create(rt: Runtime, db: Session, actor: Actor, alg: str) -> SigningKey:
    kid = _new_kid(alg)
    key = rt.token.generate(KeySpec.parse(KEY_SPECS[alg]), label_for(kid))
    row = SigningKey(kid=kid, label=label_for(kid), alg=alg, status=ACTIVE, created_at=timestamps.stamp())
    db.add(row)
    db.flush()
    from hsm.keys import public_key_fingerprint

    rt.audit.record(
        db,
        actor=actor,
        action="sso.key.create",
        target=f"key:{row.label}",
        details={"alg": alg, "kid": kid, "spki_sha256": public_key_fingerprint(key)},  # type: ignore[arg-type]
    )
    return row


def ensure_keys(rt: Runtime, db: Session, actor: Actor) -> list[str]:
    """One active key per algorithm (idempotent; ``eauth init``)."""
    lines = []
    for alg in KEY_SPECS:
        active = db.execute(select(SigningKey).where(SigningKey.alg == alg, SigningKey.status == ACTIVE)).scalars().first()
        if active is None:
            row = _create(rt, db, actor, alg)
            lines.append(f"OIDC signing key {row.kid} ({alg}) created in the HSM as {row.label}")
    return lines


@dataclass(frozen=True)
class KeyInfo:
    kid: str
    alg: str
    status: str
    created_at: str
    publish_until: str | None


def list_keys(db: Session) -> list[KeyInfo]:
    rows = db.execute(select(SigningKey).order_by(SigningKey.created_at)).scalars()
    return [KeyInfo(r.kid, r.alg, r.status, r.created_at, r.publish_until) for r in rows]


def rotate_key(rt: Runtime, db: Session, actor: Actor, *, alg: str) -> KeyInfo:
    """A new active key for ``alg``; the old one stays published until its tokens have expired."""
    if alg not in KEY_SPECS:
        raise Problem(Kind.VALIDATION, "sso.key_alg_unsupported", f"alg must be one of {', '.join(KEY_SPECS)}")
    now = timestamps.stamp()
    for row in db.execute(select(SigningKey).where(SigningKey.alg == alg, SigningKey.status == PREVIOUS)).scalars():
        if row.publish_until and row.publish_until <= now:
            row.status, row.retired_at = RETIRED, now
    for row in db.execute(select(SigningKey).where(SigningKey.alg == alg, SigningKey.status == ACTIVE)).scalars():
        row.status = PREVIOUS
        row.publish_until = timestamps.stamp(hours=PUBLISH_PREVIOUS_HOURS)
        rt.audit.record(db, actor=actor, action="sso.key.deactivate", target=f"key:{row.label}", details={"publish_until": row.publish_until})
    db.flush()
    new = _create(rt, db, actor, alg)
    return KeyInfo(new.kid, new.alg, new.status, new.created_at, None)


class KeyRing:
    """Per-process view of the signing keys: the signer per algorithm and the verification keys."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._lock = threading.Lock()
        self._loaded_at = 0.0
        self._signers: dict[str, tuple[str, HsmEcPrivateKey | HsmRsaPrivateKey]] = {}
        self._verification: dict[str, VerificationKey] = {}
        self._jwks: bytes = b'{"keys":[]}'

    @classmethod
    def of(cls, rt: Runtime) -> KeyRing:
        ring = rt.extensions.get("auth_service.keyring")
        if ring is None:
            ring = rt.extensions.setdefault("auth_service.keyring", cls(rt))
        return ring

    def _load(self) -> None:
        now = timestamps.stamp()
        with self._rt.db.read() as db:
            rows = list(db.execute(select(SigningKey).where(SigningKey.status.in_((ACTIVE, PREVIOUS)))).scalars())
        signers: dict[str, tuple[str, Any]] = {}
        verification: dict[str, VerificationKey] = {}
        jwks = []
        for row in sorted(rows, key=lambda r: (r.status != ACTIVE, r.created_at), reverse=False):
            if row.status == PREVIOUS and row.publish_until and row.publish_until <= now:
                continue
            key = self._rt.token.key(row.label)
            public = key.public_key()  # type: ignore[union-attr]
            verification[row.kid] = VerificationKey(row.kid, row.alg, public)  # type: ignore[arg-type]
            jwks.append(public_jwk(row.kid, row.alg, public))  # type: ignore[arg-type]
            if row.status == ACTIVE and row.alg not in signers:
                signers[row.alg] = (row.kid, key)
        self._signers, self._verification = signers, verification
        self._jwks = json.dumps({"keys": jwks}, separators=(",", ":")).encode()
        self._loaded_at = time.monotonic()

    def _fresh(self, max_age: float = REFRESH_SECONDS) -> None:
        if time.monotonic() - self._loaded_at > max_age:
            with self._lock:
                if time.monotonic() - self._loaded_at > max_age:
                    self._load()

    def reload(self) -> None:
        with self._lock:
            self._load()

    def signer(self, alg: str) -> tuple[str, HsmEcPrivateKey | HsmRsaPrivateKey]:
        self._fresh()
        found = self._signers.get(alg)
        if found is None:
            self.reload()
            found = self._signers.get(alg)
            if found is None:
                raise Problem(Kind.UNAVAILABLE, "sso.no_signing_key", f"no active {alg} signing key; run `eauth init`")
        return found

    def verification_keys(self, kid: object = None) -> dict[str, VerificationKey]:
        self._fresh()
        if isinstance(kid, str) and kid not in self._verification and time.monotonic() - self._loaded_at > UNKNOWN_KID_REFRESH_SECONDS:
            self.reload()
        return self._verification

    def jwks_json(self) -> bytes:
        self._fresh()
        return self._jwks

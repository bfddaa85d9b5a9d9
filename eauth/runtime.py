"""Building the runtime: settings → token (SoftHSM2 bootstrap for the embedded default) → DB → vault."""

from __future__ import annotations

import os

from core.audit import AuditLog
from core.db import Database
from core.errors import Kind, Problem
from core.runtime import Runtime
from core.settings import Settings, load_settings, read_or_create_secret
from core.vault import Vault
from hsm.token import Token, TokenConfig, default_softhsm_module, ensure_softhsm_token


def token_config(settings: Settings, *, create: bool) -> TokenConfig:
    """The token to use. Without ``EAUTH_PKCS11_MODULE`` it is the embedded SoftHSM2 token under
    ``$EAUTH_HOME/softhsm`` (created by ``eauth init``), its PIN in ``secrets/token-pin`` (0600)."""
    if settings.token_pin is not None:
        pin = settings.token_pin.get_secret_value()
    else:
        pin_file = settings.secrets_dir / "token-pin"
        if not create and not pin_file.exists():
            raise Problem(Kind.UNAVAILABLE, "hsm.not_initialised", f"no token PIN at {pin_file}; run `eauth init` (or set EAUTH_TOKEN_PIN)")
        pin = read_or_create_secret(pin_file)
    if settings.pkcs11_module:
        return TokenConfig(settings.pkcs11_module, settings.token_label, pin, settings.hsm_pool_size)
    module = default_softhsm_module()
    if module is None:
        raise Problem(Kind.UNAVAILABLE, "hsm.module_missing", "SoftHSM2 is not installed (Debian package softhsm2); run `make up`")
    conf = settings.softhsm_dir / "softhsm2.conf"
    if create:
        so_pin = read_or_create_secret(settings.secrets_dir / "token-so-pin")
        conf = ensure_softhsm_token(settings.softhsm_dir, label=settings.token_label, pin=pin, so_pin=so_pin)
    elif not conf.exists():
        raise Problem(Kind.UNAVAILABLE, "hsm.not_initialised", f"no SoftHSM2 token under {settings.softhsm_dir}; run `eauth init`")
    # SoftHSM2 reads its configuration when the module is initialised (once per process).
    os.environ["SOFTHSM2_CONF"] = str(conf.resolve())
    return TokenConfig(module, settings.token_label, pin, settings.hsm_pool_size)


def build_runtime(settings: Settings | None = None, *, create: bool = False) -> Runtime:
    settings = settings or load_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    token = Token(token_config(settings, create=create))
    db = Database(settings.db_url, replica_url=settings.db_replica_url)
    return Runtime(
        settings=settings,
        db=db,
        token=token,
        vault=Vault(token, db),
        audit=AuditLog(token, checkpoint_every=settings.audit_checkpoint_every),
    )

"""The console's registration as a first-party OIDC client of ``auth_service``.

Registered by ``eauth init`` (admin.bootstrap) through ``auth_service.service.register_client``;
the client secret is kept vault-encrypted in ``admin_console_client`` so every app process can
redeem codes. If the public URL changes, the next ``eauth init`` updates the redirect URIs.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from admin.models import ConsoleClient
from core import clock
from core.errors import Kind, Problem
from core.runtime import Runtime
from core.security import Actor

CTX_SECRET = "admin.console.client_secret"
CLIENT_NAME = "eAuth 服务中心控制台 / service-centre console"


@dataclass(frozen=True)
class ConsoleRegistration:
    client_id: str
    client_secret: str | None
    redirect_uri: str
    post_logout_redirect_uri: str
    backchannel_logout_uri: str


def uris(rt: Runtime) -> tuple[str, str, str]:
    base = rt.settings.public_url
    return base + "/admin/callback", base + "/admin/signed-out", base + "/admin/backchannel-logout"


def ensure_registered(rt: Runtime, db: Session, actor: Actor) -> tuple[ConsoleRegistration, bool]:
    """Register the console once (idempotent); returns (registration, created now)."""
    from auth_service import service as sso

    redirect, signed_out, backchannel = uris(rt)
    row = db.get(ConsoleClient, 1)
    if row is not None:
        if row.redirect_uri != redirect:
            sso.update_client(
                rt, db, actor, client_id=row.client_id, redirect_uris=[redirect], post_logout_redirect_uris=[signed_out], backchannel_logout_uri=backchannel
            )
            row.redirect_uri = redirect
        return registration(rt, db), False
    view, secret = sso.register_client(
        rt,
        db,
        actor,
        name=CLIENT_NAME,
        redirect_uris=[redirect],
        grant_types=["authorization_code"],
        scopes=["openid", "profile"],
        post_logout_redirect_uris=[signed_out],
        backchannel_logout_uri=backchannel,
        first_party=True,
        token_endpoint_auth_method="client_secret_basic",
    )
    db.add(
        ConsoleClient(
            id=1,
            client_id=view.client_id,
            secret_ct=rt.vault.encrypt(secret, context=CTX_SECRET) if secret else None,
            redirect_uri=redirect,
            created_at=clock.now().isoformat(timespec="seconds"),
        )
    )
    db.flush()
    return registration(rt, db), True


def registration(rt: Runtime, db: Session) -> ConsoleRegistration:
    row = db.get(ConsoleClient, 1)
    if row is None:
        raise Problem(Kind.UNAVAILABLE, "console.not_registered", "the console is not registered with the sign-in service; run `eauth init`")
    redirect, signed_out, backchannel = uris(rt)
    secret = rt.vault.decrypt(row.secret_ct, context=CTX_SECRET) if row.secret_ct else None
    return ConsoleRegistration(row.client_id, secret, row.redirect_uri, signed_out, backchannel)

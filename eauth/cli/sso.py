"""Single sign-on commands: ``client add|list|show|update|rotate-secret|disable|enable``, ``sso keys``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from auth_service import service
from auth_service.oidc import jwks as jwks_mod
from core.security import Actor
from eauth.cli import app, emit
from eauth.cli.platform import runtime

client_app = typer.Typer(no_args_is_help=True, help="OpenID Connect relying parties (department systems)")
sso_app = typer.Typer(no_args_is_help=True, help="Single sign-on service")
keys_app = typer.Typer(no_args_is_help=True, help="OIDC signing keys (in the HSM)")
app.add_typer(client_app, name="client")
app.add_typer(sso_app, name="sso")
sso_app.add_typer(keys_app, name="keys")


def _client_text(view: service.ClientView, secret: str | None = None) -> str:
    lines = [
        f"client_id:      {view.client_id}",
        f"name:           {view.name}",
        f"grants:         {' '.join(view.grant_types)}",
        f"scopes:         {' '.join(view.scopes)}",
        f"auth method:    {view.token_endpoint_auth_method}",
        f"redirect URIs:  {' '.join(view.redirect_uris) or '-'}",
        f"active:         {'yes' if view.active else 'no'}",
    ]
    if secret:
        lines.append(f"client_secret:  {secret}")
        lines.append("(the secret is shown only now; it is stored hashed)")
    return "\n".join(lines)


def _resolve_department(rt, db, ref: str | None) -> str | None:  # type: ignore[no-untyped-def]
    if not ref:
        return None
    from identity import service as identity

    return identity.resolve_org(db, ref).id


@client_app.command("add")
def client_add(
    name: str = typer.Option(..., help="Display name shown on the consent screen."),
    redirect_uri: list[str] = typer.Option([], "--redirect-uri", help="Redirect URI, matched exactly (repeatable)."),
    grant: list[str] = typer.Option([], "--grant", help="authorization_code | refresh_token | client_credentials (repeatable)."),
    scope: list[str] = typer.Option([], "--scope", help="Allowed scope (repeatable; openid added for code clients)."),
    post_logout_uri: list[str] = typer.Option([], "--post-logout-uri", help="Post-logout redirect URI (repeatable)."),
    backchannel_logout_uri: str | None = typer.Option(None, "--backchannel-logout-uri", help="Back-channel logout endpoint."),
    first_party: bool = typer.Option(False, "--first-party", help="A platform/department app: no consent screen."),
    auth_method: str = typer.Option("client_secret_basic", "--auth-method", help="client_secret_basic | client_secret_post | private_key_jwt | none."),
    department: str | None = typer.Option(None, help="Owning department (id, USCC or name)."),
    jwks_file: Path | None = typer.Option(None, "--jwks", help="JWK Set file (private_key_jwt)."),
) -> None:
    """Register a relying party; prints its client_id and (once) its secret."""
    grants = grant or (["authorization_code", "refresh_token"] if redirect_uri else ["client_credentials"])
    scopes = scope or (["openid", "profile"] if "authorization_code" in grants else [])
    jwks = json.loads(jwks_file.read_text()) if jwks_file else None
    with runtime() as rt, rt.db.transaction() as db:
        view, secret = service.register_client(
            rt,
            db,
            Actor.cli(),
            name=name,
            redirect_uris=redirect_uri,
            grant_types=grants,
            scopes=scopes,
            post_logout_redirect_uris=post_logout_uri,
            backchannel_logout_uri=backchannel_logout_uri,
            first_party=first_party,
            token_endpoint_auth_method=auth_method,
            department_id=_resolve_department(rt, db, department),
            jwks=jwks,
        )
    emit({**view.as_dict(), "client_secret": secret}, _client_text(view, secret))


@client_app.command("list")
def client_list() -> None:
    with runtime() as rt, rt.db.read() as db:
        views = service.list_clients(db)
    emit([v.as_dict() for v in views], "\n".join(f"{v.client_id}  {v.name}  {' '.join(v.grant_types)}  {'active' if v.active else 'disabled'}" for v in views) or "(no clients)")


@client_app.command("show")
def client_show(client_id: str = typer.Argument(...)) -> None:
    with runtime() as rt, rt.db.read() as db:
        view = service.get_client(db, client_id)
    emit(view.as_dict(), _client_text(view))


@client_app.command("rotate-secret")
def client_rotate_secret(client_id: str = typer.Argument(...)) -> None:
    """Issue a new secret; the old one stops working."""
    with runtime() as rt, rt.db.transaction() as db:
        view, secret = service.rotate_secret(rt, db, Actor.cli(), client_id=client_id)
    emit({**view.as_dict(), "client_secret": secret}, _client_text(view, secret))


@client_app.command("disable")
def client_disable(client_id: str = typer.Argument(...)) -> None:
    """Disable a client and invalidate every token it holds."""
    with runtime() as rt, rt.db.transaction() as db:
        view = service.disable_client(rt, db, Actor.cli(), client_id=client_id)
    emit(view.as_dict(), _client_text(view))


@client_app.command("enable")
def client_enable(client_id: str = typer.Argument(...)) -> None:
    with runtime() as rt, rt.db.transaction() as db:
        view = service.enable_client(rt, db, Actor.cli(), client_id=client_id)
    emit(view.as_dict(), _client_text(view))


@keys_app.command("list")
def keys_list() -> None:
    with runtime() as rt, rt.db.read() as db:
        keys = jwks_mod.list_keys(db)
    emit([k.__dict__ for k in keys], "\n".join(f"{k.kid}  {k.alg}  {k.status}  {k.publish_until or ''}" for k in keys))


@keys_app.command("rotate")
def keys_rotate(alg: str = typer.Option("RS256", help="RS256 or ES256.")) -> None:
    """New signing key for ``alg``; the previous key stays in the JWKS until its tokens expire."""
    with runtime() as rt, rt.db.transaction() as db:
        info = service.rotate_signing_key(rt, db, Actor.cli(), alg=alg.upper())
    emit(info.__dict__, f"new {info.alg} signing key {info.kid}")

"""Use cases of the single sign-on service that other packages call.

- passwords: :func:`set_password` (``eauth person add --password-stdin``, the registration desk);
- relying parties: :func:`register_client`, :func:`update_client`, :func:`rotate_secret`,
  :func:`disable_client`, :func:`get_client`, :func:`list_clients` (``eauth client …``, the console);
- signing keys: :func:`rotate_signing_key`.

Each takes the runtime, the caller's DB session and the acting identity, audits in that session and
returns frozen views; client secrets are returned once, in the clear, and stored only hashed.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from auth_service import passwords, timestamps
from auth_service.models import Client, Credential, Grant, Revocation
from auth_service.oidc import jwks as jwks_mod
from auth_service.oidc.jose import JoseError, key_from_jwk
from core.errors import Kind, Problem, invalid
from core.runtime import Runtime
from core.security import Actor
from identity import service as identity

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
OIDC_SCOPES = ("openid", "profile", "email", "phone", "offline_access")
_SCOPE_RE = re.compile(r"^[A-Za-z0-9_\-.:/]{1,100}$")
MAX_URIS = 20
SECRET_PREFIX = "sha256$"


@dataclass(frozen=True)
class ClientView:
    client_id: str
    name: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    scopes: tuple[str, ...]
    backchannel_logout_uri: str | None
    first_party: bool
    token_endpoint_auth_method: str
    department_id: str | None
    jwks: dict[str, Any] | None
    active: bool
    created_at: str
    secret_set_at: str | None

    @property
    def public(self) -> bool:
        return self.token_endpoint_auth_method == "none"

    def as_dict(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "name": self.name,
            "redirect_uris": list(self.redirect_uris),
            "post_logout_redirect_uris": list(self.post_logout_redirect_uris),
            "grant_types": list(self.grant_types),
            "scopes": list(self.scopes),
            "backchannel_logout_uri": self.backchannel_logout_uri,
            "first_party": self.first_party,
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
            "department_id": self.department_id,
            "active": self.active,
            "created_at": self.created_at,
            "secret_set_at": self.secret_set_at,
        }


def client_view(row: Client) -> ClientView:
    return ClientView(
        client_id=row.client_id,
        name=row.name,
        redirect_uris=tuple(json.loads(row.redirect_uris or "[]")),
        post_logout_redirect_uris=tuple(json.loads(row.post_logout_redirect_uris or "[]")),
        grant_types=tuple(row.grant_types.split()),
        scopes=tuple(row.scopes.split()),
        backchannel_logout_uri=row.backchannel_logout_uri,
        first_party=bool(row.first_party),
        token_endpoint_auth_method=row.token_endpoint_auth_method,
        department_id=row.department_id,
        jwks=json.loads(row.jwks) if row.jwks else None,
        active=bool(row.active),
        created_at=row.created_at,
        secret_set_at=row.secret_set_at,
    )


# -- passwords -------------------------------------------------------------------------------------


def set_password(rt: Runtime, db: Session, actor: Actor, *, person_id: str, password: str) -> None:
    """Set (or replace) a person's login password after the policy check; Argon2id-hashed."""
    person = identity.person_secrets(rt, db, person_id)  # raises identity.person_not_found
    problems = passwords.policy_problems(password, personal=tuple(v for v in (person.id_number, person.phone, person.email) if v))
    if problems:
        raise invalid("sso.weak_password", "the password is not acceptable: " + "; ".join(problems), password="; ".join(problems))
    now = timestamps.stamp()
    cred = db.get(Credential, person_id)
    if cred is None:
        cred = Credential(person_id=person_id, totp_confirmed=False, updated_at=now)
        db.add(cred)
    cred.password_hash = passwords.hash_password(password)
    cred.password_set_at = now
    cred.updated_at = now
    db.flush()
    rt.audit.record(db, actor=actor, action="sso.password.set", target=f"person:{person_id}")


# -- clients ---------------------------------------------------------------------------------------


def hash_client_secret(secret: str) -> str:
    # Client secrets are 256-bit random values, not human passwords: a fast hash is enough to make
    # a stolen table useless, and keeps client_credentials cheap (RFC 6819 §5.1.4.1.3).
    return SECRET_PREFIX + hashlib.sha256(secret.encode()).hexdigest()


def client_secret_matches(stored: str | None, presented: str) -> bool:
    if not stored or not presented or len(presented) > 512:
        return False
    return hmac.compare_digest(stored, hash_client_secret(presented))


def _check_uri(uri: str, field: str, *, allow_query: bool = True) -> str:
    if not isinstance(uri, str) or not uri or len(uri) > 2000:
        raise invalid("sso.invalid_uri", f"{field}: a URL of at most 2000 characters is required", **{field: "invalid URL"})
    parts = urlsplit(uri)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise invalid("sso.invalid_uri", f"{field}: {uri!r} must be an absolute http(s) URL", **{field: "absolute http(s) URL required"})
    if parts.fragment or "#" in uri:
        raise invalid("sso.invalid_uri", f"{field}: {uri!r} must not contain a fragment (RFC 6749 §3.1.2)", **{field: "no fragment"})
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise invalid("sso.insecure_uri", f"{field}: {uri!r} must use https (http only on loopback)", **{field: "https required"})
    if not allow_query and parts.query:
        raise invalid("sso.invalid_uri", f"{field}: {uri!r} must not contain a query", **{field: "no query"})
    return uri


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_jwks(jwks: dict[str, Any] | str | None) -> str | None:
    if jwks is None:
        return None
    if isinstance(jwks, str):
        try:
            jwks = json.loads(jwks)
        except ValueError:
            raise invalid("sso.invalid_jwks", "jwks is not valid JSON", jwks="invalid JSON") from None
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list) or not keys or len(keys) > 10:
        raise invalid("sso.invalid_jwks", "jwks must be a JWK Set with 1–10 keys", jwks="JWK Set required")
    for jwk in keys:
        try:
            key_from_jwk(jwk)
        except JoseError as exc:
            raise invalid("sso.invalid_jwks", f"jwks: {exc.reason}", jwks=exc.reason) from None
    return json.dumps({"keys": keys}, separators=(",", ":"))


def _check_client_fields(
    *,
    name: str,
    redirect_uris: list[str] | tuple[str, ...],
    grant_types: list[str] | tuple[str, ...],
    scopes: list[str] | tuple[str, ...],
    post_logout_redirect_uris: list[str] | tuple[str, ...],
    backchannel_logout_uri: str | None,
    token_endpoint_auth_method: str,
    jwks: dict[str, Any] | str | None,
) -> dict[str, Any]:
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise invalid("sso.invalid_client_name", "a client name of 1–200 characters is required", name="1–200 characters")
    grants = list(dict.fromkeys(grant_types))
    unknown = [g for g in grants if g not in GRANT_TYPES]
    if not grants or unknown:
        raise invalid("sso.invalid_grant_types", f"grant types must be among {', '.join(GRANT_TYPES)}", grant_types="unknown or empty")
    if token_endpoint_auth_method not in AUTH_METHODS:
        raise invalid("sso.invalid_auth_method", f"token_endpoint_auth_method must be one of {', '.join(AUTH_METHODS)}", token_endpoint_auth_method="unknown")
    if token_endpoint_auth_method == "none" and "client_credentials" in grants:
        raise invalid("sso.public_client_credentials", "a public client cannot use client_credentials", grant_types="client_credentials needs client authentication")
    if "refresh_token" in grants and "authorization_code" not in grants:
        raise invalid("sso.invalid_grant_types", "refresh_token needs authorization_code", grant_types="refresh_token alone")
    redirects = [_check_uri(u, "redirect_uris") for u in dict.fromkeys(redirect_uris)]
    if "authorization_code" in grants and not redirects:
        raise invalid("sso.redirect_uri_required", "authorization_code needs at least one redirect URI", redirect_uris="required")
    if len(redirects) > MAX_URIS:
        raise invalid("sso.too_many_uris", f"at most {MAX_URIS} redirect URIs", redirect_uris="too many")
    post_logout = [_check_uri(u, "post_logout_redirect_uris") for u in dict.fromkeys(post_logout_redirect_uris)]
    if len(post_logout) > MAX_URIS:
        raise invalid("sso.too_many_uris", f"at most {MAX_URIS} post-logout URIs", post_logout_redirect_uris="too many")
    backchannel = _check_uri(backchannel_logout_uri, "backchannel_logout_uri") if backchannel_logout_uri else None
    scope_list = list(dict.fromkeys(scopes))
    bad = [s for s in scope_list if not _SCOPE_RE.match(s)]
    if bad or len(scope_list) > 100:
        raise invalid("sso.invalid_scopes", f"invalid scope(s): {', '.join(bad[:5])}", scopes="letters, digits and _-.:/ only")
    if "authorization_code" in grants and "openid" not in scope_list:
        scope_list.insert(0, "openid")
    jwks_json = _check_jwks(jwks)
    if token_endpoint_auth_method == "private_key_jwt" and jwks_json is None:
        raise invalid("sso.jwks_required", "private_key_jwt needs the client's public keys (jwks)", jwks="required")
    return {
        "name": name,
        "redirect_uris": json.dumps(redirects),
        "post_logout_redirect_uris": json.dumps(post_logout),
        "grant_types": " ".join(grants),
        "scopes": " ".join(scope_list),
        "backchannel_logout_uri": backchannel,
        "token_endpoint_auth_method": token_endpoint_auth_method,
        "jwks": jwks_json,
    }


def register_client(
    rt: Runtime,
    db: Session,
    actor: Actor,
    *,
    name: str,
    redirect_uris: list[str] | tuple[str, ...] = (),
    grant_types: list[str] | tuple[str, ...] = ("authorization_code", "refresh_token"),
    scopes: list[str] | tuple[str, ...] = ("openid", "profile"),
    post_logout_redirect_uris: list[str] | tuple[str, ...] = (),
    backchannel_logout_uri: str | None = None,
    first_party: bool = False,
    token_endpoint_auth_method: str = "client_secret_basic",
    department_id: str | None = None,
    jwks: dict[str, Any] | str | None = None,
) -> tuple[ClientView, str | None]:
    """Register a relying party. Returns its view and the plain secret (shown once; None for public
    and private_key_jwt clients)."""
    fields = _check_client_fields(
        name=name,
        redirect_uris=redirect_uris,
        grant_types=grant_types,
        scopes=scopes,
        post_logout_redirect_uris=post_logout_redirect_uris,
        backchannel_logout_uri=backchannel_logout_uri,
        token_endpoint_auth_method=token_endpoint_auth_method,
        jwks=jwks,
    )
    if department_id is not None:
        identity.get_org(db, department_id)
    secret = secrets.token_urlsafe(32) if token_endpoint_auth_method in ("client_secret_basic", "client_secret_post") else None
    now = timestamps.stamp()
    row = Client(
        client_id="c_" + secrets.token_hex(10),
        secret_hash=hash_client_secret(secret) if secret else None,
        secret_set_at=now if secret else None,
        first_party=first_party,
        department_id=department_id,
        active=True,
        created_at=now,
        updated_at=now,
        **fields,
    )
    db.add(row)
    db.flush()
    view = client_view(row)
    rt.audit.record(
        db,
        actor=actor,
        action="sso.client.register",
        target=f"client:{row.client_id}",
        details={k: v for k, v in view.as_dict().items() if k not in ("created_at", "secret_set_at")},
    )
    return view, secret


def _client_row(db: Session, client_id: str, *, for_update: bool = False) -> Client:
    q = select(Client).where(Client.client_id == client_id)
    if for_update:
        q = q.with_for_update()
    row = db.execute(q).scalar_one_or_none() if isinstance(client_id, str) and len(client_id) <= 64 else None
    if row is None:
        raise Problem(Kind.NOT_FOUND, "sso.client_not_found", f"no client {client_id!r}")
    return row


def get_client(db: Session, client_id: str) -> ClientView:
    return client_view(_client_row(db, client_id))


def list_clients(db: Session, *, department_id: str | None = None, include_disabled: bool = True) -> list[ClientView]:
    q = select(Client).order_by(Client.created_at, Client.client_id)
    if department_id is not None:
        q = q.where(Client.department_id == department_id)
    if not include_disabled:
        q = q.where(Client.active)
    return [client_view(r) for r in db.execute(q).scalars()]


def update_client(rt: Runtime, db: Session, actor: Actor, *, client_id: str, **changes: Any) -> ClientView:
    """Change a client's registration (same validation as :func:`register_client`)."""
    row = _client_row(db, client_id, for_update=True)
    current = client_view(row)
    allowed = {"name", "redirect_uris", "grant_types", "scopes", "post_logout_redirect_uris", "backchannel_logout_uri", "token_endpoint_auth_method", "jwks", "first_party", "department_id"}
    unknown = set(changes) - allowed
    if unknown:
        raise invalid("sso.unknown_client_field", f"unknown field(s): {', '.join(sorted(unknown))}", **{k: "unknown" for k in unknown})
    merged = {
        "name": current.name,
        "redirect_uris": current.redirect_uris,
        "grant_types": current.grant_types,
        "scopes": current.scopes,
        "post_logout_redirect_uris": current.post_logout_redirect_uris,
        "backchannel_logout_uri": current.backchannel_logout_uri,
        "token_endpoint_auth_method": current.token_endpoint_auth_method,
        "jwks": current.jwks,
    }
    merged.update({k: v for k, v in changes.items() if k in merged})
    fields = _check_client_fields(**merged)
    if fields["token_endpoint_auth_method"] in ("client_secret_basic", "client_secret_post") and not row.secret_hash:
        raise invalid("sso.secret_required", "rotate the secret to switch to a secret-based method", token_endpoint_auth_method="no secret yet")
    for key, value in fields.items():
        setattr(row, key, value)
    if "first_party" in changes:
        row.first_party = bool(changes["first_party"])
    if "department_id" in changes:
        if changes["department_id"] is not None:
            identity.get_org(db, changes["department_id"])
        row.department_id = changes["department_id"]
    row.updated_at = timestamps.stamp()
    db.flush()
    view = client_view(row)
    rt.audit.record(db, actor=actor, action="sso.client.update", target=f"client:{client_id}", details={"changed": sorted(changes)})
    return view


def rotate_secret(rt: Runtime, db: Session, actor: Actor, *, client_id: str) -> tuple[ClientView, str]:
    """A new client secret (the old one stops working at once). Returned once, stored hashed."""
    row = _client_row(db, client_id, for_update=True)
    if row.token_endpoint_auth_method in ("none", "private_key_jwt"):
        raise Problem(Kind.CONFLICT, "sso.client_has_no_secret", f"a {row.token_endpoint_auth_method} client has no secret")
    secret = secrets.token_urlsafe(32)
    row.secret_hash = hash_client_secret(secret)
    row.secret_set_at = row.updated_at = timestamps.stamp()
    db.flush()
    rt.audit.record(db, actor=actor, action="sso.client.rotate_secret", target=f"client:{client_id}")
    return client_view(row), secret


def disable_client(rt: Runtime, db: Session, actor: Actor, *, client_id: str) -> ClientView:
    """Disable a client: no new tokens, and every token it holds stops being accepted."""
    row = _client_row(db, client_id, for_update=True)
    now = timestamps.stamp()
    if row.active:
        row.active = False
        row.updated_at = now
        db.execute(
            update(Grant).where(Grant.client_id == client_id, Grant.revoked_at.is_(None)).values(revoked_at=now, revoke_reason="client_disabled")
        )
        revoke_key(db, f"client:{client_id}", hours=24 * 31)
        db.flush()
        rt.audit.record(db, actor=actor, action="sso.client.disable", target=f"client:{client_id}")
    return client_view(row)


def enable_client(rt: Runtime, db: Session, actor: Actor, *, client_id: str) -> ClientView:
    row = _client_row(db, client_id, for_update=True)
    if not row.active:
        row.active = True
        row.updated_at = timestamps.stamp()
        db.execute(Revocation.__table__.delete().where(Revocation.key == f"client:{client_id}"))
        rt.audit.record(db, actor=actor, action="sso.client.enable", target=f"client:{client_id}")
    return client_view(row)


def revoke_key(db: Session, key: str, **lifetime: float) -> None:
    """Record a revocation (``jti:…``, ``grant:…``, ``client:…``, ``sid:…``) until ``lifetime``."""
    from sqlalchemy import event

    from auth_service.oidc.access_token import revocations_changed

    expires = timestamps.stamp(**lifetime)
    if not db.info.get("sso_revocation_hook"):
        db.info["sso_revocation_hook"] = True
        event.listen(db, "after_commit", lambda _s: (_s.info.pop("sso_revocation_hook", None), revocations_changed()), once=True)
    row = db.get(Revocation, key)
    if row is None:
        db.add(Revocation(key=key, created_at=timestamps.stamp(), expires_at=expires))
    elif row.expires_at < expires:
        row.expires_at = expires


# -- keys ------------------------------------------------------------------------------------------


def rotate_signing_key(rt: Runtime, db: Session, actor: Actor, *, alg: str) -> jwks_mod.KeyInfo:
    return jwks_mod.rotate_key(rt, db, actor, alg=alg)

"""The token endpoint: RFC 6749 §4.1.3 (authorization code), §6 (refresh), §4.4 (client credentials);
OIDC Core §3.1.3 (ID tokens); RFC 7636 §4.6 (PKCE); Security BCP (RFC 9700) §4.13–4.14.

- Codes are redeemed atomically: one conditional ``UPDATE … WHERE redeemed_at IS NULL``. A second
  redemption finds nothing to update, and the tokens issued from the first are revoked
  (RFC 6749 §4.1.2: "the authorization server … SHOULD revoke … all tokens previously issued").
- Refresh tokens rotate on every use within a *family* (the grant). Presenting a used refresh token
  revokes the whole family (reuse detection, RFC 9700 §4.14.2).
- The HSM signs inside the transaction that records the grant, so a signing failure leaves no
  half-issued grant. Every issuance is audited and the tokens are returned only after their audit
  entry is committed (group-committed with other issuances, see ``audit_batch``).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any

from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.orm import Session

from auth_service import timestamps
from auth_service.models import AuthorizationCode, BrowserSession, Grant, RefreshToken
from auth_service.oidc import pkce
from auth_service.oidc.access_token import issue_access_token
from auth_service.oidc.errors import OAuthError
from auth_service.oidc.jose import sign_compact
from auth_service.oidc.jwks import KeyRing
from auth_service.service import OIDC_SCOPES, ClientView, revoke_key
from core.runtime import Runtime
from core.security import Actor

ID_TOKEN_ALG = "RS256"
ID_TOKEN_SECONDS = 600
OFFLINE_DAYS = 30
MAX_TOKEN_PARAM = 4096


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def at_hash(access_token: str) -> str:
    """OIDC Core §3.1.3.6: left half of SHA-256 of the access token, base64url."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def id_token(
    rt: Runtime, db: Session, *, client_id: str, person_id: str, nonce: str | None, acr: str | None, amr: list[str], auth_time: int | None, sid: str | None, scope: list[str], access_token: str | None
) -> str:
    now = timestamps.epoch()
    claims: dict[str, Any] = {
        "iss": rt.settings.public_url,
        "sub": person_id,
        "aud": client_id,
        "azp": client_id,
        "iat": now,
        "exp": now + ID_TOKEN_SECONDS,
    }
    if auth_time is not None:
        claims["auth_time"] = auth_time
    if nonce:
        claims["nonce"] = nonce
    if acr:
        claims["acr"] = acr
    if amr:
        claims["amr"] = amr
    if sid:
        claims["sid"] = sid
    if access_token:
        claims["at_hash"] = at_hash(access_token)
    if "profile" in scope:
        from identity import service as identity

        claims["name"] = identity.get_person(db, person_id).name
    kid, key = KeyRing.of(rt).signer(ID_TOKEN_ALG)
    return sign_compact(key, ID_TOKEN_ALG, kid, claims, typ="JWT")


def revoke_grant(rt: Runtime, db: Session, grant_id: str, reason: str) -> None:
    """Revoke a token family: its refresh tokens stop working, its access tokens are refused."""
    db.execute(update(Grant).where(Grant.id == grant_id, Grant.revoked_at.is_(None)).values(revoked_at=timestamps.stamp(), revoke_reason=reason))
    revoke_key(db, f"grant:{grant_id}", minutes=rt.settings.access_token_minutes + 2)


def _new_refresh_token(db: Session, grant: Grant) -> str:
    token = secrets.token_urlsafe(32)
    db.add(RefreshToken(token_hash=_hash(token), grant_id=grant.id, created_at=timestamps.stamp(), expires_at=grant.expires_at))
    return token


def _user_tokens(
    rt: Runtime, db: Session, client: ClientView, grant: Grant, *, nonce: str | None, grant_type: str, refresh: bool, scope_override: str | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The token response and the audit entry that must be committed before it is sent."""
    scope_text = scope_override or grant.scope
    scope = scope_text.split()
    amr = grant.amr.split()
    access, expires_in, jti = issue_access_token(
        rt,
        client_id=client.client_id,
        subject=grant.person_id or "",
        scope=scope_text,
        grant_id=grant.id,
        session_id=grant.session_id,
        acr=grant.acr,
        amr=amr,
        auth_time=grant.auth_time,
    )
    body: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": expires_in, "scope": scope_text}
    if "openid" in scope:
        body["id_token"] = id_token(
            rt, db, client_id=client.client_id, person_id=grant.person_id or "", nonce=nonce, acr=grant.acr, amr=amr,
            auth_time=grant.auth_time, sid=grant.session_id, scope=scope, access_token=access,
        )
    if refresh:
        body["refresh_token"] = _new_refresh_token(db, grant)
    audit = {
        "actor": Actor("client", client.client_id, client.name),
        "action": "sso.token.issue",
        "target": f"person:{grant.person_id}",
        "details": {"grant_type": grant_type, "scope": scope_text, "jti": jti, "gid": grant.id, "sid": grant.session_id, "refresh": refresh},
    }
    return body, audit


_ASYNC_COMMIT = text("SET LOCAL synchronous_commit TO OFF")


def _flush_with_audit(rt: Runtime, db: Session) -> None:
    """Let this (successful) issuance transaction commit without its own WAL flush on PostgreSQL.

    Safe because the tokens are handed out only after their audit entry's commit, which is
    synchronous: PostgreSQL flushes the WAL up to that later commit record, and with it every
    earlier commit — this one included. One disk flush per batch of issuances instead of two per
    token, with the same guarantee (nothing returned that a crash could take back)."""
    if rt.db.dialect == "postgresql":
        db.connection().execute(_ASYNC_COMMIT)


def _audited(rt: Runtime, issued: tuple[dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
    """Hand the tokens out only once their audit entry is committed. The entry is group-committed
    (audit_batch) after the grant's own commit: one audit-chain lock per batch instead of one per
    redemption, which otherwise serialises every token request on the chain head. If the audit
    write fails the caller gets a 503 problem and never sees the tokens (the grant row stays,
    unusable: its code is spent and nobody holds its refresh token)."""
    from auth_service.oidc.audit_batch import AuditBatcher

    body, audit = issued
    AuditBatcher.of(rt).record(**audit)
    return body


_CODES = AuthorizationCode.__table__
_GRANTS = Grant.__table__
_SESSIONS = BrowserSession.__table__
# The redemption's statements, built once (building a SQLAlchemy statement costs about as much CPU
# as running it). The redemption itself: one conditional UPDATE … RETURNING — only the client the
# code was issued to can spend it, once, before it expires.
_REDEEM = (
    update(_CODES)
    .where(
        _CODES.c.code_hash == bindparam("h"), _CODES.c.client_id == bindparam("client"), _CODES.c.redeemed_at.is_(None), _CODES.c.expires_at > bindparam("now")
    )
    .values(redeemed_at=bindparam("now"))
    .returning(_CODES)
)
_SESSION_STATE = select(_SESSIONS.c.ended_at, _SESSIONS.c.expires_at).where(_SESSIONS.c.id == bindparam("sid"))
_NEW_GRANT = insert(_GRANTS)


def authorization_code_grant(rt: Runtime, client: ClientView, form: dict[str, str]) -> dict[str, Any]:
    code = form.get("code") or ""
    redirect_uri = form.get("redirect_uri") or ""
    verifier = form.get("code_verifier")
    if not code or len(code) > MAX_TOKEN_PARAM:
        raise OAuthError("invalid_request", "code is required")
    failure: OAuthError | None = None
    code_hash = _hash(code)
    with rt.db.transaction() as db:
        conn = db.connection()
        now = timestamps.stamp()
        row = conn.execute(_REDEEM, {"h": code_hash, "client": client.client_id, "now": now}).one_or_none()  # Core: every sign-in runs it
        if row is None:
            # Why not: unknown, another client's, replayed or expired (rare, so looked up afterwards).
            spent = db.get(AuthorizationCode, code_hash)
            if spent is None or spent.client_id != client.client_id:
                raise OAuthError("invalid_grant", "the code is invalid, expired or was issued to another client")
            if spent.redeemed_at is not None:
                # A replayed code: whoever holds it may be an attacker; revoke what the first use got.
                revoke_grant(rt, db, spent.grant_id, "code_replay")
                rt.audit.record(
                    db, actor=Actor("client", client.client_id, client.name), action="sso.code.replay", target=f"person:{spent.person_id}",
                    outcome="failure", details={"gid": spent.grant_id},
                )
                failure = OAuthError("invalid_grant", "the code was already used; tokens issued with it are revoked")
            else:
                failure = OAuthError("invalid_grant", "the code has expired")
        elif redirect_uri != row.redirect_uri:
            failure = OAuthError("invalid_grant", "redirect_uri does not match the authorization request")
        elif row.code_challenge and not pkce.verify(row.code_challenge, verifier or ""):
            failure = OAuthError("invalid_grant", "code_verifier does not match the code_challenge (PKCE)")
        elif not row.code_challenge and verifier is not None:
            failure = OAuthError("invalid_grant", "code_verifier given but the authorization request had no code_challenge")
        else:
            session = conn.execute(_SESSION_STATE, {"sid": row.session_id}).one_or_none()
            if session is None or session.ended_at is not None:
                failure = OAuthError("invalid_grant", "the login session has ended")
        if failure is None:
            assert row is not None and session is not None
            scope = row.scope.split()
            offline = "offline_access" in scope
            refresh = "refresh_token" in client.grant_types
            grant = Grant(
                id=row.grant_id,
                client_id=client.client_id,
                person_id=row.person_id,
                session_id=row.session_id,
                scope=row.scope,
                acr=row.acr,
                amr=row.amr,
                auth_time=row.auth_time,
                created_at=now,
                expires_at=timestamps.stamp(days=OFFLINE_DAYS) if offline else session.expires_at,
            )
            conn.execute(
                _NEW_GRANT,
                {
                    "id": grant.id, "client_id": grant.client_id, "person_id": grant.person_id, "session_id": grant.session_id, "scope": grant.scope,
                    "acr": grant.acr, "amr": grant.amr, "auth_time": grant.auth_time, "created_at": grant.created_at, "expires_at": grant.expires_at,
                },
            )
            issued = _user_tokens(rt, db, client, grant, nonce=row.nonce, grant_type="authorization_code", refresh=refresh)
            _flush_with_audit(rt, db)
    if failure is not None:
        raise failure
    return _audited(rt, issued)


def refresh_token_grant(rt: Runtime, client: ClientView, form: dict[str, str]) -> dict[str, Any]:
    if "refresh_token" not in client.grant_types:
        raise OAuthError("unauthorized_client", "this client may not use refresh tokens")
    token = form.get("refresh_token") or ""
    if not token or len(token) > MAX_TOKEN_PARAM:
        raise OAuthError("invalid_request", "refresh_token is required")
    failure: OAuthError | None = None
    requested: str | None = None
    asked: list[str] = []
    with rt.db.transaction() as db:
        row = db.get(RefreshToken, _hash(token))
        grant = db.get(Grant, row.grant_id) if row else None
        if row is None or grant is None or grant.client_id != client.client_id:
            raise OAuthError("invalid_grant", "the refresh token is invalid")
        now = timestamps.stamp()
        used = db.execute(update(RefreshToken).where(RefreshToken.token_hash == row.token_hash, RefreshToken.used_at.is_(None)).values(used_at=now)).rowcount
        if used != 1:
            if grant.revoked_at is None:
                revoke_grant(rt, db, grant.id, "refresh_reuse")
                rt.audit.record(
                    db, actor=Actor("client", client.client_id, client.name), action="sso.refresh.reuse", target=f"person:{grant.person_id}",
                    outcome="failure", details={"gid": grant.id},
                )
            failure = OAuthError("invalid_grant", "the refresh token was already used; its family is revoked")
        elif grant.revoked_at is not None or grant.expires_at <= now or row.expires_at <= now:
            failure = OAuthError("invalid_grant", "the refresh token has expired or was revoked")
        else:
            requested = form.get("scope")
            if requested is not None:
                asked = requested.split()
                if not asked or not set(asked) <= set(grant.scope.split()):
                    failure = OAuthError("invalid_scope", "a refresh may only narrow the original scope")
        if failure is None:
            # A narrowed scope applies to this response only; the family keeps what was granted
            # (RFC 6749 §6: an omitted scope means the original one).
            narrowed = " ".join(dict.fromkeys(asked)) if requested is not None else None
            issued = _user_tokens(rt, db, client, grant, nonce=None, grant_type="refresh_token", refresh=True, scope_override=narrowed)
            _flush_with_audit(rt, db)
    if failure is not None:
        raise failure
    return _audited(rt, issued)


def client_credentials_grant(rt: Runtime, client: ClientView, form: dict[str, str]) -> dict[str, Any]:
    """RFC 6749 §4.4: a department system's own token for the platform APIs (no person, no ID token)."""
    if "client_credentials" not in client.grant_types:
        raise OAuthError("unauthorized_client", "this client may not use client_credentials")
    allowed = [s for s in client.scopes if s not in OIDC_SCOPES]
    requested = form.get("scope")
    if requested is None:
        scope = allowed
    else:
        scope = list(dict.fromkeys(requested.split()))
        if len(requested) > MAX_TOKEN_PARAM or not set(scope) <= set(allowed):
            raise OAuthError("invalid_scope", "scope not allowed for this client")
    access, expires_in, jti = issue_access_token(rt, client_id=client.client_id, subject=client.client_id, scope=" ".join(scope))
    from auth_service.oidc.audit_batch import record_issuance

    record_issuance(rt, client, jti=jti, scope=" ".join(scope))
    return {"access_token": access, "token_type": "Bearer", "expires_in": expires_in, "scope": " ".join(scope)}


GRANTS = {
    "authorization_code": authorization_code_grant,
    "refresh_token": refresh_token_grant,
    "client_credentials": client_credentials_grant,
}

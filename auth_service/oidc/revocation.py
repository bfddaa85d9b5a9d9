"""Token revocation (RFC 7009).

A refresh token revokes its whole family (§2.1: "SHOULD also invalidate all access tokens based on
the same authorization grant"); an access token is added to the revocation set until it expires.
Only the client the token was issued to may revoke it. The answer is 200 whatever happened (§2.2),
so the endpoint tells nobody whether a token existed.
"""

from __future__ import annotations

import hashlib

from auth_service import timestamps
from auth_service.models import Grant, RefreshToken
from auth_service.oidc.tokens import revoke_grant
from auth_service.service import ClientView, revoke_key
from core.errors import Problem
from core.runtime import Runtime
from core.security import Actor


def revoke(rt: Runtime, caller: ClientView, token: str, hint: str | None) -> None:
    if not token or len(token) > 16384:
        return
    if hint != "access_token" and _revoke_refresh(rt, caller, token):
        return
    if token.count(".") == 2:
        _revoke_access(rt, caller, token)


def _revoke_refresh(rt: Runtime, caller: ClientView, token: str) -> bool:
    digest = hashlib.sha256(token.encode()).hexdigest()
    with rt.db.transaction() as db:
        row = db.get(RefreshToken, digest)
        grant = db.get(Grant, row.grant_id) if row else None
        if row is None or grant is None:
            return False
        if grant.client_id == caller.client_id and grant.revoked_at is None:
            revoke_grant(rt, db, grant.id, "revoked_by_client")
            rt.audit.record(db, actor=Actor("client", caller.client_id, caller.name), action="sso.token.revoke", target=f"person:{grant.person_id}", details={"gid": grant.id, "type": "refresh_token"})
        return True


def _revoke_access(rt: Runtime, caller: ClientView, token: str) -> None:
    from auth_service.oidc.access_token import verify_access_token_claims

    try:
        claims = verify_access_token_claims(rt, token)
    except Problem:
        return  # invalid or already revoked: nothing to do (§2.2)
    if claims["client_id"] != caller.client_id:
        return
    seconds = max(0, claims["exp"] - timestamps.epoch()) + 120
    with rt.db.transaction() as db:
        revoke_key(db, "jti:" + claims["jti"], seconds=seconds)
        rt.audit.record(db, actor=Actor("client", caller.client_id, caller.name), action="sso.token.revoke", target=f"sub:{claims['sub']}", details={"jti": claims["jti"], "type": "access_token"})

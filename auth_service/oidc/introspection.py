"""Token introspection (RFC 7662).

The caller must authenticate as a client. A client learns about tokens issued to itself; a
first-party client (a platform resource server such as the console) about any token. Everything
else — unknown, expired, revoked, someone else's — is ``{"active": false}`` and nothing more
(§2.2: no hint why).
"""

from __future__ import annotations

import hashlib
from typing import Any

from auth_service import timestamps
from auth_service.models import Grant, RefreshToken
from auth_service.oidc.access_token import verify_access_token_claims
from auth_service.service import ClientView
from core.errors import Problem
from core.runtime import Runtime

INACTIVE: dict[str, Any] = {"active": False}


def introspect(rt: Runtime, caller: ClientView, token: str, hint: str | None) -> dict[str, Any]:
    if not token or len(token) > 16384:
        return INACTIVE
    order = ("refresh_token", "access_token") if hint == "refresh_token" else ("access_token", "refresh_token")
    for kind in order:
        found = _access(rt, token) if kind == "access_token" else _refresh(rt, token)
        if found is not None:
            if found.get("client_id") != caller.client_id and not caller.first_party:
                return INACTIVE
            return found
    return INACTIVE


def _access(rt: Runtime, token: str) -> dict[str, Any] | None:
    if token.count(".") != 2:
        return None
    try:
        claims = verify_access_token_claims(rt, token)
    except Problem:
        return None
    out = {"active": True, "token_type": "Bearer"}
    for name in ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "jti", "acr", "auth_time", "sid"):
        if name in claims:
            out[name] = claims[name]
    return out


def _refresh(rt: Runtime, token: str) -> dict[str, Any] | None:
    digest = hashlib.sha256(token.encode()).hexdigest()
    now = timestamps.stamp()
    with rt.db.read() as db:
        row = db.get(RefreshToken, digest)
        grant = db.get(Grant, row.grant_id) if row else None
        if row is None or grant is None or row.used_at or grant.revoked_at or row.expires_at <= now:
            return None
        return {
            "active": True,
            "token_type": "refresh_token",
            "client_id": grant.client_id,
            "sub": grant.person_id,
            "scope": grant.scope,
            "exp": int(timestamps.parse(row.expires_at).timestamp()),
            "iat": int(timestamps.parse(row.created_at).timestamp()),
            "iss": rt.settings.public_url,
        }

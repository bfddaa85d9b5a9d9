"""The UserInfo endpoint (OIDC Core §5.3): claims by granted scope (§5.4), Bearer per RFC 6750."""

from __future__ import annotations

from typing import Any

from auth_service.oidc.access_token import verify_access_token_claims
from core.runtime import Runtime
from identity import service as identity


def userinfo(rt: Runtime, access_token: str) -> dict[str, Any]:
    """Raises the verifier's 401 problem for a bad token; callers map it to RFC 6750 errors."""
    claims = verify_access_token_claims(rt, access_token)
    scope = set(claims.get("scope", "").split())
    if "openid" not in scope or claims["sub"] == claims["client_id"]:
        raise PermissionError("insufficient_scope")
    with rt.db.read() as db:
        person = identity.person_secrets(rt, db, claims["sub"])
    out: dict[str, Any] = {"sub": claims["sub"]}
    if "profile" in scope:
        out["name"] = person.name
    if "email" in scope and person.email:
        out["email"] = person.email
        out["email_verified"] = False  # registered at the desk, not verified by a mail round-trip
    if "phone" in scope and person.phone:
        out["phone_number"] = "+86" + person.phone
        out["phone_number_verified"] = False
    return out

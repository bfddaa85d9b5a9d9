"""What `eauth init` does for this package (idempotent)."""

from __future__ import annotations

from auth_service.oidc.jwks import ensure_keys
from core.runtime import Runtime
from core.security import Actor


def initialise(rt: Runtime, actor: Actor) -> list[str]:
    """Create the OIDC signing keys (RS256 and ES256, in the HSM as ``oidc/<kid>``) once."""
    with rt.db.transaction() as db:
        return ensure_keys(rt, db, actor)

"""What `eauth init` does for this package (idempotent)."""

from __future__ import annotations

from core.runtime import Runtime
from core.security import Actor
from signing import service


def initialise(rt: Runtime, actor: Actor) -> list[str]:
    """Create the timestamp unit (HSM key ``tsa/1`` + ``tsa`` certificate from the CA) once."""
    return service.ensure_tsa(rt, actor)

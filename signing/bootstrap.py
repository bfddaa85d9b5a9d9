"""What `eauth init` does for this package (idempotent)."""

from __future__ import annotations

from core.runtime import Runtime
from core.security import Actor


def initialise(rt: Runtime, actor: Actor) -> list[str]:
    """Create this package's keys and records once; return lines to show the operator."""
    return []

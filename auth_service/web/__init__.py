"""HTTP routes of this package (mounted by ``eauth.app``)."""

from __future__ import annotations

from fastapi import APIRouter

from core.runtime import Runtime

router = APIRouter()


def setup(rt: Runtime) -> None:
    """Per-process start-up for this package's routes (caches, verifiers)."""

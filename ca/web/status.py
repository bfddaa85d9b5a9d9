"""Routes (see ca/web/__init__.py)."""

from __future__ import annotations

from fastapi import APIRouter

from core.runtime import Runtime

router = APIRouter()


def setup(rt: Runtime) -> None:
    """Per-process start-up."""

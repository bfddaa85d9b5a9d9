"""Times as this package stores and compares them: ISO 8601 UTC strings (seconds) and epoch ints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core import clock


def now() -> datetime:
    return clock.now().astimezone(UTC).replace(microsecond=0)


def stamp(at: datetime | None = None, **delta: float) -> str:
    """``2026-11-25T08:00:00+00:00``; ``stamp(minutes=5)`` is five minutes from now."""
    at = (at or now()) + timedelta(**delta)
    return at.astimezone(UTC).replace(microsecond=0).isoformat()


def epoch(at: datetime | None = None) -> int:
    return int((at or clock.now()).timestamp())


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value)

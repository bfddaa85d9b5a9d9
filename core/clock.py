"""The platform clock. Tests freeze or skew it (``set_offset``/``freeze``); code calls ``now()``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

_offset = timedelta(0)
_frozen: datetime | None = None


def now() -> datetime:
    """Current time, timezone-aware UTC."""
    if _frozen is not None:
        return _frozen
    return datetime.now(UTC) + _offset


def set_offset(offset: timedelta) -> None:
    global _offset
    _offset = offset


@contextlib.contextmanager
def frozen(at: datetime) -> Iterator[None]:
    global _frozen
    previous = _frozen
    _frozen = at.astimezone(UTC)
    try:
        yield
    finally:
        _frozen = previous


@contextlib.contextmanager
def skewed(offset: timedelta) -> Iterator[None]:
    global _offset
    previous = _offset
    _offset = offset
    try:
        yield
    finally:
        _offset = previous

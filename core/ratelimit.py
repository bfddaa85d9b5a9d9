"""Rate limits: a sliding-window counter per (area, key), in-process or shared through the database.

Use it in three lines (a route, a service function, a CLI command alike)::

    from core.ratelimit import Rule, hit, per_ip

    LOGIN_PER_IP = Rule("login", limit=20, window=60)          # 20 attempts a minute per address

    def login(request: Request, rt: RuntimeDep, ...):
        hit(rt, LOGIN_PER_IP, per_ip(request, rt))              # raises when over the limit
        ...

or as a route dependency: ``_: Annotated[None, Depends(limited(LOGIN_PER_IP))]`` (keyed by client
address). Keys may be anything that identifies the caller — an address, an account id, a phone
number: they are hashed before they are stored (keyed HMAC from the PII vault for the shared
backend), so a phone number never sits in the counter table.

Over the limit, :func:`hit` raises ``Problem(Kind.RATE_LIMITED, "rate_limited.<area>", …)`` with a
``Retry-After`` header (seconds), which ``core.web`` renders as a 429 problem document. Denied calls
do not consume the budget, so a client that waits ``Retry-After`` gets through. ``reset(rt, rule,
key)`` forgets a key (e.g. the failed-login counter of an account after a successful login).

**Algorithm.** The sliding-window counter (Cloudflare's): counts for the current and the previous
fixed window; the estimate is ``previous × (1 − elapsed/window) + current``. O(1) memory per key,
no burst of 2× at window edges as a plain fixed window has, and the same arithmetic in both
backends, so they behave identically.

**Backends** (``EAUTH_RATE_LIMIT_BACKEND``):

- ``memory`` (default): a dict in the process, guarded by a lock. Costs nothing, but each worker
  process counts alone: behind ``eauth serve --workers N`` a client gets up to N× the limit (and
  spread over several machines, more). Fine for a single process and as a coarse brake.
- ``database``: the ``rate_limit_counters`` table, one atomic upsert per call (``INSERT … ON
  CONFLICT DO UPDATE … RETURNING``) in its own short transaction — so a caller's rollback does not
  undo the count (a failed login must still count). Exact across workers and machines; costs one
  write per limited request (on SQLite that write takes the database write lock). Use it for the
  security-relevant limits (login, OTP) in multi-worker deployments.

**Tuning** without code changes: ``EAUTH_RATE_LIMITS="login=50/60,otp_send=off"`` overrides a rule's
``limit/window`` by area, or switches it off (tests, load benchmarks).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import BigInteger, Integer, String, delete, select
from sqlalchemy.orm import Mapped, mapped_column
from starlette.requests import Request

from core import clock
from core.db import Base, Database
from core.errors import Kind, Problem

if TYPE_CHECKING:
    from core.runtime import Runtime

EXTENSION_KEY = "core.ratelimit"


@dataclass(frozen=True)
class Rule:
    """At most ``limit`` calls per ``window`` seconds for one key in ``area``.

    ``area`` names the limit in problem codes (``rate_limited.<area>``), in metrics and in the
    ``EAUTH_RATE_LIMITS`` overrides: lower-case letters, digits, ``_`` and ``.``.
    """

    area: str
    limit: int
    window: int

    def __post_init__(self) -> None:
        if not self.area or not all(c.isalnum() or c in "_." for c in self.area) or self.area.lower() != self.area:
            raise ValueError(f"rate-limit area {self.area!r}: use lower-case letters, digits, '_' and '.'")
        if self.limit < 1:
            raise ValueError(f"rate limit for {self.area!r} must allow at least one call")
        if not 1 <= self.window <= 86400:
            raise ValueError(f"rate-limit window for {self.area!r} must be 1 s to 1 day")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    remaining: int  # calls left in the current estimate (0 when denied)
    retry_after: int  # seconds until a call would be allowed (0 when allowed)


def parse_overrides(entries: list[str]) -> dict[str, tuple[int, int] | None]:
    """``["login=50/60", "otp_send=off"]`` → ``{"login": (50, 60), "otp_send": None}``."""
    out: dict[str, tuple[int, int] | None] = {}
    for entry in entries:
        area, sep, value = entry.partition("=")
        area, value = area.strip(), value.strip().lower()
        if not sep or not area:
            raise ValueError(f"rate limit {entry!r}: expected area=LIMIT/SECONDS or area=off")
        if value == "off":
            out[area] = None
            continue
        count, slash, window = value.partition("/")
        if not slash or not count.isdigit() or not window.isdigit() or int(count) < 1 or not 1 <= int(window) <= 86400:
            raise ValueError(f"rate limit {entry!r}: expected area=LIMIT/SECONDS (LIMIT ≥ 1, 1 ≤ SECONDS ≤ 86400) or area=off")
        out[area] = (int(count), int(window))
    return out


def _estimate(previous: int, current: int, elapsed: float, window: int) -> float:
    return previous * max(0.0, 1.0 - elapsed / window) + current


def _retry_after(previous: int, current: int, elapsed: float, rule: Rule, cost: int) -> int:
    """Seconds until ``estimate + cost ≤ limit`` (the previous window's weight decays linearly)."""
    w, room = float(rule.window), rule.limit - cost
    if room < 0:
        return rule.window * 2  # a cost larger than the whole limit never fits; say "much later"
    if current <= room and previous > 0:
        # within this window: previous·(1 − t/w) + current ≤ room
        t = w * (1.0 - (room - current) / previous)
        return max(1, math.ceil(t - elapsed))
    # next window: the current count becomes the previous one and decays from there
    s = w * (1.0 - room / current) if current > 0 else 0.0
    return max(1, math.ceil((w - elapsed) + s))


class Backend(Protocol):
    def take(self, rule: Rule, bucket: str, cost: int, now: float) -> Decision: ...

    def reset(self, rule: Rule, bucket: str) -> None: ...


class MemoryBackend:
    """Per-process counters. ``max_keys`` bounds memory under a flood of distinct keys."""

    def __init__(self, *, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        self._lock = threading.Lock()
        # bucket -> [window index, previous count, current count]
        self._counts: dict[str, list[int]] = {}

    def take(self, rule: Rule, bucket: str, cost: int, now: float) -> Decision:
        index, elapsed = divmod(now, rule.window)
        index = int(index)
        with self._lock:
            slot = self._counts.get(bucket)
            if slot is None:
                if len(self._counts) >= self.max_keys:
                    self._evict()
                slot = self._counts[bucket] = [index, 0, 0]
            if slot[0] != index:
                slot[1] = slot[2] if slot[0] == index - 1 else 0
                slot[2] = 0
                slot[0] = index
            previous, current = slot[1], slot[2]
            if _estimate(previous, current + cost, elapsed, rule.window) > rule.limit:
                return Decision(False, 0, _retry_after(previous, current, elapsed, rule, cost))
            slot[2] = current + cost
            return Decision(True, int(rule.limit - _estimate(previous, slot[2], elapsed, rule.window)), 0)

    def reset(self, rule: Rule, bucket: str) -> None:
        with self._lock:
            self._counts.pop(bucket, None)

    def _evict(self) -> None:
        # A flood of distinct keys (spoofed addresses): forget the oldest half (dict order is
        # insertion order). Forgetting only ever lets a key through sooner, never locks one out.
        for bucket in list(self._counts)[: max(1, len(self._counts) // 2)]:
            del self._counts[bucket]

    def __len__(self) -> int:
        return len(self._counts)


class RateLimitCounter(Base):
    """Shared counters for the ``database`` backend (``core_0002``). Rows live two windows."""

    __tablename__ = "rate_limit_counters"

    bucket: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_index: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False)
    count: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)


class DatabaseBackend:
    """Counters in the database, exact across worker processes and machines.

    Each call is one short transaction of its own: an atomic upsert that reserves ``cost`` in the
    current window (``RETURNING`` the new count) and a read of the previous window; a denied call
    gives its reservation back in the same transaction. Two racing calls at the edge may both be
    refused (never both admitted past the limit).
    """

    def __init__(self, db: Database, *, sweep_every: int = 500) -> None:
        self.db = db
        self.sweep_every = sweep_every
        self._calls = 0

    def _upsert(self, bucket: str, index: int, cost: int, expires: int) -> Any:
        table = RateLimitCounter.__table__
        if self.db.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = insert(table).values(bucket=bucket, window_index=index, count=cost, expires_at=expires)
        return stmt.on_conflict_do_update(
            index_elements=[table.c.bucket, table.c.window_index], set_={"count": table.c.count + cost}
        ).returning(table.c.count)

    def take(self, rule: Rule, bucket: str, cost: int, now: float) -> Decision:
        index, elapsed = divmod(now, rule.window)
        index = int(index)
        expires = int(now) + 2 * rule.window + 1
        self._calls += 1
        with self.db.transaction() as s:
            current = int(s.execute(self._upsert(bucket, index, cost, expires)).scalar_one())
            previous = s.execute(
                select(RateLimitCounter.count).where(RateLimitCounter.bucket == bucket, RateLimitCounter.window_index == index - 1)
            ).scalar_one_or_none() or 0
            if _estimate(previous, current, elapsed, rule.window) > rule.limit:
                row = s.get(RateLimitCounter, (bucket, index))
                assert row is not None
                row.count -= cost
                return Decision(False, 0, _retry_after(previous, current - cost, elapsed, rule, cost))
            if self._calls % self.sweep_every == 0:
                s.execute(delete(RateLimitCounter).where(RateLimitCounter.expires_at < int(now)))
        return Decision(True, int(rule.limit - _estimate(previous, current, elapsed, rule.window)), 0)

    def reset(self, rule: Rule, bucket: str) -> None:
        with self.db.transaction() as s:
            s.execute(delete(RateLimitCounter).where(RateLimitCounter.bucket == bucket))


class Limiter:
    """Rules resolved against the overrides, keys hashed, decisions turned into problems."""

    def __init__(
        self,
        backend: Backend,
        *,
        overrides: dict[str, tuple[int, int] | None] | None = None,
        hash_key: Callable[[str], str] | None = None,
        now: Callable[[], float] | None = None,
    ) -> None:
        self.backend = backend
        self.overrides = overrides or {}
        if hash_key is None:
            salt = secrets.token_bytes(32)  # per process: the memory backend never shares keys

            def hash_key(value: str) -> str:
                return hmac.new(salt, value.encode(), hashlib.sha256).hexdigest()

        self._hash_key = hash_key
        self._now = now or (lambda: clock.now().timestamp())
        self.observers: list[Callable[[Rule, Decision], None]] = []  # metrics hook

    def effective(self, rule: Rule) -> Rule | None:
        """The rule as configured (``None``: switched off)."""
        if rule.area not in self.overrides:
            return rule
        value = self.overrides[rule.area]
        return None if value is None else Rule(rule.area, value[0], value[1])

    def bucket(self, rule: Rule, key: str) -> str:
        return self._hash_key(f"{rule.area}\x00{key}")[:64]

    def check(self, rule: Rule, key: str, *, cost: int = 1) -> Decision:
        """Count one call (or ``cost``); never raises for the limit (use :meth:`hit` for that)."""
        if cost < 1:
            raise ValueError("cost must be at least 1")
        effective = self.effective(rule)
        if effective is None:
            return Decision(True, rule.limit, 0)
        decision = self.backend.take(effective, self.bucket(effective, key), cost, self._now())
        for observer in self.observers:
            observer(effective, decision)
        return decision

    def hit(self, rule: Rule, key: str, *, cost: int = 1) -> Decision:
        decision = self.check(rule, key, cost=cost)
        if not decision.allowed:
            raise Problem(
                Kind.RATE_LIMITED,
                f"rate_limited.{rule.area}",
                f"too many requests; retry in {decision.retry_after} s",
                headers={"Retry-After": str(decision.retry_after)},
                extra={"retry_after": decision.retry_after},
            )
        return decision

    def reset(self, rule: Rule, key: str) -> None:
        effective = self.effective(rule)
        if effective is not None:
            self.backend.reset(effective, self.bucket(effective, key))


def limiter(rt: Runtime) -> Limiter:
    """The runtime's limiter, built once per process from the settings."""
    found = rt.extensions.get(EXTENSION_KEY)
    if found is None:
        settings = rt.settings
        overrides = parse_overrides(list(getattr(settings, "rate_limits", [])))
        if getattr(settings, "rate_limit_backend", "memory") == "database":
            vault = rt.vault
            found = Limiter(
                DatabaseBackend(rt.db),
                overrides=overrides,
                hash_key=lambda value: vault.blind_index(value, context="ratelimit"),
            )
        else:
            found = Limiter(MemoryBackend(), overrides=overrides)
        found = rt.extensions.setdefault(EXTENSION_KEY, found)
    return found


def hit(rt: Runtime, rule: Rule, key: str, *, cost: int = 1) -> Decision:
    """Count a call against ``rule`` for ``key``; raise a 429 problem when over the limit."""
    return limiter(rt).hit(rule, key, cost=cost)


def reset(rt: Runtime, rule: Rule, key: str) -> None:
    limiter(rt).reset(rule, key)


def per_ip(request: Request, rt: Runtime) -> str:
    """The key for per-address limits: the client address (``X-Forwarded-For`` from trusted proxies)."""
    from core.web import client_ip

    return client_ip(request, rt.settings.trusted_proxies)


def limited(rule: Rule) -> Callable[..., None]:
    """A route dependency limiting by client address: ``Depends(limited(TSA_PER_IP))``."""

    def dependency(request: Request) -> None:
        rt = request.app.state.runtime
        hit(rt, rule, per_ip(request, rt))

    dependency.eauth_rate_limit = rule  # type: ignore[attr-defined]
    return dependency

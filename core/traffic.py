"""Daily traffic counts (OCSP responses, signature verifications) for the console's dashboard.

Nothing here touches the database on a request's path. A busy path either calls :func:`count`
(an increment under a per-process lock) or keeps its own plain integer that only ever grows and
registers a reader for it with :func:`watch` (the OCSP responder: ``ResponderState.answered``, one
``+= 1`` per request). One daemon thread per process — started by :func:`start`, stopped (with a
last flush) by :func:`stop` — adds what accumulated to ``traffic_daily`` (day, kind, count) every
``FLUSH_SECONDS`` with one upsert per kind, so any number of worker processes add up. Days are UTC
dates, as on the dashboard's issuance chart.

A count made just before midnight may be filed under the next day (at most one flush interval), and
a process killed without ``stop`` loses at most one interval: fine for a traffic chart, which is all
this is for (the Prometheus counters in ``core.metrics`` remain the operational figures).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date

from sqlalchemy import BigInteger, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from core import clock
from core.db import Base
from core.runtime import Runtime

log = logging.getLogger("eauth.traffic")

EXTENSION_KEY = "core.traffic"
FLUSH_SECONDS = 30.0
KINDS = ("ocsp", "verifications")


class TrafficDaily(Base):
    """Requests of one kind served on one UTC day, summed over every process (``core_0003``)."""

    __tablename__ = "traffic_daily"

    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD (UTC)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))


@dataclass
class Tally:
    """This process's counts not yet written, and the readers of counters kept elsewhere."""

    counts: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    watched: dict[str, tuple[Callable[[], int], int]] = field(default_factory=dict)  # kind → (read, value at last flush)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def add(self, kind: str, n: int = 1) -> None:
        with self.lock:
            self.counts[kind] = self.counts.get(kind, 0) + n

    def take(self) -> dict[str, int]:
        """What accumulated since the last call (and forget it)."""
        with self.lock:
            out, self.counts = self.counts, {}
            for kind, (read, last) in list(self.watched.items()):
                now = read()
                grown = now - last if now >= last else now  # smaller: the counter was recreated
                if grown:
                    out[kind] = out.get(kind, 0) + grown
                self.watched[kind] = (read, now)
        return {k: v for k, v in out.items() if v > 0}

    def give_back(self, counts: dict[str, int]) -> None:
        for kind, n in counts.items():
            self.add(kind, n)


def of(rt: Runtime) -> Tally:
    found = rt.extensions.get(EXTENSION_KEY)
    if found is None:
        found = rt.extensions.setdefault(EXTENSION_KEY, Tally())
    return found


def count(rt: Runtime, kind: str, n: int = 1) -> None:
    """Count ``n`` requests of ``kind`` (no I/O: written by the flusher)."""
    of(rt).add(kind, n)


def watch(rt: Runtime, kind: str, read: Callable[[], int]) -> None:
    """Flush the growth of a counter kept elsewhere (``read`` returns its running total)."""
    tally = of(rt)
    with tally.lock:
        if kind not in tally.watched:  # an app made again on the same runtime keeps the baseline
            tally.watched[kind] = (read, read())


def _upsert(db: Session, day: str, kind: str, n: int) -> None:
    table = TrafficDaily.__table__
    if db.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(table).values(day=day, kind=kind, count=n)
    db.execute(stmt.on_conflict_do_update(index_elements=[table.c.day, table.c.kind], set_={"count": table.c.count + n}))


def flush(rt: Runtime) -> dict[str, int]:
    """Write what this process counted since the last flush; returns it. On a database failure the
    counts are kept for the next attempt."""
    tally = of(rt)
    pending = tally.take()
    if not pending:
        return {}
    day = clock.now().astimezone(UTC).date().isoformat()
    try:
        with rt.db.transaction() as db:
            for kind in sorted(pending):
                _upsert(db, day, kind, pending[kind])
    except Exception:
        tally.give_back(pending)
        raise
    return pending


def start(rt: Runtime) -> None:
    """Start this process's flusher thread (once per runtime)."""
    tally = of(rt)
    with tally.lock:
        if tally.thread is not None:
            return
        tally.stop.clear()

        def run() -> None:
            while not tally.stop.wait(FLUSH_SECONDS):
                try:
                    flush(rt)
                except Exception:  # noqa: BLE001 - kept for the next round; the chart just lags
                    log.warning("traffic counts not written yet (database unavailable)", exc_info=True)

        tally.thread = threading.Thread(target=run, name="traffic-flush", daemon=True)
        tally.thread.start()


def stop(rt: Runtime) -> None:
    """Stop the flusher and write what is left."""
    tally = rt.extensions.get(EXTENSION_KEY)
    if tally is None:
        return
    tally.stop.set()
    if tally.thread is not None:
        tally.thread.join(timeout=5)
        tally.thread = None
    try:
        flush(rt)
    except Exception:  # noqa: BLE001 - shutting down: nothing more to do
        log.warning("last traffic counts lost at shutdown", exc_info=True)


def daily(db: Session, *, kinds: Iterable[str], since: date) -> dict[str, dict[str, int]]:
    """``{kind: {YYYY-MM-DD: count}}`` from ``since`` (inclusive) on."""
    kinds = tuple(kinds)
    out: dict[str, dict[str, int]] = {k: {} for k in kinds}
    rows = db.execute(select(TrafficDaily.day, TrafficDaily.kind, TrafficDaily.count).where(TrafficDaily.kind.in_(kinds), TrafficDaily.day >= since.isoformat()))
    for day, kind, n in rows:
        out[kind][day] = int(n)
    return out

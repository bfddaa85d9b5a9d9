"""Bulk enrolment: many CSRs, the same checks and records as single issuance.

Items are cut into batches; each batch goes through :func:`ca.service.issue_batch` (two commits per
batch instead of two per certificate). A bad item is a failed result, never an aborted batch. With
``workers > 1`` batches run in separate processes (spawned, each with its own token sessions and
database connections): python-pkcs11 holds the GIL during token calls and pkilint is pure Python,
so processes — not threads — add throughput.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import multiprocessing
import queue
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ca import service
from ca.service import BulkItem, BulkResult
from core.errors import Problem
from core.runtime import Runtime
from core.security import Actor
from core.settings import Settings

DEFAULT_BATCH = 100

log = logging.getLogger("eauth.ca")


@dataclass(frozen=True)
class BulkSummary:
    total: int
    issued: int
    failed: int


def _batches(items: Sequence[BulkItem], size: int) -> Iterator[Sequence[BulkItem]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def run_batch(rt: Runtime, actor: Actor, profile: str, batch: Sequence[BulkItem], ca_name: str | None = None) -> list[BulkResult]:
    """One batch in its own transaction. A failure outside any single item (database down, a
    commit refused) reports every item of the batch as failed; rows already reserved stay
    ``pending`` and are retired at start-up, so nothing is half-written."""
    try:
        with rt.db.transaction() as db:
            return service.issue_batch(rt, db, actor, profile=profile, items=batch, ca_name=ca_name)
    except Problem as exc:
        return [BulkResult(item.ref, False, code=exc.code, detail=exc.detail) for item in batch]
    except Exception:  # noqa: BLE001 - the run goes on with the next batch; this one is reported, not lost
        incident = uuid.uuid4().hex[:12]
        log.exception("bulk batch of %d failed unexpectedly (incident %s)", len(batch), incident)
        detail = f"unexpected error in this item's batch (incident {incident} in the log)"
        return [BulkResult(item.ref, False, code="ca.batch_failed", detail=detail) for item in batch]


def issue_bulk(
    rt: Runtime,
    actor: Actor,
    *,
    profile: str,
    items: Sequence[BulkItem],
    batch_size: int = DEFAULT_BATCH,
    ca_name: str | None = None,
    on_result: Callable[[BulkResult], None] | None = None,
) -> BulkSummary:
    issued = failed = 0
    for batch in _batches(items, batch_size):
        for result in run_batch(rt, actor, profile, batch, ca_name):
            issued += result.ok
            failed += not result.ok
            if on_result:
                on_result(result)
    return BulkSummary(len(items), issued, failed)


# -- processes ----------------------------------------------------------------------------------------

_worker_rt: Runtime | None = None


def _work(actor: Actor, profile: str, batch: Sequence[BulkItem], ca_name: str | None) -> list[BulkResult]:
    assert _worker_rt is not None
    return run_batch(_worker_rt, actor, profile, batch, ca_name)


def issue_bulk_parallel(
    settings: Settings,
    build_runtime: Callable[[Settings], Runtime],
    actor: Actor,
    *,
    profile: str,
    items: Sequence[BulkItem],
    workers: int,
    batch_size: int = DEFAULT_BATCH,
    ca_name: str | None = None,
    on_result: Callable[[BulkResult], None] | None = None,
    rt: Runtime | None = None,
) -> BulkSummary:
    """Batches spread over ``workers`` processes. ``build_runtime`` (a picklable, module-level
    function, e.g. ``eauth.runtime.build_runtime``) builds each spawned worker's runtime: the CA
    layer does not import the composition root.

    With ``rt`` (the caller's runtime) the calling process is one of the ``workers``: it issues
    batches itself from the first moment, while ``workers - 1`` processes are spawned and join in
    when they are ready — the seconds a spawned interpreter needs to start are not lost, and no core
    idles behind a parent that only waits. Batches are handed out as they are needed (at most two
    waiting per spawned worker), so whoever is free takes the next one."""
    if rt is not None and workers <= 1:
        return issue_bulk(rt, actor, profile=profile, items=items, batch_size=batch_size, ca_name=ca_name, on_result=on_result)
    issued = failed = 0

    def deliver(results: list[BulkResult]) -> None:
        nonlocal issued, failed
        for result in results:
            issued += result.ok
            failed += not result.ok
            if on_result:
                on_result(result)

    pending = collections.deque(list(b) for b in _batches(items, batch_size))
    spawned = workers - 1 if rt is not None else workers
    finished: queue.SimpleQueue[concurrent.futures.Future[list[BulkResult]]] = queue.SimpleQueue()
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=spawned, mp_context=ctx, initializer=_init, initargs=(build_runtime, settings)) as pool:
        in_flight = 0

        def feed() -> None:
            nonlocal in_flight
            while pending and in_flight < 2 * spawned:
                fut = pool.submit(_work, actor, profile, pending.popleft(), ca_name)
                fut.add_done_callback(finished.put)
                in_flight += 1

        def collect(block: bool) -> None:
            nonlocal in_flight
            while in_flight:
                try:
                    fut = finished.get(block=block)
                except queue.Empty:
                    return
                in_flight -= 1
                deliver(fut.result())
                feed()
                block = False

        feed()
        while pending or in_flight:
            collect(block=False)
            if rt is not None and pending:
                deliver(run_batch(rt, actor, profile, pending.popleft(), ca_name))
            else:
                collect(block=True)
    return BulkSummary(len(items), issued, failed)


def _init(build_runtime: Callable[[Settings], Runtime], settings: Settings) -> None:
    global _worker_rt
    _worker_rt = build_runtime(settings)
    from ca import lint

    lint.warm()  # the validators, before the first batch arrives
    import atexit

    atexit.register(_close)


def _close() -> None:
    if _worker_rt is not None:
        try:
            _worker_rt.close()
        except Exception:  # noqa: BLE001 - best effort at process exit
            pass


def results_as_rows(results: Sequence[BulkResult]) -> list[dict[str, Any]]:
    return [{"item": r.ref, "ok": r.ok, "serial": r.serial, "code": r.code, "detail": r.detail} for r in results]

"""Group commit for single issuances that arrive at the same time (the certificates API).

Each API request is one issuance, and on its own it pays for two transactions (serial reserved,
certificate stored) plus the audit chain's head lock — about as much CPU as the lint. When several
requests are in flight in one process, the first to get here (the *combiner*) takes every request
waiting at that moment and runs them together through :func:`ca.service.issue_many`: one commit of
their ``pending`` serials, then each linted and signed on its own, then one commit of their
certificates, maintenance records and audit entries. Nothing waits for a group to fill: a request
that arrives alone is a group of one, so latency never grows by a timer.

Per certificate nothing changes: its own serial committed ``pending`` before anything is signed, its
own lint of its exact TBS, its own problem document if it is refused, its own audit entry. What is
shared is only the commit — and so a failure of the *commit* (database down) fails every request of
that group, each with the same problem, while their ``pending`` rows are retired at start-up like any
other interrupted issuance.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future

from ca import service
from ca.service import CertificateRequest, IssuedCertificate
from core.runtime import Runtime

MAX_GROUP = 32  # requests per group; the rest wait for the next combiner


class GroupCommit:
    def __init__(self, rt: Runtime, *, max_group: int = MAX_GROUP) -> None:
        self._rt = rt
        self._max = max_group
        self._waiting: list[tuple[CertificateRequest, Future[IssuedCertificate]]] = []
        self._mutex = threading.Lock()  # guards _waiting (held only to append or take)
        self._combiner = threading.Lock()  # one group at a time in this process
        self.groups = 0  # groups run so far (tests, metrics)
        self.requests = 0

    def issue(self, req: CertificateRequest) -> IssuedCertificate:
        """Issue ``req`` (alone or with whatever else is waiting); raises its problem."""
        fut: Future[IssuedCertificate] = Future()
        with self._mutex:
            self._waiting.append((req, fut))
        while not fut.done():
            with self._combiner:
                if fut.done():  # another combiner took it meanwhile
                    break
                with self._mutex:
                    group, self._waiting = self._waiting[: self._max], self._waiting[self._max :]
                if group:
                    self._run(group)
        return fut.result()

    def _run(self, group: list[tuple[CertificateRequest, Future[IssuedCertificate]]]) -> None:
        self.groups += 1
        self.requests += len(group)
        by_ca: dict[str | None, list[tuple[CertificateRequest, Future[IssuedCertificate]]]] = {}
        for req, fut in group:
            by_ca.setdefault(req.ca_name, []).append((req, fut))
        for part in by_ca.values():  # one transaction per CA: a failure never spans two of them
            try:
                with self._rt.db.transaction() as db:
                    outcomes = service.issue_many(self._rt, db, [req for req, _ in part])
            except BaseException as exc:  # noqa: BLE001 - every request of the group hears why
                for _, fut in part:
                    if not fut.done():
                        fut.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, fut), outcome in zip(part, outcomes, strict=True):
                if isinstance(outcome, Exception):
                    fut.set_exception(outcome)
                else:
                    fut.set_result(outcome)


_create_lock = threading.Lock()


def for_runtime(rt: Runtime) -> GroupCommit:
    """The process's group committer for ``rt`` (kept in ``rt.extensions``, created on first use)."""
    gc = rt.extensions.get("ca.groupcommit")
    if gc is None:
        with _create_lock:
            gc = rt.extensions.get("ca.groupcommit")
            if gc is None:
                gc = rt.extensions["ca.groupcommit"] = GroupCommit(rt)
    return gc


def issue(rt: Runtime, req: CertificateRequest) -> IssuedCertificate:
    return for_runtime(rt).issue(req)

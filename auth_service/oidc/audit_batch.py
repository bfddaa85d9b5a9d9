"""Group commit for the audit entries of client_credentials issuance.

Every token issued to a client is audited, and the token is returned only after its entry is
committed (no token without its record). Doing that one transaction per token serialises every
issuance on the audit chain's head row; instead, requests hand their entry to one writer thread per
process, which appends everything that queued up meanwhile in a single transaction and then
releases the waiting requests — PostgreSQL's own group-commit idea applied to the chain. Latency
stays one commit; throughput no longer pays one commit per token.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import Any

from core.errors import Kind, Problem
from core.runtime import Runtime
from core.security import Actor

log = logging.getLogger("eauth.sso.audit")

MAX_BATCH = 500
WAIT_SECONDS = 30.0


@dataclass
class _Pending:
    actor: Actor
    action: str
    target: str
    details: dict[str, Any]
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class AuditBatcher:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._queue: queue.Queue[_Pending] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="sso-audit-batch", daemon=True)
        self._thread.start()

    @classmethod
    def of(cls, rt: Runtime) -> AuditBatcher:
        found = rt.extensions.get("auth_service.audit_batch")
        if found is None:
            found = rt.extensions.setdefault("auth_service.audit_batch", cls(rt))
        return found

    def record(self, *, actor: Actor, action: str, target: str, details: dict[str, Any]) -> None:
        """Append one entry; returns once it is committed (raises if the commit failed)."""
        item = _Pending(actor, action, target, details)
        self._queue.put(item)
        if not item.done.wait(WAIT_SECONDS):
            raise Problem(Kind.UNAVAILABLE, "sso.audit_timeout", "the audit log did not confirm in time; retry")
        if item.error is not None:
            raise Problem(Kind.UNAVAILABLE, "sso.audit_failed", "the audit log could not be written; retry")

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            error: BaseException | None = None
            try:
                with self._rt.db.transaction() as db:
                    self._rt.audit.record_many(db, [{"actor": i.actor, "action": i.action, "target": i.target, "details": i.details} for i in batch])
            except BaseException as exc:  # noqa: BLE001 - reported to every waiting request
                log.exception("audit batch of %d entries failed", len(batch))
                error = exc
            for item in batch:
                item.error = error
                item.done.set()


def record_issuance(rt: Runtime, client: Any, *, jti: str, scope: str) -> None:
    AuditBatcher.of(rt).record(
        actor=Actor("client", client.client_id, client.name),
        action="sso.token.issue",
        target=f"client:{client.client_id}",
        details={"grant_type": "client_credentials", "scope": scope, "jti": jti},
    )

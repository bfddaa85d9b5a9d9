"""ca.bulk.issue_bulk_parallel with the caller's runtime: the calling process issues batches too while
the spawned worker starts; every item is reported exactly once, bad ones skipped with their code."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ca import bulk, service
from ca.models import Certificate
from tests.ca.conftest import ACTOR, DATA, Subjects, make_csr


@pytest.mark.slow
def test_parallel_bulk_with_the_calling_process_as_a_worker(rt, subjects: Subjects) -> None:  # type: ignore[no-untyped-def]
    from eauth.runtime import build_runtime

    items = [service.BulkItem(f"good-{i}", make_csr(), subjects.person_id) for i in range(9)]
    items.insert(4, service.BulkItem("garbage", (DATA / "garbage.csr").read_bytes(), subjects.person_id))
    items.append(service.BulkItem("stranger", make_csr(), "0" * 32))
    seen: list[service.BulkResult] = []
    summary = bulk.issue_bulk_parallel(rt.settings, build_runtime, ACTOR, profile="citizen", items=items, workers=2, batch_size=2, on_result=seen.append, rt=rt)
    assert (summary.total, summary.issued, summary.failed) == (11, 9, 2)
    assert sorted(r.ref for r in seen) == sorted(i.ref for i in items)  # each exactly once
    codes = {r.ref: r.code for r in seen if not r.ok}
    assert codes == {"garbage": "csr.malformed", "stranger": "ca.unknown_subject"}
    serials = [r.serial for r in seen if r.ok]
    with rt.db.read() as db:
        rows = db.execute(select(Certificate).where(Certificate.serial.in_(serials))).scalars().all()
    assert len(rows) == 9 and all(r.status == "issued" and r.der for r in rows)
    assert rt.audit.verify(rt.db).ok


def test_an_unexpected_error_fails_its_item_or_batch_only(rt, subjects: Subjects, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    """A bug or an unforeseen input in one item (here injected: ``resolve_subject`` raising for one
    subject) fails that item with a code and an incident id, never the others; an unexpected error
    for a whole batch fails that batch and the run goes on with the next one."""
    real_resolve, real_issue = service.resolve_subject, service._issue_drafts

    def resolve(rt_, db, prof, subject_id, **kw):  # type: ignore[no-untyped-def]
        if subject_id == "f" * 32:
            raise RuntimeError("injected fault with internals")
        return real_resolve(rt_, db, prof, subject_id, **kw)

    monkeypatch.setattr(service, "resolve_subject", resolve)
    items = [service.BulkItem("a", make_csr(), subjects.person_id), service.BulkItem("b", make_csr(), "f" * 32), service.BulkItem("c", make_csr(), subjects.person_id)]
    seen: list[service.BulkResult] = []
    summary = bulk.issue_bulk(rt, ACTOR, profile="citizen", items=items, on_result=seen.append)
    assert (summary.total, summary.issued, summary.failed) == (3, 2, 1)
    failed = next(r for r in seen if not r.ok)
    assert failed.ref == "b" and failed.code == "ca.item_failed" and "internals" not in (failed.detail or "")
    incident = (failed.detail or "").split("incident ")[1].split()[0]
    assert any(incident in rec.getMessage() and rec.exc_info for rec in caplog.records)

    calls = {"n": 0}

    def issue_once_broken(*args, **kw):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("injected batch fault")
        return real_issue(*args, **kw)

    monkeypatch.setattr(service, "_issue_drafts", issue_once_broken)
    items = [service.BulkItem(f"x{i}", make_csr(), subjects.person_id) for i in range(4)]
    seen.clear()
    summary = bulk.issue_bulk(rt, ACTOR, profile="citizen", items=items, batch_size=2, on_result=seen.append)
    assert (summary.total, summary.issued, summary.failed) == (4, 2, 2)
    assert {r.ref: r.code for r in seen if not r.ok} == {"x0": "ca.batch_failed", "x1": "ca.batch_failed"}
    ok = [r.serial for r in seen if r.ok]
    with rt.db.read() as db:
        rows = db.execute(select(Certificate).where(Certificate.serial.in_(ok))).scalars().all()
    assert len(rows) == 2 and all(r.status == "issued" for r in rows)
    assert rt.audit.verify(rt.db).ok

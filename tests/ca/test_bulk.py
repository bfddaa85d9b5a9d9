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

"""The audit chain detects an altered, deleted or inserted entry at the exact entry."""

from __future__ import annotations

from sqlalchemy import delete, select, update

from core.audit import AuditCheckpoint, AuditEntry, AuditHead, entry_hash
from core.security import Actor


def _append(rt, n: int) -> None:  # type: ignore[no-untyped-def]
    for i in range(n):
        with rt.db.transaction() as s:
            rt.audit.record(s, actor=Actor.cli(), action="test.event", target=f"t:{i}", details={"i": i, "phone": "13812345678"})


def test_chain_verifies_and_checkpoints_are_signed(fresh_rt) -> None:  # type: ignore[no-untyped-def]
    rt = fresh_rt
    _append(rt, 120)
    result = rt.audit.verify(rt.db)
    assert result.ok, result
    assert result.checkpoints >= 2  # checkpoint_every=50 in tests
    with rt.db.read() as s:
        details = [e.details for e in s.execute(select(AuditEntry).where(AuditEntry.action == "test.event")).scalars()]
    assert all("13812345678" not in d and "138****5678" in d for d in details)


def test_altered_entry_is_found_exactly(fresh_rt) -> None:  # type: ignore[no-untyped-def]
    rt = fresh_rt
    _append(rt, 10)
    with rt.db.read() as s:
        target = s.execute(select(AuditEntry).where(AuditEntry.action == "test.event").order_by(AuditEntry.seq).offset(4)).scalars().first()
        seq = target.seq
    with rt.db.transaction() as s:
        s.execute(update(AuditEntry).where(AuditEntry.seq == seq).values(outcome="failure"))
    result = rt.audit.verify(rt.db)
    assert not result.ok and result.first_broken_seq == seq and "altered" in (result.reason or "")


def test_deleted_entry_is_found_exactly(fresh_rt) -> None:  # type: ignore[no-untyped-def]
    rt = fresh_rt
    _append(rt, 10)
    with rt.db.read() as s:
        seq = s.execute(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).offset(3)).scalars().first()
    with rt.db.transaction() as s:
        s.execute(delete(AuditEntry).where(AuditEntry.seq == seq))
    result = rt.audit.verify(rt.db)
    assert not result.ok and result.first_broken_seq == seq and "deleted" in (result.reason or "")


def test_inserted_entry_is_found_exactly(fresh_rt) -> None:  # type: ignore[no-untyped-def]
    """A forger who renumbers the tail to insert a plausible entry still breaks the link after it."""
    rt = fresh_rt
    _append(rt, 6)
    with rt.db.transaction() as s:
        rows = list(s.execute(select(AuditEntry).order_by(AuditEntry.seq.desc())).scalars())
        last, before = rows[0], rows[1]
        # move the last entry one up and put a forged entry (correctly hashed on its predecessor) in its place
        forged_seq = last.seq
        s.execute(delete(AuditEntry).where(AuditEntry.seq == last.seq))
        s.flush()
        s.add(AuditEntry(seq=last.seq + 1, at=last.at, actor=last.actor, action=last.action, target=last.target,
                         outcome=last.outcome, details=last.details, prev_hash=last.prev_hash, hash=last.hash))
        fields = dict(seq=forged_seq, at=before.at, actor="operator:mallory", action="ca.cert.issue", target="cert:1", outcome="success", details="{}", prev_hash=before.hash)
        s.add(AuditEntry(**fields, hash=entry_hash(**fields)))
        s.execute(update(AuditHead).values(seq=last.seq + 1))
    result = rt.audit.verify(rt.db)
    assert not result.ok and result.first_broken_seq == forged_seq + 1


def test_rewritten_chain_fails_checkpoint_signature(fresh_rt) -> None:  # type: ignore[no-untyped-def]
    """Rehashing the whole chain after an edit is caught by the HSM-signed checkpoints."""
    rt = fresh_rt
    _append(rt, 60)
    with rt.db.transaction() as s:
        rows = list(s.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars())
        rows[2].outcome = "failure"
        prev = rows[1].hash
        for row in rows[2:]:
            row.prev_hash = prev
            row.hash = entry_hash(seq=row.seq, at=row.at, actor=row.actor, action=row.action, target=row.target, outcome=row.outcome, details=row.details, prev_hash=prev)
            prev = row.hash
        s.execute(update(AuditHead).values(hash=prev))
        first_cp = s.execute(select(AuditCheckpoint).order_by(AuditCheckpoint.seq)).scalars().first()
        first_cp_seq = first_cp.seq
    result = rt.audit.verify(rt.db)
    assert not result.ok and result.first_broken_seq == first_cp_seq and "checkpoint" in (result.reason or "")


def test_record_and_record_many_interleaved_in_one_session_keep_one_chain(fresh_rt) -> None:  # type: ignore[no-untyped-def]
    """record() (ORM head) and record_many() (Core statements) mixed in one transaction, across a
    checkpoint boundary: one unbroken chain, the head at the last entry, checkpoints signed."""
    rt = fresh_rt
    _append(rt, 3)
    many = [{"actor": Actor.cli(), "action": "test.many", "target": f"m:{i}", "details": {"i": i}} for i in range(60)]
    with rt.db.transaction() as s:
        first = rt.audit.record(s, actor=Actor.cli(), action="test.event", target="before")
        batch = rt.audit.record_many(s, many)
        last = rt.audit.record(s, actor=Actor.cli(), action="test.event", target="after")
    assert [r.seq for r in batch] == list(range(first.seq + 1, first.seq + 61)) and last.seq == first.seq + 61
    with rt.db.read() as s:
        head = s.get(AuditHead, 1)
        assert (head.seq, head.hash) == (last.seq, last.hash)
    result = rt.audit.verify(rt.db)
    assert result.ok and result.entries == last.seq and result.checkpoints >= 1, result


def test_checkpoint_due_while_the_token_fails_is_skipped_not_the_entry(fresh_rt, caplog) -> None:  # type: ignore[no-untyped-def]
    """The entry that falls on a checkpoint is committed even when the token cannot sign (it is
    often the entry recording that very failure); the checkpoint is skipped, logged and counted, and
    the next one — here an explicit ``checkpoint`` once the token is back — covers the chain."""
    from core import metrics
    from hsm.errors import HsmError, HsmErrorKind

    rt = fresh_rt
    every = rt.audit.checkpoint_every
    with rt.db.read() as s:
        head = s.get(AuditHead, 1)
        start = head.seq if head else 0
    _append(rt, every - start % every - 1)  # the next entry falls on a checkpoint

    def fail_sign(operation: str) -> None:
        if operation == "sign":
            raise HsmError(HsmErrorKind.DEVICE_ERROR, "injected: CKR_DEVICE_ERROR")

    skipped = metrics.AUDIT_CHECKPOINTS_SKIPPED._value.get()
    rt.token.fault_hook = fail_sign
    try:
        with rt.db.transaction() as s:
            due = rt.audit.record(s, actor=Actor.cli(), action="test.event", target="t:due")
        with rt.db.transaction() as s:  # record_many on a boundary too
            many = rt.audit.record_many(s, [{"actor": Actor.cli(), "action": "test.many", "target": f"m:{i}"} for i in range(every)])
    finally:
        rt.token.fault_hook = None
    assert due.seq % every == 0 and any(r.seq % every == 0 for r in many)
    with rt.db.read() as s:
        assert s.get(AuditEntry, due.seq) is not None and s.get(AuditCheckpoint, due.seq) is None
    assert metrics.AUDIT_CHECKPOINTS_SKIPPED._value.get() == skipped + 2
    assert any("not signed" in r.getMessage() and f"entry {due.seq}" in r.getMessage() for r in caplog.records)
    assert rt.audit.checkpoint(rt.db) == many[-1].seq  # the token is back: the head is signed
    result = rt.audit.verify(rt.db)
    assert result.ok, result


def test_a_skipped_checkpoint_is_owed_and_signed_at_a_later_entry(fresh_rt, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from core import audit
    from hsm.errors import HsmError, HsmErrorKind

    rt = fresh_rt
    monkeypatch.setattr(audit, "CHECKPOINT_RETRY_SECONDS", 0.0)
    every = rt.audit.checkpoint_every
    with rt.db.read() as s:
        head = s.get(AuditHead, 1)
        start = head.seq if head else 0
    _append(rt, every - start % every - 1)
    calls = {"sign": 0}

    def fail_sign(operation: str) -> None:
        if operation == "sign":
            calls["sign"] += 1
            raise HsmError(HsmErrorKind.DEVICE_ERROR, "injected")

    rt.token.fault_hook = fail_sign
    try:
        with rt.db.transaction() as s:
            skipped = rt.audit.record(s, actor=Actor.cli(), action="test.event", target="t:skipped")
        with rt.db.transaction() as s:  # still down: tried again (retry interval 0 here), still committed
            still = rt.audit.record(s, actor=Actor.cli(), action="test.event", target="t:still")
    finally:
        rt.token.fault_hook = None
    assert calls["sign"] == 2
    with rt.db.transaction() as s:  # back: the next entries (one record_many) owe exactly one checkpoint
        back = rt.audit.record_many(s, [{"actor": Actor.cli(), "action": "test.many", "target": f"b:{i}"} for i in range(3)])
    with rt.db.read() as s:
        seqs = set(s.execute(select(AuditCheckpoint.seq).where(AuditCheckpoint.seq >= skipped.seq)).scalars())
    assert seqs == {back[0].seq}, (skipped.seq, still.seq, seqs)
    with rt.db.transaction() as s:  # paid: an ordinary entry signs nothing
        later = rt.audit.record(s, actor=Actor.cli(), action="test.event", target="t:later")
    with rt.db.read() as s:
        assert s.get(AuditCheckpoint, later.seq) is None or later.seq % every == 0
    assert rt.audit.verify(rt.db).ok


def test_explicit_checkpoint_still_fails_when_the_token_fails(fresh_rt) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from hsm.errors import HsmError, HsmErrorKind

    rt = fresh_rt
    _append(rt, 1)

    def fail_sign(operation: str) -> None:
        if operation == "sign":
            raise HsmError(HsmErrorKind.DEVICE_ERROR, "injected")

    rt.token.fault_hook = fail_sign
    try:
        with pytest.raises(HsmError):
            rt.audit.checkpoint(rt.db)
    finally:
        rt.token.fault_hook = None

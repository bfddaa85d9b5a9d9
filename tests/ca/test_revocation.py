"""Status changes: revoke / suspend / resume, their conflicts, audit, and the OCSP response that
changes with them in the same transaction."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.x509 import ocsp as x509_ocsp
from sqlalchemy import select

from ca import ocsp, revocation, service
from ca.models import Certificate, OcspResponse, RevocationState
from core.audit import AuditEntry
from core.errors import Kind, Problem
from tests.ca.conftest import ACTOR, Subjects, make_csr


def issue(rt, subjects: Subjects) -> str:  # type: ignore[no-untyped-def]
    with rt.db.transaction() as db:
        return service.issue_certificate(rt, db, ACTOR, profile="citizen", csr=make_csr(), subject_id=subjects.person_id).serial


def stored_response(rt, serial: str) -> x509_ocsp.OCSPResponse:  # type: ignore[no-untyped-def]
    with rt.db.read() as db:
        return x509_ocsp.load_der_ocsp_response(ocsp.response_for(rt, db, serial))


def test_revoke_records_reason_operator_time_and_audit(rt, subjects: Subjects) -> None:  # type: ignore[no-untyped-def]
    serial = issue(rt, subjects)
    invalid_since = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    with rt.db.transaction() as db:
        state_before = db.get(RevocationState, "public-service")
        changes_before = state_before.changes if state_before else 0
        change = revocation.revoke(rt, db, ACTOR, serial=serial.upper(), reason="key_compromise", invalidity_date=invalid_since, comment="lost token")
    assert change.status == "revoked" and change.previous_status == "issued"
    assert change.reason == "keyCompromise" and change.changed_by == ACTOR.ref
    with rt.db.read() as db:
        row = db.get(Certificate, serial)
        assert (row.status, row.revocation_reason, row.revoked_by) == ("revoked", "keyCompromise", ACTOR.ref)
        assert row.invalidity_date == invalid_since.isoformat()
        assert row.revoked_at == row.status_changed_at
        assert db.get(RevocationState, "public-service").changes == changes_before + 1
        entry = db.execute(select(AuditEntry).where(AuditEntry.target == f"certificate:{serial}", AuditEntry.action == "ca.certificate.revoke")).scalar_one()
        details = json.loads(entry.details)
        assert details["reason"] == "keyCompromise" and details["invalidity_date"] == invalid_since.isoformat()
    # The stored OCSP response changed in the same transaction.
    resp = stored_response(rt, serial)
    assert resp.certificate_status == x509_ocsp.OCSPCertStatus.REVOKED
    assert resp.revocation_reason == x509.ReasonFlags.key_compromise
    assert resp.revocation_time_utc == datetime.fromisoformat(row.revoked_at)


def test_revoking_twice_is_a_conflict(rt, subjects: Subjects) -> None:  # type: ignore[no-untyped-def]
    serial = issue(rt, subjects)
    with rt.db.transaction() as db:
        revocation.revoke(rt, db, ACTOR, serial=serial, reason="superseded")
    with pytest.raises(Problem) as err, rt.db.transaction() as db:
        revocation.revoke(rt, db, ACTOR, serial=serial, reason="keyCompromise")
    assert err.value.kind is Kind.CONFLICT and err.value.code == "certificate.already_revoked"
    with rt.db.read() as db:
        assert db.get(Certificate, serial).revocation_reason == "superseded"  # the first revocation stands


def test_suspend_resume_cycle_and_its_conflicts(rt, subjects: Subjects) -> None:  # type: ignore[no-untyped-def]
    serial = issue(rt, subjects)
    with pytest.raises(Problem) as err, rt.db.transaction() as db:
        revocation.resume(rt, db, ACTOR, serial=serial)
    assert err.value.status == 409 and err.value.code == "certificate.not_on_hold"
    with rt.db.transaction() as db:
        held = revocation.suspend(rt, db, ACTOR, serial=serial)
    assert (held.status, held.reason) == ("on_hold", "certificateHold")
    resp = stored_response(rt, serial)
    assert resp.certificate_status == x509_ocsp.OCSPCertStatus.REVOKED
    assert resp.revocation_reason == x509.ReasonFlags.certificate_hold
    with pytest.raises(Problem) as err, rt.db.transaction() as db:
        revocation.suspend(rt, db, ACTOR, serial=serial)
    assert err.value.code == "certificate.already_on_hold"
    with rt.db.transaction() as db:
        back = revocation.resume(rt, db, ACTOR, serial=serial)
    assert back.status == "issued" and back.reason is None and back.revoked_at is None
    assert stored_response(rt, serial).certificate_status == x509_ocsp.OCSPCertStatus.GOOD
    # A held certificate can be revoked for good; a revoked one cannot be held.
    with rt.db.transaction() as db:
        revocation.suspend(rt, db, ACTOR, serial=serial)
    with rt.db.transaction() as db:
        final = revocation.revoke(rt, db, ACTOR, serial=serial, reason="cessationOfOperation")
    assert final.previous_status == "on_hold" and final.reason == "cessationOfOperation"
    with pytest.raises(Problem) as err, rt.db.transaction() as db:
        revocation.suspend(rt, db, ACTOR, serial=serial)
    assert err.value.code == "certificate.already_revoked"
    with rt.db.read() as db:
        actions = list(db.execute(select(AuditEntry.action).where(AuditEntry.target == f"certificate:{serial}").order_by(AuditEntry.seq)).scalars())
    assert actions[-4:] == ["ca.certificate.suspend", "ca.certificate.resume", "ca.certificate.suspend", "ca.certificate.revoke"]


@pytest.mark.parametrize(
    ("serial", "reason", "code", "kind"),
    [
        ("ab" * 10, "keyCompromise", "certificate.not_found", Kind.NOT_FOUND),
        ("not-hex", "keyCompromise", "certificate.bad_serial", Kind.INVALID_INPUT),
        ("00", "keyCompromise", "certificate.bad_serial", Kind.INVALID_INPUT),
        ("ab" * 21, "keyCompromise", "certificate.bad_serial", Kind.INVALID_INPUT),
        ("ab" * 10, "certificateHold", "revocation.unknown_reason", Kind.VALIDATION),
        ("ab" * 10, "because", "revocation.unknown_reason", Kind.VALIDATION),
    ],
)
def test_bad_requests_have_precise_codes(rt, serial: str, reason: str, code: str, kind: Kind) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Problem) as err, rt.db.transaction() as db:
        revocation.revoke(rt, db, ACTOR, serial=serial, reason=reason)
    assert (err.value.code, err.value.kind) == (code, kind)


def test_invalidity_date_in_the_future_is_refused(rt, subjects: Subjects) -> None:  # type: ignore[no-untyped-def]
    serial = issue(rt, subjects)
    with pytest.raises(Problem) as err, rt.db.transaction() as db:
        revocation.revoke(rt, db, ACTOR, serial=serial, reason="keyCompromise", invalidity_date=datetime.now(UTC) + timedelta(days=1))
    assert err.value.code == "revocation.invalidity_in_future"
    with rt.db.read() as db:
        assert db.get(Certificate, serial).status == "issued"


def test_hsm_failure_during_revocation_leaves_nothing_half_written(rt, subjects: Subjects) -> None:  # type: ignore[no-untyped-def]
    """The OCSP re-signature is part of the unit of work: if the HSM fails, the status, the audit
    entry and the CRL counter all stay as they were."""
    from hsm.errors import HsmError, HsmErrorKind

    serial = issue(rt, subjects)
    with rt.db.read() as db:
        audit_before = db.execute(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1)).scalar_one()
        changes_before = db.get(RevocationState, "public-service").changes

    def fail(operation: str) -> None:
        if operation == "sign":
            raise HsmError(HsmErrorKind.DEVICE_ERROR, "simulated CKR_DEVICE_ERROR")

    rt.token.fault_hook = fail
    try:
        with pytest.raises(HsmError), rt.db.transaction() as db:
            revocation.revoke(rt, db, ACTOR, serial=serial, reason="keyCompromise")
    finally:
        rt.token.fault_hook = None
    with rt.db.read() as db:
        assert db.get(Certificate, serial).status == "issued"
        assert db.get(RevocationState, "public-service").changes == changes_before
        assert db.execute(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1)).scalar_one() == audit_before
        row = db.get(OcspResponse, ("public-service", serial))
        assert row is None or row.status == "good"


def test_status_change_bumps_the_ocsp_sequence_seen_by_other_processes(rt, subjects: Subjects) -> None:  # type: ignore[no-untyped-def]
    serial = issue(rt, subjects)
    with rt.db.read() as db:
        before = db.execute(select(OcspResponse.seq).order_by(OcspResponse.seq.desc()).limit(1)).scalar_one_or_none() or 0
    with rt.db.transaction() as db:
        revocation.suspend(rt, db, ACTOR, serial=serial)
    with rt.db.read() as db:
        row = db.get(OcspResponse, ("public-service", serial))
        assert row.seq > before and row.status == "on_hold"
    # A worker that cached the old answer drops it on its next poll.
    st = ocsp.state(rt)
    st.cache[("public-service", int(serial, 16), "sha1")] = ocsp.cached_entry(b"stale", row.this_update, row.next_update)
    st.last_seq = before
    ocsp.poll_changes(rt)
    assert ("public-service", int(serial, 16), "sha1") not in st.cache

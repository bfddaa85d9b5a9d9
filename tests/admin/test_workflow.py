"""The request workflow: states, four-eyes, dual control, evidence (admin.service)."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from admin import service
from admin.models import IdentityEvidence
from core.audit import search
from core.errors import Kind, Problem
from core.security import Actor
from identity import service as identity
from tests.factories import unique_id_number, unique_uscc

OFFICER = Actor("operator", "officer-1", "Officer One")
APPROVER_A = Actor("operator", "approver-a", "Approver A")
APPROVER_B = Actor("operator", "approver-b", "Approver B")


def make_csr(cn: str = "ignored") -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture
def citizen(rt, db):  # type: ignore[no-untyped-def]
    return identity.register_person(rt, db, Actor.cli(), name="张三", id_number=unique_id_number())


@pytest.fixture
def department(rt, db):  # type: ignore[no-untyped-def]
    return identity.register_org(rt, db, Actor.cli(), name="省市场监督管理局", uscc=unique_uscc(), type="government")


def new_request(rt, db, subject, profile="citizen", kind="person", **kw):  # type: ignore[no-untyped-def]
    if profile == "seal":  # the seal's key is generated in the HSM on execution: a name, no CSR
        return service.create_request(rt, db, OFFICER, type="new", subject_kind=kind, subject_id=subject.id, profile=profile, seal_name="行政许可专用章", **kw)
    return service.create_request(rt, db, OFFICER, type="new", subject_kind=kind, subject_id=subject.id, profile=profile, csr=make_csr(), **kw)


def test_new_request_is_submitted_and_audited(rt, db, citizen) -> None:  # type: ignore[no-untyped-def]
    r = new_request(rt, db, citizen, comment="walk-in")
    assert r.state == "submitted" and r.required_approvals == 1 and r.has_csr
    assert r.subject_name == "张三"
    actions = [e.action for e in search(db, target=f"request:{r.id}")]
    assert actions == ["admin.request.submit", "admin.request.create"]
    detail = service.get_request(db, r.id)
    assert [e.event for e in detail.events] == ["created", "submitted"]
    assert detail.events[0].body == "walk-in"


def test_submitter_can_never_approve(rt, db, citizen) -> None:  # type: ignore[no-untyped-def]
    r = new_request(rt, db, citizen)
    with pytest.raises(Problem) as exc:
        service.approve_request(rt, db, OFFICER, r.id)
    assert exc.value.code == "admin.four_eyes" and exc.value.kind is Kind.FORBIDDEN
    with pytest.raises(Problem) as exc:
        service.reject_request(rt, db, OFFICER, r.id, comment="mine")
    assert exc.value.code == "admin.four_eyes"


def test_operator_cannot_approve_own_certificate(rt, db, citizen) -> None:  # type: ignore[no-untyped-def]
    r = new_request(rt, db, citizen)
    with pytest.raises(Problem) as exc:
        service.approve_request(rt, db, Actor("operator", citizen.id, "张三"), r.id)
    assert exc.value.code == "admin.own_subject"


def test_one_approval_approves_a_personal_certificate(rt, db, citizen) -> None:  # type: ignore[no-untyped-def]
    r = new_request(rt, db, citizen)
    v = service.approve_request(rt, db, APPROVER_A, r.id, comment="documents checked")
    assert v.state == "approved" and v.approvals == 1 and v.decided_at
    with pytest.raises(Problem) as exc:
        service.approve_request(rt, db, APPROVER_B, r.id)
    assert exc.value.code == "admin.request_not_submitted"


def test_seal_profile_needs_two_distinct_approvers(rt, db, department) -> None:  # type: ignore[no-untyped-def]
    r = new_request(rt, db, department, profile="seal", kind="org")
    assert r.required_approvals == 2
    v = service.approve_request(rt, db, APPROVER_A, r.id)
    assert v.state == "submitted" and v.approvals == 1
    with pytest.raises(Problem) as exc:
        service.approve_request(rt, db, APPROVER_A, r.id)
    assert exc.value.code == "admin.already_approved"
    v = service.approve_request(rt, db, APPROVER_B, r.id)
    assert v.state == "approved" and v.approvals == 2
    assert [a.approver for a in service.get_request(db, r.id).approvals] == [APPROVER_A.ref, APPROVER_B.ref]


def test_reject_needs_a_reason_and_is_final(rt, db, citizen) -> None:  # type: ignore[no-untyped-def]
    r = new_request(rt, db, citizen)
    with pytest.raises(Problem) as exc:
        service.reject_request(rt, db, APPROVER_A, r.id, comment=" ")
    assert exc.value.code == "admin.reason_required"
    v = service.reject_request(rt, db, APPROVER_A, r.id, comment="photo does not match")
    assert v.state == "rejected"
    with pytest.raises(Problem):
        service.approve_request(rt, db, APPROVER_B, r.id)


def test_draft_then_submit_and_cancel(rt, db, citizen) -> None:  # type: ignore[no-untyped-def]
    r = new_request(rt, db, citizen, submit=False)
    assert r.state == "draft"
    with pytest.raises(Problem) as exc:
        service.approve_request(rt, db, APPROVER_A, r.id)
    assert exc.value.code == "admin.request_not_submitted"
    assert service.submit_request(rt, db, OFFICER, r.id).state == "submitted"
    with pytest.raises(Problem) as exc:
        service.cancel_request(rt, db, APPROVER_A, r.id)
    assert exc.value.code == "admin.not_author"
    assert service.cancel_request(rt, db, OFFICER, r.id).state == "cancelled"


def test_bad_csr_refused_at_submission(rt, db, citizen) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Problem) as exc:
        service.create_request(rt, db, OFFICER, type="new", subject_kind="person", subject_id=citizen.id, profile="citizen", csr="not a csr")
    assert exc.value.status == 400
    with pytest.raises(Problem) as exc:
        service.create_request(rt, db, OFFICER, type="new", subject_kind="person", subject_id=citizen.id, profile="citizen")
    assert exc.value.code == "admin.csr_required"
    with pytest.raises(Problem) as exc:
        service.create_request(rt, db, OFFICER, type="bogus", subject_kind="person", subject_id=citizen.id)
    assert exc.value.code == "admin.invalid_request_type"


def test_profile_must_suit_the_subject(rt, db, citizen) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Problem) as exc:
        new_request(rt, db, citizen, profile="enterprise")
    assert exc.value.code == "admin.profile_subject_mismatch"
    with pytest.raises(Problem) as exc:
        new_request(rt, db, citizen, profile="ocsp")
    assert exc.value.code == "ca.internal_profile"
    with pytest.raises(Problem) as exc:
        new_request(rt, db, citizen, profile="nope")
    assert exc.value.code == "ca.unknown_profile"


def test_unknown_subject_is_not_found(rt, db) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Problem) as exc:
        service.create_request(rt, db, OFFICER, type="new", subject_kind="person", subject_id="0" * 32, profile="citizen", csr=make_csr())
    assert exc.value.kind is Kind.NOT_FOUND


def test_awaiting_filter_hides_own_and_already_approved(rt, db, department) -> None:  # type: ignore[no-untyped-def]
    r = new_request(rt, db, department, profile="seal", kind="org")
    assert r.id not in {v.id for v in service.list_requests(db, awaiting=OFFICER.ref, limit=500).items}
    assert r.id in {v.id for v in service.list_requests(db, awaiting=APPROVER_A.ref, limit=500).items}
    service.approve_request(rt, db, APPROVER_A, r.id)
    assert r.id not in {v.id for v in service.list_requests(db, awaiting=APPROVER_A.ref, limit=500).items}
    assert r.id in {v.id for v in service.list_requests(db, awaiting=APPROVER_B.ref, limit=500).items}


def test_evidence_number_stored_encrypted(rt, db, citizen) -> None:  # type: ignore[no-untyped-def]
    number = unique_id_number()
    e = service.capture_evidence(rt, db, OFFICER, subject_kind="person", subject_id=citizen.id, document_type="resident_id_card", number=number)
    assert e.number_masked == number[:6] + "********" + number[-4:]
    row = db.execute(select(IdentityEvidence).where(IdentityEvidence.id == e.id)).scalar_one()
    assert number not in row.number_ct
    assert rt.vault.decrypt(row.number_ct, context=service.CTX_EVIDENCE) == number
    audit = search(db, action="admin.evidence.capture", target=f"person:{citizen.id}")[0]
    assert number not in str(audit.details)
    with pytest.raises(Problem) as exc:
        service.capture_evidence(rt, db, OFFICER, subject_kind="person", subject_id=citizen.id, document_type="library_card", number=number)
    assert exc.value.code == "admin.invalid_document_type"


def _committed_citizen(rt):  # type: ignore[no-untyped-def]
    with rt.db.transaction() as s:
        return identity.register_person(rt, s, Actor.cli(), name="李四", id_number=unique_id_number())


def test_final_approval_issues_through_the_ca_and_links_maintenance(rt) -> None:  # type: ignore[no-untyped-def]
    from ca import service as ca_service

    person = _committed_citizen(rt)
    with rt.db.transaction() as s:
        r = service.create_request(rt, s, OFFICER, type="new", subject_kind="person", subject_id=person.id, profile="citizen", csr=make_csr())
    done = service.approve_and_execute(rt, APPROVER_A, r.id, comment="ok")
    assert done.state == "done" and done.result_serial and done.result_ref and done.result_ref.startswith("maintenance:")
    with rt.db.read() as s:
        cert = ca_service.get_certificate(s, done.result_serial)
        assert cert.status == "issued" and cert.subject_person_id == person.id
        assert [e.event for e in service.get_request(s, r.id).events][-2:] == ["approved", "done"]
        assert search(s, action="admin.request.execute", target=f"request:{r.id}")[0].outcome == "success"
    # a suspension request on that certificate, then resumption, then revocation
    for type_, status in (("suspension", "on_hold"), ("resumption", "issued"), ("revocation", "revoked")):
        with rt.db.transaction() as s:
            m = service.create_request(rt, s, OFFICER, type=type_, target_serial=done.result_serial, reason="keyCompromise" if type_ == "revocation" else None)
        assert m.subject_id == person.id and m.profile == "citizen"
        assert service.approve_and_execute(rt, APPROVER_B, m.id).state == "done"
        with rt.db.read() as s:
            assert ca_service.get_certificate(s, done.result_serial).status == status


def test_failed_execution_stays_approved_with_the_error(rt) -> None:  # type: ignore[no-untyped-def]
    person = _committed_citizen(rt)
    with rt.db.transaction() as s:
        r = service.create_request(rt, s, OFFICER, type="new", subject_kind="person", subject_id=person.id, profile="citizen", csr=make_csr())
        first = service.create_request(rt, s, OFFICER, type="new", subject_kind="person", subject_id=person.id, profile="citizen", csr=make_csr())
    service.approve_and_execute(rt, APPROVER_A, first.id)
    with rt.db.transaction() as s:  # the same certificate revoked twice: the CA refuses the second
        serial = service.get_request(s, first.id).request.result_serial
        a = service.create_request(rt, s, OFFICER, type="revocation", target_serial=serial, reason="superseded")
        b = service.create_request(rt, s, OFFICER, type="revocation", target_serial=serial, reason="superseded")
    service.approve_and_execute(rt, APPROVER_A, a.id)
    with pytest.raises(Problem) as exc:
        service.approve_and_execute(rt, APPROVER_A, b.id)
    assert exc.value.code == "certificate.already_revoked"
    with rt.db.read() as s:
        view = service.get_request(s, b.id).request
    assert view.state == "approved" and view.last_error and view.last_error.startswith("certificate.already_revoked")
    assert r.state == "submitted"

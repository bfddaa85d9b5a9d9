"""Certificate maintenance: renewal, re-key, modification, each linked to what it replaces; expiry."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from ca import service
from core import clock
from core.audit import AuditEntry
from core.errors import Problem
from identity import service as ids
from tests.ca.conftest import ACTOR, Subjects, make_csr


def _citizen(rt, s: Subjects) -> service.IssuedCertificate:  # type: ignore[no-untyped-def]
    with rt.db.transaction() as db:
        return service.issue_certificate(rt, db, ACTOR, profile="citizen", csr=make_csr(), subject_id=s.person_id)


def _audit(rt, serial: str) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    with rt.db.read() as db:
        return [(a.action, a.details) for a in db.execute(select(AuditEntry).where(AuditEntry.target == f"certificate:{serial}")).scalars()]


def test_renewal_keeps_key_and_subject_and_links_the_old_certificate(rt, subjects: Subjects) -> None:  # type: ignore[no-untyped-def]
    old = _citizen(rt, subjects)
    with rt.db.transaction() as db:
        new = service.renew(rt, db, ACTOR, old.serial, reason="expiring soon")
    assert new.serial != old.serial and new.replaces_serial == old.serial
    assert new.certificate.public_key().public_numbers() == old.certificate.public_key().public_numbers()
    assert new.certificate.subject == old.certificate.subject
    with rt.db.read() as db:
        history = service.maintenance_history(db, old.serial)
        view = service.get_certificate(db, new.serial)
    assert [(h.kind, h.old_serial, h.new_serial, h.reason, h.operator) for h in history] == [
        ("issuance", None, old.serial, "issuance", ACTOR.ref),
        ("renewal", old.serial, new.serial, "expiring soon", ACTOR.ref),
    ]
    assert view.replaces_serial == old.serial and view.maintenance_reason == "expiring soon"
    (action, details), = _audit(rt, new.serial)
    assert action == "ca.certificate.renew" and old.serial in details and "expiring soon" in details


def test_rekey_takes_a_new_key_and_refuses_the_old_one(rt, subjects: Subjects) -> None:  # type: ignore[no-untyped-def]
    key = ec.generate_private_key(ec.SECP256R1())
    with rt.db.transaction() as db:
        old = service.issue_certificate(rt, db, ACTOR, profile="citizen", csr=make_csr(key), subject_id=subjects.person_id)
    with rt.db.transaction() as db:
        with pytest.raises(Problem) as err:
            service.rekey(rt, db, ACTOR, old.serial, csr=make_csr(key), reason="lost token")
    assert err.value.code == "ca.rekey_same_key"
    new_key = ec.generate_private_key(ec.SECP256R1())
    with rt.db.transaction() as db:
        new = service.rekey(rt, db, ACTOR, old.serial, csr=make_csr(new_key), reason="lost token")
    assert new.certificate.public_key().public_numbers() == new_key.public_key().public_numbers()
    assert new.replaces_serial == old.serial
    with rt.db.read() as db:
        assert [h.kind for h in service.maintenance_history(db, new.serial)] == ["rekey"]


def test_modification_rereads_the_registry_and_renewal_refuses_stale_data(rt, subjects: Subjects) -> None:  # type: ignore[no-untyped-def]
    old = _citizen(rt, subjects)
    with rt.db.transaction() as db:
        ids.update_person(rt, db, ACTOR, subjects.person_id, name="李四四")
    with rt.db.transaction() as db:
        with pytest.raises(Problem) as err:
            service.renew(rt, db, ACTOR, old.serial)
    assert err.value.code == "ca.subject_changed"
    with rt.db.transaction() as db:
        new = service.modify(rt, db, ACTOR, old.serial, reason="name changed at the registry")
    assert new.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "李四四"
    assert new.certificate.public_key().public_numbers() == old.certificate.public_key().public_numbers()
    (action, details), = _audit(rt, new.serial)
    assert action == "ca.certificate.modify" and "name changed at the registry" in details


def test_maintenance_needs_a_reason_and_an_issued_certificate(rt, subjects: Subjects) -> None:  # type: ignore[no-untyped-def]
    old = _citizen(rt, subjects)
    with rt.db.transaction() as db:
        with pytest.raises(Problem) as err:
            service.modify(rt, db, ACTOR, old.serial, reason="  ")
        assert err.value.code == "ca.reason_required"
        with pytest.raises(Problem) as err:
            service.renew(rt, db, ACTOR, "deadbeef")
        assert err.value.code == "ca.certificate_not_found" and err.value.status == 404
        with pytest.raises(Problem) as err:
            service.renew(rt, db, ACTOR, "not a serial!")
        assert err.value.code == "ca.bad_serial"


def test_expiry_report(rt, subjects: Subjects) -> None:  # type: ignore[no-untyped-def]
    with rt.db.transaction() as db:
        short = service.issue_for_public_key(rt, db, ACTOR, profile="ocsp", public_key=ec.generate_private_key(ec.SECP256R1()).public_key(), common_name="expiry test")
    long = _citizen(rt, subjects)
    with rt.db.read() as db:
        within_31 = {c.serial for c in service.expiring(db, days=31)}
        within_1 = {c.serial for c in service.expiring(db, days=1)}
        later = {c.serial for c in service.expiring(db, days=1, now=clock.now() + timedelta(days=29, hours=12))}
        with pytest.raises(Problem):
            service.expiring(db, days=-1)
    assert short.serial in within_31 and long.serial not in within_31
    assert short.serial not in within_1
    assert short.serial in later

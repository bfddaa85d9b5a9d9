"""Issuance end to end on the real token and database, checked with openssl and pkilint."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import select

from ca import profiles, service
from ca.models import Certificate, MaintenanceRecord
from core import clock
from core.audit import AuditEntry
from core.errors import Problem
from hsm.errors import HsmError, HsmErrorKind
from tests.ca.conftest import ACTOR, DATA, Subjects, make_csr, openssl, pkilint, write_chain


def _issue_every_profile(rt, s: Subjects) -> dict[str, service.IssuedCertificate]:  # type: ignore[no-untyped-def]
    out = {}
    with rt.db.transaction() as db:
        out["citizen"] = service.issue_certificate(rt, db, ACTOR, profile="citizen", csr=make_csr(), subject_id=s.person_id)
        out["enterprise"] = service.issue_certificate(rt, db, ACTOR, profile="enterprise", csr=make_csr(), subject_id=s.uscc)
        out["staff"] = service.issue_certificate(rt, db, ACTOR, profile="staff", csr=make_csr(), subject_id=s.id_number)
        out["server"] = service.issue_certificate(rt, db, ACTOR, profile="server", csr=make_csr(dns=(f"www.{s.suffix}",)), subject_id=s.dept_id)
        key = lambda: ec.generate_private_key(ec.SECP256R1()).public_key()  # noqa: E731
        out["seal"] = service.issue_for_public_key(rt, db, ACTOR, profile="seal", public_key=key(), subject_id=s.dept_id, common_name="合同专用章")
        out["ocsp"] = service.issue_for_public_key(rt, db, ACTOR, profile="ocsp", public_key=key(), common_name="test OCSP responder")
        out["tsa"] = service.issue_for_public_key(rt, db, ACTOR, profile="tsa", public_key=key(), common_name="test TSA")
    return out


def test_every_profile_verifies_with_openssl_and_passes_pkilint(rt, subjects: Subjects, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root, issuing = write_chain(rt, tmp_path)
    expected = {
        "citizen": ["TLS Web Client Authentication", "E-mail Protection", "Digital Signature, Non Repudiation", f"email:{subjects.email}", "1.2.156.10260.4.1.1"],
        "enterprise": ["TLS Web Client Authentication", "1.3.6.1.5.5.7.3.36", "1.2.156.10260.4.1.3"],
        "staff": ["TLS Web Client Authentication", "1.2.156.10260.4.1.1"],
        "server": ["TLS Web Server Authentication", f"DNS:www.{subjects.suffix}", "1.2.156.10260.4.1.3"],
        "seal": ["1.3.6.1.5.5.7.3.36", "Digital Signature, Non Repudiation", "1.2.156.10260.4.1.3"],
        "ocsp": ["OCSP Signing", "OCSP No Check"],
        "tsa": ["X509v3 Extended Key Usage: critical", "Time Stamping"],
    }
    for name, cert in _issue_every_profile(rt, subjects).items():
        path = tmp_path / f"{name}.pem"
        path.write_text(cert.pem)
        verified = openssl("verify", "-CAfile", str(root), "-untrusted", str(issuing), str(path))
        assert verified.returncode == 0 and f"{path}: OK" in verified.stdout, (name, verified.stdout, verified.stderr)
        linted = pkilint(path)
        assert linted.returncode == 0 and "ERROR" not in linted.stdout and "FATAL" not in linted.stdout, (name, linted.stdout)
        text = openssl("x509", "-in", str(path), "-noout", "-text").stdout
        for want in expected[name] + ["Basic Constraints: critical", "CA:FALSE", "Key Usage: critical", "Subject Key Identifier", "Authority Key Identifier", "Certificate Policies", "CA Issuers - URI:" + rt.settings.public_url + "/ca/public-service.cer"]:
            assert want in text, (name, want)
        if name == "staff":
            assert cert.certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == subjects.dept_name
        if name == "seal":  # the department by name and USCC (EN 319 412-1 §5.1.4), not the platform's id
            subject = cert.certificate.subject
            assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == subjects.dept_name
            assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER)[0].value == f"NTRCN-{subjects.dept_uscc}"
            assert subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER) == [] and subjects.dept_id not in subject.rfc4514_string()
        if name != "ocsp":
            cdp = profiles.crl_url(rt.settings.public_url, "public-service", serial=int(cert.serial, 16))
            assert f"URI:{cdp}" in text, name
            assert f"OCSP - URI:{rt.settings.public_url}/ocsp" in text, name
        else:  # ocsp-nocheck: no revocation pointers for the responder itself
            assert "CRL Distribution Points" not in text


def test_ca_certificates_lint_clean_and_chain(rt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root, issuing = write_chain(rt, tmp_path)
    for path in (root, issuing):
        linted = pkilint(path)
        assert linted.returncode == 0, linted.stdout
    assert openssl("verify", "-CAfile", str(root), str(issuing)).returncode == 0
    text = openssl("x509", "-in", str(issuing), "-noout", "-text").stdout
    assert "CA:TRUE, pathlen:0" in text and "Certificate Sign, CRL Sign" in text
    assert f"URI:{rt.settings.public_url}/crl/root.crl" in text and f"CA Issuers - URI:{rt.settings.public_url}/ca/root.cer" in text


def test_subject_comes_from_the_registry_never_from_the_csr(rt, subjects: Subjects) -> None:  # type: ignore[no-untyped-def]
    with rt.db.transaction() as db:
        cert = service.issue_certificate(rt, db, ACTOR, profile="citizen", csr=make_csr(cn="Somebody Else"), subject_id=subjects.id_number).certificate
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == subjects.person_name
    assert cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == subjects.person_id
    assert subjects.id_number not in cert.subject.rfc4514_string()  # the ID number is not in the DN…
    ext = cert.extensions.get_extension_for_oid(profiles.OID_GMT_IDENTIFY_CODE)
    assert not ext.critical and ext.value.value.endswith(subjects.id_number.encode())  # …but in the private extension


def test_issued_record_maintenance_and_audit(rt, subjects: Subjects) -> None:  # type: ignore[no-untyped-def]
    with rt.db.transaction() as db:
        issued = service.issue_certificate(rt, db, ACTOR, profile="enterprise", csr=make_csr(pem=False), subject_id=subjects.org_id)
    assert issued.certificate.serial_number == int(issued.serial, 16)
    with rt.db.read() as db:
        row = db.get(Certificate, issued.serial)
        assert row is not None and row.status == "issued" and row.der == issued.der and row.subject_org_id == subjects.org_id
        records = db.execute(select(MaintenanceRecord).where(MaintenanceRecord.new_serial == issued.serial)).scalars().all()
        assert [(r.kind, r.operator) for r in records] == [("issuance", ACTOR.ref)]
        audit = db.execute(select(AuditEntry).where(AuditEntry.target == f"certificate:{issued.serial}")).scalars().all()
        assert [(a.action, a.outcome) for a in audit] == [("ca.certificate.issue", "success")]
        assert issued.sha256 in audit[0].details
    with rt.db.read() as db:
        view = service.get_certificate(db, issued.serial.upper())
    assert view.status == "issued" and view.pem == issued.pem


@pytest.mark.parametrize(
    ("profile", "subject", "dns", "code"),
    [
        ("nonexistent", "person", (), "ca.unknown_profile"),
        ("citizen", "nobody", (), "ca.unknown_subject"),
        ("citizen", "org", (), "ca.subject_not_person"),
        ("enterprise", "person", (), "ca.subject_not_org"),
        ("citizen", "person", ("www.example.gov.cn",), "ca.dns_not_allowed"),
        ("server", "dept", ("www.not-theirs.gov.cn",), "ca.dns_not_authorised"),
        ("server", "dept", (), "ca.dns_required"),
        ("server", "org", ("www.example.cn",), "ca.not_a_department"),
        ("seal", "org", (), "ca.not_a_department"),
        ("ocsp", "person", (), "ca.internal_profile"),
    ],
)
def test_policy_refusals_have_their_own_codes(rt, subjects: Subjects, profile: str, subject: str, dns: tuple[str, ...], code: str) -> None:  # type: ignore[no-untyped-def]
    subject_id = {"person": subjects.person_id, "org": subjects.org_id, "dept": subjects.dept_id, "nobody": "110105194912310021"}[subject]
    with rt.db.transaction() as db:
        before = db.execute(select(Certificate.serial)).scalars().all()
        with pytest.raises(Problem) as err:
            service.issue_certificate(rt, db, ACTOR, profile=profile, csr=make_csr(), subject_id=subject_id, dns_names=dns)
        assert 400 <= err.value.status < 500
        assert err.value.code == code
        assert db.execute(select(Certificate.serial)).scalars().all() == before  # refused before a serial is spent


def test_bad_csr_fixture_refused_before_a_serial_is_spent(rt, subjects: Subjects) -> None:  # type: ignore[no-untyped-def]
    with rt.db.transaction() as db:
        n = len(db.execute(select(Certificate.serial)).scalars().all())
        with pytest.raises(Problem) as err:
            service.issue_certificate(rt, db, ACTOR, profile="citizen", csr=(DATA / "invalid_signature.der.csr").read_bytes(), subject_id=subjects.person_id)
        assert err.value.code == "csr.bad_signature"
        assert len(db.execute(select(Certificate.serial)).scalars().all()) == n


def test_hsm_failure_in_sign_step_leaves_failed_record_and_serial_is_not_reused(rt, subjects: Subjects) -> None:  # type: ignore[no-untyped-def]
    def fail_sign(operation: str) -> None:
        if operation == "sign":
            raise HsmError(HsmErrorKind.DEVICE_ERROR, "injected: CKR_DEVICE_ERROR")

    rt.token.fault_hook = fail_sign
    try:
        with rt.db.transaction() as db:
            with pytest.raises(Problem) as err:
                service.issue_certificate(rt, db, ACTOR, profile="citizen", csr=make_csr(), subject_id=subjects.person_id)
    finally:
        rt.token.fault_hook = None
    assert err.value.code == "hsm.device_error" and err.value.status == 503
    with rt.db.read() as db:
        failed = db.execute(select(Certificate).where(Certificate.subject_person_id == subjects.person_id)).scalars().all()
        assert len(failed) == 1 and failed[0].status == "failed" and failed[0].der is None and failed[0].sha256 is None
        assert "hsm.device_error" in (failed[0].failure or "")
        audit = db.execute(select(AuditEntry).where(AuditEntry.target == f"certificate:{failed[0].serial}")).scalars().all()
        assert [(a.action, a.outcome) for a in audit] == [("ca.certificate.issue", "failure")]
    with rt.db.transaction() as db:
        good = service.issue_certificate(rt, db, ACTOR, profile="citizen", csr=make_csr(), subject_id=subjects.person_id)
    assert good.serial != failed[0].serial
    with rt.db.read() as db:
        assert service.get_certificate(db, failed[0].serial).status == "failed"


def test_lint_error_refuses_issuance_and_names_the_finding(rt, subjects: Subjects, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    # A broken profile: an empty extendedKeyUsage violates its SIZE (1..MAX) — pkilint reports it.
    from dataclasses import replace

    broken = replace(profiles.PROFILES["enterprise"], name="broken", eku=())
    monkeypatch.setitem(profiles.PROFILES, "broken", broken)
    with rt.db.transaction() as db:
        with pytest.raises(Problem) as err:
            service.issue_certificate(rt, db, ACTOR, profile="broken", csr=make_csr(), subject_id=subjects.org_id)
    assert err.value.code == "ca.lint_failed" and err.value.status == 422
    assert "extKeyUsage" in err.value.detail or "ExtKeyUsage" in err.value.detail or "2.5.29.37" in err.value.detail, err.value.detail
    assert err.value.extra["findings"]
    with rt.db.read() as db:
        rows = db.execute(select(Certificate).where(Certificate.profile == "broken")).scalars().all()
    assert [r.status for r in rows] == ["failed"] and rows[0].der is None


def test_pending_rows_of_dead_processes_are_retired_not_reused(rt, subjects: Subjects) -> None:  # type: ignore[no-untyped-def]
    from ca.hierarchy import iso

    now = clock.now()
    with rt.db.transaction() as db:
        for serial, age in (("7" + "a" * 31, timedelta(hours=1)), ("7" + "b" * 31, timedelta(seconds=5))):
            db.add(
                Certificate(
                    serial=serial, issuer="public-service", profile="citizen", subject_person_id=subjects.person_id, subject_dn="CN=x", status="pending",
                    not_before=iso(now), not_after=iso(now), spki_sha256="0" * 64, requested_by="cli:crashed", created_at=iso(now - age),
                )
            )
    with rt.db.transaction() as db:
        retired = service.resolve_pending(rt, db, ACTOR)
    assert "7" + "a" * 31 in retired and "7" + "b" * 31 not in retired  # a live worker's in-flight row is left alone
    with rt.db.read() as db:
        assert db.get(Certificate, "7" + "a" * 31).status == "failed"
        assert db.get(Certificate, "7" + "b" * 31).status == "pending"


def test_chain_and_issuing_ca_for_other_packages(rt) -> None:  # type: ignore[no-untyped-def]
    with rt.db.read() as db:
        ca = service.issuing_ca(rt, db)
        chain = service.ca_chain(rt, db)
    assert ca.name == rt.settings.ca_issuing_name and ca.key_label == "ca/public-service"
    assert [c.subject for c in chain] == [ca.certificate.subject, chain[1].issuer]
    assert chain[1].subject == chain[1].issuer  # self-signed root last
    # the CA key signs inside the token (used by the revocation module for CRLs / OCSP)
    assert ca.key.public_key().public_numbers() == ca.certificate.public_key().public_numbers()
    with pytest.raises(Exception):
        ca.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def test_bootstrap_is_idempotent_and_ceremony_audited(rt) -> None:  # type: ignore[no-untyped-def]
    from ca import bootstrap

    with rt.db.read() as db:
        before = service.ca_chain(rt, db)
    lines = bootstrap.initialise(rt, ACTOR)
    assert any("exists" in line for line in lines)
    with rt.db.read() as db:
        assert [c.fingerprint(__import__("cryptography.hazmat.primitives.hashes", fromlist=["SHA256"]).SHA256()) for c in service.ca_chain(rt, db)] == [
            c.fingerprint(__import__("cryptography.hazmat.primitives.hashes", fromlist=["SHA256"]).SHA256()) for c in before
        ]
        entries = db.execute(select(AuditEntry).where(AuditEntry.action.in_(("ca.ceremony.root", "ca.ceremony.issuing")))).scalars().all()
    assert sorted(e.action for e in entries) == ["ca.ceremony.issuing", "ca.ceremony.root"]
    for e in entries:
        assert "public_key_sha256" in e.details and "certificate_sha256" in e.details and "key_label" in e.details
    attrs = rt.token.attributes("ca/root")
    assert attrs["sensitive"] and not attrs["extractable"]


def test_key_of_a_ca_is_refused(rt, subjects: Subjects) -> None:  # type: ignore[no-untyped-def]
    with rt.db.transaction() as db:
        ca_public = service.issuing_ca(rt, db).certificate.public_key()
        with pytest.raises(Problem) as err:
            service.issue_for_public_key(rt, db, ACTOR, profile="enterprise", public_key=ca_public, subject_id=subjects.org_id)
    assert err.value.code == "csr.ca_key_reuse"


def test_eku_of_tsa_is_critical_and_alone(rt) -> None:  # type: ignore[no-untyped-def]
    with rt.db.transaction() as db:
        cert = service.issue_for_public_key(rt, db, ACTOR, profile="tsa", public_key=ec.generate_private_key(ec.SECP256R1()).public_key(), common_name="TSA 9").certificate
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]

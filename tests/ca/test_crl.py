"""CRLs: sharded + full, HSM-signed, served at the CDP URL, checked with openssl and pkilint."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ca import crl, revocation, service
from ca.models import Certificate
from tests.ca.conftest import ACTOR, Subjects, make_csr, write_chain

LINT_CRL = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "lint_crl")
ISSUING = "public-service"


def issue(rt, subjects: Subjects) -> x509.Certificate:  # type: ignore[no-untyped-def]
    with rt.db.transaction() as db:
        return service.issue_certificate(rt, db, ACTOR, profile="citizen", csr=make_csr(), subject_id=subjects.person_id).certificate


def cdp(cert: x509.Certificate) -> str:
    (point,) = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    (name,) = point.full_name
    return name.value


def publish(rt, name: str = ISSUING) -> list[crl.PublishedCrl]:  # type: ignore[no-untyped-def]
    with rt.db.transaction() as db:
        published = crl.publish_crls(rt, db, ACTOR, name, trigger="test")
    crl.poll_published(rt)  # what the server's publisher thread does within 0.2 s
    return published


def fetch(url: str, **headers: str) -> httpx.Response:
    return httpx.get(url, headers=headers, timeout=30)


def pem_file(path: Path, der: bytes) -> Path:
    path.write_bytes(x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM))
    return path


def cert_file(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60)


def test_cdp_names_the_serials_shard(rt, subjects: Subjects) -> None:  # type: ignore[no-untyped-def]
    cert = issue(rt, subjects)
    assert cdp(cert) == f"{rt.settings.public_url}/crl/{ISSUING}/{cert.serial_number % crl.SHARDS}.crl"
    with rt.db.read() as db:
        issuing, root = service.ca_chain(rt, db)
    # The issuing CA's own CDP is the root's full CRL.
    assert cdp(issuing) == f"{rt.settings.public_url}/crl/root.crl"


def test_openssl_rejects_revoked_and_held_accepts_good(rt, live, subjects: Subjects, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root_pem, issuing_pem = write_chain(rt, tmp_path)
    chain = tmp_path / "chain.pem"
    chain.write_bytes(issuing_pem.read_bytes() + root_pem.read_bytes())
    revoked, held, good = issue(rt, subjects), issue(rt, subjects), issue(rt, subjects)
    invalid_since = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    with rt.db.transaction() as db:
        revocation.revoke(rt, db, ACTOR, serial=format(revoked.serial_number, "x"), reason="keyCompromise", invalidity_date=invalid_since)
    with rt.db.transaction() as db:
        revocation.suspend(rt, db, ACTOR, serial=format(held.serial_number, "x"))
    published = publish(rt)
    number = published[0].number
    root_crl = pem_file(tmp_path / "root.crl.pem", fetch(f"{rt.settings.public_url}/crl/root.crl").content)

    for name, cert, expect in (("revoked", revoked, "certificate revoked"), ("held", held, "certificate revoked"), ("good", good, None)):
        response = fetch(cdp(cert))
        assert response.status_code == 200 and response.headers["content-type"] == "application/pkix-crl"
        shard = x509.load_der_x509_crl(response.content)
        assert shard.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number >= number
        crl_pem = pem_file(tmp_path / f"{name}.crl.pem", response.content)
        checked = run("openssl", "crl", "-in", str(crl_pem), "-CAfile", str(chain), "-noout")
        assert "verify OK" in checked.stderr + checked.stdout, checked.stderr
        leaf = cert_file(tmp_path / f"{name}.pem", cert)
        # -crl_check: the leaf's CRL (its shard: IDP must match its CDP); -crl_check_all adds the root CRL.
        for flag, crls in (("-crl_check", [crl_pem]), ("-crl_check_all", [crl_pem, root_crl])):
            args = ["openssl", "verify", "-CAfile", str(chain), flag]
            for c in crls:
                args += ["-CRLfile", str(c)]
            verdict = run(*args, str(leaf))
            if expect is None:
                assert verdict.returncode == 0 and ": OK" in verdict.stdout, verdict.stdout + verdict.stderr
            else:
                assert verdict.returncode != 0 and expect in verdict.stdout + verdict.stderr, verdict.stdout + verdict.stderr

    text = run("openssl", "crl", "-in", str(tmp_path / "revoked.crl.pem"), "-noout", "-text").stdout
    assert format(revoked.serial_number, "X") in text.replace(":", "")
    assert "Key Compromise" in text and "Invalidity Date" in text and "Issuing Distribution Point: critical" in text
    held_text = run("openssl", "crl", "-in", str(tmp_path / "held.crl.pem"), "-noout", "-text").stdout
    assert "Certificate Hold" in held_text


def test_a_shard_does_not_vouch_for_certificates_of_other_shards(rt, live, subjects: Subjects, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The IDP is what makes sharding safe: a shard's CRL is not a complete CRL for a certificate
    whose CDP names another shard, and openssl refuses to use it."""
    root_pem, issuing_pem = write_chain(rt, tmp_path)
    chain = tmp_path / "chain.pem"
    chain.write_bytes(issuing_pem.read_bytes() + root_pem.read_bytes())
    cert = issue(rt, subjects)
    publish(rt)
    other = (cert.serial_number + 1) % crl.SHARDS
    wrong = pem_file(tmp_path / "wrong.crl.pem", fetch(f"{rt.settings.public_url}/crl/{ISSUING}/{other}.crl").content)
    verdict = run("openssl", "verify", "-CAfile", str(chain), "-crl_check", "-CRLfile", str(wrong), str(cert_file(tmp_path / "c.pem", cert)))
    assert verdict.returncode != 0 and "different CRL scope" in verdict.stdout + verdict.stderr
    # The full CRL (no IDP) covers every certificate of the CA.
    full = pem_file(tmp_path / "full.crl.pem", fetch(f"{rt.settings.public_url}/crl/{ISSUING}.crl").content)
    verdict = run("openssl", "verify", "-CAfile", str(chain), "-crl_check", "-CRLfile", str(full), str(tmp_path / "c.pem"))
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr


def test_crls_lint_clean_with_pkilint(rt, live, subjects: Subjects, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for reason in ("keyCompromise", "unspecified", "superseded"):
        cert = issue(rt, subjects)
        with rt.db.transaction() as db:
            revocation.revoke(rt, db, ACTOR, serial=format(cert.serial_number, "x"), reason=reason)
    cert = issue(rt, subjects)
    with rt.db.transaction() as db:
        revocation.suspend(rt, db, ACTOR, serial=format(cert.serial_number, "x"))
    publish(rt)
    for name, path in (("full", f"/crl/{ISSUING}.crl"), ("shard", f"/crl/{ISSUING}/{cert.serial_number % crl.SHARDS}.crl"), ("root", "/crl/root.crl")):
        target = tmp_path / f"{name}.crl"
        target.write_bytes(fetch(rt.settings.public_url + path).content)
        done = run(LINT_CRL, "lint", "-t", "ARL" if name == "root" else "CRL", "-p", "PKIX", "-s", "ERROR", str(target))
        assert done.returncode == 0 and not done.stdout.strip(), f"{name}: {done.stdout}{done.stderr}"


def test_crl_fields_number_aki_validity(rt, subjects: Subjects) -> None:  # type: ignore[no-untyped-def]
    first = publish(rt)
    second = publish(rt)
    assert {p.scope for p in first} == {crl.FULL, *map(str, range(crl.SHARDS))}
    assert second[0].number == first[0].number + 1  # one number per publication, shared by its scopes
    with rt.db.read() as db:
        der = crl.current_crl(rt, db, ISSUING)
        issuing, _root = service.ca_chain(rt, db)
    parsed = x509.load_der_x509_crl(der)
    assert parsed.is_signature_valid(issuing.public_key())
    assert parsed.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == second[0].number
    aki = parsed.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    assert aki == issuing.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert parsed.next_update_utc - parsed.last_update_utc == timedelta(hours=rt.settings.crl_validity_hours)
    assert parsed.issuer == issuing.subject


def test_resumed_certificate_leaves_the_next_crl(rt, subjects: Subjects) -> None:  # type: ignore[no-untyped-def]
    cert = issue(rt, subjects)
    serial = format(cert.serial_number, "x")
    with rt.db.transaction() as db:
        revocation.suspend(rt, db, ACTOR, serial=serial)
    publish(rt)
    with rt.db.read() as db:
        listed = x509.load_der_x509_crl(crl.current_crl(rt, db, ISSUING)).get_revoked_certificate_by_serial_number(cert.serial_number)
    assert listed is not None and listed.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.certificate_hold
    with rt.db.transaction() as db:
        revocation.resume(rt, db, ACTOR, serial=serial)
    publish(rt)
    with rt.db.read() as db:
        assert x509.load_der_x509_crl(crl.current_crl(rt, db, ISSUING)).get_revoked_certificate_by_serial_number(cert.serial_number) is None


def test_status_change_is_republished_by_the_server_within_seconds(rt, live, subjects: Subjects) -> None:  # type: ignore[no-untyped-def]
    """No explicit publication: the serving process's publisher notices the change (debounced)."""
    cert = issue(rt, subjects)
    before = x509.load_der_x509_crl(fetch(cdp(cert)).content).extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    with rt.db.transaction() as db:
        revocation.revoke(rt, db, ACTOR, serial=format(cert.serial_number, "x"), reason="privilegeWithdrawn")
    deadline = time.monotonic() + 10
    while True:
        served = x509.load_der_x509_crl(fetch(cdp(cert)).content)
        entry = served.get_revoked_certificate_by_serial_number(cert.serial_number)
        if entry is not None:
            break
        assert time.monotonic() < deadline, "the CRL was not re-published after the revocation"
        time.sleep(0.2)
    assert served.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number > before
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.privilege_withdrawn


def test_crl_http_caching_and_404(rt, live) -> None:  # type: ignore[no-untyped-def]
    publish(rt)
    url = f"{rt.settings.public_url}/crl/{ISSUING}.crl"
    first = fetch(url)
    assert first.status_code == 200 and "max-age=" in first.headers["cache-control"]
    assert first.headers["etag"] and first.headers["last-modified"] and first.headers["expires"]
    again = fetch(url, **{"if-none-match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    missing = fetch(f"{rt.settings.public_url}/crl/nobody.crl")
    assert missing.status_code == 404 and missing.json()["code"] == "crl.not_found"


def test_expired_entries_leave_after_one_more_crl(rt, subjects: Subjects) -> None:  # type: ignore[no-untyped-def]
    """RFC 5280 §3.3: an entry stays until one CRL issued after the certificate expired lists it."""
    cert = issue(rt, subjects)
    serial = format(cert.serial_number, "x")
    with rt.db.transaction() as db:
        revocation.revoke(rt, db, ACTOR, serial=serial, reason="superseded")
    validity = timedelta(hours=rt.settings.crl_validity_hours)
    now = datetime.now(UTC).replace(microsecond=0)
    for expired_for, listed in ((validity / 2, True), (validity * 2, False)):
        with rt.db.transaction() as db:
            db.get(Certificate, serial).not_after = (now - expired_for).isoformat()
        with rt.db.read() as db:
            rows = crl.revoked_rows(db, ISSUING, not_expired_before=(now - validity).isoformat())
        assert (serial in {r[0] for r in rows}) is listed


@pytest.mark.parametrize("value", ["keyCompromise", "KEY_COMPROMISE", "key-compromise", "keycompromise"])
def test_reason_spellings(value: str) -> None:
    assert revocation.parse_reason(value) == "keyCompromise"

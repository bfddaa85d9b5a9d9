"""Time at the edges: certificates, CRLs, OCSP responses and access tokens with a frozen or skewed
clock (``core.clock``), checked with openssl where an independent judge exists.

Each test freezes the platform clock at a known instant, acts, then moves the clock to just before
and just after the boundary that matters.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp as x509_ocsp

from core import clock
from core.errors import Problem
from core.security import Actor
from tests.ca.conftest import make_csr
from tests.factories import unique_id_number

ACTOR = Actor.cli("clock-tests")
T0 = datetime(2027, 3, 1, 8, 0, 0, tzinfo=UTC)  # the frozen "now" of these tests


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _chain_files(rt, tmp_path: Path) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    from ca import service

    with rt.db.read() as db:
        chain = service.ca_chain(rt, db)
    issuing, root = tmp_path / "issuing.pem", tmp_path / "root.pem"
    issuing.write_bytes(_pem(chain[0]))
    root.write_bytes(_pem(chain[-1]))
    return issuing, root


def _openssl_verify(root: Path, issuing: Path, leaf: Path, at: datetime, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "verify", "-attime", str(int(at.timestamp())), "-CAfile", str(root), "-untrusted", str(issuing), *extra, str(leaf)],
        capture_output=True,
        text=True,
    )


@pytest.fixture
def person(fresh_rt) -> str:  # type: ignore[no-untyped-def]
    from identity import service as identity

    with fresh_rt.db.transaction() as db:
        return identity.register_person(fresh_rt, db, ACTOR, name="钱七", id_number=unique_id_number()).id


def _issue(rt, person: str) -> x509.Certificate:  # type: ignore[no-untyped-def]
    from ca import service

    with rt.db.transaction() as db:
        issued = service.issue_certificate(rt, db, ACTOR, profile="citizen", csr=make_csr(), subject_id=person)
    return x509.load_der_x509_certificate(issued.der)


def test_certificate_validity_edges_judged_by_openssl(fresh_rt, person: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with clock.frozen(T0):
        cert = _issue(fresh_rt, person)
    nb, na = cert.not_valid_before_utc, cert.not_valid_after_utc
    # Issued "now", never post-dated, and backdated by at most a few minutes (clock skew of relying parties).
    assert T0 - timedelta(minutes=10) <= nb <= T0 and na > nb
    issuing, root = _chain_files(fresh_rt, tmp_path)
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(_pem(cert))
    before = _openssl_verify(root, issuing, leaf, nb - timedelta(seconds=1))
    assert before.returncode != 0 and "not yet valid" in before.stdout + before.stderr
    assert _openssl_verify(root, issuing, leaf, nb).returncode == 0
    # RFC 5280 §4.1.2.5 makes notAfter inclusive; OpenSSL's X509_cmp_time counts the very second as
    # expired, so the last second both agree on is notAfter - 1.
    assert _openssl_verify(root, issuing, leaf, na - timedelta(seconds=1)).returncode == 0
    after = _openssl_verify(root, issuing, leaf, na + timedelta(seconds=1))
    assert after.returncode != 0 and "expired" in after.stdout + after.stderr


def test_certificate_login_refuses_outside_validity(fresh_rt, person: str) -> None:  # type: ignore[no-untyped-def]
    from auth_service.certlogin import CertificateRejected, person_for_certificate

    with clock.frozen(T0):
        cert = _issue(fresh_rt, person)
    der = cert.public_bytes(serialization.Encoding.DER)
    with clock.frozen(cert.not_valid_after_utc - timedelta(seconds=1)):
        assert person_for_certificate(fresh_rt, der) == person
    with clock.frozen(cert.not_valid_after_utc + timedelta(seconds=1)), pytest.raises(CertificateRejected):
        person_for_certificate(fresh_rt, der)
    with clock.frozen(cert.not_valid_before_utc - timedelta(seconds=1)), pytest.raises(CertificateRejected):
        person_for_certificate(fresh_rt, der)


def test_crl_times_republication_and_expiry(fresh_rt, person: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from ca import crl, revocation

    name = fresh_rt.settings.ca_issuing_name
    validity = timedelta(hours=fresh_rt.settings.crl_validity_hours)
    with clock.frozen(T0):
        cert = _issue(fresh_rt, person)
        with fresh_rt.db.transaction() as db:
            revocation.revoke(fresh_rt, db, ACTOR, serial=format(cert.serial_number, "x"), reason="keyCompromise")
        with fresh_rt.db.transaction() as db:
            crl.publish_crls(fresh_rt, db, ACTOR, name, trigger="test")
        with fresh_rt.db.read() as db:
            der = crl.current_crl(fresh_rt, db, name)
    parsed = x509.load_der_x509_crl(der)
    assert parsed.last_update_utc == T0 and parsed.next_update_utc == T0 + validity
    # Re-published on schedule at half its validity, not before (nothing changed meanwhile).
    with clock.frozen(T0 + validity / 2 - timedelta(seconds=1)), fresh_rt.db.read() as db:
        assert name not in crl.due_for_publication(db)
    with clock.frozen(T0 + validity / 2), fresh_rt.db.read() as db:
        assert name in crl.due_for_publication(db)
    # openssl: the revoked certificate is refused while the CRL is current; a stale CRL is refused too.
    issuing, root = _chain_files(fresh_rt, tmp_path)
    leaf, crl_pem = tmp_path / "leaf.pem", tmp_path / "crl.pem"
    leaf.write_bytes(_pem(cert))
    crl_pem.write_bytes(parsed.public_bytes(serialization.Encoding.PEM))
    current = _openssl_verify(root, issuing, leaf, T0 + timedelta(hours=1), "-crl_check", "-CRLfile", str(crl_pem))
    assert current.returncode != 0 and "revoked" in current.stdout + current.stderr
    stale = _openssl_verify(root, issuing, leaf, T0 + validity + timedelta(seconds=1), "-crl_check", "-CRLfile", str(crl_pem))
    assert stale.returncode != 0 and "CRL has expired" in stale.stdout + stale.stderr


def test_ocsp_response_times_and_refresh_before_half_validity(fresh_rt, person: str) -> None:  # type: ignore[no-untyped-def]
    from ca import ocsp

    validity = timedelta(minutes=fresh_rt.settings.ocsp_validity_minutes)
    t0 = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)  # within the responder certificate's life
    with clock.frozen(t0):
        serial = format(_issue(fresh_rt, person).serial_number, "x")
        assert ocsp.presign_missing(fresh_rt)[0] >= 1  # what the publisher does for new certificates
        with fresh_rt.db.read() as db:
            first = ocsp.response_for(fresh_rt, db, serial)
    resp = x509_ocsp.load_der_ocsp_response(first)
    assert resp.this_update_utc == t0 and resp.next_update_utc == t0 + validity
    # (producedAt is set by cryptography's OCSPResponseBuilder from the system clock, which the
    # platform clock equals outside tests; thisUpdate/nextUpdate follow the platform clock.)
    # The stored response is served as is until 40 % of its validity, when the publisher re-signs it …
    with clock.frozen(t0 + validity * 0.4 - timedelta(seconds=5)):
        assert ocsp.refresh_stale(fresh_rt) == 0
        with fresh_rt.db.read() as db:
            assert ocsp.response_for(fresh_rt, db, serial) == first
    refreshed_at = t0 + validity * 0.4 + timedelta(seconds=5)
    with clock.frozen(refreshed_at):
        assert ocsp.refresh_stale(fresh_rt) >= 1  # ours, and the platform's own (TSA, seal) certificates
        with fresh_rt.db.read() as db:
            second = x509_ocsp.load_der_ocsp_response(ocsp.response_for(fresh_rt, db, serial))
    assert second.this_update_utc == refreshed_at and second.certificate_status == x509_ocsp.OCSPCertStatus.GOOD
    # … and a worker that finds a stored copy past half its validity (publisher stalled) signs afresh.
    stalled = refreshed_at + validity / 2 + timedelta(seconds=5)
    with clock.frozen(stalled), fresh_rt.db.read() as db:
        third = x509_ocsp.load_der_ocsp_response(ocsp.response_for(fresh_rt, db, serial))
    assert third.this_update_utc == stalled


def test_access_token_lifetime_edges_and_skew(fresh_rt) -> None:  # type: ignore[no-untyped-def]
    from auth_service.oidc.access_token import CLOCK_SKEW, issue_access_token, verify_access_token_claims

    lifetime = 600
    with clock.frozen(T0):
        token, _expires, _jti = issue_access_token(fresh_rt, client_id="c_clock", subject="c_clock", scope="verify", lifetime=lifetime)
    exp = T0 + timedelta(seconds=lifetime)
    # Accepted until exp plus the tolerated skew, refused after; a token "from the future" likewise.
    with clock.frozen(exp + timedelta(seconds=CLOCK_SKEW - 1)):
        assert verify_access_token_claims(fresh_rt, token)["sub"] == "c_clock"
    with clock.frozen(exp + timedelta(seconds=CLOCK_SKEW)), pytest.raises(Problem) as err:
        verify_access_token_claims(fresh_rt, token)
    assert err.value.code == "auth.invalid_token" and "expired" in str(err.value.detail)
    with clock.frozen(T0 - timedelta(seconds=CLOCK_SKEW - 1)):
        verify_access_token_claims(fresh_rt, token)
    with clock.frozen(T0 - timedelta(seconds=CLOCK_SKEW + 1)), pytest.raises(Problem) as err:
        verify_access_token_claims(fresh_rt, token)
    assert "future" in str(err.value.detail)

"""The OCSP responder over real HTTP, checked with ``openssl ocsp`` and pkilint, plus the request
edge cases (nonce, unknown, unauthorized, malformed) and the HTTP caching headers."""

from __future__ import annotations

import base64
import os
import re
import subprocess
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp as x509_ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID

from ca import revocation, service
from ca.models import Certificate
from tests.ca.conftest import ACTOR, Subjects, make_csr, write_chain

LINT_OCSP = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "lint_ocsp_response")
DATA = Path(__file__).resolve().parent.parent / "data" / "ca" / "ocsp"
OCSP_RESPONSE = "application/ocsp-response"


def issue(rt, subjects: Subjects) -> x509.Certificate:  # type: ignore[no-untyped-def]
    with rt.db.transaction() as db:
        return service.issue_certificate(rt, db, ACTOR, profile="citizen", csr=make_csr(), subject_id=subjects.person_id).certificate


def aia_ocsp_url(cert: x509.Certificate) -> str:
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    return next(d.access_location.value for d in aia if d.access_method == AuthorityInformationAccessOID.OCSP)


class Pki:
    def __init__(self, rt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
        self.root, self.issuing = write_chain(rt, tmp_path)
        self.chain = tmp_path / "chain.pem"
        self.chain.write_bytes(self.issuing.read_bytes() + self.root.read_bytes())
        self.issuing_cert = x509.load_pem_x509_certificate(self.issuing.read_bytes())
        self.tmp = tmp_path

    def write(self, cert: x509.Certificate) -> Path:
        path = self.tmp / f"{cert.serial_number:x}.pem"
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path

    def openssl_ocsp(self, cert: x509.Certificate, *, nonce: bool) -> subprocess.CompletedProcess[str]:
        args = ["openssl", "ocsp", "-issuer", str(self.issuing), "-cert", str(self.write(cert)), "-url", aia_ocsp_url(cert), "-CAfile", str(self.chain)]
        args += [] if nonce else ["-no_nonce"]
        return subprocess.run(args, capture_output=True, text=True, timeout=60)

    def request(self, cert: x509.Certificate, *, algorithm: hashes.HashAlgorithm | None = None, nonce: bytes | None = None) -> bytes:
        builder = x509_ocsp.OCSPRequestBuilder().add_certificate(cert, self.issuing_cert, algorithm or hashes.SHA1())
        if nonce is not None:
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        return builder.build().public_bytes(serialization.Encoding.DER)


@pytest.fixture
def pki(rt, tmp_path: Path) -> Pki:  # type: ignore[no-untyped-def]
    return Pki(rt, tmp_path)


def _status_line(done: subprocess.CompletedProcess[str]) -> str:
    assert "Response verify OK" in done.stderr, done.stderr + done.stdout
    return done.stdout


@pytest.mark.parametrize("nonce", [False, True], ids=["no_nonce", "nonce"])
def test_openssl_ocsp_sees_good_held_and_revoked(rt, live, pki: Pki, subjects: Subjects, nonce: bool) -> None:  # type: ignore[no-untyped-def]
    cert = issue(rt, subjects)
    serial = format(cert.serial_number, "x")
    assert aia_ocsp_url(cert) == f"{rt.settings.public_url}/ocsp" and live.url == rt.settings.public_url

    out = _status_line(pki.openssl_ocsp(cert, nonce=nonce))
    assert re.search(r": good\n", out), out

    with rt.db.transaction() as db:
        revocation.suspend(rt, db, ACTOR, serial=serial)
    out = _status_line(pki.openssl_ocsp(cert, nonce=nonce))
    assert ": revoked" in out and "Reason: certificateHold" in out, out

    with rt.db.transaction() as db:
        revocation.resume(rt, db, ACTOR, serial=serial)
    assert ": good" in _status_line(pki.openssl_ocsp(cert, nonce=nonce))

    with rt.db.transaction() as db:
        revocation.revoke(rt, db, ACTOR, serial=serial, reason="keyCompromise")
    out = _status_line(pki.openssl_ocsp(cert, nonce=nonce))
    assert ": revoked" in out and "Reason: keyCompromise" in out, out
    with rt.db.read() as db:
        revoked_at = datetime.fromisoformat(db.get(Certificate, serial).revoked_at)
    assert f"Revocation Time: {revoked_at.strftime('%b %e %H:%M:%S %Y GMT')}" in out, out


def test_responses_lint_clean_with_pkilint(rt, live, pki: Pki, subjects: Subjects, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    good, revoked, held = issue(rt, subjects), issue(rt, subjects), issue(rt, subjects)
    with rt.db.transaction() as db:
        revocation.revoke(rt, db, ACTOR, serial=format(revoked.serial_number, "x"), reason="affiliationChanged")
    with rt.db.transaction() as db:
        revocation.suspend(rt, db, ACTOR, serial=format(held.serial_number, "x"))
    with httpx.Client(base_url=live.url, timeout=30) as client:
        for name, cert, nonce in (("good", good, None), ("revoked", revoked, None), ("held", held, None), ("nonce", good, os.urandom(16))):
            resp = client.post("/ocsp", content=pki.request(cert, nonce=nonce), headers={"content-type": "application/ocsp-request"})
            path = tmp_path / f"{name}.ocsp"
            path.write_bytes(resp.content)
            done = subprocess.run([LINT_OCSP, "lint", "-s", "ERROR", str(path)], capture_output=True, text=True, timeout=60)
            assert done.returncode == 0 and not done.stdout.strip(), f"{name}: {done.stdout}{done.stderr}"


def test_get_carries_rfc5019_cache_headers_and_conditional_get(rt, live, pki: Pki, subjects: Subjects) -> None:  # type: ignore[no-untyped-def]
    cert = issue(rt, subjects)
    req = pki.request(cert)
    path = "/ocsp/" + quote(base64.b64encode(req).decode(), safe="")
    with httpx.Client(base_url=live.url, timeout=30) as client:
        got = client.get(path)
        assert got.status_code == 200 and got.headers["content-type"] == OCSP_RESPONSE
        resp = x509_ocsp.load_der_ocsp_response(got.content)
        assert resp.response_status == x509_ocsp.OCSPResponseStatus.SUCCESSFUL and resp.certificate_status == x509_ocsp.OCSPCertStatus.GOOD
        assert resp.serial_number == cert.serial_number
        cache_control = got.headers["cache-control"]
        max_age = int(re.search(r"max-age=(\d+)", cache_control).group(1))
        assert "public" in cache_control and 0 < max_age <= (resp.next_update_utc - resp.this_update_utc).total_seconds()
        assert got.headers["etag"].startswith('"') and got.headers["last-modified"] and got.headers["expires"]
        # RFC 5019: the same pre-signed bytes whether asked by GET (either base64 alphabet) or POST.
        assert client.get("/ocsp/" + base64.urlsafe_b64encode(req).decode().rstrip("=")).content == got.content
        posted = client.post("/ocsp", content=req, headers={"content-type": "application/ocsp-request"})
        assert posted.content == got.content
        not_modified = client.get(path, headers={"if-none-match": got.headers["etag"]})
        assert not_modified.status_code == 304 and not_modified.content == b""


def test_nonce_is_echoed_in_a_freshly_signed_response(rt, live, pki: Pki, subjects: Subjects) -> None:  # type: ignore[no-untyped-def]
    cert = issue(rt, subjects)
    with httpx.Client(base_url=live.url, timeout=30) as client:
        answers = []
        for _ in range(2):
            nonce = os.urandom(16)
            resp = x509_ocsp.load_der_ocsp_response(client.post("/ocsp", content=pki.request(cert, nonce=nonce)).content)
            assert resp.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
            answers.append(resp.signature)
        assert answers[0] != answers[1]
        plain = x509_ocsp.load_der_ocsp_response(client.post("/ocsp", content=pki.request(cert)).content)
        assert not any(isinstance(e.value, x509.OCSPNonce) for e in plain.extensions)


def test_sha256_certid_is_answered_with_a_matching_certid(rt, live, pki: Pki, subjects: Subjects) -> None:  # type: ignore[no-untyped-def]
    cert = issue(rt, subjects)
    with httpx.Client(base_url=live.url, timeout=30) as client:
        resp = x509_ocsp.load_der_ocsp_response(client.post("/ocsp", content=pki.request(cert, algorithm=hashes.SHA256())).content)
    assert resp.certificate_status == x509_ocsp.OCSPCertStatus.GOOD
    assert isinstance(resp.hash_algorithm, hashes.SHA256) and resp.serial_number == cert.serial_number


def test_unknown_serial_and_foreign_issuer(rt, live, pki: Pki, subjects: Subjects) -> None:  # type: ignore[no-untyped-def]
    cert = issue(rt, subjects)
    with httpx.Client(base_url=live.url, timeout=30) as client:
        # A serial this CA never issued, under our issuer: "unknown", signed by our responder.
        never = x509_ocsp.OCSPRequestBuilder().add_certificate_by_hash(
            *_issuer_hashes(pki.issuing_cert), 0x1234567890ABCDEF, hashes.SHA1()
        ).build().public_bytes(serialization.Encoding.DER)
        resp = x509_ocsp.load_der_ocsp_response(client.post("/ocsp", content=never).content)
        assert resp.response_status == x509_ocsp.OCSPResponseStatus.SUCCESSFUL
        assert resp.certificate_status == x509_ocsp.OCSPCertStatus.UNKNOWN
        # An issuer we do not serve (the root, or a stranger): "unauthorized" (RFC 6960 §2.3).
        with rt.db.read() as db:
            root = service.root_certificate(rt, db)
        for issuer in (root, cert):
            foreign = x509_ocsp.OCSPRequestBuilder().add_certificate_by_hash(
                *_issuer_hashes(issuer), cert.serial_number, hashes.SHA1()
            ).build().public_bytes(serialization.Encoding.DER)
            resp = x509_ocsp.load_der_ocsp_response(client.post("/ocsp", content=foreign).content)
            assert resp.response_status == x509_ocsp.OCSPResponseStatus.UNAUTHORIZED


def _issuer_hashes(issuer: x509.Certificate) -> tuple[bytes, bytes]:
    from ca.ocsp import IssuerContext

    return IssuerContext.of("x", issuer.public_bytes(serialization.Encoding.DER)).hashes["sha1"]


MALFORMED_FILES = sorted(p.name for p in DATA.glob("*.der"))


@pytest.mark.parametrize("name", MALFORMED_FILES)
def test_malformed_request_files_get_malformed_request(rt, live, name: str) -> None:  # type: ignore[no-untyped-def]
    data = (DATA / name).read_bytes()
    with httpx.Client(base_url=live.url, timeout=30) as client:
        for resp in (
            client.post("/ocsp", content=data, headers={"content-type": "application/ocsp-request"}),
            client.get("/ocsp/" + quote(base64.b64encode(data).decode(), safe="")),
        ):
            assert resp.status_code == 200 and resp.headers["content-type"] == OCSP_RESPONSE
            assert x509_ocsp.load_der_ocsp_response(resp.content).response_status == x509_ocsp.OCSPResponseStatus.MALFORMED_REQUEST


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/ocsp", b""),
        ("POST", "/ocsp", b"\x30" * 20_000),
        ("GET", "/ocsp/%%%not-base64%%%", None),
        ("GET", "/ocsp/AAAA", None),
        ("GET", "/ocsp/" + "A" * 30_000, None),
    ],
    ids=["empty", "oversized", "bad-base64", "not-der", "huge-get"],
)
def test_garbage_never_causes_a_500(rt, live, method: str, path: str, body: bytes | None) -> None:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=live.url, timeout=30) as client:
        resp = client.request(method, path, content=body)
    assert resp.status_code == 200
    assert x509_ocsp.load_der_ocsp_response(resp.content).response_status == x509_ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_other_methods_get_problem_documents(rt, live) -> None:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=live.url, timeout=30) as client:
        resp = client.delete("/ocsp")
    assert resp.status_code == 405 and resp.headers["content-type"].startswith("application/problem+json")

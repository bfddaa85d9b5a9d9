"""The CA over real HTTP: CA certificates at their AIA URL, the certificates API and its guards."""

from __future__ import annotations

import base64
import subprocess

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ca import service
from tests.ca.conftest import ACTOR, DATA, Subjects, make_csr


@pytest.fixture(scope="module")
def tokens(rt) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Access tokens of department systems (client_credentials) holding the CA scopes."""
    from auth_service import service as sso
    from auth_service.oidc.access_token import issue_access_token

    out = {}
    with rt.db.transaction() as db:
        for scope in ("certificates:write", "certificates:read", "openid"):
            client, _ = sso.register_client(rt, db, ACTOR, name=f"ca test {scope}", grant_types=["client_credentials"], scopes=[scope])
            out[scope] = issue_access_token(rt, client_id=client.client_id, subject=client.client_id, scope=scope)[0]
    return out


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _aia_ca_issuers(cert: x509.Certificate) -> str:
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    return next(d.access_location.value for d in aia if d.access_method == x509.oid.AuthorityInformationAccessOID.CA_ISSUERS)


def test_ca_certificates_are_served_at_the_aia_url_they_carry(rt, http: httpx.Client, subjects: Subjects) -> None:  # type: ignore[no-untyped-def]
    with rt.db.transaction() as db:
        leaf = service.issue_certificate(rt, db, ACTOR, profile="citizen", csr=make_csr(), subject_id=subjects.person_id).certificate
    issuing_url = _aia_ca_issuers(leaf)
    assert issuing_url.startswith(http.base_url.__str__().rstrip("/"))
    r = httpx.get(issuing_url)  # the exact URL in the certificate, no auth
    assert r.status_code == 200 and r.headers["content-type"] == "application/pkix-cert"
    issuing = x509.load_der_x509_certificate(r.content)
    leaf.verify_directly_issued_by(issuing)
    r_root = httpx.get(_aia_ca_issuers(issuing))
    assert r_root.status_code == 200 and r_root.headers["content-type"] == "application/pkix-cert"
    root = x509.load_der_x509_certificate(r_root.content)
    issuing.verify_directly_issued_by(root)
    missing = http.get("/ca/nope.cer")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["code"] == "ca.unknown_ca"


def test_writes_need_a_token_with_the_right_role_or_scope(http: httpx.Client, tokens: dict[str, str], subjects: Subjects) -> None:
    body = {"profile": "citizen", "csr": make_csr().decode(), "subject_id": subjects.person_id}
    r = http.post("/api/v1/certificates", json=body)
    assert r.status_code == 401 and r.json()["code"] == "auth.missing_token"
    r = http.post("/api/v1/certificates", json=body, headers=_auth("not-a-token"))
    assert r.status_code == 401
    for scope in ("certificates:read", "openid"):
        r = http.post("/api/v1/certificates", json=body, headers=_auth(tokens[scope]))
        assert r.status_code == 403 and r.json()["code"] == "auth.insufficient_role", scope
    r = http.get("/api/v1/certificates/abcdef", headers=_auth(tokens["openid"]))
    assert r.status_code == 403


def test_issue_show_and_download_over_http(rt, http: httpx.Client, tokens: dict[str, str], subjects: Subjects, tmp_path) -> None:  # type: ignore[no-untyped-def]
    der_csr = make_csr(pem=False)
    r = http.post(
        "/api/v1/certificates",
        json={"profile": "server", "csr": base64.b64encode(der_csr).decode(), "subject_id": subjects.dept_uscc, "dns_names": [f"api.{subjects.suffix}"]},
        headers=_auth(tokens["certificates:write"]),
    )
    assert r.status_code == 201, r.text
    body = r.json()
    serial = body["serial"]
    assert r.headers["location"] == f"/api/v1/certificates/{serial}"
    cert = x509.load_pem_x509_certificate(body["pem"].encode())
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName) == [f"api.{subjects.suffix}"]

    shown = http.get(f"/api/v1/certificates/{serial}", headers=_auth(tokens["certificates:read"]))
    assert shown.status_code == 200 and shown.json()["status"] == "issued" and shown.json()["maintenance"][0]["kind"] == "issuance"

    pem = http.get(f"/api/v1/certificates/{serial}/download", params={"format": "pem"}, headers=_auth(tokens["certificates:read"]))
    der = http.get(f"/api/v1/certificates/{serial}/download", params={"format": "der"}, headers=_auth(tokens["certificates:read"]))
    p7 = http.get(f"/api/v1/certificates/{serial}/download", params={"format": "p7b"}, headers=_auth(tokens["certificates:read"]))
    assert pem.headers["content-type"].startswith("application/x-pem-file") and x509.load_pem_x509_certificate(pem.content) == cert
    assert der.headers["content-type"] == "application/pkix-cert" and x509.load_der_x509_certificate(der.content) == cert
    assert p7.headers["content-type"].startswith("application/pkcs7-mime")
    bundle = tmp_path / "chain.p7b"
    bundle.write_bytes(p7.content)
    printed = subprocess.run(["openssl", "pkcs7", "-inform", "DER", "-in", str(bundle), "-print_certs", "-noout"], capture_output=True, text=True)
    assert printed.returncode == 0 and printed.stdout.count("subject=") == 3  # leaf, issuing CA, root
    bad_format = http.get(f"/api/v1/certificates/{serial}/download", params={"format": "zip"}, headers=_auth(tokens["certificates:read"]))
    assert bad_format.status_code == 422 and bad_format.headers["content-type"] == "application/problem+json"

    renewed = http.post(f"/api/v1/certificates/{serial}/renew", json={"reason": "yearly"}, headers=_auth(tokens["certificates:write"]))
    assert renewed.status_code == 201 and renewed.json()["replaces_serial"] == serial


@pytest.mark.parametrize(
    ("fixture", "status", "code"),
    [
        ("garbage.csr", 400, "csr.malformed"),
        ("truncated.der.csr", 400, "csr.truncated"),
        ("pem_with_junk.csr", 400, "csr.pem_junk"),
        ("invalid_signature.der.csr", 400, "csr.bad_signature"),
        ("oversized.csr", 413, "csr.too_large"),
        ("short_key.der.csr", 422, "csr.weak_key"),
    ],
)
def test_bad_csrs_over_http_are_problem_documents(http: httpx.Client, tokens: dict[str, str], subjects: Subjects, fixture: str, status: int, code: str) -> None:
    data = (DATA / fixture).read_bytes()
    text = data.decode() if data.startswith(b"-----") or data.startswith(b"Here") else base64.b64encode(data).decode()
    if fixture == "pem_with_junk.csr":
        text = data.decode()
    r = http.post("/api/v1/certificates", json={"profile": "citizen", "csr": text, "subject_id": subjects.person_id}, headers=_auth(tokens["certificates:write"]))
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == code and r.json()["type"].startswith("urn:eauth:problem:")


def test_other_bad_requests_over_http(http: httpx.Client, tokens: dict[str, str], subjects: Subjects) -> None:
    auth = _auth(tokens["certificates:write"])
    cases = [
        ({"profile": "nope", "csr": make_csr().decode(), "subject_id": subjects.person_id}, 400, "ca.unknown_profile"),
        ({"profile": "citizen", "csr": make_csr().decode(), "subject_id": "110105194912310021"}, 422, "ca.unknown_subject"),
        ({"profile": "server", "csr": make_csr().decode(), "subject_id": subjects.dept_id, "dns_names": ["www.elsewhere.gov.cn"]}, 403, "ca.dns_not_authorised"),
        ({"profile": "citizen", "csr": "%%% not base64 %%%", "subject_id": subjects.person_id}, 400, "csr.malformed"),
        ({"profile": "citizen"}, 422, "request.invalid_fields"),
        ({"profile": "citizen", "csr": "x", "unexpected": 1}, 422, "request.invalid_fields"),
    ]
    for body, status, code in cases:
        r = http.post("/api/v1/certificates", json=body, headers=auth)
        assert (r.status_code, r.json()["code"]) == (status, code), body
    r = http.post("/api/v1/certificates", content=b"{not json", headers=auth | {"content-type": "application/json"})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    r = http.get("/api/v1/certificates/zz-not-hex", headers=_auth(tokens["certificates:read"]))
    assert r.status_code == 400 and r.json()["code"] == "ca.bad_serial"
    r = http.get("/api/v1/certificates/abcdef0123", headers=_auth(tokens["certificates:read"]))
    assert r.status_code == 404 and r.json()["code"] == "ca.certificate_not_found"


def test_expiry_report_over_http(http: httpx.Client, tokens: dict[str, str]) -> None:
    r = http.get("/api/v1/certificates", params={"expiring_days": 3650}, headers=_auth(tokens["certificates:read"]))
    assert r.status_code == 200 and isinstance(r.json(), list) and r.json()
    assert all(item["pem"] is None for item in r.json())
    r = http.get("/api/v1/certificates", params={"expiring_days": -5}, headers=_auth(tokens["certificates:read"]))
    assert r.status_code == 422


def test_ca_pem_and_list(http: httpx.Client, tokens: dict[str, str]) -> None:
    r = http.get("/ca/root.pem")
    assert r.status_code == 200 and x509.load_pem_x509_certificate(r.content).subject.rfc4514_string() == "CN=eAuth Root CA,O=eAuth,C=CN"
    assert http.get("/api/v1/ca").status_code == 401
    listed = http.get("/api/v1/ca", headers=_auth(tokens["certificates:read"]))
    assert {a["name"] for a in listed.json()} >= {"root", "public-service"}
    _ = serialization

"""The seals and verification API over real HTTP with real access tokens (client_credentials-style
RFC 9068 tokens signed in the HSM)."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from tests.signing.conftest import DATA, auth, mint


def test_seal_pdf_raw_body_and_verify_through_the_api(http: httpx.Client, seal, seal_token, licence_pdf) -> None:  # type: ignore[no-untyped-def]
    r = http.post(f"/api/v1/seals/{seal.id}/pdf", params={"level": "B-T"}, content=licence_pdf, headers=auth(seal_token) | {"Content-Type": "application/pdf"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf" and r.content.startswith(b"%PDF-")
    doc_id = r.headers["x-document-id"]
    assert r.headers["x-verify-url"].endswith(f"/verify/{doc_id}")
    v = http.post("/api/v1/verifications", content=r.content, headers=auth(seal_token) | {"Content-Type": "application/pdf"})
    assert v.status_code == 200, v.text
    report = v.json()
    assert report["indication"] == "TOTAL-PASSED" and report["colour"] == "green"
    assert report["document"]["registered_id"] == doc_id
    (sig,) = report["signatures"]
    assert sig["level"] == "B-T" and sig["signer"]["seal_id"] == seal.id and sig["signing_time_source"] == "timestamp"
    assert sig["coverage"]["whole_document"] is True


def test_seal_pdf_multipart_default_level_is_b_lt(http: httpx.Client, seal, seal_token, licence_pdf) -> None:  # type: ignore[no-untyped-def]
    r = http.post(f"/api/v1/seals/{seal.id}/pdf", files={"file": ("licence.pdf", licence_pdf, "application/pdf")}, headers=auth(seal_token))
    assert r.status_code == 200, r.text
    assert r.headers["x-signature-level"] == "B-LT"
    v = http.post("/api/v1/verifications", files={"file": ("sealed.pdf", r.content, "application/pdf")}, headers=auth(seal_token))
    report = v.json()
    assert report["document"]["name"] == "sealed.pdf"
    assert [s["level"] for s in report["signatures"]] == ["B-LT"] and report["indication"] == "TOTAL-PASSED"


def test_seal_into_an_existing_field_and_invisible(http: httpx.Client, seal, seal_token) -> None:  # type: ignore[no-untyped-def]
    pdf = (DATA / "with_field.pdf").read_bytes()
    r = http.post(f"/api/v1/seals/{seal.id}/pdf", params={"level": "B-B", "field": "DeptSeal"}, content=pdf, headers=auth(seal_token) | {"Content-Type": "application/pdf"})
    assert r.status_code == 200, r.text
    v = http.post("/api/v1/verifications", content=r.content, headers=auth(seal_token)).json()
    assert [s["id"] for s in v["signatures"]] == ["DeptSeal"]
    again = http.post(f"/api/v1/seals/{seal.id}/pdf", params={"level": "B-B", "field": "DeptSeal"}, content=r.content, headers=auth(seal_token))
    assert again.status_code == 409 and again.json()["code"] == "signing.field_filled"
    missing = http.post(f"/api/v1/seals/{seal.id}/pdf", params={"level": "B-B", "field": "Nope"}, content=pdf, headers=auth(seal_token))
    assert missing.status_code == 404 and missing.json()["code"] == "signing.field_not_found"
    r = http.post(f"/api/v1/seals/{seal.id}/pdf", params={"level": "B-B", "visible": "false"}, content=pdf, headers=auth(seal_token))
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("params", "code"),
    [({"level": "B-X"}, "signing.bad_level"), ({"box": "1,2,3"}, "signing.bad_box"), ({"box": "10,10,20,20"}, "signing.bad_box"), ({"page": "5"}, "signing.bad_page"), ({"docmdp": "7"}, "request.invalid_fields")],
)
def test_bad_sealing_options_are_422(http: httpx.Client, seal, seal_token, licence_pdf, params, code) -> None:  # type: ignore[no-untyped-def]
    r = http.post(f"/api/v1/seals/{seal.id}/pdf", params=params, content=licence_pdf, headers=auth(seal_token))
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", r.text
    assert r.json()["code"] == code


@pytest.mark.parametrize(
    ("name", "status", "code"),
    [
        ("not_a_pdf.pdf", 415, "signing.not_pdf"),
        ("encrypted.pdf", 400, "signing.pdf_encrypted"),
        ("broken_xref.pdf", 400, "signing.pdf_unreadable"),
        ("truncated", 400, "signing.pdf_truncated"),
        ("empty", 400, "signing.empty"),
    ],
)
def test_bad_pdfs_are_4xx_problems_with_their_own_code(http: httpx.Client, seal, seal_token, licence_pdf, name, status, code) -> None:  # type: ignore[no-untyped-def]
    body = {"truncated": licence_pdf[: len(licence_pdf) // 2], "empty": b""}.get(name) if name in ("truncated", "empty") else (DATA / name).read_bytes()
    r = http.post(f"/api/v1/seals/{seal.id}/pdf", params={"level": "B-B"}, content=body, headers=auth(seal_token) | {"Content-Type": "application/pdf"})
    assert r.status_code == status and r.headers["content-type"] == "application/problem+json", r.text
    assert r.json()["code"] == code
    # verification of the same bytes: a 4xx problem too (never a 500)
    v = http.post("/api/v1/verifications", content=body, headers=auth(seal_token))
    assert 400 <= v.status_code < 500, v.text
    assert v.json()["code"].startswith(("verify.", "signing."))


def test_oversized_upload_is_413_at_the_configured_limit(rt, http: httpx.Client, seal, seal_token, licence_pdf) -> None:  # type: ignore[no-untyped-def]
    limit = rt.settings.max_upload_bytes
    big = licence_pdf[:-6] + b" " * (limit + 1024) + b"%%EOF\n"
    r = http.post(f"/api/v1/seals/{seal.id}/pdf", content=big, headers=auth(seal_token) | {"Content-Type": "application/pdf"})
    assert r.status_code == 413 and r.json()["code"] in ("signing.too_large", "request.too_large")
    v = http.post("/api/v1/verifications", content=big, headers=auth(seal_token))
    assert v.status_code == 413


def test_seal_records_jws_and_cms(http: httpx.Client, seal, seal_token, pki, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from signing.records import canonical_json
    from tests.signing.conftest import openssl

    record = {"licence": "JY14601000000001", "holder": "海口市示范科技有限公司", "valid_until": "2031-12-31"}
    r = http.post(f"/api/v1/seals/{seal.id}/records", json={"record": record, "formats": ["jws", "cms"], "level": "B-T"}, headers=auth(seal_token))
    assert r.status_code == 200, r.text
    (result,) = r.json()["results"]
    jws, cms = result["jws"]["signature"], result["cms"]["signature"]
    v = http.post("/api/v1/verifications", content=jws.encode(), headers=auth(seal_token)).json()
    assert v["indication"] == "TOTAL-PASSED" and v["document"]["kind"] == "jws" and v["signatures"][0]["level"] == "B-T"
    # CMS: detached, verified by us (multipart with the data) and by openssl
    der = base64.b64decode(cms)
    v = http.post("/api/v1/verifications", files={"file": ("r.p7s", der), "detached": ("r.json", canonical_json(record))}, headers=auth(seal_token)).json()
    assert v["indication"] == "TOTAL-PASSED" and v["signatures"][0]["format"] == "CAdES" and v["signatures"][0]["level"] == "B-T"
    (tmp_path / "r.p7s").write_bytes(der)
    (tmp_path / "r.json").write_bytes(canonical_json(record))
    ok = openssl("cms", "-verify", "-binary", "-inform", "DER", "-in", str(tmp_path / "r.p7s"), "-content", str(tmp_path / "r.json"), "-CAfile", str(pki / "root.pem"), "-purpose", "any", "-out", "/dev/null")
    assert ok.returncode == 0 and b"Verification successful" in ok.stderr, ok.stderr
    (tmp_path / "r2.json").write_bytes(canonical_json(record | {"valid_until": "2099-12-31"}))
    bad = openssl("cms", "-verify", "-binary", "-inform", "DER", "-in", str(tmp_path / "r.p7s"), "-content", str(tmp_path / "r2.json"), "-CAfile", str(pki / "root.pem"), "-purpose", "any", "-out", "/dev/null")
    assert bad.returncode != 0
    # detached CMS without its data: a problem naming what is missing
    v = http.post("/api/v1/verifications", content=der, headers=auth(seal_token))
    assert v.status_code == 400 and v.json()["code"] == "verify.cms_content_missing"


def test_seal_records_batch_and_bad_bodies(http: httpx.Client, seal, seal_token) -> None:  # type: ignore[no-untyped-def]
    r = http.post(f"/api/v1/seals/{seal.id}/records", json={"records": [{"n": i} for i in range(50)]}, headers=auth(seal_token))
    assert r.status_code == 200 and r.json()["count"] == 50
    assert len({x["jws"]["document_id"] for x in r.json()["results"]}) == 50
    cases = [
        (b"not json", 400, "signing.bad_json"),
        (json.dumps([1, 2]).encode(), 400, "signing.bad_json"),
        (json.dumps({"x": 1}).encode(), 422, "signing.bad_records"),
        (json.dumps({"records": []}).encode(), 422, "signing.bad_record_count"),
        (json.dumps({"record": {}, "formats": ["xml"]}).encode(), 422, "signing.bad_record_format"),
        (json.dumps({"record": {}, "level": "B-LTA"}).encode(), 422, "signing.bad_record_level"),
        (("[" * 100 + "]" * 100).encode(), 400, "signing.bad_json"),
        (("{\"record\": {\"a\": " + "[" * 40 + "]" * 40 + "}}").encode(), 400, "request.too_deep"),
    ]
    for body, status, code in cases:
        r = http.post(f"/api/v1/seals/{seal.id}/records", content=body, headers=auth(seal_token) | {"Content-Type": "application/json"})
        assert r.status_code == status and r.json()["code"] == code, (body[:40], r.text)


def test_write_routes_refuse_missing_or_wrong_tokens(rt, http: httpx.Client, seal, dept_client, licence_pdf) -> None:  # type: ignore[no-untyped-def]
    from auth_service import service as sso
    from core.security import Actor

    routes = [f"/api/v1/seals/{seal.id}/pdf", f"/api/v1/seals/{seal.id}/records", "/api/v1/verifications"]
    for path in routes:
        r = http.post(path, content=licence_pdf)
        assert r.status_code == 401 and r.json()["code"] == "auth.missing_token" and "Bearer" in r.headers["www-authenticate"], path
        r = http.post(path, content=licence_pdf, headers=auth("eyJhbGciOiJub25lIn0.e30."))
        assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json", path
    # a valid token for another seal / without verify
    other = mint(rt, dept_client.client_id, "seal:0000000000000000")
    for path in routes:
        r = http.post(path, content=licence_pdf, headers=auth(other))
        assert r.status_code == 403 and r.json()["code"] in ("auth.insufficient_scope", "auth.insufficient_role"), path
    # the right scope, but a client that is not on the seal's list
    with rt.db.transaction() as db:
        stranger, _ = sso.register_client(rt, db, Actor.cli(), name="另一个系统", grant_types=["client_credentials"], scopes=[f"seal:{seal.id}"])
    token = mint(rt, stranger.client_id, f"seal:{seal.id}")
    r = http.post(f"/api/v1/seals/{seal.id}/pdf", params={"level": "B-B"}, content=licence_pdf, headers=auth(token))
    assert r.status_code == 403 and r.json()["code"] == "signing.client_not_allowed"
    # operators' listing is not for department systems
    r = http.get("/api/v1/seals", headers=auth(mint(rt, dept_client.client_id, f"seal:{seal.id} verify")))
    assert r.status_code == 403
    assert http.get("/api/v1/seals").status_code == 401
    # unknown seal with a token for it: 404
    token = mint(rt, dept_client.client_id, "seal:ffffffffffffffff")
    r = http.post("/api/v1/seals/ffffffffffffffff/pdf", params={"level": "B-B"}, content=licence_pdf, headers=auth(token))
    assert r.status_code == 404 and r.json()["code"] == "signing.seal_not_found"


def test_operators_list_and_show_seals(rt, http: httpx.Client, seal, department) -> None:  # type: ignore[no-untyped-def]
    from tests.admin.conftest import open_operator
    from core.security import Role
    from auth_service.oidc.access_token import issue_access_token

    from auth_service import service as sso
    from core.security import Actor

    op = open_operator(rt, str(http.base_url).rstrip("/"), frozenset({Role.DEPARTMENT_ADMIN}), name="印章管理员", department_id=department.id)
    op.http.close()
    with rt.db.transaction() as db:
        console, _ = sso.register_client(rt, db, Actor.cli(), name="印章台账", redirect_uris=["https://console.example/cb"])
    token = issue_access_token(rt, client_id=console.client_id, subject=op.person_id, scope="openid", acr="2")[0]
    r = http.get("/api/v1/seals", headers=auth(token))
    assert r.status_code == 200 and seal.id in [s["id"] for s in r.json()]
    r = http.get(f"/api/v1/seals/{seal.id}", headers=auth(token))
    assert r.status_code == 200 and r.json()["certificate"].startswith("-----BEGIN CERTIFICATE-----")
    assert "key_label" in r.json()


def test_pdf_report_from_the_api(http: httpx.Client, seal, seal_token, licence_pdf, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess

    sealed = http.post(f"/api/v1/seals/{seal.id}/pdf", params={"level": "B-T"}, content=licence_pdf, headers=auth(seal_token))
    r = http.post("/api/v1/verifications", content=sealed.content, headers=auth(seal_token) | {"Accept": "application/pdf"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf" and r.content.startswith(b"%PDF-")
    (tmp_path / "report.pdf").write_bytes(r.content)
    text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(tmp_path / "report.pdf"), "-"], capture_output=True, text=True, check=True).stdout
    assert "验证通过" in text and "TOTAL-PASSED" in text and "行政审批专用章" in text and "B-T" in text
    r = http.post("/api/v1/verifications", params={"format": "pdf", "lang": "en"}, content=sealed.content, headers=auth(seal_token))
    (tmp_path / "en.pdf").write_bytes(r.content)
    text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(tmp_path / "en.pdf"), "-"], capture_output=True, text=True, check=True).stdout
    assert "Verification report" in text and "Valid" in text


def test_verifications_are_rate_limited_per_client(rt, http: httpx.Client, seal, seal_token, dept_client) -> None:  # type: ignore[no-untyped-def]
    """``POST /api/v1/verifications`` counts per token subject (area ``verification``, configurable
    like any limit): over it, a 429 problem with Retry-After — before the upload is read — while
    another department system keeps its own budget."""
    from auth_service import service as sso
    from core.ratelimit import EXTENSION_KEY, Limiter, MemoryBackend
    from core.security import Actor
    from signing.web import VERIFY_PER_CLIENT

    assert VERIFY_PER_CLIENT.area == "verification" and VERIFY_PER_CLIENT.limit >= 60
    with rt.db.transaction() as db:
        other, _ = sso.register_client(rt, db, Actor.cli(), name="另一个核验系统", grant_types=["client_credentials"], scopes=["verify"])
    other_token = mint(rt, other.client_id, "verify")
    record = b'{"a":1}'  # not a signature: a 4xx problem, but the call still counts
    previous = rt.extensions.get(EXTENSION_KEY)
    rt.extensions[EXTENSION_KEY] = Limiter(MemoryBackend(), overrides={"verification": (2, 60)})
    try:
        first = [http.post("/api/v1/verifications", content=record, headers=auth(seal_token)).status_code for _ in range(2)]
        assert 429 not in first
        r = http.post("/api/v1/verifications", content=b"x" * 4096, headers=auth(seal_token))
        assert r.status_code == 429 and r.headers["content-type"] == "application/problem+json"
        problem = r.json()
        assert problem["code"] == "rate_limited.verification" and int(r.headers["retry-after"]) >= 1 and problem["retry_after"] >= 1
        r = http.post("/api/v1/verifications", content=record, headers=auth(other_token))
        assert r.status_code != 429, r.text
    finally:
        if previous is None:
            rt.extensions.pop(EXTENSION_KEY, None)
        else:
            rt.extensions[EXTENSION_KEY] = previous

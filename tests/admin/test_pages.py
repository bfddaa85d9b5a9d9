"""The console's main flows over real HTTP, per role, checked with independent tools (openssl)."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core.security import Role
from tests.factories import unique_id_number, unique_phone, unique_uscc


def make_csr() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ignored")])).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def location_id(resp, prefix: str) -> str:  # type: ignore[no-untyped-def]
    assert resp.status_code == 303, resp.text[:600]
    match = re.match(rf"^{prefix}/([0-9a-f]+)", resp.headers["location"])
    assert match, resp.headers["location"]
    return match.group(1)


def split_pem(data: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(data)


def write(path: Path, certs: list[x509.Certificate]) -> Path:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    return path


def test_registration_to_certificate_to_revocation(rt, live, operator, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from core.audit import search

    officer = operator(Role.REGISTRATION_OFFICER, name="吴受理")
    approver = operator(Role.APPROVER, name="郑审批")
    revealer = operator(Role.AUDITOR, Role.PII_REVEAL, name="冯审计")
    id_number, phone = unique_id_number(), unique_phone()

    # 1. the officer registers a citizen; listings mask the ID number and the phone
    r = officer.post("/admin/persons/new", {"name": "陈市民", "id_number": id_number, "phone": phone, "document_type": "resident_id_card"})
    person_id = location_id(r, "/admin/persons")
    page = officer.http.get(f"/admin/persons/{person_id}?done=registered")
    assert page.status_code == 200 and "登记成功" in page.text
    masked = id_number[:6] + "********" + id_number[-4:]
    assert masked in page.text and id_number not in page.text and phone not in page.text
    search_form = officer.http.get("/admin/subscribers").text
    assert 'method="post" action="/admin/subscribers"' in search_form and 'name="csrf_token"' in search_form
    listing = officer.post("/admin/subscribers", {"q": id_number})
    assert masked in listing.text and id_number not in listing.text and "陈市民" in listing.text
    assert "陈市民" in officer.post("/admin/subscribers", {"q": phone}).text
    # a full ID or phone number in the address is refused, not searched (URLs land in logs and history)
    for number in (id_number, phone):
        in_url = officer.http.get("/admin/subscribers", params={"q": number})
        assert in_url.status_code == 400 and "陈市民" not in in_url.text and number not in in_url.text and "搜索表单" in in_url.text
    assert officer.http.post("/admin/subscribers", data={"q": id_number}).status_code == 403  # no CSRF token
    assert "陈市民" in officer.http.get("/admin/subscribers", params={"q": masked}).text
    # revealing is a permission of its own, and audited
    assert "/reveal" not in page.text
    denied = officer.post(f"/admin/persons/{person_id}/reveal", {"reason": "checking"})
    assert denied.status_code == 403 and "auth.insufficient_role" in denied.text
    shown = revealer.post(f"/admin/persons/{person_id}/reveal", {"reason": "公安协查"})
    assert shown.status_code == 200 and id_number in shown.text and phone in shown.text
    assert shown.headers["cache-control"] == "no-store"
    with rt.db.read() as db:
        reveal = search(db, action="identity.person.reveal", target=f"person:{person_id}", limit=1)[0]
    assert reveal.actor == revealer.ref and reveal.details["reason"] == "公安协查"
    assert revealer.post(f"/admin/persons/{person_id}/reveal", {"reason": " "}).status_code == 422

    # 2. a CSR request, submitted by the officer, who cannot approve it
    r = officer.post("/admin/requests/new", {"type": "new", "subject_kind": "person", "subject_id": person_id, "profile": "citizen", "csr": make_csr()})
    request_id = location_id(r, "/admin/requests")
    page = officer.http.get(f"/admin/requests/{request_id}")
    assert 'id="four-eyes-note"' in page.text and 'id="approve"' not in page.text
    both = operator(Role.REGISTRATION_OFFICER, Role.APPROVER, name="双角色")
    r = both.post("/admin/requests/new", {"type": "new", "subject_kind": "person", "subject_id": person_id, "profile": "citizen", "csr": make_csr()})
    own_id = location_id(r, "/admin/requests")
    refused = both.post(f"/admin/requests/{own_id}/approve")
    assert refused.status_code == 403 and "admin.four_eyes" in refused.text
    bad = officer.post("/admin/requests/new", {"type": "new", "subject_kind": "person", "subject_id": person_id, "profile": "citizen", "csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----"})
    assert 400 <= bad.status_code < 500 and "request-form" in bad.text  # the form again, with the problem

    # 3. the approver sees it waiting, approves, and the certificate is issued at once
    assert request_id[-8:] in approver.http.get("/admin/requests?awaiting=me").text
    r = approver.post(f"/admin/requests/{request_id}/approve", {"comment": "证件核验无误"})
    assert r.status_code == 303 and r.headers["location"].endswith("done=done")
    page = approver.http.get(f"/admin/requests/{request_id}")
    serial = re.search(r'id="result-certificate">([0-9a-f]+)<', page.text).group(1)  # type: ignore[union-attr]
    assert "已完成" in page.text and "证件核验无误" in page.text

    # 4. downloads: PEM, DER, P7B — and openssl verifies the chain
    pem = officer.http.get(f"/admin/certificates/{serial}/download?format=pem")
    der = officer.http.get(f"/admin/certificates/{serial}/download?format=der")
    p7b = officer.http.get(f"/admin/certificates/{serial}/download?format=p7b")
    chain = officer.http.get(f"/admin/certificates/{serial}/download?format=chain")
    assert pem.headers["content-type"] == "application/x-pem-file" and der.headers["content-type"] == "application/pkix-cert"
    assert p7b.headers["content-type"] == "application/pkcs7-mime" and f'filename="{serial}.p7b"' in p7b.headers["content-disposition"]
    leaf = x509.load_pem_x509_certificate(pem.content)
    assert leaf == x509.load_der_x509_certificate(der.content) and format(leaf.serial_number, "x") == serial
    certs = split_pem(chain.content)
    root = next(c for c in certs if c.subject == c.issuer)
    issuing = next(c for c in certs[1:] if c.subject != c.issuer)
    (tmp_path / "leaf.pem").write_bytes(pem.content)
    done = subprocess.run(
        ["openssl", "verify", "-CAfile", str(write(tmp_path / "root.pem", [root])), "-untrusted", str(write(tmp_path / "issuing.pem", [issuing])), str(tmp_path / "leaf.pem")],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0 and ": OK" in done.stdout, done.stdout + done.stderr
    (tmp_path / "c.p7b").write_bytes(p7b.content)
    printed = subprocess.run(["openssl", "pkcs7", "-inform", "DER", "-in", str(tmp_path / "c.p7b"), "-print_certs"], capture_output=True, text=True, timeout=60)
    assert printed.returncode == 0 and printed.stdout.count("-----BEGIN CERTIFICATE-----") >= 2
    assert officer.http.get(f"/admin/certificates/{serial}/download?format=zip").status_code == 400
    detail = officer.http.get(f"/admin/certificates/{serial}")
    assert detail.status_code == 200 and serial in detail.text and "/ocsp" in detail.text

    # 5. revocation request → approval → OCSP (openssl against the live responder) says revoked
    def ocsp_status() -> str:
        out = subprocess.run(
            ["openssl", "ocsp", "-issuer", str(tmp_path / "issuing.pem"), "-cert", str(tmp_path / "leaf.pem"), "-url", f"{live.url}/ocsp",
             "-CAfile", str(tmp_path / "root.pem"), "-no_nonce"],
            capture_output=True, text=True, timeout=60,
        )
        assert "Response verify OK" in out.stderr, out.stderr + out.stdout
        return out.stdout

    assert ": good" in ocsp_status()
    r = officer.post("/admin/requests/new", {"type": "revocation", "serial": serial, "reason": "keyCompromise", "comment": "持有人报告私钥丢失"})
    revoke_id = location_id(r, "/admin/requests")
    assert officer.post(f"/admin/requests/{revoke_id}/approve").status_code == 403
    r = approver.post(f"/admin/requests/{revoke_id}/approve")
    assert r.status_code == 303 and r.headers["location"].endswith("done=done")
    status = ocsp_status()
    assert ": revoked" in status and "keyCompromise" in status, status
    assert "已撤销" in officer.http.get(f"/admin/certificates/{serial}").text

    # 6. every step is in the audit log, for the auditor
    with rt.db.read() as db:
        actions = {e.action for e in search(db, target=f"request:{request_id}")} | {e.action for e in search(db, target=f"request:{revoke_id}")}
    assert {"admin.request.create", "admin.request.submit", "admin.request.approve", "admin.request.execute"} <= actions


def test_seal_requests_need_two_approvals(rt, operator) -> None:  # type: ignore[no-untyped-def]
    from identity import service as identity
    from core.security import Actor

    with rt.db.transaction() as db:
        dept = identity.register_org(rt, db, Actor.cli(), name="省市场监督管理局", uscc=unique_uscc(), type="government")
    admin = operator(Role.DEPARTMENT_ADMIN, name="部门管理员", department_id=dept.id)
    first, second = operator(Role.APPROVER, name="审批甲"), operator(Role.APPROVER, name="审批乙")
    r = admin.post("/admin/seals", {"name": "行政许可专用章"})
    assert r.status_code == 303 and r.headers["location"] == "/admin/seals?done=requested"
    page = admin.http.get("/admin/seals?done=requested")
    request_id = re.search(r'href="/admin/requests/([0-9a-f]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = first.post(f"/admin/requests/{request_id}/approve")
    assert r.headers["location"].endswith("done=approved")
    assert "1 / 2" in first.http.get(f"/admin/requests/{request_id}").text
    again = first.post(f"/admin/requests/{request_id}/approve")
    assert again.status_code in (403, 409)  # the same approver never counts twice
    r = second.post(f"/admin/requests/{request_id}/approve")
    assert r.status_code == 303 and r.headers["location"].endswith("done=done"), r.text[:500]
    seals = admin.http.get("/admin/seals")
    seal_id = re.search(r'href="/admin/seals/([0-9a-f]+)"', seals.text).group(1)  # type: ignore[union-attr]
    detail = admin.http.get(f"/admin/seals/{seal_id}")
    assert detail.status_code == 200 and "行政许可专用章" in detail.text
    image = admin.http.get(f"/admin/seals/{seal_id}/image")
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    # another department's administrator sees nothing of it
    with rt.db.transaction() as db:
        elsewhere = identity.register_org(rt, db, Actor.cli(), name="别的部门", uscc=unique_uscc(), type="government")
    other = operator(Role.DEPARTMENT_ADMIN, name="别的部门", department_id=elsewhere.id)
    assert other.http.get(f"/admin/seals/{seal_id}").status_code == 403
    assert other.post(f"/admin/seals/{seal_id}/certificate", {"type": "suspension"}).status_code == 403
    # assign a department system to the seal (its own department's clients only)
    created = admin.post("/admin/clients", {"name": "许可证系统", "grant_types": "client_credentials", "scopes": f"seal:{seal_id}"})
    client_id = re.search(r'id="client-id">([^<]+)<', created.text).group(1)  # type: ignore[union-attr]
    foreign = other.post("/admin/clients", {"name": "别人的系统", "grant_types": "client_credentials", "scopes": "openid"})
    foreign_id = re.search(r'id="client-id">([^<]+)<', foreign.text).group(1)  # type: ignore[union-attr]
    assert admin.post(f"/admin/seals/{seal_id}/clients", {"client_id": foreign_id}).status_code == 403
    assert admin.post(f"/admin/seals/{seal_id}/clients", {"client_id": client_id}).status_code == 303
    assert client_id in admin.http.get(f"/admin/seals/{seal_id}").text
    with rt.db.read() as db:
        from signing import service as signing_service

        assert client_id in signing_service.get_seal(db, seal_id).clients
    # suspending the seal's certificate is a request for two approvers too
    r = admin.post(f"/admin/seals/{seal_id}/certificate", {"type": "suspension", "comment": "印章遗失待查"})
    hold_id = location_id(r, "/admin/requests")
    assert first.post(f"/admin/requests/{hold_id}/approve").headers["location"].endswith("done=approved")
    assert second.post(f"/admin/requests/{hold_id}/approve").headers["location"].endswith("done=done")
    from ca import service as ca_service
    from signing import service as signing_service

    with rt.db.read() as db:
        serial = signing_service.get_seal(db, seal_id).cert_serial
        assert ca_service.get_certificate(db, serial).status == "on_hold"
    assert admin.post(f"/admin/seals/{seal_id}/certificate", {"type": "renewal"}).status_code == 422


def test_department_clients_register_rotate_and_disable(rt, operator) -> None:  # type: ignore[no-untyped-def]
    from identity import service as identity
    from core.security import Actor

    with rt.db.transaction() as db:
        dept = identity.register_org(rt, db, Actor.cli(), name="省人社厅", uscc=unique_uscc(), type="government")
    admin = operator(Role.DEPARTMENT_ADMIN, name="人社管理员", department_id=dept.id)
    r = admin.post("/admin/clients", {"name": "社保查询", "redirect_uris": "https://sb.example.gov.cn/cb", "grant_types": "authorization_code", "scopes": "openid profile"})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    client_id = re.search(r'id="client-id">([^<]+)<', r.text).group(1)  # type: ignore[union-attr]
    secret = re.search(r'id="client-secret">([^<]+)<', r.text).group(1)  # type: ignore[union-attr]
    assert len(secret) >= 32
    detail = admin.http.get(f"/admin/clients/{client_id}")
    assert secret not in detail.text and 'id="client-secret"' not in detail.text  # shown once only
    rotated = admin.post(f"/admin/clients/{client_id}/rotate")
    new_secret = re.search(r'id="client-secret">([^<]+)<', rotated.text).group(1)  # type: ignore[union-attr]
    assert new_secret != secret
    bad = admin.post("/admin/clients", {"name": "坏的", "redirect_uris": "javascript:alert(1)"})
    assert 400 <= bad.status_code < 500
    assert admin.post(f"/admin/clients/{client_id}/disable").status_code == 303
    assert "已停用" in admin.http.get(f"/admin/clients/{client_id}").text
    with rt.db.transaction() as db:
        elsewhere = identity.register_org(rt, db, Actor.cli(), name="别的部门", uscc=unique_uscc(), type="government")
    other = operator(Role.DEPARTMENT_ADMIN, name="别的部门", department_id=elsewhere.id)
    assert other.http.get(f"/admin/clients/{client_id}").status_code == 403


def test_audit_pages_search_entry_verify_and_export(rt, operator) -> None:  # type: ignore[no-untyped-def]
    from core.audit import search

    auditor = operator(Role.AUDITOR, name="审计员")
    page = auditor.http.get("/admin/audit", params={"action": "admin.console.login"})
    assert page.status_code == 200 and "admin.console.login" in page.text
    assert f'title="{auditor.ref}">审计员<' in page.text  # actors read as names, the reference in a tooltip
    seq = int(re.search(r'href="/admin/audit/(\d+)"', page.text).group(1))  # type: ignore[union-attr]
    entry = auditor.http.get(f"/admin/audit/{seq}")
    assert entry.status_code == 200 and "admin.console.login" in entry.text
    assert auditor.http.get("/admin/audit/999999999").status_code == 404
    assert auditor.http.get("/admin/audit?since=yesterday").status_code == 422
    verified = auditor.post("/admin/audit/verify")
    assert verified.status_code == 200 and "审计哈希链完整" in verified.text
    as_csv = auditor.http.get("/admin/audit/export", params={"format": "csv", "action": "admin.console.login"})
    assert as_csv.headers["content-type"].startswith("text/csv") and "attachment" in as_csv.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
    assert rows and all(r["action"] == "admin.console.login" for r in rows)
    as_json = auditor.http.get("/admin/audit/export", params={"format": "json"})
    data = json.loads(as_json.content)
    assert data and {"seq", "hash", "action", "actor"} <= set(data[0])
    assert auditor.http.get("/admin/audit/export", params={"format": "xml"}).status_code == 400
    with rt.db.read() as db:
        kinds = {e.action for e in search(db, actor=auditor.ref, limit=20)}
    assert {"admin.audit.export", "admin.audit.verify"} <= kinds


def test_dashboard_counts_follow_the_registry(rt, operator) -> None:  # type: ignore[no-untyped-def]
    officer = operator(Role.REGISTRATION_OFFICER, name="计数员")

    def count(name: str) -> int:
        page = officer.http.get("/admin")
        return int(re.search(rf'data-count="{name}">(?:<a [^>]*>)?(\d+)', page.text).group(1))  # type: ignore[union-attr]

    persons, submitted = count("persons"), count("submitted")
    r = officer.post("/admin/persons/new", {"name": "新来的", "id_number": unique_id_number()})
    person_id = location_id(r, "/admin/persons")
    officer.post("/admin/requests/new", {"type": "new", "subject_kind": "person", "subject_id": person_id, "profile": "citizen", "csr": make_csr()})
    assert count("persons") == persons + 1 and count("submitted") == submitted + 1


def test_security_headers_on_console_pages(operator) -> None:  # type: ignore[no-untyped-def]
    op = operator(Role.AUDITOR)
    for url in ("/admin", "/admin/audit", "/admin/login"):
        r = op.http.get(url)
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
        assert "<script>" not in r.text and " on" + "click=" not in r.text  # no inline script at all
    page = op.http.get("/admin")
    assert re.search(r'<script src="/admin/static/console.js"', page.text)
    assert op.http.get("/admin/static/console.js").headers["content-type"].startswith("application/javascript") or "javascript" in op.http.get("/admin/static/console.js").headers["content-type"]
    assert op.http.get("/admin/static/../../eauth.db").status_code == 404
    cookie_flags = op.http.get("/admin?lang=en").headers["set-cookie"].lower()
    assert "httponly" in cookie_flags and "samesite=lax" in cookie_flags


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_every_console_page_renders_for_an_all_role_operator(operator, lang: str) -> None:  # type: ignore[no-untyped-def]
    op = operator(*Role, name="全能")
    op.http.cookies.set("eauth_lang", lang)
    for url in ("/admin", "/admin/subscribers", "/admin/persons/new", "/admin/orgs/new", "/admin/requests", "/admin/requests/new",
                "/admin/certificates", "/admin/expiring", "/admin/bulk", "/admin/seals", "/admin/clients", "/admin/audit", "/admin/operators", "/admin/authorities"):
        r = op.http.get(url)
        assert r.status_code == 200, (url, r.text[:400])
        assert f'<html lang="{lang}">' in r.text


def test_bulk_enrolment_upload_progress_and_approval(rt, operator) -> None:  # type: ignore[no-untyped-def]
    import time

    officer = operator(Role.REGISTRATION_OFFICER, name="批量受理")
    approver = operator(Role.APPROVER, name="批量审批")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["name", "id_number", "phone", "csr"])
    writer.writerow(["批量一", unique_id_number(), "", make_csr()])
    writer.writerow(["批量二", "110101199001011230", "", make_csr()])  # a wrong check digit: this row fails alone
    der = x509.load_pem_x509_csr(make_csr().encode()).public_bytes(serialization.Encoding.DER)
    writer.writerow(["批量三", unique_id_number(), unique_phone(), __import__("base64").b64encode(der).decode()])
    files = {"file": ("enrol.csv", out.getvalue().encode("utf-8"), "text/csv")}
    r = officer.http.post("/admin/bulk", data={"csrf_token": officer.csrf, "profile": "citizen"}, files=files)
    job_id = location_id(r, "/admin/bulk")
    deadline = time.time() + 60
    while True:
        progress = officer.http.get(f"/admin/bulk/{job_id}/progress").json()
        if progress["state"] in ("finished", "failed") or time.time() > deadline:
            break
        time.sleep(0.2)
    assert progress == {"state": "finished", "total": 3, "processed": 3, "failed": 1}
    page = officer.http.get(f"/admin/bulk/{job_id}")
    assert "identity.invalid_id_number" in page.text and "批量一" in page.text and "批量三" in page.text
    assert "/approve" not in page.text  # the uploader cannot approve their own job
    assert approver.post(f"/admin/bulk/{job_id}/approve").status_code == 303
    with rt.db.read() as db:
        from admin import bulk, service

        job = bulk.get_job(db, job_id)
        states = [service.get_request(db, row["request"]).request.state for row in job.results if row.get("ok")]
    assert states == ["done", "done"]
    # malformed uploads are 4xx problems, never 500
    for body, code in ((b"\xff\xfe\x00garbage", "admin.bulk_not_utf8"), (b"who,what\n1,2\n", "admin.bulk_bad_header"), (b"name,id_number,csr\n", "admin.bulk_empty")):
        bad = officer.http.post("/admin/bulk", data={"csrf_token": officer.csrf, "profile": "citizen"}, files={"file": ("x.csv", body, "text/csv")})
        assert bad.status_code == 422 and code in bad.text, (code, bad.status_code)
    assert officer.http.post("/admin/bulk", data={"csrf_token": officer.csrf, "profile": "root"}, files=files).status_code == 422


def test_suspension_and_resumption_through_the_console_show_in_ocsp(rt, live, operator, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from ca import service as ca_service
    from identity import service as identity
    from core.security import Actor

    officer = operator(Role.REGISTRATION_OFFICER, name="暂停受理")
    approver = operator(Role.APPROVER, name="暂停审批")
    with rt.db.transaction() as db:
        person = identity.register_person(rt, db, Actor.cli(), name="暂停对象", id_number=unique_id_number())
        issued = ca_service.issue_certificate(rt, db, Actor.cli(), profile="citizen", csr=make_csr().encode(), subject_id=person.id)
        chain = ca_service.ca_chain(rt, db, issued.issuer)
    leaf = write(tmp_path / "leaf.pem", [issued.certificate])
    issuing = write(tmp_path / "issuing.pem", [c for c in chain if c.subject != c.issuer][:1])
    root = write(tmp_path / "root.pem", [c for c in chain if c.subject == c.issuer])

    def status() -> str:
        out = subprocess.run(["openssl", "ocsp", "-issuer", str(issuing), "-cert", str(leaf), "-url", f"{live.url}/ocsp", "-CAfile", str(root), "-no_nonce"],
                             capture_output=True, text=True, timeout=60)
        assert "Response verify OK" in out.stderr, out.stderr
        return out.stdout

    for kind, expected in (("suspension", "certificateHold"), ("resumption", ": good")):
        r = officer.post("/admin/requests/new", {"type": kind, "serial": issued.serial})
        request_id = location_id(r, "/admin/requests")
        assert approver.post(f"/admin/requests/{request_id}/approve").headers["location"].endswith("done=done")
        assert expected in status()
    # and a renewal through the console issues a successor that names its predecessor
    r = officer.post("/admin/requests/new", {"type": "renewal", "serial": issued.serial, "reason": "到期更新"})
    request_id = location_id(r, "/admin/requests")
    approver.post(f"/admin/requests/{request_id}/approve")
    page = approver.http.get(f"/admin/requests/{request_id}")
    new_serial = re.search(r'id="result-certificate">([0-9a-f]+)<', page.text).group(1)  # type: ignore[union-attr]
    assert new_serial != issued.serial and issued.serial in approver.http.get(f"/admin/certificates/{new_serial}").text


def test_ca_administrator_appoints_operators_and_publishes_crls(rt, operator) -> None:  # type: ignore[no-untyped-def]
    from admin import sessions
    from ca import crl, hierarchy
    from core.audit import search

    admin = operator(Role.CA_ADMIN, name="CA管理员")
    id_number = unique_id_number()
    r = admin.post("/admin/operators", {"person": id_number, "roles": "approver"})
    assert r.status_code == 404  # not registered yet: operators are people from the registry
    officer = operator(Role.REGISTRATION_OFFICER, name="登记员")
    person_id = location_id(officer.post("/admin/persons/new", {"name": "新审批人", "id_number": id_number}), "/admin/persons")
    r = admin.post("/admin/operators", {"person": id_number, "roles": ["approver", "auditor"]})
    assert r.status_code == 303
    listing = admin.http.get("/admin/operators")
    assert "新审批人" in listing.text and id_number not in listing.text
    with rt.db.transaction() as db:
        assert sessions.operator_for(db, person_id)[1] == frozenset({"approver", "auditor"})
        entry = search(db, action="identity.operator.set", target=f"person:{person_id}", limit=1)[0]
    assert entry.actor == admin.ref
    assert admin.post("/admin/operators", {"person": admin.person_id, "roles": "auditor"}).status_code == 403  # not their own
    assert admin.post("/admin/operators", {"person": person_id, "roles": "department_admin"}).status_code == 422
    assert admin.post("/admin/operators", {"person": person_id, "roles": "superuser"}).status_code == 422
    # CRLs on demand
    with rt.db.read() as db:
        issuing = next(a for a in hierarchy.list_authorities(db) if not a.is_root)
        before = crl.latest_crl(db, issuing.name).number  # type: ignore[union-attr]
    page = admin.http.get("/admin/authorities")
    assert page.status_code == 200 and f'id="publish-{issuing.name}"' in page.text
    assert admin.post(f"/admin/authorities/{issuing.name}/crl").status_code == 303
    with rt.db.read() as db:
        assert crl.latest_crl(db, issuing.name).number > before  # type: ignore[union-attr]
    auditor = operator(Role.AUDITOR, name="只读审计")
    assert "publish-" not in auditor.http.get("/admin/authorities").text
    assert auditor.post(f"/admin/authorities/{issuing.name}/crl").status_code == 403
    assert admin.post("/admin/authorities/nope/crl").status_code == 404


def test_the_console_own_client_cannot_be_disabled_from_the_console(rt, operator) -> None:  # type: ignore[no-untyped-def]
    from admin import console_client

    with rt.db.read() as db:
        own = console_client.registration(rt, db).client_id
    admin = operator(Role.CA_ADMIN, name="CA管理员")
    assert own not in admin.http.get("/admin/clients").text
    for action in ("disable", "rotate"):
        r = admin.post(f"/admin/clients/{own}/{action}")
        assert r.status_code == 403 and "admin.first_party_client" in r.text
    assert admin.http.get(f"/admin/clients/{own}").status_code == 403


def test_english_pages_show_labels_not_codes(operator) -> None:  # type: ignore[no-untyped-def]
    op = operator(Role.CA_ADMIN, Role.REGISTRATION_OFFICER, name="English")
    page = op.http.get("/admin?lang=en").text
    assert "CA administrator" in page and "ca_admin" not in page
    form = op.http.get("/admin/requests/new").text
    assert "Citizen certificate" in form


def test_idle_sessions_expire_and_roles_are_read_on_every_request(rt, operator) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from core import clock
    from identity import service as identity
    from core.security import Actor

    op = operator(Role.AUDITOR, name="闲置")
    assert op.http.get("/admin/audit").status_code == 200
    # a role withdrawn takes effect on the next request
    with rt.db.transaction() as db:
        identity.set_operator(rt, db, Actor.cli(), person_id=op.person_id, roles={"registration_officer"})
    r = op.http.get("/admin/audit")
    assert r.status_code == 403 and "auth.insufficient_role" in r.text
    assert op.http.get("/admin/subscribers").status_code == 200
    # idle past the limit: back to the sign-in
    with clock.skewed(timedelta(minutes=rt.settings.session_idle_minutes + 1)):
        r = op.http.get("/admin/subscribers")
    assert r.status_code == 303 and r.headers["location"].startswith("/admin/login")
    assert op.http.get("/admin/subscribers").status_code == 303  # and the session is gone for good
    # a deactivated operator's session ends at once
    other = operator(Role.AUDITOR, name="停用")
    with rt.db.transaction() as db:
        identity.set_operator(rt, db, Actor.cli(), person_id=other.person_id, roles={"auditor"}, active=False)
    assert other.http.get("/admin").status_code == 303


def test_problems_read_in_chinese_on_console_pages(rt, operator) -> None:  # type: ignore[no-untyped-def]
    officer = operator(Role.REGISTRATION_OFFICER, Role.APPROVER, name="中文错误")
    r = officer.post("/admin/persons/new", {"name": "错误号码", "id_number": "110101199001011230"})
    assert r.status_code == 422 and "居民身份证号码无效" in r.text and "[identity.invalid_id_number]" in r.text
    r = officer.http.post("/admin/persons/new", data={"name": "x", "id_number": "y"})
    assert r.status_code == 403 and "表单已过期" in r.text


def test_organisations_drafts_comments_and_search(rt, operator) -> None:  # type: ignore[no-untyped-def]
    from ca import service as ca_service
    from core.audit import search
    from core.security import Actor

    officer = operator(Role.REGISTRATION_OFFICER, name="机构受理")
    approver = operator(Role.APPROVER, name="机构审批")
    uscc = unique_uscc()
    r = officer.post("/admin/orgs/new", {"name": "示例科技有限公司", "uscc": uscc, "type": "enterprise", "dns_suffixes": "example.cn", "document_type": "business_licence"})
    org_id = location_id(r, "/admin/orgs")
    page = officer.http.get(f"/admin/orgs/{org_id}")
    assert page.status_code == 200 and uscc in page.text and "营业执照" in page.text
    assert officer.post("/admin/orgs/new", {"name": "坏代码", "uscc": "91110000ABCDEFGHIJ"}).status_code == 422
    assert "示例科技有限公司" in officer.http.get("/admin/subscribers", params={"q": uscc, "kind": "org"}).text
    # a draft, a comment, submission, then cancellation by its author only
    r = officer.post("/admin/requests/new", {"type": "new", "subject_kind": "org", "subject_id": org_id, "profile": "server", "dns_names": "www.example.cn", "csr": make_csr(), "action": "draft"})
    draft_id = location_id(r, "/admin/requests")
    assert "草稿" in officer.http.get(f"/admin/requests/{draft_id}").text
    assert approver.post(f"/admin/requests/{draft_id}/approve").status_code == 409  # not submitted yet
    assert officer.post(f"/admin/requests/{draft_id}/comment", {"body": "等待营业执照原件"}).status_code == 303
    assert officer.post(f"/admin/requests/{draft_id}/submit").status_code == 303
    assert approver.post(f"/admin/requests/{draft_id}/cancel").status_code == 403  # an approver cannot withdraw it
    assert officer.post(f"/admin/requests/{draft_id}/cancel").status_code == 303
    detail = officer.http.get(f"/admin/requests/{draft_id}").text
    assert "已撤回" in detail and "等待营业执照原件" in detail
    with rt.db.read() as db:
        actions = [e.action for e in search(db, target=f"request:{draft_id}")]
    assert actions[:3] == ["admin.request.cancel", "admin.request.submit", "admin.request.comment"]
    # a rejected request needs a reason
    r = officer.post("/admin/requests/new", {"type": "new", "subject_kind": "org", "subject_id": org_id, "profile": "server", "dns_names": "www.example.cn", "csr": make_csr()})
    rejected_id = location_id(r, "/admin/requests")
    assert approver.post(f"/admin/requests/{rejected_id}/reject", {"comment": ""}).status_code == 422
    assert approver.post(f"/admin/requests/{rejected_id}/reject", {"comment": "域名不属于该机构"}).headers["location"].endswith("done=rejected")
    # search by a certificate serial opens the certificate
    with rt.db.transaction() as db:
        from identity import service as identity

        person = identity.register_person(rt, db, Actor.cli(), name="序列号查找", id_number=unique_id_number())
        issued = ca_service.issue_certificate(rt, db, Actor.cli(), profile="citizen", csr=make_csr().encode(), subject_id=person.id)
    found = officer.http.get("/admin/subscribers", params={"q": issued.serial})
    assert f'href="/admin/certificates/{issued.serial}"' in found.text
    assert officer.http.get("/admin/certificates", params={"serial": issued.serial}).headers["location"] == f"/admin/certificates/{issued.serial}"
    assert officer.http.get("/admin/certificates/ffff0000ffff").status_code == 404


def test_csr_file_upload_der_or_pem_and_its_limits(rt, operator) -> None:  # type: ignore[no-untyped-def]
    officer = operator(Role.REGISTRATION_OFFICER, name="上传受理")
    person_id = location_id(officer.post("/admin/persons/new", {"name": "上传对象", "id_number": unique_id_number()}), "/admin/persons")
    der = x509.load_pem_x509_csr(make_csr().encode()).public_bytes(serialization.Encoding.DER)
    fields = {"csrf_token": officer.csrf, "type": "new", "subject_kind": "person", "subject_id": person_id, "profile": "citizen"}
    r = officer.http.post("/admin/requests/new", data=fields, files={"csr_file": ("me.csr", der, "application/pkcs10")})
    request_id = location_id(r, "/admin/requests")
    assert "EC secp256r1" in officer.http.get(f"/admin/requests/{request_id}").text
    r = officer.http.post("/admin/requests/new", data=fields, files={"csr_file": ("me.pem", make_csr().encode(), "application/x-pem-file")})
    assert r.status_code == 303
    big = officer.http.post("/admin/requests/new", data=fields, files={"csr_file": ("big.csr", b"0" * (16 * 1024 + 1), "application/pkcs10")})
    assert big.status_code == 413 and "admin.csr_too_large" in big.text
    junk = officer.http.post("/admin/requests/new", data=fields, files={"csr_file": ("junk.csr", b"\x30\x03\x02\x01\x00", "application/pkcs10")})
    assert 400 <= junk.status_code < 500

"""The console in headless Chromium, as real users at 1366×768, signing in through the real SSO.

An officer registers a citizen and submits a CSR; she cannot approve it; a second operator approves;
the certificate downloads and ``openssl verify`` accepts it; revocation through the console shows up
in OCSP (``openssl ocsp`` against the live responder); the auditor sees every step and the chain
verifies. Screenshots of the main pages (Chinese) are kept in ``docs/screenshots/admin-*.png``
(refresh them with ``UPDATE_SCREENSHOTS=1 .venv/bin/python -m pytest tests/admin/test_browser.py -k sqlite``).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from core.security import Role
from tests.admin.test_login import Account, make_account
from tests.admin.test_pages import make_csr
from tests.factories import unique_id_number, unique_phone

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "docs" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-component-update", "--no-first-run"]


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def signed_in(chromium, live, account: Account):  # type: ignore[no-untyped-def]
    """A fresh browser profile that signed in to the console through the SSO (password + TOTP)."""
    context = chromium.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN", accept_downloads=True)
    page = context.new_page()
    page.goto(live.url + "/admin")
    page.wait_for_url(re.compile(r"/sso/login\?"))
    page.fill("#login", account.login)
    page.fill("#password", account.password)
    page.click("#submit")
    page.wait_for_url(re.compile(r"/sso/login/otp"))
    page.fill("#totp", account.code())
    page.click("#verify-totp")
    page.wait_for_url(re.compile(r"/admin$"))
    return context, page


def shot(page, name: str, backend: str) -> None:  # type: ignore[no-untyped-def]
    """Screenshots of the SQLite run. They go to docs/screenshots only when asked
    (``UPDATE_SCREENSHOTS=1``), so a test run does not rewrite tracked files."""
    if backend != "sqlite":
        return
    target = SHOTS if os.environ.get("UPDATE_SCREENSHOTS") else Path(os.environ.get("TMPDIR", "/tmp")) / "eauth-screenshots"
    target.mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state("networkidle")
    try:
        page.screenshot(path=str(target / f"admin-{name}.png"), full_page=False)
    except Exception:  # noqa: BLE001 - Chromium under load sometimes refuses one capture; once more
        page.wait_for_timeout(500)
        page.screenshot(path=str(target / f"admin-{name}.png"), full_page=False)
    assert (target / f"admin-{name}.png").stat().st_size > 10_000  # a rendered page, not a blank


def test_officer_approver_auditor_in_chromium(rt, live, chromium, backend: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    officer_acct = make_account(rt, roles=(Role.REGISTRATION_OFFICER,), name="吴受理")
    approver_acct = make_account(rt, roles=(Role.APPROVER,), name="郑审批")
    auditor_acct = make_account(rt, roles=(Role.AUDITOR,), name="冯审计")
    id_number = unique_id_number()

    # -- the officer registers a citizen and submits a CSR --------------------------------------
    officer_ctx, page = signed_in(chromium, live, officer_acct)
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    page.click("text=登记个人")
    page.fill("#name", "陈小明")
    page.fill("#id_number", id_number)
    page.fill("#phone", unique_phone())
    page.click("#person-form button[type=submit]")
    page.wait_for_url(re.compile(r"/admin/persons/[0-9a-f]+"))
    assert page.locator("[data-field=id_number]").inner_text() == id_number[:6] + "********" + id_number[-4:]
    assert id_number not in page.content()
    page.click("#new-request")
    page.select_option("#profile", "citizen")
    page.fill("#csr", make_csr())
    page.click("button[name=action][value=submit]")
    page.wait_for_url(re.compile(r"/admin/requests/[0-9a-f]+"))
    request_url = page.url.split("?")[0]
    request_id = request_url.rsplit("/", 1)[1]
    # four-eyes: no approve button for the officer, and a forged POST is refused
    assert page.locator("#four-eyes-note").is_visible() and page.locator("#approve").count() == 0
    forged = page.request.post(request_url + "/approve", form={"csrf_token": page.locator("input[name=csrf_token]").first.input_value()})
    assert forged.status == 403

    # -- a second operator approves; the certificate is issued and downloads ---------------------
    approver_ctx, apage = signed_in(chromium, live, approver_acct)
    apage.goto(live.url + "/admin/requests?awaiting=me")
    apage.click(f"a[href='/admin/requests/{request_id}']")
    apage.fill("#approve-comment", "身份证件已当面核验")
    apage.click("#approve")
    apage.wait_for_url(re.compile(r"done=done"))
    apage.click("#result-certificate")
    apage.wait_for_url(re.compile(r"/admin/certificates/[0-9a-f]+"))
    serial = apage.url.rsplit("/", 1)[1]
    with apage.expect_download() as info:
        apage.click("#download-pem")
    leaf_path = tmp_path / "leaf.pem"
    info.value.save_as(str(leaf_path))
    with apage.expect_download() as info:
        apage.click("#download-chain")
    chain_path = tmp_path / "chain.pem"
    info.value.save_as(str(chain_path))
    certs = x509.load_pem_x509_certificates(chain_path.read_bytes())
    root = next(c for c in certs if c.subject == c.issuer)
    issuing = next(c for c in certs[1:] if c.subject != c.issuer)
    (tmp_path / "root.pem").write_bytes(root.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "issuing.pem").write_bytes(issuing.public_bytes(serialization.Encoding.PEM))
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(tmp_path / "root.pem"), "-untrusted", str(tmp_path / "issuing.pem"), str(leaf_path)], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0 and ": OK" in verify.stdout, verify.stdout + verify.stderr
    assert format(x509.load_pem_x509_certificate(leaf_path.read_bytes()).serial_number, "x") == serial

    # screenshots of the officer's main pages, with data on them
    page.goto(live.url + "/admin")
    shot(page, "dashboard", backend)
    page.goto(live.url + "/admin/subscribers?q=陈小明")
    shot(page, "subscribers", backend)
    page.goto(request_url)
    shot(page, "request", backend)
    page.goto(live.url + f"/admin/certificates/{serial}")
    shot(page, "certificate", backend)

    # -- revocation through the console shows up in OCSP ------------------------------------------
    page.click("#maintain-revocation")
    page.select_option("#reason", "keyCompromise")
    page.fill("#comment", "持证人报告密钥丢失")
    page.click("button[name=action][value=submit]")
    page.wait_for_url(re.compile(r"/admin/requests/[0-9a-f]+"))
    revoke_id = page.url.split("?")[0].rsplit("/", 1)[1]
    apage.goto(live.url + f"/admin/requests/{revoke_id}")
    apage.click("#approve")
    apage.wait_for_url(re.compile(r"done=done"))
    ocsp = subprocess.run(
        ["openssl", "ocsp", "-issuer", str(tmp_path / "issuing.pem"), "-cert", str(leaf_path), "-url", f"{live.url}/ocsp", "-CAfile", str(tmp_path / "root.pem"), "-no_nonce"],
        capture_output=True, text=True, timeout=60,
    )
    assert "Response verify OK" in ocsp.stderr and ": revoked" in ocsp.stdout and "keyCompromise" in ocsp.stdout, ocsp.stdout + ocsp.stderr

    # -- the auditor sees every step and verifies the chain --------------------------------------
    auditor_ctx, upage = signed_in(chromium, live, auditor_acct)
    upage.click("text=审计日志")
    upage.fill("input[name=target]", f"request:{request_id}")
    upage.click("form[action='/admin/audit'] button[type=submit]")
    upage.wait_for_url(re.compile(r"target=request"))
    text = upage.locator("table").inner_text()
    for action in ("admin.request.create", "admin.request.submit", "admin.request.approve", "admin.request.execute"):
        assert action in text, action
    upage.fill("input[name=target]", f"request:{revoke_id}")
    upage.click("form[action='/admin/audit'] button[type=submit]")
    upage.wait_for_url(re.compile(r"target=request"))
    assert "admin.request.execute" in upage.locator("table").inner_text()
    upage.fill("input[name=target]", "")
    upage.click("form[action='/admin/audit'] button[type=submit]")
    upage.wait_for_url(re.compile(r"target=&"))
    shot(upage, "audit", backend)
    upage.click("#verify-chain")
    result = upage.locator("#verify-result")
    assert result.get_attribute("data-ok") == "true" and "审计哈希链完整" in result.inner_text()
    # and an auditor cannot act on requests
    assert upage.request.post(live.url + f"/admin/requests/{request_id}/comment", form={"body": "x"}).status == 403

    for ctx in (officer_ctx, approver_ctx, auditor_ctx):
        ctx.close()


def test_console_refuses_to_be_framed(chromium, live) -> None:  # type: ignore[no-untyped-def]
    """Clickjacking: a page on another origin frames a console page — Chromium renders nothing of it
    (frame-ancestors 'none' / X-Frame-Options: DENY). A control frame from the same site renders."""
    import http.server
    import threading

    evil = (
        f'<html><body><iframe id="f" src="{live.url}/admin/signed-out" width="600" height="300"></iframe>'
        '<iframe id="g" src="/inner" width="300" height="100"></iframe></body></html>'
    ).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = b"<html><body><h1>inner</h1></body></html>" if self.path == "/inner" else evil
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        context = chromium.new_context()
        page = context.new_page()
        with page.expect_response(lambda r: r.url.endswith("/admin/signed-out")) as framed:
            page.goto(f"http://localhost:{server.server_address[1]}/")
        assert framed.value.status == 200 and "frame-ancestors 'none'" in framed.value.headers["content-security-policy"]
        page.frame_locator("#g").locator("h1").wait_for()  # the control frame renders
        page.wait_for_timeout(500)
        inner = page.frame_locator("#f").locator("body").inner_text()
        assert "signed out" not in inner and "已退出" not in inner, inner
        context.close()
    finally:
        server.shutdown()


def test_seal_image_upload_and_dashboard_traffic_in_chromium(rt, live, chromium, backend: str) -> None:  # type: ignore[no-untyped-def]
    """A department administrator replaces a seal's stamp image (preview before upload, then the
    new image on the page); the dashboard charts the day's OCSP and verification traffic; the CA
    administrator's hierarchy and profile pages render."""
    import io

    import httpx
    from PIL import Image

    from core.security import Actor
    from identity import service as identity
    from signing import service as signing_service
    from tests.admin.test_seals import png
    from tests.factories import unique_uscc

    signing_service.tsa_authority(rt)
    with rt.db.transaction() as db:
        dept = identity.register_org(rt, db, Actor.cli(), name="省林业局", uscc=unique_uscc(), type="government")
    with rt.db.transaction() as db:
        seal = signing_service.create_seal(rt, db, Actor.cli(), name="林权登记专用章", department=dept.id)
    account = make_account(rt, roles=(Role.DEPARTMENT_ADMIN, Role.AUDITOR), name="林业局管理员")
    with rt.db.transaction() as db:
        identity.set_operator(rt, db, Actor.cli(), person_id=account.person_id, roles={"department_admin", "auditor"}, department_id=dept.id)
    context, page = signed_in(chromium, live, account)
    page.on("dialog", lambda dialog: dialog.accept())  # the "replace it?" confirmation

    page.goto(live.url + f"/admin/seals/{seal.id}")
    assert page.locator("#new-image-preview").is_hidden()
    page.set_input_files("#new-image", files=[{"name": "stamp.png", "mimeType": "image/png", "buffer": png(240, 240)}])
    page.locator("#new-image-preview").wait_for(state="visible")
    assert page.locator("#new-image-preview").get_attribute("src").startswith("data:image/png;base64,")  # type: ignore[union-attr]
    page.click("#seal-image-form button[type=submit]")
    page.wait_for_url(re.compile(r"done=image"))
    assert "印章图像已更换" in page.locator("[role=status]").inner_text()
    assert page.evaluate("document.getElementById('seal-image').complete && document.getElementById('seal-image').naturalWidth") == 240
    shown = page.request.get(live.url + f"/admin/seals/{seal.id}/image")
    r, g, b = Image.open(io.BytesIO(shown.body())).convert("RGB").resize((1, 1)).getpixel((0, 0))  # type: ignore[misc]
    assert b > 150 and r < 80, (r, g, b)
    shot(page, "seal", backend)
    # a file that is not a PNG: a 4xx page in Chinese, the image unchanged
    page.goto(live.url + f"/admin/seals/{seal.id}")
    page.set_input_files("#new-image", files=[{"name": "stamp.png", "mimeType": "image/png", "buffer": b"GIF89a not a png"}])
    page.click("#seal-image-form button[type=submit]")
    page.wait_for_load_state()
    assert "不是可读取的 PNG" in page.content()

    # -- traffic reaches the dashboard chart ----------------------------------------------------------
    with httpx.Client(base_url=live.url, timeout=30) as http:
        for _ in range(4):
            http.post("/ocsp", content=b"\x30\x03\x02\x01\x01", headers={"content-type": "application/ocsp-request"})
    page.goto(live.url + "/admin")
    today = __import__("core.clock", fromlist=["now"]).now().date().isoformat()
    bar = page.locator("#chart-traffic rect.bar-ocsp_responses").last
    assert bar.count() == 1 and today in (bar.locator("title").text_content() or "") and float(bar.get_attribute("height") or 0) > 0  # type: ignore[arg-type]
    assert int(page.locator("[data-count=ocsp]").inner_text()) >= 4
    shot(page, "dashboard-traffic", backend)
    context.close()

    # -- the CA administrator's pages ---------------------------------------------------------------
    ca_ctx, cpage = signed_in(chromium, live, make_account(rt, roles=(Role.CA_ADMIN,), name="褚管理"))
    cpage.click("nav >> text=证书认证机构")
    cpage.wait_for_url(re.compile(r"/admin/authorities"))
    assert cpage.locator("#authorities tbody tr").count() >= 2 and cpage.locator("#service-keys tbody tr").count() >= 1
    shot(cpage, "authorities", backend)
    cpage.click("nav >> text=证书模板")
    cpage.wait_for_url(re.compile(r"/admin/profiles"))
    assert cpage.locator("#profile-citizen").is_visible()
    shot(cpage, "profiles", backend)
    ca_ctx.close()

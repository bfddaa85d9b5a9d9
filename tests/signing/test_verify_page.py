"""The public verification page over real HTTP (and, marked slow/browser, in headless Chromium):
no login, Chinese by default, English on request, a green/amber/red verdict, the QR link page,
problems shown on the page (never a 500), a rate limit, no inline script or third-party asset."""

from __future__ import annotations

import re

import httpx
import pytest

from core.security import Actor
from signing import pades, service
from tests.conftest import screenshot_dir
from tests.signing.conftest import DATA

CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-component-update", "--no-first-run"]


@pytest.fixture(scope="module")
def sealed(rt, seal, licence_pdf) -> service.SealedPdf:  # type: ignore[no-untyped-def]
    with rt.db.transaction() as db:
        return service.seal_pdf(rt, db, Actor.cli(), seal_id=seal.id, pdf=licence_pdf, options=pades.PadesOptions(level="B-LT"))


def _tampered(pdf: bytes) -> bytes:
    data = bytearray(pdf)
    at = data.index(b"/MediaBox")
    data[at + 1] ^= 0x20
    return bytes(data)


def _verdict(html: str) -> str:
    found = re.search(r'class="verdict verdict-(\w+)"', html)
    assert found, html[:2000]
    return found.group(1)


def test_form_is_chinese_by_default_and_english_on_request(http: httpx.Client) -> None:
    r = http.get("/verify")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert '<html lang="zh-CN">' in r.text and "验证电子文件" in r.text and 'enctype="multipart/form-data"' in r.text
    assert "<script" not in r.text and " style=" not in r.text and "http://" not in r.text.replace(str(http.base_url), "")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    r = http.get("/verify", params={"lang": "en"})
    assert '<html lang="en">' in r.text and "Verify an electronic document" in r.text
    css = http.get("/verify/assets/verify.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_upload_sealed_pdf_is_green_tampered_red(http: httpx.Client, sealed) -> None:  # type: ignore[no-untyped-def]
    r = http.post("/verify", files={"file": ("营业执照.pdf", sealed.pdf, "application/pdf")})
    assert r.status_code == 200 and _verdict(r.text) == "green", r.text[:3000]
    assert "验证通过" in r.text and "海口市市场监督管理局" in r.text and "行政审批专用章" in r.text and "B-LT" in r.text
    assert sealed.document.id in r.text  # registered here
    r = http.post("/verify", params={"lang": "en"}, files={"file": ("licence.pdf", _tampered(sealed.pdf), "application/pdf")})
    assert _verdict(r.text) == "red" and "Not valid" in r.text and "HASH_FAILURE" in r.text


def test_foreign_signature_is_amber(http: httpx.Client, licence_pdf) -> None:  # type: ignore[no-untyped-def]
    from tests.signing.test_pades import foreign_signed

    r = http.post("/verify", files={"file": ("x.pdf", foreign_signed(licence_pdf), "application/pdf")})
    assert _verdict(r.text) == "amber" and "无法完全确认" in r.text


def test_qr_link_page_and_matching_upload(http: httpx.Client, sealed) -> None:  # type: ignore[no-untyped-def]
    # the visible seal carries a QR code (pyHanko draws it as a form XObject in the widget appearance)
    import io

    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(io.BytesIO(sealed.pdf))
    widget = reader.embedded_signatures[0].sig_field
    resources = widget["/AP"]["/N"].get_object()["/Resources"]["/XObject"]
    assert "/QR" in resources
    path = "/" + sealed.verify_url.split("/", 3)[3]
    r = http.get(path)
    assert r.status_code == 200 and sealed.document.sha256 in r.text and "行政审批专用章" in r.text
    assert f'name="document_id" value="{sealed.document.id}"' in r.text
    r = http.post("/verify", data={"document_id": sealed.document.id}, files={"file": ("a.pdf", sealed.pdf, "application/pdf")})
    assert 'id="qr-match"' in r.text
    r = http.post("/verify", data={"document_id": "AAAAAAAAAAAAAAAA"}, files={"file": ("a.pdf", sealed.pdf, "application/pdf")})
    assert 'id="qr-mismatch"' in r.text
    r = http.get("/verify/AAAAAAAAAAAAAAAA")
    assert r.status_code == 404 and "verify.document_not_found" in r.text
    r = http.get("/verify/" + "x" * 200)
    assert r.status_code == 404


@pytest.mark.parametrize(
    ("name", "status", "code"),
    [("not_a_pdf.pdf", 415, "verify.unknown_format"), ("encrypted.pdf", 400, "verify.pdf_encrypted"), ("broken_xref.pdf", 400, "verify.pdf_unreadable")],
)
def test_bad_uploads_show_the_problem_on_the_page(http: httpx.Client, name, status, code) -> None:  # type: ignore[no-untyped-def]
    r = http.post("/verify", files={"file": (name, (DATA / name).read_bytes(), "application/pdf")})
    assert r.status_code == status and f'data-code="{code}"' in r.text and r.headers["content-type"].startswith("text/html")
    r = http.post("/verify", data={"x": "1"})
    assert r.status_code in (400, 415, 422)


def test_page_is_rate_limited_per_address(rt, http: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    from core.ratelimit import reset
    from signing.web import VERIFY_PAGE_PER_IP

    try:
        statuses = [http.post("/verify", content=b"x", headers={"Content-Type": "application/octet-stream"}).status_code for _ in range(VERIFY_PAGE_PER_IP.limit + 2)]
        assert 429 in statuses and statuses[0] != 429
        r = http.get("/verify/AAAAAAAAAAAAAAAA")
        assert r.status_code == 429 and "rate_limited.verify_page" in r.text and int(r.headers.get("retry-after", "1")) >= 1
    finally:
        reset(rt, VERIFY_PAGE_PER_IP, "127.0.0.1")


# -- headless Chromium --------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.browser
def test_citizen_uploads_a_licence_in_chromium(live, sealed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Playwright's sync API runs an event loop in this thread while it is open: everything that
    # needs asyncio.run (pyHanko sealing) happens before, in the fixtures.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            _browse(chromium, live, sealed, tmp_path)
        finally:
            chromium.close()


def _browse(chromium, live, sealed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    context = chromium.new_context(viewport={"width": 1100, "height": 1400}, locale="zh-CN")
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("requestfailed", lambda req: problems.append(f"failed {req.url}"))
    external: list[str] = []
    page.on("request", lambda req: external.append(req.url) if not req.url.startswith(live.url) else None)

    # the QR link printed on the licence
    page.goto(sealed.verify_url)
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert "行政审批专用章" in page.inner_text("#registered")
    licence = tmp_path / "营业执照.pdf"
    licence.write_bytes(sealed.pdf)
    page.set_input_files("#file", str(licence))
    page.click("#submit")
    page.wait_for_selector("#verdict")
    assert page.get_attribute("#verdict", "data-indication") == "TOTAL-PASSED"
    assert "verdict-green" in page.get_attribute("#verdict", "class")
    assert "验证通过" in page.inner_text("#verdict") and page.is_visible("#qr-match")
    colour = page.eval_on_selector("#verdict", "el => getComputedStyle(el).borderTopColor")
    assert colour == "rgb(27, 127, 59)"  # the stylesheet loaded (same origin, CSP-clean)
    page.screenshot(path=str(screenshot_dir() / "verify.png"), full_page=True)

    # a tampered copy, in English
    page.goto(live.url + "/verify?lang=en")
    assert page.locator("html").get_attribute("lang") == "en"
    tampered = tmp_path / "tampered.pdf"
    tampered.write_bytes(_tampered(sealed.pdf))
    page.set_input_files("#file", str(tampered))
    page.click("#submit")
    page.wait_for_selector("#verdict")
    assert "verdict-red" in page.get_attribute("#verdict", "class") and "Not valid" in page.inner_text("#verdict")
    page.screenshot(path=str(screenshot_dir() / "verify-failed-en.png"), full_page=False)
    assert not external, external
    assert not [p for p in problems if "Content Security Policy" in p or "failed" in p], problems
    context.close()


def test_page_offers_a_pdf_report(http: httpx.Client, sealed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess

    r = http.post("/verify", params={"format": "pdf"}, files={"file": ("a.pdf", _tampered(sealed.pdf), "application/pdf")})
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf" and "attachment" in r.headers["content-disposition"]
    (tmp_path / "r.pdf").write_bytes(r.content)
    text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(tmp_path / "r.pdf"), "-"], capture_output=True, text=True, check=True).stdout
    assert "验证失败" in text and "HASH_FAILURE" in text

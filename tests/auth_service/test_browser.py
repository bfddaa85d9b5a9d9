"""Single sign-on in headless Chromium with two department demo apps (Starlette + Authlib) on loopback.

Log in at app A → open app B → signed in without a prompt (the SSO session); log out at B → A's own
session is ended by the back-channel logout token the provider sends it. Screenshots of the sign-in
page (Chinese and English) are kept in ``docs/screenshots/sso-login*.png``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from tests.auth_service.demo_rp import DemoApp
from tests.conftest import free_port, screenshot_dir, serve_app

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-component-update", "--no-first-run"]


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _demo(name: str, meta, make_client):  # type: ignore[no-untyped-def]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    client, secret = make_client(
        name=f"{name} 部门系统",
        first_party=True,
        redirect_uris=[base + "/callback"],
        post_logout_redirect_uris=[base + "/bye"],
        backchannel_logout_uri=base + "/backchannel",
        scopes=["openid", "profile"],
    )
    return DemoApp(name, meta, client.client_id, secret, base), port


def test_sso_across_two_apps_and_backchannel_logout(chromium, live, meta, citizen, make_client, rt) -> None:  # type: ignore[no-untyped-def]
    app_a, port_a = _demo("A", meta, make_client)
    app_b, port_b = _demo("B", meta, make_client)
    with serve_app(app_a.asgi(), port_a), serve_app(app_b.asgi(), port_b):
        context = chromium.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
        page = context.new_page()
        visited: list[str] = []
        page.on("framenavigated", lambda frame: visited.append(frame.url) if frame == page.main_frame else None)

        # A: not signed in → login at the provider → back, signed in
        page.goto(app_a.base_url + "/")
        assert "未登录" in page.inner_text("#status")
        page.click("#login")
        page.wait_for_url(re.compile(r"/sso/login\?ia="))
        assert page.locator("html").get_attribute("lang") == "zh-CN"
        assert "A 部门系统" in page.inner_text("main")
        page.fill("#login", citizen.id_number)
        page.fill("#password", citizen.password)
        page.click("#submit")
        try:
            page.wait_for_url(app_a.base_url + "/", timeout=15000)
        except Exception:
            raise AssertionError(page.url + "\n" + page.content()[:2000]) from None
        assert f"已登录 {citizen.name}" in page.inner_text("#status")
        sid = page.inner_text("#sid")
        cookies = {c["name"]: c for c in context.cookies(live.url)}
        assert cookies["eauth_sid"]["httpOnly"] and cookies["eauth_sid"]["sameSite"] == "Lax"

        # B: one click, no prompt — the provider's session signs the user in
        visited.clear()
        page.goto(app_b.base_url + "/")
        page.click("#login")
        page.wait_for_url(app_b.base_url + "/")
        assert f"已登录 {citizen.name}" in page.inner_text("#status")
        assert page.inner_text("#sid") == sid
        assert not any("/sso/login" in url or "/sso/consent" in url for url in visited), visited

        # log out at B → the provider ends the session → A learns it by back-channel
        page.click("#logout")
        page.wait_for_url(re.compile(re.escape(app_b.base_url) + r"/bye\?state="))
        deadline = time.time() + 15
        while not app_a.logout_tokens and time.time() < deadline:
            time.sleep(0.05)
        assert app_a.logout_tokens and app_a.logout_tokens[0]["sid"] == sid
        page.goto(app_a.base_url + "/")
        assert "未登录" in page.inner_text("#status") and page.inner_text("#ended") == "backchannel"
        # and signing in at A again needs the password
        page.click("#login")
        page.wait_for_url(re.compile(r"/sso/login\?ia="))
        context.close()


def test_login_page_screenshots(chromium, live, meta, make_client, backend) -> None:  # type: ignore[no-untyped-def]
    app, port = _demo("不动产登记", meta, make_client)
    with serve_app(app.asgi(), port):
        context = chromium.new_context(viewport={"width": 1280, "height": 860}, locale="zh-CN")
        page = context.new_page()
        page.goto(app.base_url + "/login")
        page.wait_for_url(re.compile(r"/sso/login\?ia="))
        assert page.locator("html").get_attribute("lang") == "zh-CN"
        assert page.inner_text("h1") == "登录"
        # accessible: every input has a label, errors are announced
        for name in ("login", "password"):
            assert page.locator(f"label[for={name}]").count() == 1
        if backend == "sqlite":
            page.screenshot(path=str(screenshot_dir() / "sso-login.png"), full_page=True)
        page.fill("#login", "110101199001011234")
        page.fill("#password", "wrong-password")
        page.click("#submit")
        assert page.locator("#form-error").inner_text() == "登录名或密码不正确。"
        page.click("a.lang")
        page.wait_for_load_state()
        assert page.locator("html").get_attribute("lang") == "en"
        assert page.inner_text("h1") == "Sign in"
        if backend == "sqlite":
            page.screenshot(path=str(screenshot_dir() / "sso-login-en.png"), full_page=True)
        context.close()

"""Operators sign in to the console through the platform's own SSO (the console is an OIDC relying
party of auth_service), over real HTTP: acr 2 is required, sessions are fresh at every login, the
logout paths end them. And the first administrator made by ``eauth init``."""

from __future__ import annotations

import hashlib
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest

from core.security import Actor, Role
from tests.admin.sso import Browser
from tests.factories import unique_id_number

PASSWORD = "Ganz-Sicher-2026!"


@dataclass
class Account:
    person_id: str
    login: str
    password: str
    totp: pyotp.TOTP | None

    def code(self) -> str:
        """A code of the *next* time step: init's confirmation used the current one (RFC 6238 §5.2
        refuses a replay), and one step of drift is accepted."""
        assert self.totp is not None
        return self.totp.at(time.time() + self.totp.interval)


def make_account(rt, *, roles=(Role.APPROVER,), totp: bool = True, name: str = "李审批") -> Account:  # type: ignore[no-untyped-def]
    from auth_service import login
    from auth_service import service as sso
    from identity import service as identity

    id_number = unique_id_number()
    with rt.db.transaction() as db:
        person = identity.register_person(rt, db, Actor.cli(), name=name, id_number=id_number)
        if roles:
            identity.set_operator(rt, db, Actor.cli(), person_id=person.id, roles={r.value for r in roles})
        sso.set_password(rt, db, Actor.cli(), person_id=person.id, password=PASSWORD)
        generator = None
        if totp:
            secret, _ = login.begin_totp_enrolment(rt, db, person_id=person.id, account_name=name)
            generator = pyotp.TOTP(secret)
            login.confirm_totp(rt, db, Actor.cli(), person_id=person.id, code=generator.now())
    return Account(person.id, id_number, PASSWORD, generator)


@pytest.fixture
def browser(live):  # type: ignore[no-untyped-def]
    b = Browser(live.url)
    yield b
    b.close()


def console_cookie(b: Browser) -> str | None:
    return b.http.cookies.get("eauth_console")


def test_password_and_totp_open_the_console_with_acr_2(rt, browser: Browser) -> None:  # type: ignore[no-untyped-def]
    from core.audit import search

    account = make_account(rt)
    planted = "planted-by-an-attacker-" + "x" * 20
    browser.http.cookies.set("eauth_console", planted, domain="127.0.0.1", path="/")  # session fixation attempt
    start = browser.http.get("/admin/requests?state=submitted")
    assert start.status_code == 303 and start.headers["location"].startswith("/admin/login?next=")
    login = browser.http.get(start.headers["location"])
    authorize = urlsplit(login.headers["location"])
    query = parse_qs(authorize.query)
    assert authorize.path == "/oidc/authorize"
    assert query["acr_values"] == ["2"] and query["code_challenge_method"] == ["S256"] and query["response_type"] == ["code"]
    assert "nonce" in query and "state" in query
    page = browser.sign_in(account.login, account.password, code=account.code(), start="/admin/requests?state=submitted")
    assert page.status_code == 200, page.text[:500]
    assert str(page.request.url).endswith("/admin/requests?state=submitted")  # back where they started
    assert "/admin/callback" in browser.hops
    cookie = console_cookie(browser)
    assert cookie and cookie != planted, "the session id must be minted at login, never taken from the browser"
    assert "李审批" in page.text
    with rt.db.read() as db:
        entry = search(db, action="admin.console.login", target=f"person:{account.person_id}", limit=1)[0]
        from admin.models import ConsoleSession

        row = db.get(ConsoleSession, hashlib.sha256(cookie.encode()).hexdigest())
        assert row is not None and row.acr == "2" and row.sso_sid
        assert db.get(ConsoleSession, hashlib.sha256(planted.encode()).hexdigest()) is None
    assert entry.details["acr"] == "2" and "otp" in entry.details["amr"] and entry.outcome == "success"
    # signing in again in the same browser (the SSO session carries it through) mints yet another id
    again = browser.get("/admin/login")
    assert again.status_code == 200 and str(again.request.url).endswith("/admin")
    assert console_cookie(browser) not in (None, cookie)


def test_a_password_alone_never_opens_the_console(rt, browser: Browser) -> None:  # type: ignore[no-untyped-def]
    account = make_account(rt, totp=False, name="王密码")
    page = browser.sign_in(account.login, account.password)
    # the provider asks for the second step the console requested (acr_values=2) ...
    assert urlsplit(str(page.request.url)).path == "/sso/login/otp", page.text[:300]
    # ... which this operator cannot pass: no form to post a code, and no console session
    assert not [f for f in browser.forms(page) if f.action == "/sso/login/otp"]
    assert console_cookie(browser) is None
    assert browser.http.get("/admin").status_code == 303


def test_an_sso_session_at_acr_1_must_step_up(rt, browser: Browser) -> None:  # type: ignore[no-untyped-def]
    """Signed in to the SSO with a password only (the account page asks for no more), the console
    still asks for the one-time code before it opens."""
    from auth_service import login
    from core.audit import search

    account = make_account(rt, totp=False, name="赵升级")
    page = browser.get("/sso/account")
    page = browser.submit(page, "/sso/login", {"login": account.login, "password": account.password})
    assert urlsplit(str(page.request.url)).path == "/sso/account" and page.status_code == 200
    with rt.db.transaction() as db:  # the operator then sets up an authenticator app
        secret, _ = login.begin_totp_enrolment(rt, db, person_id=account.person_id, account_name="x")
        totp = pyotp.TOTP(secret)
        login.confirm_totp(rt, db, Actor.cli(), person_id=account.person_id, code=totp.now())
    page = browser.get("/admin")
    assert urlsplit(str(page.request.url)).path == "/sso/login/otp", "the acr 1 session must not pass"
    assert console_cookie(browser) is None
    page = browser.submit(page, "/sso/login/otp", {"code": totp.at(time.time() + totp.interval)}, method="totp")
    assert page.status_code == 200 and urlsplit(str(page.request.url)).path == "/admin"
    with rt.db.read() as db:
        entry = search(db, action="admin.console.login", target=f"person:{account.person_id}", limit=1)[0]
    assert entry.details["acr"] == "2"


def test_the_console_itself_refuses_acr_below_2_and_non_operators(rt) -> None:  # type: ignore[no-untyped-def]
    from admin import sessions
    from core.errors import Problem

    account = make_account(rt, totp=False)
    with rt.db.transaction() as db, pytest.raises(Problem) as exc:
        sessions.open_session(rt, db, person_id=account.person_id, acr="1")
    assert exc.value.code == "console.insufficient_acr" and exc.value.status == 403
    citizen = make_account(rt, roles=(), totp=False)
    with rt.db.transaction() as db, pytest.raises(Problem) as exc:
        sessions.open_session(rt, db, person_id=citizen.person_id, acr="2")
    assert exc.value.code == "console.not_an_operator"


def test_a_citizen_with_two_factors_is_not_let_in(rt, browser: Browser) -> None:  # type: ignore[no-untyped-def]
    citizen = make_account(rt, roles=(), name="钱市民")
    page = browser.sign_in(citizen.login, citizen.password, code=citizen.code())
    assert page.status_code == 403 and "console.not_an_operator" in page.text
    assert console_cookie(browser) is None


def test_callback_refuses_forged_or_replayed_state(rt, browser: Browser, live) -> None:  # type: ignore[no-untyped-def]
    r = browser.http.get("/admin/callback?state=forged&code=abc")
    assert r.status_code == 401 and "console.unknown_state" in r.text
    # a state started in another browser (login CSRF): the victim's browser lacks the binding cookie
    other = httpx.Client(base_url=live.url, follow_redirects=False)
    try:
        state = parse_qs(urlsplit(other.get("/admin/login").headers["location"]).query)["state"][0]
    finally:
        other.close()
    r = browser.http.get(f"/admin/callback?state={state}&code=abc")
    assert r.status_code == 401 and "console.state_mismatch" in r.text
    r = browser.http.get(f"/admin/callback?state={state}&code=abc")  # however often it is tried
    assert r.status_code == 401 and "console.state_mismatch" in r.text
    # an open redirect through ?next= is neutralised
    login = browser.http.get("/admin/login?next=https://evil.example/")
    assert login.status_code == 303


def test_logout_ends_the_console_session_and_continues_to_the_provider(rt, browser: Browser) -> None:  # type: ignore[no-untyped-def]
    account = make_account(rt, name="孙登出")
    page = browser.sign_in(account.login, account.password, code=account.code())
    cookie = console_cookie(browser)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = browser.http.post("/admin/logout", data={"csrf_token": csrf})
    assert r.status_code == 303 and urlsplit(r.headers["location"]).path == "/oidc/logout"
    assert "id_token_hint" in parse_qs(urlsplit(r.headers["location"]).query)
    stale = httpx.get(browser.base + "/admin", cookies={"eauth_console": cookie}, follow_redirects=False)
    assert stale.status_code == 303  # the old cookie no longer opens anything


def test_backchannel_logout_ends_the_sessions_of_that_sso_session(rt, browser: Browser, live) -> None:  # type: ignore[no-untyped-def]
    from admin import console_client
    from admin.models import ConsoleSession
    from auth_service.oidc.logout import logout_token

    account = make_account(rt, name="周后端")
    browser.sign_in(account.login, account.password, code=account.code())
    cookie = console_cookie(browser)
    with rt.db.read() as db:
        sid = db.get(ConsoleSession, hashlib.sha256(cookie.encode()).hexdigest()).sso_sid  # type: ignore[union-attr]
        client_id = console_client.registration(rt, db).client_id
    bad = httpx.post(live.url + "/admin/backchannel-logout", data={"logout_token": "e30.e30.sig"})
    assert bad.status_code == 400 and bad.json()["code"] == "console.bad_logout_token"
    wrong_aud = logout_token(rt, client_id="someone-else", person_id=account.person_id, session_id=sid)
    assert httpx.post(live.url + "/admin/backchannel-logout", data={"logout_token": wrong_aud}).status_code == 400
    assert browser.http.get("/admin").status_code == 200
    token = logout_token(rt, client_id=client_id, person_id=account.person_id, session_id=sid)
    ok = httpx.post(live.url + "/admin/backchannel-logout", data={"logout_token": token})
    assert ok.status_code == 200, ok.text
    assert browser.http.get("/admin").status_code == 303


# -- the first administrator ---------------------------------------------------------------------


def read_credentials(path: Path) -> dict[str, str]:
    text = path.read_text(encoding="utf-8")
    found = {}
    for key, label in (("login", "login"), ("password", "one-time password"), ("code", "one-time code")):
        match = re.search(rf"^{label} / [^:]+:\s*(\S+)\s*$", text, re.M)
        assert match, f"{label} missing from {path}"
        found[key] = match.group(1)
    return found


def test_eauth_init_writes_one_time_credentials_0600(cli_home) -> None:  # type: ignore[no-untyped-def]
    cli_home.run("init")
    path = cli_home.home / "secrets" / "bootstrap-admin.txt"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    first = read_credentials(path)
    assert re.fullmatch(r"999999\d{11}[\dX]", first["login"]) and len(first["password"]) >= 16
    assert re.fullmatch(r"[0-9a-f]{5}-[0-9a-f]{5}", first["code"])
    # never in the command's output or logs
    again = cli_home.run("init")
    assert first["password"] not in again.stdout + again.stderr
    # until the administrator enrols, init issues fresh one-time credentials (the old ones stop working)
    second = read_credentials(path)
    assert second["login"] == first["login"] and second["password"] != first["password"] and second["code"] != first["code"]
    verify = cli_home.run("audit", "verify")
    assert "OK" in verify.stdout


@pytest.fixture
def own_platform(backend, token_pool, tmp_path):  # type: ignore[no-untyped-def]
    """A platform of its own served live at its public URL (a fresh first administrator)."""
    from eauth.app import create_app
    from tests.conftest import free_port, platform, serve_app

    port = free_port()
    with platform(backend, tmp_path / "home", token_pool, recycle=True, public_url=f"http://127.0.0.1:{port}") as rt:
        with serve_app(create_app(rt), port=port) as server:
            yield rt, server


def test_first_administrator_must_enrol_a_second_factor(own_platform) -> None:  # type: ignore[no-untyped-def]
    from core.audit import search

    rt, server = own_platform
    path = rt.settings.home / "secrets" / "bootstrap-admin.txt"
    creds = read_credentials(path)
    b = Browser(server.url)
    try:
        page = b.sign_in(creds["login"], creds["password"], code=creds["code"], method="recovery")
        assert urlsplit(str(page.request.url)).path == "/admin/enrol", page.text[:300]
        assert 'id="enrol"' in page.text and "首次登录" in page.text
        # nothing else opens until the enrolment is done
        for url in ("/admin", "/admin/audit", "/admin/clients"):
            r = b.http.get(url)
            assert r.status_code == 303 and r.headers["location"] == "/admin/enrol", url
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        blocked = b.http.post("/admin/audit/verify", data={"csrf_token": csrf})
        assert blocked.status_code == 403 and "console.enrolment_required" in blocked.text
        # wrong one-time password, then mismatched new passwords
        r = b.submit(page, "/admin/enrol", {"current": "wrong-password-1", "new": "Mein-Neues-Passwort-9", "repeat": "Mein-Neues-Passwort-9"})
        assert r.status_code == 403 and "sso.wrong_password" in r.text
        r = b.submit(page, "/admin/enrol", {"current": creds["password"], "new": "Mein-Neues-Passwort-9", "repeat": "different-Passwort-9"})
        assert r.status_code == 422
        step2 = b.submit(page, "/admin/enrol", {"current": creds["password"], "new": "Mein-Neues-Passwort-9", "repeat": "Mein-Neues-Passwort-9"})
        assert step2.status_code == 200 and "data:image/png;base64," in step2.text
        secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', step2.text).group(1).replace(" ", "")  # type: ignore[union-attr]
        totp = pyotp.TOTP(secret)
        wrong = b.submit(step2, "/admin/enrol/confirm", {"code": "000000" if totp.now() != "000000" else "111111"})
        assert wrong.status_code == 422
        done = b.submit(step2, "/admin/enrol/confirm", {"code": totp.now()})
        assert done.status_code == 200 and len(re.findall(r"[0-9a-f]{5}-[0-9a-f]{5}", done.text)) == 10
        assert not path.exists(), "the one-time credentials file is deleted once spent"
        assert b.http.get("/admin").status_code == 200
    finally:
        b.close()
    # the one-time password and code are retired; the new password + the app's code work
    fresh = Browser(server.url)
    try:
        page = fresh.sign_in(creds["login"], creds["password"])
        assert page.status_code == 401
        page = fresh.sign_in(creds["login"], "Mein-Neues-Passwort-9", code=creds["code"], method="recovery")
        assert "/admin" not in urlsplit(str(page.request.url)).path or page.status_code != 200
    finally:
        fresh.close()
    fresh = Browser(server.url)
    try:
        page = fresh.sign_in(creds["login"], "Mein-Neues-Passwort-9", code=totp.at(time.time() + totp.interval))
        assert page.status_code == 200 and urlsplit(str(page.request.url)).path == "/admin" and "系统管理员" in page.text
    finally:
        fresh.close()
    with rt.db.read() as db:
        actions = [e.action for e in search(db, limit=500)]
    for wanted in ("admin.bootstrap.create", "admin.bootstrap.credentials", "admin.bootstrap.enrolled", "sso.totp.enrol", "sso.password.set"):
        assert wanted in actions, wanted


def test_under_https_cookies_are_secure_and_hsts_is_sent(backend, token_pool, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """With an https public URL (TLS terminated in front of the app) the console's cookies carry
    Secure and responses carry HSTS."""
    from eauth.app import create_app
    from tests.conftest import platform, serve_app

    with platform(backend, tmp_path / "home", token_pool, recycle=True, public_url="https://eauth.example.gov.cn") as rt:
        with serve_app(create_app(rt)) as server:
            r = httpx.get(server.url + "/admin/signed-out?lang=en")
            assert r.status_code == 200
            assert "max-age=" in r.headers["strict-transport-security"]
            cookie = r.headers["set-cookie"].lower()
            assert "eauth_lang=en" in cookie and "secure" in cookie and "httponly" in cookie

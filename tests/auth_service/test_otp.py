"""Second factors over real HTTP: TOTP enrolment and login (codes computed by pyotp, as a phone app
would), recovery codes, SMS codes read from the outbox, and step-up to acr 2 when an RP asks."""

from __future__ import annotations

import base64
import json
import re
import time

import pyotp
import pytest

from core.audit import search
from tests.auth_service import rp

FIRST_PARTY = {"first_party": True}


def _account_login(agent, citizen):  # type: ignore[no-untyped-def]
    start = agent.get("/sso/account")
    page = agent.login(start, citizen.id_number, citizen.password)
    return page


def _enrol_totp(agent, citizen) -> tuple[pyotp.TOTP, list[str], str]:  # type: ignore[no-untyped-def]
    page = _account_login(agent, citizen)
    assert page.status_code == 200 and "/sso/account" in str(page.request.url), page.text[:300]
    enrol = agent.submit("/sso/account/otp/start")
    assert enrol.status_code == 200
    secret = re.search(r'<code id="totp-secret">([A-Z2-7 ]+)</code>', enrol.text).group(1).replace(" ", "")
    assert len(secret) == 32  # 160 bits
    qr = re.search(r'src="data:image/png;base64,([^"]+)"', enrol.text).group(1)
    assert base64.b64decode(qr).startswith(b"\x89PNG\r\n\x1a\n")
    totp = pyotp.TOTP(secret)
    wrong = agent.submit("/sso/account/otp/confirm", {"code": f"{(int(totp.now()) + 1) % 10**6:06d}"}, response=enrol)
    assert wrong.status_code == 422 and wrong.headers["content-type"].startswith("text/html") and 'role="alert"' in wrong.text
    used = totp.now()
    done = agent.submit("/sso/account/otp/confirm", {"code": used}, response=enrol)
    assert done.status_code == 200, done.text[:300]
    codes = re.findall(r"<li><code>([0-9a-f]{5}-[0-9a-f]{5})</code></li>", done.text)
    assert len(codes) == 10 and len(set(codes)) == 10
    return totp, codes, used


def _authorize(meta, agent, client, secret, **params):  # type: ignore[no-untyped-def]
    sess = rp.session(meta, client.client_id, secret)
    url, state, nonce, verifier = rp.authorization_url(meta, sess, **params)
    return sess, agent.get(url), nonce, verifier


def _finish(meta, sess, response, nonce, verifier, client):  # type: ignore[no-untyped-def]
    assert response.status_code in (302, 303), response.text[:500]
    token = sess.fetch_token(meta["token_endpoint"], authorization_response=response.headers["location"], code_verifier=verifier)
    return rp.verify_id_token(meta, token["id_token"], client_id=client.client_id, nonce=nonce)


def test_totp_enrolment_and_login(meta, agent, new_agent, citizen, make_client, rt) -> None:  # type: ignore[no-untyped-def]
    totp, codes, used = _enrol_totp(agent, citizen)
    with rt.db.read() as db:
        assert search(db, action="sso.totp.enrol", target=f"person:{citizen.id}")
    client, secret = make_client(**FIRST_PARTY)
    browser = new_agent()
    sess, start, nonce, verifier = _authorize(meta, browser, client, secret)
    otp_page = browser.login(start, citizen.id_number, citizen.password)
    assert otp_page.status_code == 200 and "/sso/login/otp" in str(otp_page.request.url)
    # the code the enrolment just used is spent (RFC 6238 §5.2) even while its time step is still
    # within the window; the next time step is accepted. Replay the very code that was used, not
    # totp.now() again: a 30 s boundary between the two calls would make that a fresh code.
    replay = browser.submit("/sso/login/otp", {"code": used}, response=otp_page)
    assert replay.status_code == 401 and "验证码不正确或已过期" in replay.text
    done = browser.submit("/sso/login/otp", {"code": totp.at(time.time() + 30)}, response=otp_page)
    claims = _finish(meta, sess, browser.follow(done), nonce, verifier, client)
    assert claims["acr"] == "2" and set(claims["amr"]) == {"pwd", "otp", "mfa"}

    # a recovery code works once
    other = new_agent()
    sess, start, nonce, verifier = _authorize(meta, other, client, secret)
    otp_page = other.login(start, citizen.phone, citizen.password)
    done = other.submit("/sso/login/otp", {"method": "recovery", "code": codes[0].upper()}, response=otp_page)
    assert _finish(meta, sess, other.follow(done), nonce, verifier, client)["acr"] == "2"
    third = new_agent()
    sess, start, nonce, verifier = _authorize(meta, third, client, secret)
    otp_page = third.login(start, citizen.id_number, citizen.password)
    again = third.submit("/sso/login/otp", {"method": "recovery", "code": codes[0]}, response=otp_page)
    assert again.status_code == 401
    with rt.db.read() as db:
        assert search(db, action="sso.recovery_code.use", target=f"person:{citizen.id}")

    # turning TOTP off needs the password; afterwards a password alone is acr 1 again
    page = agent.get("/sso/account")
    bad = agent.submit("/sso/account/otp/remove", {"password": "Wrong-Password-1"}, response=page)
    assert bad.status_code == 403
    off = agent.submit("/sso/account/otp/remove", {"password": citizen.password}, response=agent.get("/sso/account"))
    assert off.status_code == 303
    fourth = new_agent()
    sess, start, nonce, verifier = _authorize(meta, fourth, client, secret)
    assert _finish(meta, sess, fourth.login(start, citizen.id_number, citizen.password), nonce, verifier, client)["acr"] == "1"


def test_totp_wrong_codes_lock_out(meta, agent, new_agent, citizen, make_client, rt) -> None:  # type: ignore[no-untyped-def]
    totp, _codes, _used = _enrol_totp(agent, citizen)
    client, secret = make_client(**FIRST_PARTY)
    browser = new_agent()
    sess, start, nonce, verifier = _authorize(meta, browser, client, secret)
    otp_page = browser.login(start, citizen.id_number, citizen.password)
    good = int(totp.at(time.time() + 30))
    statuses = []
    for i in range(5):
        statuses.append(browser.submit("/sso/login/otp", {"code": f"{(good + 1 + i) % 10**6:06d}"}, response=otp_page).status_code)
    assert statuses == [401, 401, 401, 401, 429]
    # locked: even the right code is refused now
    assert browser.submit("/sso/login/otp", {"code": f"{good:06d}"}, response=otp_page).status_code == 429
    with rt.db.read() as db:
        assert search(db, action="sso.login.lockout", target=f"person:{citizen.id}")


def _sms_code(rt, citizen) -> str:  # type: ignore[no-untyped-def]
    box = rt.settings.outbox_dir / "sms"
    messages = []
    for path in box.glob("*.json"):
        data = json.loads(path.read_text())
        assert (path.stat().st_mode & 0o777) == 0o600
        if data["person_id"] == citizen.id:
            messages.append((data["at"], path.name, data))
    assert messages, "no SMS in the outbox"
    latest = max(messages)[2]
    assert latest["to"] == citizen.phone
    return re.search(r"\b(\d{6})\b", latest["text"]).group(1)


def test_step_up_to_acr2_with_sms(meta, agent, citizen, make_client, rt) -> None:  # type: ignore[no-untyped-def]
    client, secret = make_client(**FIRST_PARTY)
    # a level-1 session first
    sess, start, nonce, verifier = _authorize(meta, agent, client, secret)
    first = _finish(meta, sess, agent.login(start, citizen.id_number, citizen.password), nonce, verifier, client)
    assert first["acr"] == "1"
    # a silent request for level 2 cannot be satisfied
    sess, start, nonce, verifier = _authorize(meta, agent, client, secret, acr_values="2", prompt="none")
    assert rp.query(start.headers["location"])["error"] == "interaction_required"
    # the RP asks for level 2: no password again, straight to the second step
    sess, start, nonce, verifier = _authorize(meta, agent, client, secret, acr_values="2")
    page = agent.follow(start)
    assert "/sso/login/otp" in str(page.request.url) and "需要更高的认证级别" in page.text
    sent = agent.submit("/sso/login/sms", response=page)
    assert sent.status_code == 200 and citizen.phone[:3] + "****" + citizen.phone[-4:] in sent.text
    assert citizen.phone not in sent.text
    # one SMS per minute per person
    again = agent.submit("/sso/login/sms", response=page)
    assert again.status_code == 429
    code = _sms_code(rt, citizen)
    wrong = agent.submit("/sso/login/otp", {"method": "sms", "code": f"{(int(code) + 1) % 10**6:06d}"}, response=page)
    assert wrong.status_code == 401
    done = agent.submit("/sso/login/otp", {"method": "sms", "code": code}, response=page)
    stepped = _finish(meta, sess, agent.follow(done), nonce, verifier, client)
    assert stepped["acr"] == "2" and set(stepped["amr"]) == {"pwd", "sms", "mfa"}
    assert stepped["sid"] == first["sid"]  # the same session, raised to level 2
    assert stepped["auth_time"] >= first["auth_time"]
    # a used SMS code is spent; the session now satisfies acr 2 silently
    sess, start, nonce, verifier = _authorize(meta, agent, client, secret, acr_values="2", prompt="none")
    assert _finish(meta, sess, start, nonce, verifier, client)["acr"] == "2"
    with rt.db.read() as db:
        sent_audit = search(db, action="sso.sms.send", target=f"person:{citizen.id}")
    assert sent_audit and citizen.phone not in json.dumps(sent_audit[0].details, ensure_ascii=False)  # masked


def test_acr2_requested_at_first_login(meta, agent, citizen, make_client, rt) -> None:  # type: ignore[no-untyped-def]
    client, secret = make_client(**FIRST_PARTY)
    sess, start, nonce, verifier = _authorize(meta, agent, client, secret, acr_values="2")
    page = agent.login(start, citizen.id_number, citizen.password)
    assert "/sso/login/otp" in str(page.request.url)
    agent.submit("/sso/login/sms", response=page)
    done = agent.submit("/sso/login/otp", {"method": "sms", "code": _sms_code(rt, citizen)}, response=page)
    assert _finish(meta, sess, agent.follow(done), nonce, verifier, client)["acr"] == "2"


def test_max_age_and_prompt_login_force_reauthentication(meta, agent, citizen, make_client) -> None:  # type: ignore[no-untyped-def]
    client, secret = make_client(**FIRST_PARTY)
    sess, start, nonce, verifier = _authorize(meta, agent, client, secret)
    first = _finish(meta, sess, agent.login(start, citizen.id_number, citizen.password), nonce, verifier, client)
    time.sleep(1.1)
    for params in ({"prompt": "login"}, {"max_age": "0"}):
        sess, start, nonce, verifier = _authorize(meta, agent, client, secret, **params)
        assert "/sso/login" in str(agent.follow(start).request.url)
        again = _finish(meta, sess, agent.login(start, citizen.id_number, citizen.password), nonce, verifier, client)
        assert again["auth_time"] > first["auth_time"] and again["sid"] == first["sid"]
    sess, start, nonce, verifier = _authorize(meta, agent, client, secret, max_age="3600")
    assert _finish(meta, sess, start, nonce, verifier, client)["sub"] == citizen.id
    sess, start, nonce, verifier = _authorize(meta, agent, client, secret, max_age="0", prompt="none")
    assert rp.query(start.headers["location"])["error"] == "login_required"


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_login_page_languages(meta, agent, make_client, lang) -> None:  # type: ignore[no-untyped-def]
    client, secret = make_client(**FIRST_PARTY)
    sess, start, _n, _v = _authorize(meta, agent, client, secret, ui_locales=lang)
    page = agent.follow(start)
    assert f'<html lang="{lang}">' in page.text
    assert ("登录以继续访问" if lang == "zh-CN" else "Sign in to continue to") in page.text

"""Signing-key rotation as a relying party sees it, and the account page (password change, sessions)."""

from __future__ import annotations

import requests

from auth_service import service
from auth_service.oidc.jwks import KeyRing
from core.audit import search
from core.security import Actor
from tests.auth_service import rp


def test_rotation_keeps_previous_key_published(meta, agent, citizen, make_client, rt) -> None:  # type: ignore[no-untyped-def]
    client, secret = make_client(first_party=True)
    sess = rp.session(meta, client.client_id, secret)
    url, _s, nonce, verifier = rp.authorization_url(meta, sess)
    done = agent.login(agent.get(url), citizen.id_number, citizen.password)
    before = sess.fetch_token(meta["token_endpoint"], authorization_response=done.headers["location"], code_verifier=verifier)
    from joserfc import jwt

    old_kid = jwt.decode(before["id_token"], rp.keyset(meta)).header["kid"]
    old_at_kid = jwt.decode(before["access_token"], rp.keyset(meta)).header["kid"]
    with rt.db.transaction() as db:
        new_rs = service.rotate_signing_key(rt, db, Actor.cli(), alg="RS256")
        new_es = service.rotate_signing_key(rt, db, Actor.cli(), alg="ES256")
    KeyRing.of(rt).reload()
    published = {k["kid"] for k in requests.get(meta["jwks_uri"], timeout=10).json()["keys"]}
    assert {old_kid, old_at_kid, new_rs.kid, new_es.kid} <= published
    # tokens signed before the rotation still verify against the published set, and still work
    rp.verify_id_token(meta, before["id_token"], client_id=client.client_id, nonce=nonce, access_token=before["access_token"])
    assert sess.get(meta["userinfo_endpoint"]).status_code == 200
    # new tokens carry the new keys
    url, _s, nonce, verifier = rp.authorization_url(meta, sess)
    after = sess.fetch_token(meta["token_endpoint"], authorization_response=agent.follow(agent.get(url)).headers["location"], code_verifier=verifier)
    assert jwt.decode(after["id_token"], rp.keyset(meta)).header["kid"] == new_rs.kid
    assert jwt.decode(after["access_token"], rp.keyset(meta)).header["kid"] == new_es.kid
    rp.verify_id_token(meta, after["id_token"], client_id=client.client_id, nonce=nonce)
    with rt.db.read() as db:
        assert search(db, action="sso.key.deactivate", target=f"key:oidc/{old_kid}")


def test_account_page_password_change_and_sessions(meta, agent, new_agent, citizen, make_client, rt) -> None:  # type: ignore[no-untyped-def]
    page = agent.login(agent.get("/sso/account"), citizen.id_number, citizen.password)
    assert page.status_code == 200 and citizen.name in page.text
    assert citizen.id_number not in page.text  # masked on the page
    # a weak new password is refused with the policy's reasons, the current one must be right
    weak = agent.submit("/sso/account/password", {"current": citizen.password, "new": "password123"}, response=page)
    assert weak.status_code == 422 and 'role="alert"' in weak.text
    wrong = agent.submit("/sso/account/password", {"current": "Not-My-Password-1", "new": "A-much-better-passphrase-9"}, response=page)
    assert wrong.status_code == 403
    ok = agent.submit("/sso/account/password", {"current": citizen.password, "new": "A-much-better-passphrase-9"}, response=page)
    assert ok.status_code == 200 and "密码已修改" in ok.text
    # the old password no longer works, the new one does
    client, _ = make_client(first_party=True, token_endpoint_auth_method="none")
    url, *_ = rp.authorization_url(meta, rp.session(meta, client.client_id))
    other = new_agent()
    failed = other.login(other.get(url), citizen.id_number, citizen.password)
    assert failed.status_code == 401
    url, *_ = rp.authorization_url(meta, rp.session(meta, client.client_id))
    third = new_agent()
    assert third.login(third.get(url), citizen.id_number, "A-much-better-passphrase-9").status_code == 303
    # two live sessions listed; ending this one signs this browser out
    listing = agent.get("/sso/account")
    assert listing.text.count('action="/sso/account/sessions/end"') == 2
    mine = [f for f in agent.forms(listing) if f.action == "/sso/account/sessions/end"]
    with rt.db.read() as db:
        from auth_service.sessions import list_sessions

        live = list_sessions(db, citizen.id)
    assert {f.fields["sid"] for f in mine} == {s.id for s in live}
    current = next(s for s in live if s.user_agent == "eauth-test-agent" and s.ip == agent.http.headers["X-Forwarded-For"])
    form = next(f for f in mine if f.fields["sid"] == current.id)
    r = agent.http.post("/sso/account/sessions/end", data=form.fields)
    assert r.status_code == 200 and "eauth_sid=" in r.headers.get("set-cookie", "")
    assert agent.get("/sso/account").status_code == 302  # signed out: back to the login page
    # someone else's session id is refused
    r = third.get("/sso/account")
    form = third.form("/sso/account/sessions/end", r) if 'action="/sso/account/sessions/end"' in r.text else None
    assert form is not None
    bad = third.http.post("/sso/account/sessions/end", data={**form.fields, "sid": "not-a-session"})
    assert bad.status_code == 404
    with rt.db.read() as db:
        assert search(db, action="sso.password.set", target=f"person:{citizen.id}")


def _signed_in(meta, agent, citizen, make_client, rt):  # type: ignore[no-untyped-def]
    client, secret = make_client(first_party=True)
    sess = rp.session(meta, client.client_id, secret)
    url, _s, nonce, verifier = rp.authorization_url(meta, sess)
    done = agent.login(agent.get(url), citizen.id_number, citizen.password)
    token = sess.fetch_token(meta["token_endpoint"], authorization_response=done.headers["location"], code_verifier=verifier)
    return client, sess, token, rp.verify_id_token(meta, token["id_token"], client_id=client.client_id, nonce=nonce)["sid"]


def test_idle_and_absolute_timeouts_end_the_session(meta, new_agent, citizen, make_client, rt) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import update

    from auth_service.models import BrowserSession

    for column, reason in (("last_seen_at", "idle_timeout"), ("expires_at", "absolute_timeout")):
        agent = new_agent()
        client, sess, token, sid = _signed_in(meta, agent, citizen, make_client, rt)
        with rt.db.transaction() as db:
            db.execute(update(BrowserSession).where(BrowserSession.id == sid).values(**{column: "2000-01-01T00:00:00+00:00"}))
        url, state, _n, _v = rp.authorization_url(meta, sess, prompt="none")
        q = rp.query(agent.follow(agent.get(url)).headers["location"])
        assert q["error"] == "login_required" and q["state"] == state
        # the session is ended for good: its tokens are revoked, and it is audited with the reason
        assert sess.get(meta["userinfo_endpoint"]).status_code == 401
        with rt.db.read() as db:
            row = db.get(BrowserSession, sid)
            ended = [e for e in search(db, action="sso.session.end", target=f"person:{citizen.id}") if e.details["sid"] == sid]
        assert row.ended_at and row.end_reason == reason
        assert ended and ended[0].details["reason"] == reason and ended[0].actor.startswith("system")

"""Back-channel logout (OIDC Back-Channel Logout 1.0) to real HTTP endpoints on loopback.

Two relying parties share one SSO session; logging out at one makes the provider POST a logout token
to the other's ``backchannel_logout_uri`` — a tiny HTTP server in this test — which the test verifies
with joserfc against the published JWKS (§2.4: iss, aud, iat, exp, jti, sid, events; never a nonce).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode

import pytest
from authlib.integrations.base_client.errors import OAuthError as AuthlibOAuthError
from joserfc import jwt
from joserfc.jwt import JWTClaimsRegistry
from sqlalchemy import select, update

from auth_service.models import LogoutDelivery
from core.audit import search
from tests.auth_service import rp

EVENT = "http://schemas.openid.net/event/backchannel-logout"


@dataclass
class Receiver:
    """Records logout-token POSTs per path; ``fail`` maps a path to how many times to answer 503."""

    url: str
    received: dict[str, list[dict]] = field(default_factory=dict)
    fail: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait(self, path: str, count: int = 1, timeout: float = 15.0) -> list[dict]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                got = list(self.received.get(path, []))
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise AssertionError(f"no logout token at {path} within {timeout} s (got {self.received})")


@contextlib.contextmanager
def receiver() -> Iterator[Receiver]:
    box = Receiver("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
            with box.lock:
                failing = box.fail.get(self.path, 0)
                if failing:
                    box.fail[self.path] = failing - 1
                else:
                    box.received.setdefault(self.path, []).append(
                        {"form": {k: v[0] for k, v in parse_qs(body).items()}, "content_type": self.headers.get("content-type"), "cache": self.headers.get("cache-control")}
                    )
            self.send_response(503 if failing else 200)
            self.send_header("Cache-Control", "no-store")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def bc() -> Iterator[Receiver]:
    with receiver() as box:
        yield box


def _sign_in(meta, agent, citizen, client, secret, *, login: bool):  # type: ignore[no-untyped-def]
    sess = rp.session(meta, client.client_id, secret)
    url, _state, nonce, verifier = rp.authorization_url(meta, sess)
    start = agent.get(url)
    done = agent.login(start, citizen.id_number, citizen.password) if login else agent.follow(start)
    assert done.status_code in (302, 303) and "code=" in done.headers["location"], done.text[:300]
    token = sess.fetch_token(meta["token_endpoint"], authorization_response=done.headers["location"], code_verifier=verifier)
    claims = rp.verify_id_token(meta, token["id_token"], client_id=client.client_id, nonce=nonce)
    return sess, token, claims


def verify_logout_token(meta, token: str, *, client_id: str) -> dict:  # type: ignore[no-untyped-def]
    decoded = jwt.decode(token, rp.keyset(meta), algorithms=["RS256", "ES256"])
    assert decoded.header["typ"] == "logout+jwt"  # §2.4 (RFC 8725 explicit typing)
    JWTClaimsRegistry(
        iss={"essential": True, "value": meta["issuer"]},
        aud={"essential": True, "value": client_id},
        iat={"essential": True},
        exp={"essential": True},
        jti={"essential": True},
        sid={"essential": True},
    ).validate(decoded.claims)
    assert decoded.claims["events"] == {EVENT: {}}
    assert "nonce" not in decoded.claims  # §2.4: a nonce is prohibited
    assert decoded.claims["exp"] - decoded.claims["iat"] <= 300
    return decoded.claims


def test_logout_at_one_rp_notifies_the_other(meta, agent, citizen, make_client, rt, bc) -> None:  # type: ignore[no-untyped-def]
    a, a_secret = make_client(name="A 部门", first_party=True, backchannel_logout_uri=bc.url + "/a")
    b, b_secret = make_client(name="B 部门", first_party=True, backchannel_logout_uri=bc.url + "/b")
    _sa, a_token, a_claims = _sign_in(meta, agent, citizen, a, a_secret, login=True)
    sb, b_token, b_claims = _sign_in(meta, agent, citizen, b, b_secret, login=False)  # SSO: no prompt
    assert a_claims["sid"] == b_claims["sid"]
    url = meta["end_session_endpoint"] + "?" + urlencode({"id_token_hint": a_token["id_token"], "post_logout_redirect_uri": "http://127.0.0.1:9/bye"})
    assert agent.get(url).status_code == 302
    got = bc.wait("/b")
    assert len(got) == 1
    assert got[0]["content_type"] == "application/x-www-form-urlencoded" and got[0]["cache"] == "no-cache"
    claims = verify_logout_token(meta, got[0]["form"]["logout_token"], client_id=b.client_id)
    assert claims["sid"] == b_claims["sid"] and claims["sub"] == citizen.id
    # B's tokens died with the session
    with pytest.raises(AuthlibOAuthError):
        sb.refresh_token(meta["token_endpoint"], refresh_token=b_token["refresh_token"])
    assert sb.get(meta["userinfo_endpoint"]).status_code == 401
    # each delivery is audited
    deadline = time.time() + 10
    while True:
        with rt.db.read() as db:
            delivered = [e for e in search(db, action="sso.backchannel.deliver", target=f"client:{b.client_id}") if e.details["sid"] == claims["sid"]]
        if delivered or time.time() > deadline:
            break
        time.sleep(0.1)
    assert delivered and delivered[0].outcome == "success" and delivered[0].details["status"] == "delivered"
    with rt.db.read() as db:
        ended = [e for e in search(db, action="sso.session.end", target=f"person:{citizen.id}") if e.details["sid"] == claims["sid"]]
    assert ended and set(ended[0].details["clients"]) == {a.client_id, b.client_id} and ended[0].details["backchannel"] == 2
    # the token differs per RP and per delivery (jti), never reused
    a_got = bc.wait("/a")
    assert verify_logout_token(meta, a_got[0]["form"]["logout_token"], client_id=a.client_id)["jti"] != claims["jti"]


def test_rp_without_backchannel_uri_not_called_and_other_sessions_untouched(meta, agent, new_agent, citizen, make_client, bc) -> None:  # type: ignore[no-untyped-def]
    a, a_secret = make_client(first_party=True)  # no back-channel URI
    b, b_secret = make_client(first_party=True, backchannel_logout_uri=bc.url + "/b2")
    _sa, a_token, a_claims = _sign_in(meta, agent, citizen, a, a_secret, login=True)
    # the same person on another device: a separate session that must survive
    other = new_agent()
    sb_other, _b_token, other_claims = _sign_in(meta, other, citizen, b, b_secret, login=True)
    assert other_claims["sid"] != a_claims["sid"]
    url = meta["end_session_endpoint"] + "?" + urlencode({"id_token_hint": a_token["id_token"]})
    assert agent.get(url).status_code == 200  # the logged-out page
    time.sleep(1.0)
    assert "/b2" not in bc.received  # B never took part in the ended session
    assert sb_other.get(meta["userinfo_endpoint"]).status_code == 200


def test_delivery_retried_until_the_rp_answers(meta, agent, citizen, make_client, rt, bc) -> None:  # type: ignore[no-untyped-def]
    from auth_service.oidc.logout import Deliverer

    a, a_secret = make_client(first_party=True)
    b, b_secret = make_client(first_party=True, backchannel_logout_uri=bc.url + "/flaky")
    bc.fail["/flaky"] = 1
    _sa, a_token, a_claims = _sign_in(meta, agent, citizen, a, a_secret, login=True)
    _sign_in(meta, agent, citizen, b, b_secret, login=False)
    agent.get(meta["end_session_endpoint"] + "?" + urlencode({"id_token_hint": a_token["id_token"]}))
    sid = a_claims["sid"]

    def row() -> LogoutDelivery:
        with rt.db.read() as db:
            found = db.execute(select(LogoutDelivery).where(LogoutDelivery.session_id == sid, LogoutDelivery.client_id == b.client_id)).scalar_one()
            db.expunge(found)
            return found

    deadline = time.time() + 10
    while row().attempts < 1 and time.time() < deadline:
        time.sleep(0.05)
    while row().last_error is None and time.time() < deadline:
        time.sleep(0.05)
    first = row()
    assert first.status == "pending" and first.attempts == 1 and first.last_error == "HTTP 503"
    with rt.db.read() as db:
        failed = [e for e in search(db, action="sso.backchannel.deliver", target=f"client:{b.client_id}") if e.details["sid"] == sid]
    assert failed and failed[0].outcome == "failure"
    # the retry is due in 5 s; bring it forward instead of sleeping
    with rt.db.transaction() as db:
        db.execute(update(LogoutDelivery).where(LogoutDelivery.id == first.id).values(next_attempt_at="2000-01-01T00:00:00+00:00"))
    Deliverer.of(rt).wake()
    got = bc.wait("/flaky")
    verify_logout_token(meta, got[0]["form"]["logout_token"], client_id=b.client_id)
    deadline = time.time() + 10
    while row().status != "delivered" and time.time() < deadline:
        time.sleep(0.05)
    assert row().status == "delivered" and row().attempts == 2


def test_unreachable_rp_fails_after_max_attempts(meta, agent, citizen, make_client, rt) -> None:  # type: ignore[no-untyped-def]
    from auth_service.oidc import logout

    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    a, a_secret = make_client(first_party=True, backchannel_logout_uri=f"http://127.0.0.1:{dead}/bc")
    _sa, a_token, a_claims = _sign_in(meta, agent, citizen, a, a_secret, login=True)
    agent.get(meta["end_session_endpoint"] + "?" + urlencode({"id_token_hint": a_token["id_token"]}))
    with rt.db.read() as db:
        delivery_id = db.execute(select(LogoutDelivery.id).where(LogoutDelivery.session_id == a_claims["sid"])).scalar_one()

    def current() -> LogoutDelivery:
        with rt.db.read() as db:
            found = db.get(LogoutDelivery, delivery_id)
            db.expunge(found)
            return found

    # Bring each retry forward instead of waiting minutes; the deliverer thread may take an attempt
    # itself (claims are atomic, so an attempt is never made twice).
    deadline = time.time() + 30
    while current().status == "pending" and time.time() < deadline:
        with rt.db.transaction() as db:
            db.execute(update(LogoutDelivery).where(LogoutDelivery.id == delivery_id).values(next_attempt_at="2000-01-01T00:00:00+00:00"))
        logout.deliver(rt, delivery_id)
    final = current()
    assert final.status == "failed" and final.attempts == logout.MAX_ATTEMPTS and "ConnectError" in (final.last_error or "")
    assert logout.deliver(rt, delivery_id) is None  # nothing more to do
    with rt.db.read() as db:
        audited = [e for e in search(db, action="sso.backchannel.deliver", target=f"client:{a.client_id}") if e.details["sid"] == a_claims["sid"]]
    assert len(audited) == logout.MAX_ATTEMPTS and all(e.outcome == "failure" for e in audited)
    assert sorted(e.details["attempt"] for e in audited) == list(range(1, logout.MAX_ATTEMPTS + 1))


def test_ending_a_session_from_the_account_page_notifies_rps(meta, agent, new_agent, citizen, make_client, bc) -> None:  # type: ignore[no-untyped-def]
    b, b_secret = make_client(first_party=True, backchannel_logout_uri=bc.url + "/acct")
    laptop = new_agent()
    _sb, _t, laptop_claims = _sign_in(meta, laptop, citizen, b, b_secret, login=True)
    account = agent.login(agent.get("/sso/account"), citizen.id_number, citizen.password)
    assert laptop_claims["sid"] in account.text
    forms = [f for f in agent.forms(account) if f.action == "/sso/account/sessions/end" and f.fields.get("sid") == laptop_claims["sid"]]
    assert len(forms) == 1
    r = agent.http.post("/sso/account/sessions/end", data=forms[0].fields)
    assert r.status_code == 303
    claims = verify_logout_token(meta, bc.wait("/acct")[0]["form"]["logout_token"], client_id=b.client_id)
    assert claims["sid"] == laptop_claims["sid"]
    # the laptop is signed out; this browser is not
    url, _s, _n, _v = rp.authorization_url(meta, rp.session(meta, b.client_id, b_secret), prompt="none")
    assert rp.query(laptop.follow(laptop.get(url)).headers["location"])["error"] == "login_required"
    assert "code" in rp.query(agent.follow(agent.get(url)).headers["location"])

"""Bad input at every SSO endpoint: the right OAuth/OIDC error, our own error page, or an RFC 9457
problem — never a redirect to an unverified URI, never a 500.

Covers: unknown client, unregistered redirect URI, missing/plain PKCE, wrong verifier, replayed and
expired codes, forged / alg:none / HS256-confusion / wrong-key / expired / wrong-audience tokens,
oversized and repeated parameters, CSRF on every form, lockout, and no user enumeration.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import statistics
import time
from urllib.parse import urlencode

import httpx
import pytest
import requests
from authlib.integrations.base_client.errors import OAuthError as AuthlibOAuthError
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey
from sqlalchemy import update

from auth_service.models import AuthorizationCode
from core.audit import search
from tests.auth_service import rp

FIRST_PARTY = {"first_party": True}


def b64(data: bytes | dict) -> str:
    if isinstance(data, dict):
        data = json.dumps(data).encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _error_page(r: httpx.Response, code: str) -> None:
    assert r.status_code == 400, r.status_code
    assert "location" not in r.headers
    assert r.headers["content-type"].startswith("text/html")
    assert f'data-error="{code}"' in r.text
    # the platform's security headers on every page, including the authorize endpoint's
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"] and "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff" and r.headers["x-request-id"]


# -- authorization endpoint ----------------------------------------------------------------------------


def test_unknown_client_shown_on_our_page(meta, agent) -> None:  # type: ignore[no-untyped-def]
    q = {"response_type": "code", "client_id": "c_doesnotexist", "redirect_uri": "https://evil.example/cb", "scope": "openid", "state": "s"}
    _error_page(agent.get(meta["authorization_endpoint"] + "?" + urlencode(q)), "invalid_client")
    q.pop("client_id")
    _error_page(agent.get(meta["authorization_endpoint"] + "?" + urlencode(q)), "invalid_request")


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example/cb",
        "http://127.0.0.1:9/cb/",  # exact match only
        "http://127.0.0.1:9/cb?x=1",
        "http://127.0.0.1:9/CB",
        "http://localhost:9/cb",
        "",
    ],
)
def test_unregistered_redirect_uri_never_redirected(meta, agent, make_client, redirect_uri) -> None:  # type: ignore[no-untyped-def]
    client, _ = make_client(**FIRST_PARTY)
    q = {"response_type": "code", "client_id": client.client_id, "redirect_uri": redirect_uri, "scope": "openid", "state": "s", "code_challenge": "x" * 43, "code_challenge_method": "S256"}
    _error_page(agent.get(meta["authorization_endpoint"] + "?" + urlencode(q)), "invalid_request")


def test_repeated_client_id_shown_on_our_page(meta, agent, make_client) -> None:  # type: ignore[no-untyped-def]
    client, _ = make_client(**FIRST_PARTY)
    url = meta["authorization_endpoint"] + f"?response_type=code&client_id={client.client_id}&client_id=c_other&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&scope=openid"
    _error_page(agent.get(url), "invalid_request")


def _authorize(meta, agent, client, **params):  # type: ignore[no-untyped-def]
    q = {"response_type": "code", "client_id": client.client_id, "redirect_uri": "http://127.0.0.1:9/cb", "scope": "openid", "state": "st-1"} | params
    q = {k: v for k, v in q.items() if v is not None}
    return agent.get(meta["authorization_endpoint"] + "?" + urlencode(q))


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"code_challenge": "a" * 43, "code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "a" * 43}, "invalid_request"),  # method defaults to plain: refused
        ({"code_challenge": "short", "code_challenge_method": "S256"}, "invalid_request"),
        ({"code_challenge_method": "S256"}, "invalid_request"),
        ({}, "invalid_request"),  # public client without PKCE
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": "code id_token"}, "unsupported_response_type"),
        ({"response_mode": "fragment"}, "invalid_request"),
        ({"scope": "openid admin"}, "invalid_scope"),
        ({"scope": ""}, "invalid_scope"),
        ({"prompt": "none login"}, "invalid_request"),
        ({"prompt": "bogus"}, "invalid_request"),
        ({"max_age": "-1"}, "invalid_request"),
        ({"max_age": "soon"}, "invalid_request"),
        ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported"),
        ({"request_uri": "https://evil.example/r"}, "request_uri_not_supported"),
        ({"nonce": "n" * 300}, "invalid_request"),
        ({"login_hint": "x" * 3000}, "invalid_request"),
        ({"id_token_hint": "e30.e30.AAAA"}, "invalid_request"),
    ],
)
def test_invalid_requests_redirect_with_error(meta, agent, make_client, params, error) -> None:  # type: ignore[no-untyped-def]
    client, _ = make_client(token_endpoint_auth_method="none", **FIRST_PARTY)
    r = _authorize(meta, agent, client, **params)
    assert r.status_code == 302, r.text[:300]
    q = rp.query(r.headers["location"])
    assert r.headers["location"].startswith("http://127.0.0.1:9/cb?")
    assert q["error"] == error and q["state"] == "st-1" and q["iss"] == meta["issuer"]


def test_oversized_state_not_echoed_and_oversized_query_refused(meta, agent, make_client) -> None:  # type: ignore[no-untyped-def]
    client, _ = make_client(token_endpoint_auth_method="none", **FIRST_PARTY)
    r = _authorize(meta, agent, client, state="s" * 5000)
    q = rp.query(r.headers["location"])
    assert q["error"] == "invalid_request" and "state" not in q
    r = _authorize(meta, agent, client, junk="j" * 9000)  # over the whole-query bound
    _error_page(r, "invalid_request")
    many = "&".join(f"p{i}=v" for i in range(80))
    r = agent.get(meta["authorization_endpoint"] + f"?client_id={client.client_id}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&" + many)
    assert r.status_code in (302, 400) and r.status_code < 500
    if r.status_code == 302:
        assert rp.query(r.headers["location"])["error"] == "invalid_request"


def test_authorize_post_with_bad_body(meta, agent) -> None:  # type: ignore[no-untyped-def]
    r = agent.http.post(meta["authorization_endpoint"], content=b'{"client_id": 1}', headers={"content-type": "application/json"})
    _error_page(r, "invalid_request")
    r = agent.http.post(meta["authorization_endpoint"], content=b"a=1&a=2", headers={"content-type": "application/x-www-form-urlencoded"})
    _error_page(r, "invalid_request")


# -- token endpoint ------------------------------------------------------------------------------------


def _code(meta, agent, citizen, client, secret, **params):  # type: ignore[no-untyped-def]
    sess = rp.session(meta, client.client_id, secret)
    url, state, nonce, verifier = rp.authorization_url(meta, sess, **params)
    start = agent.get(url)
    done = agent.follow(start)
    if "/sso/login" in str(done.request.url):
        done = agent.login(start, citizen.id_number, citizen.password)
    location = done.headers["location"]
    return sess, location, rp.query(location)["code"], verifier


def _token(meta, client, secret, **form):  # type: ignore[no-untyped-def]
    return requests.post(meta["token_endpoint"], data=form, auth=(client.client_id, secret) if secret else None, timeout=10)


def test_replayed_code_revokes_first_tokens(meta, agent, citizen, make_client, rt) -> None:  # type: ignore[no-untyped-def]
    client, secret = make_client(**FIRST_PARTY)
    sess, location, code, verifier = _code(meta, agent, citizen, client, secret)
    first = sess.fetch_token(meta["token_endpoint"], authorization_response=location, code_verifier=verifier)
    assert sess.get(meta["userinfo_endpoint"]).status_code == 200
    again = _token(meta, client, secret, grant_type="authorization_code", code=code, redirect_uri="http://127.0.0.1:9/cb", code_verifier=verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert again.headers["cache-control"] == "no-store"
    r = requests.get(meta["userinfo_endpoint"], headers={"Authorization": f"Bearer {first['access_token']}"}, timeout=10)
    assert r.status_code == 401
    with pytest.raises(AuthlibOAuthError):
        sess.refresh_token(meta["token_endpoint"], refresh_token=first["refresh_token"])
    intro = sess.introspect_token(meta["introspection_endpoint"], token=first["access_token"]).json()
    assert intro == {"active": False}
    with rt.db.read() as db:
        assert search(db, action="sso.code.replay", target=f"person:{citizen.id}")


def test_code_misuse(meta, agent, citizen, make_client, rt) -> None:  # type: ignore[no-untyped-def]
    client, secret = make_client(**FIRST_PARTY)
    other, other_secret = make_client(**FIRST_PARTY)
    cb = "http://127.0.0.1:9/cb"
    # wrong verifier, missing verifier, wrong redirect_uri, another client, expired: invalid_grant
    _s, _l, code, verifier = _code(meta, agent, citizen, client, secret)
    r = _token(meta, client, secret, grant_type="authorization_code", code=code, redirect_uri=cb, code_verifier="w" * 43)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    _s, _l, code, verifier = _code(meta, agent, citizen, client, secret)
    r = _token(meta, client, secret, grant_type="authorization_code", code=code, redirect_uri=cb)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    _s, _l, code, verifier = _code(meta, agent, citizen, client, secret)
    r = _token(meta, client, secret, grant_type="authorization_code", code=code, redirect_uri="http://127.0.0.1:9/other", code_verifier=verifier)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    _s, _l, code, verifier = _code(meta, agent, citizen, client, secret)
    r = _token(meta, other, other_secret, grant_type="authorization_code", code=code, redirect_uri=cb, code_verifier=verifier)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    r = _token(meta, client, secret, grant_type="authorization_code", code=code, redirect_uri=cb, code_verifier=verifier)
    assert r.status_code == 200  # the other client's attempt did not consume it
    _s, _l, code, verifier = _code(meta, agent, citizen, client, secret)
    with rt.db.transaction() as db:
        db.execute(update(AuthorizationCode).where(AuthorizationCode.code_hash == hashlib.sha256(code.encode()).hexdigest()).values(expires_at="2000-01-01T00:00:00+00:00"))
    r = _token(meta, client, secret, grant_type="authorization_code", code=code, redirect_uri=cb, code_verifier=verifier)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    r = _token(meta, client, secret, grant_type="authorization_code", code="made-up", redirect_uri=cb, code_verifier=verifier)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_token_endpoint_malformed_requests(meta, make_client) -> None:  # type: ignore[no-untyped-def]
    client, secret = make_client(**FIRST_PARTY)
    url = meta["token_endpoint"]
    auth = (client.client_id, secret)
    cases = [
        (dict(data={}), 415, "invalid_request"),  # no body, no media type
        (dict(data={"grant_type": ""}), 400, "invalid_request"),
        (dict(data={"grant_type": "password", "username": "x", "password": "y"}), 400, "unsupported_grant_type"),
        (dict(data={"grant_type": "authorization_code"}), 400, "invalid_request"),
        (dict(data={"grant_type": "refresh_token"}), 400, "invalid_request"),
        (dict(data={"grant_type": "authorization_code", "code": "c" * 5000}), 400, "invalid_request"),
        (dict(data="grant_type=client_credentials&grant_type=client_credentials", headers={"content-type": "application/x-www-form-urlencoded"}), 400, "invalid_request"),
        (dict(json={"grant_type": "client_credentials"}), 415, "invalid_request"),
        (dict(data={"grant_type": "client_credentials", "junk": "j" * 70_000}), 413, "invalid_request"),
    ]
    for kwargs, status, error in cases:
        r = requests.post(url, auth=auth, timeout=10, **kwargs)
        assert (r.status_code, r.json()["error"]) == (status, error), (kwargs.get("data", "")[:80] if isinstance(kwargs.get("data"), str) else kwargs, r.text)
    # client authentication failures: invalid_client with a Basic challenge
    for bad_auth in [(client.client_id, "nope"), ("c_unknown", "x"), (client.client_id, "")]:
        r = requests.post(url, data={"grant_type": "client_credentials"}, auth=bad_auth, timeout=10)
        assert r.status_code == 401 and r.json()["error"] == "invalid_client" and r.headers["www-authenticate"].startswith("Basic")
    for header in ("Basic !!!notbase64", "Basic " + base64.b64encode(b"no-colon").decode(), "Bearer abc", "Basic " + base64.b64encode(b"\xff\xfe:x").decode()):
        r = requests.post(url, data={"grant_type": "client_credentials"}, headers={"Authorization": header}, timeout=10)
        assert r.status_code in (400, 401) and r.json()["error"] in ("invalid_client", "invalid_request"), (header, r.text)
    # two methods at once, or a method other than the registered one
    r = requests.post(url, data={"grant_type": "client_credentials", "client_id": client.client_id, "client_secret": secret}, auth=auth, timeout=10)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = requests.post(url, data={"grant_type": "client_credentials", "client_id": client.client_id, "client_secret": secret}, timeout=10)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = requests.post(url, data={"grant_type": "client_credentials", "client_assertion_type": "urn:x", "client_assertion": "a.b.c"}, timeout=10)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = requests.post(url, data={"grant_type": "client_credentials", "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion": "garbage"}, timeout=10)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_disabled_client_refused_everywhere(meta, agent, citizen, make_client, rt) -> None:  # type: ignore[no-untyped-def]
    from auth_service import service
    from auth_service.oidc.client_auth import ClientCache
    from core.security import Actor

    client, secret = make_client(**FIRST_PARTY)
    sess, location, _code_value, verifier = _code(meta, agent, citizen, client, secret)
    token = sess.fetch_token(meta["token_endpoint"], authorization_response=location, code_verifier=verifier)
    with rt.db.transaction() as db:
        service.disable_client(rt, db, Actor.cli(), client_id=client.client_id)
    ClientCache.of(rt).forget(client.client_id)
    assert sess.get(meta["userinfo_endpoint"]).status_code == 401
    with pytest.raises(AuthlibOAuthError) as err:
        sess.refresh_token(meta["token_endpoint"], refresh_token=token["refresh_token"])
    assert err.value.error == "invalid_client"
    _error_page(_authorize(meta, agent, client, code_challenge="a" * 43, code_challenge_method="S256"), "invalid_client")


# -- forged tokens at userinfo and introspection ----------------------------------------------------------


def _forged_tokens(meta, rt, real: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    from auth_service.oidc.access_token import issue_access_token

    header, payload, sig = real.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    kid = json.loads(base64.urlsafe_b64decode(header + "=="))["kid"]
    jwks = requests.get(meta["jwks_uri"], timeout=10).json()
    rsa_jwk = next(k for k in jwks["keys"] if k["kty"] == "RSA")
    stranger = ECKey.generate_key("P-256")
    out = {
        "alg_none": b64({"alg": "none", "typ": "at+jwt", "kid": kid}) + "." + payload + ".",
        "alg_none_upper": b64({"alg": "NONE", "typ": "at+jwt", "kid": kid}) + "." + payload + ".",
        "tampered_claims": header + "." + b64(claims | {"scope": claims["scope"] + " admin"}) + "." + sig,
        "wrong_key_same_kid": jose_jwt.encode({"alg": "ES256", "kid": kid, "typ": "at+jwt"}, claims, stranger),
        "unknown_kid": jose_jwt.encode({"alg": "ES256", "kid": "nope", "typ": "at+jwt"}, claims, stranger),
        "truncated_signature": header + "." + payload + "." + sig[:-10],
        "not_base64": header + "." + payload + ".***",
        "garbage": "abc.def.ghi",
        "huge": "a" * 20_000 + ".b.c",
        "expired": issue_access_token(rt, client_id=claims["client_id"], subject=claims["sub"], scope=claims["scope"], lifetime=-300)[0],
        "wrong_audience": issue_access_token(rt, client_id=claims["client_id"], subject=claims["sub"], scope=claims["scope"], extra={"aud": "https://other.example/api"})[0],
        "wrong_issuer": issue_access_token(rt, client_id=claims["client_id"], subject=claims["sub"], scope=claims["scope"], extra={"iss": "https://evil.example"})[0],
    }
    # RS256→HS256 confusion: an HMAC keyed with the published RSA public key
    hs_header = b64({"alg": "HS256", "typ": "at+jwt", "kid": rsa_jwk["kid"]})
    signing_input = f"{hs_header}.{payload}".encode()
    out["hs256_with_public_key"] = signing_input.decode() + "." + b64(hmac.new(json.dumps(rsa_jwk).encode(), signing_input, hashlib.sha256).digest())
    return out


def test_forged_tokens_refused_at_userinfo_and_introspection(meta, agent, citizen, make_client, rt) -> None:  # type: ignore[no-untyped-def]
    client, secret = make_client(**FIRST_PARTY)
    sess, location, _c, verifier = _code(meta, agent, citizen, client, secret)
    token = sess.fetch_token(meta["token_endpoint"], authorization_response=location, code_verifier=verifier)
    forged = _forged_tokens(meta, rt, token["access_token"])
    forged["id_token_as_access_token"] = token["id_token"]  # typ JWT, aud = the client: not an access token
    for name, value in forged.items():
        r = requests.get(meta["userinfo_endpoint"], headers={"Authorization": f"Bearer {value}"}, timeout=10)
        assert r.status_code == 401, (name, r.status_code, r.text)
        assert 'error="invalid_token"' in r.headers["www-authenticate"], name
        r = requests.post(meta["userinfo_endpoint"], data={"access_token": value}, timeout=10)
        assert r.status_code == 401, (name, r.status_code)
        intro = sess.introspect_token(meta["introspection_endpoint"], token=value).json()
        assert intro == {"active": False}, (name, intro)
    # the genuine token still works, by header and by form body
    assert sess.get(meta["userinfo_endpoint"]).status_code == 200
    assert requests.post(meta["userinfo_endpoint"], data={"access_token": token["access_token"]}, timeout=10).status_code == 200
    # no token at all, or another scheme
    r = requests.get(meta["userinfo_endpoint"], timeout=10)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    r = requests.get(meta["userinfo_endpoint"], headers={"Authorization": "Basic abc"}, timeout=10)
    assert r.status_code == 401
    # a client_credentials token carries no person: insufficient_scope
    cc, cc_secret = make_client(grant_types=["client_credentials"], scopes=["records:read"], redirect_uris=[])
    cc_token = rp.session(meta, cc.client_id, cc_secret, scope=None).fetch_token(meta["token_endpoint"], grant_type="client_credentials")
    r = requests.get(meta["userinfo_endpoint"], headers={"Authorization": f"Bearer {cc_token['access_token']}"}, timeout=10)
    assert r.status_code == 403 and 'error="insufficient_scope"' in r.headers["www-authenticate"]


def test_forged_tokens_refused_by_platform_apis(meta, agent, citizen, make_client, rt, live) -> None:  # type: ignore[no-untyped-def]
    """The same verifier guards every platform API: a forged token is a 401 problem document."""
    client, secret = make_client(**FIRST_PARTY)
    sess, location, _c, verifier = _code(meta, agent, citizen, client, secret)
    token = sess.fetch_token(meta["token_endpoint"], authorization_response=location, code_verifier=verifier)
    guarded = "/api/v1/certificates"  # the CA's listing, guarded by rt.token_verifier like every API
    assert requests.get(live.url + guarded, headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=10).status_code in (200, 403)
    for name, value in _forged_tokens(meta, rt, token["access_token"]).items():
        r = requests.get(live.url + guarded, headers={"Authorization": f"Bearer {value}"}, timeout=10)
        assert r.status_code == 401, (name, guarded, r.status_code)
        assert r.headers["content-type"].startswith("application/problem+json")


# -- CSRF on every form --------------------------------------------------------------------------------------

FORMS = ["/sso/login", "/sso/login/otp", "/sso/login/sms", "/sso/login/cert", "/sso/consent", "/sso/logout",
         "/sso/account/password", "/sso/account/sessions/end", "/sso/account/otp/start", "/sso/account/otp/confirm",
         "/sso/account/otp/remove", "/sso/account/recovery-codes"]


@pytest.mark.parametrize("path", FORMS)
def test_csrf_required_on_every_form(live, agent, new_agent, path) -> None:  # type: ignore[no-untyped-def]
    agent.get("/sso/account")  # the browser now has its CSRF cookie
    other = new_agent()
    other.get("/sso/account")
    other_token = other.form("/sso/login", other.follow(other.last)).fields["csrf_token"]
    for fields in ({}, {"csrf_token": ""}, {"csrf_token": "0" * 64}, {"csrf_token": other_token}):
        r = agent.http.post(path, data={"ia": "x", "login": "a", "password": "b", **fields})
        assert r.status_code == 403, (path, fields, r.status_code)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == "sso.csrf_failed"
    # a browser that has no CSRF cookie at all (a cross-site POST without cookies)
    r = httpx.post(live.url + path, data={"csrf_token": other_token}, timeout=10)
    assert r.status_code == 403 and r.json()["code"] == "sso.csrf_failed"
    # wrong media type, repeated fields, oversized body: problems too
    r = agent.http.post(path, json={"csrf_token": "x"})
    assert r.status_code == 415 and r.headers["content-type"].startswith("application/problem+json")
    r = agent.http.post(path, content=b"csrf_token=a&csrf_token=b", headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and r.json()["code"] == "request.repeated_field"
    r = agent.http.post(path, data={"x": "y" * 70_000})
    assert r.status_code == 413 and r.headers["content-type"].startswith("application/problem+json")


def test_pages_with_bad_parameters(live, agent) -> None:  # type: ignore[no-untyped-def]
    for path in ("/sso/login", "/sso/login?ia=", "/sso/login?ia=" + "x" * 500, "/sso/login/otp?ia=nope", "/sso/consent?ia=nope"):
        r = agent.get(path)
        assert r.status_code == 400 and 'data-error="interaction_expired"' in r.text, path
    r = agent.get("/sso/lang?to=en&next=https://evil.example/")
    assert r.status_code == 303 and r.headers["location"] == "/sso/account"
    r = agent.get("/sso/lang?to=en&next=//evil.example/")
    assert r.headers["location"] == "/sso/account"
    assert agent.get("/sso/static/../../eauth.toml").status_code == 404
    r = agent.get("/sso/static/nope.css")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")


# -- lockout and enumeration -----------------------------------------------------------------------------


def _login_attempt(agent, meta, client, login: str, password: str) -> httpx.Response:  # type: ignore[no-untyped-def]
    sess = rp.session(meta, client.client_id, None)
    url, *_ = rp.authorization_url(meta, sess)
    agent.follow(agent.get(url))
    return agent.submit("/sso/login", {"login": login, "password": password})


def _alert(r: httpx.Response) -> str:
    import re

    found = re.search(r'<p class="alert error" role="alert" id="form-error">(.*?)</p>', r.text)
    assert found, r.text[:500]
    return found.group(1)


def test_no_user_enumeration(meta, agent, citizen, make_client) -> None:  # type: ignore[no-untyped-def]
    client, _ = make_client(token_endpoint_auth_method="none", **FIRST_PARTY)
    wrong_password = _login_attempt(agent, meta, client, citizen.id_number, "Not-The-Password-1")
    from tests.factories import unique_id_number

    nobody = _login_attempt(agent, meta, client, unique_id_number(), "Not-The-Password-1")
    malformed = _login_attempt(agent, meta, client, "not an id", "Not-The-Password-1")
    assert wrong_password.status_code == nobody.status_code == malformed.status_code == 401
    assert _alert(wrong_password) == _alert(nobody) == _alert(malformed) == "登录名或密码不正确。"
    # Timing: a name that matches nobody still costs one Argon2id verification.
    def timed(login: str) -> float:
        start = time.perf_counter()
        _login_attempt(agent, meta, client, login, "Not-The-Password-2")
        return time.perf_counter() - start

    # interleaved, so a burst of load on this shared machine hits both series alike
    real, fake = [], []
    for _ in range(4):
        real.append(timed(citizen.phone))
        fake.append(timed(unique_id_number()))
    assert statistics.median(fake) > 0.4 * statistics.median(real), (fake, real)


def test_account_lockout_with_backoff(meta, agent, new_agent, citizen, make_client, rt) -> None:  # type: ignore[no-untyped-def]
    client, _ = make_client(token_endpoint_auth_method="none", **FIRST_PARTY)
    for _ in range(4):
        assert _login_attempt(agent, meta, client, citizen.id_number, "Wrong-Password-123").status_code == 401
    locked = _login_attempt(agent, meta, client, citizen.id_number, "Wrong-Password-123")
    assert locked.status_code == 429 and _alert(locked) == "尝试次数过多，请在 1 分钟后重试。"
    # locked per account: even the right password, from another address, is refused meanwhile
    elsewhere = new_agent()
    r = _login_attempt(elsewhere, meta, client, citizen.id_number, citizen.password)
    assert r.status_code == 429
    # the same message for an unknown name after the same number of failures (no enumeration by lockout)
    from tests.factories import unique_id_number

    ghost = unique_id_number()
    third = new_agent()
    statuses = [_login_attempt(third, meta, client, ghost, "Wrong-Password-123").status_code for _ in range(5)]
    assert statuses == [401, 401, 401, 401, 429]
    with rt.db.read() as db:
        lockouts = search(db, action="sso.login.lockout", target=f"person:{citizen.id}")
        refused = search(db, action="sso.login.refused", target=f"person:{citizen.id}")
        failures = search(db, action="sso.login.failure", target=f"person:{citizen.id}")
    assert lockouts and lockouts[0].details["seconds"] == 60 and refused and len(failures) >= 5
    # back-off doubles: after the lock expires one more failure locks for 2 minutes
    from auth_service.models import Throttle

    with rt.db.transaction() as db:
        db.execute(update(Throttle).where(Throttle.key == f"acct:{citizen.id}").values(locked_until="2000-01-01T00:00:00+00:00"))
    again = _login_attempt(new_agent(), meta, client, citizen.id_number, "Wrong-Password-123")
    assert again.status_code == 429 and "2 分钟" in _alert(again)


def test_lockout_per_client_address(meta, new_agent, make_client) -> None:  # type: ignore[no-untyped-def]
    client, _ = make_client(token_endpoint_auth_method="none", **FIRST_PARTY)
    from tests.factories import unique_id_number

    browser = new_agent()
    statuses = [_login_attempt(browser, meta, client, unique_id_number(), "Wrong-Password-123").status_code for _ in range(21)]
    assert statuses[:19] == [401] * 19 and statuses[-1] == 429


def test_end_session_bad_input(meta, agent) -> None:  # type: ignore[no-untyped-def]
    many = "&".join(f"p{i}=v" for i in range(40))
    _error_page(agent.get(meta["end_session_endpoint"] + "?" + many), "invalid_request")
    _error_page(agent.get(meta["end_session_endpoint"] + "?state=" + "s" * 9000), "invalid_request")
    _error_page(agent.get(meta["end_session_endpoint"] + "?id_token_hint=e30.e30.AAAA"), "invalid_request")
    r = agent.http.post(meta["end_session_endpoint"], json={"id_token_hint": "x"})
    _error_page(r, "invalid_request")
    r = agent.http.post(meta["end_session_endpoint"], content=b"state=a&state=b", headers={"content-type": "application/x-www-form-urlencoded"})
    _error_page(r, "invalid_request")


def test_success_clears_the_failure_count(meta, new_agent, citizen, make_client) -> None:  # type: ignore[no-untyped-def]
    client, _ = make_client(token_endpoint_auth_method="none", **FIRST_PARTY)
    browser = new_agent()
    for _ in range(4):
        assert _login_attempt(browser, meta, client, citizen.id_number, "Wrong-Password-123").status_code == 401
    ok = _login_attempt(browser, meta, client, citizen.id_number, citizen.password)
    assert ok.status_code == 303 and ok.headers["location"].startswith("http://127.0.0.1:9/cb?code=")
    # four more failures are allowed again before the lock
    other = new_agent()
    statuses = [_login_attempt(other, meta, client, citizen.id_number, "Wrong-Password-123").status_code for _ in range(5)]
    assert statuses == [401, 401, 401, 401, 429]


def test_completed_interaction_cannot_be_replayed(meta, agent, citizen, make_client, rt) -> None:  # type: ignore[no-untyped-def]
    """A sign-in's pending interaction is deleted with the code it produced: posting the same login
    form again (a replay of the completed step) finds nothing and shows the expired page."""
    from auth_service.models import Interaction

    client, secret = make_client(**FIRST_PARTY)
    sess = rp.session(meta, client.client_id, secret)
    url, _state, _nonce, _verifier = rp.authorization_url(meta, sess)
    page = agent.follow(agent.get(url))
    form = agent.form("/sso/login", page)
    ia = form.fields["ia"]
    done = agent.follow(agent.http.post(form.action, data={**form.fields, "login": citizen.id_number, "password": citizen.password}))
    assert "code" in rp.query(done.headers["location"])
    with rt.db.read() as db:
        assert db.get(Interaction, hashlib.sha256(ia.encode()).hexdigest()) is None
    again = agent.http.post(form.action, data={**form.fields, "login": citizen.id_number, "password": citizen.password})
    assert again.status_code == 400 and 'data-error="interaction_expired"' in again.text

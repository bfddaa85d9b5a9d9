"""OpenID Connect with a real, independent relying party (Authlib + joserfc) over real HTTP.

Login happens through the scripted form agent; everything a department system does — discovery,
auth code + PKCE S256, token, ID token and JWT access token verification with the published JWKS,
userinfo, refresh (rotation and reuse detection), introspection, revocation, client_credentials,
private_key_jwt, RP-initiated logout — is Authlib's or joserfc's code, not ours.
"""

from __future__ import annotations

import secrets
import time

import httpx
import pytest
import requests
from authlib.integrations.base_client.errors import OAuthError as AuthlibOAuthError
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from core.audit import search
from tests.auth_service import rp

FIRST_PARTY = {"first_party": True}


def _login_code(meta, agent, citizen, rp_session, **params):  # type: ignore[no-untyped-def]
    """Authorize → login through the agent → the redirect back to the RP."""
    url, state, nonce, verifier = rp.authorization_url(meta, rp_session, **params)
    done = agent.login(agent.get(url), citizen.id_number, citizen.password)
    assert done.status_code in (302, 303), done.text[:500]
    location = done.headers["location"]
    assert location.startswith("http://127.0.0.1:9/cb?"), location
    return location, state, nonce, verifier


def test_discovery_and_jwks(meta, live, rt) -> None:  # type: ignore[no-untyped-def]
    assert meta["issuer"] == rt.settings.public_url == live.url
    for name in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri", "end_session_endpoint", "introspection_endpoint", "revocation_endpoint"):
        assert meta[name].startswith(meta["issuer"] + "/")
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert "RS256" in meta["id_token_signing_alg_values_supported"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert meta["backchannel_logout_supported"] and meta["backchannel_logout_session_supported"]
    jwks = requests.get(meta["jwks_uri"], timeout=10)
    assert jwks.headers["content-type"].startswith("application/jwk-set+json")
    keys = KeySet.import_key_set(jwks.json())
    algs = {k.alg for k in keys}
    assert {"RS256", "ES256"} <= algs
    for key in jwks.json()["keys"]:
        assert not {"d", "p", "q"} & set(key)  # public parts only
    # RFC 8414 metadata is the same document
    assert requests.get(meta["issuer"] + "/.well-known/oauth-authorization-server", timeout=10).json() == meta


def test_auth_code_pkce_id_token_userinfo(meta, agent, citizen, make_client, rt) -> None:  # type: ignore[no-untyped-def]
    client, secret = make_client(**FIRST_PARTY)
    sess = rp.session(meta, client.client_id, secret)
    location, state, nonce, verifier = _login_code(meta, agent, citizen, sess)
    q = rp.query(location)
    assert q["state"] == state and q["iss"] == meta["issuer"]  # RFC 9207
    token = sess.fetch_token(meta["token_endpoint"], authorization_response=location, code_verifier=verifier)
    assert token["token_type"] == "Bearer" and token["expires_in"] > 0 and token["refresh_token"]
    claims = rp.verify_id_token(meta, token["id_token"], client_id=client.client_id, nonce=nonce, access_token=token["access_token"])
    assert claims["sub"] == citizen.id and claims["acr"] == "1" and claims["amr"] == ["pwd"]
    assert abs(claims["auth_time"] - time.time()) < 120 and claims["sid"] and claims["name"] == citizen.name
    at = rp.verify_access_token(meta, token["access_token"], client_id=client.client_id)
    assert at["sub"] == citizen.id and at["sid"] == claims["sid"] and "openid" in at["scope"].split()
    info = sess.get(meta["userinfo_endpoint"]).json()
    assert info == {"sub": citizen.id, "name": citizen.name}
    with rt.db.read() as db:
        assert search(db, action="sso.login.success", target=f"person:{citizen.id}")
        assert search(db, action="sso.token.issue", target=f"person:{citizen.id}")


def test_phone_scope_and_login_by_phone(meta, agent, citizen, make_client) -> None:  # type: ignore[no-untyped-def]
    client, secret = make_client(**FIRST_PARTY)
    sess = rp.session(meta, client.client_id, secret, scope="openid phone")
    url, state, nonce, verifier = rp.authorization_url(meta, sess)
    done = agent.login(agent.get(url), citizen.phone, citizen.password)
    token = sess.fetch_token(meta["token_endpoint"], authorization_response=done.headers["location"], code_verifier=verifier)
    assert sess.get(meta["userinfo_endpoint"]).json() == {"sub": citizen.id, "phone_number": "+86" + citizen.phone, "phone_number_verified": False}
    assert "name" not in rp.verify_id_token(meta, token["id_token"], client_id=client.client_id, nonce=nonce)


def test_client_secret_post_and_public_client(meta, agent, citizen, make_client) -> None:  # type: ignore[no-untyped-def]
    post, post_secret = make_client(token_endpoint_auth_method="client_secret_post", **FIRST_PARTY)
    sess = rp.session(meta, post.client_id, post_secret, token_endpoint_auth_method="client_secret_post")
    location, _state, nonce, verifier = _login_code(meta, agent, citizen, sess)
    token = sess.fetch_token(meta["token_endpoint"], authorization_response=location, code_verifier=verifier)
    rp.verify_id_token(meta, token["id_token"], client_id=post.client_id, nonce=nonce)

    public, none_secret = make_client(token_endpoint_auth_method="none", **FIRST_PARTY)
    assert none_secret is None
    sess = rp.session(meta, public.client_id)
    url, _state, nonce, verifier = rp.authorization_url(meta, sess)
    done = agent.follow(agent.get(url))  # the existing session: straight back with a code
    token = sess.fetch_token(meta["token_endpoint"], authorization_response=done.headers["location"], code_verifier=verifier)
    rp.verify_id_token(meta, token["id_token"], client_id=public.client_id, nonce=nonce)


def test_consent_for_third_party_client(meta, agent, citizen, make_client, rt) -> None:  # type: ignore[no-untyped-def]
    client, secret = make_client()  # not first-party: the user is asked
    sess = rp.session(meta, client.client_id, secret)
    url, state, nonce, verifier = rp.authorization_url(meta, sess)
    page = agent.login(agent.get(url), citizen.id_number, citizen.password)
    assert page.status_code == 200 and "/sso/consent" in str(page.request.url)
    assert client.name in page.text
    denied = agent.submit("/sso/consent", {"decision": "deny"})
    q = rp.query(denied.headers["location"])
    assert q["error"] == "access_denied" and q["state"] == state and q["iss"] == meta["issuer"]

    url, state, nonce, verifier = rp.authorization_url(meta, sess)
    page = agent.follow(agent.get(url))
    assert "/sso/consent" in str(page.request.url)
    allowed = agent.submit("/sso/consent", {"decision": "allow"})
    token = sess.fetch_token(meta["token_endpoint"], authorization_response=allowed.headers["location"], code_verifier=verifier)
    rp.verify_id_token(meta, token["id_token"], client_id=client.client_id, nonce=nonce)
    # consent remembered: the next request goes straight through
    url, state, nonce, verifier = rp.authorization_url(meta, sess)
    assert rp.query(agent.follow(agent.get(url)).headers["location"])["state"] == state
    with rt.db.read() as db:
        assert search(db, action="sso.consent.grant", target=f"client:{client.client_id}")
        assert search(db, action="sso.consent.deny", target=f"client:{client.client_id}")


def test_refresh_rotation_and_reuse_revokes_family(meta, agent, citizen, make_client, rt) -> None:  # type: ignore[no-untyped-def]
    client, secret = make_client(**FIRST_PARTY)
    sess = rp.session(meta, client.client_id, secret)
    location, _s, nonce, verifier = _login_code(meta, agent, citizen, sess)
    first = sess.fetch_token(meta["token_endpoint"], authorization_response=location, code_verifier=verifier)
    second = sess.refresh_token(meta["token_endpoint"], refresh_token=first["refresh_token"])
    assert second["refresh_token"] != first["refresh_token"] and second["access_token"] != first["access_token"]
    claims = rp.verify_id_token(meta, second["id_token"], client_id=client.client_id, nonce=None, access_token=second["access_token"])
    assert claims["sub"] == citizen.id
    # narrowing the scope on refresh is allowed, widening is not
    narrow = rp.session(meta, client.client_id, secret).refresh_token(meta["token_endpoint"], refresh_token=second["refresh_token"], scope="openid")
    assert narrow["scope"] == "openid"
    with pytest.raises(AuthlibOAuthError) as err:
        rp.session(meta, client.client_id, secret).refresh_token(meta["token_endpoint"], refresh_token=narrow["refresh_token"], scope="openid email")
    assert err.value.error == "invalid_scope"
    # reuse of an already rotated token: the whole family dies, including the newest tokens
    with pytest.raises(AuthlibOAuthError) as err:
        rp.session(meta, client.client_id, secret).refresh_token(meta["token_endpoint"], refresh_token=first["refresh_token"])
    assert err.value.error == "invalid_grant"
    with pytest.raises(AuthlibOAuthError) as err:
        rp.session(meta, client.client_id, secret).refresh_token(meta["token_endpoint"], refresh_token=narrow["refresh_token"])
    assert err.value.error == "invalid_grant"
    for access in (first["access_token"], second["access_token"], narrow["access_token"]):
        r = requests.get(meta["userinfo_endpoint"], headers={"Authorization": f"Bearer {access}"}, timeout=10)
        assert r.status_code == 401 and 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    intro = rp.session(meta, client.client_id, secret).introspect_token(meta["introspection_endpoint"], token=narrow["access_token"]).json()
    assert intro == {"active": False}
    # another client cannot use this client's refresh token
    with rt.db.read() as db:
        assert search(db, action="sso.refresh.reuse", target=f"person:{citizen.id}")


def test_refresh_token_of_another_client_refused(meta, agent, citizen, make_client) -> None:  # type: ignore[no-untyped-def]
    client, secret = make_client(**FIRST_PARTY)
    other, other_secret = make_client(**FIRST_PARTY)
    sess = rp.session(meta, client.client_id, secret)
    location, _s, _n, verifier = _login_code(meta, agent, citizen, sess)
    token = sess.fetch_token(meta["token_endpoint"], authorization_response=location, code_verifier=verifier)
    with pytest.raises(AuthlibOAuthError) as err:
        rp.session(meta, other.client_id, other_secret).refresh_token(meta["token_endpoint"], refresh_token=token["refresh_token"])
    assert err.value.error == "invalid_grant"
    # and the rightful owner still can (the failed attempt did not consume it)
    assert sess.refresh_token(meta["token_endpoint"], refresh_token=token["refresh_token"])["access_token"]


def test_introspection(meta, agent, citizen, make_client) -> None:  # type: ignore[no-untyped-def]
    client, secret = make_client(**FIRST_PARTY)
    sess = rp.session(meta, client.client_id, secret)
    location, _s, _n, verifier = _login_code(meta, agent, citizen, sess)
    token = sess.fetch_token(meta["token_endpoint"], authorization_response=location, code_verifier=verifier)
    access = sess.introspect_token(meta["introspection_endpoint"], token=token["access_token"]).json()
    assert access["active"] is True and access["client_id"] == client.client_id and access["sub"] == citizen.id
    assert access["iss"] == meta["issuer"] and access["exp"] > time.time() and "openid" in access["scope"].split()
    refresh = sess.introspect_token(meta["introspection_endpoint"], token=token["refresh_token"], token_type_hint="refresh_token").json()
    assert refresh["active"] is True and refresh["client_id"] == client.client_id and refresh["sub"] == citizen.id
    # a third-party client learns nothing about tokens it was not issued
    stranger, stranger_secret = make_client()
    other = rp.session(meta, stranger.client_id, stranger_secret)
    assert other.introspect_token(meta["introspection_endpoint"], token=token["access_token"]).json() == {"active": False}
    assert other.introspect_token(meta["introspection_endpoint"], token="not-a-token").json() == {"active": False}
    # a public client may not introspect, and an unauthenticated caller is invalid_client
    public, _ = make_client(token_endpoint_auth_method="none")
    r = requests.post(meta["introspection_endpoint"], data={"token": token["access_token"], "client_id": public.client_id}, timeout=10)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = requests.post(meta["introspection_endpoint"], data={"token": token["access_token"]}, timeout=10)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_revocation(meta, agent, citizen, make_client, rt) -> None:  # type: ignore[no-untyped-def]
    client, secret = make_client(**FIRST_PARTY)
    sess = rp.session(meta, client.client_id, secret)
    location, _s, _n, verifier = _login_code(meta, agent, citizen, sess)
    token = sess.fetch_token(meta["token_endpoint"], authorization_response=location, code_verifier=verifier)
    assert sess.get(meta["userinfo_endpoint"]).status_code == 200
    r = sess.revoke_token(meta["revocation_endpoint"], token=token["access_token"], token_type_hint="access_token")
    assert r.status_code == 200
    assert sess.get(meta["userinfo_endpoint"]).status_code == 401
    # the refresh token survives an access-token revocation, then dies with its own
    fresh = sess.refresh_token(meta["token_endpoint"], refresh_token=token["refresh_token"])
    assert sess.revoke_token(meta["revocation_endpoint"], token=fresh["refresh_token"], token_type_hint="refresh_token").status_code == 200
    with pytest.raises(AuthlibOAuthError):
        sess.refresh_token(meta["token_endpoint"], refresh_token=fresh["refresh_token"])
    r = requests.get(meta["userinfo_endpoint"], headers={"Authorization": f"Bearer {fresh['access_token']}"}, timeout=10)
    assert r.status_code == 401  # the family's access tokens go with it (RFC 7009 §2.1)
    # unknown tokens: 200 all the same (§2.2); a bad hint is unsupported_token_type
    assert sess.revoke_token(meta["revocation_endpoint"], token="garbage").status_code == 200
    r = requests.post(meta["revocation_endpoint"], data={"token": "x", "token_type_hint": "id_token"}, auth=(client.client_id, secret), timeout=10)
    assert r.status_code == 400 and r.json()["error"] == "unsupported_token_type"
    with rt.db.read() as db:
        assert search(db, action="sso.token.revoke", target=f"person:{citizen.id}")


def test_client_credentials_jwt_access_token(meta, make_client, rt, http) -> None:  # type: ignore[no-untyped-def]
    client, secret = make_client(name="公积金中心系统", grant_types=["client_credentials"], scopes=["seal:sign", "records:read"], redirect_uris=[])
    sess = rp.session(meta, client.client_id, secret, scope="seal:sign")
    token = sess.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
    assert token["scope"] == "seal:sign" and "id_token" not in token and "refresh_token" not in token
    claims = rp.verify_access_token(meta, token["access_token"], client_id=client.client_id)
    assert claims["sub"] == client.client_id and claims["scope"] == "seal:sign"
    assert jose_jwt.decode(token["access_token"], rp.keyset(meta)).header["alg"] == "ES256"
    assert claims["exp"] - claims["iat"] == token["expires_in"]
    # the platform's own APIs accept it (the verifier installed by auth_service), as the client
    introspected = sess.introspect_token(meta["introspection_endpoint"], token=token["access_token"]).json()
    assert introspected["active"] and introspected["sub"] == client.client_id
    # default scope: all the client's API scopes; a scope it was not given is invalid_scope
    every = rp.session(meta, client.client_id, secret, scope=None).fetch_token(meta["token_endpoint"], grant_type="client_credentials")
    assert set(every["scope"].split()) == {"seal:sign", "records:read"}
    with pytest.raises(AuthlibOAuthError) as err:
        rp.session(meta, client.client_id, secret, scope="admin").fetch_token(meta["token_endpoint"], grant_type="client_credentials")
    assert err.value.error == "invalid_scope"
    with pytest.raises(AuthlibOAuthError) as err:
        rp.session(meta, client.client_id, "wrong-secret", scope="seal:sign").fetch_token(meta["token_endpoint"], grant_type="client_credentials")
    assert err.value.error == "invalid_client"
    # an authorization-code client may not use client_credentials
    web, web_secret = make_client()
    with pytest.raises(AuthlibOAuthError) as err:
        rp.session(meta, web.client_id, web_secret, scope=None).fetch_token(meta["token_endpoint"], grant_type="client_credentials")
    assert err.value.error == "unauthorized_client"
    with rt.db.read() as db:
        issued = search(db, action="sso.token.issue", target=f"client:{client.client_id}")
    assert {e.details["jti"] for e in issued} >= {claims["jti"]}


@pytest.mark.parametrize("kind", ["RSA", "EC"])
def test_private_key_jwt(meta, make_client, kind) -> None:  # type: ignore[no-untyped-def]
    key = RSAKey.generate_key(2048, parameters={"kid": "k1"}) if kind == "RSA" else ECKey.generate_key("P-256", parameters={"kid": "k1"})
    alg = "RS256" if kind == "RSA" else "ES256"
    public = key.as_dict(private=False)
    client, secret = make_client(grant_types=["client_credentials"], scopes=["records:read"], redirect_uris=[], token_endpoint_auth_method="private_key_jwt", jwks={"keys": [public]})
    assert secret is None
    sess = rp.session(meta, client.client_id, key, scope="records:read", token_endpoint_auth_method=PrivateKeyJWT(meta["token_endpoint"], alg=alg))
    token = sess.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
    assert rp.verify_access_token(meta, token["access_token"], client_id=client.client_id)["sub"] == client.client_id

    def assertion(signing_key, **claims):  # type: ignore[no-untyped-def]
        now = int(time.time())
        body = {"iss": client.client_id, "sub": client.client_id, "aud": meta["token_endpoint"], "iat": now, "exp": now + 60, "jti": secrets.token_urlsafe(16)} | claims
        return jose_jwt.encode({"alg": alg, "kid": "k1"}, body, signing_key)

    def post(value: str) -> httpx.Response:
        return httpx.post(
            meta["token_endpoint"],
            data={"grant_type": "client_credentials", "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion": value},
            timeout=10,
        )

    good = assertion(key)
    assert post(good).status_code == 200
    replay = post(good)  # RFC 7523 §3 item 7: a jti is used once
    assert replay.status_code == 401 and replay.json()["error"] == "invalid_client"
    stranger = RSAKey.generate_key(2048, parameters={"kid": "k1"}) if kind == "RSA" else ECKey.generate_key("P-256", parameters={"kid": "k1"})
    for bad in (
        assertion(stranger),  # wrong key
        assertion(key, aud="https://elsewhere.example/token"),
        assertion(key, exp=int(time.time()) - 600),
        assertion(key, exp=int(time.time()) + 86400),
        assertion(key, sub="someone-else"),
    ):
        r = post(bad)
        assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text
    # alg:none
    import base64
    import json

    def b64(d: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    now = int(time.time())
    unsigned = b64({"alg": "none"}) + "." + b64({"iss": client.client_id, "sub": client.client_id, "aud": meta["token_endpoint"], "exp": now + 60, "jti": secrets.token_urlsafe(16)}) + "."
    r = post(unsigned)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_rp_initiated_logout(meta, agent, citizen, make_client, rt) -> None:  # type: ignore[no-untyped-def]
    client, secret = make_client(**FIRST_PARTY)
    sess = rp.session(meta, client.client_id, secret)
    location, _s, nonce, verifier = _login_code(meta, agent, citizen, sess)
    token = sess.fetch_token(meta["token_endpoint"], authorization_response=location, code_verifier=verifier)
    sid = rp.verify_id_token(meta, token["id_token"], client_id=client.client_id, nonce=nonce)["sid"]
    state = secrets.token_urlsafe(8)
    from urllib.parse import urlencode

    url = meta["end_session_endpoint"] + "?" + urlencode({"id_token_hint": token["id_token"], "post_logout_redirect_uri": "http://127.0.0.1:9/bye", "state": state})
    r = agent.get(url)
    assert r.status_code == 302 and r.headers["location"] == f"http://127.0.0.1:9/bye?state={state}"
    assert "eauth_sid=" in r.headers.get("set-cookie", "") and "Max-Age=0" in r.headers["set-cookie"]
    # every token of the session is dead
    assert requests.get(meta["userinfo_endpoint"], headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=10).status_code == 401
    with pytest.raises(AuthlibOAuthError):
        sess.refresh_token(meta["token_endpoint"], refresh_token=token["refresh_token"])
    # and the browser is signed out: prompt=none now answers login_required
    url2, state2, _n, _v = rp.authorization_url(meta, sess, prompt="none")
    q = rp.query(agent.follow(agent.get(url2)).headers["location"])
    assert q["error"] == "login_required" and q["state"] == state2
    with rt.db.read() as db:
        ended = search(db, action="sso.session.end", target=f"person:{citizen.id}")
    assert any(e.details["sid"] == sid and e.details["reason"] == "rp_logout" for e in ended)


def test_logout_without_hint_asks_the_user(meta, agent, citizen, make_client) -> None:  # type: ignore[no-untyped-def]
    client, secret = make_client(**FIRST_PARTY)
    sess = rp.session(meta, client.client_id, secret)
    _login_code(meta, agent, citizen, sess)
    page = agent.get(meta["end_session_endpoint"] + f"?client_id={client.client_id}&post_logout_redirect_uri=http://127.0.0.1:9/bye&state=s1")
    assert page.status_code == 200 and 'action="/sso/logout"' in page.text
    # not yet signed out: a silent request still succeeds
    url, state, _n, _v = rp.authorization_url(meta, sess, prompt="none")
    assert "code" in rp.query(agent.follow(agent.get(url)).headers["location"])
    done = agent.submit("/sso/logout", response=page)
    assert done.status_code == 303 and done.headers["location"] == "http://127.0.0.1:9/bye?state=s1"
    url, state, _n, _v = rp.authorization_url(meta, sess, prompt="none")
    assert rp.query(agent.follow(agent.get(url)).headers["location"])["error"] == "login_required"


def test_logout_refuses_unregistered_redirect(meta, agent, make_client) -> None:  # type: ignore[no-untyped-def]
    client, _ = make_client(**FIRST_PARTY)
    r = agent.get(meta["end_session_endpoint"] + f"?client_id={client.client_id}&post_logout_redirect_uri=https://evil.example/")
    assert r.status_code == 400 and "location" not in r.headers
    r = agent.get(meta["end_session_endpoint"] + "?post_logout_redirect_uri=https://evil.example/")
    assert r.status_code == 400 and "location" not in r.headers


def test_concurrent_client_credentials_audited_in_one_chain(meta, make_client, rt) -> None:  # type: ignore[no-untyped-def]
    """Issuance entries are group-committed (core.audit.record_many): every token has its entry and
    the chain still verifies end to end."""
    from concurrent.futures import ThreadPoolExecutor

    client, secret = make_client(grant_types=["client_credentials"], scopes=["records:read"], redirect_uris=[])

    def one(_: int) -> str:
        r = requests.post(meta["token_endpoint"], data={"grant_type": "client_credentials"}, auth=(client.client_id, secret), timeout=30)
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store" and r.headers["x-request-id"], r.text
        return jose_jwt.decode(r.json()["access_token"], rp.keyset(meta)).claims["jti"]

    with ThreadPoolExecutor(12) as pool:
        jtis = set(pool.map(one, range(60)))
    assert len(jtis) == 60
    with rt.db.read() as db:
        audited = {e.details["jti"] for e in search(db, action="sso.token.issue", target=f"client:{client.client_id}")}
    assert jtis <= audited
    assert rt.audit.verify(rt.db).ok


def test_token_endpoint_problem_for_hsm_failure(meta, make_client, rt) -> None:  # type: ignore[no-untyped-def]
    """A failure that is not an OAuth error (the HSM refusing to sign) is an RFC 9457 problem, not a 500 page."""
    from hsm.errors import HsmError, HsmErrorKind

    client, secret = make_client(grant_types=["client_credentials"], scopes=["records:read"], redirect_uris=[])

    def pulled(operation: str) -> None:
        raise HsmError(HsmErrorKind.TOKEN_MISSING, f"injected: token pulled ({operation})")

    rt.token.fault_hook = pulled
    try:
        r = requests.post(meta["token_endpoint"], data={"grant_type": "client_credentials"}, auth=(client.client_id, secret), timeout=30)
    finally:
        rt.token.fault_hook = None
    assert r.status_code == 503 and r.headers["content-type"].startswith("application/problem+json"), (r.status_code, r.text)
    assert r.json()["type"].startswith("urn:eauth:problem:")
    # and the platform recovers at once
    r = requests.post(meta["token_endpoint"], data={"grant_type": "client_credentials"}, auth=(client.client_id, secret), timeout=30)
    assert r.status_code == 200

"""Hostile input, property-based (hypothesis): every parser we expose answers garbage with a result or
a 4xx problem — never another exception — and over HTTP never with a 500, and always in the protocol's
own error shape (problem+json, OAuth error JSON, an OCSP malformedRequest, a TSA rejection).

Inputs: random bytes; mutations of *valid* DER/PEM/PDF/JWS made by the real code (bit flips,
truncations, insertions, deletions, DER length fields rewritten); random JSON. Example counts are
modest (the whole suite has a ~10 min budget); the number of cases that ran is printed at the end of
the run ("hostile input: cases run").
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from urllib.parse import quote

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp as x509_ocsp
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import Problem
from tests.reliability.hostile import (
    deep_json,
    dumps,
    expect_result_or_4xx,
    hostile_bytes,
    json_values,
    mutated,
    oidc_client,
    operator_token,
    record,
)

# Scaled by HOSTILE_SCALE (e.g. 10 for a long local hunt); CI runs the default.
SCALE = float(os.environ.get("HOSTILE_SCALE", "1"))


def n(examples: int) -> int:
    return max(5, int(examples * SCALE))


FAST = dict(deadline=None, derandomize=False, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SLOW = dict(FAST, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])


def _csr(key=None, *, dns: tuple[str, ...] = (), pem: bool = False) -> bytes:  # type: ignore[no-untyped-def]
    key = key or ec.generate_private_key(ec.SECP256R1())
    b = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fuzz")]))
    if dns:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
    return b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM if pem else serialization.Encoding.DER)


EC_CSR = _csr(dns=("a.example.gov.cn", "b.example.gov.cn"))
RSA_CSR = _csr(rsa.generate_private_key(public_exponent=65537, key_size=2048))
PEM_CSR = _csr(pem=True)


# -- CSR (ca/csr.py) ---------------------------------------------------------------------------------------


def _csr_pipeline(data: bytes) -> object:
    from ca import csr

    parsed = csr.parse(data)
    csr.check_key_strength(parsed.public_key)
    return parsed


@settings(max_examples=n(300), **FAST)
@given(st.one_of(hostile_bytes(EC_CSR), hostile_bytes(RSA_CSR)))
def test_csr_parse_der_result_or_4xx(data: bytes) -> None:
    expect_result_or_4xx("ca.csr.parse (DER)", _csr_pipeline, data)


@settings(max_examples=n(150), **FAST)
@given(st.one_of(mutated(PEM_CSR, der=False, max_ops=4), st.text(max_size=300).map(str.encode)))
def test_csr_parse_pem_result_or_4xx(data: bytes) -> None:
    expect_result_or_4xx("ca.csr.parse (PEM)", _csr_pipeline, data)


def test_csr_valid_seeds_parse() -> None:
    """The harness lets valid input through (the properties above would be vacuous otherwise)."""
    from ca import csr

    assert csr.parse(EC_CSR).dns_names == ("a.example.gov.cn", "b.example.gov.cn")
    assert csr.parse(PEM_CSR) and csr.parse(RSA_CSR)


# -- OCSP request (ca/ocsp.py) -----------------------------------------------------------------------------


def _ocsp_request(nonce: bool = True) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fuzz CA")])
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    ca = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key()).serial_number(1)
        .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key()).serial_number(0x1234567890ABCDEF)
        .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256())
    )
    b = x509_ocsp.OCSPRequestBuilder().add_certificate(leaf, ca, hashes.SHA256())
    if nonce:
        b = b.add_extension(x509.OCSPNonce(os.urandom(16)), critical=False)
    return b.build().public_bytes(serialization.Encoding.DER)


OCSP_REQ = _ocsp_request()


@settings(max_examples=n(300), **FAST)
@given(hostile_bytes(OCSP_REQ))
def test_ocsp_parse_request_never_raises(data: bytes) -> None:
    """``parse_request`` answers a request or the DER of an unsuccessful response; it never raises."""
    from ca import ocsp

    out = ocsp.parse_request(ocsp.ResponderState(), data)
    if isinstance(out, bytes):
        status = x509_ocsp.load_der_ocsp_response(out).response_status
        assert status in (x509_ocsp.OCSPResponseStatus.MALFORMED_REQUEST, x509_ocsp.OCSPResponseStatus.UNAUTHORIZED)
        record("ca.ocsp.parse_request", status.name)
    else:
        assert out.issuer is None and out.serial > 0
        record("ca.ocsp.parse_request", "parsed")


# -- TSA query (signing/rfc3161.py) ------------------------------------------------------------------------


TSA_QUERY = None


def _tsa_query() -> bytes:
    from signing import rfc3161

    return rfc3161.build_query(hashlib.sha256(b"licence").digest(), nonce=0x1234_5678_9ABC, cert_req=True, policy="1.2.3.4")


@settings(max_examples=n(300), **FAST)
@given(hostile_bytes(_tsa_query()))
def test_tsa_parse_query_result_or_rejection(data: bytes) -> None:
    from signing import rfc3161

    expect_result_or_4xx("signing.rfc3161.parse_query", rfc3161.parse_query, data, policy="1.2.3.4", allowed=(rfc3161.TimestampRejected,))


# -- JOSE (auth_service/oidc/jose.py) ----------------------------------------------------------------------


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _decoded(token: str) -> list[bytes]:
    """A compact JWS's parts as bytes: the last base64url character has spare bits, so two strings can
    carry the same bytes (harmless: the signature covers the bytes)."""
    return [base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)) for p in token.split(".")]


JWT_KEY = ec.generate_private_key(ec.SECP256R1())


def _sign_es256(header: dict, claims: dict) -> str:  # type: ignore[type-arg]
    from cryptography.hazmat.primitives.asymmetric import utils

    signing_input = f"{_b64u(dumps(header))}.{_b64u(dumps(claims))}".encode()
    r, s = utils.decode_dss_signature(JWT_KEY.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    return signing_input.decode() + "." + _b64u(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


VALID_JWT = _sign_es256({"alg": "ES256", "kid": "k1", "typ": "at+jwt"}, {"sub": "x", "exp": 2**31})


@st.composite
def hostile_jwts(draw: st.DrawFn) -> str:
    """Compact JWS-shaped strings: structured garbage in each part, mutated valid tokens, text."""
    choice = draw(st.integers(0, 3))
    if choice == 0:
        header = draw(st.one_of(json_values, st.fixed_dictionaries({"alg": json_values, "kid": json_values, "typ": json_values, "crit": json_values})))
        claims = draw(json_values)
        sig = draw(st.binary(max_size=80))
        return f"{_b64u(dumps(header))}.{_b64u(dumps(claims))}.{_b64u(sig)}"
    if choice == 1:
        return draw(mutated(VALID_JWT.encode(), der=False)).decode("latin-1")
    if choice == 2:
        depth = draw(st.sampled_from([100, 1000, 3000]))
        part = _b64u(deep_json(depth).encode())
        return draw(st.sampled_from([f"{part}.e30.AA", f"e30.{part}.AA"]))
    return draw(st.text(max_size=200))


@settings(max_examples=n(400), **FAST)
@given(hostile_jwts())
def test_jose_verify_compact_result_or_jose_error(token: str) -> None:
    from auth_service.oidc import jose

    keys = [jose.VerificationKey("k1", "ES256", JWT_KEY.public_key())]
    out = expect_result_or_4xx("auth_service.jose.verify_compact", jose.verify_compact, token, keys, typ="at+jwt", allowed=(jose.JoseError,))
    if not isinstance(out, BaseException):
        assert _decoded(token) == _decoded(VALID_JWT)  # only the untouched token verifies (up to base64 padding bits)


_b64_values = st.one_of(st.binary(max_size=70).map(_b64u), json_values)
hostile_jwks = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"kty": st.sampled_from(["EC", "RSA", "oct", "OKP", ""])},
        optional={"crv": st.sampled_from(["P-256", "P-384", "P-521", "secp256k1", "Ed25519"]), "x": _b64_values, "y": _b64_values, "n": _b64_values,
                  "e": st.sampled_from(["AQAB", "Aw", "AA", ""]) | _b64_values, "d": _b64_values, "kid": json_values, "alg": json_values},
    ),
)


@settings(max_examples=n(200), **FAST)
@given(hostile_jwks)
def test_jose_key_from_jwk_result_or_jose_error(jwk: object) -> None:
    from auth_service.oidc import jose

    expect_result_or_4xx("auth_service.jose.key_from_jwk", jose.key_from_jwk, jwk, allowed=(jose.JoseError,))


# -- access tokens (auth_service/oidc/access_token.py), real HSM-signed seeds ---------------------------------


@pytest.fixture(scope="module")
def real_token(rt) -> str:  # type: ignore[no-untyped-def]
    from tests.reliability.actors import client_token

    return client_token(rt, ["certificates:read"])


def test_access_token_verifier_result_or_401(rt, real_token: str) -> None:  # type: ignore[no-untyped-def]
    from auth_service.oidc.access_token import verify_access_token

    assert verify_access_token(rt, real_token).client_id  # the seed verifies

    @settings(max_examples=n(200), **SLOW)
    @given(st.one_of(hostile_jwts(), mutated(real_token.encode(), der=False).map(lambda b: b.decode("latin-1"))))
    def check(token: str) -> None:
        out = expect_result_or_4xx("auth_service.verify_access_token", verify_access_token, rt, token)
        if isinstance(out, Problem):
            assert out.status == 401 and out.code == "auth.invalid_token"
        else:
            assert _decoded(token) == _decoded(real_token)

    check()


# -- documents: PDF / JWS / CMS verification (signing/verify.py, signing/records.py) ------------------------


@pytest.fixture(scope="module")
def sealed(rt):  # type: ignore[no-untyped-def]
    """A PDF sealed at B-T and a JWS and a CMS record, made by the real signing service on this platform."""
    from pathlib import Path

    import identity.service as identity
    from core.security import Actor
    from signing import pades, service
    from tests.factories import unique_uscc

    pdf = (Path(__file__).resolve().parent.parent / "data" / "signing" / "licence.pdf").read_bytes()
    with rt.db.transaction() as db:
        dept = identity.register_org(rt, db, Actor.cli(), name="模糊测试局", uscc=unique_uscc(), type="government")
    with rt.db.transaction() as db:
        seal = service.create_seal(rt, db, Actor.cli(), name="模糊测试专用章", department=dept.id)
    with rt.db.transaction() as db:
        out = service.seal_pdf(rt, db, Actor.cli(), seal_id=seal.id, pdf=pdf, options=pades.PadesOptions(level="B-T"))
    with rt.db.transaction() as db:
        jws = service.seal_records(rt, db, Actor.cli(), seal_id=seal.id, records_=[{"licence": "L-1", "holder": "张三"}], format="jws", level="B-T")[0]
    with rt.db.transaction() as db:
        cms = service.seal_records(rt, db, Actor.cli(), seal_id=seal.id, records_=[{"licence": "L-2"}], format="cms")[0]
    return {"pdf": out.pdf, "jws": jws.signature.encode(), "cms": base64.b64decode(cms.signature), "cms_payload": json.dumps({"licence": "L-2"}).encode()}


def test_document_verification_result_or_4xx(rt, sealed) -> None:  # type: ignore[no-untyped-def]
    from signing import service

    report = service.verify_document(rt, sealed["pdf"])
    assert report.signatures and report.signatures[0].indication.value == "TOTAL-PASSED", report

    @settings(max_examples=n(50), **SLOW)
    @given(mutated(sealed["pdf"], der=False, max_ops=2))
    def pdf(data: bytes) -> None:
        expect_result_or_4xx("signing.verify_document (PDF)", service.verify_document, rt, data)

    flattened = json.loads(sealed["jws"])  # B-T: JSON serialization (the timestamp is an unprotected header)
    protected, payload, signature = flattened["protected"], flattened["payload"], flattened["signature"]
    header = json.loads(base64.urlsafe_b64decode(protected + "=" * (-len(protected) % 4)))

    @st.composite
    def header_mutations(draw: st.DrawFn) -> bytes:
        """The real seal's JWS with header members replaced by random JSON (types parsers assume)."""
        h = dict(header)
        for key in draw(st.lists(st.sampled_from([*header, "crit", "x5c", "sigT", "x5t#S256", "b64"]), min_size=1, max_size=3)):
            h[key] = draw(st.one_of(json_values, st.just([header["x5c"][0], "AAAA"]), st.just(["sigT", 1])))
        body = draw(st.sampled_from([f"{_b64u(dumps(h))}.{payload}.{signature}", json.dumps({"protected": _b64u(dumps(h)), "payload": payload, "signature": signature,
                                                                                             "header": draw(st.one_of(st.just(flattened.get("header")), json_values))})]))
        return body.encode()

    @settings(max_examples=n(100), **SLOW)
    @given(st.one_of(mutated(sealed["jws"], der=False), header_mutations(), hostile_jwts().map(str.encode), json_values.map(dumps)))
    def jws(data: bytes) -> None:
        expect_result_or_4xx("signing.verify_document (JWS)", service.verify_document, rt, data)

    @settings(max_examples=n(80), **SLOW)
    @given(hostile_bytes(sealed["cms"]))
    def cms(data: bytes) -> None:
        expect_result_or_4xx("signing.verify_document (CMS)", service.verify_document, rt, data, detached=sealed["cms_payload"])

    pdf()
    jws()
    cms()


@settings(max_examples=n(60), **FAST)
@given(st.one_of(st.binary(max_size=600).map(lambda b: b"%PDF-1.7\n" + b + b"\n%%EOF\n"), st.binary(max_size=300)))
def test_pdf_open_for_verification_result_or_4xx(data: bytes) -> None:
    from signing.verify import TrustSetup, verify_pdf

    expect_result_or_4xx("signing.verify_pdf (random)", verify_pdf, data, TrustSetup(anchors=()), max_bytes=1 << 20)


def test_pdf_sealing_input_result_or_4xx(rt, sealed) -> None:  # type: ignore[no-untyped-def]
    """An uploaded PDF to be sealed goes through ``pades.open_pdf`` first."""
    from signing import pades

    @settings(max_examples=n(60), **SLOW)
    @given(mutated(sealed["pdf"], der=False, max_ops=2))
    def check(data: bytes) -> None:
        expect_result_or_4xx("signing.pades.open_pdf", pades.open_pdf, data, max_bytes=1 << 24)

    check()


# -- over HTTP -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(live):  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=live.url, timeout=60) as c:
        yield c


def _problem_or_ok(target: str, r: httpx.Response, *, oauth: bool = False) -> None:
    assert r.status_code < 500, f"{target}: {r.status_code} {r.text[:300]}"
    if r.status_code >= 400:
        ctype = r.headers.get("content-type", "")
        if oauth and ctype.startswith("application/json"):
            body = r.json()
            assert isinstance(body.get("error"), str), body
            record(target, f"{r.status_code} {body['error']}")
            return
        assert ctype.startswith("application/problem+json"), f"{target}: {r.status_code} {ctype} {r.text[:200]}"
        body = r.json()
        assert body["status"] == r.status_code and body["type"].startswith("urn:eauth:problem:") and body["code"], body
        record(target, f"{r.status_code} {body['code']}")
    else:
        record(target, str(r.status_code))


def test_ocsp_over_http_answers_ocsp(client: httpx.Client) -> None:
    @settings(max_examples=n(120), **SLOW)
    @given(hostile_bytes(OCSP_REQ), st.booleans())
    def check(data: bytes, get: bool) -> None:
        if get:
            r = client.get("/ocsp/" + quote(base64.b64encode(data).decode(), safe=""))
        else:
            r = client.post("/ocsp", content=data, headers={"content-type": "application/ocsp-request"})
        assert r.status_code == 200 and r.headers["content-type"] == "application/ocsp-response", (r.status_code, r.text[:200])
        status = x509_ocsp.load_der_ocsp_response(r.content).response_status
        assert status is not x509_ocsp.OCSPResponseStatus.INTERNAL_ERROR
        record("http POST|GET /ocsp", status.name)

    check()


def test_oidc_authorize_and_token_parameters(rt, client: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    """Random parameters to the OAuth endpoints (with a real client's id, redirect URI and secret in
    the mix, so requests get past the first check): an OAuth error (JSON or a redirect) or an HTML
    error page for the browser endpoints — never a 500."""
    client_id, secret, redirect = oidc_client(rt)
    basic = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    names = ["response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "code_challenge", "code_challenge_method", "prompt", "max_age",
             "acr_values", "request", "request_uri", "grant_type", "code", "code_verifier", "refresh_token", "client_secret", "id_token_hint", "login_hint",
             "token", "token_type_hint", "client_assertion", "client_assertion_type", "post_logout_redirect_uri"]
    values = st.one_of(st.text(max_size=60), st.sampled_from(["code", "openid", "openid profile", "S256", "plain", "none", "login", "consent", "-1", "0",
                                                               "99999999999999999999", "authorization_code", "client_credentials", "refresh_token",
                                                               client_id, client_id, redirect, redirect, secret, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                                                               "http://127.0.0.1/cb", "\x00", "%", "a" * 3000, VALID_JWT, "1", "2", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"]))
    random_params = st.dictionaries(st.sampled_from(names), values, max_size=10)
    valid = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect, "scope": "openid", "state": "s", "nonce": "n",
             "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256", "grant_type": "authorization_code",
             "code": "x", "code_verifier": "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"}
    params = st.one_of(random_params, random_params.map(lambda d: {**valid, **d}))  # mostly-valid requests reach the deeper checks

    @settings(max_examples=n(120), **SLOW)
    @given(params, st.sampled_from(["GET /oidc/authorize", "POST /oidc/authorize", "POST /oidc/token", "POST /oidc/introspect", "POST /oidc/revoke",
                                     "GET /oidc/userinfo", "GET /oidc/logout"]),
           st.one_of(st.none(), st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40),
                     st.sampled_from([basic, basic, "Basic Zm9vOmJhcg==", "Basic %%%", "Basic", "Bearer x.y.z", "Basic " + base64.b64encode(b"a:" * 2000).decode()])))
    def check(form: dict[str, str], endpoint: str, authorization: str | None) -> None:
        method, path = endpoint.split(" ")
        headers = {} if authorization is None else {"authorization": authorization}  # printable ASCII: what HTTP lets through
        if method == "GET":
            r = client.get(path, params=form, headers=headers, follow_redirects=False)
        else:
            r = client.post(path, data=form, headers=headers, follow_redirects=False)
        assert r.status_code < 500, f"{endpoint} {form!r}: {r.status_code} {r.text[:300]}"
        ctype = r.headers.get("content-type", "")
        if r.status_code in (302, 303):
            record(f"http {endpoint}", f"{r.status_code} redirect")
        elif r.status_code >= 400 and ctype.startswith("text/html"):
            assert path in ("/oidc/authorize", "/oidc/logout"), (endpoint, r.status_code)  # a browser's error page
            record(f"http {endpoint}", f"{r.status_code} html")
        else:
            _problem_or_ok(f"http {endpoint}", r, oauth=True)

    check()


def test_api_json_bodies_are_4xx_problems(rt, client: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    """Random JSON (and non-JSON) to the JSON API with an operator's token holding every role (so
    the body is what gets judged): 4xx problem documents."""
    token = operator_token(rt)
    ops = ["/api/v1/certificates", "/api/v1/certificates/01/revoke", "/api/v1/certificates/01/suspend", "/api/v1/certificates/01/renew"]

    @settings(max_examples=n(100), **SLOW)
    @given(st.sampled_from(ops), st.one_of(json_values.map(dumps), st.binary(max_size=200), st.sampled_from([deep_json(5000).encode(), deep_json(200, kind="obj").encode()])),
           st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]))
    def check(path: str, body: bytes, ctype: str) -> None:
        r = client.post(path, content=body, headers={"content-type": ctype, "authorization": f"Bearer {token}"})
        _problem_or_ok(f"http POST {path.replace('/01/', '/{serial}/')}", r)

    check()


@pytest.fixture(scope="module")
def sealing_client(rt):  # type: ignore[no-untyped-def]
    """A department system allowed to use a fresh seal: (seal id, its access token with seal:<id>)."""
    import identity.service as identity
    from auth_service.oidc.access_token import issue_access_token
    from auth_service.service import register_client
    from core.security import Actor
    from signing import service
    from tests.factories import unique_uscc

    actor = Actor.cli("hostile-tests")
    with rt.db.transaction() as db:
        dept = identity.register_org(rt, db, actor, name="模糊测试二局", uscc=unique_uscc(), type="government")
    with rt.db.transaction() as db:
        seal = service.create_seal(rt, db, actor, name="模糊测试二章", department=dept.id)
    with rt.db.transaction() as db:
        client, _ = register_client(rt, db, actor, name="hostile dept system", grant_types=["client_credentials"], scopes=[f"seal:{seal.id}"], redirect_uris=[])
    with rt.db.transaction() as db:
        service.allow_client(rt, db, actor, seal_id=seal.id, client_id=client.client_id)
    token, _, _ = issue_access_token(rt, client_id=client.client_id, subject=client.client_id, scope=f"seal:{seal.id}")
    return seal.id, token


def test_sealing_and_verification_uploads_over_http(rt, client: httpx.Client, sealed, sealing_client) -> None:  # type: ignore[no-untyped-def]
    """Hostile documents to the seal API (raw and multipart), the records API, the verification API
    and the public page: 4xx problems (an HTML page for the page), never a 500."""
    seal_id, seal_token = sealing_client
    verify_token = operator_token(rt, roles=frozenset(), scope="verify")
    counter = iter(range(10**6))

    @settings(max_examples=n(40), **SLOW)
    @given(st.one_of(mutated(sealed["pdf"], der=False, max_ops=2), st.binary(max_size=300)), st.sampled_from(["raw", "multipart"]),
           st.fixed_dictionaries({}, optional={"level": st.sampled_from(["B-B", "B-T", "X"]), "page": st.sampled_from(["0", "-1", "999", "x"]),
                                               "box": st.sampled_from(["1,2,3,4", "a,b", "0,0,100000,100000", "-5,-5,-1,-1"]), "docmdp": st.sampled_from(["0", "1", "3"]),
                                               "certify": st.sampled_from(["true", "false", "maybe"]), "field": st.text(max_size=10)}))
    def seal(data: bytes, how: str, params: dict[str, str]) -> None:
        headers = {"authorization": f"Bearer {seal_token}"}
        if how == "raw":
            r = client.post(f"/api/v1/seals/{seal_id}/pdf", content=data, params=params, headers={**headers, "content-type": "application/pdf"})
        else:
            r = client.post(f"/api/v1/seals/{seal_id}/pdf", files={"file": ("x.pdf", data, "application/pdf")}, params=params, headers=headers)
        _problem_or_ok(f"http POST /api/v1/seals/{{id}}/pdf ({how})", r)

    @settings(max_examples=n(40), **SLOW)
    @given(st.one_of(json_values.map(dumps), st.binary(max_size=100), st.just(deep_json(3000, kind="obj").encode()),
                     st.fixed_dictionaries({"records": st.lists(json_values, max_size=3)}, optional={"formats": json_values, "level": json_values, "detached": json_values}).map(dumps)))
    def records(body: bytes) -> None:
        r = client.post(f"/api/v1/seals/{seal_id}/records", content=body, headers={"authorization": f"Bearer {seal_token}", "content-type": "application/json"})
        _problem_or_ok("http POST /api/v1/seals/{id}/records", r)

    @settings(max_examples=n(40), **SLOW)
    @given(st.one_of(mutated(sealed["pdf"], der=False, max_ops=2), mutated(sealed["jws"], der=False), mutated(sealed["cms"]), st.binary(max_size=300)), st.booleans())
    def verify(data: bytes, page: bool) -> None:
        if page:  # the public page: its own address per example (30 uploads a minute per address)
            r = client.post("/verify", files={"file": ("x.bin", data, "application/octet-stream")}, headers={"x-forwarded-for": f"198.18.{next(counter) % 250}.{next(counter) % 250}"})
            assert r.status_code < 500, (r.status_code, r.text[:300])
            assert r.headers["content-type"].startswith("text/html")
            record("http POST /verify (page)", str(r.status_code))
        else:
            r = client.post("/api/v1/verifications", content=data, headers={"authorization": f"Bearer {verify_token}", "content-type": "application/octet-stream"})
            _problem_or_ok("http POST /api/v1/verifications", r)

    seal()
    records()
    verify()


def test_tsa_over_http_answers_tsp(client: httpx.Client) -> None:
    from signing import rfc3161

    seed = rfc3161.build_query(hashlib.sha256(b"licence").digest(), nonce=0x1234_5678_9ABC, cert_req=True)  # no policy: ours is implied

    @settings(max_examples=n(80), **SLOW)
    @given(hostile_bytes(seed))
    def check(data: bytes) -> None:
        r = client.post("/tsa", content=data, headers={"content-type": "application/timestamp-query"})
        assert r.status_code == 200 and r.headers["content-type"] == "application/timestamp-reply", (r.status_code, r.text[:200])
        status, _failures = rfc3161.status_of(r.content)
        assert status in ("granted", "rejection"), status
        record("http POST /tsa", status)

    check()

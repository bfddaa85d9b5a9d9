"""Limits under hostile input, over real HTTP (and raw sockets where a client library would be too
polite): request body size, JSON depth, number of SANs, PDF size and page count, NUL characters,
slow-loris bodies, and the rate limits on login, OTP sending, public verification and the TSA.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography import x509
from fastapi import Request
from fastapi.responses import JSONResponse
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp as x509_ocsp
from cryptography.x509.oid import NameOID

from tests.reliability.hostile import deep_json, oidc_client, operator_token

PROBLEM = "application/problem+json"


def _problem(r: httpx.Response, status: int, code: str | None = None) -> dict:  # type: ignore[type-arg]
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith(PROBLEM), r.headers.get("content-type")
    body = r.json()
    assert body["status"] == status and body["type"].startswith("urn:eauth:problem:")
    if code is not None:
        assert body["code"] == code, body
    return body


@pytest.fixture(scope="module")
def client(live):  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=live.url, timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def admin_token(rt) -> str:  # type: ignore[no-untyped-def]
    return operator_token(rt)


def _auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def _csr(*, dns: list[str] | None = None) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    b = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "limits")]))
    if dns:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
    return b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


# -- raw HTTP --------------------------------------------------------------------------------------


@contextlib.contextmanager
def raw(url: str, timeout: float = 60) -> Iterator[socket.socket]:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    try:
        yield sock
    finally:
        sock.close()


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes, bool]:
    """(status, headers, body, closed by the server). Reads until the body is complete or EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before a response: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    closed = False
    try:
        sock.settimeout(1)
        closed = sock.recv(1) == b""
    except (TimeoutError, ConnectionResetError):
        closed = False
    return status, headers, body, closed


# -- request body size -------------------------------------------------------------------------------


def test_declared_oversized_body_is_refused_before_it_is_sent(rt, live) -> None:  # type: ignore[no-untyped-def]
    limit = rt.settings.max_request_bytes
    with raw(live.url, timeout=30) as sock:
        sock.sendall(
            b"POST /api/v1/certificates HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {limit + 1}\r\n\r\n".encode()
        )
        status, headers, body, _closed = read_response(sock)  # answered without the body being sent
    assert status == 413 and headers["content-type"].startswith(PROBLEM)
    assert json.loads(body)["code"] == "request.too_large"


def test_streamed_oversized_body_is_a_413_problem(rt, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    """Chunked transfer (no Content-Length): the limit is counted as the body arrives."""
    limit = rt.settings.max_request_bytes
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        chunk = b" " * (1 << 20)
        while sent <= limit + (1 << 20):
            sent += len(chunk)
            yield chunk

    r = client.post("/api/v1/certificates", content=body(), headers={"content-type": "application/json", **_auth(admin_token)})
    _problem(r, 413, "request.too_large")


def test_ocsp_and_tsa_refuse_oversized_requests_in_their_protocol(client: httpx.Client) -> None:
    from signing import rfc3161

    r = client.post("/ocsp", content=b"\x30" * (64 * 1024), headers={"content-type": "application/ocsp-request"})
    assert r.status_code == 200
    assert x509_ocsp.load_der_ocsp_response(r.content).response_status is x509_ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    r = client.get("/ocsp/" + "A" * 60_000)  # ≈ 45 KB of DER: over the 16 KiB request limit
    assert r.status_code in (200, 414) and (r.status_code == 414 or x509_ocsp.load_der_ocsp_response(r.content).response_status is x509_ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
    r = client.post("/tsa", content=b"\x30" * (rfc3161.MAX_QUERY_BYTES + 1), headers={"content-type": "application/timestamp-query"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/timestamp-reply"
    status, failures = rfc3161.status_of(r.content)
    assert status == "rejection" and failures, (status, failures)


def test_verification_upload_over_the_size_limit(rt, client: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    limit = rt.settings.max_upload_bytes
    token = operator_token(rt, roles=frozenset(), scope="verify")
    big = b"%PDF-1.7\n" + b"0" * limit + b"\n%%EOF\n"
    r = client.post("/api/v1/verifications", content=big, headers={"content-type": "application/pdf", **_auth(token)})
    assert r.status_code == 413 and r.headers["content-type"].startswith(PROBLEM), r.text[:200]
    r = client.post("/verify", files={"file": ("big.pdf", big, "application/pdf")}, headers={"x-forwarded-for": "198.51.100.7"})
    assert r.status_code == 413 and r.headers["content-type"].startswith("text/html")  # the public page answers as a page


# -- JSON depth ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["list", "obj"])
def test_deeply_nested_json_body_is_a_4xx_problem(client: httpx.Client, admin_token: str, kind: str) -> None:
    for depth in (100, 5_000, 200_000):
        r = client.post("/api/v1/certificates", content=deep_json(depth, kind=kind).encode(), headers={"content-type": "application/json", **_auth(admin_token)})
        assert 400 <= r.status_code < 500 and r.headers["content-type"].startswith(PROBLEM), (depth, r.status_code, r.text[:200])


def test_deeply_nested_json_in_a_bearer_token_is_a_401(client: httpx.Client) -> None:
    part = base64.urlsafe_b64encode(deep_json(3000).encode()).rstrip(b"=").decode()
    for token in (f"{part}.e30.AA", f"eyJhbGciOiJFUzI1NiJ9.{part}.AA"):
        r = client.get("/api/v1/certificates", headers=_auth(token))
        _problem(r, 401, "auth.invalid_token")


def test_deeply_nested_json_records_to_seal_and_in_a_jws(rt, client: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    token = operator_token(rt, roles=frozenset(), scope="verify")
    jws = json.dumps({"protected": "e30", "payload": "", "signature": ""})[:-1] + ', "header": ' + deep_json(5000, kind="obj") + "}"
    r = client.post("/api/v1/verifications", content=jws.encode(), headers={"content-type": "application/jose+json", **_auth(token)})
    assert 400 <= r.status_code < 500 and r.headers["content-type"].startswith(PROBLEM), r.text[:200]


# -- SANs ------------------------------------------------------------------------------------------------


def test_number_of_sans_is_limited(rt, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    from ca import csr as csr_mod
    from core.errors import Problem

    # 101 names in the request body: refused by the schema (at most 100).
    body = {"profile": "server", "csr": _csr().decode(), "subject_id": "x", "dns_names": [f"h{i}.example.gov.cn" for i in range(101)]}
    r = client.post("/api/v1/certificates", json=body, headers=_auth(admin_token))
    problem = _problem(r, 422, "request.invalid_fields")
    assert any(e["name"] == "dns_names" for e in problem["errors"])
    # 101 names inside the CSR: parsed, then refused by the server profile's check.
    from ca.profiles import IssuanceRequest, dns_names_required

    parsed = csr_mod.parse(_csr(dns=[f"h{i}.example.gov.cn" for i in range(101)]))
    with pytest.raises(Problem) as caught:
        dns_names_required(IssuanceRequest(None, parsed.public_key, None, parsed.dns_names))  # type: ignore[arg-type]
    assert caught.value.code == "ca.too_many_dns_names"
    # 2,000 names: the CSR itself is over the size limit, refused before any parsing.
    huge = _csr(dns=[f"host-{i}.example.gov.cn" for i in range(2000)])
    body = {"profile": "server", "csr": huge.decode(), "subject_id": "x"}
    r = client.post("/api/v1/certificates", json=body, headers=_auth(admin_token))
    assert r.status_code in (413, 422) and r.headers["content-type"].startswith(PROBLEM), r.text[:200]
    assert r.json()["code"] in ("csr.too_large", "request.invalid_fields")


# -- PDF size and page count --------------------------------------------------------------------------------


def _pdf_with_pages(count: int) -> bytes:
    """A valid PDF of ``count`` empty pages (written by hand: the layout is simple and exact)."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]
    kids = []
    for i in range(count):
        kids.append(f"{3 + i} 0 R".encode())
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>")
    objects[1] = b"<< /Type /Pages /Count " + str(count).encode() + b" /Kids [" + b" ".join(kids) + b"] >>"
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, obj in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{i} 0 obj\n".encode() + obj + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for off in offsets:
        out.write(f"{off:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def test_pdf_page_count_is_limited_for_sealing_and_verification(rt) -> None:  # type: ignore[no-untyped-def]
    from core.errors import Problem
    from signing import pades
    from signing.verify import TrustSetup, verify_pdf

    ok = _pdf_with_pages(3)
    assert pades.open_pdf(ok, max_bytes=1 << 24) is not None
    too_many = _pdf_with_pages(pades.MAX_PAGES + 1)
    with pytest.raises(Problem) as caught:
        pades.open_pdf(too_many, max_bytes=1 << 24)
    assert caught.value.code == "signing.too_many_pages" and caught.value.status == 413
    with pytest.raises(Problem) as caught:
        verify_pdf(too_many, TrustSetup(anchors=()), max_bytes=1 << 24)
    assert caught.value.code == "verify.too_many_pages" and caught.value.status == 413
    # A /Count that lies (claims a billion pages, has one) is refused the same way.
    liar = _pdf_with_pages(1).replace(b"/Count 1 ", b"/Count 1000000000 ")
    with pytest.raises(Problem):
        pades.open_pdf(liar, max_bytes=1 << 24)


def test_pdf_size_is_limited_for_sealing(rt) -> None:  # type: ignore[no-untyped-def]
    from core.errors import Problem
    from signing import pades

    with pytest.raises(Problem) as caught:
        pades.open_pdf(_pdf_with_pages(1) + b"%" * 2048 + b"\n%%EOF\n", max_bytes=2048)
    assert caught.value.code == "signing.too_large" and caught.value.status == 413


# -- NUL characters (PostgreSQL refuses them in text) --------------------------------------------------------


def test_nul_characters_in_parameters_are_4xx(rt, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/oidc/authorize", params={"client_id": "\x00", "response_type": "code"}, follow_redirects=False)
    assert r.status_code == 400, r.text[:300]
    r = client.get("/api/v1/certificates/ab%00cd", headers=_auth(admin_token))
    assert 400 <= r.status_code < 500 and r.headers["content-type"].startswith(PROBLEM), r.text[:300]
    client_id, secret, _ = oidc_client(rt)
    r = client.post("/oidc/token", data={"grant_type": "authorization_code", "code": "a\x00b", "redirect_uri": "x\x00"}, auth=(client_id, secret))
    assert r.status_code == 400 and r.json()["error"] in ("invalid_grant", "invalid_request"), r.text[:300]
    r = client.post("/oidc/token", data={"grant_type": "client_credentials"}, auth=("c\x00", "s"))
    assert r.status_code in (400, 401) and "error" in r.json(), r.text[:300]


# -- slow-loris bodies ---------------------------------------------------------------------------------


def trickle(url: str, head: bytes, *, every: float, max_seconds: float) -> tuple[int, dict[str, str], bytes, bool, float]:
    """Send ``head`` (request line + headers), then one body byte every ``every`` seconds until the
    server answers or ``max_seconds`` pass. Returns (status, headers, body, closed, seconds)."""
    start = time.monotonic()
    with raw(url, timeout=max_seconds + 10) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        while time.monotonic() - start < max_seconds:
            try:
                if sock.recv(1, socket.MSG_PEEK):
                    break
            except BlockingIOError:
                pass
            try:
                sock.send(b"0")
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(every)
        else:
            raise AssertionError(f"no answer after {max_seconds} s of trickling: the body was never cut off")
        sock.setblocking(True)
        sock.settimeout(10)
        status, headers, body, closed = read_response(sock)
    return status, headers, body, closed, time.monotonic() - start


def _guarded_app(initial: float):  # type: ignore[no-untyped-def]
    """A small app wired like eauth.app: core.web.install, a raw ASGI fast path (as OCSP and TSA are),
    a route that swallows every exception from the body (as multipart uploads do), and the guard."""
    from fastapi import FastAPI

    from core.web import guard_slow_bodies, install

    app = FastAPI()
    install(app, max_body=1 << 20)

    @app.post("/json")
    def json_route(body: dict) -> dict:  # type: ignore[type-arg]
        return {"keys": len(body)}

    @app.post("/swallow")
    async def swallow(request: Request) -> JSONResponse:
        try:
            await request.body()
        except Exception:  # noqa: BLE001 - a route that makes its own error of anything
            return JSONResponse({"error": "bad body"}, status_code=400)
        return JSONResponse({"ok": True})

    class FastPath:
        def __init__(self, inner):  # type: ignore[no-untyped-def]
            self.inner = inner

        async def __call__(self, scope, receive, send):  # type: ignore[no-untyped-def]
            if scope["type"] != "http" or scope["path"] != "/fast":
                return await self.inner(scope, receive, send)
            more, size = True, 0
            while more:
                message = await receive()
                size += len(message.get("body", b""))
                more = message.get("more_body", False)
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": str(size).encode()})

    app.add_middleware(FastPath)
    guard_slow_bodies(app, initial=initial)
    return app


def test_slow_bodies_are_cut_off_and_honest_uploads_are_not() -> None:
    from tests.conftest import serve_app

    with serve_app(_guarded_app(initial=1.5)) as server:
        for path, ctype in (("/json", "application/json"), ("/fast", "application/octet-stream")):
            head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\nContent-Length: 100000\r\n\r\n".encode()
            status, headers, body, closed, seconds = trickle(server.url, head, every=0.2, max_seconds=15)
            assert status == 408 and headers["content-type"].startswith(PROBLEM), (path, status, body[:200])
            assert json.loads(body)["code"] == "request.body_timeout" and headers.get("connection") == "close" and closed, path
            assert 1.4 <= seconds < 5, (path, seconds)
        # A route that turns the timeout into its own error: the connection is closed all the same.
        head = b"POST /swallow HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
        status, headers, _body, closed, seconds = trickle(server.url, head, every=0.2, max_seconds=15)
        assert status == 400 and headers.get("connection") == "close" and closed and seconds < 5
        # An honest 900 KB upload at ~300 KB/s (3 s, twice the initial allowance) goes through:
        # every 500 bytes received buy another second.
        with raw(server.url) as sock:
            payload = json.dumps({"x": "a" * 900_000}).encode()
            sock.sendall(f"POST /json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n".encode())
            for i in range(0, len(payload), 30_000):
                sock.sendall(payload[i : i + 30_000])
                time.sleep(0.1)
            status, _headers, body, _closed = read_response(sock)
        assert status == 200 and json.loads(body) == {"keys": 1}


@pytest.mark.slow
def test_live_app_cuts_off_slow_bodies_on_every_kind_of_route(rt, live) -> None:  # type: ignore[no-untyped-def]
    """The real app with its configured timeout (``EAUTH_REQUEST_BODY_TIMEOUT``, 20 s by default):
    the JSON API, the OCSP and TSA fast paths and the public upload page, trickled at once."""
    limit = rt.settings.request_body_timeout
    heads = {
        "/api/v1/certificates": b"POST /api/v1/certificates HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n",
        "/ocsp": b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\nContent-Length: 5000\r\n\r\n",
        "/tsa": b"POST /tsa HTTP/1.1\r\nHost: x\r\nContent-Type: application/timestamp-query\r\nContent-Length: 5000\r\n\r\n",
        "/verify": b"POST /verify HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 198.51.100.99\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 5000\r\n\r\n"
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\nContent-Type: application/pdf\r\n\r\n',  # then the file, byte by byte
    }
    results: dict[str, object] = {}

    def run(path: str, head: bytes) -> None:
        try:
            results[path] = trickle(live.url, head, every=0.5, max_seconds=limit + 30)
        except BaseException as exc:  # noqa: BLE001 - reported below
            results[path] = exc

    threads = [threading.Thread(target=run, args=item) for item in heads.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(limit + 60)
    for path in heads:
        out = results[path]
        assert not isinstance(out, BaseException), (path, out)
        status, headers, _body, closed, seconds = out  # type: ignore[misc]
        assert limit - 1 <= seconds < limit + 10, (path, seconds)
        assert headers.get("connection") == "close" and closed, (path, headers)
        if path == "/verify":
            assert 400 <= status < 500 and headers["content-type"].startswith("text/html"), (path, status)  # the page shows the error
        else:
            assert status == 408 and headers["content-type"].startswith(PROBLEM), (path, status)


# -- rate limits -------------------------------------------------------------------------------------------
# Login (password and OTP lockout), SMS per minute and the public verification page are tested with
# their packages (tests/auth_service/test_bad_input.py, test_otp.py, tests/signing/test_verify_page.py).
# Here: the TSA and the SMS hour / per-address rules, with limits tightened the way an operator would
# (EAUTH_RATE_LIMITS overrides, applied to the running platform's limiter), and that every public
# route of those kinds consults a limit.


@contextlib.contextmanager
def tightened(rt, **overrides: tuple[int, int] | None) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """The platform's limiter rebuilt with ``EAUTH_RATE_LIMITS``-style overrides, restored after."""
    from core.ratelimit import EXTENSION_KEY, Limiter, MemoryBackend

    previous = rt.extensions.get(EXTENSION_KEY)
    rt.extensions[EXTENSION_KEY] = Limiter(MemoryBackend(), overrides=overrides)
    try:
        yield
    finally:
        if previous is None:
            rt.extensions.pop(EXTENSION_KEY, None)
        else:
            rt.extensions[EXTENSION_KEY] = previous


def test_tsa_is_rate_limited_per_address(rt, client: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    from signing import rfc3161

    query = rfc3161.build_query(hashlib.sha256(b"x").digest())
    headers = {"content-type": "application/timestamp-query", "x-forwarded-for": "203.0.113.50"}
    with tightened(rt, tsa=(5, 60)):
        statuses = [client.post("/tsa", content=query, headers=headers).status_code for _ in range(5)]
        assert statuses == [200] * 5
        r = client.post("/tsa", content=query, headers=headers)
        problem = _problem(r, 429, "rate_limited.tsa")
        assert int(r.headers["retry-after"]) >= 1 and problem["retry_after"] >= 1
        other = client.post("/tsa", content=query, headers={**headers, "x-forwarded-for": "203.0.113.51"})
        assert other.status_code == 200 and rfc3161.status_of(other.content)[0] == "granted"


def test_sms_codes_are_limited_per_hour_and_per_address(rt) -> None:  # type: ignore[no-untyped-def]
    from auth_service import login
    from core.errors import Problem
    from core.security import Actor
    from identity import service as identity
    from tests.factories import unique_id_number

    with rt.db.transaction() as db:
        person = identity.register_person(rt, db, Actor.cli("limits"), name="赵六", id_number=unique_id_number(), phone="13800138000")
    # per minute (the default rules)
    with tightened(rt):
        login.send_sms_code(rt, person_id=person.id, ip="203.0.113.60")
        with pytest.raises(Problem) as caught:
            login.send_sms_code(rt, person_id=person.id, ip="203.0.113.60")
        assert caught.value.code == "rate_limited.sso_sms" and caught.value.status == 429
    # per hour: five, whatever the minute rule says
    with tightened(rt, sso_sms=None):
        for _ in range(5):
            login.send_sms_code(rt, person_id=person.id, ip="203.0.113.61")
        with pytest.raises(Problem) as caught:
            login.send_sms_code(rt, person_id=person.id, ip="203.0.113.61")
        assert caught.value.code == "rate_limited.sso_sms_hour"
    # per address: twenty an hour, whoever they are for
    with tightened(rt, sso_sms=None, sso_sms_hour=None):
        for _ in range(20):
            login.send_sms_code(rt, person_id=person.id, ip="203.0.113.62")
        with pytest.raises(Problem) as caught:
            login.send_sms_code(rt, person_id=person.id, ip="203.0.113.62")
        assert caught.value.code == "rate_limited.sso_sms_ip"


def test_public_routes_of_these_kinds_consult_a_rate_limit(rt, client: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    """With every limit at 1 call a minute, the second call to each public route that costs work
    (verification page upload and QR link, TSA) from one address is a 429."""
    from signing import rfc3161

    query = rfc3161.build_query(hashlib.sha256(b"y").digest())
    calls = {
        "POST /tsa": lambda ip: client.post("/tsa", content=query, headers={"content-type": "application/timestamp-query", "x-forwarded-for": ip}),
        "POST /verify": lambda ip: client.post("/verify", files={"file": ("a.pdf", b"%PDF-1.7\n%%EOF\n", "application/pdf")}, headers={"x-forwarded-for": ip}),
        "GET /verify/{id}": lambda ip: client.get("/verify/doc-does-not-exist", headers={"x-forwarded-for": ip}),
    }
    with tightened(rt, tsa=(1, 60), verify_page=(1, 60)):
        for i, (name, call) in enumerate(calls.items()):
            ip = f"203.0.113.{70 + i}"
            first, second = call(ip), call(ip)
            assert first.status_code != 429, name
            assert second.status_code == 429, (name, second.status_code, second.text[:200])


# -- slow-loris headers (eauth serve's HTTP protocol) ----------------------------------------------------


def test_slow_headers_and_silent_connections_are_closed(rt, live) -> None:  # type: ignore[no-untyped-def]
    """The real app behind uvicorn with ``eauth serve``'s protocol (deadline shortened to 1 s):
    a connection that sends nothing, or trickles its headers, is closed; honest keep-alive requests,
    and a body that takes longer than the header deadline, are not affected. (``live`` owns the
    platform's per-process threads — this second app's start-up finds them running — and stops them
    at the end of the session; this app runs without lifespan so it does not stop them early.)"""
    import asyncio

    import uvicorn

    from eauth.app import create_app
    from eauth.http_protocol import HEADER_TIMEOUT, EarlyAnswerProtocol
    from tests.conftest import free_port

    assert HEADER_TIMEOUT == 10.0

    class Quick(EarlyAnswerProtocol):  # its deadline passes to the uvicorn protocol it hands over to
        header_timeout = 1.0

    port = free_port()
    config = uvicorn.Config(create_app(rt), host="127.0.0.1", port=port, log_level="warning", lifespan="off", http=Quick, timeout_keep_alive=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.02)
    url = f"http://127.0.0.1:{port}"

    def closed_after(sock: socket.socket, trickle: bytes = b"") -> float:
        start = time.monotonic()
        sock.settimeout(0.25)
        for byte in trickle or b"":
            try:
                sock.send(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - start
            try:
                if sock.recv(1) == b"":
                    return time.monotonic() - start
            except TimeoutError:
                pass
            except ConnectionResetError:
                return time.monotonic() - start
        sock.settimeout(10)
        try:
            assert sock.recv(1) == b""
        except ConnectionResetError:
            pass
        return time.monotonic() - start

    try:
        with raw(url) as silent:
            assert 0.9 <= closed_after(silent) < 3
        with raw(url) as slow:
            assert 0.9 <= closed_after(slow, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100) < 3
        # Keep-alive: three requests on one connection, 0.7 s apart (under the deadline each time).
        with raw(url) as sock:
            for _ in range(3):
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                sock.settimeout(10)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += sock.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
                while len(body) < length:
                    body += sock.recv(65536)
                assert head.startswith(b"HTTP/1.1 200"), head
                time.sleep(0.7)
        # The same for requests the protocol answers itself (OCSP, here malformedRequest): kept alive
        # 0.7 s apart, then a next request whose headers trickle is cut off like the first.
        with raw(url) as sock:
            for _ in range(3):
                sock.sendall(b"GET /ocsp/AAAA HTTP/1.1\r\nHost: x\r\n\r\n")
                sock.settimeout(10)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += sock.recv(65536)
                assert data.startswith(b"HTTP/1.1 200") and b"application/ocsp-response" in data, data
                time.sleep(0.7)
            assert 0.9 <= closed_after(sock, b"GET /ocsp/AAAA HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100) < 3
        # A body that takes 2 s (past the header deadline, within the body allowance) is answered.
        with raw(url) as sock:
            payload = json.dumps({"x": "a" * 3000}).encode()
            sock.sendall(b"POST /oidc/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n" + f"Content-Length: {len(payload)}\r\n\r\n".encode())
            for i in range(0, len(payload), 1000):
                sock.sendall(payload[i : i + 1000])
                time.sleep(0.5)
            status, _headers, _body, _closed = read_response(sock)
            assert status == 400  # an OAuth error for the nonsense form: it got through to the app
    finally:
        server.should_exit = True
        thread.join(10)


def test_json_nested_just_below_the_decoder_limit_in_every_body_field(rt, client: httpx.Client, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    """900 levels parse (the decoder stops near 1,000), so they reach the models and the code behind
    them: every JSON operation of the API, each top-level field set to such a value, answers 2xx/4xx."""
    spec = client.get("/openapi.json").json()
    components = spec.get("components", {}).get("schemas", {})
    deep = json.loads(deep_json(900))
    tried = 0
    for path, item in spec["paths"].items():
        for method, op in item.items():
            content = (op.get("requestBody") or {}).get("content", {})
            if "application/json" not in content:
                continue
            schema = content["application/json"].get("schema", {})
            if "$ref" in schema:
                schema = components.get(schema["$ref"].rsplit("/", 1)[-1], {})
            fields = list((schema.get("properties") or {}).keys()) or ["x"]
            url = path.replace("{", "").replace("}", "")  # ids that exist nowhere: the body is judged first or a 404 follows
            for name in fields:
                r = client.request(method.upper(), url, json={name: deep}, headers=_auth(admin_token))
                assert r.status_code < 500, (method, path, name, r.status_code, r.text[:200])
                if r.status_code >= 400:
                    assert r.headers["content-type"].startswith(PROBLEM), (method, path, r.headers.get("content-type"))
                tried += 1
    assert tried >= 10, tried

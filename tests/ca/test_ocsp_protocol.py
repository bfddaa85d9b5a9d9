"""OCSP answered by ``eauth serve``'s HTTP protocol itself (``eauth.http_protocol.EarlyAnswerProtocol``)
versus through the application (``ca.web.status.OcspFastPath``): the same bytes and headers either
way, and every request the early stage must not answer (cache miss, nonce, a body arriving in
pieces, pipelining, another route on the same connection) still answered correctly by uvicorn.

Raw sockets, so each test decides how the bytes arrive. ``live`` runs the production protocol
(tests/conftest.py); ``early_count`` tells which path answered."""

from __future__ import annotations

import base64
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp as x509_ocsp

from ca import revocation, service
from tests.ca.conftest import ACTOR, Subjects, make_csr, write_chain


def issue(rt) -> x509.Certificate:  # type: ignore[no-untyped-def]
    with rt.db.transaction() as db:
        return service.issue_certificate(rt, db, ACTOR, profile="citizen", csr=make_csr(), subject_id=_person(rt)).certificate


def _person(rt) -> str:  # type: ignore[no-untyped-def]
    from identity import service as ids
    from tests.factories import unique_id_number

    with rt.db.transaction() as db:
        return ids.register_person(rt, db, ACTOR, name="王五", id_number=unique_id_number(), email=f"p{os.urandom(4).hex()}@example.cn").id


def early_count(live) -> int:  # type: ignore[no-untyped-def]
    from eauth.http_protocol import server_info

    return server_info(live.server.config).answered


def request_der(cert: x509.Certificate, issuer: x509.Certificate, *, nonce: bytes | None = None) -> bytes:
    builder = x509_ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def get(der: bytes, *, close: bool = True, extra: str = "", method: str = "GET") -> bytes:
    path = "/ocsp/" + quote(base64.b64encode(der).decode(), safe="")
    return f"{method} {path} HTTP/1.1\r\nHost: x\r\n{'Connection: close' + chr(13) + chr(10) if close else ''}{extra}\r\n".encode()


def post(der: bytes, *, close: bool = True) -> bytes:
    head = f"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\nContent-Length: {len(der)}\r\n"
    return (head + ("Connection: close\r\n" if close else "") + "\r\n").encode() + der


@contextmanager
def connect(live) -> Iterator[socket.socket]:  # type: ignore[no-untyped-def]
    u = urlsplit(live.url)
    sock = socket.create_connection((u.hostname, u.port), timeout=10)
    try:
        yield sock
    finally:
        sock.close()


class Reader:
    """HTTP/1.1 responses read off one socket, in order (Content-Length framed, as both paths send)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def response(self, *, head_request: bool = False) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buf:
            assert self._fill(), f"connection closed before a response: {self.buf!r}"
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if head_request else int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            assert self._fill(), "connection closed inside a body"
        body, self.buf = self.buf[:length], self.buf[length:]
        return int(lines[0].split()[1]), headers, body

    def closed(self) -> bool:
        self.sock.settimeout(5)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True


def exchange(live, data: bytes, *, head_request: bool = False) -> tuple[int, dict[str, str], bytes]:  # type: ignore[no-untyped-def]
    with connect(live) as sock:
        sock.sendall(data)
        return Reader(sock).response(head_request=head_request)


def good(body: bytes, cert: x509.Certificate) -> x509_ocsp.OCSPResponse:
    resp = x509_ocsp.load_der_ocsp_response(body)
    assert resp.response_status is x509_ocsp.OCSPResponseStatus.SUCCESSFUL
    assert resp.serial_number == cert.serial_number and resp.certificate_status is x509_ocsp.OCSPCertStatus.GOOD
    return resp


@pytest.fixture
def chain(rt, tmp_path):  # type: ignore[no-untyped-def]
    _root, issuing = write_chain(rt, tmp_path)
    return x509.load_pem_x509_certificate(issuing.read_bytes())


def test_a_cache_hit_is_answered_early_with_the_same_bytes_and_headers(rt, live, chain) -> None:  # type: ignore[no-untyped-def]
    cert = issue(rt)
    der = request_der(cert, chain)
    # The first request may find no copy in this process yet (the application answers it, from the
    # database); from the second on the copy is cached and the protocol answers.
    status, first_headers, first = exchange(live, get(der))
    assert status == 200
    good(first, cert)
    before = early_count(live)
    status, headers, body = exchange(live, get(der))
    assert early_count(live) == before + 1, "a cached answer went through the application"
    assert status == 200 and body == first and headers["content-type"] == "application/ocsp-response"
    for name in ("etag", "last-modified", "expires"):
        assert headers[name] == first_headers[name], name
    assert headers["cache-control"].startswith("public, max-age=") and "must-revalidate" in headers["cache-control"]
    assert int(headers["content-length"]) == len(body) and headers["connection"] == "close" and "date" in headers
    # POST in one piece, HEAD, and a conditional GET: all early.
    status, post_headers, posted = exchange(live, post(der))
    assert status == 200 and posted == body and "etag" not in post_headers and early_count(live) == before + 2
    status, head_headers, empty = exchange(live, get(der, method="HEAD"), head_request=True)
    assert status == 200 and empty == b"" and head_headers["etag"] == headers["etag"] and early_count(live) == before + 3
    status, _h, empty = exchange(live, get(der, extra=f"If-None-Match: {headers['etag']}\r\n"))
    assert status == 304 and empty == b"" and early_count(live) == before + 4


def test_requests_the_early_stage_declines_reach_the_application(rt, live, chain) -> None:  # type: ignore[no-untyped-def]
    cert = issue(rt)
    der = request_der(cert, chain)
    exchange(live, get(der))  # cached from here on
    before = early_count(live)
    # A nonce: signed fresh by the application, nonce echoed.
    nonce = os.urandom(16)
    status, _h, body = exchange(live, get(request_der(cert, chain, nonce=nonce)))
    resp = good(body, cert)
    assert resp.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
    # A POST whose body arrives in a second read: the application reads it (behind its body guard).
    with connect(live) as sock:
        data = post(der)
        sock.sendall(data[:-10])
        time.sleep(0.3)
        sock.sendall(data[-10:])
        status, _h, body = Reader(sock).response()
    assert status == 200
    good(body, cert)
    # An unknown serial of our issuer: the application answers (database), "unknown".
    unknown = x509_ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        x509_ocsp.load_der_ocsp_request(der).issuer_name_hash, x509_ocsp.load_der_ocsp_request(der).issuer_key_hash, cert.serial_number + 1, hashes.SHA1()
    )
    status, _h, body = exchange(live, get(unknown.build().public_bytes(serialization.Encoding.DER)))
    assert status == 200 and x509_ocsp.load_der_ocsp_response(body).certificate_status is x509_ocsp.OCSPCertStatus.UNKNOWN
    assert early_count(live) == before, "a request that needs the database or the HSM was answered early"


def test_malformed_and_unauthorized_are_answered_early_never_500(rt, live, chain) -> None:  # type: ignore[no-untyped-def]
    before = early_count(live)
    for data in (b"GET /ocsp/AAAA HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", post(b"\x30\x03\x02\x01\x00"), b"GET /ocsp/%%%%%% HTTP/1.1\r\nHost: x\r\n\r\n"):
        status, headers, body = exchange(live, data)
        assert status == 200 and headers["content-type"] == "application/ocsp-response", data
        assert x509_ocsp.load_der_ocsp_response(body).response_status is x509_ocsp.OCSPResponseStatus.MALFORMED_REQUEST, data
    foreign = x509_ocsp.OCSPRequestBuilder().add_certificate_by_hash(os.urandom(20), os.urandom(20), 12345, hashes.SHA1()).build()
    status, _h, body = exchange(live, get(foreign.public_bytes(serialization.Encoding.DER)))
    assert x509_ocsp.load_der_ocsp_response(body).response_status is x509_ocsp.OCSPResponseStatus.UNAUTHORIZED
    assert early_count(live) == before + 4
    # Beyond the early stage's reach: an oversized POST, and an OCSP path the routes do not serve.
    big = b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\nConnection: close\r\n\r\n" + b"\x30" * 70000
    status, _h, body = exchange(live, big)
    assert status == 200 and x509_ocsp.load_der_ocsp_response(body).response_status is x509_ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    status, headers, _b = exchange(live, b"DELETE /ocsp/AAAA HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 405 and headers["content-type"].startswith("application/problem+json")
    assert early_count(live) == before + 4


def test_keep_alive_pipelining_and_other_routes_on_one_connection(rt, live, chain) -> None:  # type: ignore[no-untyped-def]
    cert = issue(rt)
    der = request_der(cert, chain)
    exchange(live, get(der))
    before = early_count(live)
    with connect(live) as sock:
        reader = Reader(sock)
        for _ in range(3):  # kept alive, answered early each time
            sock.sendall(get(der, close=False))
            status, headers, body = reader.response()
            assert status == 200 and "connection" not in headers
            good(body, cert)
        assert early_count(live) == before + 3
        # Another route on the same connection: handed over to uvicorn, which keeps serving it.
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = reader.response()
        assert status == 200 and headers["content-type"] == "application/json" and b'"status"' in body
        sock.sendall(get(der, close=False) + post(der, close=True))  # pipelined, after the hand-over
        for _ in range(2):
            status, _h, body = reader.response()
            assert status == 200
            good(body, cert)
        assert reader.closed()
    assert early_count(live) == before + 3
    # Pipelined from the first byte: both answered in order, by uvicorn.
    other = issue(rt)
    with connect(live) as sock:
        reader = Reader(sock)
        sock.sendall(get(der, close=False) + get(request_der(other, chain), close=False) + b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        good(reader.response()[2], cert)
        good(reader.response()[2], other)
        assert reader.response()[0] == 200 and reader.closed()
    assert early_count(live) == before + 3


def test_revocation_is_seen_by_the_early_stage_at_once(rt, live, chain) -> None:  # type: ignore[no-untyped-def]
    cert = issue(rt)
    der = request_der(cert, chain)
    exchange(live, get(der))
    good(exchange(live, get(der))[2], cert)
    with rt.db.transaction() as db:
        revocation.revoke(rt, db, ACTOR, serial=format(cert.serial_number, "x"), reason="keyCompromise")
    for data in (get(der), get(der), post(der)):  # the first may be the application's (a new copy), then early
        status, _h, body = exchange(live, data)
        resp = x509_ocsp.load_der_ocsp_response(body)
        assert status == 200 and resp.certificate_status is x509_ocsp.OCSPCertStatus.REVOKED
        assert resp.revocation_reason is x509.ReasonFlags.key_compromise


def test_http_1_0_is_answered_and_closed(rt, live, chain) -> None:  # type: ignore[no-untyped-def]
    cert = issue(rt)
    der = request_der(cert, chain)
    exchange(live, get(der))
    with connect(live) as sock:
        sock.sendall(get(der, close=False).replace(b"HTTP/1.1", b"HTTP/1.0"))
        reader = Reader(sock)
        status, headers, body = reader.response()
        assert status == 200 and headers["connection"] == "close" and reader.closed()
        good(body, cert)

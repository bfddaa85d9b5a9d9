"""Certificate status over HTTP: the OCSP responder, the CRLs at their CDP URLs, and the status
changes API (revoke / suspend / resume).

OCSP requests are answered by :class:`OcspFastPath`, a bare ASGI layer mounted in front of the
FastAPI stack (``ca.web.install``): a request whose answer is in the process's cache costs one
DER parse and one dict look-up — no routing, no dependency injection, no thread hop — which is
what lets a Python responder keep pace with ``openssl ocsp`` (bench/bench_ocsp.py). Misses, nonces and
unknown serials go to a worker thread (database, HSM). The FastAPI routes below serve the same
answers when the fast path is not installed and document the endpoints in ``/openapi.json``.

RFC 6960 Appendix A / RFC 5019 §5: ``GET /ocsp/{base64(DER)}`` (URL-encoded) and ``POST /ocsp``
with ``application/ocsp-request``; answers are ``application/ocsp-response`` with HTTP 200 even
for malformedRequest / unauthorized (the OCSP status is inside). GET answers carry
``Cache-Control: max-age`` (up to the moment this responder would itself look for a newer copy),
``ETag``, ``Last-Modified`` (thisUpdate) and ``Expires`` (nextUpdate).
"""

from __future__ import annotations

import base64
import binascii
import time
from datetime import datetime
from typing import Annotated
from urllib.parse import unquote_to_bytes

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from ca import crl, ocsp, publisher, revocation
from core.errors import Kind, Problem
from core.runtime import Runtime
from core.security import Principal, Role
from core.web import EarlyAnswer, RuntimeDep, read_capped_body, require

router = APIRouter()

OCSP_REQUEST = "application/ocsp-request"
OCSP_RESPONSE = "application/ocsp-response"
PKIX_CRL = "application/pkix-crl"  # RFC 2585 §4.2
MAX_OCSP_REQUEST = 16 * 1024
CRL_MAX_AGE = 900

REVOKE = require(roles={Role.CA_ADMIN, Role.REGISTRATION_OFFICER}, scopes={"certificates:revoke"})
Revoker = Annotated[Principal, Depends(REVOKE)]


def setup(rt: Runtime) -> None:
    """Per-process start-up: the OCSP state (issuers, cache) and the publisher thread."""
    ocsp.state(rt)
    publisher.start(rt)


def teardown(rt: Runtime) -> None:
    publisher.stop(rt)


# -- OCSP: shared by the fast path and the routes -------------------------------------------------------


_ESCAPES = ((b"%2F", b"/"), (b"%2B", b"+"), (b"%3D", b"="), (b"%2f", b"/"), (b"%2b", b"+"), (b"%3d", b"="))


def _unquote(encoded: bytes) -> bytes:
    """``unquote_to_bytes`` with the escapes base64 needs (``+ / =``) undone by ``bytes.replace``
    first: the same bytes, several times faster for the usual request."""
    if b"%" not in encoded:
        return encoded
    for escaped, char in _ESCAPES:
        if escaped in encoded:
            encoded = encoded.replace(escaped, char)
    return unquote_to_bytes(encoded) if b"%" in encoded else encoded


def _decode_get(encoded: bytes) -> bytes | None:
    """The DER from the GET path segment: URL-decoded base64, standard or URL-safe alphabet."""
    text = _unquote(encoded).strip().translate(None, b"\r\n ")
    text = text.replace(b"-", b"+").replace(b"_", b"/")
    text += b"=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _max_age(entry: ocsp.Cached) -> int:
    return max(0, int(entry.stale_at - time.time()))


def _cache_headers(entry: ocsp.Cached) -> list[tuple[bytes, bytes]]:
    return [
        (b"cache-control", b"public, max-age=%d, no-transform, must-revalidate" % _max_age(entry)),
        (b"etag", entry.etag),
        (b"last-modified", entry.last_modified),
        (b"expires", entry.expires),
    ]


def _respond(der: bytes, entry: ocsp.Cached | None, *, get: bool, if_none_match: bytes | None) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    headers = [(b"content-type", OCSP_RESPONSE.encode())]
    if get and entry is not None:
        headers += _cache_headers(entry)
        if if_none_match is not None and entry.etag in if_none_match:
            return 304, headers, b""
    elif get:
        headers.append((b"cache-control", b"no-cache"))
    headers.append((b"content-length", str(len(der)).encode()))
    return 200, headers, der


def answer_now(st: ocsp.ResponderState, data: bytes | None, *, get: bool, if_none_match: bytes | None = None) -> tuple[int, list[tuple[bytes, bytes]], bytes] | ocsp.Parsed:
    """(HTTP status, headers, body) for one OCSP request when it needs no I/O: a fresh copy in this
    process's cache, or an unsuccessful response (malformed, unauthorized). Else the parsed request,
    to be answered from the database or the HSM (:func:`respond_ocsp`)."""
    parsed = ocsp.parse_request(st, data) if data else ocsp.MALFORMED
    if isinstance(parsed, bytes):
        return _respond(parsed, None, get=get, if_none_match=if_none_match)
    if parsed.issuer is None:
        return _respond(ocsp.UNAUTHORIZED, None, get=get, if_none_match=if_none_match)
    entry = ocsp.cached(st, parsed)
    if entry is None:
        return parsed
    return _respond(entry.der, entry, get=get, if_none_match=if_none_match)


async def respond_ocsp(rt: Runtime, data: bytes | None, *, get: bool, if_none_match: bytes | None = None) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """(HTTP status, headers, body) for one OCSP request."""
    st = ocsp.state(rt)
    done = answer_now(st, data, get=get, if_none_match=if_none_match)
    if not isinstance(done, ocsp.Parsed):
        return done
    der, entry = await run_in_threadpool(ocsp.answer, rt, done)
    return _respond(der, entry, get=get, if_none_match=if_none_match)


def early_answer(rt: Runtime) -> EarlyAnswer:
    """``/ocsp`` answered by the HTTP protocol itself (``eauth.http_protocol``) when the answer is in
    this process's cache: no ASGI layer, no task, one write. Misses, nonces and bodies that arrive in
    pieces go to :class:`OcspFastPath` as before."""
    st = ocsp.state(rt)

    def answer(method: str, raw_path: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
        if method == "POST":
            if raw_path not in (b"/ocsp", b"/ocsp/") or len(body) > MAX_OCSP_REQUEST:
                return None
            out = answer_now(st, body, get=False)
        elif len(raw_path) <= 6 or raw_path[5] != 0x2F or len(raw_path) > 2 * MAX_OCSP_REQUEST:  # "/ocsp/…"
            return None
        else:
            if_none_match = None
            for name, value in headers:
                if name == b"if-none-match":
                    if_none_match = value
            out = answer_now(st, _decode_get(raw_path[6:]), get=True, if_none_match=if_none_match)
        return None if isinstance(out, ocsp.Parsed) else out

    return EarlyAnswer(prefix=b"/ocsp", methods=frozenset({"GET", "HEAD", "POST"}), max_body=MAX_OCSP_REQUEST, answer=answer)


class OcspFastPath:
    """ASGI layer answering ``/ocsp`` before the framework sees the request."""

    def __init__(self, app: ASGIApp, *, rt: Runtime) -> None:
        self.app = app
        self.rt = rt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if not path.startswith("/ocsp") or (len(path) > 5 and path[5] != "/"):
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method == "POST" and path in ("/ocsp", "/ocsp/"):
            data: bytes | None = await read_capped_body(receive, MAX_OCSP_REQUEST)  # None: malformedRequest
            get = False
        elif method in ("GET", "HEAD") and path.startswith("/ocsp/") and len(path) > 6:
            raw = scope.get("raw_path") or path.encode()
            data = _decode_get(raw[6:]) if len(raw) <= 2 * MAX_OCSP_REQUEST else None  # base64 + %-escapes
            get = True
        else:
            await self.app(scope, receive, send)  # 404 / 405 problem documents
            return
        if_none_match = None
        if get:
            for name, value in scope["headers"]:
                if name == b"if-none-match":
                    if_none_match = value
        status, headers, body = await respond_ocsp(self.rt, data, get=get, if_none_match=if_none_match)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})


def _response(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> Response:
    response = Response(body, status_code=status, media_type=OCSP_RESPONSE)
    for name, value in headers:
        if name not in (b"content-type", b"content-length"):
            response.headers[name.decode()] = value.decode()
    return response


_OCSP_DOC = {200: {"content": {OCSP_RESPONSE: {}}, "description": "An OCSP response (RFC 6960), also for malformed or unauthorised requests"}}


@router.post(
    "/ocsp",
    tags=["status"],
    response_class=Response,
    responses=_OCSP_DOC,
    summary="OCSP request (RFC 6960 POST)",
    openapi_extra={"requestBody": {"required": True, "content": {OCSP_REQUEST: {"schema": {"type": "string", "format": "binary"}}}}},
)
async def ocsp_post(request: Request, rt: RuntimeDep) -> Response:
    data = await request.body()
    return _response(*await respond_ocsp(rt, data if len(data) <= MAX_OCSP_REQUEST else None, get=False))


@router.get("/ocsp/{encoded:path}", tags=["status"], response_class=Response, responses=_OCSP_DOC, summary="OCSP request (RFC 6960 GET)")
async def ocsp_get(encoded: str, request: Request, rt: RuntimeDep) -> Response:
    raw = request.scope.get("raw_path") or request.url.path.encode()
    data = _decode_get(raw[len(b"/ocsp/") :])
    return _response(*await respond_ocsp(rt, data, get=True, if_none_match=request.headers.get("if-none-match", "").encode() or None))


# -- CRLs ------------------------------------------------------------------------------------------------


def _crl_response(rt: Runtime, request: Request, path: str) -> Response:
    found = crl.served(rt, path)
    if found is None:
        raise Problem(Kind.NOT_FOUND, "crl.not_found", f"no CRL is published at {path}")
    etag = f'"{found.sha256}"'
    next_update = datetime.fromisoformat(found.next_update).timestamp()
    max_age = max(0, min(CRL_MAX_AGE, int(next_update - time.time())))
    headers = {
        "Cache-Control": f"public, max-age={max_age}, no-transform",
        "ETag": etag,
        "Last-Modified": ocsp._http_date(found.this_update).decode(),
        "Expires": ocsp._http_date(found.next_update).decode(),
    }
    inm = request.headers.get("if-none-match")
    if inm is not None and etag in inm:
        return Response(status_code=304, headers=headers)
    return Response(found.der, media_type=PKIX_CRL, headers=headers)


_CRL_DOC = {200: {"content": {PKIX_CRL: {}}, "description": "A DER CRL (RFC 5280)"}}


@router.get("/crl/{ca_name}.crl", tags=["status"], response_class=Response, responses=_CRL_DOC, summary="The CA's full CRL")
def crl_full(ca_name: str, request: Request, rt: RuntimeDep) -> Response:
    return _crl_response(rt, request, crl.crl_path(ca_name))


@router.get("/crl/{ca_name}/{shard}.crl", tags=["status"], response_class=Response, responses=_CRL_DOC, summary="One shard of the CA's CRL")
def crl_shard(ca_name: str, shard: str, request: Request, rt: RuntimeDep) -> Response:
    return _crl_response(rt, request, crl.crl_path(ca_name, shard))


# -- status changes ---------------------------------------------------------------------------------------


class RevokeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(max_length=40, description="RFC 5280 reason: " + ", ".join(revocation.REVOCATION_REASONS))
    invalidity_date: datetime | None = Field(default=None, description="when the key is known or suspected to have become unusable")
    comment: str | None = Field(default=None, max_length=500)


class HoldRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: str | None = Field(default=None, max_length=500)


class StatusOut(BaseModel):
    serial: str
    issuer: str
    status: str
    previous_status: str
    reason: str | None
    revoked_at: str | None
    invalidity_date: str | None
    changed_by: str
    changed_at: str


def _changed(rt: Runtime, change: revocation.StatusChange) -> StatusOut:
    ocsp.forget(rt, change.issuer, int(change.serial, 16))  # after commit: no stale copy here either
    return StatusOut(**change.as_dict())  # type: ignore[arg-type]


@router.post("/api/v1/certificates/{serial}/revoke", tags=["certificates"], response_model=StatusOut)
def revoke_certificate(serial: str, body: RevokeRequest, principal: Revoker, rt: RuntimeDep) -> StatusOut:
    with rt.db.transaction() as db:
        change = revocation.revoke(rt, db, principal.actor, serial=serial, reason=body.reason, invalidity_date=body.invalidity_date, comment=body.comment)
    return _changed(rt, change)


@router.post("/api/v1/certificates/{serial}/suspend", tags=["certificates"], response_model=StatusOut)
def suspend_certificate(serial: str, principal: Revoker, rt: RuntimeDep, body: HoldRequest | None = None) -> StatusOut:
    with rt.db.transaction() as db:
        change = revocation.suspend(rt, db, principal.actor, serial=serial, comment=body.comment if body else None)
    return _changed(rt, change)


@router.post("/api/v1/certificates/{serial}/resume", tags=["certificates"], response_model=StatusOut)
def resume_certificate(serial: str, principal: Revoker, rt: RuntimeDep, body: HoldRequest | None = None) -> StatusOut:
    with rt.db.transaction() as db:
        change = revocation.resume(rt, db, principal.actor, serial=serial, comment=body.comment if body else None)
    return _changed(rt, change)

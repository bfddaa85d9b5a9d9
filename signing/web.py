"""HTTP routes of the signing package (mounted by ``eauth.app``).

- ``POST /tsa`` — RFC 3161 §3.4 time-stamp protocol over HTTP: ``application/timestamp-query`` in,
  ``application/timestamp-reply`` out. Anonymous (as the RFC intends) but rate limited per address.
  A bad query is answered with a ``PKIStatusInfo`` rejection (HTTP 200, like any TSP response),
  never a 5xx. Served by an ASGI fast path in front of the framework (the route below documents it).
- ``/api/v1/seals…`` — department systems seal PDFs (PAdES) and JSON records (JWS / CMS) with an
  access token holding ``seal:<id>``; operators list seals.
- ``POST /api/v1/verifications`` — the JSON report (token scope ``verify``).
- ``/verify`` — the public verification page (no login, rate limited): upload a document or open the
  QR link printed on a sealed PDF; Simplified Chinese by default, ``?lang=en`` for English.

Blocking work (pyHanko, HSM, database) runs in the thread pool, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from core import metrics
from core.errors import Kind, Problem
from core.ratelimit import Rule, hit, limiter, per_ip
from core.runtime import Runtime
from core.security import Principal, Role
from core.web import RuntimeDep, authenticate, problem_response, read_capped_body, require
from signing import i18n, pades, service
from signing.report import Report
from signing.rfc3161 import MAX_QUERY_BYTES

log = logging.getLogger("eauth.signing")

router = APIRouter()

TSA_QUERY = "application/timestamp-query"  # RFC 3161 §3.4
TSA_REPLY = "application/timestamp-reply"
PDF = "application/pdf"

TSA_PER_IP = Rule("tsa", limit=6000, window=60)  # 100 tokens/s per address on average
VERIFY_PAGE_PER_IP = Rule("verify_page", limit=30, window=60)  # public uploads: pyHanko work each
SEAL_PER_CLIENT = Rule("seal", limit=6000, window=60)
# POST /api/v1/verifications: each call is pyHanko work (≈ 40 ms of CPU for a sealed licence), so one
# department system (the token's subject) may not take a worker's whole time: 20 a second on average.
VERIFY_PER_CLIENT = Rule("verification", limit=1200, window=60)

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"

OPERATORS = require(roles={Role.CA_ADMIN, Role.DEPARTMENT_ADMIN, Role.AUDITOR})
VERIFIER = require(scopes={"verify"})
Operator = Annotated[Principal, Depends(OPERATORS)]
Verifier = Annotated[Principal, Depends(VERIFIER)]


def _seal_guard(request: Request, seal_id: str) -> Principal:
    """Route guard for one seal's write routes: an access token holding ``seal:<seal_id>`` (the
    service then checks the client is on the seal's list of allowed clients)."""
    principal = authenticate(request)
    if not principal.has_scope(f"seal:{seal_id}"):
        raise Problem(Kind.FORBIDDEN, "auth.insufficient_scope", f"requires the scope seal:{seal_id}")
    request.state.principal = principal
    hit(request.app.state.runtime, SEAL_PER_CLIENT, principal.actor.ref)
    return principal


_seal_guard.eauth_guard = {"roles": [], "scopes": ["seal:{seal_id}"], "min_acr": None}  # type: ignore[attr-defined]
SealUser = Annotated[Principal, Depends(_seal_guard)]


def setup(rt: Runtime) -> None:
    """Per-process start-up: the timestamp authority (and its instance row) outside any request."""
    try:
        service.tsa_authority(rt)
    except Problem as exc:  # not initialised yet: /tsa answers 503 problems until it is
        log.warning("timestamp authority unavailable: %s", exc.code)


def install(app: FastAPI, rt: Runtime) -> None:
    app.add_middleware(TsaFastPath, rt=rt)


# -- TSA ----------------------------------------------------------------------------------------------


async def respond_tsa(rt: Runtime, body: bytes | None) -> bytes:
    """A ``TimeStampResp`` for ``body`` (``None``: larger than any valid query → rejection)."""
    reply = await run_in_threadpool(service.timestamp_response, rt, body if body is not None else b"")
    metrics.TIMESTAMPS_ISSUED.labels(outcome=_pki_status(reply)).inc()
    return reply


_PKI_STATUS = {0: "granted", 1: "grantedWithMods", 2: "rejection", 3: "waiting", 4: "revocationWarning", 5: "revocationNotification"}


def _pki_status(reply: bytes) -> str:
    """The PKIStatus of a DER TimeStampResp (RFC 3161 §2.4.2): SEQUENCE { SEQUENCE { INTEGER …"""
    i = 0
    try:
        for _ in range(2):  # into TimeStampResp, then PKIStatusInfo
            if reply[i] != 0x30:
                return "unreadable"
            i += 2 + (reply[i + 1] & 0x7F if reply[i + 1] & 0x80 else 0)
        if reply[i] != 0x02 or reply[i + 1] != 1:
            return "unreadable"
        return _PKI_STATUS.get(reply[i + 2], "unreadable")
    except IndexError:
        return "unreadable"


class TimestampQueue:
    """The timestamp unit's own thread: ``POST /tsa`` queries are answered there, in batches.

    The general thread-pool hop (anyio: a capacity limiter, a cancel scope, a worker hand-off per
    call) cost more CPU per token than building the token; here the event loop appends the query
    to a list and awaits a future, the thread takes everything queued at once, answers each query
    (HSM signatures included, made in one token borrow: never on the event loop) and hands the
    replies back with one ``call_soon_threadsafe`` per batch. Under load, one thread wake-up serves
    several tokens.
    One thread is enough: the HSM module lock serialises a process's signatures anyway. The thread
    starts with the first query and ends after ``IDLE_SECONDS`` without one.
    """

    MAX_BATCH = 64
    IDLE_SECONDS = 30.0

    def __init__(self, respond: Callable[[list[bytes]], list[bytes]]) -> None:
        self._respond = respond
        self._wake = threading.Condition(threading.Lock())
        self._pending: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[bytes], bytes]] = []
        self._thread: threading.Thread | None = None

    async def submit(self, query: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        with self._wake:
            self._pending.append((loop, future, query))
            if self._thread is None:
                self._start()
            else:
                self._wake.notify()
        return await future

    def _start(self) -> None:  # with self._wake held
        self._thread = threading.Thread(target=self._run, name="eauth-tsa", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._serve()
        finally:
            with self._wake:
                self._thread = None
                if self._pending:  # queued meanwhile, or this thread failed: never leave a query waiting
                    self._start()

    def _serve(self) -> None:
        while True:
            with self._wake:
                if not self._pending:
                    self._wake.wait(self.IDLE_SECONDS)
                    if not self._pending:
                        return  # idle: the next query starts a new thread
                batch, self._pending = self._pending[: self.MAX_BATCH], self._pending[self.MAX_BATCH :]
            replies: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[bytes], bytes | None, Exception | None]]] = {}
            outcomes: dict[str, int] = {}
            try:
                answers = self._respond([query for _, _, query in batch])
                if len(answers) != len(batch):
                    raise RuntimeError(f"{len(answers)} timestamp replies for {len(batch)} queries")
            except Exception as exc:  # noqa: BLE001 - handed to the waiting requests (a problem, or a 500 logged there)
                for loop, future, _ in batch:
                    replies.setdefault(loop, []).append((future, None, exc))
            else:
                for (loop, future, _), reply in zip(batch, answers, strict=True):
                    status = _pki_status(reply)
                    outcomes[status] = outcomes.get(status, 0) + 1
                    replies.setdefault(loop, []).append((future, reply, None))
            for loop, items in replies.items():
                try:
                    loop.call_soon_threadsafe(_deliver, items)
                except RuntimeError:  # that loop has closed: nobody waits for these replies
                    pass
            for status, count in outcomes.items():
                with contextlib.suppress(Exception):  # a metrics failure must not stop the unit
                    metrics.TIMESTAMPS_ISSUED.labels(outcome=status).inc(count)


def _deliver(items: list[tuple[asyncio.Future[bytes], bytes | None, Exception | None]]) -> None:
    for future, reply, exc in items:
        if future.done():  # the client went away
            continue
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(reply)  # type: ignore[arg-type]


class TsaFastPath:
    """ASGI layer answering ``POST /tsa`` before routing and the framework's per-request middleware
    (metrics, request ids, security headers: none of them applies to a binary protocol reply)."""

    def __init__(self, app: ASGIApp, *, rt: Runtime) -> None:
        self.app = app
        self.rt = rt
        self.queue = TimestampQueue(lambda queries: service.timestamp_responses(rt, queries))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/tsa" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            rates = limiter(self.rt)
            if rates.effective(TSA_PER_IP) is not None:  # the client's address is worked out only when counted
                rates.hit(TSA_PER_IP, per_ip(Request(scope), self.rt))
            content_type = next((v for k, v in scope["headers"] if k == b"content-type"), b"").decode("latin-1")
            _check_tsa_type(content_type)
            data = await read_capped_body(receive, MAX_QUERY_BYTES)
            reply = await self.queue.submit(data if data is not None else b"")  # b"": rejected as badDataFormat
        except Problem as exc:  # rate limited, wrong media type, unit not initialised (503)
            await problem_response(exc, Request(scope))(scope, receive, send)
            return
        headers = [(b"content-type", _TSA_REPLY_BYTES), (b"content-length", str(len(reply)).encode()), (b"cache-control", b"no-store")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": reply})


_TSA_REPLY_BYTES = TSA_REPLY.encode()


def _check_tsa_type(content_type: str | None) -> None:
    if (content_type or "").split(";")[0].strip().lower() != TSA_QUERY:
        raise Problem(Kind.UNSUPPORTED_MEDIA_TYPE, "tsa.bad_content_type", f"send the query as {TSA_QUERY} (RFC 3161 §3.4)")


@router.post(
    "/tsa",
    tags=["signing"],
    response_class=Response,
    summary="Time-stamp request (RFC 3161 §3.4)",
    responses={200: {"content": {TSA_REPLY: {}}, "description": "A TimeStampResp: granted, or a rejection naming the failure"}},
    openapi_extra={"requestBody": {"required": True, "content": {TSA_QUERY: {"schema": {"type": "string", "format": "binary"}}}}},
)
async def tsa(request: Request, rt: RuntimeDep) -> Response:
    """Normally answered by :class:`TsaFastPath`; this route serves when the layer is absent."""
    hit(rt, TSA_PER_IP, per_ip(request, rt))
    _check_tsa_type(request.headers.get("content-type"))
    body = await request.body()
    reply = await respond_tsa(rt, body if len(body) <= MAX_QUERY_BYTES else None)
    return Response(reply, media_type=TSA_REPLY, headers={"Cache-Control": "no-store"})


# -- uploads ------------------------------------------------------------------------------------------


async def _upload(request: Request, rt: Runtime, *, field: str = "file") -> tuple[bytes, str | None, dict[str, str], bytes | None]:
    """(document bytes, file name, other form fields, detached data) from a raw or multipart body.
    The size limit is ``max_upload_bytes`` (a 413 problem before reading a declared larger body)."""
    limit = rt.settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise Problem(Kind.TOO_LARGE, "signing.too_large", f"documents are limited to {limit} bytes")
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        try:
            form = await request.form(max_files=2, max_fields=20)
        except Exception as exc:  # noqa: BLE001 - a malformed multipart body is the caller's error
            raise Problem(Kind.INVALID_INPUT, "request.bad_multipart", f"the multipart body cannot be read: {str(exc)[:120]}") from None
        upload = form.get(field)
        if upload is None or isinstance(upload, str):
            raise Problem(Kind.VALIDATION, "signing.file_missing", f"attach the document as the form field {field!r}", fields=[{"name": field, "reason": "missing"}])
        data = await upload.read(limit + 1)
        detached_part = form.get("detached")
        detached = (await detached_part.read(limit + 1)) if detached_part is not None and not isinstance(detached_part, str) else None
        others = {k: v for k, v in form.items() if isinstance(v, str)}
        name = upload.filename
    else:
        data = await request.body()
        detached, others, name = None, {}, None
    if len(data) > limit or (detached is not None and len(detached) > limit):
        raise Problem(Kind.TOO_LARGE, "signing.too_large", f"documents are limited to {limit} bytes")
    if not data:
        raise Problem(Kind.INVALID_INPUT, "signing.empty", "the request carries no document")
    return data, (name or None), others, detached


def _box(text: str | None) -> tuple[float, float, float, float] | None:
    if not text:
        return None
    try:
        parts = tuple(float(v) for v in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 4:
        raise Problem(Kind.VALIDATION, "signing.bad_box", "box is x1,y1,x2,y2 in points", fields=[{"name": "box", "reason": "four numbers"}])
    return parts  # type: ignore[return-value]


# -- seals API ----------------------------------------------------------------------------------------


def _own_department(principal: Principal) -> str | None:
    """A department administrator (without a platform-wide role) sees their department's seals only."""
    if principal.has_role(Role.CA_ADMIN) or principal.has_role(Role.AUDITOR):
        return None
    if len(principal.department_ids) != 1:
        raise Problem(Kind.FORBIDDEN, "admin.no_department", "your operator record names no department")
    return next(iter(principal.department_ids))


@router.get("/api/v1/seals", tags=["signing"])
def list_seals(rt: RuntimeDep, principal: Operator, department: str | None = None) -> list[dict[str, Any]]:
    """Seals (operators): id, department, key label, certificate serial, allowed clients."""
    own = _own_department(principal)
    if own is not None and department not in (None, own):
        raise Problem(Kind.FORBIDDEN, "admin.other_department", "this belongs to another department")
    with rt.db.read() as db:
        return [s.as_dict() for s in service.list_seals(db, department_id=own or department)]


@router.get("/api/v1/seals/{seal_id}", tags=["signing"])
def show_seal(seal_id: str, rt: RuntimeDep, principal: Operator) -> dict[str, Any]:
    with rt.db.read() as db:
        view = service.get_seal(db, seal_id)
    own = _own_department(principal)
    if own is not None and view.department_id != own:
        raise Problem(Kind.FORBIDDEN, "admin.other_department", "this belongs to another department")
    return view.as_dict() | {"certificate": view.cert_pem}


@router.post(
    "/api/v1/seals/{seal_id}/pdf",
    tags=["signing"],
    response_class=Response,
    responses={200: {"content": {PDF: {}}, "description": "The sealed PDF; X-Document-Id and X-Verify-Url name its verification page"}},
    openapi_extra={"requestBody": {"required": True, "content": {PDF: {"schema": {"type": "string", "format": "binary"}}, "multipart/form-data": {"schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}}}}},
)
async def seal_pdf(
    seal_id: str,
    request: Request,
    rt: RuntimeDep,
    principal: SealUser,
    level: Annotated[str, Query(description="B-B | B-T | B-LT | B-LTA")] = pades.DEFAULT_LEVEL,
    certify: bool = False,
    docmdp: Annotated[int, Query(ge=1, le=3)] = 2,
    page: int = -1,
    box: Annotated[str | None, Query(description="x1,y1,x2,y2 in points")] = None,
    field: Annotated[str | None, Query(description="an existing empty signature field")] = None,
    visible: bool = True,
    reason: Annotated[str | None, Query(max_length=200)] = None,
    location: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Seal a PDF (raw ``application/pdf`` body or multipart field ``file``) at a PAdES level."""
    options = pades.PadesOptions(
        level=level, certify=certify, docmdp=docmdp, placement=pades.Placement(page=page, box=_box(box), field=field, visible=visible), reason=reason, location=location
    )
    data, _name, _fields, _ = await _upload(request, rt)

    def work() -> service.SealedPdf:
        with rt.db.transaction() as db:
            return service.seal_pdf(rt, db, principal.actor, seal_id=seal_id, pdf=data, options=options)

    sealed = await run_in_threadpool(work)
    return Response(
        sealed.pdf,
        media_type=PDF,
        headers={
            "X-Document-Id": sealed.document.id,
            "X-Verify-Url": sealed.verify_url,
            "X-Signature-Level": level,
            "Content-Disposition": f'attachment; filename="sealed-{sealed.document.id}.pdf"',
            "Cache-Control": "no-store",
        },
    )


@router.post("/api/v1/seals/{seal_id}/records", tags=["signing"])
async def seal_records(seal_id: str, request: Request, rt: RuntimeDep, principal: SealUser) -> JSONResponse:
    """Seal JSON records: ``{"record": {...}}`` or ``{"records": [...]}``, with ``formats``
    (``["jws"]`` default, ``"cms"`` for detached CAdES, both allowed), ``level`` (B-B | B-T) and
    ``detached`` (JWS with a detached payload)."""
    from core.web import json_body_limit

    body = await request.body()
    if len(body) > rt.settings.max_upload_bytes:
        raise Problem(Kind.TOO_LARGE, "signing.too_large", f"requests are limited to {rt.settings.max_upload_bytes} bytes")
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested past the decoder's limit
        raise Problem(Kind.INVALID_INPUT, "signing.bad_json", "the body is not JSON (or is nested too deep)") from None
    if not isinstance(doc, dict):
        raise Problem(Kind.INVALID_INPUT, "signing.bad_json", "the body is a JSON object with record or records")
    json_body_limit(doc)
    if "records" in doc:
        items = doc["records"]
        if not isinstance(items, list):
            raise Problem(Kind.VALIDATION, "signing.bad_records", "records is a list", fields=[{"name": "records", "reason": "not a list"}])
    elif "record" in doc:
        items = [doc["record"]]
    else:
        raise Problem(Kind.VALIDATION, "signing.bad_records", "send record or records", fields=[{"name": "records", "reason": "missing"}])
    formats = doc.get("formats", ["jws"])
    if isinstance(formats, str):
        formats = [formats]
    if not isinstance(formats, list) or not formats or any(f not in service.RECORD_FORMATS for f in formats) or len(set(formats)) != len(formats):
        raise Problem(Kind.VALIDATION, "signing.bad_record_format", "formats is a list of jws and/or cms", fields=[{"name": "formats", "reason": "unknown"}])
    level = doc.get("level", "B-B")
    detached = doc.get("detached", False)
    if not isinstance(level, str) or not isinstance(detached, bool):
        raise Problem(Kind.VALIDATION, "signing.bad_record_options", "level is a string, detached a boolean", fields=[{"name": "level", "reason": "type"}])

    def work() -> dict[str, list[service.SealedRecord]]:
        out = {}
        with rt.db.transaction() as db:
            for fmt in formats:
                out[fmt] = service.seal_records(rt, db, principal.actor, seal_id=seal_id, records_=items, format=fmt, level=level, detached=detached)
        return out

    sealed = await run_in_threadpool(work)
    results = [{fmt: sealed[fmt][i].as_dict() for fmt in formats} for i in range(len(items))]
    return JSONResponse({"seal_id": seal_id, "level": level, "count": len(items), "results": results}, headers={"Cache-Control": "no-store"})


@router.post("/api/v1/verifications", tags=["signing"])
async def verifications(request: Request, rt: RuntimeDep, principal: Verifier) -> JSONResponse:
    """Verify a PDF, JWS or CMS signature (raw body, or multipart ``file`` + optional ``detached``):
    the report as JSON (ETSI TS 119 102-1 indications per signature). Rate limited per client
    (the token's subject; area ``verification``), before the upload is read."""
    hit(rt, VERIFY_PER_CLIENT, principal.actor.ref)
    data, name, _fields, detached = await _upload(request, rt)
    report = await run_in_threadpool(lambda: service.verify_document(rt, data, name=name, detached=detached))
    metrics.VERIFICATIONS.labels(indication=report.indication.value).inc()
    if _wants_pdf(request):
        return await _pdf_report(report, _lang(request))
    return JSONResponse(report.as_dict(), headers={"Cache-Control": "no-store"})


def _wants_pdf(request: Request) -> bool:
    """``?format=pdf``, or an ``Accept`` header that asks for a PDF before JSON."""
    if request.query_params.get("format") == "pdf":
        return True
    accept = request.headers.get("accept", "")
    return accept.split(",")[0].strip().startswith(PDF)


async def _pdf_report(report: Report, lang: str) -> Response:
    from signing import report_pdf

    body = await run_in_threadpool(report_pdf.render, report, lang=lang)
    name = f"verification-{report.document.sha256[:12]}.pdf"
    return Response(body, media_type=PDF, headers={"Cache-Control": "no-store", "Content-Disposition": f'attachment; filename="{name}"'})


# -- public verification page ------------------------------------------------------------------------


def _lang(request: Request) -> str:
    return i18n.pick(request.query_params.get("lang"), request.headers.get("accept-language"))


def _page(request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    lang = _lang(request)
    limit_mb = request.app.state.runtime.settings.max_upload_bytes // (1024 * 1024)
    html = i18n.render(template, lang=lang, path=request.url.path, limit_mb=limit_mb, **context)
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store", "Content-Language": lang})


def _page_limit(request: Request) -> None:
    rt = request.app.state.runtime
    hit(rt, VERIFY_PAGE_PER_IP, per_ip(request, rt))


@router.get("/verify/assets/verify.css", tags=["verification page"], include_in_schema=False)
def verify_css() -> Response:
    return Response((STATIC / "verify.css").read_bytes(), media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})


@router.get("/verify", tags=["verification page"], response_class=HTMLResponse)
def verify_form(request: Request) -> HTMLResponse:
    """The upload form (anyone, no login)."""
    return _page(request, "verify_form.html", document=None, error=None)


@router.post("/verify", tags=["verification page"], response_class=HTMLResponse)
async def verify_upload(request: Request, rt: RuntimeDep) -> HTMLResponse:
    """Upload a document (multipart ``file``, optional ``document_id`` from the QR page) → report."""
    try:
        _page_limit(request)
        data, name, fields, detached = await _upload(request, rt)
        expected = fields.get("document_id") or None
        report = await run_in_threadpool(lambda: service.verify_document(rt, data, name=name, detached=detached))
        metrics.VERIFICATIONS.labels(indication=report.indication.value).inc()
    except Problem as exc:
        status = exc.status if exc.status < 500 else 503
        return _page(request, "verify_form.html", status=status, document=None, error=exc)
    if _wants_pdf(request):
        return await _pdf_report(report, _lang(request))
    return _page(request, "verify_report.html", report=report, expected=expected, registered=None)


@router.get("/verify/{document_id}", tags=["verification page"], response_class=HTMLResponse)
def verify_link(document_id: str, request: Request, rt: RuntimeDep) -> HTMLResponse:
    """The QR link printed on a sealed PDF: what was sealed here (seal, time, fingerprint) and a
    form to check one's own copy against it."""
    try:
        _page_limit(request)
        if not 8 <= len(document_id) <= 32 or not all(c.isalnum() or c in "-_" for c in document_id):
            raise Problem(Kind.NOT_FOUND, "verify.document_not_found", "no document with this verification code was sealed here")
        with rt.db.replica_read() as db:  # public page: the read replica serves it when there is one
            document = service.registered_document(db, document_id)
    except Problem as exc:
        return _page(request, "verify_form.html", status=exc.status, document=None, error=exc)
    return _page(request, "verify_form.html", document=document, error=None)


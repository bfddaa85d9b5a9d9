"""HTTP plumbing shared by every package's router: problem documents, request ids, guards.

``install(app)`` registers the problem handlers once for the whole app, including the framework's
own 404/405/422, so every error a client sees is RFC 9457 ``application/problem+json``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core import metrics
from core.errors import Kind, Problem, from_hsm
from core.logs import request_id_var
from core.runtime import Runtime
from core.security import Principal, Role, bearer_token, check_access
from hsm.errors import HsmError

log = logging.getLogger("eauth.web")

PROBLEM_JSON = "application/problem+json"

_STATUS_KINDS = {
    400: (Kind.INVALID_INPUT, "http.bad_request"),
    401: (Kind.UNAUTHENTICATED, "http.unauthenticated"),
    403: (Kind.FORBIDDEN, "http.forbidden"),
    404: (Kind.NOT_FOUND, "http.not_found"),
    405: (Kind.METHOD_NOT_ALLOWED, "http.method_not_allowed"),
    408: (Kind.REQUEST_TIMEOUT, "http.request_timeout"),
    409: (Kind.CONFLICT, "http.conflict"),
    413: (Kind.TOO_LARGE, "http.too_large"),
    415: (Kind.UNSUPPORTED_MEDIA_TYPE, "http.unsupported_media_type"),
    422: (Kind.VALIDATION, "http.validation"),
    429: (Kind.RATE_LIMITED, "http.rate_limited"),
    503: (Kind.UNAVAILABLE, "http.unavailable"),
}


def problem_response(problem: Problem, request: Request | None = None) -> JSONResponse:
    metrics.count_problem(problem.status, problem.code)
    body = problem.to_dict(
        instance=request.url.path if request is not None else None,
        correlation_id=request_id_var.get() if problem.kind is Kind.INTERNAL else None,
    )
    return JSONResponse(body, status_code=problem.status, media_type=PROBLEM_JSON, headers=problem.headers or None)


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    if exc.kind.status >= 500:
        log.warning("problem %s: %s", exc.code, exc.detail)
    return problem_response(exc, request)


async def _on_hsm(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HsmError)
    log.error("hsm failure %s: %s", exc.kind.value, exc.message)
    return problem_response(from_hsm(exc), request)


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        fields.append({"name": ".".join(loc[1:] if len(loc) > 1 else loc), "in": loc[0] if loc else "body", "reason": err.get("msg", "invalid")})
    problem = Problem(Kind.VALIDATION, "request.invalid_fields", "some fields are missing or invalid", fields=fields)
    return problem_response(problem, request)


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kind, code = _STATUS_KINDS.get(exc.status_code, (Kind.INVALID_INPUT if exc.status_code < 500 else Kind.INTERNAL, f"http.{exc.status_code}"))
    detail = exc.detail if isinstance(exc.detail, str) else kind.title
    problem = Problem(kind, code, detail, headers=dict(exc.headers or {}))
    response = problem_response(problem, request)
    response.status_code = exc.status_code
    return response


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    rid = request_id_var.get()
    log.exception("unhandled error", extra={"path": request.url.path})
    problem = Problem(Kind.INTERNAL, "internal.unexpected", f"an internal error occurred; quote correlation id {rid}")
    return problem_response(problem, request)


class RequestContextMiddleware:
    """Request id (``X-Request-ID`` in and out) and a hard cap on request body size."""

    def __init__(self, app: ASGIApp, *, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = None
        declared = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id" and 8 <= len(value) <= 64 and value.isascii():
                rid = value.decode()
            elif name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
        rid = rid or secrets.token_hex(8)
        token = request_id_var.set(rid)
        try:
            if declared is not None and (declared < 0 or declared > self.max_body):
                problem = Problem(Kind.TOO_LARGE, "request.too_large", f"request bodies are limited to {self.max_body} bytes")
                response = problem_response(problem)
                await response(scope, receive, send)
                return
            received = 0
            limit = self.max_body

            async def limited_receive() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        raise BodyTooLarge(limit)
                return message

            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    headers = list(message.get("headers", []))
                    headers.append((b"x-request-id", rid.encode()))
                    message = {**message, "headers": headers}
                await send(message)

            await self.app(scope, limited_receive, send_with_id)
        finally:
            request_id_var.reset(token)


class BodyTooLarge(StarletteHTTPException):
    """A streamed (chunked) body passed the limit. An ``HTTPException`` so that FastAPI's body
    reading lets it through (it turns other exceptions into a generic 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request bodies are limited to {limit} bytes", headers={"Connection": "close"})


async def _on_body_too_large(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BodyTooLarge)
    return problem_response(Problem(Kind.TOO_LARGE, "request.too_large", str(exc.detail), headers={"Connection": "close"}), request)


class BodyTimeout(StarletteHTTPException):
    """The request body did not arrive in time. An ``HTTPException`` so that FastAPI's body reading
    lets it through (it turns other exceptions into a generic 400)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"the request body did not arrive within {seconds:.0f} s", headers={"Connection": "close"})


async def _on_body_timeout(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BodyTimeout)
    problem = Problem(Kind.REQUEST_TIMEOUT, "request.body_timeout", str(exc.detail), headers={"Connection": "close"})
    return problem_response(problem, request)


class SlowBodyGuard:
    """Cut off request bodies that trickle in (slow-loris): a body must arrive within ``initial``
    seconds, plus one second for every ``min_rate`` bytes received (Apache mod_reqtimeout's
    ``body=20,MinRate=500``), so a large upload on a slow but honest link still gets through while a
    client sending a byte a second holds a worker for ``initial`` seconds at most.

    uvicorn has no body timeout of its own (``timeout_keep_alive`` only covers idle connections).
    Installed outermost (:func:`guard_slow_bodies`) so the raw ASGI fast paths (OCSP, TSA) are covered
    too. On timeout the caller gets a 408 problem and the connection is closed.
    """

    def __init__(self, app: ASGIApp, *, initial: float, min_rate: int = 500) -> None:
        self.app = app
        self.initial = initial
        self.min_rate = min_rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        start = loop.time()
        received = 0
        body_done = False
        timed_out = False
        response_started = False

        async def timed_receive() -> Message:
            nonlocal received, body_done, timed_out
            if body_done:  # after the body: waiting for a disconnect is not bounded here
                return await receive()
            remaining = start + self.initial + received / self.min_rate - loop.time()
            try:
                message = await asyncio.wait_for(receive(), timeout=max(0.0, remaining))
            except TimeoutError:
                timed_out = True
                raise BodyTimeout(loop.time() - start) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
            else:
                body_done = True
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                if timed_out:  # whatever the route made of the timeout, the rest of the body is not read: close
                    headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
                    message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, timed_receive, tracking_send)
        except BodyTimeout as exc:
            # Raised through a raw ASGI layer (no exception handler in between): answer here, unless
            # a response is already on its way (then returning early makes uvicorn drop the connection).
            if response_started:
                return
            problem = Problem(Kind.REQUEST_TIMEOUT, "request.body_timeout", str(exc.detail), headers={"Connection": "close"})
            await problem_response(problem)(scope, receive, send)


def guard_slow_bodies(app: FastAPI, *, initial: float, min_rate: int = 500) -> None:
    """Add :class:`SlowBodyGuard` — call it after every other ``add_middleware`` (outermost)."""
    app.add_middleware(SlowBodyGuard, initial=initial, min_rate=min_rate)


# -- answers given by the HTTP protocol itself ------------------------------------------------------

EarlyResult = tuple[int, list[tuple[bytes, bytes]], bytes]


@dataclass(frozen=True, slots=True)
class EarlyAnswer:
    """A route the HTTP protocol (``eauth.http_protocol``) may answer itself, before any ASGI layer,
    once the whole request is in hand: ``answer(method, raw_path, headers, body)`` returns
    (status, headers, body) — headers with ``content-length`` — or ``None`` to leave the request to
    the application as usual. It runs on the event loop: no I/O, no waiting, no exceptions expected
    (one is logged and the application answers instead). Only requests complete in one read get
    here; a body still arriving goes through the application and its guards (``SlowBodyGuard``).
    For hot, read-only, cacheable answers (OCSP): every ASGI layer is skipped, so nothing that
    needs the request id, the security headers or the HTTP metrics belongs here."""

    prefix: bytes  # raw path prefix
    methods: frozenset[str]
    max_body: int
    answer: Callable[[str, bytes, list[tuple[bytes, bytes]], bytes], EarlyResult | None]


async def read_capped_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body of an ASGI request, for the fast paths that sit in front of the framework
    (OCSP, TSA); ``None`` once it passes ``limit`` bytes (the rest is not read, the caller answers
    with its protocol's own rejection)."""
    data = b""
    more = True
    while more:
        message = await receive()
        data += message.get("body", b"")
        more = message.get("more_body", False)
        if len(data) > limit:
            return None
    return data


def add_early_answer(app: FastAPI, early: EarlyAnswer) -> None:
    app.state.early_answers = (*getattr(app.state, "early_answers", ()), early)


def early_answers(app: object) -> tuple[EarlyAnswer, ...]:
    """The early answers registered on ``app`` or on the app an ASGI wrapper holds (``.app``)."""
    for _ in range(8):
        state = getattr(app, "state", None)
        found = getattr(state, "early_answers", None) if state is not None else None
        if found is not None:
            return tuple(found)
        app = getattr(app, "app", None)
        if app is None:
            break
    return ()


def install(app: FastAPI, *, max_body: int) -> None:
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(BodyTimeout, _on_body_timeout)
    app.add_exception_handler(BodyTooLarge, _on_body_too_large)
    app.add_exception_handler(HsmError, _on_hsm)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)
    app.add_middleware(RequestContextMiddleware, max_body=max_body)


# -- dependencies --------------------------------------------------------------------------------


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def authenticate(request: Request) -> Principal:
    """The verified caller of an API request (Bearer access token from ``auth_service``)."""
    rt: Runtime = request.app.state.runtime
    token = bearer_token(request.headers.get("authorization"))
    if rt.token_verifier is None:
        raise Problem(Kind.UNAUTHENTICATED, "auth.no_verifier", "access tokens cannot be verified by this process")
    return rt.token_verifier(token)


def require(
    *,
    roles: set[Role] | frozenset[Role] = frozenset(),
    scopes: set[str] | frozenset[str] = frozenset(),
    min_acr: str | None = None,
) -> Callable[..., Principal]:
    """A route guard: ``Annotated[Principal, Depends(require(roles={Role.APPROVER}))]``."""

    def guard(request: Request) -> Principal:
        principal = authenticate(request)
        check_access(principal, roles=roles, scopes=scopes, min_acr=min_acr)
        request.state.principal = principal
        return principal

    guard.eauth_guard = {"roles": sorted(r.value for r in roles), "scopes": sorted(scopes), "min_acr": min_acr}  # type: ignore[attr-defined]
    return guard


@functools.lru_cache(maxsize=8)
def _networks(trusted_proxies: tuple[str, ...]) -> tuple[Any, ...]:
    from ipaddress import ip_network

    return tuple(ip_network(n, strict=False) for n in trusted_proxies)


def client_ip(request: Request, trusted_proxies: list[str]) -> str:
    """The caller's address, honouring ``X-Forwarded-For`` only from configured proxies (the
    networks are parsed once per setting, not per request)."""
    from ipaddress import ip_address

    peer = request.client.host if request.client else ""
    try:
        peer_ip = ip_address(peer)
    except ValueError:
        return peer
    if any(peer_ip in net for net in _networks(tuple(trusted_proxies))):
        forwarded = request.headers.get("x-forwarded-for")
        if forwarded:
            return forwarded.split(",")[-1].strip()
    return peer


def json_body_limit(data: Any, *, max_depth: int = 32) -> None:
    """Refuse pathologically nested JSON (a cheap DoS on recursive code)."""

    def depth(value: Any, level: int) -> None:
        if level > max_depth:
            raise Problem(Kind.INVALID_INPUT, "request.too_deep", f"JSON nesting deeper than {max_depth}")
        if isinstance(value, dict):
            for v in value.values():
                depth(v, level + 1)
        elif isinstance(value, list):
            for v in value:
                depth(v, level + 1)

    depth(data, 0)

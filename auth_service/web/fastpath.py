"""ASGI fast path for the token endpoint (``POST /oidc/token``) and ``GET /oidc/authorize``.

The token endpoint is the hot path of every relying party and department system (client_credentials
for each API call batch, code redemption, refresh). Going through the framework costs more than the
work itself: FastAPI walks every included router of the platform to match the path, builds a
``Request`` and resolves dependencies. This layer answers ``POST /oidc/token`` before all that, with
the very same handler (``protocol._token``) run in the thread pool, and keeps what the layers it
skips would have added: ``Cache-Control: no-store`` (RFC 6749 §5.1), the security headers, an
``X-Request-Id``, the HTTP metrics, and RFC 9457 problems for non-OAuth failures (HSM unavailable…).
``GET /oidc/authorize`` — the other half of every sign-in — goes the same way through its own
handler (``protocol.authorize_get``) with the platform's security headers. Everything else passes
through untouched (the same pattern as the CA's OCSP fast path).
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth_service.oidc.errors import OAuthError
from auth_service.web.browser import CSP_TEMPLATE, MAX_FORM_BYTES, DuplicateField, parse_form
from core import metrics
from core.errors import Kind, Problem, from_hsm
from core.logs import request_id_var
from core.runtime import Runtime
from hsm.errors import HsmError

log = logging.getLogger("eauth.web")

PATH = "/oidc/token"
AUTHORIZE = "/oidc/authorize"
_JSON = (b"content-type", b"application/json")
_COMMON = [
    (b"cache-control", b"no-store"),
    (b"pragma", b"no-cache"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
]


class _Headers:
    """The request's ``Authorization`` and ``Content-Type`` — what the token endpoint reads."""

    def __init__(self, scope: Scope) -> None:
        self.authorization: str | None = None
        self.content_type: str | None = None
        self.request_id: str | None = None
        self.declared: int | None = None
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                self.authorization = value.decode("latin-1")
            elif name == b"content-type":
                self.content_type = value.decode("latin-1")
            elif name == b"x-request-id" and 8 <= len(value) <= 64 and value.isascii():
                self.request_id = value.decode()
            elif name == b"content-length":
                try:
                    self.declared = int(value)
                except ValueError:
                    self.declared = -1

    def get(self, name: str, default: str | None = None) -> str | None:
        # protocol._token asks request.headers.get("authorization")
        return self.authorization if name.lower() == "authorization" else default


class _RequestView:
    """The little of a Starlette ``Request`` that ``protocol._token`` uses."""

    def __init__(self, headers: _Headers) -> None:
        self.headers = headers


class TokenFastPath:
    def __init__(self, app: ASGIApp, *, rt: Runtime) -> None:
        self.app = app
        self.rt = rt
        # what eauth.security_headers adds to every response (it sits behind this layer)
        self._security = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"content-security-policy", CSP_TEMPLATE.format(extra="").encode()),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]
        if rt.settings.public_url.startswith("https://"):
            self._security.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == AUTHORIZE and scope["method"] == "GET":
            await self._authorize(scope, receive, send)
            return
        if scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        headers = _Headers(scope)
        rid = headers.request_id or secrets.token_hex(8)
        reset = request_id_var.set(rid)
        status = 500
        try:
            status, body, extra, media = await self._answer(headers, receive)
            out = [(b"content-type", media.encode()), (b"content-length", str(len(body)).encode()), *_COMMON, (b"x-request-id", rid.encode())]
            out += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items() if k.lower() not in ("cache-control", "pragma")]
            await send({"type": "http.response.start", "status": status, "headers": out})
            await send({"type": "http.response.body", "body": body})
        finally:
            request_id_var.reset(reset)
            metrics.HTTP_REQUESTS.labels(method="POST", route=PATH, status=str(status)).inc()
            metrics.HTTP_LATENCY.labels(method="POST", route=PATH).observe(time.perf_counter() - start)

    async def _authorize(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /oidc/authorize`` through the same handler as the routed endpoint, with the
        platform's security headers (the pages' CSP among them) added on the way out."""
        from starlette.requests import Request

        from auth_service.web.protocol import authorize_get

        start = time.perf_counter()
        headers = _Headers(scope)
        rid = headers.request_id or secrets.token_hex(8)
        reset = request_id_var.set(rid)
        status = 500
        security = self._security

        async def send_secured(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in security if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra, (b"x-request-id", rid.encode())]}
            await send(message)

        try:
            try:
                response = await run_in_threadpool(authorize_get, Request(scope, receive))
            except HsmError as exc:
                response = _problem_response(*self._problem(from_hsm(exc)))
            except Problem as exc:
                response = _problem_response(*self._problem(exc, instance=AUTHORIZE))
            await response(scope, receive, send_secured)
        finally:
            request_id_var.reset(reset)
            metrics.HTTP_REQUESTS.labels(method="GET", route=AUTHORIZE, status=str(status)).inc()
            metrics.HTTP_LATENCY.labels(method="GET", route=AUTHORIZE).observe(time.perf_counter() - start)

    async def _answer(self, headers: _Headers, receive: Receive) -> tuple[int, bytes, dict[str, str], str]:
        from auth_service.web.protocol import _token

        try:
            if headers.declared is not None and (headers.declared < 0 or headers.declared > MAX_FORM_BYTES):
                raise OAuthError("invalid_request", f"forms are limited to {MAX_FORM_BYTES} bytes", status=413)
            body = b""
            more = True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise OAuthError("invalid_request", "the client went away")
                body += message.get("body", b"")
                more = message.get("more_body", False)
                if len(body) > MAX_FORM_BYTES:
                    raise OAuthError("invalid_request", f"forms are limited to {MAX_FORM_BYTES} bytes", status=413)
            try:
                form = parse_form(body, headers.content_type)
            except DuplicateField as exc:
                raise OAuthError("invalid_request", f"parameter {exc.name!r} is repeated") from None
            except Problem as exc:
                raise OAuthError("invalid_request", exc.detail, status=exc.status) from None
            response = await run_in_threadpool(_token, self.rt, _RequestView(headers), form)
            return response.status_code, bytes(response.body), {}, "application/json"
        except OAuthError as exc:
            return exc.status, _dumps(exc.body()), exc.headers, "application/json"
        except HsmError as exc:
            return self._problem(from_hsm(exc))
        except Problem as exc:
            if exc.status < 500:  # a 4xx from below (e.g. db.invalid_value): RFC 6749 error JSON, as the routed endpoint answers
                error = OAuthError("invalid_client" if exc.status == 401 else "invalid_request", exc.detail, status=exc.status, headers=exc.headers)
                return error.status, _dumps(error.body()), error.headers, "application/json"
            return self._problem(exc)

    def _problem(self, exc: Problem, *, instance: str = PATH) -> tuple[int, bytes, dict[str, str], str]:
        """The answer core.web would give (RFC 9457), for failures that are not OAuth errors."""
        if exc.kind.status >= 500:
            log.warning("problem %s: %s", exc.code, exc.detail)
        metrics.count_problem(exc.status, exc.code)
        body = exc.to_dict(instance=instance, correlation_id=request_id_var.get() if exc.kind is Kind.INTERNAL else None)
        return exc.status, _dumps(body), dict(exc.headers or {}), "application/problem+json"


def _problem_response(status: int, body: bytes, headers: dict[str, str], media: str) -> Response:
    return Response(body, status_code=status, headers=headers, media_type=media)


def _dumps(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def install(app: Any, rt: Runtime) -> None:
    app.add_middleware(TokenFastPath, rt=rt)

"""The HTTP protocol of ``eauth serve``: uvicorn's (httptools) with a deadline on request headers,
behind a lean first stage that answers the hottest read-only requests itself.

**Header deadline** (:class:`HeaderDeadlineProtocol`). uvicorn bounds only the idle time *between*
requests (``timeout_keep_alive``); a client that opens a connection and sends nothing, or sends its
headers a byte at a time (slow-loris), holds the connection for ever. Bodies are bounded in the app
(``core.web.SlowBodyGuard``); headers never reach the app, so the bound lives here: a connection
must deliver a request's complete headers within ``header_timeout`` seconds of opening (or of the
request's first byte, for the next request on a kept-alive connection), else it is closed. nginx in
front does the same (``client_header_timeout``); this keeps ``eauth serve`` safe on its own.

**Early answers** (:class:`EarlyAnswerProtocol`, the class ``eauth serve`` gives uvicorn). Every
connection starts here. The request is parsed with the same parser uvicorn uses (httptools /
llhttp); when it is complete within one read, alone (nothing pipelined behind it) and on a route
registered as a ``core.web.EarlyAnswer`` (the OCSP responder's cache hits), the route's ``answer``
gives the response and it is written at once: no per-connection uvicorn state, no ASGI scope, task
or middleware chain, one write. Anything else — another route, a cache miss, a body still
arriving, a parse error, an upgrade — hands the connection over to :class:`HeaderDeadlineProtocol`
with every byte of the current request replayed to it, so from there on it is uvicorn's ordinary
connection (the body guards, the problem documents, keep-alive and pipelining as usual). uvicorn's
per-connection and per-request work is most of what a pre-signed OCSP response costs on the
server (docs/performance.md, OCSP responder).

Relies on uvicorn's httptools protocol (``on_message_begin``, ``on_headers_complete``, the
``ServerState`` it shares with the server) and on httptools' parser, pinned with uvicorn in
requirements.lock and exercised by tests/ca/test_ocsp_protocol.py and tests/reliability/test_limits.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from core.web import EarlyAnswer, early_answers

HEADER_TIMEOUT = 10.0
MAX_HEAD = 64 * 1024  # bytes of a request kept here before the headers end (then uvicorn's)

log = logging.getLogger("eauth.web")


class HeaderDeadlineProtocol(HttpToolsProtocol):
    header_timeout: float = HEADER_TIMEOUT

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._header_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm()

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_overdue)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_overdue(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Any) -> None:
        self._disarm()
        super().connection_lost(exc)


class _ServerInfo:
    """What the early stage needs from the uvicorn config, worked out once per server."""

    def __init__(self, config: Any) -> None:
        if not config.loaded:
            config.load()
        self.early: tuple[EarlyAnswer, ...] = () if config.root_path else early_answers(config.loaded_app)
        self.keep_alive_timeout: float = config.timeout_keep_alive
        self.access_logger = logging.getLogger("uvicorn.access")
        self.access_log = self.access_logger.hasHandlers()
        self.answered = 0  # requests answered early (tests tell the two paths apart by it)


def server_info(config: Any) -> _ServerInfo:
    info = config.__dict__.get("_eauth_server_info")
    if info is None:
        info = config._eauth_server_info = _ServerInfo(config)
    return info


class EarlyAnswerProtocol(asyncio.Protocol):
    """First stage of every connection (module docstring): answers complete requests on early-answer
    routes itself, hands everything else to :class:`HeaderDeadlineProtocol`."""

    header_timeout: float = HEADER_TIMEOUT
    full_protocol: type[HeaderDeadlineProtocol] = HeaderDeadlineProtocol

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any], _loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.config = config
        self.server_state = server_state
        self.app_state = app_state
        self.loop = _loop or asyncio.get_event_loop()
        self.info = server_info(config)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser: Any = None
        self.timer: asyncio.TimerHandle | None = None  # header deadline, or keep-alive idle time
        self.idle = False  # between two requests of a kept-alive connection
        self.buf = b""  # the bytes of the current request
        self._begin()

    def _begin(self) -> None:
        self.messages = 0
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""
        self.head_done = False
        self.complete = False
        self.method = ""
        self.keep_alive = False
        self.http_version = "1.1"

    # -- asyncio.Protocol ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport
        if not self.info.early:
            self._hand_over()
            return
        self.server_state.connections.add(self)
        self.parser = httptools.HttpRequestParser(self)
        with contextlib.suppress(AttributeError):  # httptools < 0.6.3
            self.parser.set_dangerous_leniencies(lenient_data_after_close=True)  # as uvicorn sets it
        self._set_timer(self.header_timeout)

    def data_received(self, data: bytes) -> None:
        if self.parser is None:
            return
        self.buf += data
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            self._hand_over()  # uvicorn answers 400 (or upgrades) from the same bytes
            return
        if self.messages > 1 or (self.head_done and not self.complete) or len(self.buf) > MAX_HEAD:
            self._hand_over()  # pipelined, or a body still arriving (its guards are the app's)
            return
        if not self.complete:
            return  # the headers are still arriving (the header deadline runs)
        if not self._answer():
            self._hand_over()

    def eof_received(self) -> bool | None:
        return None  # close

    def connection_lost(self, exc: Exception | None) -> None:
        self.server_state.connections.discard(self)
        self._set_timer(None)
        self.parser = None

    def pause_writing(self) -> None:
        self.transport.pause_reading()  # a client not reading its answers sends no more requests

    def resume_writing(self) -> None:
        self.transport.resume_reading()

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: nothing is ever half-answered here."""
        self.transport.close()

    # -- httptools callbacks ------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.messages += 1
        if self.idle:  # the next request of a kept-alive connection: its headers have a deadline
            self.idle = False
            self._set_timer(self.header_timeout)

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.head_done = True
        self.method = self.parser.get_method().decode("ascii")
        self.http_version = self.parser.get_http_version()
        self.keep_alive = self.http_version != "1.0" and self.parser.should_keep_alive()
        if self.messages == 1:
            self._set_timer(None)

    def on_body(self, body: bytes) -> None:
        if len(self.body) <= MAX_HEAD:
            self.body += body

    def on_message_complete(self) -> None:
        self.complete = True

    # -- the two ways on ----------------------------------------------------------------------------

    def _set_timer(self, seconds: float | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if seconds is not None:
            self.timer = self.loop.call_later(seconds, self._expire)

    def _expire(self) -> None:
        self.timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def _answer(self) -> bool:
        method = self.method
        try:
            raw_path = httptools.parse_url(self.url).path
        except httptools.HttpParserInvalidURLError:
            return False
        for early in self.info.early:
            if raw_path.startswith(early.prefix) and method in early.methods:
                break
        else:
            return False
        if len(self.body) > early.max_body:
            return False
        try:
            result = early.answer(method, raw_path, self.headers, self.body)
        except Exception:  # noqa: BLE001 - logged; the application answers the request instead
            log.exception("early answer for %s failed", early.prefix.decode("latin-1"))
            return False
        if result is None:
            return False
        status, headers, body = result
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:  # date, server (as uvicorn sends them)
            content += [name, b": ", value, b"\r\n"]
        for name, value in headers:
            content += [name, b": ", value, b"\r\n"]
        if not self.keep_alive:
            content.append(b"connection: close\r\n")
        content.append(b"\r\n")
        if method != "HEAD":
            content.append(body)
        self.transport.write(b"".join(content))
        self.server_state.total_requests += 1
        self.info.answered += 1
        if self.info.access_log:
            peer = self.transport.get_extra_info("peername")
            client = "%s:%d" % tuple(peer[:2]) if isinstance(peer, tuple) else "-"
            self.info.access_logger.info('%s - "%s %s HTTP/%s" %d', client, method, raw_path.decode("latin-1"), self.http_version, status)
        if not self.keep_alive:
            self.transport.close()
            return True
        self.buf = b""
        self._begin()
        self.idle = True
        self._set_timer(self.info.keep_alive_timeout)  # closed if no request begins in time
        return True

    def _hand_over(self) -> None:
        """From here on the connection is uvicorn's: the current request's bytes replayed to it."""
        self._set_timer(None)
        self.server_state.connections.discard(self)
        self.parser = None
        buf, self.buf = self.buf, b""
        protocol = self.full_protocol(config=self.config, server_state=self.server_state, app_state=self.app_state, _loop=self.loop)
        protocol.header_timeout = self.header_timeout
        self.transport.set_protocol(protocol)
        protocol.connection_made(self.transport)
        if buf:
            protocol.data_received(buf)


def tune_listener(sock: socket.socket, *, defer_seconds: int = int(HEADER_TIMEOUT)) -> None:
    """Socket options for ``eauth serve``'s listening socket, set before it listens.

    ``TCP_DEFER_ACCEPT`` (Linux; nginx's ``listen … deferred``, with the header deadline as its
    period the way nginx uses ``client_header_timeout``): a connection reaches the accept queue when
    its first bytes arrive, not when the handshake completes. The worker then wakes once per
    connection, with the request already readable, instead of once to accept and again when the
    request arrives; and connections that never send anything (port probes, idle pre-connects,
    the start of a slow-loris) cost no worker anything until the period ends, after which they are
    accepted and meet the header deadline as before. Measured on the OCSP benchmark (one connection
    per request): ≈ 2 µs less CPU per answer in the server and ≈ 3 µs less in the client
    (docs/performance.md, OCSP responder). Where the option does not exist, nothing is set."""
    option = getattr(socket, "TCP_DEFER_ACCEPT", None)
    if option is not None and sock.family in (socket.AF_INET, socket.AF_INET6) and defer_seconds > 0:
        sock.setsockopt(socket.IPPROTO_TCP, option, defer_seconds)

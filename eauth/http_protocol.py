"""uvicorn's HTTP protocol (httptools) with a deadline on request headers.

uvicorn bounds only the idle time *between* requests (``timeout_keep_alive``); a client that opens a
connection and sends nothing, or sends its headers a byte at a time (slow-loris), holds the
connection for ever. Bodies are bounded in the app (``core.web.SlowBodyGuard``); headers never reach
the app, so the bound lives here: a connection must deliver a request's complete headers within
``header_timeout`` seconds of opening (or of the request's first byte, for the next request on a
kept-alive connection), else it is closed. nginx in front does the same (``client_header_timeout``);
this keeps ``eauth serve`` safe on its own.

Relies on uvicorn's httptools protocol callbacks (``on_message_begin``, ``on_headers_complete``),
pinned with uvicorn in requirements.lock.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEADER_TIMEOUT = 10.0


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

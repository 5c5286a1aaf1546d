"""Connection limits that uvicorn lacks: a connection must deliver its request's headers
within a bounded time.

uvicorn closes a kept-alive connection that stays idle after a response, but it waits for
ever on one that was opened and never sends a complete request (or trickles its headers, a
"slowloris"), so idle sockets could pile up until the process runs out of descriptors. This
protocol arms a timer whenever the connection waits for a request's headers and closes the
connection when it fires. Slow bodies are bounded by `BodyLimitMiddleware`, and the number
of requests in progress by `ConcurrencyLimitMiddleware` (app/core/middleware.py).
"""

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.core.config import get_settings


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (its parser is C; h11's pure-Python one cost a few per
    cent of a short request's time: docs/performance.md) with a deadline for headers."""

    # Seconds a connection may take to send a request's headers; None: from the settings.
    header_timeout_seconds: float | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timeout = self.header_timeout_seconds or get_settings().header_timeout_seconds
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        # A request has begun (on a kept-alive connection too): its headers must follow.
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Between requests uvicorn's keep-alive timeout applies.
        self._disarm_header_timer()

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self._header_timeout, self._headers_late)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()

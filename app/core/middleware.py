"""Pure ASGI middleware: body size and read-time limits, a concurrency limit, security
headers, request id and access log."""

import asyncio
import json
import time
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import PROBLEM_JSON, DomainError, Overloaded, PayloadTooLarge, RequestTimeout
from app.core.ids import new_id
from app.core.metrics import describe_route, record_request

log = structlog.get_logger("habeas.access")

# An API that serves case files is never cached anywhere and never framed.
_SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"cache-control", b"no-store"),
    (b"pragma", b"no-cache"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"interest-cohort=()"),
]
_API_CSP = b"default-src 'none'; frame-ancestors 'none'"
# The bundled Swagger UI needs its own scripts and styles, and nothing from elsewhere.
_DOCS_CSP = (
    b"default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
)


class BodyLimitMiddleware:
    """Refuse bodies over `max_bytes` with a 413 before the application sees them, and
    bodies that arrive slower than one chunk per `read_timeout` seconds with a 408.

    A declared Content-Length is checked up front (servers deliver no more than it says).
    A body without one (chunked) is read here, up to the limit, and then replayed.
    """

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, read_timeout: float, total_timeout: float
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.read_timeout = read_timeout
        self.total_timeout = total_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, send)
            return
        late = SlowBody(receive, self.read_timeout, self.total_timeout)
        if declared is None:
            # Chunked: read here, up to the limit, then replayed to the application.
            body = await self._read_limited(late)
            if body is None:
                await (late.answer(scope, send) if late.timed_out else self._refuse(scope, send))
                return
            receive = _replaying(body, receive)
        else:
            receive = late.receive
        await self.app(scope, receive, late.guard(send))
        if late.timed_out:
            await late.answer(scope, send)

    async def _read_limited(self, late: "SlowBody") -> bytes | None:
        """The whole body, or None when it is too large or too slow."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await late.receive()
            if late.timed_out:
                return None
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        await _send_problem(
            scope,
            send,
            PayloadTooLarge(
                f"The body may be at most {self.max_bytes} bytes.", max_bytes=self.max_bytes
            ),
        )


class SlowBody:
    """A body whose chunks must each arrive within `chunk_timeout` seconds, and all of it
    within `total_timeout` (else a trickle of one byte per chunk timeout could hold a
    request slot for ever). When it is late, the application is told the client left (so
    it stops), whatever it answers is dropped, and the client gets a 408 instead."""

    def __init__(self, receive: Receive, chunk_timeout: float, total_timeout: float) -> None:
        self._receive = receive
        self._chunk_timeout = chunk_timeout
        self._deadline = time.monotonic() + total_timeout
        self._complete = False
        self.timed_out = False

    async def receive(self) -> Message:
        if self._complete or self.timed_out:
            # Once the body is in, later calls wait for a disconnect, as long as they like.
            return await self._receive()
        wait = min(self._chunk_timeout, max(0.0, self._deadline - time.monotonic()))
        try:
            message = await asyncio.wait_for(self._receive(), wait)
        except TimeoutError:
            self.timed_out = True
            return {"type": "http.disconnect"}
        self._complete = message["type"] != "http.request" or not message.get("more_body")
        return message

    def guard(self, send: Send) -> Send:
        async def guarded(message: Message) -> None:
            if not self.timed_out:
                await send(message)

        return guarded

    async def answer(self, scope: Scope, send: Send) -> None:
        await _send_problem(
            scope,
            send,
            RequestTimeout("The body arrived too slowly; send it again, faster."),
        )


def _replaying(body: bytes, receive: Receive) -> Receive:
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _send_problem(scope: Scope, send: Send, problem: DomainError) -> None:
    """Answer from the middleware, before the application, and close the connection."""
    body = json.dumps(problem.to_problem(scope.get("path"))).encode()
    await send(
        {
            "type": "http.response.start",
            "status": problem.status_code,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *(
                    (name.lower().encode(), value.encode())
                    for name, value in problem.headers.items()
                ),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ConcurrencyLimitMiddleware:
    """At most `limit` requests in progress in this process; beyond it a 503 with
    Retry-After, at once, instead of a queue that grows until everything times out."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.in_progress = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.in_progress >= self.limit:
            log.warning("concurrency_limit_reached", limit=self.limit)
            await _send_problem(scope, send, Overloaded("The server is busy. Try again shortly."))
            return
        self.in_progress += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_progress -= 1


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, docs_prefixes: tuple[str, ...]) -> None:
        self.app = app
        self.docs_prefixes = docs_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = _DOCS_CSP if scope["path"].startswith(self.docs_prefixes) else _API_CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"
                ]
                headers.extend(_SECURITY_HEADERS)
                headers.append((b"content-security-policy", csp))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RequestContextMiddleware:
    """Give every request an id (echoed as X-Request-ID) and log one line per request;
    with `count_requests`, count and time it for /metrics by its route's template.

    Only method, path, status and timing are logged: never bodies or query strings, which
    can carry names.
    """

    def __init__(self, app: ASGIApp, *, count_requests: bool = False) -> None:
        self.app = app
        self.count_requests = count_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = str(new_id())
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status: dict[str, Any] = {"code": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message = {
                    **message,
                    "headers": [
                        *message.get("headers", []),
                        (b"x-request-id", request_id.encode()),
                    ],
                }
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            if self.count_requests:
                # The router leaves the route it matched in the scope (none: "unmatched").
                route = describe_route(scope.get("route"), scope["path"])
                record_request(route, scope["method"], status=status["code"], seconds=seconds)
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status["code"],
                ms=round(seconds * 1000, 2),
            )
            structlog.contextvars.unbind_contextvars("request_id")

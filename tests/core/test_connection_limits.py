"""Slow and idle connections are closed after a bounded time, and requests beyond the
concurrency limit are refused at once: a few clients cannot hold the server's sockets or
its workers for ever. Against a real uvicorn server on a loopback port."""

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from app.core.server import BoundedHttpToolsProtocol
from app.main import create_app
from tests.conftest import settings_for

HEADER_TIMEOUT = 0.5
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


class QuickHeaders(BoundedHttpToolsProtocol):
    """What `habeas serve` runs, with a short bound."""

    header_timeout_seconds = HEADER_TIMEOUT


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[int]:
    port = _free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=QuickHeaders,
        timeout_keep_alive=1,
        lifespan="off",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


async def _closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), within) == b""
    except TimeoutError:
        return False


async def _request(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return answer


async def test_idle_and_slow_header_connections_are_closed(app: FastAPI) -> None:
    async with serving(app) as port:
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(300)]
        # One that trickles its headers, a byte at a time.
        slow_reader, slow_writer = await asyncio.open_connection("127.0.0.1", port)
        slow_writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")

        async def trickle() -> None:
            with contextlib.suppress(ConnectionError):
                for _ in range(20):
                    slow_writer.write(b"X")
                    await slow_writer.drain()
                    await asyncio.sleep(0.1)

        trickling = asyncio.create_task(trickle())
        closed = await asyncio.gather(
            *(_closed_by_server(reader, HEADER_TIMEOUT + 2) for reader, _ in idle),
            _closed_by_server(slow_reader, HEADER_TIMEOUT + 2),
        )
        trickling.cancel()
        assert all(closed), f"{closed.count(False)} connections still open"
        # A client that sends its request in time is served as usual.
        answer = await _request(port, HEALTHZ)
        assert answer.startswith(b"HTTP/1.1 200")
        for _, writer in [*idle, (slow_reader, slow_writer)]:
            writer.close()


async def test_a_kept_alive_connection_is_closed_after_it_idles(app: FastAPI) -> None:
    async with serving(app) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = await asyncio.wait_for(reader.readuntil(b'"ok"}'), 5)
        assert first.startswith(b"HTTP/1.1 200")
        assert await _closed_by_server(reader, 3)
        writer.close()


@pytest.fixture
async def strict_app(database_url: str) -> AsyncIterator[Any]:
    application = create_app(
        settings_for(database_url, body_read_timeout_seconds=0.5, max_concurrent_requests=2)
    )
    async with application.router.lifespan_context(application):
        yield application


async def test_a_body_that_arrives_too_slowly_is_a_408(strict_app: FastAPI) -> None:
    async with serving(strict_app) as port:
        answer = await _request(
            port,
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"user',
        )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer
    assert b"content-type: application/problem+json" in head.lower()
    assert b"request-timeout" in body


async def test_requests_beyond_the_concurrency_limit_are_a_503_at_once(
    strict_app: FastAPI,
) -> None:
    async with serving(strict_app) as port:
        # Two requests that hold their slot while their bodies trickle in.
        holders = []
        for _ in range(2):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
            )
            await writer.drain()
            holders.append((reader, writer))
        await asyncio.sleep(0.1)
        refused = await _request(port, HEALTHZ)
        head = refused.partition(b"\r\n\r\n")[0].lower()
        assert head.startswith(b"http/1.1 503"), refused
        assert b"retry-after: 1" in head
        assert b"content-type: application/problem+json" in head
        # Once they are answered (408), there is room again.
        for reader, writer in holders:
            assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 408")
            writer.close()
        served = await _request(port, HEALTHZ)
        assert served.startswith(b"HTTP/1.1 200")


async def test_a_body_trickled_in_time_chunk_by_chunk_still_has_a_deadline(
    database_url: str,
) -> None:
    application = create_app(
        settings_for(database_url, body_read_timeout_seconds=0.5, body_total_timeout_seconds=1.0)
    )
    async with application.router.lifespan_context(application), serving(application) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        )

        async def trickle() -> None:
            with contextlib.suppress(ConnectionError):
                for _ in range(20):
                    writer.write(b" ")
                    await writer.drain()
                    await asyncio.sleep(0.3)

        trickling = asyncio.create_task(trickle())
        answer = await asyncio.wait_for(reader.read(), 5)
        trickling.cancel()
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer

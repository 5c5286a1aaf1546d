"""Drive a workload through the real server (HTTP over loopback) and raw on asyncpg,
with the same concurrency and duration, and measure both."""

import asyncio
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import psutil

from app.bench import identity
from app.bench.workloads import Workload
from app.core.embedded import asyncpg_connect_kwargs


@dataclass(frozen=True)
class Measurement:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass(frozen=True)
class Result:
    name: str
    api: Measurement
    raw: Measurement
    rss_mb: float

    def as_json(self) -> dict[str, float | str | int]:
        return {
            "name": self.name,
            "rps": round(self.api.rps, 1),
            "p50_ms": round(self.api.percentile(0.50), 2),
            "p95_ms": round(self.api.percentile(0.95), 2),
            "p99_ms": round(self.api.percentile(0.99), 2),
            "errors": self.api.errors,
            "raw_rps": round(self.raw.rps, 1),
            "raw_p50_ms": round(self.raw.percentile(0.50), 2),
            "ratio": round(self.api.rps / self.raw.rps, 3) if self.raw.rps else 0.0,
            "rss_mb": round(self.rss_mb, 1),
            # The measured windows: longer than asked when a request outlasted it.
            "window_s": round(self.api.seconds, 1),
            "raw_window_s": round(self.raw.seconds, 1),
        }


@dataclass(frozen=True)
class TimedResult:
    """A timed workload: seconds per operation, API and raw; the ratio is a time ratio
    (API seconds / raw seconds), so lower is better, unlike the rate ratios above."""

    name: str
    api: Measurement
    raw: Measurement
    rss_before_mb: float
    rss_mb: float
    rss_after_mb: float
    detail: dict[str, int] = field(default_factory=dict)
    # A streamed workload's server memory along the way: [records read, MB].
    rss_mb_at_records: list[list[float]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        api_s = self.api.percentile(0.5) / 1000
        raw_s = self.raw.percentile(0.5) / 1000
        return {
            "name": self.name,
            "kind": "time",
            "repeats": self.api.requests,
            "errors": self.api.errors,
            "api_s": round(api_s, 3),
            "api_min_s": round(min(self.api.latencies_ms, default=0) / 1000, 3),
            "raw_s": round(raw_s, 3),
            "raw_min_s": round(min(self.raw.latencies_ms, default=0) / 1000, 3),
            "time_ratio": round(api_s / raw_s, 3) if raw_s else 0.0,
            "rss_before_mb": round(self.rss_before_mb, 1),
            "rss_mb": round(self.rss_mb, 1),
            "rss_after_mb": round(self.rss_after_mb, 1),
            **self.detail,
            **({"rss_mb_at_records": self.rss_mb_at_records} if self.rss_mb_at_records else {}),
        }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """The real server: `habeas serve` with production settings and 2 workers (or as
    many as asked, with settings of its own where a measurement needs them)."""

    def __init__(
        self,
        database_url: str,
        app_database_url: str,
        *,
        key_env: dict[str, str],
        workers: int = 2,
        settings_env: dict[str, str] | None = None,
    ) -> None:
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            **key_env,
            "DATABASE_URL": database_url,
            "HABEAS_APP_DATABASE_URL": app_database_url,
            "HABEAS_ENV": "production",
            "HABEAS_LOG_LEVEL": "WARNING",
            "HABEAS_LOG_JSON": "true",
            **(settings_env or {}),
        }
        self.process = subprocess.Popen(  # noqa: S603 (our own CLI)
            [
                sys.executable,
                "-m",
                "app.cli",
                "serve",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
                "--no-migrate",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
        )

    async def wait_ready(self, within_seconds: float = 60) -> None:
        deadline = time.monotonic() + within_seconds
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                try:
                    async with session.get(f"{self.base_url}/readyz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
        raise RuntimeError("the server did not become ready")

    def rss_bytes(self) -> int:
        try:
            parent = psutil.Process(self.process.pid)
            return sum(p.memory_info().rss for p in [parent, *parent.children(recursive=True)])
        except psutil.Error:
            return 0

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


@asynccontextmanager
async def peak_rss(server: Server) -> AsyncIterator[list[int]]:
    """Sample the server's resident memory while the block runs; yields [peak bytes]."""
    peak = [server.rss_bytes()]

    async def sample() -> None:
        while True:
            peak[0] = max(peak[0], server.rss_bytes())
            await asyncio.sleep(0.2)

    task = asyncio.create_task(sample())
    try:
        yield peak
    finally:
        task.cancel()


async def _drive(
    concurrency: int,
    warmup: float,
    *,
    duration: float,
    one: Callable[[int, random.Random], Awaitable[bool]],
) -> Measurement:
    started = time.monotonic()
    measure_from = started + warmup
    end = measure_from + duration
    # Each worker's requests: when each started and ended, and whether it succeeded.
    requests: list[list[tuple[float, float, bool]]] = [[] for _ in range(concurrency)]
    # When each worker's first request started after the warm-up ended (none yet: None).
    first_measured: list[float | None] = [None] * concurrency

    async def worker(index: int) -> None:
        # Start the connections one by one during the warm-up: a burst of connects is
        # accepted almost all by whichever server worker wakes first, while a ramp lets
        # the less busy worker take each new one.
        await asyncio.sleep(index * warmup / (2 * concurrency))
        rng = random.Random(index)
        # Every worker keeps the load on until the window ends and every worker has a
        # request that started after the warm-up and finished: on a loaded machine or in
        # a short quick run one request can outlast the window, and a rate from none says
        # nothing. The window then lasts until the last of those first requests ended.
        while (now := time.monotonic()) < end or None in first_measured:
            ok = await one(index, rng)
            done = time.monotonic()
            requests[index].append((now, done, ok))
            if now >= measure_from and first_measured[index] is None:
                first_measured[index] = done

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    window_end = max([end, *(done for done in first_measured if done is not None)])
    # Only requests that start and finish inside the window count, for every worker alike.
    inside = [
        (start, done, ok)
        for per_worker in requests
        for start, done, ok in per_worker
        if start >= measure_from and done <= window_end
    ]
    latencies = [(done - start) * 1000 for start, done, ok in inside if ok]
    errors = sum(1 for _, _, ok in inside if not ok)
    return Measurement(len(latencies), errors, window_end - measure_from, latencies)


async def run_api(
    workload: Workload, server: Server, database_url: str, *, warmup: float, duration: float
) -> tuple[Measurement, float]:
    connection = await asyncpg.connect(**asyncpg_connect_kwargs(database_url))
    try:
        await workload.prepare(connection)
    finally:
        await connection.close()
    connector = aiohttp.TCPConnector(limit=workload.concurrency, force_close=False)
    async with aiohttp.ClientSession(base_url=server.base_url, connector=connector) as session:

        async def one(worker: int, rng: random.Random) -> bool:
            request = workload.request(worker, rng)
            async with session.request(
                request.method,
                request.path,
                json=request.body,
                headers={**workload.auth_headers, **request.headers},
                params=request.params,
            ) as response:
                body = await response.read()
                workload.on_response(worker, response.status, body)
                return response.status == workload.expected_status

        async with peak_rss(server) as peak:
            measured = await _drive(workload.concurrency, warmup, duration=duration, one=one)
    await _clean_up(workload, database_url)
    return measured, peak[0] / 1_048_576


async def _clean_up(workload: Workload, database_url: str) -> None:
    connection = await asyncpg.connect(**asyncpg_connect_kwargs(database_url))
    try:
        await workload.clean_up(connection)
    finally:
        await connection.close()


async def run_raw(
    workload: Workload, database_url: str, *, warmup: float, duration: float
) -> Measurement:
    pool = await asyncpg.create_pool(
        **asyncpg_connect_kwargs(database_url),
        min_size=workload.concurrency,
        max_size=workload.concurrency,
    )
    try:
        async with pool.acquire() as connection:
            await workload.prepare(connection)

        async def one(worker: int, rng: random.Random) -> bool:
            async with pool.acquire() as connection:
                await workload.raw(connection, worker, rng)
            return True

        measured = await _drive(workload.concurrency, warmup, duration=duration, one=one)
    finally:
        await pool.close()
    await _clean_up(workload, database_url)
    return measured


async def _timed(repeats: int, warmup_runs: int, one: Callable[[], Awaitable[bool]]) -> Measurement:
    """Operations one after another: the warm-up ones, then the measured ones."""
    latencies: list[float] = []
    errors = 0
    for run in range(warmup_runs + repeats):
        started = time.monotonic()
        ok = await one()
        elapsed_ms = (time.monotonic() - started) * 1000
        if run < warmup_runs:
            continue
        if ok:
            latencies.append(elapsed_ms)
        else:
            errors += 1
    return Measurement(len(latencies), errors, sum(latencies) / 1000, latencies)


async def run_timed(
    workload: Workload, server: Server, database_url: str, *, repeats: int, warmup_runs: int
) -> TimedResult:
    """A timed workload through the API, then raw; the server's memory before, at its
    peak during, and after the API phase."""
    rss_before = server.rss_bytes()
    memory_marks: list[list[int]] = []
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(base_url=server.base_url, timeout=timeout) as session:

        async def one_api() -> bool:
            if workload.streamed:
                return await _streamed(workload, session, server, memory_marks)
            request = workload.request(0, random.Random(0))
            async with session.request(
                request.method,
                request.path,
                json=request.body,
                headers={**workload.auth_headers, **request.headers},
                params=request.params,
            ) as response:
                body = await response.read()
                workload.on_response(0, response.status, body)
                if response.status != workload.expected_status:
                    print(f" {response.status}: {body[:300]!r}", flush=True)  # noqa: T201
                return response.status == workload.expected_status

        async with peak_rss(server) as peak:
            api = await _timed(repeats, warmup_runs, one_api)
    rss_after = server.rss_bytes()
    connection = await asyncpg.connect(**asyncpg_connect_kwargs(database_url))
    try:

        async def one_raw() -> bool:
            await workload.raw(connection, 0, random.Random(0))
            return True

        raw = await _timed(repeats, warmup_runs, one_raw)
    finally:
        await connection.close()
    return TimedResult(
        workload.name,
        api,
        raw,
        rss_before / 1_048_576,
        peak[0] / 1_048_576,
        rss_after / 1_048_576,
        workload.detail,
        [[records, round(rss / 1_048_576, 1)] for records, rss in memory_marks],
    )


STREAM_CHUNK = 1 << 16


# A streamed workload's server memory is read each time it gets so much further.
MEMORY_MARK_EVERY = 100_000


async def _streamed(
    workload: Workload, session: aiohttp.ClientSession, server: Server, marks: list[list[int]]
) -> bool:
    """One operation of a streamed workload: requests until it is done, each answer read
    in pieces (the client holds no more than a line and a piece) and split into lines; a
    new token when the last one expired; the server's memory at every MEMORY_MARK_EVERY
    records, appended to `marks` as [records, bytes]."""
    workload.start_stream(0)
    next_mark = MEMORY_MARK_EVERY
    while True:
        if workload.token_expired(0):
            token = await identity.partner_token(session, workload.partner_credentials[0])
            workload.replace_partner_token(0, token)
        request = workload.request(0, random.Random(0))
        async with session.request(
            request.method,
            request.path,
            headers={**workload.auth_headers, **request.headers},
            params=request.params,
        ) as response:
            if response.status != workload.expected_status:
                print(f" {response.status}: {(await response.read())[:300]!r}", flush=True)  # noqa: T201
                return False
            pending = b""
            async for piece in response.content.iter_chunked(STREAM_CHUNK):
                *lines, pending = (pending + piece).split(b"\n")
                for line in lines:
                    if line.strip():
                        workload.on_line(0, line)
                if workload.progress(0) >= next_mark:
                    marks.append([workload.progress(0), server.rss_bytes()])
                    next_mark += MEMORY_MARK_EVERY
                if workload.stream_done(0):
                    # Done before the server ended the stream (a record limit): hang up.
                    pending = b""
                    break
            if pending.strip():
                workload.on_line(0, pending)
        if workload.stream_done(0):
            return workload.stream_ok(0)

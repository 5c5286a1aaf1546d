"""`habeas worker` for real: a subprocess on the test database picks up a queued run and a
scheduled one and stops cleanly on SIGTERM; two workers on one schedule run each tick
once; a worker connected as the application's restricted role can do all of it."""

import asyncio
import json
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import asyncpg
import pytest
from fastapi import FastAPI
from pgqueuer.models import CronExpressionEntrypoint
from pgqueuer.types import CronEntrypoint, CronExpression

from app.core import embedded
from app.core.clock import utcnow
from app.core.config import Settings
from app.jobs import worker
from app.jobs.queue import enqueue, queries
from app.ops.grants import application_database_url
from tests.audit.chain import build_chain, cli_env
from tests.auth import SignInAs
from tests.conftest import embedded_settings, settings_for

DEADLINE_SECONDS = 30.0


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not await check():
        assert time.monotonic() < deadline, f"not within {DEADLINE_SECONDS} s: {what}"
        await asyncio.sleep(0.1)


def exported_seq(file: str) -> int:
    seq: int = json.loads(Path(file).read_text())["seq"]
    return seq


async def expired_idempotency_record(db: asyncpg.Connection, settings: Settings) -> uuid.UUID:
    record_id = uuid.uuid4()
    await db.execute(
        "INSERT INTO idempotency_record (id, scope, key, fingerprint, created_at)"
        " VALUES ($1, 'test', $2, 'f', $3)",
        record_id,
        str(record_id),
        utcnow().replace(year=2000),
    )
    return record_id


async def test_a_worker_process_runs_queued_and_scheduled_jobs_and_stops_on_sigterm(
    app: FastAPI,
    sign_in_as: SignInAs,
    db: asyncpg.Connection,
    database_url: str,
    empty_queue: None,
    export_dir: Path,
    tmp_path: Path,
) -> None:
    await build_chain(sign_in_as, db, persons=2)
    expired = await expired_idempotency_record(db, app.state.settings)
    env = {
        **cli_env(database_url),
        "HABEAS_CHECKPOINT_EXPORT_DIR": str(export_dir),
        # The integrity check only when asked; the purge every second.
        "HABEAS_INTEGRITY_SCHEDULE": "",
        "HABEAS_PURGE_SCHEDULE": "* * * * * *",
        "HABEAS_LOG_JSON": "true",
        # pgqueuer says at debug level when it dispatches a schedule: a library's line.
        "HABEAS_LOG_LEVEL": "DEBUG",
    }
    process = subprocess.Popen(  # noqa: ASYNC220 (started once; waited for below)
        [sys.executable, "-m", "app.cli", "worker"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert await enqueue(db, worker.INTEGRITY)
        assert not await enqueue(db, worker.INTEGRITY)  # one run waiting is enough

        async def checked() -> bool:
            return bool(await db.fetchval("SELECT count(*) FROM integrity_check"))

        async def purged() -> bool:
            return not await db.fetchval("SELECT 1 FROM idempotency_record WHERE id = $1", expired)

        await eventually(checked, "the queued integrity check ran")
        await eventually(purged, "the scheduled purge ran")
        row = await db.fetchrow("SELECT * FROM integrity_check")
        assert row["ok"] and row["checkpoint_file"]
        assert Path(row["checkpoint_file"]).parent == export_dir
        assert exported_seq(row["checkpoint_file"]) == row["head_seq"]
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.to_thread(process.communicate, timeout=DEADLINE_SECONDS)
    assert process.returncode == 0, output
    # Every line is JSON, pgqueuer's own included (app/core/logging.py).
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    events = [line["event"] for line in lines]
    assert "worker_started" in events and events[-1] == "worker_stopped", output
    assert any(line.get("logger") == "pgqueuer" for line in lines), output
    # Nothing is left claimed by the stopped worker.
    assert not await db.fetchval("SELECT count(*) FROM pgqueuer WHERE status = 'picked'")


@pytest.fixture
async def run_workers(
    database_url: str, app: FastAPI
) -> AsyncIterator[Callable[..., Awaitable[None]]]:
    stops: list[asyncio.Event] = []
    tasks: list[asyncio.Task[None]] = []

    async def start(url: str, count: int = 1, **settings: object) -> None:
        for _ in range(count):
            stop = asyncio.Event()
            stops.append(stop)
            tasks.append(
                asyncio.create_task(
                    worker.run(
                        url,
                        settings_for(url, **settings),
                        audit_keys=app.state.security.audit_keys,
                        stop=stop,
                    )
                )
            )

    yield start
    for stop in stops:
        stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), DEADLINE_SECONDS)


async def test_two_workers_run_each_scheduled_tick_once(
    sign_in_as: SignInAs,
    db: asyncpg.Connection,
    database_url: str,
    empty_queue: None,
    run_workers: Callable[..., Awaitable[None]],
) -> None:
    await build_chain(sign_in_as, db, persons=1)
    started = time.monotonic()
    await run_workers(
        database_url,
        count=2,
        integrity_schedule="* * * * * *",
        purge_schedule="",
        report_job_schedule="",
        report_basis_schedule="",
        duplicate_scan_schedule="",
        webhook_sweep_schedule="",
    )

    async def three_ticks_ran() -> bool:
        return bool(await db.fetchval("SELECT count(*) >= 3 FROM integrity_check"))

    # Two workers start in a second or two on a quiet machine, longer beside other tests:
    # wait for ticks to run rather than for a fixed time.
    await eventually(three_ticks_ran, "three scheduled ticks ran")
    elapsed = time.monotonic() - started
    runs = await db.fetch("SELECT started_at, finished_at FROM integrity_check ORDER BY 1")
    # At most one run per tick: never more runs than seconds went by.
    assert len(runs) <= elapsed + 1, (len(runs), elapsed)
    for earlier, later in pairwise(runs):
        # A run takes milliseconds and ticks are a second apart: had both workers fired
        # on one tick, two runs would follow each other at once.
        assert (later["started_at"] - earlier["finished_at"]).total_seconds() >= 0.5, runs
    assert (await db.fetchval("SELECT count(*) FROM pgqueuer_schedules")) == 1


async def test_a_due_schedule_is_claimed_by_one_worker_only(
    database_url: str, db: asyncpg.Connection, empty_queue: None
) -> None:
    """What the above rests on: pgqueuer claims a due schedule row with FOR UPDATE SKIP
    LOCKED and marks it picked, so of workers asking at the same moment one gets it."""
    key = CronExpressionEntrypoint(CronEntrypoint(worker.INTEGRITY), CronExpression("* * * * *"))
    await queries(db).insert_schedule({key: timedelta(0)})
    connections = [
        await asyncpg.connect(**embedded.asyncpg_connect_kwargs(database_url)) for _ in range(4)
    ]
    try:
        claims = await asyncio.gather(
            *(queries(c).fetch_schedule({key: timedelta(minutes=1)}) for c in connections)
        )
    finally:
        for connection in connections:
            await connection.close()
    assert sorted(len(claimed) for claimed in claims) == [0, 0, 0, 1]


@pytest.fixture
async def role(db: asyncpg.Connection) -> AsyncIterator[str]:
    name = f"habeas_app_test_{secrets.token_hex(4)}"
    yield name
    if await db.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", name):
        await db.execute(f'DROP OWNED BY "{name}"')
        await db.execute(f'DROP ROLE "{name}"')


async def test_the_application_role_can_run_the_jobs(
    app: FastAPI,
    sign_in_as: SignInAs,
    db: asyncpg.Connection,
    database_url: str,
    empty_queue: None,
    role: str,
    export_dir: Path,
    run_workers: Callable[..., Awaitable[None]],
) -> None:
    await build_chain(sign_in_as, db, persons=1)
    await expired_idempotency_record(db, app.state.settings)
    await db.execute(
        "INSERT INTO pgqueuer (priority, status, entrypoint, updated)"
        " VALUES (0, 'failed', 'purge_expired', now() - interval '400 days')"
    )
    url = await application_database_url(embedded_settings(role), database_url)
    connection = await asyncpg.connect(**embedded.asyncpg_connect_kwargs(url))
    try:
        assert await connection.fetchval("SELECT current_user") == role
        assert await enqueue(connection, worker.INTEGRITY)
    finally:
        await connection.close()
    await run_workers(
        url, checkpoint_export_dir=export_dir, integrity_schedule="", purge_schedule="* * * * * *"
    )

    async def done() -> bool:
        return bool(
            await db.fetchval("SELECT count(*) FROM integrity_check")
            and not await db.fetchval("SELECT count(*) FROM idempotency_record")
            and not await db.fetchval("SELECT count(*) FROM pgqueuer WHERE status = 'failed'")
        )

    await eventually(done, "the integrity check and the purge ran as the application's role")
    row = await db.fetchrow("SELECT * FROM integrity_check")
    assert row["ok"] and row["checkpoint_file"] and row["error"] is None
    assert exported_seq(row["checkpoint_file"]) == row["head_seq"]
    signed = "SELECT count(*) FROM audit_checkpoint WHERE seq = $1"
    assert await db.fetchval(signed, row["head_seq"])

"""The worker's figures on /metrics (issue 11: "an alert — log at error level + a
metric — when verification fails"): read from the database at scrape time by the
`job_figures` scrape hook, through the real app and its metrics token. The last integrity
run's outcome, when the chain last verified, jobs by entrypoint and status, failed jobs;
and a database that is away, hangs, or has no free connection costs these figures only,
never the scrape."""

import asyncio
import shutil
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import structlog
from fastapi import FastAPI

from app.jobs import service
from app.jobs.queue import enqueue
from app.main import create_app
from app.ops import metrics as scrape_hooks
from app.ops.metrics import HOOK_SECONDS
from tests.audit.chain import build_chain, bypassing_triggers
from tests.auth import SignInAs
from tests.conftest import settings_for
from tests.ops.metrics import samples, scrape, value, write_token

JOB_FAMILIES = (
    "habeas_jobs_queued",
    "habeas_jobs_failed",
    "habeas_audit_integrity_last_run_ok",
    "habeas_audit_integrity_last_run_timestamp_seconds",
    "habeas_audit_last_verified_timestamp_seconds",
)


@pytest.fixture(scope="module")
def metrics_token() -> Iterator[tuple[Path, str]]:
    directory = Path(tempfile.mkdtemp(prefix="habeas-job-metrics-"))
    yield write_token(directory)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
async def metrics_app(database_url: str, metrics_token: tuple[Path, str]) -> AsyncIterator[FastAPI]:
    application = create_app(
        settings_for(
            database_url, metrics_token_file=metrics_token[0], housekeeping_interval_seconds=0
        )
    )
    async with application.router.lifespan_context(application):
        yield application


def has_sample(exposition: str, name: str, **labels: str) -> bool:
    return any(n == name and sample_labels == labels for n, sample_labels, _ in samples(exposition))


async def test_before_any_run_the_gauges_say_never(
    metrics_app: FastAPI, metrics_token: tuple[Path, str], clean_tables: None, empty_queue: None
) -> None:
    exposition = await scrape(metrics_app, metrics_token[1])
    assert value(exposition, "habeas_audit_integrity_last_run_ok") == -1
    # 0, "1970": an alert on the age of the last verification fires on a chain never verified.
    assert has_sample(exposition, "habeas_audit_last_verified_timestamp_seconds")
    assert value(exposition, "habeas_audit_last_verified_timestamp_seconds") == 0
    assert value(exposition, "habeas_audit_integrity_last_run_timestamp_seconds") == 0
    # An empty queue still has its series, at 0: a sum over them is 0, not nothing.
    for entrypoint in service.ENTRYPOINTS:
        for status in service.QUEUE_STATUSES:
            labels = {"entrypoint": entrypoint, "status": status}
            assert has_sample(exposition, "habeas_jobs_queued", **labels), labels
            assert value(exposition, "habeas_jobs_queued", **labels) == 0
    assert has_sample(exposition, "habeas_jobs_failed")
    assert value(exposition, "habeas_jobs_failed") == 0


async def test_the_gauge_says_ok_then_failed_when_the_chain_is_tampered_with(
    metrics_app: FastAPI,
    metrics_token: tuple[Path, str],
    app: FastAPI,
    sign_in_as: SignInAs,
    db: asyncpg.Connection,
    export_dir: Path,
) -> None:
    _, token = metrics_token
    chain = await build_chain(sign_in_as, db, persons=4)
    keys = app.state.security.audit_keys

    good = await service.check_integrity(app.state.session_factory, keys, export_dir)
    held = await scrape(metrics_app, token)

    assert good.ok
    assert value(held, "habeas_audit_integrity_last_run_ok") == 1
    assert value(held, "habeas_audit_integrity_last_run_timestamp_seconds") == pytest.approx(
        good.finished_at.timestamp()
    )
    assert value(held, "habeas_audit_last_verified_timestamp_seconds") == pytest.approx(
        good.finished_at.timestamp()
    )

    # As tests/jobs/test_integrity.py: an event rewritten behind the triggers' back.
    async with bypassing_triggers(db):
        await db.execute(
            "UPDATE audit_event SET action = 'person.read' WHERE seq = $1", chain.middle
        )
    bad = await service.check_integrity(app.state.session_factory, keys, export_dir)
    broken = await scrape(metrics_app, token)

    assert not bad.ok and bad.first_bad_seq == chain.middle
    assert value(broken, "habeas_audit_integrity_last_run_ok") == 0
    assert value(broken, "habeas_audit_integrity_last_run_timestamp_seconds") == pytest.approx(
        bad.finished_at.timestamp()
    )
    # Since when: the last time it held stays, and ages.
    assert value(broken, "habeas_audit_last_verified_timestamp_seconds") == pytest.approx(
        good.finished_at.timestamp()
    )
    # Where is in the log and the integrity_check table; the labels are bounded sets.
    for name, labels, _ in samples(broken):
        if name.startswith(JOB_FAMILIES):
            assert set(labels) <= {"entrypoint", "status"}, (name, labels)
            assert labels.get("entrypoint", service.INTEGRITY) in service.ENTRYPOINTS
            assert labels.get("status", service.QUEUED) in service.QUEUE_STATUSES


async def test_queue_depth_and_failures_follow_the_queue(
    metrics_app: FastAPI,
    metrics_token: tuple[Path, str],
    db: asyncpg.Connection,
    empty_queue: None,
) -> None:
    _, token = metrics_token
    assert await enqueue(db, service.INTEGRITY)
    await db.execute(
        "INSERT INTO pgqueuer (priority, status, entrypoint) VALUES (0, 'failed', $1)",
        service.PURGE,
    )

    exposition = await scrape(metrics_app, token)

    def queued(entrypoint: str, status: str) -> float:
        return value(exposition, "habeas_jobs_queued", entrypoint=entrypoint, status=status)

    assert queued(service.INTEGRITY, "queued") == 1
    assert queued(service.PURGE, "failed") == 1
    assert queued(service.INTEGRITY, "failed") == queued(service.PURGE, "queued") == 0
    assert value(exposition, "habeas_jobs_failed") == 1

    await db.execute(
        "UPDATE pgqueuer SET status = 'picked' WHERE entrypoint = $1", service.INTEGRITY
    )
    running = await scrape(metrics_app, token)
    assert value(running, "habeas_jobs_queued", entrypoint=service.INTEGRITY, status="picked") == 1
    assert value(running, "habeas_jobs_queued", entrypoint=service.INTEGRITY, status="queued") == 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _scrape_without_the_database(
    application: FastAPI, token: str, monkeypatch: pytest.MonkeyPatch
) -> str:
    """A scrape while the database cannot answer: 200 all the same, with the job figures
    left out and the hook's failure logged; the error's class."""
    with structlog.testing.capture_logs() as logs:
        # A logger first used here, so that it logs to the capture: the module's own may
        # have been cached by an earlier scrape, with the processors of an earlier app.
        monkeypatch.setattr(scrape_hooks, "log", structlog.get_logger(scrape_hooks.__name__))
        started = time.monotonic()
        exposition = await scrape(application, token)
        elapsed = time.monotonic() - started
    assert elapsed < HOOK_SECONDS + 1.5, elapsed
    assert "habeas_http_requests_total" in exposition
    for family in JOB_FAMILIES:
        assert family not in exposition
    failures = [entry for entry in logs if entry["event"] == "metrics_hook_failed"]
    assert [entry["hook"] for entry in failures] == ["job_figures"], logs
    assert failures[0]["log_level"] == "warning"
    return str(failures[0]["error_class"])


async def test_a_database_that_is_down_or_hangs_costs_only_the_job_figures(
    metrics_token: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, token = metrics_token
    port = _free_port()
    application = create_app(
        settings_for(
            f"postgresql://habeas:x@127.0.0.1:{port}/habeas",
            metrics_token_file=path,
            housekeeping_interval_seconds=0,
            # Longer than a scrape may wait: the hook's own limit is what stops it.
            connect_timeout_seconds=30,
        )
    )
    async with application.router.lifespan_context(application):
        # Nothing listens: the connection is refused at once.
        refused = await _scrape_without_the_database(application, token, monkeypatch)
        assert refused in {"ConnectionRefusedError", "OSError"}

        # Now something accepts connections there and never answers (a server that hangs,
        # a network that drops packets): the hook is given up after HOOK_SECONDS.
        held: list[asyncio.StreamWriter] = []

        async def never_answer(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            held.append(writer)

        silent = await asyncio.start_server(never_answer, "127.0.0.1", port)
        try:
            hung = await _scrape_without_the_database(application, token, monkeypatch)
            assert hung == "TimeoutError"
            assert held, "the hook did try to connect"
            # The connection given up on is not left counted in the pool.
            pool = application.state.engine.pool
            assert (pool.checkedout(), pool.overflow()) == (0, -pool.size())
        finally:
            for writer in held:
                writer.close()
            silent.close()
            await silent.wait_closed()

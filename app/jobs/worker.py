"""`habeas worker`: the jobs that run on a schedule, on pgqueuer (DESIGN §6).

Each schedule (a cron expression from the settings) only *queues* a run of its job; any
worker claims queued runs with SELECT … FOR UPDATE SKIP LOCKED. Any number of workers may
run: pgqueuer's schedule rows are claimed the same way (one worker fires each tick), the
job's name is its dedupe key (a tick that finds a run still waiting or running adds none),
and each job has a concurrency limit of one across all workers, enforced in the database.
A run whose worker died (no heartbeat for 30 s) is taken over by another.

The status reports job (app/reports/schedules/service.py) generates every report due on
the schedules kept in the configuration (HABEAS_REPORT_SCHEDULES) or by coordinators
through the API; its own schedule (HABEAS_REPORT_JOB_SCHEDULE) only says how often it
looks. A period it could not make is recorded as a failed run and makes the job fail.

A job that raises stays in the queue as `failed` (pgqueuer's on_failure="hold", counted by
service.job_health) until the purge job removes it after HABEAS_FAILED_JOB_RETENTION_DAYS;
pgqueuer logs its traceback. A chain that does not verify is not a failed job: the check
ran, recorded its finding and raised the alert.
"""

import asyncio
import signal
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from functools import cache

import asyncpg
import croniter
import httpx
import structlog
from pgqueuer import PgQueuer
from pgqueuer.models import Job, Schedule
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from app.access.policy import PolicyEngine
from app.audit.journal import as_system, journal_of
from app.core import embedded
from app.core.config import InvalidSetting, Settings
from app.core.crypto import AuditKeyRing, DataKeyRing
from app.core.db import commit, create_engine, driver_connection, session_factory
from app.jobs import service
from app.jobs.queue import enqueue, enqueue_by, queuer
from app.jobs.service import (
    DUPLICATES,
    INTEGRITY,
    PURGE,
    REPORT_BASIS,
    REPORTS,
    WEBHOOK_RETRY,
    WEBHOOKS,
)
from app.persons import duplicates
from app.reports import basis
from app.reports.schedules import service as report_schedules
from app.sync import webhooks

# The policies, loaded once a process, for the webhooks job (what a partner may read).
POLICY = cache(PolicyEngine)

log = structlog.get_logger(__name__)

# Signals that stop a worker: it finishes the runs it has started, then exits.
STOPPING_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def schedules(settings: Settings) -> dict[str, str]:
    """Each scheduled job's cron expression; InvalidSetting for one that is not, or for
    report schedules in the configuration that cannot be kept."""
    report_schedules.check_configuration(settings)
    configured = {
        INTEGRITY: ("HABEAS_INTEGRITY_SCHEDULE", settings.integrity_schedule.strip()),
        PURGE: ("HABEAS_PURGE_SCHEDULE", settings.purge_schedule.strip()),
        REPORTS: ("HABEAS_REPORT_JOB_SCHEDULE", settings.report_job_schedule.strip()),
        REPORT_BASIS: ("HABEAS_REPORT_BASIS_SCHEDULE", settings.report_basis_schedule.strip()),
        DUPLICATES: ("HABEAS_DUPLICATE_SCAN_SCHEDULE", settings.duplicate_scan_schedule.strip()),
        WEBHOOKS: ("HABEAS_WEBHOOK_SWEEP_SCHEDULE", settings.webhook_sweep_schedule.strip()),
    }
    for name, expression in configured.values():
        if expression and not croniter.croniter.is_valid(expression):
            raise InvalidSetting(f"{name}={expression!r} is not a cron expression")
    return {job: expression for job, (_, expression) in configured.items() if expression}


@dataclass(frozen=True)
class Jobs:
    """What the jobs need: sessions on the database, the settings, the audit keys."""

    factory: async_sessionmaker[AsyncSession]
    settings: Settings
    audit_keys: AuditKeyRing
    # Opens the partners' webhook secrets; without it no webhook is told anything.
    data_keys: DataKeyRing | None = None

    async def check_integrity(self) -> None:
        await service.check_integrity(
            self.factory, self.audit_keys, self.settings.checkpoint_export_dir
        )

    async def purge(self) -> None:
        await service.purge(self.factory, self.settings)

    async def make_reports(self) -> None:
        await report_schedules.make_due_reports(self.factory, self.settings, self.audit_keys)

    async def build_report_basis(self) -> None:
        async with self.factory() as session:
            await basis.build(
                session,
                settle_seconds=self.settings.report_settle_seconds,
                margin_seconds=self.settings.report_basis_margin_seconds,
            )
            await session.commit()

    async def scan_for_duplicates(self) -> None:
        async with self.factory() as session:
            as_system(session, self.audit_keys)
            try:
                found = await duplicates.scan(session)
            except duplicates.ScanRunning:
                log.info("person_duplicates_scan_skipped", reason="another scan is running")
                return
            summary = duplicates.summary(found)
            journal_of(session).changed(
                "person.duplicate_scan",
                "person_duplicate_scan",
                found.id,
                changes=[],
                detail=summary,
            )
            await commit(session)
        log.info("person_duplicates_scanned", **summary)

    async def notify_partners(self) -> None:
        """Tell partners' endpoints what is new (app/sync/webhooks.py); when a delivery
        failed, run again when its retry is due."""
        if self.data_keys is None:
            log.warning(
                "webhooks_not_notified",
                reason="no data key (HABEAS_DATA_KEY_FILE): the signing secrets cannot be opened",
            )
            return
        # No proxy from the environment: endpoints are called directly, or not at all.
        async with httpx.AsyncClient(trust_env=False) as client:
            run = await webhooks.notify_all(
                self.factory, self.data_keys, self.audit_keys, self.settings, client, POLICY()
            )
        if run.retry_at is not None:
            await self._retry_at(run.retry_at)

    async def _retry_at(self, due: datetime) -> None:
        """Queue a run for the earliest retry, unless one is queued for then or before
        (this run's own row is `picked`, so pgqueuer's dedupe would refuse it)."""
        async with self.factory() as session:
            await enqueue_by(await driver_connection(session), WEBHOOK_RETRY, due)
            await session.commit()


def build(connection: asyncpg.Connection, jobs: Jobs) -> PgQueuer:
    """The queue manager and the scheduler of one worker, on its own connection."""
    queue = queuer(connection)
    handlers: dict[str, Callable[[], Awaitable[None]]] = {
        INTEGRITY: jobs.check_integrity,
        PURGE: jobs.purge,
        REPORTS: jobs.make_reports,
        REPORT_BASIS: jobs.build_report_basis,
        DUPLICATES: jobs.scan_for_duplicates,
        # Queued by every write that moves a feed position (migration 0021), and again
        # for a retry.
        WEBHOOKS: jobs.notify_partners,
        WEBHOOK_RETRY: jobs.notify_partners,
    }
    for entrypoint, handler in handlers.items():
        queue.entrypoint(entrypoint, concurrency_limit=1, on_failure="hold")(_run(handler))
    for entrypoint, expression in schedules(jobs.settings).items():
        # clean_old: a schedule whose expression was changed in the settings is replaced.
        queue.schedule(entrypoint, expression, clean_old=True)(_enqueue(connection, entrypoint))
    return queue


def _run(handler: Callable[[], Awaitable[None]]) -> Callable[[Job], Awaitable[None]]:
    async def run(job: Job) -> None:
        await handler()

    return run


def _enqueue(
    connection: asyncpg.Connection, entrypoint: str
) -> Callable[[Schedule], Awaitable[None]]:
    async def tick(schedule: Schedule) -> None:
        await enqueue(connection, entrypoint)

    return tick


async def run(
    url: str,
    settings: Settings,
    *,
    audit_keys: AuditKeyRing,
    stop: asyncio.Event,
    data_keys: DataKeyRing | None = None,
) -> None:
    """Run the jobs on the database at `url` until `stop` is set, then let the runs under
    way finish. Raises when the database connection is lost (the supervisor restarts it)."""
    engine = create_engine(url, settings)
    connection = await asyncpg.connect(**embedded.asyncpg_connect_kwargs(url))
    try:
        queue = build(connection, Jobs(session_factory(engine), settings, audit_keys, data_keys))
        running = asyncio.create_task(queue.run(shutdown_on_listener_failure=True))
        stopping = asyncio.create_task(stop.wait())
        log.info(
            "worker_started",
            schedules=schedules(settings),
            checkpoint_export_dir=str(settings.checkpoint_export_dir or ""),
        )
        if settings.checkpoint_export_dir is None:
            log.warning("checkpoint_export_disabled", setting="HABEAS_CHECKPOINT_EXPORT_DIR")
        await asyncio.wait((running, stopping), return_when=asyncio.FIRST_COMPLETED)
        queue.shutdown.set()
        stopping.cancel()
        with suppress(asyncio.CancelledError):
            await stopping
        await running
        log.info("worker_stopped")
    finally:
        await connection.close()
        await engine.dispose()


async def run_until_signalled(
    url: str, settings: Settings, audit_keys: AuditKeyRing, data_keys: DataKeyRing | None = None
) -> None:
    """`run`, stopped by SIGTERM, SIGINT (Ctrl-C) or SIGHUP. The signals' previous handlers
    come back afterwards (the command's own, which stop an embedded database)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    previous = {stopping: signal.getsignal(stopping) for stopping in STOPPING_SIGNALS}
    for stopping in STOPPING_SIGNALS:
        loop.add_signal_handler(stopping, stop.set)
    try:
        await run(url, settings, audit_keys=audit_keys, stop=stop, data_keys=data_keys)
    finally:
        for stopping, handler in previous.items():
            loop.remove_signal_handler(stopping)
            signal.signal(stopping, handler)

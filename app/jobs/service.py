"""The scheduled jobs' use cases: the audit integrity check (verify the whole chain, sign
a checkpoint of its head, export it), the purge of expired records, and the figures an
operator watches (job_health). The scheduled status reports are app/reports/schedules/."""

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import structlog
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from app.audit import service as audit_service
from app.audit.verification import Checkpoint, Report
from app.core.clock import utcnow
from app.core.config import Settings
from app.core.crypto import AuditKeyRing
from app.core.errors import Conflict
from app.jobs import repository
from app.jobs.housekeeping import purge_expired
from app.jobs.models import IntegrityCheck
from app.reports.schedules import service as report_schedules

log = structlog.get_logger(__name__)

# The jobs' names: pgqueuer's entrypoints, and the label values of the job metrics.
INTEGRITY = "audit_integrity"
PURGE = "purge_expired"
REPORTS = "status_reports"
REPORT_BASIS = "report_basis"
DUPLICATES = "person_duplicates"
# Queued by every write that moves a partner feed's position (the trigger of migration
# 0021 names it), and, delayed, for the earliest retry of a failed delivery.
WEBHOOKS = "sync_webhooks"
WEBHOOK_RETRY = "sync_webhooks_retry"
ENTRYPOINTS = (INTEGRITY, PURGE, REPORTS, REPORT_BASIS, DUPLICATES, WEBHOOKS, WEBHOOK_RETRY)

# pgqueuer's statuses of a job in its queue table: waiting, running, and failed and held
# for inspection (on_failure="hold"). Finished jobs leave the table.
QUEUED, PICKED, FAILED = "queued", "picked", "failed"
QUEUE_STATUSES = (QUEUED, PICKED, FAILED)


async def check_integrity(
    factory: async_sessionmaker[AsyncSession], keys: AuditKeyRing, export_dir: Path | None
) -> IntegrityCheck:
    """Verify the whole chain against every stored checkpoint; if it holds, sign its head
    and write the checkpoint to `export_dir`. The outcome is recorded either way. A chain
    that does not verify is an alert (`audit_verification_failed` at error level), never a
    checkpoint: a head is not vouched for unless the history behind it holds."""
    started = utcnow()
    made: Checkpoint | None = None
    failure: Exception | None = None
    error: str | None = None
    async with factory() as session:
        report = await audit_service.verify_chain(session, keys.public_keys())
        if report.ok and report.head_seq > 0:
            try:
                made = await audit_service.checkpoint(session, keys)
            except Conflict as refused:
                bad = (refused.extensions or {}).get("first_bad_seq")
                if bad is None:  # e.g. the key file changed while signing: try again later
                    failure, error = refused, f"no checkpoint was signed: {refused.detail}"
                else:  # verified a moment ago, refused now: the chain changed in between
                    report.fail(int(bad), str((refused.extensions or {}).get("problem")))
        await session.commit()
    check = IntegrityCheck(
        started_at=started,
        finished_at=started,
        ok=report.ok,
        events_checked=report.events_checked,
        head_seq=report.head_seq,
        first_bad_seq=report.first_bad_seq,
        problem=report.problem,
        checkpoint_seq=made.seq if made else None,
        error=error,
    )
    if not report.ok:
        _alert(report)
    if made is not None and export_dir is not None:
        try:
            check.checkpoint_file = str(
                export_checkpoint(audit_service.checkpoint_document(made, keys), made, export_dir)
            )
        except OSError as unwritable:
            failure = unwritable
            check.error = f"the checkpoint was signed but not exported: {type(unwritable).__name__}"
            log.error("checkpoint_export_failed", directory=str(export_dir), error=check.error)
    check.finished_at = utcnow()
    async with factory() as session:
        await repository.add_integrity_check(session, check)
        await session.commit()
    if failure is not None:
        raise failure
    if report.ok:
        log.info(
            "audit_verified",
            head_seq=report.head_seq,
            events_checked=report.events_checked,
            checkpoint_seq=check.checkpoint_seq,
            checkpoint_file=check.checkpoint_file,
        )
    return check


def _alert(report: Report) -> None:
    # Where, not what: the event's content stays in the database.
    log.error(
        "audit_verification_failed",
        first_bad_seq=report.first_bad_seq,
        head_seq=report.head_seq,
        events_checked=report.events_checked,
    )


def checkpoint_file_name(made: Checkpoint) -> str:
    """Sorts by sequence number, then signing time."""
    return f"checkpoint-{made.seq:012d}-{made.signed_at:%Y%m%dT%H%M%SZ}.json"


def export_checkpoint(document: dict[str, object], made: Checkpoint, export_dir: Path) -> Path:
    """Write the checkpoint document (as `habeas audit checkpoint --out` does) to a new
    file in `export_dir`, atomically: whoever collects the directory sees whole files
    only, never a half-written one, even if the worker dies while writing."""
    export_dir.mkdir(parents=True, exist_ok=True)
    target = export_dir / checkpoint_file_name(made)
    if target.exists():  # the same head, already exported by an earlier run
        return target
    descriptor, temporary = tempfile.mkstemp(dir=export_dir, prefix=".checkpoint-", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(json.dumps(document, indent=2) + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(export_dir, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a crash
    finally:
        os.close(directory)
    return target


async def purge(factory: async_sessionmaker[AsyncSession], settings: Settings) -> dict[str, int]:
    """Expired records (app/jobs/housekeeping.py), and failed jobs held past their days."""
    purged = await purge_expired(factory, settings)
    async with factory() as session:
        purged["failed_jobs"] = await repository.delete_failed_jobs(
            session, timedelta(days=settings.failed_job_retention_days)
        )
        await session.commit()
    if any(purged.values()):
        log.info("purged_expired", **purged)
    return purged


@dataclass(frozen=True)
class LastIntegrityCheck:
    finished_at: datetime
    ok: bool
    first_bad_seq: int | None
    checkpoint_seq: int | None
    error: str | None


@dataclass(frozen=True)
class JobHealth:
    """What the operator's gauges show: jobs by (entrypoint, status) in pgqueuer's queue
    (queued, picked, failed), the failed ones among them, the latest integrity check and
    when the chain last verified (an alert on its age catches a worker that stopped), and
    the scheduled reports' runs by status (failed: periods with no report yet because
    every attempt so far failed)."""

    queue_depth: dict[tuple[str, str], int]
    failed_jobs: int
    last_integrity_check: LastIntegrityCheck | None
    last_verified_at: datetime | None
    report_runs: dict[str, int]


async def job_health(session: AsyncSession) -> JobHealth:
    depth = await repository.queue_depth(session)
    latest = await repository.latest_integrity_check(session)
    last_ok = latest if latest is not None and latest.ok else None
    if last_ok is None:
        last_ok = await repository.latest_integrity_check(session, ok_only=True)
    return JobHealth(
        queue_depth=depth,
        failed_jobs=sum(count for (_, status), count in depth.items() if status == FAILED),
        last_integrity_check=(
            LastIntegrityCheck(
                finished_at=latest.finished_at,
                ok=latest.ok,
                first_bad_seq=latest.first_bad_seq,
                checkpoint_seq=latest.checkpoint_seq,
                error=latest.error,
            )
            if latest is not None
            else None
        ),
        last_verified_at=last_ok.finished_at if last_ok is not None else None,
        report_runs=await report_schedules.runs_by_status(session),
    )

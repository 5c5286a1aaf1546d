"""Use cases of report schedules: coordinators make and change them, coordinators,
analysts and admins read them and their runs; and the job `habeas worker` runs
(`make_due_reports`): every period of every enabled schedule that is over and has no
report yet is generated, the oldest first.

A period is due from the last whole period before the schedule was made up to the last
whole period before today (app/reports/schedules/periods.py), so a period missed while no
worker ran is caught up at the next run, and one that succeeded is never made twice (one
run per schedule and period, unique). Each period is tried `report_attempts` times with a
doubling pause; what failed is recorded on its run (status, attempts, error), logged at
error level, counted by the job health figures, and tried again at the next run of the job.
"""

import asyncio
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from app.access.caller import Caller
from app.access.policy import area
from app.audit.journal import Journal, as_system, change, journal_of
from app.cases.models import DeprivationType
from app.core.clock import today, utcnow
from app.core.config import ConfiguredReportSchedule, InvalidSetting, Settings
from app.core.crypto import AuditKeyRing
from app.core.db import commit
from app.core.errors import Conflict, DomainError, Forbidden, HiddenRecord, NotFound
from app.core.pagination import id_keyset_page
from app.core.versioning import bump, check_version
from app.reports import service as reports_service
from app.reports.schedules import repository
from app.reports.schedules.models import (
    ReportSchedule,
    ReportScheduleRun,
    RunStatus,
    ScheduleOrigin,
)
from app.reports.schedules.periods import (
    Cadence,
    Period,
    last_complete_period,
    periods_between,
)
from app.reports.schedules.schemas import (
    ReportScheduleCreate,
    ReportScheduleRead,
    ReportScheduleRunRead,
    ReportScheduleUpdate,
)
from app.reports.schemas import ReportCreate

log = structlog.get_logger(__name__)

# One area for every schedule: who may read one may read them all.
SCHEDULES = area("report_schedules")
READ, MANAGE = "report_schedule.read", "report_schedule.manage"
# The audit trail's kind of record.
KIND = "report_schedule"
# A failed attempt's error as recorded on its run: enough to act on, never a whole dump.
MAX_ERROR_CHARS = 2000


# Reading and keeping schedules (the API) ---------------------------------------------------


@dataclass(frozen=True)
class Listed:
    items: list[Any]
    next_cursor: str | None


def schedule_read(schedule: ReportSchedule) -> ReportScheduleRead:
    return ReportScheduleRead.model_validate(schedule)


def run_read(run: ReportScheduleRun) -> ReportScheduleRunRead:
    return ReportScheduleRunRead.model_validate(run)


def _snapshot(journal: Journal, schedule: ReportSchedule) -> dict[str, Any]:
    return journal.snapshot(KIND, schedule_read(schedule).model_dump(mode="json"))


def _record_change(
    journal: Journal, action: str, schedule: ReportSchedule, before: dict[str, Any] | None
) -> None:
    after = _snapshot(journal, schedule)
    journal.changed(
        action, KIND, schedule.id, changes=[change(KIND, schedule.id, before=before, after=after)]
    )


def _types(values: list[DeprivationType] | None) -> list[str] | None:
    return None if values is None else [value.value for value in values]


async def _refuse_taken_name(session: AsyncSession, name: str, *, own: uuid.UUID | None) -> None:
    taken = await repository.schedule_named(session, name)
    if taken is not None and taken.id != own:
        raise Conflict("Another report schedule has this name.", schedule_id=str(taken.id))


async def create_schedule(
    session: AsyncSession, caller: Caller, data: ReportScheduleCreate
) -> ReportSchedule:
    if not caller.may(MANAGE, SCHEDULES):
        raise Forbidden("You may not do this.")
    await _refuse_taken_name(session, data.name, own=None)
    schedule = ReportSchedule(
        **data.model_dump(exclude={"held_deprivation_types"}),
        held_deprivation_types=_types(data.held_deprivation_types),
        origin=ScheduleOrigin.api,
        created_by=caller.principal.staff_id,
    )
    await repository.save(session, schedule)
    _record_change(journal_of(session), "report_schedule.create", schedule, None)
    return schedule


async def get_schedule(
    session: AsyncSession, caller: Caller, schedule_id: uuid.UUID, *, for_update: bool = False
) -> ReportSchedule:
    if not caller.may(READ, SCHEDULES):
        raise HiddenRecord("No such report schedule.")
    schedule = await repository.get_schedule(session, schedule_id, for_update=for_update)
    if schedule is None:
        raise NotFound("No such report schedule.")
    return schedule


async def update_schedule(
    session: AsyncSession,
    caller: Caller,
    schedule_id: uuid.UUID,
    *,
    expected_version: int,
    data: ReportScheduleUpdate,
) -> ReportSchedule:
    schedule = await get_schedule(session, caller, schedule_id, for_update=True)
    caller.require(MANAGE, SCHEDULES)
    if schedule.origin is ScheduleOrigin.configuration:
        raise Conflict(
            "This schedule is set in the configuration (HABEAS_REPORT_SCHEDULES): change it there."
        )
    check_version(schedule.version, expected_version, what="report schedule")
    if data.name is not None:
        await _refuse_taken_name(session, data.name, own=schedule.id)
    journal = journal_of(session)
    before = _snapshot(journal, schedule)
    changes = data.model_dump(include=data.model_fields_set)
    if "held_deprivation_types" in changes:
        changes["held_deprivation_types"] = _types(data.held_deprivation_types)
    for field, value in changes.items():
        setattr(schedule, field, value)
    bump(schedule)
    await repository.save(session, schedule)
    _record_change(journal, "report_schedule.update", schedule, before)
    return schedule


async def list_schedules(
    session: AsyncSession, caller: Caller, *, cursor: str | None, limit: int
) -> Listed:
    if not caller.may(READ, SCHEDULES):
        raise Forbidden("You may not do this.")

    async def fetch(after: uuid.UUID | None, count: int) -> list[ReportSchedule]:
        return await repository.schedules_after(session, after, count)

    items, next_cursor = await id_keyset_page(fetch, {}, cursor=cursor, limit=limit)
    return Listed([schedule_read(item) for item in items], next_cursor)


async def list_runs(
    session: AsyncSession,
    caller: Caller,
    schedule_id: uuid.UUID,
    *,
    cursor: str | None,
    limit: int,
) -> Listed:
    """The schedule's runs in the order they were first tried (ids are UUIDv7)."""
    schedule = await get_schedule(session, caller, schedule_id)

    async def fetch(after: uuid.UUID | None, count: int) -> list[ReportScheduleRun]:
        return await repository.runs_after(session, schedule.id, after, count)

    query = {"schedule": str(schedule.id)}
    items, next_cursor = await id_keyset_page(fetch, query, cursor=cursor, limit=limit)
    return Listed([run_read(item) for item in items], next_cursor)


async def runs_by_status(session: AsyncSession) -> dict[str, int]:
    """Runs by status, every status included: the failed ones are periods that have no
    report yet because every attempt so far failed (the job health figures)."""
    counted = await repository.runs_by_status(session)
    return {status.value: counted.get(status.value, 0) for status in RunStatus}


# The schedules of the configuration ----------------------------------------------------------


def check_configuration(settings: Settings) -> None:
    """InvalidSetting for HABEAS_REPORT_SCHEDULES that cannot be kept: a name given twice,
    a deprivation type that does not exist."""
    names = [configured.name for configured in settings.report_schedules]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InvalidSetting(f"HABEAS_REPORT_SCHEDULES names {repeated[0]!r} more than once")
    known = {value.value for value in DeprivationType}
    for configured in settings.report_schedules:
        unknown = sorted(set(configured.held_deprivation_types or ()) - known)
        if unknown:
            raise InvalidSetting(
                f"HABEAS_REPORT_SCHEDULES: {configured.name!r} names an unknown deprivation"
                f" type {unknown[0]!r} (known: {', '.join(sorted(known))})"
            )


def _configured_values(configured: ConfiguredReportSchedule) -> dict[str, Any]:
    return {
        "cadence": Cadence(configured.cadence),
        "jurisdiction": configured.jurisdiction,
        "baseline": configured.baseline,
        "held_deprivation_types": configured.held_deprivation_types,
        "enabled": configured.enabled,
    }


async def keep_configured_schedules(session: AsyncSession, settings: Settings) -> None:
    """Make the configuration's schedules as given: new ones made, changed ones changed,
    those no longer configured disabled (their runs stay on record). The system acts; each
    change is in the audit trail. A name an API schedule already has is not taken over:
    the conflict is logged at error level and that configured schedule is left out."""
    journal = journal_of(session)
    existing = {
        schedule.name: schedule for schedule in await repository.configured_schedules(session)
    }
    for configured in settings.report_schedules:
        values = _configured_values(configured)
        schedule = existing.pop(configured.name, None)
        if schedule is None:
            taken = await repository.schedule_named(session, configured.name)
            if taken is not None:
                log.error(
                    "report_schedule_name_taken",
                    name=configured.name,
                    schedule_id=str(taken.id),
                    setting="HABEAS_REPORT_SCHEDULES",
                )
                continue
            schedule = ReportSchedule(
                name=configured.name, origin=ScheduleOrigin.configuration, **values
            )
            await repository.save(session, schedule)
            _record_change(journal, "report_schedule.configure", schedule, None)
            continue
        if all(getattr(schedule, field) == value for field, value in values.items()):
            continue
        before = _snapshot(journal, schedule)
        for field, value in values.items():
            setattr(schedule, field, value)
        bump(schedule)
        await repository.save(session, schedule)
        _record_change(journal, "report_schedule.configure", schedule, before)
    for schedule in existing.values():
        if schedule.enabled:
            before = _snapshot(journal, schedule)
            schedule.enabled = False
            bump(schedule)
            await repository.save(session, schedule)
            _record_change(journal, "report_schedule.configure", schedule, before)


# The job -------------------------------------------------------------------------------


class ReportsFailed(Exception):
    """Some due periods have no report after every attempt of this run: the job fails
    (pgqueuer holds it as failed, counted by the job figures) once the rest is done."""


@dataclass(frozen=True)
class Outcome:
    schedule_id: uuid.UUID
    period: Period
    status: RunStatus
    snapshot_id: uuid.UUID | None


def due_periods(schedule: ReportSchedule, *, run_date: date, succeeded: set[date]) -> list[Period]:
    """The periods of the schedule that are over on `run_date` and have no report, oldest
    first: from the last whole period before the schedule was made."""
    first = last_complete_period(schedule.cadence, schedule.created_at.date())
    last = last_complete_period(schedule.cadence, run_date)
    return [
        period
        for period in periods_between(schedule.cadence, first, last)
        if period.as_of not in succeeded
    ]


def request_of(schedule: ReportSchedule, period: Period) -> ReportCreate:
    """The report a schedule asks for a period: as known at its generation."""
    return ReportCreate.model_validate(
        {
            "as_of": period.as_of,
            "period": {"from": period.period_from, "to": period.period_to},
            "baseline": schedule.baseline,
            "jurisdiction": schedule.jurisdiction,
            "held_deprivation_types": schedule.held_deprivation_types,
        }
    )


def _describe(error: Exception) -> str:
    detail = error.detail if isinstance(error, DomainError) else str(error)
    described = f"{type(error).__name__}: {detail}" if detail else type(error).__name__
    return described[:MAX_ERROR_CHARS]


async def make_due_reports(
    factory: async_sessionmaker[AsyncSession], settings: Settings, audit_keys: AuditKeyRing
) -> list[Outcome]:
    """Keep the configuration's schedules, then generate every due report (at most
    `report_catch_up_limit` periods per schedule, the oldest first; the rest at the next
    run). Raises ReportsFailed, after the rest is done, if any period failed every attempt."""
    async with factory() as session:
        as_system(session, audit_keys)
        await keep_configured_schedules(session, settings)
        await commit(session)
    run_date = today()
    async with factory() as session:
        schedules = await repository.enabled_schedules(session)
        due = {
            schedule.id: due_periods(
                schedule,
                run_date=run_date,
                succeeded=await repository.succeeded_as_ofs(session, schedule.id),
            )
            for schedule in schedules
        }
    outcomes: list[Outcome] = []
    for schedule in schedules:
        periods = due[schedule.id]
        limit = settings.report_catch_up_limit
        if len(periods) > limit:
            log.warning(
                "report_periods_deferred",
                schedule_id=str(schedule.id),
                due=len(periods),
                made_now=limit,
                first_deferred=periods[limit].as_of.isoformat(),
            )
        for period in periods[:limit]:
            outcomes.append(
                await _make_report(
                    factory,
                    settings=settings,
                    audit_keys=audit_keys,
                    schedule=schedule,
                    period=period,
                )
            )
    failed = [outcome for outcome in outcomes if outcome.status is RunStatus.failed]
    if failed:
        raise ReportsFailed(f"{len(failed)} scheduled report(s) failed every attempt")
    return outcomes


async def _make_report(
    factory: async_sessionmaker[AsyncSession],
    *,
    settings: Settings,
    audit_keys: AuditKeyRing,
    schedule: ReportSchedule,
    period: Period,
) -> Outcome:
    attempts = settings.report_attempts
    for attempt in range(1, attempts + 1):
        async with factory() as session:
            run = await repository.start_attempt(
                session, schedule_id=schedule.id, period=period, at=utcnow()
            )
            await session.commit()
        try:
            snapshot_id = await _generate(
                factory, settings=settings, audit_keys=audit_keys, run=run, schedule=schedule
            )
        # Whatever the generation raised (a refused parameter, the database away, a bug)
        # is recorded on the run and logged: a period is never skipped unnoticed.
        except Exception as error:
            described = _describe(error)
            await _record_failure(factory, run.id, described)
            log.error(
                "status_report_failed",
                schedule_id=str(schedule.id),
                as_of=period.as_of.isoformat(),
                attempt=attempt,
                of=attempts,
                run_attempts=run.attempts,
                error=described,
            )
            if attempt < attempts:
                await asyncio.sleep(settings.report_retry_seconds * 2 ** (attempt - 1))
            continue
        log.info(
            "status_report_made",
            schedule_id=str(schedule.id),
            as_of=period.as_of.isoformat(),
            snapshot_id=str(snapshot_id),
        )
        return Outcome(schedule.id, period, RunStatus.succeeded, snapshot_id)
    return Outcome(schedule.id, period, RunStatus.failed, None)


async def _generate(
    factory: async_sessionmaker[AsyncSession],
    *,
    settings: Settings,
    audit_keys: AuditKeyRing,
    run: ReportScheduleRun,
    schedule: ReportSchedule,
) -> uuid.UUID:
    """Generate the report (the snapshot and its audit record, the system acting) and mark
    its run succeeded, in one transaction: a run is never succeeded without its snapshot,
    nor a snapshot left without its run."""
    period = Period(run.period_from, run.period_to)
    async with factory() as session:
        as_system(session, audit_keys)
        snapshot = await reports_service.generate(
            session,
            data=request_of(schedule, period),
            generated_by=None,
            settle_seconds=settings.report_settle_seconds,
        )
        await _mark(session, run.id, status=RunStatus.succeeded, snapshot_id=snapshot.id)
        await commit(session)
    return snapshot.id


async def _record_failure(
    factory: async_sessionmaker[AsyncSession], run_id: uuid.UUID, error: str
) -> None:
    async with factory() as session:
        await _mark(session, run_id, status=RunStatus.failed, error=error)
        await session.commit()


async def _mark(
    session: AsyncSession,
    run_id: uuid.UUID,
    *,
    status: RunStatus,
    snapshot_id: uuid.UUID | None = None,
    error: str | None = None,
) -> None:
    run = await repository.get_run(session, run_id, for_update=True)
    assert run is not None  # runs are never deleted
    run.status, run.finished_at = status, utcnow()
    if snapshot_id is not None:
        run.snapshot_id = snapshot_id
    if error is not None:
        run.error = error
    await repository.save(session, run)

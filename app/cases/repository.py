"""Every SQL query of the cases feature."""

import json
import uuid
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, not_, or_, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from app.access.visibility import PersonFacts, person_closed_sql
from app.cases.held import former_political_prisoner
from app.cases.models import (
    CaseFile,
    ClaimOutcome,
    ClaimResolution,
    EventRecord,
    StatusEvent,
    StatusEventRetraction,
)
from app.cases.schemas import CaseFilters, CaseUpdate
from app.cases.statuses import LEAVING_CUSTODY, TAKES_EFFECT, Status
from app.core.columns import TextEnum
from app.core.dates import Precision
from app.core.db import driver_connection, loaded
from app.custody import filters as custody
from app.recognition.criteria import RecognitionStatus


async def next_reference_number(session: AsyncSession) -> int:
    return int((await session.exec(select(func.nextval("case_reference_seq")))).one())


async def add(session: AsyncSession, case: CaseFile, events: Sequence[StatusEvent]) -> None:
    session.add(case)
    await session.flush()
    await add_events(session, events)


# The hot paths (read, lock, history, status writes) run their SQL on the session's own
# asyncpg connection and transaction: through SQLAlchemy each statement cost several times
# its database time (docs/performance.md). The SQL text is generated from the table
# definitions, so it follows every migration of the models.
_CASES = CaseFile.__table__  # type: ignore[attr-defined]
_EVENTS = StatusEvent.__table__  # type: ignore[attr-defined]
_RETRACTIONS = StatusEventRetraction.__table__  # type: ignore[attr-defined]
_RESOLUTIONS = ClaimResolution.__table__  # type: ignore[attr-defined]
_CASE_FIELDS = [c.name for c in _CASES.c]
_EVENT_FIELDS = [c.name for c in _EVENTS.c]
_RETRACTION_FIELDS = [c.name for c in _RETRACTIONS.c]
_RESOLUTION_FIELDS = [c.name for c in _RESOLUTIONS.c]
_RESOLUTION_ENUMS = {c.name: c.type.enum for c in _RESOLUTIONS.c if isinstance(c.type, TextEnum)}
_JSONB_CASE_FIELDS = {c.name for c in _CASES.c if isinstance(c.type, JSONB)}
_JSONB_EVENT_FIELDS = {c.name for c in _EVENTS.c if isinstance(c.type, JSONB)}
# The columns the driver returns as text that the models type as enums.
_CASE_ENUMS = {c.name: c.type.enum for c in _CASES.c if isinstance(c.type, TextEnum)}
_EVENT_ENUMS = {c.name: c.type.enum for c in _EVENTS.c if isinstance(c.type, TextEnum)}
# Stored as JSON: what a client sends for them is written in its JSON form.
JSON_COLUMNS = frozenset(_JSONB_CASE_FIELDS)
CASE_LIST = ", ".join(_CASE_FIELDS)
SQL_CASE = f"SELECT {CASE_LIST} FROM case_file WHERE id = $1"
SQL_CASE_LOCKED = SQL_CASE + " FOR UPDATE"
# A case file with what its access needs of its person (`PersonFacts`), in one round trip.
SQL_CASE_SEEN = (
    f"SELECT {CASE_LIST}, {person_closed_sql('case_file.person_id')} AS person_closed"
    " FROM case_file WHERE id = $1"
)
SQL_CASE_SEEN_LOCKED = SQL_CASE_SEEN + " FOR UPDATE OF case_file"
SQL_CASES = f"SELECT {CASE_LIST} FROM case_file WHERE id = ANY($1::uuid[]) ORDER BY id"
SQL_CASES_LOCKED = SQL_CASES + " FOR UPDATE"
SQL_PERSON_CASES_LOCKED = (
    f"SELECT {CASE_LIST} FROM case_file WHERE person_id = $1 ORDER BY id FOR UPDATE"
)
SQL_EVENTS = (
    "SELECT "
    + ", ".join(f"e.{n}" for n in _EVENT_FIELDS)
    + ", "
    + ", ".join(f"r.{n} AS retraction_{n}" for n in _RETRACTION_FIELDS)
    + ", "
    + ", ".join(f"s.{n} AS resolution_{n}" for n in _RESOLUTION_FIELDS)
    + " FROM status_event e LEFT JOIN status_event_retraction r ON r.event_id = e.id"
    " LEFT JOIN status_claim_resolution s ON s.event_id = e.id"
    " WHERE e.case_file_id = ANY($1::uuid[]) ORDER BY e.case_file_id, e.position"
)
SQL_INSERT_EVENT = (
    f"INSERT INTO status_event ({', '.join(_EVENT_FIELDS)}) VALUES "
    f"({', '.join(f'${i}' for i in range(1, len(_EVENT_FIELDS) + 1))})"
)
# One statement for one or five hundred case files; a row whose version moved on since
# it was read is not updated, and the caller is told (never a silent lost update).
SQL_UPDATE_STATUS = """
UPDATE case_file AS c
SET status = u.status, status_since = u.status_since,
    status_since_precision = u.status_since_precision,
    status_confidence = u.status_confidence, detained_on = u.detained_on,
    detained_precision = u.detained_precision, in_custody = u.in_custody,
    sentence_type = u.sentence_type, court_decisions = u.court_decisions::jsonb,
    pending_claims = u.pending_claims, version = u.version, updated_at = u.updated_at
FROM unnest($1::uuid[], $2::text[], $3::date[], $4::text[], $5::text[], $6::date[],
            $7::text[], $8::bool[], $9::text[], $10::text[], $11::int[], $12::int[],
            $13::timestamptz[])
     AS u(id, status, status_since, status_since_precision, status_confidence, detained_on,
          detained_precision, in_custody, sentence_type, court_decisions, pending_claims,
          version, updated_at)
WHERE c.id = u.id AND c.version = u.version - 1
RETURNING c.id
"""
SQL_UPDATE_RECOGNITION = """
UPDATE case_file AS c
SET recognition_status = $2, version = u.version, updated_at = $3
FROM unnest($1::uuid[], $4::int[]) AS u(id, version)
WHERE c.id = u.id AND c.version = u.version - 1
RETURNING c.id
"""
# The fields a client may change with PATCH: exactly those of CaseUpdate.
EDITABLE_COLUMNS = tuple(CaseUpdate.model_fields)


def _json_text(value: Any, is_jsonb: bool) -> Any:
    return json.dumps(value) if is_jsonb else value


def _typed(
    row: Mapping[str, Any], names: Sequence[str], enums: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        name: enums[name](row[name]) if name in enums and row[name] is not None else row[name]
        for name in names
    }


def _case(row: Mapping[str, Any]) -> CaseFile:
    return loaded(CaseFile, _typed(row, _CASE_FIELDS, _CASE_ENUMS))


async def seen(
    session: AsyncSession, case_id: uuid.UUID, *, for_update: bool = False
) -> tuple[CaseFile, PersonFacts] | None:
    """A case file and the facts of its person that its access depends on."""
    driver = await driver_connection(session)
    row = await driver.fetchrow(SQL_CASE_SEEN_LOCKED if for_update else SQL_CASE_SEEN, case_id)
    return None if row is None else (_case(row), PersonFacts(closed=row["person_closed"]))


async def lock_many(session: AsyncSession, case_ids: Collection[uuid.UUID]) -> list[CaseFile]:
    """Lock the case files in id order, so that concurrent batches cannot deadlock."""
    driver = await driver_connection(session)
    return [_case(row) for row in await driver.fetch(SQL_CASES_LOCKED, list(case_ids))]


async def get_many(session: AsyncSession, case_ids: Collection[uuid.UUID]) -> list[CaseFile]:
    driver = await driver_connection(session)
    return [_case(row) for row in await driver.fetch(SQL_CASES, list(case_ids))]


async def lock_of_person(session: AsyncSession, person_id: uuid.UUID) -> list[CaseFile]:
    """Lock a person's case files in id order (as lock_many does)."""
    driver = await driver_connection(session)
    return [_case(row) for row in await driver.fetch(SQL_PERSON_CASES_LOCKED, person_id)]


async def events_of(
    session: AsyncSession, case_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, list[EventRecord]]:
    """Each case file's events in recorded order, with their retraction and the
    settlement of a claim, if any."""
    driver = await driver_connection(session)
    grouped: dict[uuid.UUID, list[EventRecord]] = defaultdict(list)
    for row in await driver.fetch(SQL_EVENTS, list(case_ids)):
        # History rows are only read, so they skip the (costly) validating constructor.
        event = StatusEvent.model_construct(**_typed(row, _EVENT_FIELDS, _EVENT_ENUMS))
        retraction = (
            StatusEventRetraction.model_construct(
                **{n: row[f"retraction_{n}"] for n in _RETRACTION_FIELDS}
            )
            if row["retraction_id"] is not None
            else None
        )
        resolution = (
            ClaimResolution.model_construct(
                **_typed(
                    {n: row[f"resolution_{n}"] for n in _RESOLUTION_FIELDS},
                    _RESOLUTION_FIELDS,
                    _RESOLUTION_ENUMS,
                )
            )
            if row["resolution_id"] is not None
            else None
        )
        grouped[event.case_file_id].append(EventRecord(event, retraction, resolution))
    return grouped


async def add_events(session: AsyncSession, events: Sequence[StatusEvent]) -> None:
    driver = await driver_connection(session)
    await driver.executemany(
        SQL_INSERT_EVENT,
        [
            [_json_text(getattr(event, n), n in _JSONB_EVENT_FIELDS) for n in _EVENT_FIELDS]
            for event in events
        ],
    )


async def add_retractions(
    session: AsyncSession, retractions: Sequence[StatusEventRetraction]
) -> None:
    session.add_all(retractions)
    await session.flush()


async def add_resolution(session: AsyncSession, resolution: ClaimResolution) -> None:
    session.add(resolution)
    await session.flush()


async def save_status(session: AsyncSession, cases: Sequence[CaseFile]) -> bool:
    """Write the new derived status and version of case files read (and locked) earlier.

    False if any of them had changed since it was read; the caller must then refuse.
    """
    driver = await driver_connection(session)
    updated = await driver.fetch(
        SQL_UPDATE_STATUS,
        [case.id for case in cases],
        [case.status for case in cases],
        [case.status_since for case in cases],
        [case.status_since_precision for case in cases],
        [case.status_confidence for case in cases],
        [case.detained_on for case in cases],
        [case.detained_precision for case in cases],
        [case.in_custody for case in cases],
        [case.sentence_type for case in cases],
        [json.dumps(case.court_decisions) for case in cases],
        [case.pending_claims for case in cases],
        [case.version for case in cases],
        [case.updated_at for case in cases],
    )
    return len(updated) == len(cases)


async def save_recognition_status(
    session: AsyncSession, cases: Sequence[CaseFile], status: RecognitionStatus
) -> bool:
    """Write the recognition status, version and time of case files read (and locked)
    earlier, all changed at the same time; False if any had changed since."""
    if not cases:
        return True
    driver = await driver_connection(session)
    updated = await driver.fetch(
        SQL_UPDATE_RECOGNITION,
        [case.id for case in cases],
        status.value,
        cases[0].updated_at,
        [case.version for case in cases],
    )
    return len(updated) == len(cases)


async def save_fields(
    session: AsyncSession, case: CaseFile, *, fields: Collection[str], read_version: int
) -> bool:
    """Write the given editable fields, the version and the time of a case file read
    earlier; False if it had changed since."""
    names = [name for name in EDITABLE_COLUMNS if name in fields]
    assignments = [f"{name} = ${i}" for i, name in enumerate(names, start=4)]
    statement = (
        "UPDATE case_file SET "
        + ", ".join(["version = $2", "updated_at = $3", *assignments])
        + f" WHERE id = $1 AND version = ${len(names) + 4}"
    )
    values = [_json_text(getattr(case, n), n in _JSONB_CASE_FIELDS) for n in names]
    driver = await driver_connection(session)
    result = await driver.execute(
        statement, case.id, case.version, case.updated_at, *values, read_version
    )
    return str(result) == "UPDATE 1"


async def page(
    session: AsyncSession,
    *,
    readable: ColumnElement[bool],
    filters: CaseFilters,
    person_ids: SelectOfScalar[uuid.UUID] | None,
    after: uuid.UUID | None,
    limit: int,
) -> list[CaseFile]:
    """A page of the case files that `readable` (app/access/visibility.py) lets through;
    `person_ids` (from the persons feature) narrows by person."""
    stmt = select(CaseFile).where(readable)
    if person_ids is not None:
        stmt = stmt.where(col(CaseFile.person_id).in_(person_ids))
    if filters.status is not None:
        stmt = stmt.where(CaseFile.status == filters.status)
    if filters.jurisdiction is not None:
        stmt = stmt.where(CaseFile.jurisdiction == filters.jurisdiction)
    if filters.article is not None:
        stmt = stmt.where(col(CaseFile.charges).contains([{"article": filters.article}]))
    for condition in _date_conditions(filters):
        stmt = stmt.where(condition)
    if filters.confidence is not None:
        stmt = stmt.where(CaseFile.status_confidence == filters.confidence)
    if filters.has_pending_claims is not None:
        pending = col(CaseFile.pending_claims) > 0
        stmt = stmt.where(pending if filters.has_pending_claims else ~pending)
    if filters.in_custody is not None:
        stmt = stmt.where(CaseFile.in_custody == filters.in_custody)
    if filters.sentence_type is not None:
        stmt = stmt.where(CaseFile.sentence_type == filters.sentence_type)
    if filters.destination_country is not None:
        stmt = stmt.where(
            _has_event_in_effect(
                col(StatusEvent.to_status) == Status.deported,
                StatusEvent.details["destination_country"].astext == filters.destination_country,
            )
        )
    if filters.person_id is not None:
        stmt = stmt.where(CaseFile.person_id == filters.person_id)
    if filters.facility_id is not None:
        stmt = stmt.where(col(CaseFile.id).in_(custody.case_ids_at_facility(filters.facility_id)))
    if filters.incommunicado is not None:
        held_apart = col(CaseFile.id).in_(custody.case_ids_incommunicado())
        stmt = stmt.where(held_apart if filters.incommunicado else ~held_apart)
    if filters.recognition_status is not None:
        stmt = stmt.where(CaseFile.recognition_status == filters.recognition_status)
    if filters.former_political_prisoner is not None:
        former = former_political_prisoner()
        stmt = stmt.where(former if filters.former_political_prisoner else not_(former))
    if after is not None:
        stmt = stmt.where(CaseFile.id > after)
    return list(await session.exec(stmt.order_by(col(CaseFile.id)).limit(limit)))


def _last_day(day: Any, precision: Any) -> ColumnElement[Any]:
    """The last day a partial date (its first day and precision) may stand for."""
    return case(
        (
            precision == Precision.month,
            func.date_trunc("month", day) + text("interval '1 month - 1 day'"),
        ),
        (
            precision == Precision.year,
            func.date_trunc("year", day) + text("interval '1 year - 1 day'"),
        ),
        else_=day,
    )


def _overlaps(day: Any, precision: Any, since: date | None, until: date | None) -> list[Any]:
    """A partial date is the interval of days it may stand for; it matches a range when the
    two overlap (a detention in "2021-08" matches `from=2021-08-20`)."""
    conditions = []
    if since is not None:
        conditions.append(_last_day(day, precision) >= since)
    if until is not None:
        conditions.append(day <= until)
    return conditions


def _in_effect() -> ColumnElement[bool]:
    """The status event (in a correlated query) takes effect: not withdrawn, and either
    not a claim or a confirmed one."""
    retracted = exists().where(col(StatusEventRetraction.event_id) == StatusEvent.id)
    confirmed = exists().where(
        col(ClaimResolution.event_id) == StatusEvent.id,
        col(ClaimResolution.outcome) == ClaimOutcome.confirmed,
    )
    return and_(
        ~retracted,
        or_(col(StatusEvent.confidence).in_(list(TAKES_EFFECT)), confirmed),
    )


def _has_event_in_effect(*conditions: Any) -> ColumnElement[bool]:
    return exists().where(col(StatusEvent.case_file_id) == CaseFile.id, _in_effect(), *conditions)


def _date_conditions(filters: CaseFilters) -> list[Any]:
    conditions = [
        *_overlaps(
            col(CaseFile.detained_on),
            col(CaseFile.detained_precision),
            filters.detained_from,
            filters.detained_to,
        ),
        *_overlaps(
            col(CaseFile.status_since),
            col(CaseFile.status_since_precision),
            filters.status_changed_from,
            filters.status_changed_to,
        ),
    ]
    if filters.released_from is not None or filters.released_to is not None:
        conditions.append(
            _has_event_in_effect(
                col(StatusEvent.to_status).in_(list(LEAVING_CUSTODY)),
                *_overlaps(
                    col(StatusEvent.effective_date),
                    col(StatusEvent.effective_precision),
                    filters.released_from,
                    filters.released_to,
                ),
            )
        )
    return conditions


def readable_ids(readable: ColumnElement[bool]) -> SelectOfScalar[uuid.UUID]:
    return select(CaseFile.id).where(readable)


def is_readable(readable: ColumnElement[bool], case_id: Mapped[uuid.UUID]) -> ColumnElement[bool]:
    """`readable` of the case file `case_id` names, as a value for each row of another
    table: a scalar subquery, which PostgreSQL runs per row (a primary-key probe); as
    `EXISTS` or `IN` it would read every readable case file into a hash first."""
    return select(readable).where(col(CaseFile.id) == case_id).scalar_subquery()


def person_ids_of(readable: ColumnElement[bool]) -> SelectOfScalar[uuid.UUID]:
    return select(CaseFile.person_id).where(readable)


async def case_ids_of_collective(
    session: AsyncSession, collective_event_id: uuid.UUID
) -> list[uuid.UUID]:
    stmt = (
        select(StatusEvent.case_file_id)
        .where(StatusEvent.collective_event_id == collective_event_id)
        .distinct()
        .order_by(col(StatusEvent.case_file_id))
    )
    return list(await session.exec(stmt))


async def counts_of_collectives(
    session: AsyncSession,
    collective_event_ids: Sequence[uuid.UUID],
    *,
    readable: ColumnElement[bool],
) -> dict[uuid.UUID, int]:
    """For each collective event, how many of its case files `readable` lets through."""
    collective_id = col(StatusEvent.collective_event_id)
    stmt = (
        select(collective_id, func.count(func.distinct(StatusEvent.case_file_id)))
        .join(CaseFile, col(CaseFile.id) == StatusEvent.case_file_id)
        .where(
            collective_id.in_(list(collective_event_ids)),
            readable,
        )
        .group_by(collective_id)
    )
    return {row[0]: int(row[1]) for row in await session.exec(stmt) if row[0] is not None}


async def save_person(session: AsyncSession, cases: Sequence[CaseFile]) -> bool:
    """Write the person, version and time of case files read (and locked) earlier (a
    merge moves them); False if any had changed since."""
    driver = await driver_connection(session)
    updated = await driver.fetch(
        "UPDATE case_file AS c SET person_id = m.person_id, version = m.version, "
        "updated_at = m.updated_at "
        "FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::timestamptz[]) "
        "AS m(id, person_id, version, updated_at) "
        "WHERE c.id = m.id AND c.version = m.version - 1 RETURNING c.id",
        [case.id for case in cases],
        [case.person_id for case in cases],
        [case.version for case in cases],
        [case.updated_at for case in cases],
    )
    return len(updated) == len(cases)

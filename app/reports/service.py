"""Status reports: generate one as an immutable snapshot, read and list snapshots, and the
consented public list (docs/reports.md).

A report holds public-tier facts only — figures, and the names of people whose families
consented to publication — so that every reader allowed to read reports may read all of
it; who may generate and read them is the policies' decision (policies/*.cedar).
"""

import copy
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import rfc8785
import structlog
from sqlmodel.ext.asyncio.session import AsyncSession

from app.access.caller import Caller
from app.audit.journal import change, journal_of
from app.core.clock import utcnow
from app.core.db import driver_connection
from app.core.errors import NotFound
from app.core.ids import new_id
from app.core.pagination import id_keyset_page
from app.reports import asof, basis, repository
from app.reports.knowledge import REPORT_SETTINGS, knowledge_time
from app.reports.models import ReportKind, ReportSnapshot
from app.reports.schemas import ReportCreate, ReportRead

log = structlog.get_logger(__name__)

# Changes whenever the figures' definitions change, so that a figure is only ever compared
# with one computed the same way.
GENERATOR_VERSION = "2"

_NO_DIFFERENCES: dict[str, Any] = {
    "previous_id": None,
    "previous_as_of": None,
    "entered_custody": None,
    "left_custody": None,
    "died": None,
}


MOVEMENTS = ("entered_custody", "left_custody", "died")


async def report_read(session: AsyncSession, snapshot: ReportSnapshot) -> ReportRead:
    """A snapshot as served: its stored figures, with the claims and the movements of people
    named for those who may be named now (a family may have withdrawn consent since)."""
    people = snapshot.people
    ids = {uuid.UUID(claim["person_id"]) for claim in people.get("claims", [])}
    for movement in MOVEMENTS:
        ids.update(uuid.UUID(person_id) for person_id in people.get(movement, []))
    names = await asof.public_names(await driver_connection(session), sorted(ids))
    figures = copy.deepcopy(snapshot.figures)
    figures["claims"]["unconfirmed"]["items"] = [
        {
            "to_status": claim["to_status"],
            "effective_date": claim["effective_date"],
            "name": names[uuid.UUID(claim["person_id"])],
        }
        for claim in people.get("claims", [])
        if uuid.UUID(claim["person_id"]) in names
    ]
    differences = dict(snapshot.differences)
    for movement in MOVEMENTS:
        if differences.get(movement) is not None:
            named = sorted(
                names[person]
                for person in (uuid.UUID(text) for text in people.get(movement, []))
                if person in names
            )
            differences[movement] = {
                **differences[movement],
                "named": [{"name": name} for name in named],
            }
    return ReportRead.model_validate(
        {
            "id": snapshot.id,
            "kind": snapshot.kind,
            "generated_at": snapshot.generated_at,
            "generated_by": snapshot.generated_by,
            "generator_version": snapshot.generator_version,
            "parameters": snapshot.parameters,
            "content_sha256": snapshot.content_sha256,
            "figures": figures,
            "differences": differences,
        }
    )


def content_of(snapshot_fields: dict[str, Any]) -> dict[str, Any]:
    """What a snapshot's hash covers."""
    return {
        "kind": snapshot_fields["kind"],
        "generator_version": snapshot_fields["generator_version"],
        "parameters": snapshot_fields["parameters"],
        "figures": snapshot_fields["figures"],
    }


def content_hash(content: dict[str, Any]) -> str:
    return hashlib.sha256(rfc8785.dumps(content)).hexdigest()


@dataclass(frozen=True, slots=True)
class Resolved:
    question: asof.Question
    parameters: dict[str, Any]
    series: str


def resolve(data: ReportCreate, *, knowledge_time: datetime) -> Resolved:
    held_types = sorted(set(data.held_deprivation_types or asof.DEFAULT_HELD_DEPRIVATION_TYPES))
    question = asof.Question(
        as_of=data.as_of,
        period_from=data.period.from_,
        period_to=data.period.to,
        as_known_at=knowledge_time,
        baseline=data.baseline,
        jurisdiction=data.jurisdiction,
        held_deprivation_types=held_types,
        chart_years=data.chart_years,
    )
    parameters = {
        "as_of": data.as_of.isoformat(),
        "period": {"from": data.period.from_.isoformat(), "to": data.period.to.isoformat()},
        "as_known_at": knowledge_time.isoformat().replace("+00:00", "Z"),
        "baseline": data.baseline.isoformat(),
        "jurisdiction": data.jurisdiction,
        "held_deprivation_types": [kind.value for kind in held_types],
        "chart_years": data.chart_years,
    }
    series = "|".join(
        [
            data.kind.value,
            data.jurisdiction or "*",
            data.baseline.isoformat(),
            ",".join(kind.value for kind in held_types),
        ]
    )
    return Resolved(question, parameters, series)


async def generate(
    session: AsyncSession,
    *,
    data: ReportCreate,
    generated_by: uuid.UUID | None,
    settle_seconds: float,
) -> ReportSnapshot:
    """Compute the report and store it as a snapshot, with its audit record, in the
    request's transaction."""
    moment = await knowledge_time(session, data.as_known_at, settle_seconds)
    resolved = resolve(data, knowledge_time=moment)
    driver = await driver_connection(session)
    for setting in REPORT_SETTINGS:
        await driver.execute(setting)
    previous = await repository.previous_in_series(session, resolved.series, data.as_of)
    snapshot_id = new_id()
    counted = await asof.figures(
        driver,
        resolved.question,
        snapshot_id=snapshot_id,
        earlier=asof.Earlier(previous.id, previous.as_of) if previous else None,
        basis=await basis.usable(session, moment),
    )
    figures = counted.figures
    people: dict[str, Any] = {"claims": counted.claims}
    differences = _NO_DIFFERENCES
    if previous is not None and counted.movements is not None:
        differences = {
            "previous_id": str(previous.id),
            "previous_as_of": previous.as_of.isoformat(),
            **{movement: {"count": len(counted.movements[movement])} for movement in MOVEMENTS},
        }
        people |= counted.movements
    fields: dict[str, Any] = {
        "kind": data.kind.value,
        "generator_version": GENERATOR_VERSION,
        "parameters": resolved.parameters,
        "figures": figures,
    }
    snapshot = ReportSnapshot(
        id=snapshot_id,
        kind=data.kind,
        series=resolved.series,
        as_of=data.as_of,
        as_known_at=moment,
        generator_version=GENERATOR_VERSION,
        parameters=resolved.parameters,
        figures=figures,
        content_sha256=content_hash(content_of(fields)),
        previous_id=previous.id if previous else None,
        differences=differences,
        people=people,
        generated_by=generated_by,
    )
    session.add(snapshot)
    await session.flush()
    journal_of(session).changed(
        "report.generate",
        "report",
        snapshot.id,
        changes=[
            change(
                "report",
                snapshot.id,
                before=None,
                after={
                    "kind": snapshot.kind.value,
                    "parameters": resolved.parameters,
                    "content_sha256": snapshot.content_sha256,
                    "previous_id": str(snapshot.previous_id) if snapshot.previous_id else None,
                },
            )
        ],
    )
    log.info(
        "report_generated",
        report_id=str(snapshot.id),
        as_of=data.as_of.isoformat(),
        held=figures["held"]["total"],
    )
    return snapshot


async def generate_for(
    session: AsyncSession, caller: Caller, data: ReportCreate, *, settle_seconds: float
) -> ReportSnapshot:
    return await generate(
        session, data=data, generated_by=caller.principal.id, settle_seconds=settle_seconds
    )


async def get(session: AsyncSession, report_id: uuid.UUID) -> ReportSnapshot:
    snapshot = await repository.snapshot(session, report_id)
    if snapshot is None:
        raise NotFound("No such report.")
    return snapshot


@dataclass(frozen=True, slots=True)
class SnapshotPage:
    items: Sequence[ReportSnapshot]
    next_cursor: str | None


async def list_snapshots(
    session: AsyncSession, *, kind: ReportKind | None, cursor: str | None, limit: int
) -> SnapshotPage:
    """Newest first."""

    async def fetch(before: uuid.UUID | None, count: int) -> list[ReportSnapshot]:
        return await repository.snapshots_before(session, kind=kind, before=before, limit=count)

    items, next_cursor = await id_keyset_page(
        fetch, {"kind": kind.value if kind else None}, cursor=cursor, limit=limit
    )
    return SnapshotPage(items, next_cursor)


@dataclass(frozen=True, slots=True)
class PublicPage:
    items: list[dict[str, Any]]
    next_cursor: str | None


async def public_page(
    session: AsyncSession,
    *,
    as_of: date,
    jurisdiction: str | None,
    cursor: str | None,
    limit: int,
) -> PublicPage:
    """One page of the consented public list on `as_of`, as known now."""
    driver = await driver_connection(session)
    for setting in REPORT_SETTINGS:
        await driver.execute(setting)

    async def fetch(after: uuid.UUID | None, count: int) -> list[_ListedPerson]:
        rows = await asof.public_list(
            driver,
            as_of=as_of,
            as_known_at=utcnow(),
            jurisdiction=jurisdiction,
            after=after,
            limit=count,
        )
        return [_ListedPerson(row["person_id"], row) for row in rows]

    listed, next_cursor = await id_keyset_page(
        fetch,
        {"as_of": as_of.isoformat(), "jurisdiction": jurisdiction},
        cursor=cursor,
        limit=limit,
    )
    return PublicPage([person.entry for person in listed], next_cursor)


@dataclass(slots=True)
class _ListedPerson:
    """An entry of the public list with the id it is paged by (never shown)."""

    id: uuid.UUID
    entry: dict[str, Any]


async def public_entries(
    session: AsyncSession, *, as_of: date, jurisdiction: str | None
) -> list[dict[str, Any]]:
    """The whole consented public list on `as_of`, as known now, in one statement (the list
    is what the organisation publishes: its size is that of the list, not of the data)."""
    driver = await driver_connection(session)
    for setting in REPORT_SETTINGS:
        await driver.execute(setting)
    return await asof.public_list(
        driver, as_of=as_of, as_known_at=utcnow(), jurisdiction=jurisdiction, after=None, limit=None
    )

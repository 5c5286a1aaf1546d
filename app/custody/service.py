"""Use cases of the facility register and of case files' custody timelines.

A timeline is seen exactly as its case file is (`app.cases.service.visible`, which asks
app/access/visibility.py): a case file the caller may not see is a 404, and entries of a
restricted kind are absent below the restricted tier (app/access/tiers.py, RECORD_TIERS).
Entries are never changed: a retraction or a period's end is a record of its own, so every
change is an insert, and the timeline can be read as it was known at any moment.
"""

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic_core import PydanticCustomError
from sqlmodel.ext.asyncio.session import AsyncSession

from app.access.caller import Caller
from app.access.principal import Tier
from app.access.tiers import record_shown
from app.access.visibility import FACILITY
from app.audit.journal import Journal, change, journal_of
from app.cases import service as cases_service
from app.core.clock import utcnow
from app.core.dates import PartialDate, Precision
from app.core.errors import (
    Conflict,
    Forbidden,
    HiddenRecord,
    NotFound,
    UnknownReference,
    UnprocessableInput,
)
from app.core.ids import new_id
from app.core.pagination import id_keyset_page
from app.core.versioning import bump, check_version
from app.custody import filters, repository
from app.custody.models import (
    PERIODS,
    CustodyEvent,
    CustodyEventRetraction,
    CustodyPeriodEnd,
    Facility,
    search_text,
)
from app.custody.repository import EntryRecord
from app.custody.schemas import (
    CustodyEntryInput,
    CustodyEntryRead,
    CustodyRetractionRead,
    CustodyTimeline,
    FacilityCreate,
    FacilityRead,
    FacilityUpdate,
    PeriodEndInput,
    PeriodEndRead,
    refuse_end_before,
    refuse_region_outside,
)
from app.sources import service as sources_service

# The register ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FacilityPage:
    items: list[Facility]
    next_cursor: str | None


def facility_read(facility: Facility) -> FacilityRead:
    return FacilityRead.model_validate(facility)


def _facility_snapshot(journal: Journal, facility: Facility) -> dict[str, Any]:
    return journal.snapshot("facility", facility_read(facility).model_dump(mode="json"))


def _record_facility_change(
    journal: Journal, action: str, facility: Facility, before: dict[str, Any] | None
) -> None:
    after = _facility_snapshot(journal, facility)
    journal.changed(
        action,
        "facility",
        facility.id,
        changes=[change("facility", facility.id, before=before, after=after)],
    )


async def create_facility(session: AsyncSession, caller: Caller, data: FacilityCreate) -> Facility:
    names = [name.model_dump(mode="json") for name in data.names]
    facility = Facility(
        **data.model_dump(exclude={"names"}),
        names=names,
        search_text=search_text(names),
        recorded_by=caller.principal.staff_id,
    )
    await repository.save(session, facility)
    _record_facility_change(journal_of(session), "facility.create", facility, None)
    return facility


async def get_facility(
    session: AsyncSession, caller: Caller, facility_id: uuid.UUID, *, for_update: bool = False
) -> Facility:
    if not caller.may("facility.read", FACILITY):
        raise HiddenRecord("No such facility.")
    facility = await repository.get_facility(session, facility_id, for_update=for_update)
    if facility is None:
        raise NotFound("No such facility.")
    return facility


async def update_facility(
    session: AsyncSession,
    caller: Caller,
    facility_id: uuid.UUID,
    *,
    expected_version: int,
    data: FacilityUpdate,
) -> Facility:
    facility = await get_facility(session, caller, facility_id, for_update=True)
    caller.require("facility.update", FACILITY)
    check_version(facility.version, expected_version, what="facility")
    journal = journal_of(session)
    before = _facility_snapshot(journal, facility)
    changes = data.model_dump(mode="json", include=data.model_fields_set)
    try:
        refuse_region_outside(
            changes.get("country", facility.country), changes.get("region", facility.region)
        )
    except PydanticCustomError as error:
        raise UnprocessableInput(
            "region must be a subdivision of country.",
            errors=[{"loc": ["body", "region"], "msg": error.message(), "type": error.type}],
        ) from None
    for field, value in changes.items():
        setattr(facility, field, value)
    facility.search_text = search_text(facility.names)
    bump(facility)
    await repository.save(session, facility)
    _record_facility_change(journal, "facility.update", facility, before)
    return facility


async def list_facilities(
    session: AsyncSession,
    caller: Caller,
    *,
    country: str | None,
    type_: str | None,
    name: str | None,
    cursor: str | None,
    limit: int,
) -> FacilityPage:
    query = {"country": country, "type": type_, "q": name}

    async def fetch(after: uuid.UUID | None, count: int) -> list[Facility]:
        return await repository.facility_page(
            session, country=country, type_=type_, name=name, after=after, limit=count
        )

    items, next_cursor = await id_keyset_page(fetch, query, cursor=cursor, limit=limit)
    return FacilityPage(items, next_cursor)


async def _refuse_unknown_facilities(
    session: AsyncSession, facility_ids: Iterable[uuid.UUID | None]
) -> None:
    wanted = {i for i in facility_ids if i is not None}
    if not wanted:
        return
    unknown = wanted - await repository.existing_facility_ids(session, wanted)
    if unknown:
        raise UnknownReference(
            "Some facilities are not in the register.",
            unknown_facility_ids=sorted(str(i) for i in unknown),
        )


# The timeline ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    event: CustodyEvent
    retraction: CustodyEventRetraction | None
    end: CustodyPeriodEnd | None

    def read(self) -> CustodyEntryRead:
        event, end = self.event, self.end
        return CustodyEntryRead.model_validate(
            {
                **{
                    name: getattr(event, name)
                    for name in CustodyEntryRead.model_fields
                    if name not in ("effective_date", "retraction", "end")
                },
                "effective_date": _partial(event.effective_date, event.effective_precision),
                "retraction": CustodyRetractionRead.model_validate(self.retraction)
                if self.retraction
                else None,
                "end": PeriodEndRead.model_validate(
                    {
                        **{
                            name: getattr(end, name)
                            for name in PeriodEndRead.model_fields
                            if name != "effective_date"
                        },
                        "effective_date": _partial(end.effective_date, end.effective_precision),
                    }
                )
                if end
                else None,
            }
        )


@dataclass(frozen=True)
class EntryView:
    """One entry, and the caller's clearance on its case file."""

    entry: Entry
    clearance: Tier


@dataclass(frozen=True)
class TimelineView:
    timeline: CustodyTimeline
    clearance: Tier


def _partial(day: Any, precision: Precision) -> str:
    return str(PartialDate(day, Precision(precision)))


def _known_at(records: Sequence[EntryRecord], moment: datetime | None) -> list[Entry]:
    """The entries, retractions and ends as they were on record at `moment` (None: now)."""

    def known(recorded_at: datetime) -> bool:
        return moment is None or recorded_at <= moment

    return [
        Entry(
            event,
            retraction if retraction is not None and known(retraction.recorded_at) else None,
            end if end is not None and known(end.recorded_at) else None,
        )
        for event, retraction, end in records
        if known(event.recorded_at)
    ]


def _in_effective_order(entries: list[Entry]) -> list[Entry]:
    return sorted(entries, key=lambda e: (e.event.effective_date, e.event.recorded_at, e.event.id))


async def timeline(
    session: AsyncSession, caller: Caller, case_id: uuid.UUID, *, known_at: datetime | None
) -> TimelineView:
    found = await cases_service.visible(session, caller, case_id)
    return _timeline(
        case_id, await repository.entries_of(session, case_id), found.clearance, known_at
    )


async def timelines_of(
    session: AsyncSession, cases: Sequence[tuple[uuid.UUID, Tier]]
) -> dict[uuid.UUID, TimelineView]:
    """The timelines of case files the caller was found to read (each with its clearance
    on it, in the same transaction), as they are now, in one query: a page of a partner's
    change feed."""
    records = await repository.entries_of_many(session, [case_id for case_id, _ in cases])
    return {
        case_id: _timeline(case_id, records[case_id], clearance, None)
        for case_id, clearance in cases
    }


def _timeline(
    case_id: uuid.UUID,
    records: Sequence[EntryRecord],
    clearance: Tier,
    known_at: datetime | None,
) -> TimelineView:
    entries = _in_effective_order(_known_at(records, known_at))
    shown = [e for e in entries if record_shown("custody_event", e.event.kind, clearance)]
    # What follows from every entry; the router leaves out what the clearance does not
    # cover (tiers.py), as for any field.
    return TimelineView(
        CustodyTimeline(
            case_file_id=case_id,
            entries=[e.read() for e in shown],
            current_facility_id=filters.current_facility(
                [(e.event, e.retraction) for e in entries]
            ),
            incommunicado=filters.incommunicado([(e.event, e.retraction, e.end) for e in entries]),
        ),
        clearance,
    )


async def _writable(
    session: AsyncSession, caller: Caller, case_id: uuid.UUID
) -> cases_service.VisibleCase:
    # The case file's row lock orders the changes to one timeline: a retraction and an
    # end of the same entry cannot pass each other's checks.
    found = await cases_service.visible(session, caller, case_id, for_update=True)
    caller.require("case.record_custody", found.resource)
    return found


async def may_record(session: AsyncSession, caller: Caller, case_id: uuid.UUID) -> None:
    """Before a stored answer is replayed: the caller may still see and record the case
    file's timeline (access can be withdrawn between a request and its retry)."""
    found = await cases_service.visible(session, caller, case_id)
    caller.require("case.record_custody", found.resource)


def _snapshot(journal: Journal, entry: Entry) -> dict[str, Any]:
    return journal.snapshot("custody_event", entry.read().model_dump(mode="json"))


async def record(
    session: AsyncSession, caller: Caller, case_id: uuid.UUID, data: CustodyEntryInput
) -> EntryView:
    found = await _writable(session, caller, case_id)
    if not record_shown("custody_event", data.kind, found.clearance):
        raise Forbidden(f"You may not record a {data.kind} on this case file.")
    await _refuse_unknown_facilities(session, (data.facility_id, data.from_facility_id))
    await sources_service.ensure_exist(session, data.source_ids)
    effective = PartialDate.parse(data.effective_date)
    recorded_at, recorded_by = utcnow(), caller.principal.staff_id
    event = CustodyEvent(
        id=new_id(),
        case_file_id=case_id,
        kind=data.kind,
        effective_date=effective.start,
        effective_precision=effective.precision,
        facility_id=data.facility_id,
        from_facility_id=data.from_facility_id,
        details=data.details,
        confidence=data.confidence,
        note=data.note,
        source_ids=list(data.source_ids),
        recorded_at=recorded_at,
        recorded_by=recorded_by,
    )
    await repository.save(session, event)
    end = None
    if data.end_date is not None:
        ended = PartialDate.parse(data.end_date)
        # Known with the start: recorded with it, with the same confidence and sources.
        end = CustodyPeriodEnd(
            event_id=event.id,
            case_file_id=case_id,
            effective_date=ended.start,
            effective_precision=ended.precision,
            confidence=data.confidence,
            source_ids=list(data.source_ids),
            recorded_at=recorded_at,
            recorded_by=recorded_by,
        )
        await repository.save(session, end)
    entry = Entry(event, None, end)
    journal = journal_of(session)
    journal.changed(
        "custody.record",
        "case",
        case_id,
        changes=[change("custody_event", event.id, before=None, after=_snapshot(journal, entry))],
        related=[found.case.person_id],
    )
    return EntryView(entry, found.clearance)


async def _entry(
    session: AsyncSession, found: cases_service.VisibleCase, entry_id: uuid.UUID
) -> Entry:
    for event, retraction, end in await repository.entries_of(session, found.case.id):
        if event.id == entry_id:
            entry = Entry(event, retraction, end)
            if record_shown("custody_event", event.kind, found.clearance):
                return entry
    raise NotFound("No such entry in this case file's custody timeline.")


async def retract(
    session: AsyncSession, caller: Caller, case_id: uuid.UUID, *, entry_id: uuid.UUID, reason: str
) -> EntryView:
    found = await _writable(session, caller, case_id)
    target = await _entry(session, found, entry_id)
    if target.retraction is not None:
        raise Conflict("This entry is already retracted.")
    retraction = CustodyEventRetraction(
        event_id=entry_id,
        case_file_id=case_id,
        reason=reason,
        recorded_by=caller.principal.staff_id,
    )
    await repository.save(session, retraction)
    entry = Entry(target.event, retraction, target.end)
    journal = journal_of(session)
    journal.changed(
        "custody.retract",
        "case",
        case_id,
        changes=[
            change(
                "custody_event",
                entry_id,
                before=_snapshot(journal, target),
                after=_snapshot(journal, entry),
            )
        ],
        related=[found.case.person_id],
    )
    return EntryView(entry, found.clearance)


async def close(
    session: AsyncSession,
    caller: Caller,
    case_id: uuid.UUID,
    *,
    entry_id: uuid.UUID,
    data: PeriodEndInput,
) -> EntryView:
    found = await _writable(session, caller, case_id)
    target = await _entry(session, found, entry_id)
    event = target.event
    if event.kind not in PERIODS:
        raise Conflict(f"A {event.kind} is not a period: it has no end.")
    if target.retraction is not None:
        raise Conflict("This entry is retracted.")
    if target.end is not None:
        raise Conflict("This period has already ended.")
    ended = PartialDate.parse(data.effective_date)
    try:
        refuse_end_before(PartialDate(event.effective_date, event.effective_precision), ended)
    except PydanticCustomError as error:
        raise UnprocessableInput(
            "The period cannot end before it started.",
            errors=[
                {"loc": ["body", "effective_date"], "msg": error.message(), "type": error.type}
            ],
        ) from None
    await sources_service.ensure_exist(session, data.source_ids)
    end = CustodyPeriodEnd(
        event_id=entry_id,
        case_file_id=case_id,
        effective_date=ended.start,
        effective_precision=ended.precision,
        confidence=data.confidence,
        note=data.note,
        source_ids=list(data.source_ids),
        recorded_by=caller.principal.staff_id,
    )
    await repository.save(session, end)
    entry = Entry(event, None, end)
    journal = journal_of(session)
    journal.changed(
        "custody.close",
        "case",
        case_id,
        changes=[
            change(
                "custody_event",
                entry_id,
                before=_snapshot(journal, target),
                after=_snapshot(journal, entry),
            )
        ],
        related=[found.case.person_id],
    )
    return EntryView(entry, found.clearance)

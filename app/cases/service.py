"""Use cases for case files: open one (with its status history), read, update, list.

Changes to the status path of an existing case file are in transitions.py. Who may see a
case file is decided by app/access/visibility.py.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.orm import Mapped
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from app.access import visibility
from app.access.caller import Caller
from app.access.policy import Resource, area
from app.access.principal import Principal, Role, Tier
from app.access.tiers import refuse_fields_above
from app.audit.journal import change, journal_of
from app.cases import repository
from app.cases.history import (
    HistoryEntry,
    case_snapshot,
    history_entries,
    new_event,
    new_event_change,
    refuse_dropping_decided_charges,
    refuse_invalid_with_claims,
    refuse_unknown_charges,
    status_columns,
)
from app.cases.models import CaseFile, Confidentiality, EventRecord
from app.cases.schemas import CaseCreate, CaseFields, CaseFilters, CaseUpdate, stored_charges
from app.core.clock import today, utcnow
from app.core.errors import (
    NotFound,
    PreconditionFailed,
    UnknownReference,
)
from app.core.ids import new_id
from app.core.pagination import (
    cursor_uuid,
    decode_cursor,
    id_position,
    query_fingerprint,
    trim_page,
)
from app.core.versioning import bump, check_version
from app.identity import service as identity_service
from app.persons import service as persons_service
from app.persons.schemas import PersonFilters
from app.recognition.criteria import RecognitionStatus
from app.sources import service as sources_service


@dataclass(frozen=True)
class CaseView:
    """A case file with the caller's clearance on it (which fields it may receive)."""

    case: CaseFile
    clearance: Tier


@dataclass(frozen=True)
class VisibleCase:
    """A case file the caller may see, with what the policies know of it."""

    case: CaseFile
    resource: Resource
    clearance: Tier


@dataclass(frozen=True)
class CasePage:
    items: list[CaseView]
    next_cursor: str | None


UNKNOWN_PERSON = "person_id does not name a person."


async def visible(
    session: AsyncSession, caller: Caller, case_id: uuid.UUID, *, for_update: bool = False
) -> VisibleCase:
    """The case file, if the caller may see it; otherwise NotFound, as if it did not exist.
    One query either way, so that a hidden case file takes as long to refuse as a missing
    one."""
    found = await repository.seen(session, case_id, for_update=for_update)
    if found is None:
        raise NotFound("No such case file.")
    case, facts = found
    resource = visibility.case_resource(caller.principal, case, facts)
    return VisibleCase(case, resource, caller.clearance("case", resource))


async def _visible_person_clearance(
    session: AsyncSession, caller: Caller, person_id: uuid.UUID
) -> Tier:
    # Held until the case file is written: a merge of the person waits, or has happened.
    view = await persons_service.referenced(
        session, caller, person_id, unknown=UNKNOWN_PERSON, for_update=True
    )
    return view.clearance


async def _refuse_unassignable(session: AsyncSession, user_ids: Sequence[uuid.UUID]) -> None:
    """Only active caseworker accounts work on case files: not random ids, not admins,
    analysts or disabled accounts."""
    refused = await identity_service.inactive_or_not_caseworkers(session, user_ids)
    if refused:
        raise UnknownReference(
            "assigned_caseworkers must name active caseworker accounts; these do not: "
            + ", ".join(str(user_id) for user_id in refused)
        )


def _assignment(caller: Caller, data: CaseCreate, person_clearance: Tier) -> list[uuid.UUID]:
    """Only coordinators choose who works on a case file. A caseworker who opens one for a
    person already in their care (full clearance on the person) is assigned to it, so that
    they can go on working on it; opening a case file never grants access to a person's
    confidential data that the caseworker did not already have."""
    principal = caller.principal
    if "assigned_caseworkers" in data.model_fields_set:
        caller.require("case.assign", area("cases"))
    assigned = list(dict.fromkeys(data.assigned_caseworkers))
    if (
        principal.role is Role.caseworker
        and person_clearance >= Tier.confidential
        and principal.id not in assigned
    ):
        assigned.append(principal.id)
    return assigned


def _column_values(data: CaseFields | CaseUpdate, fields: set[str]) -> dict[str, Any]:
    """The table's values for these input fields: lists of objects in their JSON form."""
    typed = data.model_dump(include=fields)
    as_json = data.model_dump(mode="json", include=fields & repository.JSON_COLUMNS)
    if "charges" in as_json:
        as_json["charges"] = stored_charges(as_json["charges"])
    return {**typed, **as_json}


async def create(
    session: AsyncSession, caller: Caller, data: CaseCreate, *, person_made_here: bool = False
) -> CaseView:
    """Open a case file. `person_made_here`: the caller made the person earlier in this
    transaction (a partner's batch), and sees them only through the case files the batch
    gives them, which the batch checks its agreement shares; the person is held all the
    same."""
    if person_made_here:
        await persons_service.hold(session, data.person_id)
        person_clearance = Tier.public
    else:
        person_clearance = await _visible_person_clearance(session, caller, data.person_id)
    assigned = _assignment(caller, data, person_clearance)
    await _refuse_unassignable(session, assigned)
    await sources_service.ensure_exist(
        session, (i for event in data.status_history for i in event.source_ids)
    )
    case_id = new_id()
    events = [
        new_event(
            item,
            case_id=case_id,
            position=position,
            recorded_by=caller.principal.staff_id,
            reported_by_partner=caller.principal.partner_id,
        )
        for position, item in enumerate(data.status_history)
    ]
    records = [EventRecord(event) for event in events]
    refuse_invalid_with_claims(records, what="The status history is not a valid path")
    number = await repository.next_reference_number(session)
    case = CaseFile(
        id=case_id,
        **_column_values(data, set(CaseFields.model_fields) - {"assigned_caseworkers"}),
        person_id=data.person_id,
        assigned_caseworkers=assigned,
        reference=f"HB-{today().year}-{number:06d}",
        **status_columns(records),
    )
    refuse_unknown_charges(case.charges, events)
    await repository.add(session, case, events)
    journal = journal_of(session)
    journal.changed(
        "case.create",
        "case",
        case.id,
        changes=[
            change("case", case.id, before=None, after=case_snapshot(journal, case)),
            *(new_event_change(journal, entry) for entry in history_entries(records)),
        ],
        related=[case.person_id],
    )
    (resource,) = await visibility.case_resources(session, caller.principal, [case])
    return CaseView(case, caller.clearance("case", resource))


async def history_reader(session: AsyncSession, caller: Caller, case_id: uuid.UUID) -> CaseView:
    """The case file, if the caller may read its field-level change history."""
    found = await visible(session, caller, case_id)
    caller.require("case.history", found.resource)
    return CaseView(found.case, found.clearance)


async def get(session: AsyncSession, caller: Caller, case_id: uuid.UUID) -> CaseView:
    found = await visible(session, caller, case_id)
    return CaseView(found.case, found.clearance)


async def update(
    session: AsyncSession,
    caller: Caller,
    case_id: uuid.UUID,
    *,
    expected_version: int,
    data: CaseUpdate,
) -> CaseView:
    found = await visible(session, caller, case_id, for_update=True)
    case, resource = found.case, found.resource
    caller.require("case.update", resource)
    if "assigned_caseworkers" in data.model_fields_set:
        caller.require("case.assign", resource)
    lowered = data.confidentiality is not None and data.confidentiality != case.confidentiality
    moved = data.jurisdiction is not None and data.jurisdiction != case.jurisdiction
    if (lowered and data.confidentiality == Confidentiality.normal) or moved:
        # Both change who may see the case file (staff, and partners' agreements).
        caller.require("case.classify", resource)
    refuse_fields_above("case", data.model_fields_set, found.clearance)
    check_version(case.version, expected_version, what="case file")
    if data.assigned_caseworkers is not None:
        # Those already assigned stay even if their account was disabled since: taking
        # them off is a decision of its own.
        added = [i for i in data.assigned_caseworkers if i not in case.assigned_caseworkers]
        await _refuse_unassignable(session, added)
    journal = journal_of(session)
    before = case_snapshot(journal, case)
    for field, value in _column_values(data, data.model_fields_set).items():
        setattr(case, field, value)
    if data.charges is not None:
        records = (await repository.events_of(session, [case_id])).get(case_id, [])
        refuse_dropping_decided_charges(records, case.charges)
    if data.assigned_caseworkers is not None:
        case.assigned_caseworkers = list(dict.fromkeys(data.assigned_caseworkers))
    bump(case)
    if not await repository.save_fields(
        session, case, fields=data.model_fields_set, read_version=expected_version
    ):
        raise PreconditionFailed("The case file changed while it was being updated.")
    journal.changed(
        "case.update",
        "case",
        case_id,
        changes=[change("case", case_id, before=before, after=case_snapshot(journal, case))],
        related=[case.person_id],
    )
    return CaseView(case, found.clearance)


async def history(
    session: AsyncSession, caller: Caller, case_id: uuid.UUID
) -> tuple[CaseView, list[HistoryEntry]]:
    view = await get(session, caller, case_id)
    records = (await repository.events_of(session, [case_id])).get(case_id, [])
    return view, history_entries(records)


async def list_cases(
    session: AsyncSession,
    caller: Caller,
    *,
    filters: CaseFilters,
    person_filters: PersonFilters,
    cursor: str | None,
    limit: int,
) -> CasePage:
    if filters.on_restricted_facts():
        # Filtering by a restricted fact (a place of detention, an event's details) would
        # tell it to a caller who may not read it.
        caller.require("case.list_restricted", area("cases"))
    fingerprint = query_fingerprint({"cases": filters.__dict__, "persons": person_filters.__dict__})
    after = cursor_uuid(decode_cursor(cursor, fingerprint, 1)[0]) if cursor else None
    person_ids = (
        persons_service.ids_matching(person_filters) if person_filters != PersonFilters() else None
    )
    rows = await repository.page(
        session,
        readable=visibility.readable_cases(caller.principal),
        filters=filters,
        person_ids=person_ids,
        after=after,
        limit=limit + 1,
    )
    cases, next_cursor = trim_page(rows, limit=limit, fingerprint=fingerprint, position=id_position)
    # The query returned only what the caller may read; each item still gets its own
    # clearance (a caseworker sees more of the case files assigned to them).
    resources = await visibility.case_resources(session, caller.principal, cases)
    views = [
        CaseView(case, caller.clearance("case", resource))
        for case, resource in zip(cases, resources, strict=True)
    ]
    return CasePage(views, next_cursor)


async def readable_with_events(
    session: AsyncSession, caller: Caller, case_ids: Sequence[uuid.UUID]
) -> list[tuple[CaseView, list[HistoryEntry]]]:
    """The case files among `case_ids` that the caller may read now, each with its path
    (status events and claims, in effective order): a page of a partner's change feed."""
    views = await _readable_views(session, caller, case_ids)
    if not views:
        return []
    events = await repository.events_of(session, [view.case.id for view in views])
    return [(view, history_entries(events.get(view.case.id, []))) for view in views]


async def readable_among(
    session: AsyncSession, caller: Caller, case_ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    """Which of these case files the caller may read now, as readable_with_events decides
    it, without reading their paths (the change feed's check for the records that left a
    partner's agreement)."""
    return {view.case.id for view in await _readable_views(session, caller, case_ids)}


async def _readable_views(
    session: AsyncSession, caller: Caller, case_ids: Sequence[uuid.UUID]
) -> list[CaseView]:
    """The case files among `case_ids` the caller may read now, with its clearance on each."""
    if not case_ids:
        return []
    found = await repository.get_many(session, case_ids)
    resources = await visibility.case_resources(session, caller.principal, found)
    return [
        CaseView(case, tier)
        for case, resource in zip(found, resources, strict=True)
        if (tier := caller.tier_on("case", resource)) is not None
    ]


async def readable_ids_after(
    session: AsyncSession, caller: Caller, after: uuid.UUID | None, limit: int
) -> list[uuid.UUID]:
    """The ids of the case files the caller may read, in id order after `after`."""
    stmt = readable_ids(caller)
    if after is not None:
        stmt = stmt.where(col(CaseFile.id) > after)
    return list(await session.exec(stmt.order_by(col(CaseFile.id)).limit(limit)))


# For recognition decisions (app/recognition), which cover case files ----------------------


@dataclass(frozen=True)
class PersonCases:
    """A person's case files, locked: those the caller may read, and the ids of the others."""

    visible: list[CaseFile]
    hidden: frozenset[uuid.UUID]


async def lock_cases_of_person(
    session: AsyncSession, caller: Caller, person_id: uuid.UUID
) -> PersonCases:
    """Every case file of the person, locked in id order until the transaction ends."""
    cases = await repository.lock_of_person(session, person_id)
    resources = await visibility.case_resources(session, caller.principal, cases)
    readable = [caller.may("case.read", resource) for resource in resources]
    return PersonCases(
        [case for case, ok in zip(cases, readable, strict=True) if ok],
        frozenset(case.id for case, ok in zip(cases, readable, strict=True) if not ok),
    )


async def set_recognition_status(
    session: AsyncSession,
    cases: Sequence[CaseFile],
    status: RecognitionStatus,
    *,
    person_id: uuid.UUID,
) -> None:
    """Record a recognition decision's status on the case files it covers (locked by
    lock_cases_of_person), in the decision's transaction and audit event."""
    journal = journal_of(session)
    changes = []
    now = utcnow()
    for case in cases:
        before = {"recognition_status": case.recognition_status, "version": case.version}
        case.recognition_status = status
        bump(case, at=now)
        after = {"recognition_status": status, "version": case.version}
        changes.append(change("case", case.id, before=before, after=after))
    if not await repository.save_recognition_status(session, cases, status):
        raise PreconditionFailed("A case file changed while the decision was being recorded.")
    journal.changed(
        "recognition.decide",
        "person",
        person_id,
        changes=changes,
        related=[case.id for case in cases],
    )


def readable_ids(caller: Caller) -> SelectOfScalar[uuid.UUID]:
    """A subquery of the ids of the case files the caller may read, for other features."""
    return repository.readable_ids(visibility.readable_cases(caller.principal))


def is_readable(caller: Caller, case_file_id: Mapped[uuid.UUID]) -> ColumnElement[bool]:
    """Whether the case file a column of another feature's table names is one the caller
    may read, asked of each row (an index probe each), not by the set of every case file
    the caller may read."""
    return repository.is_readable(visibility.readable_cases(caller.principal), case_file_id)


def readable_ids_of(principal: Principal) -> SelectOfScalar[uuid.UUID]:
    """As readable_ids, for a principal acted for without a request (a partner's
    webhook)."""
    return repository.readable_ids(visibility.readable_cases(principal))


def persons_with_readable_ids_of(principal: Principal) -> SelectOfScalar[uuid.UUID]:
    """A subquery of the ids of the persons with a case file the principal may read."""
    return repository.person_ids_of(visibility.readable_cases(principal))


async def move_to_person(
    session: AsyncSession, cases: Sequence[CaseFile], person_id: uuid.UUID
) -> list[dict[str, Any] | None]:
    """Give case files (locked by lock_cases_of_person) to another person (a merge or its
    undoing); their paths, custody timelines and sources go with them. Returns the
    field-level changes for the merge's audit event."""
    changes = []
    now = utcnow()
    for case in cases:
        before = {"person_id": str(case.person_id), "version": case.version}
        case.person_id = person_id
        bump(case, at=now)
        changes.append(
            change(
                "case",
                case.id,
                before=before,
                after={"person_id": str(person_id), "version": case.version},
            )
        )
    if cases and not await repository.save_person(session, cases):
        raise PreconditionFailed("A case file changed while the persons were being merged.")
    return changes

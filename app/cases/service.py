"""Use cases for case files and their status history.

Every change to a status path (create with history, append, retract, collective apply)
loads the case file's events under a row lock, builds the resulting path and accepts it
only if `statuses.check_path` finds it valid. The derived columns of the case file
(status, status_since, detained_on) are then recomputed from that path.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from app.access.caller import Caller
from app.access.policy import Resource, area
from app.access.principal import Role, SharingAgreement, Tier
from app.access.tiers import refuse_fields_above
from app.audit.journal import Journal, change, journal_of
from app.cases import repository
from app.cases.models import CaseFile, Confidentiality, StatusEvent, StatusEventRetraction
from app.cases.repository import EventRecord
from app.cases.schemas import (
    CaseCreate,
    CaseFilters,
    CaseUpdate,
    StatusEventInput,
    case_read,
    event_read,
)
from app.cases.statuses import PathError, Status, Step, Violation, check_path
from app.core.clock import today, utcnow
from app.core.dates import PartialDate, Precision
from app.core.errors import (
    CollectiveTransitionRejected,
    Conflict,
    HiddenRecord,
    HiddenReference,
    InvalidTransition,
    NotFound,
    PreconditionFailed,
    UnknownReference,
    UnprocessableInput,
)
from app.core.ids import new_id
from app.core.pagination import cursor_uuid, decode_cursor, encode_cursor, query_fingerprint
from app.identity import service as identity_service
from app.persons import service as persons_service
from app.persons.schemas import PersonFilters
from app.recognition.criteria import RecognitionStatus
from app.sources import service as sources_service


@dataclass(frozen=True)
class HistoryEntry:
    event: StatusEvent
    retraction: StatusEventRetraction | None
    from_status: Status | None


@dataclass(frozen=True)
class StatusChange:
    entry: HistoryEntry
    case: CaseFile


@dataclass(frozen=True)
class CaseView:
    """A case file with the caller's clearance on it (which fields it may receive)."""

    case: CaseFile
    clearance: Tier


@dataclass(frozen=True)
class CasePage:
    items: list[CaseView]
    next_cursor: str | None


@dataclass(frozen=True)
class CollectiveOutcome:
    case_file_id: uuid.UUID
    outcome: str
    from_status: Status | None = None
    event_id: uuid.UUID | None = None
    reason: str | None = None


def _case_snapshot(journal: Journal, case: CaseFile) -> dict[str, Any]:
    return journal.snapshot("case", case_read(case).model_dump(mode="json"))


def _event_snapshot(journal: Journal, entry: HistoryEntry) -> dict[str, Any]:
    values = event_read(entry.event, entry.retraction, entry.from_status).model_dump(mode="json")
    return journal.snapshot("status_event", values)


def _new_event_change(journal: Journal, entry: HistoryEntry) -> dict[str, Any] | None:
    return change("status_event", entry.event.id, None, _event_snapshot(journal, entry))


def _step(event: StatusEvent) -> Step:
    return Step(
        Status(event.to_status),
        PartialDate(event.effective_date, Precision(event.effective_precision)),
    )


def _active(history: Sequence[EventRecord]) -> list[StatusEvent]:
    return [event for event, retraction in history if retraction is None]


def _new_event(
    case_id: uuid.UUID,
    position: int,
    data: StatusEventInput,
    recorded_by: uuid.UUID | None,
    collective_event_id: uuid.UUID | None = None,
) -> StatusEvent:
    effective = PartialDate.parse(data.effective_date)
    # Built from validated input and written with plain SQL, so it skips the validating
    # constructor; the id and the recording time are set here explicitly.
    return StatusEvent.model_construct(
        id=new_id(),
        recorded_at=utcnow(),
        recorded_by=recorded_by,
        case_file_id=case_id,
        position=position,
        to_status=data.to_status,
        effective_date=effective.start,
        effective_precision=effective.precision,
        confidence=data.confidence,
        note=data.note,
        details=data.details,
        source_ids=list(data.source_ids),
        collective_event_id=collective_event_id,
    )


def _refuse(error: PathError, *, what: str) -> Exception:
    detail = f"{what}: {error.describe()}."
    extensions: dict[str, Any] = {"violation": error.violation.value, "event_index": error.index}
    if error.violation is Violation.date_in_future:
        return UnprocessableInput(detail, **extensions)
    return InvalidTransition(detail, **extensions)


def _derive(case: CaseFile, path: Sequence[StatusEvent]) -> None:
    """Recompute the case file's status columns from its (valid, non-empty) path."""
    last = path[-1]
    case.status = last.to_status
    case.status_since = last.effective_date
    case.status_since_precision = last.effective_precision
    case.detained_on = path[0].effective_date


def _check_version(case: CaseFile, expected_version: int) -> None:
    if case.version != expected_version:
        raise PreconditionFailed(
            f"The case file is at version {case.version}.", current_version=case.version
        )


def _bump(case: CaseFile) -> None:
    case.version += 1
    case.updated_at = utcnow()


async def _save_status(session: AsyncSession, cases: Sequence[CaseFile]) -> None:
    # The rows are locked, so this cannot fail unless something bypassed the lock; if it
    # does, refusing (and rolling back) is the only safe answer.
    if not await repository.save_status(session, cases):
        raise PreconditionFailed("A case file changed while its status was being updated.")


# Access --------------------------------------------------------------------------------------

RECOGNISED = RecognitionStatus.political_prisoner


def _recognised_ids() -> SelectOfScalar[uuid.UUID]:
    return persons_service.ids_matching(PersonFilters(recognition_status=RECOGNISED))


def agreement_covers(
    agreement: SharingAgreement, case: CaseFile, *, person_recognised: bool, closed: bool
) -> bool:
    """Whether a partner's sharing agreement covers a case file (`closed`: the case file
    or another of its person's is high-confidentiality). The same rule, in SQL, is
    `repository.visible_to`; tests/access proves the two agree."""
    if closed:
        return False
    if case.id in agreement.case_file_ids:
        return True
    return (
        agreement.jurisdiction is not None
        and case.jurisdiction == agreement.jurisdiction
        and (person_recognised or not agreement.recognised_only)
    )


async def case_resource(session: AsyncSession, caller: Caller, case: CaseFile) -> Resource:
    return (await case_resources(session, caller, [case]))[0]


async def case_resources(
    session: AsyncSession, caller: Caller, cases: Sequence[CaseFile]
) -> list[Resource]:
    """What the policies need to know of each case file, with one query for all of them.

    A case file is closed (treated as high-confidentiality) when it is high, or when its
    person has a high-confidentiality case file: such a person is as closed as that case
    file (DESIGN §4), and their other case files would otherwise show them.
    """
    principal = caller.principal
    agreement = principal.agreement
    facts = await repository.person_access_facts(
        session,
        list({case.person_id for case in cases}),
        _recognised_ids() if agreement is not None and agreement.recognised_only else None,
    )
    resources = []
    for case in cases:
        person = facts.get(case.person_id, repository.PersonAccessFacts(False, False))
        closed = case.confidentiality != Confidentiality.normal or person.has_high_case
        shared = principal.agreement is not None and agreement_covers(
            principal.agreement, case, person_recognised=person.recognised, closed=closed
        )
        resources.append(
            Resource(
                "CaseFile",
                confidentiality=Confidentiality.high if closed else Confidentiality.normal,
                assigned_to_caller=not principal.is_partner
                and principal.id in case.assigned_caseworkers,
                shared_with_caller=shared,
            )
        )
    return resources


async def person_links(
    session: AsyncSession, caller: Caller, person_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[bool, bool, bool]]:
    """For each person: is the caller assigned to one of their case files, does the
    caller's sharing agreement cover one of them, is one of them high-confidentiality
    (what person policies need)."""
    principal = caller.principal
    if not person_ids:
        return {}
    recognised_ids = persons_service.ids_matching(PersonFilters(recognition_status=RECOGNISED))
    return await repository.person_links(session, principal, list(person_ids), recognised_ids)


@dataclass(frozen=True)
class PersonCaseSets:
    """Subqueries of person ids, for the persons feature's list rules."""

    shared_with_caller: SelectOfScalar[uuid.UUID]
    high_case_assigned_to_caller: SelectOfScalar[uuid.UUID]
    with_high_case: SelectOfScalar[uuid.UUID]


def person_case_sets(caller: Caller) -> PersonCaseSets:
    recognised_ids = persons_service.ids_matching(PersonFilters(recognition_status=RECOGNISED))
    return PersonCaseSets(
        repository.person_ids_visible_to(caller.principal, recognised_ids),
        repository.person_ids_with_high_case_assigned_to(caller.principal),
        repository.person_ids_with_high_case(),
    )


def history_entries(history: Sequence[EventRecord]) -> list[HistoryEntry]:
    """Events with the status each one followed in the path (retracted ones stay visible)."""
    entries: list[HistoryEntry] = []
    previous: Status | None = None
    for event, retraction in history:
        entries.append(HistoryEntry(event, retraction, previous))
        if retraction is None:
            previous = Status(event.to_status)
    return entries


async def _visible_person_clearance(
    session: AsyncSession, caller: Caller, person_id: uuid.UUID
) -> Tier:
    try:
        return (await persons_service.get(session, caller, person_id)).clearance
    except HiddenRecord as exc:
        journal_of(session).subject = ("person", person_id)
        raise HiddenReference(UNKNOWN_PERSON) from exc
    except NotFound as exc:
        journal_of(session).subject = ("person", person_id)
        raise UnknownReference(UNKNOWN_PERSON) from exc


UNKNOWN_PERSON = "person_id does not name a person."


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


async def create(session: AsyncSession, caller: Caller, data: CaseCreate) -> CaseView:
    person_clearance = await _visible_person_clearance(session, caller, data.person_id)
    assigned = _assignment(caller, data, person_clearance)
    await _refuse_unassignable(session, assigned)
    await sources_service.ensure_exist(
        session, (i for event in data.status_history for i in event.source_ids)
    )
    number = await repository.next_reference_number(session)
    case = CaseFile(
        **data.model_dump(
            mode="json", exclude={"status_history", "person_id", "assigned_caseworkers"}
        ),
        person_id=data.person_id,
        assigned_caseworkers=assigned,
        reference=f"HB-{today().year}-{number:06d}",
        status=Status.detained,
        status_since=today(),
        status_since_precision=Precision.day,
        detained_on=today(),
    )
    events = [
        _new_event(case.id, position, item, _recorder(caller))
        for position, item in enumerate(data.status_history)
    ]
    error = check_path([_step(event) for event in events], today())
    if error is not None:
        raise _refuse(error, what="The status history is not a valid path")
    _derive(case, events)
    await repository.add(session, case, events)
    journal = journal_of(session)
    journal.changed(
        "case.create",
        "case",
        case.id,
        [
            change("case", case.id, None, _case_snapshot(journal, case)),
            *(
                _new_event_change(journal, entry)
                for entry in history_entries([(event, None) for event in events])
            ),
        ],
        related=[case.person_id],
    )
    return CaseView(case, caller.clearance("case", await case_resource(session, caller, case)))


def _recorder(caller: Caller) -> uuid.UUID | None:
    return None if caller.principal.is_partner else caller.principal.id


async def _visible(
    session: AsyncSession, caller: Caller, case_id: uuid.UUID, *, for_update: bool = False
) -> tuple[CaseFile, Resource, Tier]:
    """The case file, if the caller may see it; otherwise NotFound, as if it did not exist."""
    case = await repository.get(session, case_id, for_update=for_update)
    if case is None:
        # The query a visible or hidden case file would cost, so that a hidden one takes
        # as long to refuse as one that does not exist.
        await repository.person_access_facts(session, [case_id], None)
        raise NotFound("No such case file.")
    resource = await case_resource(session, caller, case)
    return case, resource, caller.clearance("case", resource)


async def may_transition(session: AsyncSession, caller: Caller, case_id: uuid.UUID) -> None:
    """Before a stored answer is replayed: the caller may still see and change the case
    file (access can be withdrawn between the first request and its retry)."""
    _, resource, _ = await _visible(session, caller, case_id)
    caller.require("case.transition", resource)


async def history_reader(session: AsyncSession, caller: Caller, case_id: uuid.UUID) -> CaseView:
    """The case file, if the caller may read its field-level change history."""
    case, resource, clearance = await _visible(session, caller, case_id)
    caller.require("case.history", resource)
    return CaseView(case, clearance)


async def get(session: AsyncSession, caller: Caller, case_id: uuid.UUID) -> CaseView:
    case, _, clearance = await _visible(session, caller, case_id)
    return CaseView(case, clearance)


async def update(
    session: AsyncSession,
    caller: Caller,
    case_id: uuid.UUID,
    expected_version: int,
    data: CaseUpdate,
) -> CaseView:
    case, resource, clearance = await _visible(session, caller, case_id, for_update=True)
    caller.require("case.update", resource)
    if "assigned_caseworkers" in data.model_fields_set:
        caller.require("case.assign", resource)
    lowered = data.confidentiality is not None and data.confidentiality != case.confidentiality
    moved = data.jurisdiction is not None and data.jurisdiction != case.jurisdiction
    if (lowered and data.confidentiality == Confidentiality.normal) or moved:
        # Both change who may see the case file (staff, and partners' agreements).
        caller.require("case.classify", resource)
    refuse_fields_above("case", data.model_fields_set, clearance)
    _check_version(case, expected_version)
    if data.assigned_caseworkers is not None:
        # Those already assigned stay even if their account was disabled since: taking
        # them off is a decision of its own.
        added = [i for i in data.assigned_caseworkers if i not in case.assigned_caseworkers]
        await _refuse_unassignable(session, added)
    journal = journal_of(session)
    before = _case_snapshot(journal, case)
    for field, value in data.model_dump(mode="json", exclude_unset=True).items():
        setattr(case, field, value)
    if data.assigned_caseworkers is not None:
        case.assigned_caseworkers = list(dict.fromkeys(data.assigned_caseworkers))
    _bump(case)
    if not await repository.save_fields(session, case, data.model_fields_set, expected_version):
        raise PreconditionFailed("The case file changed while it was being updated.")
    journal.changed(
        "case.update",
        "case",
        case_id,
        [change("case", case_id, before, _case_snapshot(journal, case))],
        related=[case.person_id],
    )
    return CaseView(case, clearance)


async def history(
    session: AsyncSession, caller: Caller, case_id: uuid.UUID
) -> tuple[CaseView, list[HistoryEntry]]:
    view = await get(session, caller, case_id)
    records = (await repository.events_of(session, [case_id])).get(case_id, [])
    return view, history_entries(records)


async def append(
    session: AsyncSession,
    caller: Caller,
    case_id: uuid.UUID,
    expected_version: int,
    data: StatusEventInput,
) -> StatusChange:
    case, resource, _ = await _visible(session, caller, case_id, for_update=True)
    caller.require("case.transition", resource)
    _check_version(case, expected_version)
    await sources_service.ensure_exist(session, data.source_ids)
    records = (await repository.events_of(session, [case_id])).get(case_id, [])
    active = _active(records)
    event = _new_event(case_id, len(records), data, _recorder(caller))
    path = [*active, event]
    error = check_path([_step(e) for e in path], today())
    if error is not None:
        raise _refuse(error, what="This status change is not allowed")
    journal = journal_of(session)
    before = _case_snapshot(journal, case)
    await repository.add_events(session, [event])
    _derive(case, path)
    _bump(case)
    await _save_status(session, [case])
    from_status = Status(active[-1].to_status) if active else None
    entry = HistoryEntry(event, None, from_status)
    journal.changed(
        "case.transition",
        "case",
        case_id,
        [
            change("case", case_id, before, _case_snapshot(journal, case)),
            _new_event_change(journal, entry),
        ],
        related=[case.person_id],
    )
    return StatusChange(entry, case)


async def retract(
    session: AsyncSession,
    caller: Caller,
    case_id: uuid.UUID,
    event_id: uuid.UUID,
    expected_version: int,
    reason: str,
) -> StatusChange:
    case, resource, _ = await _visible(session, caller, case_id, for_update=True)
    caller.require("case.transition", resource)
    records = (await repository.events_of(session, [case_id])).get(case_id, [])
    entries = {entry.event.id: entry for entry in history_entries(records)}
    target = entries.get(event_id)
    if target is None:
        raise NotFound("No such status event in this case file.")
    _check_version(case, expected_version)
    if target.retraction is not None:
        raise Conflict("This status event is already retracted.")
    remaining = [event for event in _active(records) if event.id != event_id]
    error = check_path([_step(e) for e in remaining], today())
    if error is not None:
        raise _refuse(error, what="Retracting this event would leave an invalid history")
    retraction = StatusEventRetraction(
        event_id=event_id, case_file_id=case_id, reason=reason, recorded_by=_recorder(caller)
    )
    journal = journal_of(session)
    case_before = _case_snapshot(journal, case)
    event_before = _event_snapshot(journal, target)
    await repository.add_retraction(session, retraction)
    _derive(case, remaining)
    _bump(case)
    await _save_status(session, [case])
    entry = HistoryEntry(target.event, retraction, target.from_status)
    journal.changed(
        "case.retract",
        "case",
        case_id,
        [
            change("case", case_id, case_before, _case_snapshot(journal, case)),
            change("status_event", event_id, event_before, _event_snapshot(journal, entry)),
        ],
        related=[case.person_id],
    )
    return StatusChange(entry, case)


async def apply_collective(
    session: AsyncSession,
    caller: Caller,
    case_ids: Sequence[uuid.UUID],
    data: StatusEventInput,
    collective_event_id: uuid.UUID,
) -> list[CollectiveOutcome]:
    """Apply one transition to every listed case file, or to none of them.

    Raises CollectiveTransitionRejected, with each case file's result, if any one fails.
    """
    cases = {case.id: case for case in await repository.lock_many(session, case_ids)}
    histories = await repository.events_of(session, list(cases))
    journal = journal_of(session)
    before = {case_id: _case_snapshot(journal, case) for case_id, case in cases.items()}
    resources = dict(
        zip(cases, await case_resources(session, caller, list(cases.values())), strict=True)
    )
    outcomes: list[CollectiveOutcome] = []
    new_events: list[StatusEvent] = []
    changed: list[CaseFile] = []
    for case_id in case_ids:
        case = cases.get(case_id)
        if case is None or not caller.may("case.transition", resources[case_id]):
            outcomes.append(CollectiveOutcome(case_id, "not_found", reason="no such case file"))
            continue
        records = histories.get(case_id, [])
        active = _active(records)
        event = _new_event(case_id, len(records), data, _recorder(caller), collective_event_id)
        path = [*active, event]
        from_status = Status(case.status)
        error = check_path([_step(e) for e in path], today())
        if error is not None:
            outcomes.append(
                CollectiveOutcome(case_id, "rejected", from_status, reason=error.describe())
            )
            continue
        _derive(case, path)
        _bump(case)
        new_events.append(event)
        changed.append(case)
        outcomes.append(CollectiveOutcome(case_id, "applied", from_status, event.id))
    if len(changed) != len(case_ids):
        raise CollectiveTransitionRejected(
            "Nothing was changed. Each case file's result is listed in `results`.",
            results=[_outcome_json(o) for o in outcomes],
        )
    await repository.add_events(session, new_events)
    await _save_status(session, changed)
    from_statuses = {o.case_file_id: o.from_status for o in outcomes}
    journal.changed(
        "collective.create",
        "collective_event",
        collective_event_id,
        [
            entry
            for case, event in zip(changed, new_events, strict=True)
            for entry in (
                change("case", case.id, before[case.id], _case_snapshot(journal, case)),
                _new_event_change(journal, HistoryEntry(event, None, from_statuses[case.id])),
            )
        ],
        related=[*(case.id for case in changed), *(case.person_id for case in changed)],
    )
    return outcomes


def _outcome_json(outcome: CollectiveOutcome) -> dict[str, Any]:
    return {
        "case_file_id": str(outcome.case_file_id),
        "outcome": "would_apply" if outcome.outcome == "applied" else outcome.outcome,
        "from_status": outcome.from_status,
        "reason": outcome.reason,
    }


async def visible_counts_of_collectives(
    session: AsyncSession, caller: Caller, collective_event_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """For each collective event, how many of its case files the caller may read (the
    total would tell that there are others)."""
    recognised_ids = persons_service.ids_matching(PersonFilters(recognition_status=RECOGNISED))
    return await repository.visible_counts_of_collectives(
        session, caller.principal, recognised_ids, collective_event_ids
    )


async def collective_results(
    session: AsyncSession, caller: Caller, collective_event_id: uuid.UUID
) -> list[CollectiveOutcome]:
    """Each case file's event from a collective event, with the status it followed; only
    for the case files the caller may read."""
    cases = await repository.get_many(
        session, await repository.case_ids_of_collective(session, collective_event_id)
    )
    resources = await case_resources(session, caller, cases)
    case_ids = [
        case.id
        for case, resource in zip(cases, resources, strict=True)
        if caller.may("case.read", resource)
    ]
    histories = await repository.events_of(session, case_ids)
    return [
        CollectiveOutcome(
            entry.event.case_file_id,
            "applied" if entry.retraction is None else "retracted",
            entry.from_status,
            entry.event.id,
        )
        for case_id in case_ids
        for entry in history_entries(histories.get(case_id, []))
        if entry.event.collective_event_id == collective_event_id
    ]


async def list_cases(
    session: AsyncSession,
    caller: Caller,
    filters: CaseFilters,
    person_filters: PersonFilters,
    cursor: str | None,
    limit: int,
) -> CasePage:
    fingerprint = query_fingerprint({"cases": filters.__dict__, "persons": person_filters.__dict__})
    after = cursor_uuid(decode_cursor(cursor, fingerprint, 1)[0]) if cursor else None
    person_ids = (
        persons_service.ids_matching(person_filters) if person_filters != PersonFilters() else None
    )
    recognised_ids = persons_service.ids_matching(PersonFilters(recognition_status=RECOGNISED))
    cases = await repository.page(
        session, filters, person_ids, caller.principal, recognised_ids, after, limit + 1
    )
    more = len(cases) > limit
    cases = cases[:limit]
    # The query returned only what the caller may read; each item still gets its own
    # clearance (a caseworker sees more of the case files assigned to them).
    resources = await case_resources(session, caller, cases)
    views = [
        CaseView(case, caller.clearance("case", resource))
        for case, resource in zip(cases, resources, strict=True)
    ]
    return CasePage(views, encode_cursor([str(cases[-1].id)], fingerprint) if more else None)

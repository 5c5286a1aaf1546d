"""Use cases that change a case file's status path: append an event, retract one,
supersede one with a correction, confirm or reject a claim, apply one transition to many
case files at once (a collective event) or retract all that a collective event did, and
read what a collective event did.

Each loads the case files' events under a row lock, builds the resulting records and
accepts them only if their path is valid (history.py); the case file's derived columns
follow from the records.
"""

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from app.access import visibility
from app.access.caller import Caller
from app.audit.journal import change, journal_of
from app.cases import repository
from app.cases.history import (
    HistoryEntry,
    as_if_confirmed,
    case_snapshot,
    derive,
    entry_of,
    event_change,
    history_entries,
    new_event,
    new_event_change,
    path_error,
    refuse_invalid,
    refuse_unknown_charges,
)
from app.cases.models import (
    CaseFile,
    ClaimOutcome,
    ClaimResolution,
    EventRecord,
    StatusEvent,
    StatusEventRetraction,
)
from app.cases.schemas import (
    ConfirmationInput,
    StatusEventFields,
    StatusEventInput,
    SupersessionInput,
)
from app.cases.service import visible
from app.cases.statuses import Status
from app.core.errors import (
    CollectiveTransitionRejected,
    Conflict,
    DatabaseBusy,
    NotFound,
    UnknownReference,
)
from app.core.versioning import bump, check_version
from app.sources import service as sources_service


@dataclass(frozen=True)
class StatusChange:
    entry: HistoryEntry
    case: CaseFile


@dataclass(frozen=True)
class CollectiveOutcome:
    case_file_id: uuid.UUID
    outcome: str
    from_status: Status | None = None
    event_id: uuid.UUID | None = None
    reason: str | None = None


async def _save_status(session: AsyncSession, cases: Sequence[CaseFile]) -> None:
    # The rows are locked, so this cannot fail unless something bypassed the lock; if it
    # does, rolling back is the only safe answer, and the request may simply be sent again
    # (a retryable 503, which every route documents; not a 412, which would blame the
    # client's If-Match).
    if not await repository.save_status(session, cases):
        raise DatabaseBusy("A case file changed while its status was being updated.")


async def may_transition(session: AsyncSession, caller: Caller, case_id: uuid.UUID) -> None:
    """Before a stored answer is replayed: the caller may still see and change the case
    file (access can be withdrawn between the first request and its retry)."""
    found = await visible(session, caller, case_id)
    caller.require("case.transition", found.resource)


@dataclass(frozen=True)
class _Locked:
    case: CaseFile
    records: list[EventRecord]


async def _locked(session: AsyncSession, caller: Caller, case_id: uuid.UUID) -> _Locked:
    """The case file, locked, if the caller may change its path, with its history."""
    found = await visible(session, caller, case_id, for_update=True)
    caller.require("case.transition", found.resource)
    records = (await repository.events_of(session, [case_id])).get(case_id, [])
    return _Locked(found.case, records)


async def _locked_event(
    session: AsyncSession,
    caller: Caller,
    case_id: uuid.UUID,
    event_id: uuid.UUID,
    expected_version: int,
) -> tuple[_Locked, EventRecord]:
    """As `_locked`, with one of the case file's events: a missing event is a 404 whatever
    the version, then a stale version a 412."""
    locked = await _locked(session, caller, case_id)
    target = next((r for r in locked.records if r.event.id == event_id), None)
    if target is None:
        raise NotFound("No such status event in this case file.")
    check_version(locked.case.version, expected_version, what="case file")
    return locked, target


def _replaced(
    records: Sequence[EventRecord], event_id: uuid.UUID, make: Callable[[EventRecord], EventRecord]
) -> list[EventRecord]:
    return [make(record) if record.event.id == event_id else record for record in records]


def _journal_change(
    session: AsyncSession,
    action: str,
    case: CaseFile,
    case_before: dict[str, Any],
    event_changes: Sequence[dict[str, Any] | None],
) -> None:
    journal = journal_of(session)
    journal.changed(
        action,
        "case",
        case.id,
        changes=[
            change("case", case.id, before=case_before, after=case_snapshot(journal, case)),
            *event_changes,
        ],
        related=[case.person_id],
    )


async def append(
    session: AsyncSession,
    caller: Caller,
    case_id: uuid.UUID,
    *,
    expected_version: int,
    data: StatusEventInput,
) -> StatusChange:
    """Record an event. Late news is inserted where its effective date puts it; a claim
    (unconfirmed) moves nothing, but must be one that could take effect."""
    locked = await _locked(session, caller, case_id)
    case, records = locked.case, locked.records
    check_version(case.version, expected_version, what="case file")
    await sources_service.ensure_exist(session, data.source_ids)
    event = new_event(
        data,
        case_id=case_id,
        position=len(records),
        recorded_by=caller.principal.staff_id,
        reported_by_partner=caller.principal.partner_id,
    )
    refuse_unknown_charges(case.charges, [event])
    record = EventRecord(event)
    refuse_invalid([*records, as_if_confirmed(record)], what="This status change is not allowed")
    after = [*records, record]
    journal = journal_of(session)
    before = case_snapshot(journal, case)
    await repository.add_events(session, [event])
    derive(case, after)
    bump(case)
    await _save_status(session, [case])
    entry = entry_of(after, event.id)
    _journal_change(session, "case.transition", case, before, [new_event_change(journal, entry)])
    return StatusChange(entry, case)


async def retract(
    session: AsyncSession,
    caller: Caller,
    case_id: uuid.UUID,
    *,
    event_id: uuid.UUID,
    expected_version: int,
    reason: str,
) -> StatusChange:
    locked, target = await _locked_event(session, caller, case_id, event_id, expected_version)
    case, records = locked.case, locked.records
    if target.withdrawn:
        raise Conflict("This status event is already retracted.")
    retraction = StatusEventRetraction(
        event_id=event_id,
        case_file_id=case_id,
        reason=reason,
        recorded_by=caller.principal.staff_id,
    )
    after = _replaced(records, event_id, lambda r: EventRecord(r.event, retraction, r.resolution))
    refuse_invalid(after, what="Retracting this event would leave an invalid history")
    journal = journal_of(session)
    case_before = case_snapshot(journal, case)
    await repository.add_retractions(session, [retraction])
    derive(case, after)
    bump(case)
    await _save_status(session, [case])
    entry = entry_of(after, event_id)
    _journal_change(
        session,
        "case.retract",
        case,
        case_before,
        [event_change(journal, entry_of(records, event_id), entry)],
    )
    return StatusChange(entry, case)


async def supersede(
    session: AsyncSession,
    caller: Caller,
    case_id: uuid.UUID,
    *,
    event_id: uuid.UUID,
    expected_version: int,
    data: SupersessionInput,
) -> StatusChange:
    """Replace an event with a corrected one in one step: the original is kept, retracted
    with the reason and a link to its correction, which keeps its collective event."""
    locked, target = await _locked_event(session, caller, case_id, event_id, expected_version)
    case, records = locked.case, locked.records
    if target.withdrawn:
        raise Conflict("This status event is already retracted or superseded.")
    await sources_service.ensure_exist(session, data.event.source_ids)
    correction = new_event(
        data.event,
        case_id=case_id,
        position=len(records),
        recorded_by=caller.principal.staff_id,
        # A correction stays part of its collective event only as the same kind of event
        # (a corrected date or decree); another status is no longer what the batch did.
        collective_event_id=(
            target.event.collective_event_id
            if data.event.status is target.event.to_status
            else None
        ),
    )
    refuse_unknown_charges(case.charges, [correction])
    retraction = StatusEventRetraction(
        event_id=event_id,
        case_file_id=case_id,
        reason=data.reason,
        superseded_by=correction.id,
        recorded_by=caller.principal.staff_id,
    )
    after = [
        *_replaced(records, event_id, lambda r: EventRecord(r.event, retraction, r.resolution)),
        EventRecord(correction),
    ]
    # The path as it stands after the correction, and (if the correction is a claim) as it
    # would stand once the claim is confirmed.
    what = "This correction would leave an invalid history"
    refuse_invalid(after, what=what)
    refuse_invalid(
        [as_if_confirmed(record) if record.event is correction else record for record in after],
        what=what,
    )
    journal = journal_of(session)
    case_before = case_snapshot(journal, case)
    await repository.add_events(session, [correction])
    await repository.add_retractions(session, [retraction])
    derive(case, after)
    bump(case)
    await _save_status(session, [case])
    entry = entry_of(after, correction.id)
    _journal_change(
        session,
        "case.supersede",
        case,
        case_before,
        [
            event_change(journal, entry_of(records, event_id), entry_of(after, event_id)),
            new_event_change(journal, entry),
        ],
    )
    return StatusChange(entry, case)


async def settle_claim(
    session: AsyncSession,
    caller: Caller,
    case_id: uuid.UUID,
    *,
    event_id: uuid.UUID,
    expected_version: int,
    confirmation: ConfirmationInput | None = None,
    rejection_reason: str | None = None,
) -> StatusChange:
    """Confirm a claim (it takes effect from now on, where its date puts it in the path)
    or reject it (it never does); either is recorded once, with who and when."""
    locked, target = await _locked_event(session, caller, case_id, event_id, expected_version)
    case, records = locked.case, locked.records
    if not target.pending:
        raise Conflict(
            "Only a pending claim (an unconfirmed event not yet confirmed, rejected or "
            "retracted) can be confirmed or rejected."
        )
    if confirmation is not None:
        await sources_service.ensure_exist(session, confirmation.source_ids)
    resolution = ClaimResolution(
        event_id=event_id,
        case_file_id=case_id,
        outcome=ClaimOutcome.confirmed if confirmation is not None else ClaimOutcome.rejected,
        confidence=confirmation.confidence if confirmation is not None else None,
        reason=confirmation.reason if confirmation is not None else rejection_reason,
        source_ids=list(confirmation.source_ids) if confirmation is not None else [],
        recorded_by=caller.principal.staff_id,
    )
    after = _replaced(records, event_id, lambda r: EventRecord(r.event, r.retraction, resolution))
    refuse_invalid(after, what="Confirming this claim would leave an invalid history")
    journal = journal_of(session)
    case_before = case_snapshot(journal, case)
    await repository.add_resolution(session, resolution)
    derive(case, after)
    bump(case)
    await _save_status(session, [case])
    entry = entry_of(after, event_id)
    action = "case.confirm_claim" if confirmation is not None else "case.reject_claim"
    _journal_change(
        session,
        action,
        case,
        case_before,
        [event_change(journal, entry_of(records, event_id), entry)],
    )
    return StatusChange(entry, case)


async def _lock_batch(
    session: AsyncSession, caller: Caller, case_ids: Sequence[uuid.UUID]
) -> tuple[dict[uuid.UUID, CaseFile], dict[uuid.UUID, list[EventRecord]], set[uuid.UUID]]:
    """The existing case files of a batch, locked in id order, their histories, and which
    of them the caller may change."""
    cases = {case.id: case for case in await repository.lock_many(session, case_ids)}
    histories = await repository.events_of(session, list(cases))
    resources = await visibility.case_resources(session, caller.principal, list(cases.values()))
    changeable = {
        case_id
        for case_id, resource in zip(cases, resources, strict=True)
        if caller.may("case.transition", resource)
    }
    return cases, histories, changeable


async def apply_collective(
    session: AsyncSession,
    caller: Caller,
    case_ids: Sequence[uuid.UUID],
    *,
    steps: Sequence[StatusEventFields],
    collective_event_id: uuid.UUID,
) -> list[CollectiveOutcome]:
    """Apply the same steps (a pardon, or a pardon and the expulsion that followed) to every
    listed case file, or to none of them.

    Raises CollectiveTransitionRejected, with each case file's result, if any one fails.
    """
    cases, histories, changeable = await _lock_batch(session, caller, case_ids)
    journal = journal_of(session)
    before = {case_id: case_snapshot(journal, case) for case_id, case in cases.items()}
    outcomes: list[CollectiveOutcome] = []
    new_events: list[StatusEvent] = []
    changed: list[tuple[CaseFile, list[EventRecord], list[StatusEvent]]] = []
    for case_id in case_ids:
        case = cases.get(case_id)
        if case is None or case_id not in changeable:
            outcomes.append(CollectiveOutcome(case_id, "not_found", reason="no such case file"))
            continue
        records = histories.get(case_id, [])
        made = [
            new_event(
                step,
                case_id=case_id,
                position=len(records) + offset,
                recorded_by=caller.principal.staff_id,
                collective_event_id=collective_event_id,
            )
            for offset, step in enumerate(steps)
        ]
        try:
            refuse_unknown_charges(case.charges, made)
        except UnknownReference as unknown:
            outcomes.append(
                CollectiveOutcome(case_id, "rejected", case.status, reason=unknown.detail)
            )
            continue
        after = [*records, *(EventRecord(event) for event in made)]
        # The new events must be able to take effect, even if recorded as claims.
        error = path_error([*records, *(as_if_confirmed(EventRecord(e)) for e in made)])
        if error is not None:
            outcomes.append(
                CollectiveOutcome(case_id, "rejected", case.status, reason=error.describe())
            )
            continue
        from_status = case.status
        derive(case, after)
        bump(case)
        new_events.extend(made)
        changed.append((case, after, made))
        outcomes.append(CollectiveOutcome(case_id, "applied", from_status, made[0].id))
    if len(changed) != len(case_ids):
        raise CollectiveTransitionRejected(
            "Nothing was changed. Each case file's result is listed in `results`.",
            results=[_outcome_json(o) for o in outcomes],
        )
    await repository.add_events(session, new_events)
    await _save_status(session, [case for case, _, _ in changed])
    journal.changed(
        "collective.create",
        "collective_event",
        collective_event_id,
        changes=[
            entry
            for case, after, made in changed
            for entry in (
                change("case", case.id, before=before[case.id], after=case_snapshot(journal, case)),
                *(new_event_change(journal, entry_of(after, event.id)) for event in made),
            )
        ],
        related=[*(case.id for case, _, _ in changed), *(case.person_id for case, _, _ in changed)],
    )
    return outcomes


async def retract_collective(
    session: AsyncSession,
    caller: Caller,
    collective_event_id: uuid.UUID,
    *,
    reason: str,
) -> list[CollectiveOutcome]:
    """Retract every event a collective event made (corrections that superseded them
    included) in every case file, or none: refused, with each case file's result, when a
    retraction would leave a path invalid (a later event depends on it) or a case file is
    not the caller's to change."""
    case_ids = await repository.case_ids_of_collective(session, collective_event_id)
    cases, histories, changeable = await _lock_batch(session, caller, case_ids)
    journal = journal_of(session)
    outcomes: list[CollectiveOutcome] = []
    hidden = 0
    retractions: list[StatusEventRetraction] = []
    changed: list[tuple[CaseFile, list[EventRecord], list[EventRecord], dict[str, Any]]] = []
    for case_id, case in cases.items():
        if case_id not in changeable:
            hidden += 1
            continue
        records = histories.get(case_id, [])
        made = [
            StatusEventRetraction(
                event_id=record.event.id,
                case_file_id=case_id,
                reason=reason,
                recorded_by=caller.principal.staff_id,
            )
            for record in records
            if record.event.collective_event_id == collective_event_id and not record.withdrawn
        ]
        if not made:
            outcomes.append(CollectiveOutcome(case_id, "retracted", case.status))
            continue
        by_event = {retraction.event_id: retraction for retraction in made}
        after = [
            EventRecord(r.event, by_event[r.event.id], r.resolution)
            if r.event.id in by_event
            else r
            for r in records
        ]
        error = path_error(after)
        if error is not None:
            outcomes.append(
                CollectiveOutcome(case_id, "rejected", case.status, reason=error.describe())
            )
            continue
        before = case_snapshot(journal, case)
        from_status = case.status
        derive(case, after)
        bump(case)
        retractions.extend(made)
        changed.append((case, records, after, before))
        outcomes.append(CollectiveOutcome(case_id, "retracted", from_status))
    if hidden or any(outcome.outcome == "rejected" for outcome in outcomes):
        extra = f" {hidden} of its case files are not yours to change." if hidden else ""
        raise CollectiveTransitionRejected(
            "Nothing was retracted. Each case file's result is listed in `results`." + extra,
            results=[_outcome_json(o) for o in outcomes],
        )
    await repository.add_retractions(session, retractions)
    await _save_status(session, [case for case, _, _, _ in changed])
    retracted_ids = {retraction.event_id for retraction in retractions}
    journal.changed(
        "collective.retract",
        "collective_event",
        collective_event_id,
        changes=[
            entry
            for case, records, after, before in changed
            for entry in (
                change("case", case.id, before=before, after=case_snapshot(journal, case)),
                *(
                    event_change(journal, entry_of(records, event_id), entry_of(after, event_id))
                    for event_id in (r.event.id for r in records if r.event.id in retracted_ids)
                ),
            )
        ],
        related=[*(case.id for case, *_ in changed), *(case.person_id for case, *_ in changed)],
    )
    return outcomes


def _outcome_json(outcome: CollectiveOutcome) -> dict[str, Any]:
    would = {"applied": "would_apply", "retracted": "would_retract"}
    return {
        "case_file_id": str(outcome.case_file_id),
        "outcome": would.get(outcome.outcome, outcome.outcome),
        "from_status": outcome.from_status,
        "reason": outcome.reason,
    }


async def readable_counts_of_collectives(
    session: AsyncSession, caller: Caller, collective_event_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """For each collective event, how many of its case files the caller may read (the
    total would tell that there are others)."""
    return await repository.counts_of_collectives(
        session, collective_event_ids, readable=visibility.readable_cases(caller.principal)
    )


_OUTCOME_OF_STATE = {
    "in_effect": "applied",
    "pending_claim": "pending_claim",
    "rejected_claim": "rejected_claim",
    "retracted": "retracted",
    "superseded": "superseded",
}


async def collective_results(
    session: AsyncSession, caller: Caller, collective_event_id: uuid.UUID
) -> list[CollectiveOutcome]:
    """Each case file's events from a collective event (a correction that superseded one
    keeps its place), with the status each followed; only for the case files the caller
    may read."""
    cases = await repository.get_many(
        session, await repository.case_ids_of_collective(session, collective_event_id)
    )
    resources = await visibility.case_resources(session, caller.principal, cases)
    case_ids = [
        case.id
        for case, resource in zip(cases, resources, strict=True)
        if caller.may("case.read", resource)
    ]
    histories = await repository.events_of(session, case_ids)
    return [
        CollectiveOutcome(
            entry.event.case_file_id,
            _OUTCOME_OF_STATE[entry.state.value],
            entry.from_status,
            entry.event.id,
        )
        for case_id in case_ids
        for entry in history_entries(histories.get(case_id, []))
        if entry.event.collective_event_id == collective_event_id
    ]

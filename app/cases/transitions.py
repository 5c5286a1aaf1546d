"""Use cases that change a case file's status path: append an event, retract one, apply
one transition to many case files at once (a collective event), and read what a
collective event did.

Each loads the case files' events under a row lock, builds the resulting path and accepts
it only if it is valid (history.py); the case file's status columns follow from the path.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from app.access import visibility
from app.access.caller import Caller
from app.audit.journal import change, journal_of
from app.cases import repository
from app.cases.history import (
    HistoryEntry,
    active_events,
    case_snapshot,
    derive,
    event_snapshot,
    history_entries,
    new_event,
    new_event_change,
    path_error,
    refuse_invalid,
)
from app.cases.models import CaseFile, StatusEventRetraction
from app.cases.schemas import StatusEventInput
from app.cases.service import visible
from app.cases.statuses import Status
from app.core.errors import CollectiveTransitionRejected, Conflict, NotFound, PreconditionFailed
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
    # does, refusing (and rolling back) is the only safe answer.
    if not await repository.save_status(session, cases):
        raise PreconditionFailed("A case file changed while its status was being updated.")


async def may_transition(session: AsyncSession, caller: Caller, case_id: uuid.UUID) -> None:
    """Before a stored answer is replayed: the caller may still see and change the case
    file (access can be withdrawn between the first request and its retry)."""
    found = await visible(session, caller, case_id)
    caller.require("case.transition", found.resource)


async def append(
    session: AsyncSession,
    caller: Caller,
    case_id: uuid.UUID,
    *,
    expected_version: int,
    data: StatusEventInput,
) -> StatusChange:
    found = await visible(session, caller, case_id, for_update=True)
    case = found.case
    caller.require("case.transition", found.resource)
    check_version(case.version, expected_version, what="case file")
    await sources_service.ensure_exist(session, data.source_ids)
    records = (await repository.events_of(session, [case_id])).get(case_id, [])
    active = active_events(records)
    event = new_event(
        data, case_id=case_id, position=len(records), recorded_by=caller.principal.staff_id
    )
    path = [*active, event]
    refuse_invalid(path, what="This status change is not allowed")
    journal = journal_of(session)
    before = case_snapshot(journal, case)
    await repository.add_events(session, [event])
    derive(case, path)
    bump(case)
    await _save_status(session, [case])
    entry = HistoryEntry(event, None, active[-1].to_status if active else None)
    journal.changed(
        "case.transition",
        "case",
        case_id,
        changes=[
            change("case", case_id, before=before, after=case_snapshot(journal, case)),
            new_event_change(journal, entry),
        ],
        related=[case.person_id],
    )
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
    found = await visible(session, caller, case_id, for_update=True)
    case = found.case
    caller.require("case.transition", found.resource)
    records = (await repository.events_of(session, [case_id])).get(case_id, [])
    entries = {entry.event.id: entry for entry in history_entries(records)}
    target = entries.get(event_id)
    if target is None:
        raise NotFound("No such status event in this case file.")
    check_version(case.version, expected_version, what="case file")
    if target.retraction is not None:
        raise Conflict("This status event is already retracted.")
    remaining = [event for event in active_events(records) if event.id != event_id]
    refuse_invalid(remaining, what="Retracting this event would leave an invalid history")
    retraction = StatusEventRetraction(
        event_id=event_id,
        case_file_id=case_id,
        reason=reason,
        recorded_by=caller.principal.staff_id,
    )
    journal = journal_of(session)
    case_before = case_snapshot(journal, case)
    event_before = event_snapshot(journal, target)
    await repository.add_retraction(session, retraction)
    derive(case, remaining)
    bump(case)
    await _save_status(session, [case])
    entry = HistoryEntry(target.event, retraction, target.from_status)
    journal.changed(
        "case.retract",
        "case",
        case_id,
        changes=[
            change("case", case_id, before=case_before, after=case_snapshot(journal, case)),
            change(
                "status_event", event_id, before=event_before, after=event_snapshot(journal, entry)
            ),
        ],
        related=[case.person_id],
    )
    return StatusChange(entry, case)


async def apply_collective(
    session: AsyncSession,
    caller: Caller,
    case_ids: Sequence[uuid.UUID],
    *,
    data: StatusEventInput,
    collective_event_id: uuid.UUID,
) -> list[CollectiveOutcome]:
    """Apply one transition to every listed case file, or to none of them.

    Raises CollectiveTransitionRejected, with each case file's result, if any one fails.
    """
    cases = {case.id: case for case in await repository.lock_many(session, case_ids)}
    histories = await repository.events_of(session, list(cases))
    journal = journal_of(session)
    before = {case_id: case_snapshot(journal, case) for case_id, case in cases.items()}
    resources = dict(
        zip(
            cases,
            await visibility.case_resources(session, caller.principal, list(cases.values())),
            strict=True,
        )
    )
    outcomes: list[CollectiveOutcome] = []
    new_events = []
    changed: list[CaseFile] = []
    for case_id in case_ids:
        case = cases.get(case_id)
        if case is None or not caller.may("case.transition", resources[case_id]):
            outcomes.append(CollectiveOutcome(case_id, "not_found", reason="no such case file"))
            continue
        records = histories.get(case_id, [])
        event = new_event(
            data,
            case_id=case_id,
            position=len(records),
            recorded_by=caller.principal.staff_id,
            collective_event_id=collective_event_id,
        )
        path = [*active_events(records), event]
        error = path_error(path)
        if error is not None:
            outcomes.append(
                CollectiveOutcome(case_id, "rejected", case.status, reason=error.describe())
            )
            continue
        from_status = case.status
        derive(case, path)
        bump(case)
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
        changes=[
            entry
            for case, event in zip(changed, new_events, strict=True)
            for entry in (
                change("case", case.id, before=before[case.id], after=case_snapshot(journal, case)),
                new_event_change(journal, HistoryEntry(event, None, from_statuses[case.id])),
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


async def readable_counts_of_collectives(
    session: AsyncSession, caller: Caller, collective_event_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """For each collective event, how many of its case files the caller may read (the
    total would tell that there are others)."""
    return await repository.counts_of_collectives(
        session, collective_event_ids, readable=visibility.readable_cases(caller.principal)
    )


async def collective_results(
    session: AsyncSession, caller: Caller, collective_event_id: uuid.UUID
) -> list[CollectiveOutcome]:
    """Each case file's event from a collective event, with the status it followed; only
    for the case files the caller may read."""
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
            "applied" if entry.retraction is None else "retracted",
            entry.from_status,
            entry.event.id,
        )
        for case_id in case_ids
        for entry in history_entries(histories.get(case_id, []))
        if entry.event.collective_event_id == collective_event_id
    ]

"""A case file's status path as rows: building events, ordering and checking a path,
deriving the case file's status columns from it, and the history's audit snapshots.

The path is the events that take effect (EventRecord.takes_effect) in effective order
(statuses.effective_sequence; a correction takes its original's place). Every change
(create with history, append, retract, supersede, confirm or reject a claim, collective
apply or retraction) builds the
resulting records and accepts them only if `statuses.check_path` finds their path valid;
the derived columns of the case file are then recomputed from it.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from app.audit.journal import Journal, change
from app.cases.models import CaseFile, ClaimOutcome, ClaimResolution, EventRecord, StatusEvent
from app.cases.schemas import (
    EventState,
    StatusEventFields,
    StatusEventRead,
    case_read,
    event_read,
)
from app.cases.statuses import (
    PathError,
    SentenceType,
    Status,
    Step,
    Violation,
    check_path,
    effective_sequence,
    in_custody,
)
from app.core.clock import latest_today, utcnow
from app.core.dates import PartialDate
from app.core.errors import (
    Conflict,
    DomainError,
    InvalidTransition,
    UnknownReference,
    UnprocessableInput,
)
from app.core.ids import new_id


@dataclass(frozen=True)
class HistoryEntry:
    record: EventRecord
    state: EventState
    # The status on the path before this event's effective place in it.
    from_status: Status | None
    supersedes: uuid.UUID | None = None

    @property
    def event(self) -> StatusEvent:
        return self.record.event


def _superseded(records: Sequence[EventRecord]) -> dict[uuid.UUID, uuid.UUID]:
    """Each correction's id, with the id of the event it superseded."""
    return {
        record.retraction.superseded_by: record.event.id
        for record in records
        if record.retraction is not None and record.retraction.superseded_by is not None
    }


def _given_order(records: Sequence[EventRecord]) -> dict[uuid.UUID, int]:
    """Where each event was given among the others: its recording position, except that a
    correction takes the place of the event it superseded (a corrected pardon stays
    before the deportation recorded with it on the same day)."""
    positions = {record.event.id: record.event.position for record in records}
    originals = _superseded(records)

    def given(event_id: uuid.UUID) -> int:
        seen: set[uuid.UUID] = set()
        while event_id in originals and event_id not in seen:
            seen.add(event_id)
            event_id = originals[event_id]
        return positions[event_id]

    return {event_id: given(event_id) for event_id in positions}


def _steps(records: Sequence[EventRecord]) -> dict[uuid.UUID, Step]:
    given = _given_order(records)
    return {
        record.event.id: Step(
            record.event.to_status,
            PartialDate(record.event.effective_date, record.event.effective_precision),
            given[record.event.id],
        )
        for record in records
    }


def path_of(records: Sequence[EventRecord]) -> list[EventRecord]:
    """The events that take effect, in effective order."""
    steps = _steps(records)
    return effective_sequence(
        [record for record in records if record.takes_effect],
        lambda record: steps[record.event.id],
    )


def _state(record: EventRecord) -> EventState:
    if record.retraction is not None:
        if record.retraction.superseded_by is not None:
            return EventState.superseded
        return EventState.retracted
    if record.takes_effect:
        return EventState.in_effect
    if record.resolution is not None and record.resolution.outcome is ClaimOutcome.rejected:
        return EventState.rejected_claim
    return EventState.pending_claim


def history_entries(records: Sequence[EventRecord]) -> list[HistoryEntry]:
    """Every event in effective order, with its state and the status on the path before
    its place (withdrawn events and claims stay visible, where their dates put them)."""
    steps = _steps(records)

    def step_of(record: EventRecord) -> Step:
        return steps[record.event.id]

    path = path_of(records)
    supersedes = _superseded(records)
    entries: list[HistoryEntry] = []
    for record in effective_sequence(records, step_of):
        # The path as it would be with this event on it: what the event follows there.
        placed = path if record.takes_effect else effective_sequence([*path, record], step_of)
        index = placed.index(record)
        previous = placed[index - 1].event.to_status if index else None
        entries.append(
            HistoryEntry(record, _state(record), previous, supersedes.get(record.event.id))
        )
    return entries


def entry_of(records: Sequence[EventRecord], event_id: uuid.UUID) -> HistoryEntry:
    """One event's history entry (which must be among the records)."""
    return next(entry for entry in history_entries(records) if entry.event.id == event_id)


def new_event(
    data: StatusEventFields,
    *,
    case_id: uuid.UUID,
    position: int,
    recorded_by: uuid.UUID | None,
    collective_event_id: uuid.UUID | None = None,
    reported_by_partner: uuid.UUID | None = None,
) -> StatusEvent:
    effective = PartialDate.parse(data.effective_date)
    # Built from validated input and written with plain SQL, so it skips the validating
    # constructor; the id and the recording time are set here explicitly.
    return StatusEvent.model_construct(
        id=new_id(),
        recorded_at=utcnow(),
        recorded_by=recorded_by,
        reported_by_partner=reported_by_partner,
        case_file_id=case_id,
        position=position,
        to_status=data.status,
        effective_date=effective.start,
        effective_precision=effective.precision,
        confidence=data.confidence,
        note=data.note,
        details=data.details_json(),
        source_ids=list(data.source_ids),
        collective_event_id=collective_event_id,
    )


def as_if_confirmed(record: EventRecord) -> EventRecord:
    """A claim as it would stand once confirmed (to check it could take effect)."""
    if not record.pending:
        return record
    resolution = ClaimResolution.model_construct(
        outcome=ClaimOutcome.confirmed, confidence=None, case_file_id=record.event.case_file_id
    )
    return replace(record, resolution=resolution)


def path_error(records: Sequence[EventRecord]) -> PathError | None:
    """Why the path of these records is not a valid one, or None. Nothing may lie after
    the date that is today anywhere on Earth."""
    steps = _steps(records)
    return check_path([steps[record.event.id] for record in path_of(records)], latest_today())


def refusal(error: PathError, *, what: str) -> DomainError:
    detail = f"{what}: {error.describe()}."
    extensions: dict[str, Any] = {"violation": error.violation.value, "event_index": error.index}
    if error.violation is Violation.date_in_future:
        return UnprocessableInput(detail, **extensions)
    return InvalidTransition(detail, **extensions)


def refuse_invalid(records: Sequence[EventRecord], *, what: str) -> None:
    error = path_error(records)
    if error is not None:
        raise refusal(error, what=what)


def refuse_invalid_with_claims(records: Sequence[EventRecord], *, what: str) -> None:
    """The path must be valid, and each pending claim one that could take effect on it."""
    refuse_invalid(records, what=what)
    for claim in (record for record in records if record.pending):
        refuse_invalid(
            [as_if_confirmed(r) if r is claim else r for r in records],
            what=f"{what} (with its claim confirmed)",
        )


def refuse_unknown_charges(
    charges: Sequence[dict[str, Any]], events: Sequence[StatusEvent]
) -> None:
    """A verdict names the charges it decided by their charge_id: each must be one of the
    case file's charges."""
    known = {str(charge.get("charge_id")) for charge in charges}
    for event in events:
        unknown = [i for i in event.details.get("charge_ids", []) if str(i) not in known]
        if unknown:
            raise UnknownReference(
                "details.charge_ids must name charges of this case file; these do not: "
                + ", ".join(str(i) for i in unknown)
            )


def refuse_dropping_decided_charges(
    records: Sequence[EventRecord], charges: Sequence[dict[str, Any]]
) -> None:
    """Charges a verdict on the path decided stay on the case file: the verdict would
    otherwise name nothing. Supersede the verdict first."""
    kept = {str(charge.get("charge_id")) for charge in charges}
    decided = {
        str(i) for record in path_of(records) for i in record.event.details.get("charge_ids", [])
    }
    if decided - kept:
        raise Conflict(
            "These charges were decided by a verdict on the path and cannot be removed: "
            + ", ".join(sorted(decided - kept))
        )


# What a case file shows of each verdict: the sentence, which is public. Named one by one,
# so that a field added to a sentenced event's (restricted) details is not made public
# here by accident.
COURT_DECISION_FIELDS = (
    "sentence_type",
    "term_months",
    "regime",
    "court",
    "fine_amount",
    "fine_currency",
    "in_absentia",
    "charge_ids",
    # how migration 0009 completed a sentence recorded before sentences lived here
    "carried_over",
)


def _court_decision(event: StatusEvent) -> dict[str, Any]:
    return {
        "event_id": str(event.id),
        "decided_on": str(PartialDate(event.effective_date, event.effective_precision)),
        **{name: event.details[name] for name in COURT_DECISION_FIELDS if name in event.details},
    }


def status_columns(records: Sequence[EventRecord]) -> dict[str, Any]:
    """The case file's derived columns, from its records (whose path is valid and not
    empty)."""
    path = path_of(records)
    first, last = path[0], path[-1]
    sentences = [r.event for r in path if r.event.to_status is Status.sentenced]
    sentence = (
        SentenceType(sentences[-1].details["sentence_type"])
        if sentences and "sentence_type" in sentences[-1].details
        else None
    )
    status = Status(last.event.to_status)
    return {
        "status": status,
        "status_since": last.event.effective_date,
        "status_since_precision": last.event.effective_precision,
        "status_confidence": last.confidence,
        "detained_on": first.event.effective_date,
        "detained_precision": first.event.effective_precision,
        "in_custody": in_custody(
            status,
            sentence if status is Status.sentenced else None,
            in_absentia=status is Status.sentenced
            and bool(sentences[-1].details.get("in_absentia")),
        ),
        "sentence_type": sentence,
        "court_decisions": [_court_decision(event) for event in sentences],
        "pending_claims": sum(1 for record in records if record.pending),
    }


def derive(case: CaseFile, records: Sequence[EventRecord]) -> None:
    """Recompute the case file's derived columns from its records."""
    for column, value in status_columns(records).items():
        setattr(case, column, value)


def case_snapshot(journal: Journal, case: CaseFile) -> dict[str, Any]:
    return journal.snapshot("case", case_read(case).model_dump(mode="json"))


def entry_read(entry: HistoryEntry) -> StatusEventRead:
    return event_read(
        entry.event,
        state=entry.state,
        from_status=entry.from_status,
        retraction=entry.record.retraction,
        resolution=entry.record.resolution,
        supersedes=entry.supersedes,
    )


def entry_read_values(entry: HistoryEntry) -> dict[str, Any]:
    return entry_read(entry).model_dump(mode="json")


def event_snapshot(journal: Journal, entry: HistoryEntry) -> dict[str, Any]:
    return journal.snapshot("status_event", entry_read_values(entry))


def new_event_change(journal: Journal, entry: HistoryEntry) -> dict[str, Any] | None:
    return change("status_event", entry.event.id, before=None, after=event_snapshot(journal, entry))


def event_change(
    journal: Journal, before: HistoryEntry, after: HistoryEntry
) -> dict[str, Any] | None:
    return change(
        "status_event",
        before.event.id,
        before=event_snapshot(journal, before),
        after=event_snapshot(journal, after),
    )

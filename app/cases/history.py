"""A case file's status path as rows: building events, checking a path, deriving the case
file's status columns from it, and the history's audit snapshots.

Every change to a path (create with history, append, retract, collective apply) builds the
resulting path and accepts it only if `statuses.check_path` finds it valid; the derived
columns of the case file (status, status_since, detained_on) are then recomputed from it.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.audit.journal import Journal, change
from app.cases.models import CaseFile, StatusEvent, StatusEventRetraction
from app.cases.repository import EventRecord
from app.cases.schemas import StatusEventInput, case_read, event_read
from app.cases.statuses import PathError, Status, Step, Violation, check_path
from app.core.clock import today, utcnow
from app.core.dates import PartialDate
from app.core.errors import DomainError, InvalidTransition, UnprocessableInput
from app.core.ids import new_id


@dataclass(frozen=True)
class HistoryEntry:
    event: StatusEvent
    retraction: StatusEventRetraction | None
    from_status: Status | None


def history_entries(history: Sequence[EventRecord]) -> list[HistoryEntry]:
    """Events with the status each one followed in the path (retracted ones stay visible)."""
    entries: list[HistoryEntry] = []
    previous: Status | None = None
    for event, retraction in history:
        entries.append(HistoryEntry(event, retraction, previous))
        if retraction is None:
            previous = event.to_status
    return entries


def active_events(history: Sequence[EventRecord]) -> list[StatusEvent]:
    """The path: the events that were not retracted, in recorded order."""
    return [event for event, retraction in history if retraction is None]


def new_event(
    data: StatusEventInput,
    *,
    case_id: uuid.UUID,
    position: int,
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


def _step(event: StatusEvent) -> Step:
    return Step(event.to_status, PartialDate(event.effective_date, event.effective_precision))


def path_error(path: Sequence[StatusEvent]) -> PathError | None:
    """Why this path is not a valid one today, or None."""
    return check_path([_step(event) for event in path], today())


def refusal(error: PathError, *, what: str) -> DomainError:
    detail = f"{what}: {error.describe()}."
    extensions: dict[str, Any] = {"violation": error.violation.value, "event_index": error.index}
    if error.violation is Violation.date_in_future:
        return UnprocessableInput(detail, **extensions)
    return InvalidTransition(detail, **extensions)


def refuse_invalid(path: Sequence[StatusEvent], *, what: str) -> None:
    error = path_error(path)
    if error is not None:
        raise refusal(error, what=what)


def status_columns(path: Sequence[StatusEvent]) -> dict[str, Any]:
    """The case file's status columns, derived from its (valid, non-empty) path."""
    last = path[-1]
    return {
        "status": last.to_status,
        "status_since": last.effective_date,
        "status_since_precision": last.effective_precision,
        "detained_on": path[0].effective_date,
    }


def derive(case: CaseFile, path: Sequence[StatusEvent]) -> None:
    """Recompute the case file's status columns from its (valid, non-empty) path."""
    for column, value in status_columns(path).items():
        setattr(case, column, value)


def case_snapshot(journal: Journal, case: CaseFile) -> dict[str, Any]:
    return journal.snapshot("case", case_read(case).model_dump(mode="json"))


def event_snapshot(journal: Journal, entry: HistoryEntry) -> dict[str, Any]:
    values = event_read(entry.event, entry.retraction, entry.from_status).model_dump(mode="json")
    return journal.snapshot("status_event", values)


def new_event_change(journal: Journal, entry: HistoryEntry) -> dict[str, Any] | None:
    return change("status_event", entry.event.id, before=None, after=event_snapshot(journal, entry))

"""The status state machine of a case file, as data.

A case file's status is never written: it is the last step of its path of status events
(retracted events left out). Every change (an appended event, an imported history, a
retraction) is accepted only if the resulting path is valid as a whole, by `check_path`.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from app.core.dates import PartialDate


class Status(StrEnum):
    detained = "detained"
    sentenced = "sentenced"
    released = "released"
    pardoned = "pardoned"
    deported = "deported"
    died_in_custody = "died_in_custody"


class Confidence(StrEnum):
    """How sure we are that an event happened ("no confirmation of her release" is real)."""

    confirmed = "confirmed"
    reported = "reported"
    unconfirmed = "unconfirmed"


INITIAL: frozenset[Status] = frozenset({Status.detained})
IN_CUSTODY: frozenset[Status] = frozenset({Status.detained, Status.sentenced})

# A new `sentenced` after `sentenced` records an appeal or a new term.
TRANSITIONS: Mapping[Status, frozenset[Status]] = {
    Status.detained: frozenset(
        {
            Status.sentenced,
            Status.released,
            Status.pardoned,
            Status.deported,
            Status.died_in_custody,
        }
    ),
    Status.sentenced: frozenset(
        {
            Status.sentenced,
            Status.released,
            Status.pardoned,
            Status.deported,
            Status.died_in_custody,
        }
    ),
    Status.released: frozenset({Status.deported}),
    Status.pardoned: frozenset({Status.deported}),
    Status.deported: frozenset(),
    Status.died_in_custody: frozenset(),
}

FINAL: frozenset[Status] = frozenset(s for s, targets in TRANSITIONS.items() if not targets)


class Violation(StrEnum):
    empty = "empty"
    not_initial = "not_initial"
    not_allowed = "not_allowed"
    date_before_previous = "date_before_previous"
    date_in_future = "date_in_future"


VIOLATION_TEXT: Mapping[Violation, str] = {
    Violation.empty: "a case file needs at least one status event",
    Violation.not_initial: "a case file's history must start with 'detained'",
    Violation.not_allowed: "this status cannot follow the previous one",
    Violation.date_before_previous: "the effective date is before an earlier event's date",
    Violation.date_in_future: "the effective date is in the future",
}


@dataclass(frozen=True, slots=True)
class Step:
    status: Status
    effective: PartialDate


@dataclass(frozen=True, slots=True)
class PathError:
    index: int
    violation: Violation
    from_status: Status | None
    to_status: Status | None

    def describe(self) -> str:
        text = VIOLATION_TEXT[self.violation]
        if self.violation is Violation.not_allowed:
            return f"{text}: {self.from_status} → {self.to_status}"
        return text


def allowed_next(status: Status | None) -> frozenset[Status]:
    return INITIAL if status is None else TRANSITIONS[status]


def check_path(path: Sequence[Step], today: date) -> PathError | None:
    """The first violation of the path, or None when the whole path is valid.

    Dates may be imprecise: a step is refused only when it certainly lies before an
    earlier step (its last possible day precedes the latest first-possible day so far).
    """
    if not path:
        return PathError(0, Violation.empty, None, None)
    previous: Status | None = None
    floor: date | None = None
    for index, step in enumerate(path):
        if step.status not in allowed_next(previous):
            violation = Violation.not_initial if previous is None else Violation.not_allowed
            return PathError(index, violation, previous, step.status)
        if step.effective.start > today:
            return PathError(index, Violation.date_in_future, previous, step.status)
        if floor is not None and step.effective.end < floor:
            return PathError(index, Violation.date_before_previous, previous, step.status)
        floor = step.effective.start if floor is None else max(floor, step.effective.start)
        previous = step.status
    return None


def current_status(path: Sequence[Step]) -> Status | None:
    return path[-1].status if path else None

"""The status state machine of a case file, as data (DESIGN §2).

A case file's status is never written: it is the last step of its path. The path is the
case file's status events that take effect — not retracted (or superseded), and not a
pending or rejected claim — ordered by effective date; events whose dates do not tell
which came first keep the order in which they were given. Every change (an appended
event, an imported history, a retraction, a supersession, a confirmed claim) is accepted
only if the resulting path is valid as a whole, by `check_path`. (Dates may be partial: see
`effective_sequence` for how they are ordered.)
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import TypeVar

from app.core.dates import PartialDate


class Status(StrEnum):
    detained = "detained"
    # Prosecuted but not held: at liberty under a travel ban, wanted, tried in absentia.
    charged = "charged"
    sentenced = "sentenced"
    released = "released"
    pardoned = "pardoned"
    deported = "deported"
    died_in_custody = "died_in_custody"


class Confidence(StrEnum):
    """How sure we are that an event happened ("no confirmation of her release" is real)."""

    confirmed = "confirmed"
    reported = "reported"
    # A claim: shown, but it moves nothing until it is confirmed.
    unconfirmed = "unconfirmed"


# The confidences of events that take effect on recording.
TAKES_EFFECT: frozenset[Confidence] = frozenset({Confidence.confirmed, Confidence.reported})


class SentenceType(StrEnum):
    imprisonment = "imprisonment"
    # Belarus's "khimiya": held in an open correctional facility.
    restriction_of_freedom_open_facility = "restriction_of_freedom_open_facility"
    restriction_of_freedom_at_home = "restriction_of_freedom_at_home"
    suspended = "suspended"
    fine = "fine"
    compulsory_treatment = "compulsory_treatment"


# The sentences served in custody; a fine, a suspended sentence or restriction of freedom
# at home leave the person at liberty (DESIGN §2, "In custody").
CUSTODIAL_SENTENCES: frozenset[SentenceType] = frozenset(
    {
        SentenceType.imprisonment,
        SentenceType.restriction_of_freedom_open_facility,
        SentenceType.compulsory_treatment,
    }
)

INITIAL: frozenset[Status] = frozenset({Status.detained, Status.charged})

_ENDS_OF_CUSTODY = {Status.released, Status.pardoned, Status.deported, Status.died_in_custody}
TRANSITIONS: Mapping[Status, frozenset[Status]] = {
    Status.charged: frozenset({Status.detained, Status.sentenced, Status.released}),
    # → charged: released pending trial.
    Status.detained: frozenset({Status.charged, Status.sentenced, *_ENDS_OF_CUSTODY}),
    # → sentenced: appeal, new term, added sentence; → detained / charged: the verdict was
    # quashed and the retrial goes on in custody / at liberty.
    Status.sentenced: frozenset(
        {Status.sentenced, Status.detained, Status.charged, *_ENDS_OF_CUSTODY}
    ),
    Status.released: frozenset({Status.deported}),
    Status.pardoned: frozenset({Status.deported}),
    Status.deported: frozenset(),
    Status.died_in_custody: frozenset(),
}

FINAL: frozenset[Status] = frozenset(s for s, targets in TRANSITIONS.items() if not targets)
# A case file whose person is no longer prosecuted or held by it.
CLOSED: frozenset[Status] = frozenset(_ENDS_OF_CUSTODY)
# "Released between" counts the events by which a person left custody alive.
LEAVING_CUSTODY: frozenset[Status] = frozenset({Status.released, Status.pardoned, Status.deported})


def in_custody(
    status: Status | None, sentence: SentenceType | None, *, in_absentia: bool = False
) -> bool:
    """Held: detained, or serving a custodial sentence (not one passed in absentia on a
    person at liberty abroad). Never derived from a claim."""
    if status is Status.detained:
        return True
    return status is Status.sentenced and sentence in CUSTODIAL_SENTENCES and not in_absentia


class Violation(StrEnum):
    empty = "empty"
    not_initial = "not_initial"
    not_allowed = "not_allowed"
    date_in_future = "date_in_future"


VIOLATION_TEXT: Mapping[Violation, str] = {
    Violation.empty: "a case file needs at least one status event that takes effect",
    Violation.not_initial: "a case file's path must start with 'detained' or 'charged'",
    Violation.not_allowed: "this status cannot follow the previous one",
    Violation.date_in_future: "the effective date is in the future",
}


@dataclass(frozen=True, slots=True)
class Step:
    status: Status
    effective: PartialDate
    # The order in which the events were given: it decides between steps whose dates do
    # not tell which came first.
    given: int = 0


@dataclass(frozen=True, slots=True)
class PathError:
    # The step's `given` number: an imported history's index, else the event's position.
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


Item = TypeVar("Item")


def certainly_before(first: Step, second: Step) -> bool:
    """The first step's last possible day lies before the second's first possible day."""
    return first.effective.end < second.effective.start


def effective_sequence(items: Sequence[Item], step_of: Callable[[Item], Step]) -> list[Item]:
    """Items in effective order: one comes before another when its dates certainly do
    (its last possible day is before the other's first); otherwise, as given.

    A partial date ("2021-08") is the interval of days it may stand for: a release in
    "2021-08" given after a detention on 2021-08-15 follows it; one in "2021-07" precedes
    it whatever the order given. At each step the earliest given item that no remaining
    item certainly precedes comes next (the "certainly before" relation has no cycles).
    """
    remaining = sorted(items, key=lambda item: step_of(item).given)
    ordered: list[Item] = []
    while remaining:
        for index, candidate in enumerate(remaining):
            step = step_of(candidate)
            if not any(
                certainly_before(step_of(other), step)
                for other in remaining
                if other is not candidate
            ):
                ordered.append(remaining.pop(index))
                break
    return ordered


def check_path(path: Sequence[Step], today: date) -> PathError | None:
    """The first violation of the path (in effective order), or None when it is valid."""
    if not path:
        return PathError(0, Violation.empty, None, None)
    previous: Status | None = None
    for step in effective_sequence(path, lambda step: step):
        if step.status not in allowed_next(previous):
            violation = Violation.not_initial if previous is None else Violation.not_allowed
            return PathError(step.given, violation, previous, step.status)
        if step.effective.start > today:
            return PathError(step.given, Violation.date_in_future, previous, step.status)
        previous = step.status
    return None

"""Which case files a decision covers when the coordinator does not list them (DESIGN §2).

A recognition concerns a prosecution: by default a decision covers the person's case files
that are open when it is made, never those closed before (a release ends a case file, a
re-arrest opens a new one). A withdrawal also takes back the recognitions the person holds
on closed case files: withdrawing a released prisoner's recognition must reach the case
file it was given for.
"""

from collections.abc import Iterable
from typing import Protocol, TypeVar

from app.cases.statuses import Status
from app.recognition.criteria import RecognitionStatus

# The statuses that end a case file's deprivation of liberty. Any other (detained,
# sentenced, and statuses added later such as charged) leaves it open.
CLOSED: frozenset[Status] = frozenset(
    {Status.released, Status.pardoned, Status.deported, Status.died_in_custody}
)
# What a withdrawal takes back wherever it is.
WITHDRAWABLE: frozenset[RecognitionStatus] = frozenset(
    {RecognitionStatus.political_prisoner, RecognitionStatus.politically_persecuted}
)


class CaseFacts(Protocol):
    @property
    def status(self) -> Status: ...

    @property
    def recognition_status(self) -> RecognitionStatus: ...


C = TypeVar("C", bound=CaseFacts)


def is_open(case: CaseFacts) -> bool:
    return Status(case.status) not in CLOSED


def covered_by_default(status: RecognitionStatus, cases: Iterable[C]) -> list[C]:
    """The case files a decision of this status covers when none are listed."""
    return [
        case
        for case in cases
        if is_open(case)
        or (
            status is RecognitionStatus.withdrawn
            and RecognitionStatus(case.recognition_status) in WITHDRAWABLE
        )
    ]

"""The custody timeline as filters of case lists: which case files are held in a facility
now, and which have an open incommunicado period. Stated once, on this feature's tables;
the cases feature narrows its lists with them, and `standing`/`current_facility` say the
same of one timeline in Python (a test holds them to agree).

Only what took effect counts: an entry that is retracted does not, nor one whose
confidence is `unconfirmed` (a claim, as for status events). The current facility is that
of the latest standing transfer by effective date (a partial date counts from its first
day; ties go to the one recorded last).
"""

import uuid
from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, exists
from sqlalchemy.dialects.postgresql import distinct_on
from sqlmodel import col, select
from sqlmodel.sql.expression import SelectOfScalar

from app.cases.statuses import Confidence
from app.custody.models import (
    CustodyEvent,
    CustodyEventRetraction,
    CustodyKind,
    CustodyPeriodEnd,
)

# The confidences that take effect; an unconfirmed entry is a claim.
TAKES_EFFECT: frozenset[Confidence] = frozenset({Confidence.confirmed, Confidence.reported})


def _standing(kind: CustodyKind) -> ColumnElement[bool]:
    retracted = exists().where(col(CustodyEventRetraction.event_id) == col(CustodyEvent.id))
    return and_(
        col(CustodyEvent.kind) == kind,
        col(CustodyEvent.confidence).in_(sorted(TAKES_EFFECT)),
        ~retracted,
    )


def case_ids_at_facility(facility_id: uuid.UUID) -> SelectOfScalar[uuid.UUID]:
    """The case files whose current facility is this one."""
    latest = (
        select(col(CustodyEvent.case_file_id), col(CustodyEvent.facility_id))
        .where(_standing(CustodyKind.transfer))
        .ext(distinct_on(col(CustodyEvent.case_file_id)))
        .order_by(
            col(CustodyEvent.case_file_id),
            col(CustodyEvent.effective_date).desc(),
            col(CustodyEvent.recorded_at).desc(),
            col(CustodyEvent.id).desc(),
        )
        .subquery()
    )
    return select(latest.c.case_file_id).where(latest.c.facility_id == facility_id)


def case_ids_incommunicado() -> SelectOfScalar[uuid.UUID]:
    """The case files with an incommunicado period that has not ended."""
    ended = exists().where(col(CustodyPeriodEnd.event_id) == col(CustodyEvent.id))
    return select(CustodyEvent.case_file_id).where(_standing(CustodyKind.incommunicado), ~ended)


# The same rules for one timeline ------------------------------------------------------


def takes_effect(event: CustodyEvent, retraction: CustodyEventRetraction | None) -> bool:
    return retraction is None and event.confidence in TAKES_EFFECT


def current_facility(
    entries: Sequence[tuple[CustodyEvent, CustodyEventRetraction | None]],
) -> uuid.UUID | None:
    transfers = [
        event
        for event, retraction in entries
        if event.kind is CustodyKind.transfer and takes_effect(event, retraction)
    ]
    if not transfers:
        return None
    latest = max(transfers, key=lambda e: (e.effective_date, e.recorded_at, e.id))
    return latest.facility_id


def incommunicado(
    entries: Sequence[tuple[CustodyEvent, CustodyEventRetraction | None, CustodyPeriodEnd | None]],
) -> bool:
    return any(
        event.kind is CustodyKind.incommunicado and takes_effect(event, retraction) and end is None
        for event, retraction, end in entries
    )

import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement
from sqlalchemy.orm import Mapped
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from app.recognition.models import RecognitionCoverage, RecognitionDecision, RecognitionProposal


async def add(
    session: AsyncSession, decision: RecognitionDecision, case_file_ids: Sequence[uuid.UUID]
) -> None:
    session.add(decision)
    await session.flush()
    session.add_all(
        RecognitionCoverage(decision_id=decision.id, case_file_id=case_id)
        for case_id in case_file_ids
    )
    await session.flush()


async def decisions_of_many(
    session: AsyncSession, person_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[RecognitionDecision]]:
    """As decisions_of, for many persons in one query."""
    found: dict[uuid.UUID, list[RecognitionDecision]] = {person_id: [] for person_id in person_ids}
    if not person_ids:
        return found
    stmt = (
        select(RecognitionDecision)
        .where(col(RecognitionDecision.person_id).in_(list(person_ids)))
        .order_by(col(RecognitionDecision.person_id), col(RecognitionDecision.version).desc())
    )
    for decision in await session.exec(stmt):
        found[decision.person_id].append(decision)
    return found


async def decisions_of(session: AsyncSession, person_id: uuid.UUID) -> list[RecognitionDecision]:
    stmt = (
        select(RecognitionDecision)
        .where(RecognitionDecision.person_id == person_id)
        .order_by(col(RecognitionDecision.version).desc())
    )
    return list(await session.exec(stmt))


@dataclass(frozen=True)
class Coverage:
    """What decisions cover: the case files `shown` to a caller, by decision; and which
    decisions also cover a case file the caller may not see."""

    shown: Mapping[uuid.UUID, list[uuid.UUID]]
    partly_unseen: frozenset[uuid.UUID]


async def coverage_of(
    session: AsyncSession,
    decision_ids: Sequence[uuid.UUID],
    *,
    shown: Callable[[Mapped[uuid.UUID]], ColumnElement[bool]],
) -> Coverage:
    """The case files each decision covers, of those `shown` lets through (asked of each),
    and the decisions that cover others too: one query."""
    if not decision_ids:
        return Coverage({}, frozenset())
    stmt = (
        select(
            RecognitionCoverage.decision_id,
            RecognitionCoverage.case_file_id,
            shown(col(RecognitionCoverage.case_file_id)),
        )
        .where(col(RecognitionCoverage.decision_id).in_(list(decision_ids)))
        .order_by(col(RecognitionCoverage.decision_id), col(RecognitionCoverage.case_file_id))
    )
    covered: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    unseen: set[uuid.UUID] = set()
    for decision_id, case_id, readable in await session.exec(stmt):
        if readable:
            covered[decision_id].append(case_id)
        else:
            unseen.add(decision_id)
    return Coverage(covered, frozenset(unseen))


async def renumber(
    session: AsyncSession, numbering: Sequence[tuple[uuid.UUID, uuid.UUID, int]]
) -> None:
    """Give decisions (id, person, version) at once: first out of the way of the unique
    (person, version), then in place."""
    for index, (decision_id, _, _) in enumerate(numbering, start=1):
        await session.exec(
            update(RecognitionDecision)
            .where(col(RecognitionDecision.id) == decision_id)
            .values(version=-index)
        )
    for decision_id, person_id, version in numbering:
        await session.exec(
            update(RecognitionDecision)
            .where(col(RecognitionDecision.id) == decision_id)
            .values(person_id=person_id, version=version)
        )
    await session.flush()


async def covering(
    session: AsyncSession,
    decision_ids: Sequence[uuid.UUID],
    case_file_ids: Sequence[uuid.UUID],
) -> set[uuid.UUID]:
    """Those of the decisions that cover any of the case files."""
    stmt = select(RecognitionCoverage.decision_id).where(
        col(RecognitionCoverage.decision_id).in_(list(decision_ids)),
        col(RecognitionCoverage.case_file_id).in_(list(case_file_ids)),
    )
    return set(await session.exec(stmt))


async def add_proposal(session: AsyncSession, proposal: RecognitionProposal) -> None:
    session.add(proposal)
    await session.flush()


async def proposals_of(session: AsyncSession, person_id: uuid.UUID) -> list[RecognitionProposal]:
    stmt = (
        select(RecognitionProposal)
        .where(RecognitionProposal.person_id == person_id)
        .order_by(col(RecognitionProposal.proposed_at).desc(), col(RecognitionProposal.id))
    )
    return list(await session.exec(stmt))

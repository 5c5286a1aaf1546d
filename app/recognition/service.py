"""Recognition decisions: append-only and versioned; only the latest is current."""

import uuid
from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from app.access.caller import Caller
from app.access.principal import Tier
from app.audit.journal import change, journal_of
from app.core.errors import Conflict, HiddenRecord
from app.core.versioning import check_version
from app.persons import service as persons_service
from app.recognition import repository
from app.recognition.criteria import RecognitionStatus
from app.recognition.models import RecognitionDecision
from app.recognition.schemas import DecisionCreate, DecisionRead
from app.sources import service as sources_service


@dataclass(frozen=True)
class Recognition:
    person_id: uuid.UUID
    decisions: list[RecognitionDecision]  # newest first
    # the caller's clearance on the person: which fields of the decisions it receives
    clearance: Tier = Tier.public

    @property
    def version(self) -> int:
        return self.decisions[0].version if self.decisions else 0

    @property
    def status(self) -> RecognitionStatus:
        return (
            RecognitionStatus(self.decisions[0].status)
            if self.decisions
            else RecognitionStatus.not_assessed
        )


async def get(session: AsyncSession, caller: Caller, person_id: uuid.UUID) -> Recognition:
    person = await persons_service.get(session, caller, person_id)
    if not caller.may("recognition.read", person.resource):
        raise HiddenRecord("No such person.")
    decisions = await repository.decisions_of(session, person_id)
    return Recognition(person_id, decisions, person.clearance)


async def may_decide(session: AsyncSession, caller: Caller, person_id: uuid.UUID) -> None:
    """Before a stored decision is replayed: the caller may still decide about the person."""
    person = await persons_service.get(session, caller, person_id)
    caller.require("recognition.decide", person.resource)


async def decide(
    session: AsyncSession,
    caller: Caller,
    person_id: uuid.UUID,
    *,
    expected_version: int,
    data: DecisionCreate,
) -> Recognition:
    # Locking the person serialises decisions about one person.
    person = await persons_service.lock(session, caller, person_id)
    caller.require("recognition.decide", person.resource)
    current = Recognition(person_id, await repository.decisions_of(session, person_id))
    check_version(current.version, expected_version, what="recognition")
    if current.decisions and data.decided_on < current.decisions[0].decided_on:
        raise Conflict(
            "decided_on is before the current decision's date; decisions are kept in order.",
            current_decided_on=current.decisions[0].decided_on.isoformat(),
        )
    await sources_service.ensure_exist(session, data.source_ids)
    decision = RecognitionDecision(
        person_id=person_id,
        decided_by=caller.principal.staff_id,
        version=current.version + 1,
        **data.model_dump(exclude={"source_ids"}),
        source_ids=list(data.source_ids),
    )
    # Read before the update below, which refreshes the loaded person.
    previous, previous_version = person.person.recognition_status, person.person.version
    await repository.add(session, decision)
    await persons_service.set_recognition_status(session, person_id, data.status)
    journal = journal_of(session)
    journal.changed(
        "recognition.decide",
        "person",
        person_id,
        changes=[
            change(
                "recognition_decision",
                decision.id,
                before=None,
                after=journal.snapshot(
                    "recognition_decision",
                    DecisionRead.model_validate(decision).model_dump(mode="json"),
                ),
            ),
            change(
                "person",
                person_id,
                before={"recognition_status": previous, "version": previous_version},
                after={"recognition_status": data.status, "version": previous_version + 1},
            ),
        ],
    )
    return Recognition(person_id, [decision, *current.decisions], person.clearance)

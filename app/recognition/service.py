"""Recognition decisions: append-only and versioned; only the latest is current."""

import heapq
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from app.access.caller import Caller
from app.access.policy import Resource
from app.access.principal import Tier
from app.audit.journal import change, journal_of
from app.cases import service as cases_service
from app.core.errors import Conflict, HiddenRecord, HiddenReference, UnknownReference
from app.core.versioning import check_version
from app.persons import service as persons_service
from app.recognition import repository
from app.recognition.coverage import covered_by_default
from app.recognition.criteria import (
    CRITERIA,
    CRITERIA_VERSION,
    EXCLUSION_TEXTS,
    SOURCES,
    RecognitionStatus,
)
from app.recognition.models import RecognitionDecision, RecognitionProposal
from app.recognition.schemas import (
    CriteriaRead,
    CriteriaSourceRead,
    CriterionRead,
    DecisionCreate,
    ExclusionCodeRead,
    decision_read,
)
from app.sources import service as sources_service


@dataclass(frozen=True)
class Recognition:
    person_id: uuid.UUID
    decisions: list[RecognitionDecision]  # newest first
    # the caller's clearance on the person: which fields of the decisions it receives
    clearance: Tier = Tier.public
    # decision id -> the case files it covers, of those the caller may see
    coverage: Mapping[uuid.UUID, list[uuid.UUID]] = field(default_factory=dict)
    # the decisions that also cover a case file the caller may not see: what they cite
    # may be about that case file
    partly_unseen: frozenset[uuid.UUID] = frozenset()

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


def may_read(caller: Caller, person: Resource) -> bool:
    """Whether the caller may read the recognition of a person it sees."""
    return caller.may("recognition.read", person)


async def get(session: AsyncSession, caller: Caller, person_id: uuid.UUID) -> Recognition:
    person = await persons_service.get(session, caller, person_id)
    if not may_read(caller, person.resource):
        raise HiddenRecord("No such person.")
    decisions = await repository.decisions_of(session, person_id)
    return await _recognition(session, caller, person_id, decisions, person.clearance)


async def of_readable(
    session: AsyncSession, caller: Caller, persons: Sequence[persons_service.PersonView]
) -> dict[uuid.UUID, Recognition]:
    """The recognition of persons the caller was found to read (in the same transaction),
    each as `get` gives it, in two queries: a page of a partner's change feed. A person
    whose recognition the caller may not read is left out."""
    readable = [view for view in persons if may_read(caller, view.resource)]
    decisions = await repository.decisions_of_many(session, [view.person.id for view in readable])
    coverage = await _coverage(session, caller, [d for found in decisions.values() for d in found])
    return {
        view.person.id: _covering(
            view.person.id, decisions[view.person.id], view.clearance, coverage
        )
        for view in readable
    }


async def _recognition(
    session: AsyncSession,
    caller: Caller,
    person_id: uuid.UUID,
    decisions: list[RecognitionDecision],
    clearance: Tier,
) -> Recognition:
    coverage = await _coverage(session, caller, decisions)
    return _covering(person_id, decisions, clearance, coverage)


def _covering(
    person_id: uuid.UUID,
    decisions: list[RecognitionDecision],
    clearance: Tier,
    coverage: repository.Coverage,
) -> Recognition:
    return Recognition(
        person_id,
        decisions,
        clearance,
        {d.id: coverage.shown.get(d.id, []) for d in decisions},
        frozenset(d.id for d in decisions if d.id in coverage.partly_unseen),
    )


async def _coverage(
    session: AsyncSession, caller: Caller, decisions: Sequence[RecognitionDecision]
) -> repository.Coverage:
    """What each decision covers, of the case files the caller may see: one query."""
    return await repository.coverage_of(
        session,
        [decision.id for decision in decisions],
        shown=lambda case_file_id: cases_service.is_readable(caller, case_file_id),
    )


NOT_THE_PERSONS = "case_file_ids must name case files of this person; these do not: "


def _covered(data: DecisionCreate, cases: cases_service.PersonCases) -> list[Any]:
    """The case files the decision covers: those listed, each one of the person's that the
    caller may see, or by default (app/recognition/coverage.py)."""
    if data.case_file_ids is None:
        return covered_by_default(data.status, cases.visible)
    by_id = {case.id: case for case in cases.visible}
    refused = [case_id for case_id in data.case_file_ids if case_id not in by_id]
    if refused:
        listed = ", ".join(str(case_id) for case_id in refused)
        if any(case_id in cases.hidden for case_id in refused):
            raise HiddenReference(NOT_THE_PERSONS + listed)
        raise UnknownReference(NOT_THE_PERSONS + listed)
    return [by_id[case_id] for case_id in data.case_file_ids]


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
    covered = _covered(data, await cases_service.lock_cases_of_person(session, caller, person_id))
    covered_ids = [case.id for case in covered]
    decision = RecognitionDecision(
        person_id=person_id,
        decided_by=caller.principal.staff_id,
        version=current.version + 1,
        **data.model_dump(exclude={"source_ids", "case_file_ids"}),
        source_ids=list(data.source_ids),
    )
    # Read before the update below, which refreshes the loaded person.
    previous, previous_version = person.person.recognition_status, person.person.version
    await repository.add(session, decision, covered_ids)
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
                    decision_read(decision, covered_ids).model_dump(mode="json"),
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
    await cases_service.set_recognition_status(session, covered, data.status, person_id=person_id)
    decisions = [decision, *current.decisions]
    return await _recognition(session, caller, person_id, decisions, person.clearance)


# The criteria table as published: data that changes only with a release of the service.
CRITERIA_TABLE = CriteriaRead(
    version=CRITERIA_VERSION,
    sources=[CriteriaSourceRead.model_validate(source) for source in SOURCES.values()],
    criteria=[
        CriterionRead(
            code=code,
            source=criterion.source,
            text=criterion.text,
            wording=criterion.wording,
            note=criterion.note,
        )
        for code, criterion in CRITERIA.items()
    ],
    exclusion_codes=[
        ExclusionCodeRead(code=code, text=text) for code, text in EXCLUSION_TEXTS.items()
    ],
)


# Merges (app/merges) ----------------------------------------------------------------------


@dataclass(frozen=True)
class MergedDecisions:
    # decision id -> [person id, version] before the merge, for the unmerge
    before: dict[str, list[Any]]
    moved: list[uuid.UUID]
    status: RecognitionStatus
    # each decision whose person or version changed, for the merge's audit event
    changes: list[dict[str, Any] | None]


async def _renumber(
    session: AsyncSession,
    decisions: Sequence[RecognitionDecision],
    numbering: Sequence[tuple[uuid.UUID, uuid.UUID, int]],
) -> list[dict[str, Any] | None]:
    """Give the decisions their new person and version; the field-level changes."""
    by_id = {d.id: d for d in decisions}
    changed = [
        (decision_id, person_id, version)
        for decision_id, person_id, version in numbering
        if (by_id[decision_id].person_id, by_id[decision_id].version) != (person_id, version)
    ]
    changes = [
        change(
            "recognition_decision",
            decision_id,
            before={
                "person_id": str(by_id[decision_id].person_id),
                "version": by_id[decision_id].version,
            },
            after={"person_id": str(person_id), "version": version},
        )
        for decision_id, person_id, version in changed
    ]
    await repository.renumber(session, changed)
    return changes


def _status_of(decisions: Sequence[RecognitionDecision]) -> RecognitionStatus:
    return RecognitionStatus(decisions[-1].status) if decisions else RecognitionStatus.not_assessed


async def merge_decisions(
    session: AsyncSession, kept_id: uuid.UUID, merged_id: uuid.UUID
) -> MergedDecisions:
    """The merged person's decisions join the kept one's, in the order they were decided
    (each person's own order kept): numbered again 1, 2, …; the latest is current."""
    kept = list(reversed(await repository.decisions_of(session, kept_id)))
    merged = list(reversed(await repository.decisions_of(session, merged_id)))
    order = list(heapq.merge(kept, merged, key=lambda d: (d.decided_on, d.recorded_at)))
    before = {str(d.id): [str(d.person_id), d.version] for d in order}
    changes = await _renumber(
        session, order, [(d.id, kept_id, version) for version, d in enumerate(order, start=1)]
    )
    return MergedDecisions(before, [d.id for d in merged], _status_of(order), changes)


@dataclass(frozen=True)
class SeparatedDecisions:
    # decisions made about the kept person since the merge: they stay
    stayed: list[uuid.UUID]
    kept_status: RecognitionStatus
    changes: list[dict[str, Any] | None]


async def separate_decisions(
    session: AsyncSession,
    kept_id: uuid.UUID,
    merged_id: uuid.UUID,
    before: Mapping[str, list[Any]],
) -> SeparatedDecisions:
    """Undo merge_decisions: the merged person's decisions go back with their versions;
    the kept person's are numbered again in their order, those made since included."""
    current = list(reversed(await repository.decisions_of(session, kept_id)))
    going_back = [d for d in current if before.get(str(d.id), [None])[0] == str(merged_id)]
    back_ids = {d.id for d in going_back}
    staying = [d for d in current if d.id not in back_ids]
    numbering = [(d.id, merged_id, int(before[str(d.id)][1])) for d in going_back]
    numbering += [(d.id, kept_id, version) for version, d in enumerate(staying, start=1)]
    changes = await _renumber(session, current, numbering)
    return SeparatedDecisions(
        [d.id for d in staying if str(d.id) not in before], _status_of(staying), changes
    )


async def made_since_covering(
    session: AsyncSession,
    person_id: uuid.UUID,
    before: Mapping[str, list[Any]],
    case_file_ids: Sequence[uuid.UUID],
) -> list[uuid.UUID]:
    """The person's decisions made since a merge (not in `before`) that cover any of these
    case files."""
    since = [
        d.id for d in await repository.decisions_of(session, person_id) if str(d.id) not in before
    ]
    if not since or not case_file_ids:
        return []
    covered = await repository.covering(session, since, case_file_ids)
    return [decision_id for decision_id in since if decision_id in covered]


# Partners' proposals -----------------------------------------------------------------------


@dataclass(frozen=True)
class Proposal:
    """What a partner proposes about a person: the status, the case files (of the person,
    ones the partner may read), the criteria and the rationale."""

    status: RecognitionStatus
    case_file_ids: list[uuid.UUID]
    criteria: list[str]
    rationale: str | None


async def propose(
    session: AsyncSession, caller: Caller, person_id: uuid.UUID, proposal: Proposal
) -> RecognitionProposal:
    """Keep a partner's proposal for our coordinators: it decides nothing, and moves no
    case file's recognition."""
    person = await persons_service.get(session, caller, person_id)
    if not may_read(caller, person.resource):
        raise HiddenRecord("No such person.")
    cases = await cases_service.lock_cases_of_person(session, caller, person_id)
    visible = {case.id for case in cases.visible}
    refused = [case_id for case_id in proposal.case_file_ids if case_id not in visible]
    if refused:
        raise UnknownReference(NOT_THE_PERSONS + ", ".join(str(i) for i in refused))
    partner_id = caller.principal.partner_id
    if partner_id is None:
        raise HiddenRecord("No such person.")
    kept = RecognitionProposal(
        person_id=person_id,
        partner_id=partner_id,
        status=proposal.status,
        case_file_ids=list(dict.fromkeys(proposal.case_file_ids)),
        criteria=list(proposal.criteria),
        rationale=proposal.rationale,
    )
    await repository.add_proposal(session, kept)
    journal = journal_of(session)
    journal.changed(
        "recognition.propose",
        "person",
        person_id,
        changes=[
            change(
                "recognition_proposal",
                kept.id,
                before=None,
                after=journal.snapshot("recognition_proposal", proposal_snapshot(kept)),
            )
        ],
    )
    return kept


def proposal_snapshot(proposal: RecognitionProposal) -> dict[str, Any]:
    return {
        "person_id": str(proposal.person_id),
        "partner_id": str(proposal.partner_id),
        "status": str(proposal.status),
        "case_file_ids": [str(i) for i in proposal.case_file_ids],
        "criteria": list(proposal.criteria),
        "rationale": proposal.rationale,
    }


async def proposals(
    session: AsyncSession, caller: Caller, person_id: uuid.UUID
) -> list[RecognitionProposal]:
    """The partners' proposals about a person, newest first: for those who decide."""
    person = await persons_service.get(session, caller, person_id)
    caller.require("recognition.decide", person.resource)
    return await repository.proposals_of(session, person_id)

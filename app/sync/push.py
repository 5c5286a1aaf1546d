"""Partners' batches (POST /sync/batches): operations on persons, case files, status
events, claims and recognition proposals, naming records by the partner's own ids, applied
in order in one transaction, or not at all (docs/sync.md, "Pushing changes").

Each operation goes through the same use case a caseworker's request would (the same
checks of paths, tiers, versions and duplicates), as the partner: the records its
agreement shares, up to its tier. What the partner cannot do is refused for that operation;
every other operation is still tried (each in a savepoint), so that the answer lists every
problem at once; then, if there was one, the whole batch is undone.
"""

import uuid
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from sqlmodel.ext.asyncio.session import AsyncSession

from app.access.caller import Caller
from app.access.policy import area
from app.access.principal import SharingAgreement, Tier
from app.access.tiers import (
    hidden_fields,
    refuse_fields_above,
    refuse_fields_partners_never_set,
    refuse_names_partners_never_set,
)
from app.access.visibility import SHARED_BY_A_CASE_FILE_TO_COME
from app.audit.journal import journal_of
from app.cases import service as cases_service
from app.cases import transitions
from app.cases.schemas import CaseCreate, StatusEventFields, case_read
from app.cases.statuses import Confidence
from app.core.crypto import DataKeyRing
from app.core.errors import (
    BatchConflict,
    BatchRejected,
    Conflict,
    DatabaseUnavailable,
    DomainError,
    Forbidden,
    HiddenRecord,
    OutsideAgreement,
    PreconditionFailed,
    UnknownReference,
)
from app.identity.principals import partner_principal
from app.persons import service as persons_service
from app.recognition import service as recognition_service
from app.sync import repository
from app.sync.schemas import (
    BatchInput,
    BatchItemProblem,
    BatchItemResult,
    BatchOperation,
    BatchRecordType,
    BatchResult,
    CaseCreateOperation,
    CaseUpdateOperation,
    EventAppendOperation,
    PersonCreateOperation,
    PersonUpdateOperation,
    RecognitionProposeOperation,
    RecordRef,
)

_Event = TypeVar("_Event", bound=StatusEventFields)

# Held by the partner only while its batch applies: the policies let a partner change the
# records its agreement shares with this scope alone (policies/partners.cedar), and no
# token carries it (app/identity/schemas.py lists the scopes a partner may be given).
BATCH_SCOPE = "sync:batch"


@dataclass
class _Batch:
    """One batch as it applies: who writes, what it made, what went wrong."""

    session: AsyncSession
    writer: Caller
    agreement: SharingAgreement
    keys: DataKeyRing
    results: list[BatchItemResult] = field(default_factory=list)
    problems: list[BatchItemProblem] = field(default_factory=list)
    # What the problems show of our records (current values, duplicate candidates), at
    # which clearance; and whether any was a refusal of access or a probe for a record
    # that does not exist: the audit trail records what a refused batch showed or probed.
    shown: list[tuple[uuid.UUID, Tier]] = field(default_factory=list)
    denied: bool = False
    absent: bool = False
    # Records the batch made, with the operation that made them: each must be one the
    # agreement shares once the batch has applied.
    made_persons: dict[uuid.UUID, int] = field(default_factory=dict)
    made_cases: dict[uuid.UUID, int] = field(default_factory=dict)

    @property
    def partner_id(self) -> uuid.UUID:
        return self.writer.principal.id

    @property
    def tier(self) -> Tier:
        return self.agreement.max_tier


async def apply(
    session: AsyncSession, caller: Caller, keys: DataKeyRing, batch: BatchInput
) -> BatchResult:
    """Apply every operation of the batch, or none: BatchConflict when the only problems
    are records changed since the versions the batch names, else BatchRejected."""
    # One batch of a partner at a time: its external ids are checked, then written. A
    # second one is refused at once rather than kept waiting (holding a connection).
    if not await repository.hold_partner_batches(session, caller.principal.id):
        raise Conflict("Another batch of this partner is being applied; send this one after.")
    # The agreement as it is now that the batch holds the partner's turn (the token's may
    # be older): narrowed or withdrawn meanwhile, it is the one that counts.
    current = await partner_principal(session, caller.principal.id)
    agreement = current.agreement if current is not None else None
    if current is None or agreement is None or not agreement.read_write:
        raise Forbidden("The partner's agreement does not let it write.")
    scopes = caller.principal.scopes & current.scopes
    writer = Caller(replace(current, scopes=scopes | {BATCH_SCOPE}), caller.policy)
    if not writer.may("sync.write", area("sync")):
        raise Forbidden("The partner may not write.")
    work = _Batch(session, writer, agreement, keys)
    journal_of(session).changed(
        "sync.batch",
        "partner",
        work.partner_id,
        changes=[],
        detail={"operations": len(batch.operations)},
    )
    for index, operation in enumerate(batch.operations):
        try:
            async with session.begin_nested():
                work.results.append(await _apply_one(work, index, operation))
        except DatabaseUnavailable:
            # Not the batch's fault: the whole request is answered 503, to retry.
            raise
        except PreconditionFailed as stale:
            work.problems.append(await _conflict(work, index, operation, stale))
        except DomainError as refusal:
            work.problems.append(_problem(index, operation, refusal))
            work.denied = work.denied or refusal.is_denial
            work.absent = work.absent or refusal.records_absence
            for candidate in refusal.extensions.get("candidates", []):
                work.shown.append((uuid.UUID(candidate["person"]["id"]), work.tier))
    await _refuse_unshared(work)
    if work.problems:
        raise _rejection(work, len(batch.operations))
    return BatchResult(items=work.results)


def _rejection(work: _Batch, operations: int) -> DomainError:
    stale_only = all("current_version" in item.problem for item in work.problems)
    rejection = (BatchConflict if stale_only else BatchRejected)(
        f"{len(work.problems)} of {operations} operations cannot be applied; nothing was applied.",
        items=[item.model_dump(mode="json") for item in work.problems],
    )
    rejection.is_denial = work.denied
    rejection.records_absence = work.absent
    if work.shown and not work.denied:
        # What the problems showed is recorded as read; a refusal of access weighs more
        # (a probe must not hide behind a stale version), and is recorded instead.
        journal_of(work.session).instead_viewed("sync.batch", "sync", work.shown)
        rejection.keeps_reading = True
    return rejection


async def _apply_one(work: _Batch, index: int, operation: BatchOperation) -> BatchItemResult:
    match operation:
        case PersonCreateOperation():
            return await _create_person(work, index, operation)
        case PersonUpdateOperation():
            return await _update_person(work, index, operation)
        case CaseCreateOperation():
            return await _create_case(work, index, operation)
        case CaseUpdateOperation():
            return await _update_case(work, index, operation)
        case EventAppendOperation():
            return await _append_event(work, index, operation)
        case RecognitionProposeOperation():
            return await _propose_recognition(work, index, operation)


async def _resolve(work: _Batch, ref: RecordRef, record_type: str) -> uuid.UUID:
    """Our id of the record a reference names (the use case then checks the partner may
    see it, and answers as if it did not exist when it may not)."""
    if ref.id is not None:
        return ref.id
    assert ref.external_id is not None
    found = await repository.record_of_external_id(
        work.session, work.partner_id, record_type, ref.external_id
    )
    if found is None:
        raise UnknownReference(f"No {_NOUN[record_type]} has the external id {ref.external_id!r}.")
    return found


async def _name(
    work: _Batch, record_type: str, external_id: str | None, record_id: uuid.UUID
) -> None:
    if external_id is None:
        return
    taken = await repository.record_of_external_id(
        work.session, work.partner_id, record_type, external_id
    )
    if taken is not None:
        raise Conflict(
            f"The external id {external_id!r} already names a {_NOUN[record_type]}; "
            "name it to change it."
        )
    await repository.add_external_id(
        work.session, work.partner_id, record_type, external_id, record_id
    )


# An event's own fields checked against the tier; `details` holds what the status needs
# (a sentence's type and term, a release's reason), which the case file shows publicly.
EVENT_FIELDS_NEEDED = frozenset({"to_status", "effective_date", "confidence", "details"})


def _refuse_event_fields(work: _Batch, event: StatusEventFields) -> None:
    # Sources given or not, the list is always in the fields set: only a non-empty one is
    # a citation.
    refuse_fields_partners_never_set("status_event", {"source_ids"} if event.source_ids else set())
    refuse_fields_above(
        "status_event", event.model_fields_set - EVENT_FIELDS_NEEDED - {"source_ids"}, work.tier
    )


def _as_received(work: _Batch, event: _Event) -> _Event:
    """A partner's event enters as reported (a claim as unconfirmed) unless the agreement
    trusts its confirmations."""
    if event.confidence is Confidence.confirmed and not work.agreement.trusted_as_confirmed:
        return event.model_copy(update={"confidence": Confidence.reported})
    return event


async def _create_person(
    work: _Batch, index: int, operation: PersonCreateOperation
) -> BatchItemResult:
    data = operation.person
    refuse_fields_partners_never_set("person", data.model_fields_set)
    refuse_fields_above("person", data.model_fields_set, work.tier)
    refuse_names_partners_never_set(data.names)
    view = await persons_service.create(
        work.session, work.writer, keys=work.keys, data=data, links=SHARED_BY_A_CASE_FILE_TO_COME
    )
    await _name(work, "person", operation.external_id, view.person.id)
    work.made_persons[view.person.id] = index
    return _result(
        index,
        operation.op,
        BatchRecordType.person,
        view.person.id,
        operation.external_id,
        view.person.version,
    )


async def _update_person(
    work: _Batch, index: int, operation: PersonUpdateOperation
) -> BatchItemResult:
    person_id = await _resolve(work, operation.person, "person")
    changes = operation.changes
    refuse_fields_partners_never_set("person", changes.model_fields_set)
    if changes.names is not None:
        refuse_names_partners_never_set(changes.names)
        # A new list replaces every name, the ones the partner cannot see among them.
        if await persons_service.has_private_names(work.session, person_id):
            raise Forbidden(
                "This person has names the partner cannot see: their names are ours to change.",
                fields=["names"],
            )
    view = await persons_service.update(
        work.session,
        work.writer,
        person_id,
        keys=work.keys,
        expected_version=operation.version,
        data=operation.changes,
    )
    return _result(
        index,
        operation.op,
        BatchRecordType.person,
        person_id,
        operation.person.external_id,
        view.person.version,
    )


async def _create_case(work: _Batch, index: int, operation: CaseCreateOperation) -> BatchItemResult:
    person_id = await _resolve(work, operation.person, "person")
    fields = operation.case.model_fields_set - {"status_history"}
    # A new case file names its jurisdiction; one the agreement does not share (another
    # jurisdiction, high confidentiality) is refused once made (_refuse_unshared).
    refuse_fields_partners_never_set("case", fields - {"jurisdiction", "confidentiality"})
    refuse_fields_above("case", fields, work.tier)
    for event in operation.case.status_history:
        _refuse_event_fields(work, event)
    data = CaseCreate.model_validate(
        {
            **operation.case.model_dump(exclude={"status_history"}, exclude_unset=True),
            "person_id": person_id,
            "status_history": [
                _as_received(work, event) for event in operation.case.status_history
            ],
        }
    )
    try:
        view = await cases_service.create(
            work.session, work.writer, data, person_made_here=person_id in work.made_persons
        )
    except HiddenRecord as unshared:
        # Made, but not one the partner may read: outside its agreement.
        raise OutsideAgreement(OUTSIDE.format("case file")) from unshared
    await _name(work, "case", operation.external_id, view.case.id)
    work.made_cases[view.case.id] = index
    return _result(
        index,
        operation.op,
        BatchRecordType.case,
        view.case.id,
        operation.external_id,
        view.case.version,
    )


async def _update_case(work: _Batch, index: int, operation: CaseUpdateOperation) -> BatchItemResult:
    case_id = await _resolve(work, operation.case, "case")
    refuse_fields_partners_never_set("case", operation.changes.model_fields_set)
    view = await cases_service.update(
        work.session,
        work.writer,
        case_id,
        expected_version=operation.version,
        data=operation.changes,
    )
    return _result(
        index,
        operation.op,
        BatchRecordType.case,
        case_id,
        operation.case.external_id,
        view.case.version,
    )


async def _append_event(
    work: _Batch, index: int, operation: EventAppendOperation
) -> BatchItemResult:
    case_id = await _resolve(work, operation.case, "case")
    _refuse_event_fields(work, operation.event)
    event = _as_received(work, operation.event)
    change = await transitions.append(
        work.session, work.writer, case_id, expected_version=operation.version, data=event
    )
    await _name(work, "status_event", operation.external_id, change.entry.event.id)
    result = _result(
        index,
        operation.op,
        BatchRecordType.status_event,
        change.entry.event.id,
        operation.external_id,
        change.case.version,
    )
    return result.model_copy(update={"confidence": change.entry.event.confidence})


async def _propose_recognition(
    work: _Batch, index: int, operation: RecognitionProposeOperation
) -> BatchItemResult:
    person_id = await _resolve(work, operation.person, "person")
    case_ids = [await _resolve(work, ref, "case") for ref in operation.case_files]
    proposal = await recognition_service.propose(
        work.session,
        work.writer,
        person_id,
        recognition_service.Proposal(
            status=operation.status,
            case_file_ids=case_ids,
            criteria=list(operation.criteria),
            rationale=operation.rationale,
        ),
    )
    return _result(
        index, operation.op, BatchRecordType.recognition_proposal, proposal.id, None, None
    )


async def _refuse_unshared(work: _Batch) -> None:
    """Every person and case file the batch made is one the agreement shares: a partner
    never writes what it could not read back."""
    for case_id, index in work.made_cases.items():
        try:
            await cases_service.visible(work.session, work.writer, case_id)
        except HiddenRecord:
            work.problems.append(
                _problem(index, "case.create", OutsideAgreement(OUTSIDE.format("case file")))
            )
    for person_id, index in work.made_persons.items():
        try:
            await persons_service.get(work.session, work.writer, person_id)
        except HiddenRecord:
            work.problems.append(
                _problem(
                    index,
                    "person.create",
                    OutsideAgreement(
                        OUTSIDE.format("person")
                        + " Give them a case file it shares in the same batch."
                    ),
                )
            )
    work.problems.sort(key=lambda item: item.index)


async def _conflict(
    work: _Batch, index: int, operation: BatchOperation, stale: PreconditionFailed
) -> BatchItemProblem:
    """A stale version: the record's current version and values, at the agreement's tier
    (read again: the savepoint's rollback let the row go)."""
    problem = stale.to_problem()
    try:
        await _current(work, operation, problem)
    except DomainError:
        # Gone from the partner's sight meanwhile: the version alone is the answer.
        problem.pop("current_version", None)
        problem.pop("current", None)
    return BatchItemProblem(index=index, op=operation.op, problem=problem)


async def _current(work: _Batch, operation: BatchOperation, problem: dict[str, Any]) -> None:
    match operation:
        case PersonUpdateOperation():
            view = await persons_service.get(
                work.session, work.writer, await _resolve(work, operation.person, "person")
            )
            work.shown.append((view.person.id, view.clearance))
            problem["current_version"] = view.person.version
            problem["current"] = view.read().model_dump(
                mode="json", exclude=hidden_fields("person", view.clearance)
            )
        case CaseUpdateOperation() | EventAppendOperation():
            found = await cases_service.visible(
                work.session, work.writer, await _resolve(work, operation.case, "case")
            )
            work.shown.append((found.case.id, found.clearance))
            problem["current_version"] = found.case.version
            problem["current"] = case_read(found.case).model_dump(
                mode="json", exclude=hidden_fields("case", found.clearance)
            )


def _problem(index: int, operation: BatchOperation | str, refusal: DomainError) -> BatchItemProblem:
    op = operation if isinstance(operation, str) else operation.op
    return BatchItemProblem(index=index, op=op, problem=refusal.to_problem())


def _result(
    index: int,
    op: str,
    record_type: BatchRecordType,
    record_id: uuid.UUID,
    external_id: str | None,
    version: int | None,
) -> BatchItemResult:
    return BatchItemResult(
        index=index,
        op=op,
        record_type=record_type,
        id=record_id,
        external_id=external_id,
        version=version,
    )


OUTSIDE = "The agreement does not share this {}: the partner may not make it."
_NOUN = {"person": "person", "case": "case file", "status_event": "status event"}

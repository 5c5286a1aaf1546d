"""Merging a duplicate person into the one kept, and undoing it (DESIGN §2, "Persons are one
record each").

A merge moves the merged person's names, case files (with their paths, custody timelines
and sources) and recognition decisions to the kept person, joins their lists, and fills or
overwrites the kept person's single values as the request decides. The merged person's own
row is kept as it was, pointing at the kept one (`merged_into`): a redirect that no list or
report counts. The merge record keeps what moved and what each changed value was, so that
an unmerge gives the merged person back exactly and leaves with the kept one what was
added to them since.
"""

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from app.access.caller import Caller
from app.access.principal import Tier
from app.audit.journal import change, journal_of
from app.cases import service as cases_service
from app.core.clock import utcnow
from app.core.crypto import DataKeyRing
from app.core.errors import (
    Forbidden,
    HiddenRecord,
    HiddenReference,
    MergeRefused,
    NotFound,
    SelfMerge,
    UnknownReference,
)
from app.core.ids import new_id
from app.core.versioning import bump, check_version
from app.merges import repository
from app.merges.models import MergeEventKind, PersonMerge
from app.merges.schemas import MergeableField, MergeCreate, Side
from app.persons import service as persons_service
from app.persons.service import MergedAs, PersonView
from app.recognition import service as recognition_service

UNKNOWN_MERGED = "merged_person_id names no person."
UNKNOWN_GENDER = "unknown"
# Single values and the columns that hold them (a birth date is a day and its precision).
COLUMNS: dict[MergeableField, tuple[str, ...]] = {
    field: (field.value,) for field in MergeableField
} | {MergeableField.birth_date: ("birth_date", "birth_date_precision")}
SEALED = {MergeableField.relatives, MergeableField.contacts, MergeableField.address}
# Lists: the kept person's, then what only the merged one had.
JOINED = ("citizenships", "affiliations", "special_risk")


def _encoded(value: Any) -> Any:
    """A column value as JSON, to be put back exactly at an unmerge."""
    if isinstance(value, date):
        return {"date": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {"uuid": str(value)}
    return value


def _decoded(value: Any) -> Any:
    if isinstance(value, dict) and "date" in value:
        return date.fromisoformat(value["date"])
    if isinstance(value, dict) and "uuid" in value:
        return uuid.UUID(value["uuid"])
    return value


def _compared(view: PersonView, field: MergeableField) -> Any:
    """A single value as it is compared: sealed ones opened, an unknown gender as none."""
    if field in SEALED:
        value = view.confidential.get(field.value)
        return value or None
    if field is MergeableField.gender:
        return None if view.person.gender == UNKNOWN_GENDER else view.person.gender
    return tuple(getattr(view.person, column) for column in COLUMNS[field])


def _is_empty(field: MergeableField, value: Any) -> bool:
    if field is MergeableField.birth_date:
        return bool(value[0] is None)
    if field in SEALED or field is MergeableField.gender:
        return value is None
    return bool(value == (None,))


def conflicts(kept: PersonView, merged: PersonView) -> list[MergeableField]:
    """The single values both persons hold, differently."""
    found = []
    for field in MergeableField:
        ours, theirs = _compared(kept, field), _compared(merged, field)
        if not _is_empty(field, ours) and not _is_empty(field, theirs) and ours != theirs:
            found.append(field)
    return found


@dataclass(frozen=True)
class Resealed:
    """A sealed value the kept person takes: its JSON, to be sealed to their row."""

    value: Any


def _taken_values(
    kept: PersonView,
    merged: PersonView,
    resolutions: dict[MergeableField, Side],
) -> dict[str, Any]:
    """The kept person's columns that take the merged person's value: each value only the
    merged person holds, each conflict decided for them, and the joined lists."""
    values: dict[str, Any] = {}
    for field in MergeableField:
        ours, theirs = _compared(kept, field), _compared(merged, field)
        if _is_empty(field, theirs) or ours == theirs:
            continue
        if not _is_empty(field, ours) and resolutions.get(field) is not Side.merged:
            continue
        if field in SEALED:
            # Sealed values are bound to their row: sealed again for the kept person's.
            values[field.value] = Resealed(theirs)
        else:
            for column in COLUMNS[field]:
                values[column] = getattr(merged.person, column)
    if kept.person.recorded_by != merged.person.recorded_by:
        # Who recorded a person holds their confidential values; after the merge those are
        # the other person's too: only one who recorded both keeps that standing.
        values["recorded_by"] = None
    for column in JOINED:
        ours_list: list[Any] = list(getattr(kept.person, column))
        joined = ours_list + [v for v in getattr(merged.person, column) if v not in ours_list]
        if joined != ours_list:
            values[column] = joined
    return values


def _snapshot(view: PersonView, journal: Any, *, merged_into: uuid.UUID | None) -> dict[str, Any]:
    values = persons_service.audit_snapshot(journal, view)
    values["merged_into"] = str(merged_into) if merged_into else None
    return values


async def _other_person(
    session: AsyncSession, caller: Caller, person_id: uuid.UUID, keys: DataKeyRing
) -> PersonView:
    """The person to merge in, named in the body: unknown or hidden alike answer 422."""
    try:
        return await persons_service.get(
            session, caller, person_id, keys=keys, for_update=True, merged=MergedAs.read
        )
    except HiddenRecord as exc:
        journal_of(session).subject = ("person", person_id)
        raise HiddenReference(UNKNOWN_MERGED) from exc
    except NotFound as exc:
        journal_of(session).subject = ("person", person_id)
        raise UnknownReference(UNKNOWN_MERGED) from exc


def _require_full_clearance(caller: Caller, *views: PersonView) -> None:
    """A merge moves every value of both persons, sealed ones among them: it needs the
    caller's full clearance on both (a high-confidentiality case file's too)."""
    for view in views:
        caller.require("person.merge", view.resource)
        if view.clearance < Tier.confidential:
            raise Forbidden("Merging needs confidential clearance on both persons.")


def _refuse_if_merged(view: PersonView, *, which: str) -> None:
    into = view.person.merged_into
    if into is not None:
        raise MergeRefused(
            f"{which} was merged into {into}: merge with that person instead.",
            merged_into=str(into),
        )


async def _locked_cases(
    session: AsyncSession, caller: Caller, person_id: uuid.UUID
) -> cases_service.PersonCases:
    cases = await cases_service.lock_cases_of_person(session, caller, person_id)
    if cases.hidden:
        raise Forbidden("Merging needs clearance on every case file of both persons.")
    return cases


async def merge(
    session: AsyncSession,
    caller: Caller,
    person_id: uuid.UUID,
    *,
    keys: DataKeyRing,
    expected_version: int,
    data: MergeCreate,
) -> PersonMerge:
    if data.merged_person_id == person_id:
        raise SelfMerge("merged_person_id names this person: name the duplicate to merge in.")
    # Merges, renames and intake one at a time: none sees the other half done.
    await persons_service.hold_intake_lock(session)
    kept = await persons_service.get(
        session, caller, person_id, keys=keys, for_update=True, merged=MergedAs.read
    )
    caller.require("person.merge", kept.resource)
    merged = await _other_person(session, caller, data.merged_person_id, keys)
    _require_full_clearance(caller, kept, merged)
    _refuse_if_merged(kept, which="This person")
    _refuse_if_merged(merged, which="The person to merge")
    if await repository.holds_merges(session, merged.person.id):
        # A redirect leads to one record that holds: never to another redirect.
        raise MergeRefused(
            "Other persons are merged into the person to merge: merge this person the other "
            "way round (keep them), or undo those merges first."
        )
    check_version(kept.person.version, expected_version, what="person")
    check_version(merged.person.version, data.merged_person_version, what="merged person")
    statement = await persons_service.stated_distinct(session, person_id, merged.person.id)
    if statement is not None and not data.overrule_distinction:
        raise MergeRefused(
            "The persons were stated to be different people. If they are one, send "
            "overrule_distinction: true to withdraw that statement with the merge."
        )
    kept_cases = await _locked_cases(session, caller, person_id)
    merged_cases = await _locked_cases(session, caller, merged.person.id)
    held = [case.id for case in (*kept_cases.visible, *merged_cases.visible) if case.in_custody]
    if (
        any(case.in_custody for case in kept_cases.visible)
        and any(case.in_custody for case in merged_cases.visible)
        and not data.keep_overlapping_custody
    ):
        raise MergeRefused(
            "Both persons are held now, on case files of their own: if these are separate "
            "prosecutions of one person, send keep_overlapping_custody: true; if they are "
            "the same detention, settle the case files first.",
            case_file_ids=[str(case_id) for case_id in held],
        )
    conflicting = conflicts(kept, merged)
    undecided = [field for field in conflicting if field not in data.resolutions]
    if undecided:
        raise MergeRefused(
            "Both persons hold different values of these fields: say in resolutions whose "
            "value the kept person takes (kept or merged).",
            conflicts=[field.value for field in undecided],
        )

    journal = journal_of(session)
    kept_before = _snapshot(kept, journal, merged_into=None)
    merged_before = _snapshot(merged, journal, merged_into=None)
    taken = _taken_values(kept, merged, data.resolutions)
    fields = {
        column: {"before": _encoded(getattr(kept.person, column)), "after": _encoded(value)}
        for column, value in taken.items()
        if not isinstance(value, Resealed)
    }
    sealed = {
        column: {"before": kept.confidential.get(column), "after": value.value}
        for column, value in taken.items()
        if isinstance(value, Resealed)
    }
    for column, value in taken.items():
        if isinstance(value, Resealed):
            value = keys.seal_json("person", column, person_id, value=value.value)
        setattr(kept.person, column, value)
    merge_id = new_id()
    decisions = await recognition_service.merge_decisions(session, person_id, merged.person.id)
    kept.person.recognition_status = decisions.status
    now = utcnow()
    bump(kept.person, at=now)
    merged.person.merged_into = person_id
    bump(merged.person, at=now)
    await persons_service.save(session, kept.person)
    await persons_service.save(session, merged.person)
    names = await persons_service.move_names(session, merged, kept)
    case_changes = await cases_service.move_to_person(session, merged_cases.visible, person_id)
    if statement is not None:
        await persons_service.withdraw_distinction(session, person_id, merged.person.id)
    record = PersonMerge(
        id=merge_id,
        person_id=person_id,
        merged_person_id=merged.person.id,
        reason=data.reason,
        merged_by=caller.principal.staff_id,
        merged_at=now,
        moved={
            "names": names,
            "case_file_ids": [str(case.id) for case in merged_cases.visible],
            "kept_case_file_ids": [str(case.id) for case in kept_cases.visible],
            "decisions": decisions.before,
            "moved_decision_ids": [str(d) for d in decisions.moved],
            "fields": fields,
            "sealed_fields": sorted(sealed),
            "distinction": statement,
        },
        sealed=keys.seal_json("person_merge", "sealed", merge_id, value=sealed or None),
        resolutions={
            field.value: side.value
            for field, side in data.resolutions.items()
            if field in conflicting
        },
    )
    await repository.save(session, record)
    await repository.add_event(session, record, MergeEventKind.merged)
    await _record_in_trail(
        session,
        caller,
        "person.merge",
        record,
        keys=keys,
        before=(kept_before, merged_before),
        moves=[*case_changes, *decisions.changes],
        related=[case.id for case in merged_cases.visible],
    )
    return record


async def _record_in_trail(
    session: AsyncSession,
    caller: Caller,
    action: str,
    record: PersonMerge,
    *,
    keys: DataKeyRing,
    before: tuple[dict[str, Any], dict[str, Any]],
    moves: list[dict[str, Any] | None],
    related: list[uuid.UUID],
) -> None:
    """A merge's or unmerge's audit event: both persons field by field (the merged one's
    `merged_into` among the fields), then each record it moved."""
    journal = journal_of(session)
    kept = await persons_service.get(session, caller, record.person_id, keys=keys)
    merged = await persons_service.get(
        session, caller, record.merged_person_id, keys=keys, merged=MergedAs.read
    )
    journal.changed(
        action,
        "person",
        record.person_id,
        changes=[
            change(
                "person",
                record.person_id,
                before=before[0],
                after=_snapshot(kept, journal, merged_into=None),
            ),
            change(
                "person",
                record.merged_person_id,
                before=before[1],
                after=_snapshot(merged, journal, merged_into=merged.person.merged_into),
            ),
            *moves,
        ],
        related=[record.merged_person_id, *related],
        detail={"merge_id": str(record.id)},
    )


async def kept_version(session: AsyncSession, caller: Caller, person_id: uuid.UUID) -> int:
    """The kept person's version after a merge or unmerge (its ETag)."""
    view = await persons_service.get(session, caller, person_id, merged=MergedAs.read)
    return view.person.version


async def merges_of(
    session: AsyncSession, caller: Caller, person_id: uuid.UUID
) -> list[PersonMerge]:
    """The merges into a person (coordinators), newest first."""
    view = await persons_service.get(session, caller, person_id, merged=MergedAs.read)
    caller.require("person.merge", view.resource)
    return await repository.of_person(session, person_id)


async def get(
    session: AsyncSession, caller: Caller, person_id: uuid.UUID, merge_id: uuid.UUID
) -> PersonMerge:
    view = await persons_service.get(session, caller, person_id, merged=MergedAs.read)
    caller.require("person.merge", view.resource)
    record = await repository.get(session, merge_id, person_id=person_id)
    if record is None:
        raise NotFound("No such merge into this person.")
    return record


def _restore_fields(view: PersonView, fields: dict[str, Any]) -> list[str]:
    """Put back the kept person's values a merge changed, unless changed again since:
    those stay as they are now (returned). A value held in two columns (a birth date and
    its precision) goes back whole or stays whole."""
    stayed = []
    person = view.person
    groups: dict[str, list[str]] = {}
    for column in fields:
        groups.setdefault(column.removesuffix("_precision"), []).append(column)
    for value, columns in groups.items():
        if all(_encoded(getattr(person, c)) == fields[c]["after"] for c in columns):
            for column in columns:
                setattr(person, column, _decoded(fields[column]["before"]))
        else:
            stayed.append(value)
    return stayed


def _restore_sealed(view: PersonView, sealed: dict[str, Any], keys: DataKeyRing) -> list[str]:
    """As _restore_fields, for sealed values: compared opened, sealed again when put back."""
    stayed = []
    for column, values in sealed.items():
        if (view.confidential.get(column) or None) == values["after"]:
            before = keys.seal_json("person", column, view.person.id, value=values["before"])
            setattr(view.person, column, before)
        else:
            stayed.append(column)
    return stayed


async def unmerge(
    session: AsyncSession,
    caller: Caller,
    person_id: uuid.UUID,
    merge_id: uuid.UUID,
    *,
    keys: DataKeyRing,
    expected_version: int,
) -> PersonMerge:
    await persons_service.hold_intake_lock(session)
    kept = await persons_service.get(
        session, caller, person_id, keys=keys, for_update=True, merged=MergedAs.read
    )
    caller.require("person.merge", kept.resource)
    record = await repository.get(session, merge_id, person_id=person_id, for_update=True)
    if record is None:
        raise NotFound("No such merge into this person.")
    if record.unmerged_at is not None:
        raise MergeRefused(
            "This merge was undone already.", unmerged_at=record.unmerged_at.isoformat()
        )
    _refuse_if_merged(kept, which="This person")
    later = [
        other.id
        for other in await repository.of_person(session, person_id)
        if other.unmerged_at is None and other.merged_at > record.merged_at
    ]
    if later:
        # A later merge may have changed the same values: undone first, each finds the
        # values it set.
        raise MergeRefused(
            "Later merges into this person are in effect: undo them first, newest first.",
            merge_ids=[str(merge_id) for merge_id in later],
        )
    check_version(kept.person.version, expected_version, what="person")
    merged = await persons_service.get(
        session, caller, record.merged_person_id, keys=keys, for_update=True, merged=MergedAs.read
    )
    _require_full_clearance(caller, kept, merged)
    kept_cases = await _locked_cases(session, caller, person_id)
    moved = record.moved
    going_back = [case for case in kept_cases.visible if str(case.id) in moved["case_file_ids"]]
    known = set(moved["case_file_ids"]) | set(moved["kept_case_file_ids"])
    stayed_cases = [case.id for case in kept_cases.visible if str(case.id) not in known]

    covering = await recognition_service.made_since_covering(
        session, person_id, moved["decisions"], [case.id for case in going_back]
    )
    if covering:
        # Such a decision belongs to the kept person's history but concerns a prosecution
        # of the merged one: a person must decide which before they part.
        raise MergeRefused(
            "Recognition decisions made since the merge cover case files that came from the "
            "merged person; record a decision that covers them no more, or keep the merge.",
            decision_ids=[str(decision_id) for decision_id in covering],
        )
    journal = journal_of(session)
    kept_before = _snapshot(kept, journal, merged_into=None)
    merged_before = _snapshot(merged, journal, merged_into=person_id)
    case_changes = await cases_service.move_to_person(session, going_back, merged.person.id)
    await persons_service.restore_names(
        session, merged.person.id, moved["names"], taken_from=person_id
    )
    separated = await recognition_service.separate_decisions(
        session, person_id, merged.person.id, moved["decisions"]
    )
    stayed_fields = _restore_fields(kept, moved["fields"])
    stayed_fields += _restore_sealed(
        kept,
        keys.open_json("person_merge", "sealed", record.id, envelope=record.sealed) or {},
        keys,
    )
    kept.person.recognition_status = separated.kept_status
    now = utcnow()
    bump(kept.person, at=now)
    merged.person.merged_into = None
    bump(merged.person, at=now)
    await persons_service.save(session, kept.person)
    await persons_service.save(session, merged.person)
    if moved.get("distinction") is not None:
        await persons_service.restore_distinction(
            session, person_id, merged.person.id, moved["distinction"]
        )
    record.unmerged_at = now
    record.unmerged_by = caller.principal.staff_id
    record.stayed = {
        "case_file_ids": [str(case_id) for case_id in stayed_cases],
        "recognition_decision_ids": [str(d) for d in separated.stayed],
        "fields": stayed_fields,
    }
    await repository.save(session, record)
    await repository.add_event(session, record, MergeEventKind.unmerged)
    await _record_in_trail(
        session,
        caller,
        "person.unmerge",
        record,
        keys=keys,
        before=(kept_before, merged_before),
        moves=[*case_changes, *separated.changes],
        related=[case.id for case in going_back],
    )
    return record

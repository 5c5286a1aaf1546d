"""Use cases for persons: create, read, update (optimistic), list and name search."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import partial
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from app.access import visibility
from app.access.caller import Caller
from app.access.policy import Resource
from app.access.principal import Tier
from app.access.tiers import hidden_fields, refuse_fields_above, shows_name
from app.audit.journal import Journal, change, journal_of
from app.core.crypto import DataKeyRing
from app.core.dates import PartialDate, Precision
from app.core.errors import (
    HiddenRecord,
    HiddenReference,
    MergedRecord,
    MergedReference,
    NotFound,
    PersonMerged,
    PossibleDuplicate,
    UnknownReference,
)
from app.core.ids import new_id
from app.core.pagination import (
    cursor_float,
    cursor_uuid,
    decode_cursor,
    id_position,
    query_fingerprint,
    trim_page,
)
from app.core.versioning import bump, check_version
from app.persons import matching, repository
from app.persons.models import Person, PersonDuplicateScan, PersonName
from app.persons.names import name_words, skeleton, tokens
from app.persons.schemas import (
    SEALED_FIELDS,
    MatchReasonRead,
    NameInput,
    PersonCreate,
    PersonDuplicate,
    PersonFields,
    PersonFilters,
    PersonMatch,
    PersonMatchQuery,
    PersonRead,
    PersonUpdate,
    person_read,
)
from app.recognition.criteria import RecognitionStatus

# The matching key's letters a search needs (the query's own rule is in schemas.py).
MIN_SEARCH_KEY = 3


# Where a person is read (the Location of a merged person's redirect).
PERSONS_PATH = "/api/v1/persons"

# Sealed at rest (app/core/crypto.py); the JSON value of each is what the API shows.
CONFIDENTIAL_COLUMNS = ("relatives", "contacts", "address")


@dataclass(frozen=True)
class PersonView:
    """A person as the caller may see them: confidential values are opened only at
    confidential clearance."""

    person: Person
    names: list[PersonName]
    clearance: Tier
    resource: Resource
    confidential: dict[str, Any]
    # Persons stated to be someone else, among those the caller may see.
    distinct_from: tuple[uuid.UUID, ...] = ()

    def read(self) -> PersonRead:
        return person_read(
            self.person,
            self.names,
            self.clearance,
            confidential=self.confidential,
            distinct_from=self.distinct_from,
        )


@dataclass(frozen=True)
class Match:
    """A recorded person who may be the would-be one."""

    view: PersonView
    score: float
    reasons: list[matching.Reason]

    @property
    def likely_duplicate(self) -> bool:
        return self.score >= matching.DUPLICATE_THRESHOLD


@dataclass(frozen=True)
class PersonPage:
    items: list[PersonView]
    next_cursor: str | None


def _name_rows(person_id: uuid.UUID, names: list[NameInput]) -> list[PersonName]:
    rows = []
    for position, name in enumerate(names):
        rows.append(
            PersonName(
                person_id=person_id,
                position=position,
                value=name.value,
                script=name.script,
                language=name.language,
                kind=name.kind,
                is_public=name.is_public,
                search_key=skeleton(name.value),
                search_tokens=tokens(name.value),
            )
        )
    return rows


def _column_values(
    data: PersonFields, fields: set[str], *, keys: DataKeyRing, person_id: uuid.UUID
) -> dict[str, Any]:
    """Table values for the given input fields (partial dates split into date + precision,
    confidential values sealed to this row)."""
    values: dict[str, Any] = {}
    typed = data.model_dump(include=fields)
    as_json = data.model_dump(mode="json", include=fields & set(CONFIDENTIAL_COLUMNS))
    for field in fields:
        if field == "names":
            continue
        if field in CONFIDENTIAL_COLUMNS:
            values[field] = keys.seal_json("person", field, person_id, value=as_json[field])
            continue
        if field == "birth_date":
            birth = data.birth_date
            parsed = PartialDate.parse(birth) if birth is not None else None
            values["birth_date"] = parsed.start if parsed else None
            values["birth_date_precision"] = parsed.precision if parsed else None
        else:
            values[field] = typed[field]
    return values


def _view(
    caller: Caller,
    keys: DataKeyRing | None,
    person: Person,
    *,
    names: list[PersonName],
    resource: Resource,
    distinct_from: list[uuid.UUID] | None = None,
) -> PersonView:
    clearance = caller.clearance("person", resource)
    confidential: dict[str, Any] = {}
    if clearance >= Tier.confidential and keys is not None:
        confidential = {
            column: keys.open_json("person", column, person.id, envelope=getattr(person, column))
            for column in CONFIDENTIAL_COLUMNS
        }
    return PersonView(person, names, clearance, resource, confidential, tuple(distinct_from or ()))


def audit_snapshot(journal: Journal, view: PersonView) -> dict[str, Any]:
    """The person as the audit trail keeps them: what the caller could see, confidential
    values (private names among them) as fingerprints."""
    values = view.read().model_dump(mode="json", exclude=hidden_fields("person", view.clearance))
    values["names"] = [
        name if name["is_public"] else {**name, "value": journal.fingerprint(name["value"])}
        for name in values["names"]
    ]
    return journal.snapshot("person", values)


async def create(
    session: AsyncSession,
    caller: Caller,
    *,
    keys: DataKeyRing,
    data: PersonCreate,
    links: visibility.PersonLinks = visibility.NO_CASE_FILES,
) -> PersonView:
    """Record a person. `links`: how the caller will be linked to the person once its
    transaction gives them case files (a partner's batch, which sees a person only through
    the case files its agreement shares, and checks they are before it commits)."""
    fields = set(PersonCreate.model_fields) - {"confirmed_distinct_from"}
    distinct_from = await _stated_distinct(session, caller, data.confirmed_distinct_from)
    await repository.hold_intake_lock(session)
    await _refuse_likely_duplicate(
        session, caller, given_facts(data), stated_distinct=set(distinct_from)
    )
    person_id = new_id()
    person = Person(
        id=person_id,
        **_column_values(data, fields, keys=keys, person_id=person_id),
        recorded_by=caller.principal.staff_id,
    )
    names = _name_rows(person.id, data.names)
    await repository.add(session, person, names)
    await repository.add_distinctions(
        session, person_id, distinct_from, stated_by=caller.principal.staff_id
    )
    resource = visibility.person_resource(
        caller.principal, recorded_by=person.recorded_by, links=links
    )
    view = _view(caller, keys, person, names=names, resource=resource, distinct_from=distinct_from)
    journal = journal_of(session)
    journal.changed(
        "person.create",
        "person",
        person_id,
        changes=[change("person", person_id, before=None, after=audit_snapshot(journal, view))],
    )
    return view


class MergedAs(StrEnum):
    """How a use case meets a person merged into another (app/merges)."""

    # 404 person-merged with `merged_into`: nothing is done to a merged record.
    refused = "refused"
    # 308 to the person it was merged into (the person's own read).
    redirected = "redirected"
    # The merged record itself, as the one it was merged into may be seen (its history,
    # and the merges feature).
    read = "read"


async def get(
    session: AsyncSession,
    caller: Caller,
    person_id: uuid.UUID,
    *,
    keys: DataKeyRing | None = None,
    for_update: bool = False,
    merged: MergedAs = MergedAs.refused,
) -> PersonView:
    """The person, if the caller may see them; otherwise NotFound. Without `keys`,
    confidential values stay sealed (for callers that only need to know the person).
    A merged person is seen exactly when the one they were merged into is (who may not
    see that one never learns of the merge)."""
    person = await repository.get(session, person_id, for_update=for_update)
    # The same queries run whether the person exists or not: a person the caller may not
    # see must take as long to refuse as one that does not exist.
    resources = await visibility.person_resources(
        session, caller.principal, {person_id: person.recorded_by if person else None}
    )
    names = await repository.names_of(session, [person_id])
    if person is None:
        raise NotFound("No such person.")
    into = person.merged_into
    resource = (
        resources[person_id]
        if into is None
        else await visibility.merged_person_resource(session, caller.principal, into)
    )
    # Refuses (404) a person the caller may not see, a merged one included.
    view = _view(caller, keys, person, names=names.get(person_id, []), resource=resource)
    if into is not None and merged is not MergedAs.read:
        detail = f"The person was merged into {into}: use that record."
        if merged is MergedAs.redirected:
            raise PersonMerged(
                detail, headers={"Location": f"{PERSONS_PATH}/{into}"}, merged_into=str(into)
            )
        raise MergedRecord(detail, merged_into=str(into))
    distinct = await repository.distinctions_of(
        session, [person_id], readable=visibility.readable_persons(caller.principal)
    )
    return replace(view, distinct_from=tuple(distinct.get(person_id, ())))


async def history_reader(session: AsyncSession, caller: Caller, person_id: uuid.UUID) -> PersonView:
    """The person, if the caller may read their field-level change history (a merged
    person's too: it shows the merge)."""
    view = await get(session, caller, person_id, merged=MergedAs.read)
    caller.require("person.history", view.resource)
    return view


async def update(
    session: AsyncSession,
    caller: Caller,
    person_id: uuid.UUID,
    *,
    keys: DataKeyRing,
    expected_version: int,
    data: PersonUpdate,
) -> PersonView:
    if data.names is not None:
        # A rename meets the duplicate check, under the intake lock; taken before the
        # person's row, in the order merges take both.
        await repository.hold_intake_lock(session)
    view = await get(session, caller, person_id, keys=keys, for_update=True)
    caller.require("person.update", view.resource)
    journal = journal_of(session)
    before = audit_snapshot(journal, view)
    # Stating who is someone else is not writing that field: the caller may not see it.
    refuse_fields_above(
        "person", data.model_fields_set - {"confirmed_distinct_from"}, view.clearance
    )
    person = view.person
    check_version(person.version, expected_version, what="person")
    stated = await _stated_distinct(session, caller, data.confirmed_distinct_from)
    fields = data.model_fields_set - {"confirmed_distinct_from"}
    changes = _column_values(data, fields, keys=keys, person_id=person_id)
    for field, value in changes.items():
        setattr(person, field, value)
    bump(person)
    await repository.save(session, person)
    if data.names is not None:
        # A person renamed meets the duplicate check as a new one would.
        await repository.replace_names(session, person_id, _name_rows(person_id, data.names))
        renamed = await get(session, caller, person_id)
        known = {person_id, *renamed.distinct_from, *stated}
        await _refuse_likely_duplicate(
            session, caller, _recorded_facts(renamed), stated_distinct=known
        )
    new_statements = [other for other in stated if other not in view.distinct_from]
    await repository.add_distinctions(
        session, person_id, new_statements, stated_by=caller.principal.staff_id
    )
    updated = await get(session, caller, person_id, keys=keys)
    journal.changed(
        "person.update",
        "person",
        person_id,
        changes=[
            change("person", person_id, before=before, after=audit_snapshot(journal, updated))
        ],
    )
    return updated


async def has_private_names(session: AsyncSession, person_id: uuid.UUID) -> bool:
    """Whether any of the person's names is not public (a private or hidden one)."""
    names = (await repository.names_of(session, [person_id])).get(person_id, [])
    return any(not name.is_public for name in names)


async def hold(session: AsyncSession, person_id: uuid.UUID) -> None:
    """Hold a person's row until the transaction ends, whoever may see them (a record the
    caller made in the same transaction)."""
    if await repository.get(session, person_id, for_update=True) is None:
        raise UnknownReference("No such person.")


async def lock(session: AsyncSession, caller: Caller, person_id: uuid.UUID) -> PersonView:
    """Hold the person's row until the transaction ends (serialises related writes)."""
    return await get(session, caller, person_id, for_update=True)


async def set_recognition_status(
    session: AsyncSession, person_id: uuid.UUID, status: RecognitionStatus
) -> None:
    await repository.set_recognition_status(session, person_id, status)


def ids_matching(filters: PersonFilters) -> SelectOfScalar[uuid.UUID]:
    """A subquery of the ids of matching persons, for other features' list filters."""
    return repository.ids_matching(filters)


async def list_persons(
    session: AsyncSession,
    caller: Caller,
    keys: DataKeyRing,
    *,
    filters: PersonFilters,
    q: str | None,
    cursor: str | None,
    limit: int,
) -> PersonPage:
    readable = visibility.readable_persons(caller.principal)
    if q is None:
        fingerprint = query_fingerprint({"filters": filters.__dict__})
        after = cursor_uuid(decode_cursor(cursor, fingerprint, 1)[0]) if cursor else None
        rows = await repository.page(
            session, readable=readable, filters=filters, after=after, limit=limit + 1
        )
        persons, next_cursor = trim_page(
            rows, limit=limit, fingerprint=fingerprint, position=id_position
        )
    else:
        key = skeleton(q)
        if len(key.replace(" ", "")) < MIN_SEARCH_KEY:
            # Three letters were given (the schema's rule) but they spell fewer in the
            # Latin matching keys (marks, letters with no transliteration): no stored
            # name can be told apart by so little.
            return PersonPage([], None)
        fingerprint = query_fingerprint({"filters": filters.__dict__, "q": key})
        search = partial(
            repository.search,
            session,
            key=key,
            words=name_words(q),
            filters=filters,
            readable=readable,
            public_names_only=not visibility.searches_private_names(caller.principal),
            limit=limit + 1,
        )
        if cursor:
            score, person_id, whole_words = decode_cursor(cursor, fingerprint, 3)
            after_match = (cursor_float(score), cursor_uuid(person_id))
            found = await search(whole_words=whole_words is True, after=after_match)
        else:
            # Names holding every word of the query are found through the token index;
            # only when there are none (a typo, a fragment) does the slower trigram
            # match run. The cursor remembers which of the two a search is paging.
            whole_words = True
            found = await search(whole_words=True, after=None)
            if not found:
                whole_words = False
                found = await search(whole_words=False, after=None)
        matches, next_cursor = trim_page(
            found,
            limit=limit,
            fingerprint=fingerprint,
            position=lambda match: [match[1], str(match[0].id), whole_words],
        )
        persons = [person for person, _ in matches]
    return PersonPage(await _views(session, caller, keys, persons), next_cursor)


async def readable_views(
    session: AsyncSession, caller: Caller, keys: DataKeyRing, person_ids: Sequence[uuid.UUID]
) -> list[PersonView]:
    """The persons among `person_ids` that the caller may read now, as they may see them
    (others, and merged persons, are left out): a page of a partner's change feed."""
    persons = await repository.get_many(
        session, person_ids, readable=visibility.readable_persons(caller.principal)
    )
    return await _views(session, caller, keys, persons, skip_hidden=True)


async def readable_resources(
    session: AsyncSession, caller: Caller, person_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Resource]:
    """Which of these persons the caller may read now, as readable_views decides it, with
    what the policies know of each, without reading what they show (the change feed's
    check for the records that left a partner's agreement)."""
    recorders = await repository.recorders(
        session, person_ids, readable=visibility.readable_persons(caller.principal)
    )
    resources = await visibility.person_resources(session, caller.principal, recorders)
    return {
        person_id: resource
        for person_id, resource in resources.items()
        if caller.tier_on("person", resource) is not None
    }


async def readable_ids_after(
    session: AsyncSession, caller: Caller, after: uuid.UUID | None, limit: int
) -> list[uuid.UUID]:
    """The ids of the persons the caller may read, in id order after `after`."""
    return await repository.ids_page(
        session, readable=visibility.readable_persons(caller.principal), after=after, limit=limit
    )


async def merged_into(
    session: AsyncSession, person_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, uuid.UUID]:
    """For each of these persons merged into another, that one."""
    return await repository.merged_into(session, person_ids)


async def _views(
    session: AsyncSession,
    caller: Caller,
    keys: DataKeyRing | None,
    persons: list[Person],
    *,
    skip_hidden: bool = False,
) -> list[PersonView]:
    """Persons the caller may read, as they may see them, with one query each for their
    names, what the policies know of them and their distinctions. With `skip_hidden`, a
    person hidden from the caller since they were found is left out rather than refused."""
    if not persons:
        return []
    ids = [person.id for person in persons]
    names = await repository.names_of(session, ids)
    resources = await visibility.person_resources(
        session, caller.principal, {person.id: person.recorded_by for person in persons}
    )
    distinct = await repository.distinctions_of(
        session, ids, readable=visibility.readable_persons(caller.principal)
    )
    views = []
    for p in persons:
        try:
            views.append(
                _view(
                    caller,
                    keys,
                    p,
                    names=names.get(p.id, []),
                    resource=resources[p.id],
                    distinct_from=distinct.get(p.id),
                )
            )
        except HiddenRecord:
            if not skip_hidden:
                raise
    return views


# The duplicate check ------------------------------------------------------------------

# Candidates the blocking query hands to scoring, at most; and shown, at most.
MATCH_CANDIDATES = 200
MATCHES_SHOWN = 10
UNKNOWN_DISTINCT = "confirmed_distinct_from names a person that does not exist."


def given_facts(data: PersonMatchQuery | PersonCreate) -> matching.Facts:
    birth = PartialDate.parse(data.birth_date) if data.birth_date else None
    return matching.Facts(
        names=[matching.NameForm(name.value, name_words(name.value)) for name in data.names],
        birth_date=birth.start if birth else None,
        birth_precision=birth.precision if birth else None,
        gender=data.gender,
        citizenships=data.citizenships,
        region=data.region,
    )


def _recorded_facts(view: PersonView) -> matching.Facts:
    """What the check may compare of a recorded person: what the caller may see of them,
    so that a reason never tells more than a read would (the birth date is restricted;
    a private name is confidential)."""
    hidden = hidden_fields("person", view.clearance)
    person = view.person
    names = [
        name
        for name in view.names
        if shows_name(is_public=name.is_public, clearance=view.clearance)
    ]
    precision = person.birth_date_precision
    shows_birth = "birth_date" not in hidden and precision is not None
    return matching.Facts(
        names=[matching.NameForm(name.value, name_words(name.value)) for name in names],
        birth_date=person.birth_date if shows_birth else None,
        birth_precision=Precision(precision) if shows_birth and precision else None,
        gender=person.gender if "gender" not in hidden else None,
        citizenships=person.citizenships if "citizenships" not in hidden else (),
        region=person.region if "region" not in hidden else None,
    )


async def find_matches(
    session: AsyncSession,
    caller: Caller,
    given: matching.Facts,
    *,
    leave_out: Sequence[uuid.UUID] = (),
) -> list[Match]:
    """Recorded persons the would-be one may be, best first, among those the caller may
    see, with the score and its reasons (app/persons/matching.py): the first ten, and
    every likely duplicate besides. Sealed values stay sealed: a check needs none."""
    readable = visibility.readable_persons(caller.principal)
    candidate_ids = await repository.match_candidates(
        session,
        names=[(skeleton(name.value), name.words) for name in given.names],
        readable=readable,
        public_names_only=not visibility.searches_private_names(caller.principal),
        leave_out=leave_out,
        limit=MATCH_CANDIDATES,
    )
    persons = await repository.get_many(session, candidate_ids, readable=readable)
    matches = []
    for view in await _views(session, caller, None, persons, skip_hidden=True):
        score, reasons = matching.score(given, _recorded_facts(view))
        if score >= matching.CANDIDATE_FLOOR:
            matches.append(Match(view, score, reasons))
    matches.sort(key=lambda match: (-match.score, match.view.person.id))
    return [
        match
        for index, match in enumerate(matches)
        if index < MATCHES_SHOWN or match.likely_duplicate
    ]


async def referenced(
    session: AsyncSession,
    caller: Caller,
    person_id: uuid.UUID,
    *,
    unknown: str,
    for_update: bool = False,
) -> PersonView:
    """A person that a request's body names: one the caller may not see is answered
    exactly like one that does not exist (422 with `unknown`), and recorded as a denial.
    With `for_update`, the person's row is held, so that no merge takes them meanwhile."""
    try:
        return await get(session, caller, person_id, for_update=for_update)
    except MergedRecord as exc:
        raise MergedReference(
            f"{unknown} It names a person merged into another; name that one.",
            merged_into=exc.extensions["merged_into"],
        ) from exc
    except HiddenRecord as exc:
        journal_of(session).subject = ("person", person_id)
        raise HiddenReference(unknown) from exc
    except NotFound as exc:
        journal_of(session).subject = ("person", person_id)
        raise UnknownReference(unknown) from exc


async def _stated_distinct(
    session: AsyncSession, caller: Caller, person_ids: list[uuid.UUID]
) -> list[uuid.UUID]:
    """The persons a caller states the new one is not: each must be one they may see."""
    for person_id in person_ids:
        await referenced(session, caller, person_id, unknown=UNKNOWN_DISTINCT)
    return person_ids


async def _refuse_likely_duplicate(
    session: AsyncSession,
    caller: Caller,
    given: matching.Facts,
    *,
    stated_distinct: set[uuid.UUID],
) -> None:
    """409 with the candidates when the would-be person's best candidate is at or above
    the threshold and the caller has not stated that they are someone else."""
    matches = await find_matches(session, caller, given, leave_out=sorted(stated_distinct))
    likely = [match for match in matches if match.likely_duplicate]
    if not likely:
        return
    record_matches(journal_of(session), matches, given)
    raise PossibleDuplicate(
        f"{len(likely)} recorded person(s) may be this one. Read them; if the person is "
        "someone else, send the request again with their ids in confirmed_distinct_from.",
        threshold=matching.DUPLICATE_THRESHOLD,
        candidates=[match_read(match) for match in matches],
    )


def record_matches(journal: Journal, matches: list[Match], given: matching.Facts) -> None:
    """The check's candidates as a reading, with the names asked for as fingerprints
    (a name searched for is itself sensitive)."""
    journal.viewed_page(
        "person.match",
        "person",
        [(match.view.person.id, match.view.clearance) for match in matches],
        detail={"names": [journal.fingerprint(name.value) for name in given.names]},
    )


def match_read(match: Match) -> dict[str, Any]:
    """A candidate as the API shows it (PersonMatch), at the caller's clearance."""
    return PersonMatch(
        person=match.view.read(),
        score=round(match.score, 3),
        likely_duplicate=match.likely_duplicate,
        reasons=_reasons_read(match.reasons),
    ).model_dump(
        mode="json",
        # Sealed values are not opened for a check, and not shown as empty either.
        exclude={"person": hidden_fields("person", match.view.clearance) | set(SEALED_FIELDS)},
    )


# For merges (app/merges) ------------------------------------------------------------------


async def hold_intake_lock(session: AsyncSession) -> None:
    """Intake, renames and merges one at a time: each sees the persons the others made."""
    await repository.hold_intake_lock(session)


async def save(session: AsyncSession, person: Person) -> None:
    await repository.save(session, person)


def name_snapshot(names: Sequence[PersonName]) -> list[dict[str, Any]]:
    """Names as a merge keeps them, to put them back exactly at an unmerge."""
    return [
        {
            "id": str(name.id),
            "position": name.position,
            "value": name.value,
            "script": name.script,
            "language": name.language,
            "kind": name.kind,
            "is_public": name.is_public,
        }
        for name in names
    ]


async def move_names(
    session: AsyncSession, from_person: PersonView, to_person: PersonView
) -> list[dict[str, Any]]:
    """The names of one person given to another, after theirs; returns them as they were."""
    moved = name_snapshot(from_person.names)
    await repository.move_names(
        session,
        [name.id for name in from_person.names],
        to_person_id=to_person.person.id,
        first_position=len(to_person.names),
    )
    return moved


async def restore_names(
    session: AsyncSession,
    person_id: uuid.UUID,
    snapshot: list[dict[str, Any]],
    *,
    taken_from: uuid.UUID,
) -> None:
    """Give a person back their names as a merge kept them: the ones still with the person
    they went to leave that person (whose own names close up); the ones since removed from
    there are made again, with their ids."""
    ids = [uuid.UUID(name["id"]) for name in snapshot]
    await repository.remove_names(session, taken_from, ids)
    await repository.number_names(session, taken_from)
    rows = []
    for name in snapshot:
        row = PersonName(
            id=uuid.UUID(name["id"]),
            person_id=person_id,
            position=name["position"],
            value=name["value"],
            script=name["script"],
            language=name["language"],
            kind=name["kind"],
            is_public=name["is_public"],
            search_key=skeleton(name["value"]),
            search_tokens=tokens(name["value"]),
        )
        rows.append(row)
    await repository.add_names(session, rows)


async def stated_distinct(
    session: AsyncSession, first: uuid.UUID, second: uuid.UUID
) -> dict[str, Any] | None:
    """The statement that two persons are different people, if one was made."""
    return await repository.distinction(session, first, second)


async def withdraw_distinction(session: AsyncSession, first: uuid.UUID, second: uuid.UUID) -> None:
    await repository.remove_distinction(session, first, second)


async def restore_distinction(
    session: AsyncSession, first: uuid.UUID, second: uuid.UUID, statement: dict[str, Any]
) -> None:
    await repository.restore_distinction(session, first, second, statement)


# Persons recorded twice, as the latest scan found them (app/persons/duplicates.py) ------


@dataclass(frozen=True)
class DuplicatePage:
    scan: PersonDuplicateScan | None
    items: list[dict[str, Any]]
    next_cursor: str | None


async def duplicate_pairs(
    session: AsyncSession,
    caller: Caller,
    *,
    min_score: float,
    cursor: str | None,
    limit: int,
) -> DuplicatePage:
    """The latest scan's pairs at or above `min_score`, best first, each scored again with
    what both persons hold now and shown as the caller may see them (a pair with a person
    the caller may not see, merged or stated to be two people since, is left out)."""
    scan = await repository.latest_scan(session)
    if scan is None:
        return DuplicatePage(None, [], None)
    fingerprint = query_fingerprint({"scan": str(scan.id), "min_score": min_score})
    after = None
    if cursor:
        score, one, other = decode_cursor(cursor, fingerprint, 3)
        after = (cursor_float(score), cursor_uuid(one), cursor_uuid(other))
    rows = await repository.candidate_page(
        session, scan.id, min_score=min_score, after=after, limit=limit + 1
    )
    page, next_cursor = trim_page(
        rows,
        limit=limit,
        fingerprint=fingerprint,
        position=lambda row: [row.score, str(row.person_id), str(row.other_person_id)],
    )
    ids = sorted({person_id for row in page for person_id in (row.person_id, row.other_person_id)})
    readable = visibility.readable_persons(caller.principal)
    persons = await repository.get_many(session, ids, readable=readable)
    views = {
        view.person.id: view
        for view in await _views(session, caller, None, persons, skip_hidden=True)
    }
    items = []
    shown: dict[uuid.UUID, PersonView] = {}
    for row in page:
        one, other = views.get(row.person_id), views.get(row.other_person_id)
        if one is None or other is None:
            continue
        shown |= {one.person.id: one, other.person.id: other}
        score, reasons = matching.score(_recorded_facts(other), _recorded_facts(one))
        excluded = {
            "person": hidden_fields("person", one.clearance) | set(SEALED_FIELDS),
            "other_person": hidden_fields("person", other.clearance) | set(SEALED_FIELDS),
        }
        items.append(
            PersonDuplicate(
                person=one.read(),
                other_person=other.read(),
                score=round(score, 3),
                scanned_score=round(row.score, 3),
                likely_duplicate=score >= matching.DUPLICATE_THRESHOLD,
                reasons=_reasons_read(reasons),
            ).model_dump(mode="json", exclude=excluded)
        )
    journal_of(session).viewed_page(
        "person.duplicates",
        "person",
        [(view.person.id, view.clearance) for view in shown.values()],
    )
    return DuplicatePage(scan, items, next_cursor)


def _reasons_read(reasons: list[matching.Reason]) -> list[MatchReasonRead]:
    return [
        MatchReasonRead(
            kind=reason.kind.value,
            verdict=reason.verdict.value,
            effect=reason.effect,
            given=reason.given,
            recorded=reason.recorded,
        )
        for reason in reasons
    ]

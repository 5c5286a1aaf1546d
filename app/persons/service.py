"""Use cases for persons: create, read, update (optimistic), list and name search."""

import uuid
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from app.access import visibility
from app.access.caller import Caller
from app.access.policy import Resource
from app.access.principal import Tier
from app.access.tiers import hidden_fields, refuse_fields_above
from app.audit.journal import Journal, change, journal_of
from app.core.crypto import DataKeyRing
from app.core.dates import PartialDate
from app.core.errors import NotFound
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
from app.persons import repository
from app.persons.models import Person, PersonName
from app.persons.names import name_words, skeleton, tokens
from app.persons.schemas import (
    NameInput,
    PersonCreate,
    PersonFields,
    PersonFilters,
    PersonUpdate,
    person_read,
)
from app.recognition.criteria import RecognitionStatus

# The matching key's letters a search needs (the query's own rule is in schemas.py).
MIN_SEARCH_KEY = 3


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
) -> PersonView:
    clearance = caller.clearance("person", resource)
    confidential: dict[str, Any] = {}
    if clearance >= Tier.confidential and keys is not None:
        confidential = {
            column: keys.open_json("person", column, person.id, envelope=getattr(person, column))
            for column in CONFIDENTIAL_COLUMNS
        }
    return PersonView(person, names, clearance, resource, confidential)


def audit_snapshot(journal: Journal, view: PersonView) -> dict[str, Any]:
    """The person as the audit trail keeps them: what the caller could see, confidential
    values (private names among them) as fingerprints."""
    values = person_read(
        view.person, view.names, view.clearance, confidential=view.confidential
    ).model_dump(mode="json", exclude=hidden_fields("person", view.clearance))
    values["names"] = [
        name if name["is_public"] else {**name, "value": journal.fingerprint(name["value"])}
        for name in values["names"]
    ]
    return journal.snapshot("person", values)


async def create(
    session: AsyncSession, caller: Caller, *, keys: DataKeyRing, data: PersonCreate
) -> PersonView:
    fields = set(PersonCreate.model_fields)
    person_id = new_id()
    person = Person(
        id=person_id,
        **_column_values(data, fields, keys=keys, person_id=person_id),
        recorded_by=caller.principal.staff_id,
    )
    names = _name_rows(person.id, data.names)
    await repository.add(session, person, names)
    resource = visibility.person_resource(
        caller.principal, recorded_by=person.recorded_by, links=visibility.NO_CASE_FILES
    )
    view = _view(caller, keys, person, names=names, resource=resource)
    journal = journal_of(session)
    journal.changed(
        "person.create",
        "person",
        person_id,
        changes=[change("person", person_id, before=None, after=audit_snapshot(journal, view))],
    )
    return view


async def get(
    session: AsyncSession,
    caller: Caller,
    person_id: uuid.UUID,
    *,
    keys: DataKeyRing | None = None,
    for_update: bool = False,
) -> PersonView:
    """The person, if the caller may see them; otherwise NotFound. Without `keys`,
    confidential values stay sealed (for callers that only need to know the person)."""
    person = await repository.get(session, person_id, for_update=for_update)
    # The same queries run whether the person exists or not: a person the caller may not
    # see must take as long to refuse as one that does not exist.
    resources = await visibility.person_resources(
        session, caller.principal, {person_id: person.recorded_by if person else None}
    )
    names = await repository.names_of(session, [person_id])
    if person is None:
        raise NotFound("No such person.")
    return _view(
        caller, keys, person, names=names.get(person_id, []), resource=resources[person_id]
    )


async def history_reader(session: AsyncSession, caller: Caller, person_id: uuid.UUID) -> PersonView:
    """The person, if the caller may read their field-level change history."""
    view = await get(session, caller, person_id)
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
    view = await get(session, caller, person_id, keys=keys, for_update=True)
    caller.require("person.update", view.resource)
    journal = journal_of(session)
    before = audit_snapshot(journal, view)
    refuse_fields_above("person", data.model_fields_set, view.clearance)
    person = view.person
    check_version(person.version, expected_version, what="person")
    changes = _column_values(data, data.model_fields_set, keys=keys, person_id=person_id)
    for field, value in changes.items():
        setattr(person, field, value)
    bump(person)
    await repository.save(session, person)
    if data.names is not None:
        await repository.replace_names(session, person_id, _name_rows(person_id, data.names))
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
    ids = [person.id for person in persons]
    names = await repository.names_of(session, ids)
    resources = await visibility.person_resources(
        session, caller.principal, {person.id: person.recorded_by for person in persons}
    )
    return PersonPage(
        [
            _view(caller, keys, p, names=names.get(p.id, []), resource=resources[p.id])
            for p in persons
        ],
        next_cursor,
    )

"""Use cases for persons: create, read, update (optimistic), list and name search."""

import uuid
from dataclasses import dataclass
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from app.core.clock import utcnow
from app.core.dates import PartialDate
from app.core.errors import NotFound, PreconditionFailed, UnprocessableInput
from app.core.pagination import (
    cursor_float,
    cursor_uuid,
    decode_cursor,
    encode_cursor,
    query_fingerprint,
)
from app.persons import repository
from app.persons.models import Person, PersonName
from app.persons.names import skeleton, tokens
from app.persons.schemas import NameInput, PersonCreate, PersonFields, PersonFilters, PersonUpdate

MIN_SEARCH_KEY = 3


@dataclass(frozen=True)
class PersonView:
    person: Person
    names: list[PersonName]


@dataclass(frozen=True)
class PersonPage:
    items: list[PersonView]
    next_cursor: str | None


def _name_rows(person_id: uuid.UUID, names: list[NameInput]) -> list[PersonName]:
    rows = []
    for position, name in enumerate(names):
        key = skeleton(name.value)
        rows.append(
            PersonName(
                person_id=person_id,
                position=position,
                value=name.value,
                script=name.script,
                language=name.language,
                kind=name.kind,
                is_public=name.is_public,
                search_key=key,
                search_tokens=tokens(key),
            )
        )
    return rows


def _column_values(data: PersonFields, fields: set[str]) -> dict[str, Any]:
    """Table values for the given input fields (partial dates split into date + precision)."""
    values: dict[str, Any] = {}
    dumped = data.model_dump(mode="json", include=fields)
    for field in fields:
        if field == "names":
            continue
        if field == "birth_date":
            birth = data.birth_date
            parsed = PartialDate.parse(birth) if birth is not None else None
            values["birth_date"] = parsed.start if parsed else None
            values["birth_date_precision"] = parsed.precision.value if parsed else None
        else:
            values[field] = dumped[field]
    return values


async def create(session: AsyncSession, data: PersonCreate) -> PersonView:
    fields = set(PersonCreate.model_fields)
    person = Person(**_column_values(data, fields))
    names = _name_rows(person.id, data.names)
    await repository.add(session, person, names)
    return PersonView(person, names)


async def get(session: AsyncSession, person_id: uuid.UUID) -> PersonView:
    person = await repository.get(session, person_id)
    if person is None:
        raise NotFound("No such person.")
    names = await repository.names_of(session, [person_id])
    return PersonView(person, names.get(person_id, []))


async def update(
    session: AsyncSession, person_id: uuid.UUID, expected_version: int, data: PersonUpdate
) -> PersonView:
    person = await repository.get(session, person_id, for_update=True)
    if person is None:
        raise NotFound("No such person.")
    if person.version != expected_version:
        raise PreconditionFailed(
            f"The person is at version {person.version}.", current_version=person.version
        )
    for field, value in _column_values(data, data.model_fields_set).items():
        setattr(person, field, value)
    person.version += 1
    person.updated_at = utcnow()
    await repository.save(session, person)
    if data.names is not None:
        await repository.replace_names(session, person_id, _name_rows(person_id, data.names))
    return await get(session, person_id)


async def ensure_exists(session: AsyncSession, person_id: uuid.UUID) -> None:
    if not await repository.exists(session, person_id):
        raise NotFound("No such person.")


async def lock(session: AsyncSession, person_id: uuid.UUID) -> None:
    """Hold the person's row until the transaction ends (serialises related writes)."""
    if await repository.get(session, person_id, for_update=True) is None:
        raise NotFound("No such person.")


async def set_recognition_status(session: AsyncSession, person_id: uuid.UUID, status: str) -> None:
    await repository.set_recognition_status(session, person_id, status)


def ids_matching(filters: PersonFilters) -> SelectOfScalar[uuid.UUID]:
    """A subquery of the ids of matching persons, for other features' list filters."""
    return repository.ids_matching(filters)


async def list_persons(
    session: AsyncSession, filters: PersonFilters, q: str | None, cursor: str | None, limit: int
) -> PersonPage:
    if q is None:
        fingerprint = query_fingerprint({"filters": filters.__dict__})
        after = cursor_uuid(decode_cursor(cursor, fingerprint, 1)[0]) if cursor else None
        persons = await repository.page(session, filters, after, limit + 1)
        more = len(persons) > limit
        persons = persons[:limit]
        next_cursor = encode_cursor([str(persons[-1].id)], fingerprint) if more else None
    else:
        key = skeleton(q)
        if len(key.replace(" ", "")) < MIN_SEARCH_KEY:
            raise UnprocessableInput(f"q needs at least {MIN_SEARCH_KEY} letters.")
        fingerprint = query_fingerprint({"filters": filters.__dict__, "q": key})
        if cursor:
            score, person_id, whole_words = decode_cursor(cursor, fingerprint, 3)
            after_match = (cursor_float(score), cursor_uuid(person_id))
            found = await repository.search(
                session, key, whole_words is True, filters, after_match, limit + 1
            )
        else:
            # Names holding every word of the query are found through the token index;
            # only when there are none (a typo, a fragment) does the slower trigram
            # match run. The cursor remembers which of the two a search is paging.
            whole_words = True
            found = await repository.search(session, key, True, filters, None, limit + 1)
            if not found:
                whole_words = False
                found = await repository.search(session, key, False, filters, None, limit + 1)
        more = len(found) > limit
        found = found[:limit]
        persons = [person for person, _ in found]
        next_cursor = (
            encode_cursor([found[-1][1], str(found[-1][0].id), whole_words], fingerprint)
            if more
            else None
        )
    names = await repository.names_of(session, [person.id for person in persons])
    return PersonPage([PersonView(p, names.get(p.id, [])) for p in persons], next_cursor)

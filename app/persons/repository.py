"""Every SQL query of the persons feature."""

import uuid
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import ColumnElement, Float, Text, and_, cast, func, literal, tuple_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import col, delete, select, update
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from app.core.clock import utcnow
from app.persons.models import Person, PersonName
from app.persons.schemas import PersonFilters
from app.recognition.criteria import RecognitionStatus


async def add(session: AsyncSession, person: Person, names: Sequence[PersonName]) -> None:
    session.add(person)
    await session.flush()
    session.add_all(names)
    await session.flush()


async def save(session: AsyncSession, person: Person) -> None:
    session.add(person)
    await session.flush()


async def get(
    session: AsyncSession, person_id: uuid.UUID, *, for_update: bool = False
) -> Person | None:
    stmt = select(Person).where(Person.id == person_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.exec(stmt)).first()


async def names_of(
    session: AsyncSession, person_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[PersonName]]:
    stmt = (
        select(PersonName)
        .where(col(PersonName.person_id).in_(person_ids))
        .order_by(col(PersonName.person_id), col(PersonName.position))
    )
    grouped: dict[uuid.UUID, list[PersonName]] = defaultdict(list)
    for name in await session.exec(stmt):
        grouped[name.person_id].append(name)
    return grouped


async def replace_names(
    session: AsyncSession, person_id: uuid.UUID, names: Sequence[PersonName]
) -> None:
    await session.exec(delete(PersonName).where(col(PersonName.person_id) == person_id))
    session.add_all(names)
    await session.flush()


async def set_recognition_status(
    session: AsyncSession, person_id: uuid.UUID, status: RecognitionStatus
) -> None:
    await session.exec(
        update(Person)
        .where(col(Person.id) == person_id)
        .values(recognition_status=status, version=col(Person.version) + 1, updated_at=utcnow())
    )


def _conditions(filters: PersonFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.citizenship is not None:
        conditions.append(col(Person.citizenships).contains([filters.citizenship]))
    if filters.recognition_status is not None:
        conditions.append(col(Person.recognition_status) == filters.recognition_status)
    return conditions


def ids_matching(filters: PersonFilters) -> SelectOfScalar[uuid.UUID]:
    return select(Person.id).where(*_conditions(filters))


async def page(
    session: AsyncSession,
    *,
    readable: ColumnElement[bool],
    filters: PersonFilters,
    after: uuid.UUID | None,
    limit: int,
) -> list[Person]:
    """A page of the persons that `readable` (app/access/visibility.py) lets through."""
    stmt = select(Person).where(*_conditions(filters), readable)
    if after is not None:
        stmt = stmt.where(Person.id > after)
    stmt = stmt.order_by(col(Person.id)).limit(limit)
    return list(await session.exec(stmt))


async def search(
    session: AsyncSession,
    *,
    key: str,
    words: Sequence[Sequence[str]],
    whole_words: bool,
    filters: PersonFilters,
    readable: ColumnElement[bool],
    after: tuple[float, uuid.UUID] | None,
    limit: int,
    public_names_only: bool,
) -> list[tuple[Person, float]]:
    """Persons any of whose names resembles `key` (a skeleton), best match first.

    With `whole_words`, names that hold, for every word of the query, one of that word's
    keys (`words`, app/persons/names.py; GIN on search_tokens); otherwise names similar to
    the main key by trigram word similarity (`<%`, GIN on search_key). Either way they rank
    by word similarity.
    """
    score = cast(func.max(func.word_similarity(key, PersonName.search_key)), Float)
    matching = (
        and_(
            *(
                col(PersonName.search_tokens).op("&&")(cast(list(keys), ARRAY(Text)))
                for keys in words
            )
        )
        if whole_words
        else literal(key).op("<%")(PersonName.search_key)
    )
    matches = (
        select(col(PersonName.person_id).label("person_id"), score.label("score"))
        .where(matching, *([col(PersonName.is_public)] if public_names_only else []))
        .group_by(col(PersonName.person_id))
        .subquery()
    )
    stmt = (
        select(Person, matches.c.score)
        .where(*_conditions(filters), readable)
        .join(matches, matches.c.person_id == Person.id)
    )
    if after is not None:
        after_score, after_id = after
        stmt = stmt.where(tuple_(-matches.c.score, Person.id) > tuple_(-after_score, after_id))
    stmt = stmt.order_by(matches.c.score.desc(), col(Person.id)).limit(limit)
    return [(person, float(found_score)) for person, found_score in await session.exec(stmt)]

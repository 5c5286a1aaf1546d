"""Every SQL query of the persons feature."""

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from itertools import combinations
from typing import Any

import asyncpg
from sqlalchemy import (
    ColumnElement,
    Float,
    Text,
    and_,
    cast,
    func,
    literal,
    or_,
    tuple_,
)
from sqlalchemy import case as case_when
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import col, delete, select, update
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from app.core.clock import utcnow
from app.core.db import driver_connection
from app.persons.models import (
    NameToken,
    Person,
    PersonDistinction,
    PersonDuplicateCandidate,
    PersonDuplicateScan,
    PersonName,
)
from app.persons.names import typo_variants
from app.persons.schemas import PersonFilters
from app.recognition.criteria import RecognitionStatus


async def add(session: AsyncSession, person: Person, names: Sequence[PersonName]) -> None:
    session.add(person)
    await session.flush()
    session.add_all(names)
    await session.flush()
    await _add_tokens(session, names)


async def add_names(session: AsyncSession, names: Sequence[PersonName]) -> None:
    session.add_all(names)
    await session.flush()
    await _add_tokens(session, names)


async def _add_tokens(session: AsyncSession, names: Sequence[PersonName]) -> None:
    """Keep the lexicon of word keys (NameToken) complete."""
    rows = sorted(
        {
            (variant, token)
            for name in names
            for token in name.search_tokens
            for variant in typo_variants(token)
        }
    )
    if rows:
        await session.exec(
            pg_insert(NameToken)
            .values([{"variant": variant, "token": token} for variant, token in rows])
            .on_conflict_do_nothing()
        )


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
    removed = await session.exec(
        delete(PersonName)
        .where(col(PersonName.person_id) == person_id)
        .returning(col(PersonName.search_tokens))
    )
    before = {token for (tokens,) in removed.all() for token in tokens}
    session.add_all(names)
    await session.flush()
    await _add_tokens(session, names)
    await _forget_tokens(session, before - {t for name in names for t in name.search_tokens})


async def _forget_tokens(session: AsyncSession, tokens: set[str]) -> None:
    """Take out of the lexicon the word keys no name holds any more: a name removed (a
    family's request) leaves no trace of its words."""
    if tokens:
        driver = await driver_connection(session)
        await driver.execute(
            "DELETE FROM name_token t WHERE t.token = ANY($1::text[]) AND NOT EXISTS "
            "(SELECT 1 FROM person_name n WHERE n.search_tokens @> ARRAY[t.token])",
            sorted(tokens),
        )


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


async def ids_page(
    session: AsyncSession, *, readable: ColumnElement[bool], after: uuid.UUID | None, limit: int
) -> list[uuid.UUID]:
    """The ids of a page of the persons that `readable` lets through, in id order."""
    stmt = select(Person.id).where(readable)
    if after is not None:
        stmt = stmt.where(Person.id > after)
    return list(await session.exec(stmt.order_by(col(Person.id)).limit(limit)))


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
        and_(*(_holds(keys) for keys in words))
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


# Intake of a person holds this transaction-level advisory lock from its duplicate check
# to its commit: two requests recording one person at once would each pass the check.
INTAKE_LOCK = 0x6861626561735F69  # "habeas_i"


async def hold_intake_lock(session: AsyncSession) -> None:
    await session.exec(select(func.pg_advisory_xact_lock(INTAKE_LOCK)))


# The duplicate check compares a name by pairs of its words; past this many words (a
# long name with patronymics and second surnames) the rest are not paired.
MATCH_WORDS = 4
# A person has at most so many names compared (in the order given).
MATCH_NAMES = 6
# A mistyped word is matched through the lexicon of recorded word keys under their typo
# variants (NameToken, names.typo_variants): a letter wrong, one more or less, or two
# neighbours swapped. Never by trigram likeness across every name: at 1M persons that
# handed the recheck some 20,000 names a check (docs/performance.md).


def _holds(keys: Sequence[str]) -> ColumnElement[bool]:
    return col(PersonName.search_tokens).op("&&")(cast(list(keys), ARRAY(Text)))


async def similar_tokens(session: AsyncSession, keys: Sequence[str]) -> dict[str, list[str]]:
    """For each word key, the recorded word keys a typo away from it (not itself)."""
    variants = {key: typo_variants(key) for key in keys}
    asked = sorted({variant for found in variants.values() for variant in found})
    if not asked:
        return {}
    driver = await driver_connection(session)
    rows = await driver.fetch(
        "SELECT variant, token FROM name_token WHERE variant = ANY($1::text[])", asked
    )
    by_variant: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        by_variant[row["variant"]].add(row["token"])
    return {
        key: sorted({t for v in found for t in by_variant.get(v, ()) if t != key})
        for key, found in variants.items()
    }


async def match_candidates(
    session: AsyncSession,
    *,
    names: Sequence[tuple[str, Sequence[Sequence[str]]]],
    readable: ColumnElement[bool],
    public_names_only: bool,
    leave_out: Sequence[uuid.UUID],
    limit: int,
) -> list[uuid.UUID]:
    """Persons that may be the one named (each name as its main key and its words'
    keys), the likeliest first: those with a name that shares keys with two words of a
    given name (one, for a name of one word), then those that do once a word is read as
    a recorded word like it (a typo away: similar_tokens), each rank by the trigram
    likeness of the whole name. Blocked this way, on the token index only, the check never
    compares all pairs and its cost does not grow with the number of names."""
    checked_names = [(key, words[:MATCH_WORDS]) for key, words in names[:MATCH_NAMES]]
    likeness = await similar_tokens(
        session, [k for _, words in checked_names for keys in words for k in keys]
    )
    exact: list[ColumnElement[bool]] = []
    near: list[ColumnElement[bool]] = []
    similarity: list[ColumnElement[float]] = []
    for key, words in checked_names:
        widened = [
            list(dict.fromkeys([*keys, *(t for k in keys for t in likeness.get(k, ()))]))
            for keys in words
        ]
        if len(words) >= 2:
            exact += [and_(_holds(a), _holds(b)) for a, b in combinations(words, 2)]
            near += [
                and_(_holds(a), _holds(b))
                for (a, b), (plain_a, plain_b) in zip(
                    combinations(widened, 2), combinations(words, 2), strict=True
                )
                if (a, b) != (list(plain_a), list(plain_b))
            ]
        elif words:
            exact.append(_holds(words[0]))
            if widened[0] != list(words[0]):
                near.append(_holds(widened[0]))
        if key:
            similarity.append(func.similarity(PersonName.search_key, key))
    if not exact and not near:
        return []
    shares_words = or_(*exact) if exact else literal(False)
    rank = func.max(
        case_when((shares_words, 2.0), else_=1.0)
        + (func.greatest(*similarity) if similarity else literal(0.0))
    )
    found = (
        select(col(PersonName.person_id).label("person_id"), rank.label("rank"))
        .where(
            or_(*exact, *near),
            *([col(PersonName.is_public)] if public_names_only else []),
        )
        .group_by(col(PersonName.person_id))
        .subquery()
    )
    stmt = (
        select(Person.id)
        .join(found, found.c.person_id == Person.id)
        .where(readable, col(Person.id).not_in(leave_out) if leave_out else literal(True))
        .order_by(found.c.rank.desc(), col(Person.id))
        .limit(limit)
    )
    return list(await session.exec(stmt))


async def distinctions_of(
    session: AsyncSession, person_ids: Sequence[uuid.UUID], *, readable: ColumnElement[bool]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """For each person, the persons stated to be someone else, among those `readable`."""
    if not person_ids:
        return {}
    one, other = col(PersonDistinction.person_id), col(PersonDistinction.other_person_id)
    pairs = list(
        await session.exec(
            select(one, other).where(or_(one.in_(person_ids), other.in_(person_ids)))
        )
    )
    if not pairs:
        return {}
    wanted = set(person_ids)
    ends = {person_id for pair in pairs for person_id in pair}
    seen = set(await session.exec(select(Person.id).where(col(Person.id).in_(ends), readable)))
    grouped: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for a, b in pairs:
        for mine, theirs in ((a, b), (b, a)):
            if mine in wanted and theirs in seen:
                grouped[mine].append(theirs)
    return {person_id: sorted(found) for person_id, found in grouped.items()}


async def add_distinctions(
    session: AsyncSession,
    person_id: uuid.UUID,
    others: Sequence[uuid.UUID],
    *,
    stated_by: uuid.UUID | None,
) -> None:
    session.add_all(
        PersonDistinction(
            person_id=min(person_id, other),
            other_person_id=max(person_id, other),
            stated_by=stated_by,
        )
        for other in others
    )
    await session.flush()


async def get_many(
    session: AsyncSession, person_ids: Sequence[uuid.UUID], *, readable: ColumnElement[bool]
) -> list[Person]:
    if not person_ids:
        return []
    stmt = select(Person).where(col(Person.id).in_(person_ids), readable).order_by(col(Person.id))
    return list(await session.exec(stmt))


async def recorders(
    session: AsyncSession, person_ids: Sequence[uuid.UUID], *, readable: ColumnElement[bool]
) -> dict[uuid.UUID, uuid.UUID | None]:
    """Who recorded each of these persons that `readable` lets through."""
    if not person_ids:
        return {}
    stmt = select(Person.id, Person.recorded_by).where(col(Person.id).in_(person_ids), readable)
    return {person_id: recorder for person_id, recorder in await session.exec(stmt)}


async def merged_into(
    session: AsyncSession, person_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, uuid.UUID]:
    if not person_ids:
        return {}
    stmt = select(Person.id, Person.merged_into).where(
        col(Person.id).in_(person_ids), col(Person.merged_into).is_not(None)
    )
    return {row[0]: row[1] for row in await session.exec(stmt) if row[1] is not None}


async def move_names(
    session: AsyncSession,
    name_ids: Sequence[uuid.UUID],
    *,
    to_person_id: uuid.UUID,
    first_position: int,
) -> None:
    """Give names to another person, in their order, after that person's own."""
    for offset, name_id in enumerate(name_ids):
        await session.exec(
            update(PersonName)
            .where(col(PersonName.id) == name_id)
            .values(person_id=to_person_id, position=first_position + offset)
        )
    await session.flush()


async def remove_names(
    session: AsyncSession, person_id: uuid.UUID, name_ids: Sequence[uuid.UUID]
) -> None:
    await session.exec(
        delete(PersonName).where(
            col(PersonName.person_id) == person_id, col(PersonName.id).in_(name_ids)
        )
    )
    await session.flush()


async def number_names(session: AsyncSession, person_id: uuid.UUID) -> None:
    """Number a person's names 0, 1, … again, in their order (after some were removed)."""
    ordered = select(
        PersonName.id,
        (func.row_number().over(order_by=(col(PersonName.position), col(PersonName.id))) - 1).label(
            "position"
        ),
    ).where(col(PersonName.person_id) == person_id)
    numbered = ordered.subquery()
    await session.exec(
        update(PersonName)
        .where(col(PersonName.id) == numbered.c.id)
        .values(position=numbered.c.position)
    )
    await session.flush()


def _pair(first: uuid.UUID, second: uuid.UUID) -> ColumnElement[bool]:
    return and_(
        col(PersonDistinction.person_id) == min(first, second),
        col(PersonDistinction.other_person_id) == max(first, second),
    )


async def distinction(
    session: AsyncSession, first: uuid.UUID, second: uuid.UUID
) -> dict[str, Any] | None:
    found = (await session.exec(select(PersonDistinction).where(_pair(first, second)))).first()
    if found is None:
        return None
    return {
        "stated_by": str(found.stated_by) if found.stated_by else None,
        "stated_at": found.stated_at.isoformat(),
    }


async def remove_distinction(session: AsyncSession, first: uuid.UUID, second: uuid.UUID) -> None:
    await session.exec(delete(PersonDistinction).where(_pair(first, second)))
    await session.flush()


async def restore_distinction(
    session: AsyncSession, first: uuid.UUID, second: uuid.UUID, statement: dict[str, Any]
) -> None:
    stated_by = statement.get("stated_by")
    session.add(
        PersonDistinction(
            person_id=min(first, second),
            other_person_id=max(first, second),
            stated_by=uuid.UUID(stated_by) if stated_by else None,
            stated_at=datetime.fromisoformat(statement["stated_at"]),
        )
    )
    await session.flush()


# The scan for persons recorded twice (app/persons/duplicates.py) ----------------------------

SQL_SCAN_TABLES = """
CREATE TEMP TABLE scan_block (block text NOT NULL, person_id uuid NOT NULL, birth_year int)
ON COMMIT DROP;
CREATE TEMP TABLE scan_pair (person_id uuid NOT NULL, other_person_id uuid NOT NULL)
ON COMMIT DROP
"""
# Every person's names, a person's rows together; merged persons hold none.
SQL_SCAN_NAMES = """
SELECT n.person_id, n.value, extract(year FROM p.birth_date)::int AS birth_year
FROM person_name n JOIN person p ON p.id = n.person_id
WHERE p.merged_into IS NULL
ORDER BY n.person_id
"""
# Pairs in one block: a block of more than $1 persons (a common first name and surname)
# is split by birth year; one still larger is left out and counted. A pair is compared
# once however many blocks it shares, and never when stated to be two people; nor when
# both birth years are known and more than $2 apart (a score that cannot reach the scan's
# threshold, matching.max_birth_years_apart; $2 NULL: any).
SQL_SCAN_PAIRS = """
WITH sized AS (
    SELECT block, count(*) AS persons FROM scan_block GROUP BY block HAVING count(*) > 1
), keyed AS (
    SELECT CASE WHEN s.persons > $1 THEN b.block || '#' || coalesce(b.birth_year::text, '?')
                ELSE b.block END AS block,
           b.person_id, b.birth_year
    FROM scan_block b JOIN sized s USING (block)
), blocks AS (
    SELECT block, count(*) AS persons FROM keyed GROUP BY block HAVING count(*) > 1
), compared AS (
    SELECT k.block, k.person_id, k.birth_year FROM keyed k JOIN blocks USING (block)
    WHERE blocks.persons <= $1
), pairs AS (
    INSERT INTO scan_pair
    SELECT DISTINCT one.person_id, other.person_id
    FROM compared one JOIN compared other
      ON other.block = one.block AND other.person_id > one.person_id
    -- unknown when a year or the limit is missing: compared
    WHERE coalesce(abs(one.birth_year - other.birth_year) <= $2::int, true)
      AND NOT EXISTS (
        SELECT 1 FROM person_distinction d
        WHERE d.person_id = one.person_id AND d.other_person_id = other.person_id
    )
    RETURNING 1
)
SELECT (SELECT count(*) FROM blocks) AS blocks,
       (SELECT count(*) FROM blocks WHERE persons > $1) AS skipped,
       (SELECT count(*) FROM pairs) AS pairs
"""
SQL_SCAN_PAIR_PAGE = """
SELECT person_id, other_person_id FROM scan_pair
WHERE (person_id, other_person_id) > ($1::uuid, $2::uuid)
ORDER BY person_id, other_person_id LIMIT $3
"""
SQL_SCAN_FACTS = """
SELECT id, birth_date, birth_date_precision, gender, citizenships, region
FROM person WHERE id = ANY($1::uuid[])
"""
SQL_SCAN_FACT_NAMES = """
SELECT person_id, value FROM person_name WHERE person_id = ANY($1::uuid[])
ORDER BY person_id, position
"""


# One scan at a time (the nightly job, a command run by hand).
SCAN_LOCK = 0x6861626561735F64  # "habeas_d"


async def scan_open(session: AsyncSession) -> asyncpg.Connection | None:
    """The scan's scratch tables, dropped with the transaction; None while another scan
    runs."""
    driver = await driver_connection(session)
    if not await driver.fetchval("SELECT pg_try_advisory_xact_lock($1)", SCAN_LOCK):
        return None
    await driver.execute(SQL_SCAN_TABLES)
    return driver


def scan_names(driver: asyncpg.Connection) -> Any:
    """Every name of every person, a person's together (a server-side cursor)."""
    return driver.cursor(SQL_SCAN_NAMES, prefetch=5000)


async def scan_add_blocks(
    driver: asyncpg.Connection, rows: Sequence[tuple[str, uuid.UUID, int | None]]
) -> None:
    await driver.copy_records_to_table(
        "scan_block", records=rows, columns=("block", "person_id", "birth_year")
    )


async def scan_pairs(
    driver: asyncpg.Connection, *, block_limit: int, max_years_apart: int | None
) -> tuple[int, int, int]:
    """Make the pairs to compare: (blocks, blocks left out, pairs)."""
    # Scratch tables are never analysed by autovacuum: the planner needs their figures.
    await driver.execute("ANALYZE scan_block")
    row = await driver.fetchrow(SQL_SCAN_PAIRS, block_limit, max_years_apart)
    assert row is not None
    # Pages of pairs are read in order: each one an index range, not a sort of them all.
    await driver.execute(
        "ALTER TABLE scan_pair ADD PRIMARY KEY (person_id, other_person_id); ANALYZE scan_pair"
    )
    return int(row["blocks"]), int(row["skipped"]), int(row["pairs"])


async def scan_pair_page(
    driver: asyncpg.Connection, after: tuple[uuid.UUID, uuid.UUID], limit: int
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    rows = await driver.fetch(SQL_SCAN_PAIR_PAGE, *after, limit)
    return [(row["person_id"], row["other_person_id"]) for row in rows]


async def scan_facts(
    driver: asyncpg.Connection, person_ids: Sequence[uuid.UUID]
) -> tuple[list[asyncpg.Record], dict[uuid.UUID, list[str]]]:
    """The persons' compared facts and all their names (the scan is the system's)."""
    persons = await driver.fetch(SQL_SCAN_FACTS, list(person_ids))
    names: dict[uuid.UUID, list[str]] = defaultdict(list)
    for row in await driver.fetch(SQL_SCAN_FACT_NAMES, list(person_ids)):
        names[row["person_id"]].append(row["value"])
    return persons, names


async def scan_begin(session: AsyncSession, scan: PersonDuplicateScan) -> None:
    """Record a scan as it starts: its candidates are written as they are found."""
    session.add(scan)
    await session.flush()


async def scan_add_candidates(
    driver: asyncpg.Connection,
    scan_id: uuid.UUID,
    candidates: Sequence[tuple[uuid.UUID, uuid.UUID, float]],
) -> None:
    if candidates:
        await driver.copy_records_to_table(
            "person_duplicate_candidate",
            records=[(scan_id, one, other, score) for one, other, score in candidates],
            columns=("scan_id", "person_id", "other_person_id", "score"),
        )


async def scan_finish(session: AsyncSession, scan: PersonDuplicateScan) -> None:
    """Keep a finished scan in place of the earlier ones (their candidates go with them)."""
    session.add(scan)
    await session.flush()
    await session.exec(delete(PersonDuplicateScan).where(col(PersonDuplicateScan.id) != scan.id))


async def latest_scan(session: AsyncSession) -> PersonDuplicateScan | None:
    stmt = select(PersonDuplicateScan).order_by(col(PersonDuplicateScan.finished_at).desc())
    return (await session.exec(stmt.limit(1))).first()


async def candidate_page(
    session: AsyncSession,
    scan_id: uuid.UUID,
    *,
    min_score: float,
    after: tuple[float, uuid.UUID, uuid.UUID] | None,
    limit: int,
) -> list[PersonDuplicateCandidate]:
    """The scan's candidates, best first, of persons neither merged since nor stated to
    be two people since."""
    c = PersonDuplicateCandidate
    merged = select(Person.id).where(col(Person.merged_into).is_not(None))
    distinct = select(PersonDistinction.person_id).where(
        col(PersonDistinction.person_id) == col(c.person_id),
        col(PersonDistinction.other_person_id) == col(c.other_person_id),
    )
    stmt = select(c).where(
        col(c.scan_id) == scan_id,
        col(c.score) >= min_score,
        col(c.person_id).not_in(merged),
        col(c.other_person_id).not_in(merged),
        ~distinct.exists(),
    )
    if after is not None:
        score, one, other = after
        stmt = stmt.where(
            or_(
                col(c.score) < score,
                and_(
                    col(c.score) == score,
                    tuple_(col(c.person_id), col(c.other_person_id)) > tuple_(one, other),
                ),
            )
        )
    stmt = stmt.order_by(col(c.score).desc(), col(c.person_id), col(c.other_person_id))
    return list(await session.exec(stmt.limit(limit)))

"""The mirror's queries: upstreams and where their feeds were read up to; the records
they handed over, written a page at a time."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.db import driver_connection

# A pull holds its upstream for as long as it runs (a session lock on a connection of its
# own, let go when that connection ends however the process ends).
MIRROR_LOCK_SPACE = 0x68626D72  # "hbmr"
SQL_HOLD = f"SELECT pg_try_advisory_lock({MIRROR_LOCK_SPACE}, hashtext($1::uuid::text))"

SQL_UPSTREAM_COLUMNS = """
id, base_url, client_id, cursor, phase, caught_up, position, pages, items, resets,
last_pulled_at, created_at
"""
# The column list is a constant of this module: nothing a caller gives is spliced in.
SQL_UPSTREAM = f"SELECT {SQL_UPSTREAM_COLUMNS} FROM mirror_upstream WHERE id = $1"  # noqa: S608
SQL_UPSTREAM_AT = (
    f"SELECT {SQL_UPSTREAM_COLUMNS} FROM mirror_upstream WHERE base_url = $1 AND client_id = $2"  # noqa: S608
)
SQL_ADD_UPSTREAM = f"""
INSERT INTO mirror_upstream (id, base_url, client_id, caught_up, position, pages, items,
                             resets, created_at)
VALUES ($1, $2, $3, false, 0, 0, 0, 0, $4)
ON CONFLICT (base_url, client_id) DO NOTHING
RETURNING {SQL_UPSTREAM_COLUMNS}
"""  # noqa: S608
SQL_UPSTREAMS = f"""
SELECT {SQL_UPSTREAM_COLUMNS},
       (SELECT count(*) FROM mirror_record r
        WHERE r.upstream_id = u.id AND r.kind = 'person' AND r.state = 'live') AS persons,
       (SELECT count(*) FROM mirror_record r
        WHERE r.upstream_id = u.id AND r.kind = 'case' AND r.state = 'live') AS cases
FROM mirror_upstream u ORDER BY base_url, client_id
"""  # noqa: S608
# The row is locked by the page's transaction, its cursor checked (lock_upstream).
SQL_ADVANCE = """
UPDATE mirror_upstream
SET cursor = $2, phase = $3, caught_up = $4, position = $5, pages = pages + 1,
    items = items + $6, resets = resets + $7, last_pulled_at = $8
WHERE id = $1
"""
SQL_CURRENT = """
SELECT r.kind, r.upstream_record_id, r.id, r.state, r.content_hash, r.merged_into
FROM mirror_record r
JOIN unnest($2::text[], $3::uuid[]) AS asked(kind, upstream_record_id)
  ON asked.kind = r.kind AND asked.upstream_record_id = r.upstream_record_id
WHERE r.upstream_id = $1
"""
SQL_WRITE = """
INSERT INTO mirror_record (id, upstream_id, kind, upstream_record_id, state, body,
                           content_hash, merged_into, upstream_seq, received_at)
SELECT w.id, $1, w.kind, w.upstream_record_id, w.state, w.body::jsonb, w.content_hash,
       w.merged_into, w.upstream_seq, $2
FROM unnest($3::uuid[], $4::text[], $5::uuid[], $6::text[], $7::text[], $8::bytea[],
            $9::uuid[], $10::bigint[])
     AS w(id, kind, upstream_record_id, state, body, content_hash, merged_into, upstream_seq)
ON CONFLICT (upstream_id, kind, upstream_record_id) DO UPDATE
SET state = EXCLUDED.state, body = EXCLUDED.body, content_hash = EXCLUDED.content_hash,
    merged_into = EXCLUDED.merged_into, upstream_seq = EXCLUDED.upstream_seq,
    received_at = EXCLUDED.received_at
"""
# RETURNING gives a row's new values: what it held before comes from the locked read.
SQL_FORGET_ALL = """
UPDATE mirror_record r
SET state = 'gone', body = NULL, content_hash = NULL, merged_into = NULL, received_at = $2
FROM (SELECT id, state, content_hash, merged_into FROM mirror_record
      WHERE upstream_id = $1 AND state <> 'gone' FOR UPDATE) AS held
WHERE r.id = held.id
RETURNING r.id, r.kind, held.state, held.content_hash, held.merged_into
"""
SQL_LOCK_UPSTREAM = "SELECT cursor FROM mirror_upstream WHERE id = $1 FOR UPDATE"
SQL_RECORDS = """
SELECT r.id, r.kind, r.upstream_record_id, r.state, r.body, r.merged_into,
       target.id AS merged_into_here, r.upstream_seq, r.received_at
FROM mirror_record r
LEFT JOIN mirror_record target
  ON target.upstream_id = r.upstream_id AND target.kind = r.kind
 AND target.upstream_record_id = r.merged_into
WHERE r.upstream_id = $1 AND r.kind = $2 AND r.state = ANY($3::text[])
  AND ($4::uuid IS NULL OR r.id > $4)
ORDER BY r.id
LIMIT $5
"""


@dataclass(frozen=True)
class Upstream:
    id: uuid.UUID
    base_url: str
    client_id: str
    cursor: str | None
    phase: str | None
    caught_up: bool
    position: int
    pages: int
    items: int
    resets: int
    last_pulled_at: datetime | None
    created_at: datetime
    persons: int = 0
    cases: int = 0


@dataclass(frozen=True)
class Current:
    """A record as the mirror holds it before a page is applied."""

    id: uuid.UUID
    state: str
    content_hash: bytes | None
    merged_into: uuid.UUID | None


@dataclass(frozen=True)
class Write:
    """A record as a page leaves it."""

    id: uuid.UUID
    kind: str
    upstream_record_id: uuid.UUID
    state: str
    body: str | None
    content_hash: bytes | None
    merged_into: uuid.UUID | None
    upstream_seq: int


@dataclass
class Mirrored:
    """A record as our staff read it: our id, the upstream's, and what was handed."""

    id: uuid.UUID
    kind: str
    upstream_record_id: uuid.UUID
    state: str
    body: dict[str, Any] | None
    merged_into: uuid.UUID | None
    merged_into_here: uuid.UUID | None
    upstream_seq: int
    received_at: datetime


@dataclass(frozen=True)
class Forgotten:
    id: uuid.UUID
    kind: str
    state: str
    content_hash: bytes | None
    merged_into: uuid.UUID | None


def _upstream(row: asyncpg.Record) -> Upstream:
    return Upstream(**dict(row))


async def hold(connection: asyncpg.Connection, upstream_id: uuid.UUID) -> bool:
    """Take the upstream for this pull (on the connection given, for as long as it lasts);
    False if another pull has it."""
    return bool(await connection.fetchval(SQL_HOLD, upstream_id))


async def upstream(session: AsyncSession, upstream_id: uuid.UUID) -> Upstream | None:
    driver = await driver_connection(session)
    row = await driver.fetchrow(SQL_UPSTREAM, upstream_id)
    return None if row is None else _upstream(row)


async def upstream_at(session: AsyncSession, base_url: str, client_id: str) -> Upstream | None:
    driver = await driver_connection(session)
    row = await driver.fetchrow(SQL_UPSTREAM_AT, base_url, client_id)
    return None if row is None else _upstream(row)


async def add_upstream(
    session: AsyncSession, upstream_id: uuid.UUID, base_url: str, client_id: str, now: datetime
) -> Upstream | None:
    """The new upstream, or None if one at that address was added meanwhile."""
    driver = await driver_connection(session)
    row = await driver.fetchrow(SQL_ADD_UPSTREAM, upstream_id, base_url, client_id, now)
    return None if row is None else _upstream(row)


async def upstreams(session: AsyncSession) -> list[Upstream]:
    driver = await driver_connection(session)
    return [_upstream(row) for row in await driver.fetch(SQL_UPSTREAMS)]


async def current(
    session: AsyncSession, upstream_id: uuid.UUID, refs: Sequence[tuple[str, uuid.UUID]]
) -> dict[tuple[str, uuid.UUID], Current]:
    driver = await driver_connection(session)
    rows = await driver.fetch(
        SQL_CURRENT,
        upstream_id,
        [kind for kind, _ in refs],
        [record_id for _, record_id in refs],
    )
    return {
        (row["kind"], row["upstream_record_id"]): Current(
            row["id"],
            row["state"],
            None if row["content_hash"] is None else bytes(row["content_hash"]),
            row["merged_into"],
        )
        for row in rows
    }


async def write(
    session: AsyncSession, upstream_id: uuid.UUID, writes: Sequence[Write], now: datetime
) -> None:
    if not writes:
        return
    driver = await driver_connection(session)
    await driver.execute(
        SQL_WRITE,
        upstream_id,
        now,
        [w.id for w in writes],
        [w.kind for w in writes],
        [w.upstream_record_id for w in writes],
        [w.state for w in writes],
        [w.body for w in writes],
        [w.content_hash for w in writes],
        [w.merged_into for w in writes],
        [w.upstream_seq for w in writes],
    )


async def forget_all(
    session: AsyncSession, upstream_id: uuid.UUID, now: datetime
) -> list[Forgotten]:
    """Every record of the upstream gone (its feed starts again from nothing)."""
    driver = await driver_connection(session)
    rows = await driver.fetch(SQL_FORGET_ALL, upstream_id, now)
    return [
        Forgotten(
            row["id"],
            row["kind"],
            row["state"],
            None if row["content_hash"] is None else bytes(row["content_hash"]),
            row["merged_into"],
        )
        for row in rows
    ]


async def lock_upstream(session: AsyncSession, upstream_id: uuid.UUID) -> tuple[bool, str | None]:
    """Hold the upstream's row until the page commits; whether it exists, and its cursor."""
    driver = await driver_connection(session)
    row = await driver.fetchrow(SQL_LOCK_UPSTREAM, upstream_id)
    return (False, None) if row is None else (True, row["cursor"])


async def advance(
    session: AsyncSession,
    upstream_id: uuid.UUID,
    *,
    cursor: str,
    phase: str,
    caught_up: bool,
    position: int,
    items: int,
    reset: bool,
    now: datetime,
) -> None:
    """Move the upstream's cursor past a page (its row locked by `lock_upstream`)."""
    driver = await driver_connection(session)
    await driver.execute(
        SQL_ADVANCE, upstream_id, cursor, phase, caught_up, position, items, int(reset), now
    )


async def records(
    session: AsyncSession,
    upstream_id: uuid.UUID,
    kind: str,
    states: Sequence[str],
    after: uuid.UUID | None,
    limit: int,
) -> list[Mirrored]:
    driver = await driver_connection(session)
    rows = await driver.fetch(SQL_RECORDS, upstream_id, kind, list(states), after, limit)
    return [Mirrored(**dict(row)) for row in rows]

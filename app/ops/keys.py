"""Data key rotation: seal every confidential value again under the ring's active key.

It runs beside live servers. Rows are re-sealed in small batches, each in its own short
transaction, and each row is only replaced if it still holds the value that was read
(compare-and-swap), so a value a server writes meanwhile is never overwritten. Servers
pick the new active key up from the key file on their own (app/core/crypto.py).
"""

from dataclasses import dataclass, field

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core import embedded
from app.core.crypto import DataKeyRing, KeyConfigurationError, UndecryptableValue, key_id_of

# Every sealed column: (table, column). A new confidential column must be listed here, or
# rotation would leave it under an old key (tests/ops/test_keys.py checks the models).
SEALED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("person", "relatives"),
    ("person", "contacts"),
    ("person", "address"),
    ("source", "witness"),
    ("app_user", "totp_secret"),
    ("idempotency_record", "response_sealed"),
    ("person_merge", "sealed"),
    ("sync_webhook", "secret_sealed"),
    ("sync_webhook", "previous_secret_sealed"),
)
BATCH = 500


@dataclass(frozen=True)
class RotationReport:
    active_kid: str
    resealed: dict[str, int]
    remaining_under_old_keys: int


async def reseal_all(database_url: str, ring: DataKeyRing) -> RotationReport:
    connection = await asyncpg.connect(**embedded.asyncpg_connect_kwargs(database_url))
    try:
        resealed = {}
        for table, column in SEALED_COLUMNS:
            resealed[f"{table}.{column}"] = await _reseal_column(
                connection, ring, table=table, column=column
            )
        remaining = sum(
            [
                await _count_old(connection, ring, table=table, column=column)
                for table, column in SEALED_COLUMNS
            ]
        )
    finally:
        await connection.close()
    return RotationReport(ring.active_kid, resealed, remaining)


def _active_prefix(ring: DataKeyRing) -> bytes:
    kid = ring.active_kid.encode()
    return bytes([1, len(kid)]) + kid


async def _reseal_column(
    connection: asyncpg.Connection, ring: DataKeyRing, *, table: str, column: str
) -> int:
    prefix = _active_prefix(ring)
    done = 0
    after = None
    select = (
        f"SELECT id, {column} AS value FROM {table}"  # noqa: S608 (names from SEALED_COLUMNS)
        f" WHERE {column} IS NOT NULL AND substring({column} FROM 1 FOR $1) <> $2"
        " AND ($3::uuid IS NULL OR id > $3) ORDER BY id LIMIT $4"
    )
    update = f"UPDATE {table} SET {column} = $1 WHERE id = $2 AND {column} = $3"  # noqa: S608
    while True:
        rows = await connection.fetch(select, len(prefix), prefix, after, BATCH)
        if not rows:
            return done
        async with connection.transaction():
            for row in rows:
                plain = ring.open(table, column, row["id"], envelope=row["value"])
                sealed = ring.seal(table, column, row["id"], plaintext=plain)
                status = await connection.execute(update, sealed, row["id"], row["value"])
                done += status == "UPDATE 1"
        after = rows[-1]["id"]


async def _count_old(
    connection: asyncpg.Connection, ring: DataKeyRing, *, table: str, column: str
) -> int:
    prefix = _active_prefix(ring)
    count: int = await connection.fetchval(
        f"SELECT count(*) FROM {table} WHERE {column} IS NOT NULL"  # noqa: S608
        f" AND substring({column} FROM 1 FOR $1) <> $2",
        len(prefix),
        prefix,
    )
    return count


async def key_ids_in_use(database_url: str) -> set[str]:
    connection = await asyncpg.connect(**embedded.asyncpg_connect_kwargs(database_url))
    try:
        return await key_ids_on(connection)
    finally:
        await connection.close()


async def key_ids_on(connection: asyncpg.Connection) -> set[str]:
    """The data keys that stored values are sealed under, as this connection sees them
    (in its transaction's snapshot, for a backup)."""
    kids: set[str] = set()
    for table, column in SEALED_COLUMNS:
        rows = await connection.fetch(
            f"SELECT DISTINCT substring({column} FROM 1 FOR 66) AS head"  # noqa: S608
            f" FROM {table} WHERE {column} IS NOT NULL"
        )
        kids.update(key_id_of(bytes(row["head"])) for row in rows)
    return kids


@dataclass
class OpeningReport:
    """Every sealed value opened (or not) with a ring: values opened per column, and the
    first failures, each naming the row and the key the value is sealed under."""

    opened: dict[str, int]
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    # Columns this schema does not have yet (a backup made before they were added).
    absent_columns: list[str] = field(default_factory=list)


FAILURES_SHOWN = 10


async def open_every_sealed_value(database_url: str, ring: DataKeyRing) -> OpeningReport:
    """Open every sealed value of the database, row by row in batches: after a restore,
    proof that the configured data keys read everything it holds."""
    connection = await asyncpg.connect(**embedded.asyncpg_connect_kwargs(database_url))
    report = OpeningReport(opened={})
    try:
        for table, column in SEALED_COLUMNS:
            present = await connection.fetchval(
                "SELECT 1 FROM information_schema.columns WHERE table_schema ="
                " current_schema() AND table_name = $1 AND column_name = $2",
                table,
                column,
            )
            if present:
                await _open_column(connection, ring, table=table, column=column, report=report)
            else:
                report.absent_columns.append(f"{table}.{column}")
    finally:
        await connection.close()
    return report


async def _open_column(
    connection: asyncpg.Connection,
    ring: DataKeyRing,
    *,
    table: str,
    column: str,
    report: OpeningReport,
) -> None:
    select = (
        f"SELECT id, {column} AS value FROM {table}"  # noqa: S608 (names from SEALED_COLUMNS)
        f" WHERE {column} IS NOT NULL AND ($1::uuid IS NULL OR id > $1) ORDER BY id LIMIT $2"
    )
    opened = 0
    after = None
    while rows := await connection.fetch(select, after, BATCH):
        for row in rows:
            value = bytes(row["value"])
            try:
                ring.open(table, column, row["id"], envelope=value)
            except UndecryptableValue:
                report.failed += 1
                if len(report.failures) < FAILURES_SHOWN:
                    report.failures.append(
                        f"{table}.{column} of {row['id']} does not open: it is sealed under"
                        f" data key {key_id_of(value)!r}"
                    )
            else:
                opened += 1
        after = rows[-1]["id"]
    report.opened[f"{table}.{column}"] = opened


async def check_sealed_values_open(engine: AsyncEngine, ring: DataKeyRing) -> None:
    """Refuse to serve with data keys that cannot open what the database holds (a wrong or
    missing key file, a key retired too early): better than answering 500 at the first
    sign-in. Opens the oldest and the newest value of every sealed column, by primary key
    (two index look-ups each), so the check costs the same on any amount of data."""
    async with engine.connect() as connection:
        for table, column in SEALED_COLUMNS:
            for order in ("ASC", "DESC"):
                row = (
                    await connection.execute(
                        text(
                            f"SELECT id, {column} AS value FROM {table}"  # noqa: S608
                            f" WHERE {column} IS NOT NULL ORDER BY id {order} LIMIT 1"
                        )
                    )
                ).first()
                if row is None:
                    break
                try:
                    ring.open(table, column, row.id, envelope=bytes(row.value))
                except UndecryptableValue:
                    raise KeyConfigurationError(
                        f"data keys: {table}.{column} holds values sealed under key"
                        f" {key_id_of(bytes(row.value))!r}, which the configured data key"
                        f" ring does not hold or which does not open them (is"
                        f" HABEAS_DATA_KEY_FILE the key file of this database?)"
                    ) from None

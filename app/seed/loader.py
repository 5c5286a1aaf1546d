"""Loading the synthetic data set with COPY, in one transaction."""

import time

import asyncpg

from app.core.embedded import asyncpg_connect_kwargs
from app.persons.models import SQL_FILL_NAME_TOKENS
from app.seed import facilities
from app.seed.generator import generate


class SeedRefused(Exception):
    pass


async def load(url: str, *, persons: int, seed: int) -> str:
    started = time.perf_counter()
    data = generate(persons, seed)
    custody = facilities.generate(data, seed)
    loaded = [*data.tables(), *custody.tables()]
    generated = time.perf_counter()
    connection = await asyncpg.connect(**asyncpg_connect_kwargs(url))
    try:
        if await connection.fetchval("SELECT EXISTS (SELECT 1 FROM person)"):
            raise SeedRefused("The database already holds persons; seed an empty database.")
        async with connection.transaction():
            # The seed records histories with past recording times, which a path basis
            # would not see as changes since it (app/reports/basis.py): none is kept.
            await connection.execute("DELETE FROM report_basis")
            tables = [table for table, _, _ in loaded]
            # Building an index once after the load is far faster than updating it per row.
            indexes = await connection.fetch(
                "SELECT i.indexname, i.indexdef FROM pg_indexes i "
                "JOIN pg_class c ON c.relname = i.indexname "
                "WHERE i.schemaname = 'public' AND i.tablename = ANY($1::text[]) "
                "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = c.oid)",
                tables,
            )
            for index in indexes:
                await connection.execute(f'DROP INDEX "{index["indexname"]}"')
            for table, columns, rows in loaded:
                await connection.copy_records_to_table(table, records=rows, columns=list(columns))
            for index in indexes:
                await connection.execute(index["indexdef"])
            await connection.execute(
                "SELECT setval('case_reference_seq', $1)", data.last_reference_number
            )
            await connection.execute(SQL_FILL_NAME_TOKENS)
        await connection.execute("ANALYZE")
    finally:
        await connection.close()
    finished = time.perf_counter()
    return (
        f"seeded {len(data.persons)} persons, {len(data.names)} names, "
        f"{len(data.cases)} case files, {len(data.events)} status events, "
        f"{len(data.collectives)} collective events, {len(data.decisions)} recognition "
        f"decisions, {len(data.sources)} sources, {len(custody.facilities)} facilities, "
        f"{len(custody.events)} custody timeline entries in {finished - started:.1f} s "
        f"(generation {generated - started:.1f} s)"
    )

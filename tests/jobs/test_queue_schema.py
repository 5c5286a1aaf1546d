"""pgqueuer's tables come from migration 0008, not from `pgq install`: the frozen SQL is
what the pinned pgqueuer installs, and the migrated database is exactly what it expects."""

import asyncio
import importlib.util
import secrets
from types import ModuleType

import asyncpg
from pgqueuer.adapters.persistence.schema_ddl import render_install

from app.core import embedded
from app.core.migrations import PROJECT_ROOT, downgrade, upgrade_async
from app.jobs.queue import QUEUE_NAMES, QUEUE_TABLES, queries

MIGRATION = PROJECT_ROOT / "migrations" / "versions" / "20261129_0008_scheduled_jobs.py"


def migration() -> ModuleType:
    spec = importlib.util.spec_from_file_location("migration_0008", MIGRATION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_migration_installs_what_the_pinned_pgqueuer_would() -> None:
    rendered = render_install(QUEUE_NAMES, create_schema=False).split("\n\n", 1)[1]
    assert "\n\n".join(migration().PGQUEUER_INSTALL) == rendered, (
        "pgqueuer's schema changed: add a migration that brings the database along "
        "(pgqueuer's upgrade plan), and freeze the new install SQL"
    )


async def test_the_migrated_database_needs_nothing_from_pgqueuer(db: asyncpg.Connection) -> None:
    plan = await queries(db).plan_upgrade()
    assert plan.statements == (), plan.statements


async def test_downgrade_removes_the_queue_and_upgrade_brings_it_back(admin_url: str) -> None:
    name = f"habeas_jobs_migration_{secrets.token_hex(4)}"
    await embedded.ensure_database(admin_url, name)
    url = embedded.with_database(admin_url, name)
    try:
        await upgrade_async(url)
        connection = await asyncpg.connect(**embedded.asyncpg_connect_kwargs(url))
        try:

            async def leftovers() -> set[str]:
                rows = await connection.fetch(
                    "SELECT relname FROM pg_class WHERE relname LIKE 'pgqueuer%'"
                    " OR relname = 'integrity_check'"
                    " UNION SELECT typname FROM pg_type WHERE typname LIKE 'pgqueuer%'"
                    " UNION SELECT proname FROM pg_proc WHERE proname = 'fn_pgqueuer_changed'"
                )
                return {row[0] for row in rows}

            assert QUEUE_TABLES | {"integrity_check", "fn_pgqueuer_changed"} <= await leftovers()
            await asyncio.to_thread(downgrade, url, "0007")
            assert await leftovers() == set()
            await upgrade_async(url)
            assert (await queries(connection).plan_upgrade()).statements == ()
        finally:
            await connection.close()
    finally:
        await embedded.drop_database(admin_url, name)

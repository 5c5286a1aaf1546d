"""The benchmark database: one per scale, seeded once with `habeas seed` and kept; the
report benchmark's (about ten status events a person) are seeded in bulk by SQL."""

from pathlib import Path

import asyncpg

from app.bench import bulk_seed
from app.core import embedded
from app.core.migrations import upgrade_async
from app.seed.loader import load

SCALES: dict[str, int] = {"10k": 10_000, "100k": 100_000, "1m": 1_000_000}
BENCH_SEED = 42
# The server under test connects as an application role, as in production (which refuses
# to serve as one that could rewrite the audit trail); `habeas serve` grants it.
APP_ROLE = "habeas_bench_app"


async def prepare(scale: str, data_dir: Path, server_url: str | None, *, bulk: bool = False) -> str:
    """A migrated database holding exactly the scale's synthetic persons; its URL. With
    `bulk`, a separate database seeded by app.bench.bulk_seed."""
    admin_url = server_url or embedded.start(data_dir / "bench-pg")
    name = f"habeas_bench_{'bulk_' if bulk else ''}{scale}"
    await embedded.ensure_database(admin_url, name)
    url = embedded.with_database(admin_url, name)
    await upgrade_async(url)
    connection = await asyncpg.connect(**embedded.asyncpg_connect_kwargs(url))
    try:
        persons = await connection.fetchval("SELECT count(*) FROM person")
        if not await connection.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", APP_ROLE):
            await connection.execute(f"CREATE ROLE {APP_ROLE} LOGIN")
    finally:
        await connection.close()
    if persons != SCALES[scale]:
        if persons:
            await embedded.drop_database(admin_url, name)
            await embedded.ensure_database(admin_url, name)
            await upgrade_async(url)
        print(f"seeding {SCALES[scale]} persons (once per scale) ...", flush=True)  # noqa: T201
        if bulk:
            summary = await bulk_seed.load(url, persons=SCALES[scale])
        else:
            summary = await load(url, persons=SCALES[scale], seed=BENCH_SEED)
        print(summary, flush=True)  # noqa: T201
    return url


def application_url(url: str) -> str:
    """The bench database as the server's application role."""
    return embedded.with_user(url, APP_ROLE)

"""The report benchmark compares the API with a hand-written statement for the same
figures: both must give the same figures on the bulk-seeded data, or the comparison says
nothing. The two were written independently, so this is also a check of each."""

import itertools
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from app.bench import bulk_seed, report_sql
from app.cases.models import DeprivationType
from app.cases.statuses import TRANSITIONS, Status
from app.core import embedded
from app.core.migrations import upgrade_async
from app.reports import asof

PERSONS = 2_000


@pytest.fixture(scope="module")
async def bulk(admin_url: str) -> AsyncIterator[asyncpg.Connection]:
    name = f"habeas_test_bulk_{os.getpid()}"
    await embedded.drop_database(admin_url, name)
    await embedded.ensure_database(admin_url, name)
    url = embedded.with_database(admin_url, name)
    await upgrade_async(url)
    await bulk_seed.load(url, persons=PERSONS)
    connection = await asyncpg.connect(**embedded.asyncpg_connect_kwargs(url))
    yield connection
    await connection.close()
    await embedded.drop_database(admin_url, name)


def _flat(document: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(document, dict):
        flat: dict[str, Any] = {}
        for key, value in document.items():
            flat.update(_flat(value, f"{prefix}.{key}" if prefix else key))
        return flat
    return {prefix: document}


def _nonzero(document: Any) -> dict[str, Any]:
    """The figures that are not zero (the engine lists every key of a closed set)."""
    return {key: value for key, value in _flat(document).items() if value not in (0, None)}


async def test_bulk_paths_follow_the_transition_table(bulk: asyncpg.Connection) -> None:
    rows = await bulk.fetch(
        "SELECT case_file_id, array_agg(to_status ORDER BY position) AS path FROM status_event "
        "WHERE confidence <> 'unconfirmed' GROUP BY case_file_id"
    )
    assert len(rows) > 3 * PERSONS
    for row in rows:
        steps = [Status(status) for status in row["path"]]
        for before, after in itertools.pairwise(steps):
            assert after in TRANSITIONS[before], row["path"]
    events = await bulk.fetchval("SELECT count(*) FROM status_event")
    assert events / PERSONS > 8  # about ten a person, as the report benchmark needs


@pytest.mark.parametrize(
    ("known_at", "read_basis"),
    [(None, False), (None, True), (datetime(2025, 9, 20, tzinfo=UTC), False)],
    ids=["now", "now-from-the-basis", "mid-period"],
)
async def test_hand_written_sql_gives_the_engines_figures(
    bulk: asyncpg.Connection, known_at: datetime | None, read_basis: bool
) -> None:
    as_known_at = known_at or datetime.now(UTC) - timedelta(seconds=5)
    basis = None
    if read_basis:  # the one the bulk seed built, as known at the end of the seeding
        kept = await bulk.fetchrow("SELECT id, changed_after FROM report_basis")
        assert kept is not None
        basis = asof.Basis(kept["id"], kept["changed_after"])
        as_known_at = datetime.now(UTC)
    period = (date(2025, 9, 1), date(2025, 9, 30))
    mine = await report_sql.status_figures(
        bulk,
        as_of=date(2025, 9, 30),
        period=period,
        as_known_at=as_known_at,
        baseline=date(2020, 1, 1),
        jurisdiction="BY",
    )
    question = asof.Question(
        as_of=date(2025, 9, 30),
        period_from=period[0],
        period_to=period[1],
        as_known_at=as_known_at,
        baseline=date(2020, 1, 1),
        jurisdiction="BY",
        held_deprivation_types=[DeprivationType(t) for t in report_sql.HELD_DEPRIVATION_TYPES],
        chart_years=3,
    )
    # The engine keeps the people held for the snapshot it is given; nothing is kept here.
    transaction = bulk.transaction()
    await transaction.start()
    try:
        counted = await asof.figures(
            bulk, question, snapshot_id=uuid.uuid4(), earlier=None, basis=basis
        )
    finally:
        await transaction.rollback()
    engine = counted.figures
    mine["period"]["released"]["by_mode"] = mine["period"].pop("released_by_mode")
    mine["claims"] = {"unconfirmed": mine["claims"]}
    series = {"held_by_month", "releases_by_month"}
    lists = {"by_collective_event", "items", *series}

    def scalars(figures: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in _nonzero(figures).items() if k.split(".")[-1] not in lists}

    assert scalars(mine) == scalars(engine)
    assert mine["held"]["total"] > 0
    assert mine["period"]["released"]["total"] > 0
    assert mine["series"]["held_by_month"] == engine["series"]["held_by_month"]
    assert len(mine["claims"]["unconfirmed"]["items"]) == engine["claims"]["unconfirmed"]["count"]
    assert [
        (c["id"], c["case_files"], c["foreign_nationals"]) for c in mine["by_collective_event"]
    ] == [(c["id"], c["case_files"], c["foreign_nationals"]) for c in engine["by_collective_event"]]

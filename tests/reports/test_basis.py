"""The path basis (docs/reports.md, "The path basis"): a report as known at the basis's
moment or later reads the kept paths of the case files unchanged since, builds anew those
changed since, and gives the figures it would give without a basis.

The figures with and without a basis are compared on random histories by the property
test (tests/reports/test_figures_property.py, which builds a basis at random steps); the
stories here show which paths a report reads: the owner removes a case file's kept path,
and a report that read it would miss that person."""

from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from tests.auth import cli_env, run_cli
from tests.conftest import TEST_KEYS_DIR
from tests.factories import event
from tests.reports.reporting import build_basis, case, events_of, generate, move, on_event, person

pytestmark = pytest.mark.asyncio

SEPTEMBER = {"as_of": "2025-09-30", "period": {"from": "2025-09-01", "to": "2025-09-30"}}


async def _three_held(client: httpx.AsyncClient) -> list[str]:
    people = [await person(client) for _ in range(3)]
    return [
        await case(client, people[0], event("detained", "2025-03-02")),
        await case(
            client,
            people[1],
            event("detained", "2024-05-01"),
            event("sentenced", "2024-11-20", details={"sentence_type": "imprisonment"}),
        ),
        await case(client, people[2], event("detained", "2025-08-15")),
    ]


async def _forget_kept_path(db: asyncpg.Connection, case_id: str) -> None:
    removed = await db.execute("DELETE FROM report_basis_path WHERE case_file_id = $1", case_id)
    assert removed != "DELETE 0"


async def test_a_report_reads_the_basis_for_what_did_not_change_since(
    client: httpx.AsyncClient, app: FastAPI, db: asyncpg.Connection
) -> None:
    first, second, third = await _three_held(client)
    await build_basis(app)
    assert (await generate(client, **SEPTEMBER))["figures"]["held"]["total"] == 3

    # The kept path is what the report reads for an unchanged case file …
    await _forget_kept_path(db, second)
    assert (await generate(client, **SEPTEMBER))["figures"]["held"]["total"] == 2
    # … and a rebuilt basis keeps it again.
    await build_basis(app)
    assert (await generate(client, **SEPTEMBER))["figures"]["held"]["total"] == 3

    # What changed after the basis is built anew: a release recorded since (late news),
    # a new case file, a correction of the detention's day.
    await move(client, first, "released", "2025-09-10", details={"release_reason": "acquitted"})
    fourth = await case(client, await person(client), event("detained", "2025-09-25"))
    third_events = await events_of(client, third)
    corrected = await on_event(
        client,
        third,
        third_events[0]["id"],
        "supersession",
        {"reason": "the day was wrong", "event": event("detained", "2025-10-02")},
    )
    assert corrected.status_code == 201, corrected.text
    # The basis still keeps the first and the third as held: it is not read for them.
    report = await generate(client, **SEPTEMBER)
    assert report["figures"]["held"]["total"] == 2  # the second and the fourth
    assert report["figures"]["period"]["released"]["by_mode"]["acquitted"] == 1
    assert report["figures"]["period"]["new_detentions"] == 1
    assert fourth


async def test_a_report_as_known_before_the_basis_builds_every_path(
    client: httpx.AsyncClient, app: FastAPI, db: asyncpg.Connection
) -> None:
    cases = await _three_held(client)
    before = datetime.now(UTC).isoformat()
    await move(client, cases[0], "released", "2025-09-10", details={"release_reason": "parole"})
    await build_basis(app)
    for case_id in cases:
        await _forget_kept_path(db, case_id)
    earlier = await generate(client, **SEPTEMBER, as_known_at=before)
    assert earlier["figures"]["held"]["total"] == 3
    assert earlier["figures"]["period"]["released"]["total"] == 0


async def test_a_basis_built_by_another_engine_is_never_read(
    client: httpx.AsyncClient, app: FastAPI, db: asyncpg.Connection
) -> None:
    cases = await _three_held(client)
    await build_basis(app)
    await db.execute("UPDATE report_basis SET engine_version = 'path-0'")
    await _forget_kept_path(db, cases[1])
    assert (await generate(client, **SEPTEMBER))["figures"]["held"]["total"] == 3


async def test_the_command_builds_the_basis_and_keeps_only_the_newest(
    client: httpx.AsyncClient, db: asyncpg.Connection, database_url: str, tmp_path: Path
) -> None:
    await _three_held(client)
    env = cli_env(
        DATABASE_URL=database_url,
        HABEAS_DATA_DIR=str(TEST_KEYS_DIR),
        HABEAS_REPORT_SETTLE_SECONDS="0",
    )
    for _ in range(2):
        done = await run_cli(["report", "basis"], env, tmp_path)
        assert done.returncode == 0, done.stderr
        assert "4 events" in done.stdout
    kept = await db.fetch("SELECT id, events FROM report_basis")
    assert [row["events"] for row in kept] == [4]
    assert str(kept[0]["id"]) in done.stdout
    assert await db.fetchval("SELECT count(*) FROM report_basis_path") == 4
    assert await db.fetchval("SELECT count(DISTINCT basis_id) FROM report_basis_path") == 1

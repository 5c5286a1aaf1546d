"""The path basis (docs/reports.md, "The path basis"): a report as known at the basis's
moment or later reads the kept paths of the case files unchanged since, builds anew those
changed since, and gives the figures it would give without a basis.

The figures with and without a basis are compared on random histories by the property
test (tests/reports/test_figures_property.py, which builds a basis at random steps); the
stories here show which paths a report reads: the owner removes a case file's kept path,
and a report that read it would miss that person."""

import asyncio
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from app.core.config import InvalidSetting, Settings
from app.jobs import service as jobs_service
from app.jobs import worker
from app.reports import basis
from app.reports.knowledge import BASIS_BUILDER as BUILDER
from app.reports.knowledge import SETTLE_WAIT_LIMIT
from tests.auth import cli_env, run_cli
from tests.conftest import TEST_KEYS_DIR
from tests.factories import API, event
from tests.reports.reporting import (
    build_basis,
    case,
    events_of,
    generate,
    move,
    on_event,
    person,
    recognise,
)

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


async def _committed_after_the_build(
    app: FastAPI, database_url: str, *statements: tuple[Any, ...]
) -> None:
    """Run `statements` in a transaction open (with no transaction id yet) while the basis
    is built, committed after it: their recording times are from before its moment."""
    writer = await asyncpg.connect(database_url)
    try:
        transaction = writer.transaction()
        await transaction.start()
        await writer.fetchval("SELECT 1")
        await build_basis(app)
        for statement, *arguments in statements:
            await writer.execute(statement, *arguments)
        await transaction.commit()
    finally:
        await writer.close()


async def _forget_kept_path(db: asyncpg.Connection, case_id: str) -> None:
    """Remove what the basis keeps of a case file: its path, and its person's spans."""
    spans = await db.execute(
        "DELETE FROM report_basis_span WHERE person_id = "
        "(SELECT person_id FROM report_basis_path WHERE case_file_id = $1 LIMIT 1)",
        case_id,
    )
    removed = await db.execute("DELETE FROM report_basis_path WHERE case_file_id = $1", case_id)
    assert removed != "DELETE 0"
    assert spans != "DELETE 0"


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


async def test_the_figures_over_time_read_the_basis_sums_and_count_the_changed_anew(
    client: httpx.AsyncClient, app: FastAPI, db: asyncpg.Connection
) -> None:
    first, _, _ = await _three_held(client)
    # Held in another jurisdiction: in the sums for all, not in those of BY.
    await case(client, await person(client), event("detained", "2025-01-10"), jurisdiction="LT")
    await build_basis(app)
    before = (await generate(client, **SEPTEMBER))["figures"]
    assert [m["held"] for m in before["series"]["held_by_month"][-3:]] == [2, 3, 3]
    assert before["cumulative"]["detentions_since_baseline"] == 3

    # The sums are what a report reads for the people unchanged since the basis: the owner
    # removes the kept detentions, and the report counts none …
    await db.execute("DELETE FROM report_basis_daily WHERE measure = 'detention'")
    without = (await generate(client, **SEPTEMBER))["figures"]
    assert without["cumulative"]["detentions_since_baseline"] == 0
    # … while a report with other deprivation types than the default counts its own.
    other_types = await generate(
        client, **SEPTEMBER, held_deprivation_types=["pretrial_custody", "imprisonment"]
    )
    assert other_types["figures"]["cumulative"]["detentions_since_baseline"] == 3
    await build_basis(app)

    # Late news, recorded after the basis: the first was released in August. Her own sums
    # are taken out as the basis has them and counted again as they are now.
    await move(client, first, "released", "2025-08-20", details={"release_reason": "acquitted"})
    after = (await generate(client, **SEPTEMBER))["figures"]
    assert [m["held"] for m in after["series"]["held_by_month"][-3:]] == [2, 2, 2]
    assert after["series"]["releases_by_month"][-2] == {
        "month": "2025-08",
        "by_mode": {"acquitted": 1},
    }
    assert after["cumulative"]["releases_since_baseline"] == 1
    assert after["cumulative"]["detentions_since_baseline"] == 3

    everywhere = (await generate(client, **SEPTEMBER, jurisdiction=None))["figures"]
    assert [m["held"] for m in everywhere["series"]["held_by_month"][-3:]] == [3, 3, 3]
    assert everywhere["cumulative"]["detentions_since_baseline"] == 4

    # The same figures, every one, as a report that reads no basis gives (for its
    # jurisdiction and for all, the basis's sums of each).
    await db.execute("DELETE FROM report_basis")
    assert (await generate(client, **SEPTEMBER))["figures"] == after
    assert (await generate(client, **SEPTEMBER, jurisdiction=None))["figures"] == everywhere


async def test_each_persons_standing_is_read_from_the_basis_in_every_jurisdiction(
    client: httpx.AsyncClient, app: FastAPI, db: asyncpg.Connection
) -> None:
    """The basis keeps each person's standing span by span, for all jurisdictions and, for
    a person with case files in several, for each: a report on a day reads the spans on it
    for the people unchanged since, and builds the others' as it does without a basis."""
    # Held in BY since March and in LT since June, on two case files.
    both = await person(client)
    await case(client, both, event("detained", "2025-03-02"))
    in_lt = await case(client, both, event("detained", "2025-06-01"), jurisdiction="LT")
    # Prosecuted at liberty.
    at_liberty = await person(client)
    await case(client, at_liberty, event("charged", "2025-04-01", details={"situation": "other"}))
    # Recognised in May while held.
    recognised = await person(client)
    await case(client, recognised, event("detained", "2025-02-01"))
    assert (await recognise(client, recognised, "2025-05-01")).status_code == 201
    # Held on two case files, recognised, then died in custody on 20 September (recorded
    # on one of them: the custody ends on both).
    died = await person(client)
    died_case = await case(client, died, event("detained", "2024-01-10"))
    await case(client, died, event("detained", "2024-03-01"))
    assert (await recognise(client, died, "2024-06-01")).status_code == 201
    assert (await move(client, died_case, "died_in_custody", "2025-09-20")).status_code == 201
    await build_basis(app)

    asked = {"BY": "BY", "LT": "LT", "all": None}
    september = {
        name: (await generate(client, **SEPTEMBER, jurisdiction=code))["figures"]
        for name, code in asked.items()
    }
    held = {name: figures["held"] for name, figures in september.items()}
    assert {name: h["total"] for name, h in held.items()} == {"BY": 2, "LT": 1, "all": 2}
    assert {name: h["recognised"] for name, h in held.items()} == {"BY": 1, "LT": 0, "all": 1}
    # Counted on the case file of the latest custody: in LT for all jurisdictions.
    assert held["BY"]["by_jurisdiction"] == {"BY": 2}
    assert held["all"]["by_jurisdiction"] == {"BY": 1, "LT": 1}
    prosecuted = {name: f["at_liberty"]["prosecuted"] for name, f in september.items()}
    assert prosecuted == {"BY": 1, "LT": 0, "all": 1}
    august_period = {"from": "2025-08-01", "to": "2025-08-31"}
    august = (await generate(client, as_of="2025-08-31", period=august_period))["figures"]
    assert (august["held"]["total"], august["held"]["recognised"]) == (3, 2)

    # The spans are what the report reads for the people unchanged since the basis: the
    # owner removes them, and the report counts nobody held on its day …
    await db.execute("DELETE FROM report_basis_span")
    without = (await generate(client, **SEPTEMBER))["figures"]
    assert (without["held"]["total"], without["at_liberty"]["prosecuted"]) == (0, 0)
    # … while a report with other deprivation types than the default builds its own.
    other_types = await generate(
        client, **SEPTEMBER, held_deprivation_types=["pretrial_custody", "imprisonment"]
    )
    assert other_types["figures"]["held"]["total"] == 2
    await build_basis(app)

    # Late news, recorded after the basis: the custody in LT ended on 15 September. That
    # person's standing is built anew; everyone else's is read from the basis.
    released = await move(
        client, in_lt, "released", "2025-09-15", details={"release_reason": "acquitted"}
    )
    assert released.status_code == 201, released.text
    after = {
        name: (await generate(client, **SEPTEMBER, jurisdiction=code))["figures"]
        for name, code in asked.items()
    }
    assert {name: f["held"]["total"] for name, f in after.items()} == {"BY": 2, "LT": 0, "all": 2}
    assert after["all"]["held"]["by_jurisdiction"] == {"BY": 2}

    # The same figures, every one, as a report that reads no basis gives.
    await db.execute("DELETE FROM report_basis")
    for name, code in asked.items():
        assert (await generate(client, **SEPTEMBER, jurisdiction=code))["figures"] == after[name]


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


async def test_the_command_builds_nothing_while_another_build_runs(
    clean_tables: None, db: asyncpg.Connection, database_url: str, tmp_path: Path
) -> None:
    env = cli_env(
        DATABASE_URL=database_url,
        HABEAS_DATA_DIR=str(TEST_KEYS_DIR),
        HABEAS_REPORT_SETTLE_SECONDS="0",
    )
    other = await asyncpg.connect(database_url)
    try:
        transaction = other.transaction()
        await transaction.start()
        assert await other.fetchval("SELECT pg_try_advisory_xact_lock($1)", basis.BUILD_LOCK)
        done = await run_cli(["report", "basis"], env, tmp_path)
        await transaction.rollback()
    finally:
        await other.close()
    assert done.returncode == 1
    assert "Another build of the basis is under way" in done.stderr
    assert await db.fetchval("SELECT count(*) FROM report_basis") == 0


async def test_what_was_recorded_shortly_before_the_basis_is_built_anew(
    client: httpx.AsyncClient, app: FastAPI, db: asyncpg.Connection
) -> None:
    """A recording time is the application's clock, which may lag the database's: what was
    recorded within the margin before the basis's moment counts as changed since."""
    cases = await _three_held(client)
    await build_basis(app, margin_seconds=600)
    for case_id in cases:
        await _forget_kept_path(db, case_id)
    assert (await generate(client, **SEPTEMBER))["figures"]["held"]["total"] == 3


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


async def test_facts_corrected_after_the_basis_are_counted_as_corrected(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """The basis keeps the facts the breakdowns count for the people held; a person's
    citizenships and a case file's deprivation type and charges corrected since are read
    as corrected. As known before the corrections, each person keeps their own facts."""
    foreigner = await person(client, "LT")
    await case(client, foreigner, event("detained", "2025-03-02"))
    local = await person(client)
    held_at_home = await case(client, local, event("detained", "2025-04-02"))
    await build_basis(app)
    before = await generate(client, **SEPTEMBER)
    assert before["figures"]["held"]["total"] == 2
    assert before["figures"]["breakdowns"]["foreign_by_citizenship"] == {"LT": 1}
    assert before["figures"]["breakdowns"]["by_article"] == {"342": 2}

    person_url = f"{API}/persons/{foreigner}"
    etag = (await client.get(person_url)).headers["etag"]
    changed = await client.patch(
        person_url, json={"citizenships": ["BY", "PL"]}, headers={"If-Match": etag}
    )
    assert changed.status_code == 200, changed.text
    case_url = f"{API}/cases/{held_at_home}"
    etag = (await client.get(case_url)).headers["etag"]
    changed = await client.patch(
        case_url,
        json={"charges": [{"code": "BY-CC", "article": "130", "part": "1"}]},
        headers={"If-Match": etag},
    )
    assert changed.status_code == 200, changed.text

    after = await generate(client, **SEPTEMBER)
    assert after["figures"]["held"]["total"] == 2
    assert after["figures"]["breakdowns"]["foreign_by_citizenship"] == {"PL": 1}
    assert after["figures"]["breakdowns"]["by_article"] == {"342": 1, "130": 1}

    etag = (await client.get(case_url)).headers["etag"]
    changed = await client.patch(
        case_url, json={"deprivation_type": "house_arrest"}, headers={"If-Match": etag}
    )
    assert changed.status_code == 200, changed.text
    assert (await generate(client, **SEPTEMBER))["figures"]["held"]["total"] == 1

    # As known before the corrections: the versions kept then, each person's own.
    again = await generate(client, **SEPTEMBER, as_known_at=before["parameters"]["as_known_at"])
    assert again["figures"] == before["figures"]


async def test_a_write_open_while_the_basis_is_built_is_counted_when_it_commits(
    client: httpx.AsyncClient, app: FastAPI, database_url: str
) -> None:
    """A transaction that began before the build and commits after it carries recording
    times from before the basis's moment: its case file still counts as changed since."""
    held = await case(client, await person(client), event("detained", "2025-03-02"))
    detention = (await events_of(client, held))[0]["id"]
    await _committed_after_the_build(
        app,
        database_url,
        (
            "INSERT INTO status_event_retraction (id, event_id, case_file_id, reason, "
            "recorded_at) VALUES (gen_random_uuid(), $1, $2, 'a mistake', now())",
            uuid.UUID(detention),
            uuid.UUID(held),
        ),
    )
    assert (await generate(client, **SEPTEMBER))["figures"]["held"]["total"] == 0


async def test_a_recognition_stamped_before_the_basis_and_committed_after_it_counts_once(
    client: httpx.AsyncClient, app: FastAPI, database_url: str
) -> None:
    """The basis sums the recognised custody of the decisions recorded before its
    `changed_after` moment, and a report takes out exactly that: a decision of a write
    open during the build counts once, in the series as on the report's day."""
    owner = await person(client)
    held = await case(client, owner, event("detained", "2025-03-02"))
    decision = uuid.uuid4()
    await _committed_after_the_build(
        app,
        database_url,
        (
            "INSERT INTO recognition_decision (id, person_id, version, status, decided_on, "
            "recorded_at) VALUES ($1, $2, 1, 'political_prisoner', '2025-04-01', now())",
            decision,
            uuid.UUID(owner),
        ),
        (
            "INSERT INTO recognition_coverage (decision_id, case_file_id) VALUES ($1, $2)",
            decision,
            uuid.UUID(held),
        ),
    )
    figures = (await generate(client, **SEPTEMBER))["figures"]
    assert figures["held"]["recognised"] == 1
    # March, then April to September: recognised from 1 April.
    assert [m["recognised"] for m in figures["series"]["held_by_month"][-7:]] == [0] + [1] * 6


async def test_a_merge_after_the_basis_counts_the_merged_person_once_over_time(
    client: httpx.AsyncClient, app: FastAPI, db: asyncpg.Connection
) -> None:
    """A merge moves a case file from one person to another: both are counted anew, and
    the figures over time are those of a report that reads no basis."""
    kept, merged = await person(client), await person(client)
    await case(client, kept, event("detained", "2025-03-02"))
    await case(client, merged, event("detained", "2025-04-10"))
    await build_basis(app)
    before = (await generate(client, **SEPTEMBER))["figures"]
    assert [m["held"] for m in before["series"]["held_by_month"][-6:]] == [2] * 6

    people = [(await client.get(f"{API}/persons/{id_}")).json() for id_ in (kept, merged)]
    response = await client.post(
        f"{API}/persons/{kept}/merges",
        json={
            "merged_person_id": merged,
            "merged_person_version": people[1]["version"],
            "reason": "The same birth date and case number; the family confirmed.",
            "keep_overlapping_custody": True,  # two prosecutions of one person
        },
        headers={"If-Match": f'"{people[0]["version"]}"'},
    )
    assert response.status_code in (200, 201), response.text
    after = (await generate(client, **SEPTEMBER))["figures"]
    # One person, held on two case files at once, is one.
    assert [m["held"] for m in after["series"]["held_by_month"][-6:]] == [1] * 6
    assert after["held"]["total"] == 1
    await db.execute("DELETE FROM report_basis")
    assert (await generate(client, **SEPTEMBER))["figures"] == after


async def test_reports_do_not_wait_for_a_basis_being_built(
    client: httpx.AsyncClient, database_url: str
) -> None:
    """A build is a long transaction that writes nothing a report counts: a report made
    meanwhile does not wait for it to finish."""
    await _three_held(client)
    builder = await asyncpg.connect(database_url, server_settings={"application_name": BUILDER})
    try:
        transaction = builder.transaction()
        await transaction.start()
        await builder.fetchval("SELECT txid_current()")  # a writer, as a build is
        started = time.monotonic()
        assert (await generate(client, **SEPTEMBER))["figures"]["held"]["total"] == 3
        assert time.monotonic() - started < SETTLE_WAIT_LIMIT.total_seconds() / 2
        await transaction.rollback()
    finally:
        await builder.close()


async def test_a_build_waits_for_the_reports_reading_the_basis_it_drops(
    client: httpx.AsyncClient, app: FastAPI, db: asyncpg.Connection
) -> None:
    """A report holds the basis it reads until its transaction ends: a build that commits
    meanwhile cannot take it away from under the report's statement."""
    await _three_held(client)
    await build_basis(app)
    async with app.state.session_factory() as reporting:
        held = await basis.usable(reporting, datetime.now(UTC))
        assert held is not None
        building = asyncio.create_task(build_basis(app))
        await asyncio.sleep(1.0)
        assert not building.done()
        kept = "SELECT count(*) FROM report_basis_path WHERE basis_id = $1"
        assert await db.fetchval(kept, held.id) == 4
        await reporting.rollback()
    await asyncio.wait_for(building, timeout=30)
    assert await db.fetchval(kept, held.id) == 0
    assert await db.fetchval("SELECT count(*) FROM report_basis") == 1


async def test_the_worker_rebuilds_the_basis_on_its_schedule(
    client: httpx.AsyncClient, app: FastAPI, db: asyncpg.Connection
) -> None:
    settings: Settings = app.state.settings
    assert worker.schedules(settings)[jobs_service.REPORT_BASIS] == "41 2 * * *"
    assert jobs_service.REPORT_BASIS not in worker.schedules(
        settings.model_copy(update={"report_basis_schedule": ""})
    )
    with pytest.raises(InvalidSetting, match="HABEAS_REPORT_BASIS_SCHEDULE"):
        worker.schedules(settings.model_copy(update={"report_basis_schedule": "nightly"}))

    await _three_held(client)
    jobs = worker.Jobs(app.state.session_factory, settings, app.state.security.audit_keys)
    await jobs.build_report_basis()
    await jobs.build_report_basis()
    assert await db.fetchval("SELECT count(*) FROM report_basis") == 1
    assert await db.fetchval("SELECT count(*) FROM report_basis_path") == 4


async def test_a_report_waits_for_a_write_under_way_only_until_it_commits(
    client: httpx.AsyncClient, database_url: str
) -> None:
    """A report's knowledge time waits for the writes under way then (app/reports/
    knowledge.py), and sees them finish: PostgreSQL keeps a transaction's first view of
    pg_stat_activity, which the wait must drop at each look."""
    await _three_held(client)
    writer = await asyncpg.connect(database_url)
    try:
        transaction = writer.transaction()
        await transaction.start()
        await writer.fetchval("SELECT txid_current()")  # a write under way

        async def commit_soon() -> None:
            await asyncio.sleep(0.5)
            await transaction.commit()

        started = time.monotonic()
        committing = asyncio.create_task(commit_soon())
        assert (await generate(client, **SEPTEMBER))["figures"]["held"]["total"] == 3
        await committing
        assert time.monotonic() - started < SETTLE_WAIT_LIMIT.total_seconds() / 2
    finally:
        await writer.close()

"""The synthetic data set: deterministic, and valid by the same rules as the API."""

from collections import defaultdict
from datetime import date

import asyncpg
import httpx
import pytest

from app.cases.statuses import TRANSITIONS, SentenceType, Status, Step, check_path
from app.core.dates import PartialDate, Precision
from app.seed.generator import (
    CASE_COLUMNS,
    COLLECTIVE_COLUMNS,
    EVENT_COLUMNS,
    NEXT_STEP_WEIGHTS,
    generate,
)
from app.seed.loader import SeedRefused, load
from tests.factories import API


def test_every_generated_step_is_allowed_by_the_transition_table() -> None:
    for status, weighted in NEXT_STEP_WEIGHTS.items():
        targets = {target for target, _ in weighted if target is not None}
        assert targets <= TRANSITIONS[status], status


def test_the_same_seed_gives_the_same_data_and_another_seed_other_data() -> None:
    first, again, other = generate(200, 3), generate(200, 3), generate(200, 4)
    assert list(first.tables()) == list(again.tables())
    assert first.persons != other.persons


def test_the_population_looks_like_the_real_work() -> None:
    data = generate(4000, 11)
    foreign = [p for p in data.persons if p[4] != ["BY"]]
    assert 0.015 < len(foreign) / len(data.persons) < 0.05
    assert len({c for p in foreign for c in p[4]} - {"BY"}) >= 4
    cases_per_person = defaultdict(int)
    for case in data.cases:
        cases_per_person[case[1]] += 1
    assert set(cases_per_person.values()) <= {1, 2, 3}
    assert len(cases_per_person) == len(data.persons)
    confidences = {event[EVENT_COLUMNS.index("confidence")] for event in data.events}
    assert {"confirmed", "reported", "unconfirmed"} <= confidences
    scripts = defaultdict(set)
    for name in data.names:
        scripts[name[1]].add(name[4])
    assert all(found >= {"Cyrl", "Latn"} for found in scripts.values())
    assert data.collectives
    collective = {name: index for index, name in enumerate(COLLECTIVE_COLUMNS)}
    assert all(c[collective["case_file_count"]] > 0 for c in data.collectives)
    # Pardoned and expelled: a pardon, with the country of the expulsion.
    assert all(
        (c[collective["kind"]], c[collective["to_status"]]) == ("pardon", "pardoned")
        and c[collective["expelled_to"]]
        for c in data.collectives
    )
    # Every kind of history the domain knows.
    cases = {name: index for index, name in enumerate(CASE_COLUMNS)}
    assert {c[cases["sentence_type"]] for c in data.cases} >= set(SentenceType)
    assert any(c[cases["pending_claims"]] for c in data.cases)
    assert any(c[cases["status"]] == "charged" for c in data.cases)
    assert any(not c[cases["in_custody"]] and c[cases["status"]] == "sentenced" for c in data.cases)
    assert any(r[4] is not None for r in data.retractions)
    assert any(r[4] is None for r in data.retractions)
    events = {name: index for index, name in enumerate(EVENT_COLUMNS)}
    assert any('"in_absentia": true' in e[events["details"]] for e in data.events)
    assert {r[3] for r in data.resolutions} == {"confirmed", "rejected"}


@pytest.mark.usefixtures("clean_tables")
async def test_loaded_paths_are_valid_and_derived_statuses_match(
    database_url: str, db: asyncpg.Connection
) -> None:
    summary = await load(database_url, persons=300, seed=5)
    assert summary.startswith("seeded 300 persons")
    # The path, recomputed in SQL: events neither withdrawn nor unsettled or rejected
    # claims, in effective order.
    events = await db.fetch(
        "SELECT e.case_file_id, e.position, e.to_status, e.effective_date,"
        " e.effective_precision FROM status_event e"
        " LEFT JOIN status_event_retraction r ON r.event_id = e.id"
        " LEFT JOIN status_claim_resolution s ON s.event_id = e.id"
        " WHERE r.id IS NULL AND (e.confidence <> 'unconfirmed' OR s.outcome = 'confirmed')"
        " ORDER BY e.effective_date, e.position"
    )
    paths: dict[object, list[Step]] = defaultdict(list)
    for row in events:
        paths[row["case_file_id"]].append(
            Step(
                Status(row["to_status"]),
                PartialDate(row["effective_date"], Precision(row["effective_precision"])),
                row["position"],
            )
        )
    cases = await db.fetch("SELECT id, status, detained_on, in_custody FROM case_file")
    assert len(cases) == len(paths)
    for case in cases:
        path = paths[case["id"]]
        assert check_path(path, date.today()) is None
        assert case["status"] == path[-1].status
        assert case["detained_on"] == path[0].effective.start
        if path[-1].status in (Status.detained, Status.charged):
            assert case["in_custody"] is (path[-1].status is Status.detained)
    collective_counts = await db.fetch(
        "SELECT c.case_file_count, count(DISTINCT e.case_file_id) AS linked"
        " FROM collective_event c"
        " LEFT JOIN status_event e ON e.collective_event_id = c.id GROUP BY c.id"
    )
    assert all(row["case_file_count"] == row["linked"] for row in collective_counts)
    with pytest.raises(SeedRefused):
        await load(database_url, persons=10, seed=5)


async def test_seeded_people_are_found_by_a_transliterated_spelling(
    database_url: str, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await load(database_url, persons=200, seed=8)
    row = await db.fetchrow(
        "SELECT person_id, value FROM person_name WHERE kind = 'legal' AND script = 'Cyrl' LIMIT 1"
    )
    latin = await db.fetchval(
        "SELECT value FROM person_name WHERE person_id = $1 AND "
        "script = 'Latn' ORDER BY position LIMIT 1",
        row["person_id"],
    )
    page = (await client.get(f"{API}/persons", params={"q": latin, "limit": 50})).json()
    assert str(row["person_id"]) in [p["id"] for p in page["items"]]


def test_the_generator_fills_every_column_of_every_table_it_loads() -> None:
    # A migration that adds a column must also teach the generator to fill it.
    from app.core.db import metadata

    for table, columns, _ in generate(1, 1).tables():
        assert list(columns) == [c.name for c in metadata.tables[table].c], table

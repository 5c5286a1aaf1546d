"""The scan of the whole database for persons recorded twice (`habeas persons duplicates`
and GET /person-duplicates): blocked on name words, never comparing all pairs; pairs stated
to be two people and merged persons are left out."""

import csv
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI

from app.access.principal import Role
from app.persons import duplicates
from app.persons.names import skeleton, tokens
from tests.auth import cli_env, run_cli
from tests.conftest import TEST_KEYS_DIR, row_counts
from tests.factories import API, create_case, if_match, person_body
from tests.merges.test_merges import SignIn, merge


async def scan(app: FastAPI, **options: Any) -> Any:
    """What the worker's scheduled job does (app/jobs/worker.py)."""
    async with app.state.session_factory() as session:
        found = await duplicates.scan(session, **options)
        await session.commit()
    return found


async def a_second_record_made_by_someone_not_cleared_for_the_first(
    client: httpx.AsyncClient, sign_in_as: SignIn
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A is recorded with a high-confidentiality case file that a caseworker does not work
    on: the caseworker's intake check cannot see A, so their record of the same man (B,
    in Latin letters) is made."""
    first = person_body(
        names=[{"value": "Міхась Лабановіч", "script": "Cyrl", "language": "be", "kind": "legal"}],
        birth_date="1979-03-14",
    )
    a = (await client.post(f"{API}/persons", json=first)).json()
    await create_case(client, a["id"], confidentiality="high")
    caseworker = (await sign_in_as(Role.caseworker)).client
    second = person_body(
        names=[{"value": "Mikhas Labanovich", "script": "Latn", "kind": "transliteration"}],
        birth_date="1979",
    )
    made = await caseworker.post(f"{API}/persons", json=second)
    assert made.status_code == 201, made.text
    return a, made.json()


async def test_the_scan_finds_a_person_recorded_twice_for_coordinators(
    app: FastAPI, client: httpx.AsyncClient, sign_in_as: SignIn, db: asyncpg.Connection
) -> None:
    before_scan = (await client.get(f"{API}/person-duplicates")).json()
    assert before_scan == {"scan": None, "items": [], "next": None}
    a, b = await a_second_record_made_by_someone_not_cleared_for_the_first(client, sign_in_as)
    other = await client.post(
        f"{API}/persons",
        json=person_body(
            names=[{"value": "Алесь Шастак", "script": "Cyrl", "kind": "legal"}], birth_date="1990"
        ),
    )
    assert other.status_code == 201, other.text

    found = await scan(app)
    assert found.persons == 3 and found.candidates == 1
    listed = await client.get(f"{API}/person-duplicates")
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["scan"]["persons"] == 3
    assert body["scan"]["candidates"] == 1
    (pair,) = body["items"]
    assert {pair["person"]["id"], pair["other_person"]["id"]} == {a["id"], b["id"]}
    assert pair["likely_duplicate"] is True
    assert pair["score"] >= 0.85 and pair["scanned_score"] >= 0.85
    reasons = {reason["kind"]: reason["verdict"] for reason in pair["reasons"]}
    assert reasons["name"] == "same_spelling"
    assert reasons["birth_date"] == "agrees"

    # Only coordinators, who merge, list pairs.
    for role in (Role.caseworker, Role.analyst, Role.auditor):
        other_caller = (await sign_in_as(role)).client
        assert (await other_caller.get(f"{API}/person-duplicates")).status_code == 403

    # Merged, the pair is listed no more.
    a = (await client.get(f"{API}/persons/{a['id']}")).json()
    b = (await client.get(f"{API}/persons/{b['id']}")).json()
    # A's full birth date is kept over B's year.
    merged = await merge(client, a, b, resolutions={"birth_date": "kept"})
    assert merged.status_code == 201, merged.text
    assert (await client.get(f"{API}/person-duplicates")).json()["items"] == []


async def test_pairs_stated_to_be_two_people_are_not_compared(
    app: FastAPI, client: httpx.AsyncClient, sign_in_as: SignIn
) -> None:
    a, b = await a_second_record_made_by_someone_not_cleared_for_the_first(client, sign_in_as)
    assert (await scan(app)).candidates == 1
    # The coordinator reads both and states they are two people.
    b = (await client.get(f"{API}/persons/{b['id']}")).json()
    stated = await client.patch(
        f"{API}/persons/{b['id']}",
        json={"confirmed_distinct_from": [a["id"]]},
        headers=if_match(b["version"]),
    )
    assert stated.status_code == 200, stated.text
    # The stored pair is left out at once; the next scan does not compare it.
    assert (await client.get(f"{API}/person-duplicates")).json()["items"] == []
    again = await scan(app)
    assert again.pairs_compared == 0 and again.candidates == 0


async def test_namesakes_in_a_block_too_large_are_compared_by_birth_year(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """A common name: more namesakes than BLOCK_LIMIT (recorded by an import before the
    check existed), two of them one man recorded twice."""
    namesakes = duplicates.BLOCK_LIMIT + 20
    rows = [("Іван Іваноў", date(1900 + i, 1, 1)) for i in range(namesakes)]
    rows.append(("Ivan Ivanou", date(1900, 1, 1)))  # the first one, again
    ids = await _import(db, rows)
    found = await scan(app)
    assert found.persons == namesakes + 1
    # Not every pair of 121 namesakes (7,260) was compared: those born in one year were.
    assert 0 < found.pairs_compared < namesakes
    pairs = await db.fetch("SELECT person_id, other_person_id FROM person_duplicate_candidate")
    assert {frozenset(pair) for pair in pairs} == {frozenset((ids[0], ids[-1]))}


async def test_namesakes_born_years_apart_are_compared_only_when_they_could_reach(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """Names alike in every word, born ten years apart: the birth years' conflict keeps
    the pair below the usual threshold whatever the names, so the pair is left out before
    names are compared; a scan at a threshold the pair could reach compares and lists it.
    A namesake with no birth year is always compared."""
    older, younger = await _import(
        db, [("Алесь Шастак", date(1970, 1, 1)), ("Ales Shastak", date(1980, 1, 1))]
    )
    usual = await scan(app)
    assert usual.persons == 2 and usual.pairs_compared == 0 and usual.candidates == 0
    low = await scan(app, threshold=0.6)
    assert low.pairs_compared == 1 and low.candidates == 1
    score = await db.fetchval("SELECT score FROM person_duplicate_candidate")
    assert 0.6 <= score < 0.85
    (undated,) = await _import(db, [("Алесь Шастак", None)])
    again = await scan(app)
    assert again.pairs_compared == 2
    pairs = await db.fetch("SELECT person_id, other_person_id FROM person_duplicate_candidate")
    assert {frozenset(pair) for pair in pairs} == {
        frozenset((older, undated)),
        frozenset((younger, undated)),
    }


async def test_the_command_scans_and_writes_the_pairs_without_names(
    client: httpx.AsyncClient,
    sign_in_as: SignIn,
    db: asyncpg.Connection,
    database_url: str,
    tmp_path: Path,
) -> None:
    a, b = await a_second_record_made_by_someone_not_cleared_for_the_first(client, sign_in_as)
    env = cli_env(DATABASE_URL=database_url, HABEAS_DATA_DIR=str(TEST_KEYS_DIR))
    out = tmp_path / "pairs.csv"
    done = await run_cli(["persons", "duplicates", "--out", str(out)], env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert '"candidates": 1' in done.stdout
    # Readable by its owner only, and whole: no partial file is left beside it.
    assert out.stat().st_mode & 0o777 == 0o600
    assert not out.with_name(".pairs.csv.partial").exists()
    written = out.read_text(encoding="utf-8")
    assert "Labanovich" not in written and "Лабановіч" not in written
    (row,) = list(csv.DictReader(written.splitlines()))
    assert {row["person_id"], row["other_person_id"]} == {a["id"], b["id"]}
    assert float(row["score"]) >= 0.85
    assert "name:same_spelling" in row["reasons"]
    assert await db.fetchval("SELECT count(*) FROM person_duplicate_candidate") == 1
    assert (
        await db.fetchval("SELECT count(*) FROM audit_event WHERE action = 'person.duplicate_scan'")
        == 1
    )
    before = await row_counts(db)
    refused = await run_cli(["persons", "duplicates", "--threshold", "2"], env, tmp_path)
    assert refused.returncode == 2
    assert await row_counts(db) == before


def test_blocks_are_two_words_in_each_reading() -> None:
    latin = duplicates.block_keys(["Mikhas Labanovich"])
    assert latin
    # The Cyrillic and the Latin spelling share a block; a surname alone makes none, and
    # another surname shares none.
    assert duplicates.block_keys(["Міхась Лабановіч"]) & latin
    assert duplicates.block_keys(["Лабановіч"]) == set()
    assert not duplicates.block_keys(["Міхась Шастак"]) & latin


async def _import(db: asyncpg.Connection, rows: list[tuple[str, date | None]]) -> list[uuid.UUID]:
    """Persons recorded as an import does (the seed loader), before the check existed."""
    ids = []
    for name, birth in rows:
        person_id = uuid.uuid4()
        ids.append(person_id)
        await db.execute(
            "INSERT INTO person (id, birth_date, birth_date_precision, gender, publish_consent,"
            " recognition_status, version, created_at, updated_at) "
            "VALUES ($1, $2, CASE WHEN $2::date IS NULL THEN NULL ELSE 'year' END, 'male',"
            " true, 'not_assessed', 1, now(), now())",
            person_id,
            birth,
        )
        await db.execute(
            "INSERT INTO person_name (id, person_id, position, value, script, kind, is_public,"
            " search_key, search_tokens) VALUES ($1, $2, 0, $3, 'Cyrl', 'legal', true, $4, $5)",
            uuid.uuid4(),
            person_id,
            name,
            skeleton(name),
            tokens(name),
        )
    return ids


async def test_the_nightly_scan_is_in_the_trail_and_runs_one_at_a_time(
    app: FastAPI, client: httpx.AsyncClient, sign_in_as: SignIn, db: asyncpg.Connection
) -> None:
    from app.jobs.worker import Jobs
    from app.persons.repository import SCAN_LOCK

    await a_second_record_made_by_someone_not_cleared_for_the_first(client, sign_in_as)
    jobs = Jobs(app.state.session_factory, app.state.settings, app.state.security.audit_keys)
    # A scan under way (the command run by hand): the job leaves it be.
    await db.execute("SELECT pg_advisory_lock($1)", SCAN_LOCK)
    try:
        await jobs.scan_for_duplicates()
        assert await db.fetchval("SELECT count(*) FROM person_duplicate_scan") == 0
    finally:
        await db.execute("SELECT pg_advisory_unlock($1)", SCAN_LOCK)
    await jobs.scan_for_duplicates()
    assert await db.fetchval("SELECT candidates FROM person_duplicate_scan") == 1
    detail = await db.fetchval(
        "SELECT detail FROM audit_event WHERE action = 'person.duplicate_scan'"
    )
    assert '"candidates": 1' in detail

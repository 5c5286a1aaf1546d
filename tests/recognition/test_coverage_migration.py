"""Migration 0011 carries existing decisions over: each covers the case files its person had
when it was recorded, and each case file takes the status of the latest decision covering
it. A database in the old shape is migrated, checked, taken down and up again."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import asyncpg
import pytest
from alembic.script import ScriptDirectory

from app.core import embedded
from app.core.migrations import alembic_config, downgrade, upgrade

REVISION = "0011"


def _before() -> str:
    """The revision this one follows, whatever the chain it was merged into."""
    script = ScriptDirectory.from_config(alembic_config("postgresql://unused"))
    previous = script.get_revision(REVISION).down_revision
    assert isinstance(previous, str)
    return previous


@pytest.fixture
async def scratch(admin_url: str) -> AsyncIterator[str]:
    name = "habeas_test_recognition_coverage"
    await embedded.drop_database(admin_url, name)
    await embedded.ensure_database(admin_url, name)
    yield embedded.with_database(admin_url, name)
    await embedded.drop_database(admin_url, name)


def _at(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, 12, tzinfo=UTC)


async def _person(db: asyncpg.Connection, status: str) -> uuid.UUID:
    person_id = uuid.uuid4()
    await db.execute(
        "INSERT INTO person (id, gender, publish_consent, recognition_status, version,"
        " created_at, updated_at) VALUES ($1, 'unknown', true, $2, 1, $3, $3)",
        person_id,
        status,
        _at(2020, 1, 1),
    )
    return person_id


async def _case(db: asyncpg.Connection, person_id: uuid.UUID, created: datetime) -> uuid.UUID:
    case_id = uuid.uuid4()
    await db.execute(
        "INSERT INTO case_file (id, person_id, reference, jurisdiction, deprivation_type,"
        " confidentiality, status, status_since, status_since_precision, status_confidence,"
        " detained_on, detained_precision, in_custody, version, created_at, updated_at)"
        " VALUES ($1, $2, $3, 'BY', 'pretrial_custody', 'normal', 'detained', $4, 'day',"
        " 'confirmed', $4, 'day', true, 1, $5, $5)",
        case_id,
        person_id,
        f"HB-T-{case_id.hex[:8]}",
        created.date(),
        created,
    )
    return case_id


async def _decision(
    db: asyncpg.Connection, person_id: uuid.UUID, version: int, status: str, recorded: datetime
) -> uuid.UUID:
    decision_id = uuid.uuid4()
    await db.execute(
        "INSERT INTO recognition_decision (id, person_id, version, status, decided_on,"
        " recorded_at) VALUES ($1, $2, $3, $4, $5, $6)",
        decision_id,
        person_id,
        version,
        status,
        date(recorded.year, recorded.month, recorded.day),
        recorded,
    )
    return decision_id


async def test_existing_decisions_cover_the_case_files_that_existed_then(scratch: str) -> None:
    await asyncio.to_thread(upgrade, scratch, _before())
    db = await asyncpg.connect(**embedded.asyncpg_connect_kwargs(scratch))
    try:
        # Recognised in 2020 for case file A; the recognition withdrawn in 2022; arrested
        # again in 2024 (B), with no decision since.
        rearrested = await _person(db, "withdrawn")
        first = await _case(db, rearrested, _at(2020, 8, 11))
        recognised = await _decision(db, rearrested, 1, "political_prisoner", _at(2020, 10, 1))
        withdrawn = await _decision(db, rearrested, 2, "withdrawn", _at(2022, 1, 10))
        second = await _case(db, rearrested, _at(2024, 3, 2))
        # Recognised; the same day's case file counts (it existed when the decision was).
        held = await _person(db, "political_prisoner")
        held_case = await _case(db, held, _at(2021, 5, 5))
        held_decision = await _decision(db, held, 1, "political_prisoner", _at(2021, 5, 5))
        # Never assessed.
        unassessed_case = await _case(db, await _person(db, "not_assessed"), _at(2023, 1, 1))

        await asyncio.to_thread(upgrade, scratch, REVISION)

        coverage = {
            (row["decision_id"], row["case_file_id"])
            for row in await db.fetch("SELECT decision_id, case_file_id FROM recognition_coverage")
        }
        assert coverage == {
            (recognised, first),
            (withdrawn, first),
            (held_decision, held_case),
        }
        statuses = {
            row["id"]: row["recognition_status"]
            for row in await db.fetch("SELECT id, recognition_status FROM case_file")
        }
        assert statuses == {
            first: "withdrawn",
            second: "not_assessed",
            held_case: "political_prisoner",
            unassessed_case: "not_assessed",
        }
        # No exclusion code is invented for an old withdrawal; versions are left alone.
        assert await db.fetchval("SELECT count(*) FROM recognition_decision") == 3
        assert (
            await db.fetchval(
                "SELECT exclusion_code FROM recognition_decision WHERE id = $1", withdrawn
            )
            is None
        )
        assert await db.fetchval("SELECT max(version) FROM case_file") == 1

        # Down and up again: the coverage is derived afresh from the same decisions.
        await asyncio.to_thread(downgrade, scratch, _before())
        assert await db.fetchval("SELECT to_regclass('recognition_coverage')") is None
        assert await db.fetchval("SELECT count(*) FROM recognition_decision") == 3
        await asyncio.to_thread(upgrade, scratch, REVISION)
        assert await db.fetchval("SELECT count(*) FROM recognition_coverage") == 3
    finally:
        await db.close()

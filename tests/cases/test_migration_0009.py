"""Migration 0009 carries case files recorded in the old shape over: sentences move onto
their `sentenced` events, unconfirmed events become claims (unless a status rested on
them alone), and every derived column is recomputed from the path in effective order."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import date

import asyncpg
import pytest

from app.core import embedded
from app.core.migrations import upgrade


@pytest.fixture
async def at_0008(admin_url: str) -> AsyncIterator[str]:
    name = "habeas_test_migration_0009"
    await embedded.drop_database(admin_url, name)
    await embedded.ensure_database(admin_url, name)
    url = embedded.with_database(admin_url, name)
    await asyncio.to_thread(upgrade, url, "0008")
    yield url
    await embedded.drop_database(admin_url, name)


async def _old_case(
    connection: asyncpg.Connection,
    reference: str,
    status: str,
    events: list[tuple[str, str, str, dict[str, object]]],
    court_decisions: list[dict[str, object]],
) -> uuid.UUID:
    person_id, case_id = uuid.uuid4(), uuid.uuid4()
    await connection.execute(
        "INSERT INTO person (id, gender, publish_consent, recognition_status, version,"
        " created_at, updated_at) VALUES ($1, 'female', true, 'not_assessed', 1, now(), now())",
        person_id,
    )
    await connection.execute(
        "INSERT INTO case_file (id, person_id, reference, jurisdiction, deprivation_type,"
        " confidentiality, court_decisions, status, status_since, status_since_precision,"
        " detained_on, version, created_at, updated_at) VALUES ($1, $2, $3, 'BY',"
        " 'pretrial_custody', 'normal', $4::jsonb, $5, $6::date, 'day', $7::date, 1, now(),"
        " now())",
        case_id,
        person_id,
        reference,
        json.dumps(court_decisions),
        status,
        date.fromisoformat(events[-1][1]),
        date.fromisoformat(events[0][1]),
    )
    for position, (to_status, day, confidence, details) in enumerate(events):
        await connection.execute(
            "INSERT INTO status_event (id, case_file_id, position, to_status, effective_date,"
            " effective_precision, recorded_at, confidence, details) VALUES ($1, $2, $3, $4,"
            " $5::date, 'day', now(), $6, $7::jsonb)",
            uuid.uuid4(),
            case_id,
            position,
            to_status,
            date.fromisoformat(day),
            confidence,
            json.dumps(details),
        )
    return case_id


async def test_old_case_files_are_carried_over(at_0008: str) -> None:
    connection = await asyncpg.connect(**embedded.asyncpg_connect_kwargs(at_0008))
    try:
        sentenced = await _old_case(
            connection,
            "HB-2021-000001",
            # In the old model the unconfirmed release had moved the status.
            "released",
            [
                ("detained", "2021-01-10", "confirmed", {}),
                ("sentenced", "2021-06-01", "confirmed", {"term_months": 36}),
                ("released", "2022-01-01", "unconfirmed", {"release_reason": "other"}),
            ],
            [
                {"court": "Regional court", "decided_on": "2021-06-01", "term_months": 36},
                {"court": "Appeal court", "decided_on": "2021-09-01", "term_months": 30},
            ],
        )
        only_claims = await _old_case(
            connection,
            "HB-2021-000002",
            "detained",
            [("detained", "2021-02-01", "unconfirmed", {})],
            [],
        )
        fined = await _old_case(
            connection,
            "HB-2021-000003",
            "sentenced",
            [
                ("detained", "2021-03-01", "confirmed", {}),
                ("sentenced", "2021-04-01", "reported", {}),
            ],
            # Known to the month: it matches the sentence of a day in that month.
            [{"court": "District court", "decided_on": "2021-04", "fine_amount": "500"}],
        )
        await asyncio.to_thread(upgrade, at_0008)

        row = await connection.fetchrow("SELECT * FROM case_file WHERE id = $1", sentenced)
        assert (row["status"], row["in_custody"], row["pending_claims"]) == ("sentenced", True, 1)
        assert (row["sentence_type"], row["status_confidence"]) == ("imprisonment", "confirmed")
        decisions = json.loads(row["court_decisions"])
        assert [(d["court"], d["term_months"]) for d in decisions] == [("Regional court", 36)]
        # The appeal matched no sentenced event: kept, not lost.
        assert json.loads(row["court_decisions_unmatched"]) == [
            {"court": "Appeal court", "decided_on": "2021-09-01", "term_months": 30}
        ]
        details = await connection.fetchval(
            "SELECT details FROM status_event WHERE case_file_id = $1 AND to_status = 'sentenced'",
            sentenced,
        )
        details = json.loads(details)
        assert {k: v for k, v in details.items() if k != "carried_over"} == {
            "term_months": 36,
            "court": "Regional court",
            "sentence_type": "imprisonment",
        }
        # What the migration added is said, not passed off as recorded.
        assert "court copied" in details["carried_over"]
        assert "sentence_type inferred" in details["carried_over"]

        row = await connection.fetchrow("SELECT * FROM case_file WHERE id = $1", only_claims)
        assert (row["status"], row["status_confidence"], row["pending_claims"]) == (
            "detained",
            "unconfirmed",
            0,
        )
        reason = await connection.fetchval(
            "SELECT reason FROM status_claim_resolution WHERE case_file_id = $1", only_claims
        )
        assert "migration 0009" in reason

        row = await connection.fetchrow("SELECT * FROM case_file WHERE id = $1", fined)
        assert (row["sentence_type"], row["in_custody"], row["status_confidence"]) == (
            "fine",
            False,
            "reported",
        )
    finally:
        await connection.close()

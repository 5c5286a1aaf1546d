"""Entries are never changed: a retraction and an end are records of their own, every
change is in the audit trail, and the timeline can be read as it was known."""

import uuid
from datetime import UTC, datetime

import asyncpg
import httpx

from tests.audit.trail import change_of, created, events_after, head_seq
from tests.custody.custody import create_facility, entry, record, timeline, timeline_path, transfer
from tests.factories import create_case


async def test_a_retraction_keeps_the_entry_and_says_why(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    case = await create_case(client)
    strike = await record(client, case, "hunger_strike", "2023-03-01", note="day 1")
    stored = await db.fetchrow("SELECT * FROM custody_event WHERE id = $1", uuid.UUID(strike["id"]))
    response = await client.post(
        f"{timeline_path(case)}/{strike['id']}/retraction",
        json={"reason": "the family denies it"},
    )
    assert response.status_code == 201, response.text
    retracted = response.json()
    assert retracted["retraction"]["reason"] == "the family denies it"
    assert retracted["note"] == "day 1" and retracted["effective_date"] == "2023-03-01"
    # The entry's row is as it was; the retraction is a row of its own.
    assert await db.fetchrow("SELECT * FROM custody_event WHERE id = $1", stored["id"]) == stored
    assert await db.fetchval("SELECT count(*) FROM custody_event_retraction") == 1
    again = await client.post(
        f"{timeline_path(case)}/{strike['id']}/retraction", json={"reason": "twice"}
    )
    assert again.status_code == 409, again.text
    (shown,) = (await timeline(client, case))["entries"]
    assert shown["retraction"]["reason"] == "the family denies it"


async def test_the_timeline_as_it_was_known(client: httpx.AsyncClient) -> None:
    remand = await create_facility(client, 1, type="pretrial_detention_centre")
    colony = await create_facility(client, 17)
    case = await create_case(client)
    before_anything = datetime.now(UTC).isoformat()
    await transfer(client, case, remand, "2021-08-12")
    period = await record(client, case, "incommunicado", "2022-01")
    known_then = datetime.now(UTC).isoformat()
    moved = await transfer(client, case, colony, "2022-04-02")
    await client.post(
        f"{timeline_path(case)}/{period['id']}/end",
        json={"effective_date": "2022-05", "confidence": "confirmed"},
    )
    await client.post(
        f"{timeline_path(case)}/{moved['id']}/retraction", json={"reason": "wrong colony"}
    )
    then = await timeline(client, case, known_at=known_then)
    assert [e["kind"] for e in then["entries"]] == ["transfer", "incommunicado"]
    assert then["entries"][1]["end"] is None
    assert (then["current_facility_id"], then["incommunicado"]) == (remand, True)
    now = await timeline(client, case)
    assert len(now["entries"]) == 3
    assert now["entries"][2]["retraction"]["reason"] == "wrong colony"
    assert (now["current_facility_id"], now["incommunicado"]) == (remand, False)
    empty = await timeline(client, case, known_at=before_anything)
    assert empty["entries"] == [] and empty["current_facility_id"] is None


async def test_every_change_is_in_the_audit_trail(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    facility = await create_facility(client, 17)
    case = await create_case(client)
    seq = await head_seq(db)
    moved = await transfer(client, case, facility, "2022-04-02", note="by prison van")
    period = await record(client, case, "punishment_cell", "2022-05-01", details={"days": 10})
    await client.post(
        f"{timeline_path(case)}/{period['id']}/end",
        json={"effective_date": "2022-05-11", "confidence": "confirmed"},
    )
    await client.post(
        f"{timeline_path(case)}/{moved['id']}/retraction", json={"reason": "other person"}
    )
    recorded = await events_after(db, seq)
    assert [(e["action"], e["resource_type"], e["resource_id"]) for e in recorded] == [
        ("custody.record", "case", uuid.UUID(case["id"])),
        ("custody.record", "case", uuid.UUID(case["id"])),
        ("custody.close", "case", uuid.UUID(case["id"])),
        ("custody.retract", "case", uuid.UUID(case["id"])),
    ]
    made = created(change_of(recorded[0], "custody_event", moved["id"]))
    assert (made["kind"], made["facility_id"], made["note"]) == (
        "transfer",
        facility,
        "by prison van",
    )
    closed = change_of(recorded[2], "custody_event", period["id"])
    assert closed["end"]["before"] is None
    assert closed["end"]["after"]["effective_date"] == "2022-05-11"
    withdrawn = change_of(recorded[3], "custody_event", moved["id"])
    assert withdrawn["retraction"]["after"]["reason"] == "other person"
    # Reading restricted entries is recorded too.
    seq = await head_seq(db)
    await timeline(client, case)
    (read,) = await events_after(db, seq)
    assert (read["action"], read["resource_id"]) == ("case.read_custody", uuid.UUID(case["id"]))


async def test_an_idempotency_key_records_an_entry_once(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    case = await create_case(client)
    body = entry("incommunicado", "2023-01")
    headers = {"Idempotency-Key": "incommunicado-2023-01"}
    first = await client.post(timeline_path(case), json=body, headers=headers)
    again = await client.post(timeline_path(case), json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert await db.fetchval("SELECT count(*) FROM custody_event") == 1
    other = await client.post(
        timeline_path(case), json=entry("incommunicado", "2023-02"), headers=headers
    )
    assert other.status_code == 422

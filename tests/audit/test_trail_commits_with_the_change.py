"""A request that fails after its write leaves neither the change nor its audit event,
and a change whose event cannot be appended is not committed.
"""

import uuid
from typing import Any

import asyncpg
import httpx

from tests.audit.trail import (
    events_after,
    head_seq,
    only_event_after,
)
from tests.factories import (
    API,
    amnesty,
    create_case,
    event,
    if_match,
)

FAILING_TRIGGER = "audit_trail_test_fails_at_commit"


async def test_a_request_that_fails_after_its_write_leaves_no_change_and_no_event(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """The change and its event commit together or not at all: a transition refused by the
    database only at COMMIT (a deferred constraint trigger) leaves the case file, its
    status events, the trail and the chain's head as they were; the next write gets the
    next sequence number, linked to the same head."""
    case = await create_case(client)
    case_id = uuid.UUID(case["id"])

    async def case_state() -> tuple[Any, ...]:
        row = await db.fetchrow("SELECT status, version FROM case_file WHERE id = $1", case_id)
        events = await db.fetchval(
            "SELECT count(*) FROM status_event WHERE case_file_id = $1", case_id
        )
        return (row["status"], row["version"], events)

    state = await case_state()
    head = await db.fetchrow("SELECT seq, hash FROM audit_head")
    count = await db.fetchval("SELECT count(*) FROM audit_event")
    await db.execute(
        f"""
        CREATE FUNCTION {FAILING_TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'refused at commit (test)'; END $$;
        CREATE CONSTRAINT TRIGGER {FAILING_TRIGGER} AFTER UPDATE ON case_file
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {FAILING_TRIGGER}();
        """
    )
    try:
        response = await client.post(
            f"{API}/cases/{case_id}/status-events",
            json=event("sentenced", "2022-01-15"),
            headers=if_match(1),
        )
        assert response.status_code >= 500, response.text
    finally:
        await db.execute(
            f"DROP TRIGGER IF EXISTS {FAILING_TRIGGER} ON case_file;"
            f"DROP FUNCTION IF EXISTS {FAILING_TRIGGER}();"
        )
    assert await case_state() == state
    assert await db.fetchval("SELECT count(*) FROM audit_event") == count
    assert await db.fetchrow("SELECT seq, hash FROM audit_head") == head

    retried = await client.post(
        f"{API}/cases/{case_id}/status-events",
        json=event("sentenced", "2022-01-15"),
        headers=if_match(1),
    )
    assert retried.status_code == 201, retried.text
    appended = await only_event_after(db, head["seq"])
    assert appended["seq"] == head["seq"] + 1
    assert appended["prev_hash"] == head["hash"]
    assert appended["action"] == "case.transition"


async def test_a_write_whose_event_cannot_be_appended_is_not_committed(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """The other direction: when the trail refuses the event (here a trigger on
    audit_event), the change it describes is not committed either."""
    case = await create_case(client)
    case_id = uuid.UUID(case["id"])
    head = await db.fetchrow("SELECT seq, hash FROM audit_head")
    await db.execute(
        f"""
        CREATE FUNCTION {FAILING_TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'the trail refuses this event (test)'; END $$;
        CREATE TRIGGER {FAILING_TRIGGER} BEFORE INSERT ON audit_event
            FOR EACH ROW WHEN (NEW.action = 'case.transition')
            EXECUTE FUNCTION {FAILING_TRIGGER}();
        """
    )
    try:
        response = await client.post(
            f"{API}/cases/{case_id}/status-events",
            json=event("sentenced", "2022-01-15"),
            headers=if_match(1),
        )
        assert response.status_code >= 500, response.text
    finally:
        await db.execute(
            f"DROP TRIGGER IF EXISTS {FAILING_TRIGGER} ON audit_event;"
            f"DROP FUNCTION IF EXISTS {FAILING_TRIGGER}();"
        )
    stored = await db.fetchrow("SELECT status, version FROM case_file WHERE id = $1", case_id)
    assert (stored["status"], stored["version"]) == ("detained", 1)
    assert await db.fetchval("SELECT count(*) FROM status_event") == 1
    assert await db.fetchrow("SELECT seq, hash FROM audit_head") == head


async def test_a_refusal_after_a_write_leaves_no_change_and_no_event(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """A collective event writes its own row first, then finds a case file that cannot
    transition: the whole request is refused (409) and neither the collective event, nor
    any status event, nor an audit event remains."""
    ready = await create_case(client)
    released = await create_case(
        client, history=[event("detained", "2021-08-10"), event("released", "2022-01-10")]
    )
    before = await head_seq(db)
    counts = [
        await db.fetchval(f"SELECT count(*) FROM {table}")
        for table in ("collective_event", "status_event")
    ]
    response = await client.post(
        f"{API}/collective-events",
        json=amnesty([ready["id"], released["id"]]),
    )
    assert response.status_code == 409, response.text
    assert [
        await db.fetchval(f"SELECT count(*) FROM {table}")
        for table in ("collective_event", "status_event")
    ] == counts
    assert await db.fetchval("SELECT max(version) FROM case_file") == 1
    assert await events_after(db, before) == []

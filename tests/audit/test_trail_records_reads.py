"""Reads of restricted data by a caseworker are logged; reads of public data are not, and
a read that ends in a write is covered by the write's one event.
"""

import uuid

import asyncpg
import httpx
from fastapi import FastAPI

from app.access.principal import Role, Tier
from app.audit.journal import Actor, Journal, Origin, attach, change
from app.core.db import commit
from tests.audit.trail import (
    events_after,
    head_seq,
    only_event_after,
)
from tests.auth import (
    SignInAs,
    api_client,
    create_partner,
    partner_token,
)
from tests.factories import (
    API,
    amnesty,
    create_case,
    event,
    if_match,
)


async def test_reads_of_restricted_data_by_a_caseworker_are_logged(
    sign_in_as: SignInAs, db: asyncpg.Connection
) -> None:
    """Each read that shows more than the public tier is one event: the record read, or
    for a page, the records on it."""
    coordinator = (await sign_in_as(Role.coordinator)).client
    caseworker = await sign_in_as(Role.caseworker)
    mine = await create_case(coordinator, assigned_caseworkers=[str(caseworker.account.id)])
    other = await create_case(coordinator)
    source = await coordinator.post(
        f"{API}/sources",
        json={
            "publisher": "Monitor",
            "title": "Report",
            "reliability": "B",
            "credibility": 2,
            "is_public": False,
        },
    )
    assert source.status_code == 201, source.text
    cases = {uuid.UUID(mine["id"]), uuid.UUID(other["id"])}
    persons = {uuid.UUID(mine["person_id"]), uuid.UUID(other["person_id"])}
    reads: list[tuple[str, str, set[uuid.UUID]]] = [
        (f"/cases/{mine['id']}", "case.read", {uuid.UUID(mine["id"])}),
        (f"/cases/{other['id']}", "case.read", {uuid.UUID(other["id"])}),
        (
            f"/cases/{other['id']}/status-events",
            "case.read_status_events",
            {uuid.UUID(other["id"])},
        ),
        (f"/persons/{other['person_id']}", "person.read", {uuid.UUID(other["person_id"])}),
        (
            f"/persons/{other['person_id']}/recognition",
            "recognition.read",
            {uuid.UUID(other["person_id"])},
        ),
        ("/cases", "case.list", cases),
        ("/persons", "person.list", persons),
        (f"/sources/{source.json()['id']}", "source.read", {uuid.UUID(source.json()["id"])}),
    ]
    for path, action, records in reads:
        before = await head_seq(db)
        response = await caseworker.client.get(f"{API}{path}")
        assert response.status_code == 200, (path, response.text)
        read = await only_event_after(db, before)
        assert (read["action"], read["outcome"]) == (action, "success"), path
        assert read["actor_id"] == caseworker.account.id
        assert read["request_id"] == response.headers["x-request-id"]
        assert read["changes"] is None
        shown = {read["resource_id"], *read["related"]} - {None}
        assert shown == records, path


async def test_reads_of_public_data_are_not_logged(
    app: FastAPI, sign_in_as: SignInAs, db: asyncpg.Connection
) -> None:
    """A partner whose agreement stops at the public tier reads shared records without a
    trace; the same reads by a partner cleared for the restricted tier are logged (so the
    first half is not silent by accident). Collective events are public for staff."""
    coordinator = (await sign_in_as(Role.coordinator)).client
    caseworker = await sign_in_as(Role.caseworker)
    case = await create_case(coordinator)
    collective = await coordinator.post(
        f"{API}/collective-events",
        json=amnesty([case["id"]]),
    )
    assert collective.status_code == 201, collective.text
    paths = [
        f"/cases/{case['id']}",
        f"/cases/{case['id']}/status-events",
        f"/persons/{case['person_id']}",
        f"/persons/{case['person_id']}/recognition",
        "/cases",
        "/persons",
    ]
    logged: dict[str, list[str]] = {}
    for max_tier in ("public", "restricted"):
        partner, secret = await create_partner(
            app,
            scopes=["sync:read"],
            agreement={"jurisdiction": "BY", "recognised_only": False, "max_tier": max_tier},
        )
        async with api_client(app) as reader:
            token = await partner_token(reader, partner.client_id, str(secret))
            reader.headers["Authorization"] = f"Bearer {token}"
            before = await head_seq(db)
            for path in paths:
                response = await reader.get(f"{API}{path}")
                assert response.status_code == 200, (path, response.text)
                if path == "/cases":
                    assert [item["id"] for item in response.json()["items"]] == [case["id"]]
            logged[max_tier] = [e["action"] for e in await events_after(db, before)]
    assert logged["public"] == []
    assert len(logged["restricted"]) == len(paths)

    before = await head_seq(db)
    for path in ("/collective-events", f"/collective-events/{collective.json()['id']}"):
        response = await caseworker.client.get(f"{API}{path}")
        assert response.status_code == 200, response.text
    assert await events_after(db, before) == []


async def test_a_read_that_ends_in_a_write_is_covered_by_the_write(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """A unit of work appends at most one event: reads before and after a write (what the
    write answers with) are covered by the write's event, whose action and record are the
    write's. Through the app's own session, key ring and chain."""
    case = await create_case(client)
    case_id, person_id = uuid.UUID(case["id"]), uuid.UUID(case["person_id"])
    other_id = uuid.UUID((await create_case(client))["id"])
    coordinator_id: uuid.UUID = await db.fetchval("SELECT id FROM app_user")
    before = await head_seq(db)
    async with app.state.session_factory() as session:
        journal = attach(
            session,
            Journal(
                app.state.security.audit_keys,
                Origin(request_id="unit-of-work-1"),
                Actor("user", coordinator_id, "coordinator"),
            ),
        )
        journal.viewed("person.read", "person", [person_id], clearance=Tier.confidential)
        journal.changed(
            "case.update",
            "case",
            case_id,
            changes=[change("case", case_id, before={"version": 1}, after={"version": 2})],
        )
        journal.viewed("case.list", "case", [case_id, other_id], clearance=Tier.confidential)
        await commit(session)
    event_row = await only_event_after(db, before)
    assert (event_row["action"], event_row["resource_id"]) == ("case.update", case_id)
    assert event_row["related"] == []
    assert event_row["changes"] == [
        {"type": "case", "id": str(case_id), "fields": {"version": {"before": 1, "after": 2}}}
    ]
    # And through the API: a transition answers with the new state, and is one event.
    before = await head_seq(db)
    response = await client.post(
        f"{API}/cases/{case_id}/status-events",
        json=event("sentenced", "2022-01-15"),
        headers=if_match(1),
    )
    assert response.status_code == 201, response.text
    assert (await only_event_after(db, before))["action"] == "case.transition"

"""Refusals of access (401, 403, a hidden record's 404) are recorded as denials; other
refusals (412, 422, 428) record nothing; a missing record is recorded as not found.
"""

import json
import secrets
import uuid
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI

from app.access.principal import Role
from tests.audit.trail import (
    assert_no_plain,
    events_after,
    head_seq,
    only_event_after,
)
from tests.auth import (
    SignInAs,
    create_account,
)
from tests.factories import (
    API,
    create_case,
    create_person,
    event,
    if_match,
)


async def test_a_request_without_a_valid_token_is_recorded_as_denied(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """A 401 on a protected route (no token, a garbage token) is one denial by an
    anonymous actor, naming the route's action and the record in its path."""
    person = await create_person(client)
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        before = await head_seq(db)
        response = await anonymous.patch(
            f"{API}/persons/{person['id']}",
            json={"notes": "x"},
            headers={**headers, **if_match(1)},
        )
        assert response.status_code == 401, response.text
        denial = await only_event_after(db, before)
        assert denial["outcome"] == "denied"
        assert (denial["actor_type"], denial["actor_id"], denial["actor_role"]) == (
            "anonymous",
            None,
            None,
        )
        assert denial["action"] == "person.update"
        assert denial["resource_id"] == uuid.UUID(person["id"])
        assert denial["detail"]["status"] == 401
        assert denial["detail"]["route"].startswith("PATCH ")
        assert denial["detail"]["route"].endswith("/persons/{person_id}")
        assert denial["request_id"] == response.headers["x-request-id"]
        assert denial["changes"] is None
    stored = await db.fetchrow("SELECT version, notes FROM person")
    assert stored["version"] == 1


async def test_a_denial_names_the_route_as_served(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """The route a denial names is the template of the path that was requested, so that it
    can be matched with the API's documentation and access logs."""
    person = await create_person(client)
    before = await head_seq(db)
    response = await anonymous.get(f"{API}/persons/{person['id']}")
    assert response.status_code == 401
    denial = await only_event_after(db, before)
    assert denial["detail"]["route"] == "GET /api/v1/persons/{person_id}"


async def test_a_forbidden_write_is_recorded_and_changes_nothing(
    sign_in_as: SignInAs, db: asyncpg.Connection
) -> None:
    """A caseworker's 403 on a case file it may see but is not assigned: one denial with
    the caller and the case file, and the case file as it was."""
    coordinator = (await sign_in_as(Role.coordinator)).client
    caseworker = await sign_in_as(Role.caseworker)
    case = await create_case(coordinator)
    before = await head_seq(db)
    response = await caseworker.client.patch(
        f"{API}/cases/{case['id']}",
        json={"detention_places": [{"place": "Pre-trial prison No. 1"}]},
        headers=if_match(1),
    )
    assert response.status_code == 403, response.text
    denial = await only_event_after(db, before)
    assert denial["outcome"] == "denied"
    assert (denial["actor_type"], denial["actor_id"], denial["actor_role"]) == (
        "user",
        caseworker.account.id,
        "caseworker",
    )
    assert (denial["action"], denial["resource_type"]) == ("case.update", "case")
    assert denial["resource_id"] == uuid.UUID(case["id"])
    assert denial["detail"]["status"] == 403
    assert denial["changes"] is None
    stored = await db.fetchrow(
        "SELECT version, detention_places FROM case_file WHERE id = $1", uuid.UUID(case["id"])
    )
    assert stored["version"] == 1
    assert json.loads(stored["detention_places"]) == []


async def test_a_hidden_record_is_a_denial_and_a_missing_one_is_recorded_apart(
    sign_in_as: SignInAs, db: asyncpg.Connection
) -> None:
    """An analyst asking for a high-confidentiality case file gets the same 404 as for one
    that does not exist; the first is recorded as a denial, the second as not found (both
    are recorded, so that one does not answer more slowly than the other)."""
    coordinator = (await sign_in_as(Role.coordinator)).client
    analyst = await sign_in_as(Role.analyst)
    person = await create_person(coordinator)
    high = await create_case(
        coordinator,
        person["id"],
        confidentiality="high",
        assigned_caseworkers=[],
    )
    before = await head_seq(db)
    missing_id = uuid.uuid4()
    missing = await analyst.client.get(f"{API}/cases/{missing_id}")
    assert missing.status_code == 404
    absence = await only_event_after(db, before)
    assert (absence["outcome"], absence["action"]) == ("not_found", "case.read")
    assert absence["resource_id"] == missing_id and absence["actor_id"] == analyst.account.id
    before = await head_seq(db)
    hidden = await analyst.client.get(f"{API}/cases/{high['id']}")
    assert hidden.status_code == 404
    assert hidden.json()["detail"] == missing.json()["detail"]
    denial = await only_event_after(db, before)
    assert denial["outcome"] == "denied" and denial["action"] == "case.read"
    assert denial["actor_id"] == analyst.account.id
    assert denial["resource_id"] == uuid.UUID(high["id"])
    assert denial["detail"]["status"] == 404
    assert denial["request_id"] == hidden.headers["x-request-id"]
    # The same for a write: refused as if the record did not exist, recorded, not done.
    before = await head_seq(db)
    refused = await analyst.client.patch(
        f"{API}/cases/{high['id']}", json={"detention_places": []}, headers=if_match(1)
    )
    assert refused.status_code == 404, refused.text
    denial = await only_event_after(db, before)
    assert (denial["outcome"], denial["action"]) == ("denied", "case.update")
    assert denial["resource_id"] == uuid.UUID(high["id"])
    assert (
        await db.fetchval("SELECT version FROM case_file WHERE id = $1", uuid.UUID(high["id"])) == 1
    )


async def test_a_failed_sign_in_is_recorded_against_the_account(
    app: FastAPI, anonymous: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """A wrong password is a denial of auth.sign_in about the account it named (and no
    session, and never the password tried)."""
    account = await create_account(app, Role.caseworker)
    wrong = "not the password " + secrets.token_hex(4)
    before = await head_seq(db)
    response = await anonymous.post(
        f"{API}/auth/login",
        json={"username": account.username, "password": wrong, "code": account.code()},
    )
    assert response.status_code == 401, response.text
    denial = await only_event_after(db, before)
    assert (denial["outcome"], denial["action"]) == ("denied", "auth.sign_in")
    assert denial["actor_type"] == "anonymous"
    assert (denial["resource_type"], denial["resource_id"]) == ("user", account.id)
    assert denial["detail"]["status"] == 401
    assert_no_plain(denial, (wrong, account.password))
    assert await db.fetchval("SELECT count(*) FROM user_session") == 0


async def test_refusals_that_are_not_about_access_record_nothing(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """422 (invalid input), 412 (stale If-Match) and 428 (no If-Match) are not denials of
    access: nothing is recorded. (A record that does not exist is: see above.)"""
    person = await create_person(client)
    url = f"{API}/persons/{person['id']}"
    before = await head_seq(db)
    attempts: list[tuple[int, str, dict[str, Any], dict[str, str]]] = [
        (422, url, {"notes": 5}, if_match(1)),
        (412, url, {"notes": "x"}, if_match(7)),
        (428, url, {"notes": "x"}, {}),
    ]
    for status, target, body, headers in attempts:
        response = await client.patch(target, json=body, headers=headers)
        assert response.status_code == status, response.text
    # A refusal by the service after it loaded the record: an invalid transition.
    case = await create_case(client, person["id"])
    before_transition = await head_seq(db)
    refused = await client.post(
        f"{API}/cases/{case['id']}/status-events",
        json=event("sentenced", "2001-01-01"),
        headers=if_match(1),
    )
    assert refused.status_code in (409, 422), refused.text
    assert await events_after(db, before_transition) == []
    assert [e["action"] for e in await events_after(db, before)] == ["case.create"]

"""The audit search (auditors, no values, itself recorded), and paging input that the
search and the histories refuse.
"""

import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from app.access.principal import Role
from tests.audit.trail import (
    FINGERPRINT,
    head_seq,
    only_event_after,
    search_events,
)
from tests.auth import (
    SignInAs,
)
from tests.factories import (
    API,
    PERSON_SECRETS,
    confidential_person_body,
    create_case,
    create_person,
    if_match,
)


async def _seqs(db: asyncpg.Connection, where: str, *args: Any) -> list[int]:
    rows = await db.fetch(f"SELECT seq FROM audit_event WHERE {where} ORDER BY seq DESC", *args)
    return [row["seq"] for row in rows]


async def test_audit_search_filters_pages_and_shows_no_values(
    sign_in_as: SignInAs, db: asyncpg.Connection
) -> None:
    """Auditors search the trail newest first by actor, record (also where the record is
    one of several an event touched), action, outcome and time; the answer names the
    fields that changed and never their values; and each search is itself recorded."""
    coordinator = await sign_in_as(Role.coordinator)
    caseworker = await sign_in_as(Role.caseworker)
    auditor = await sign_in_as(Role.auditor)
    person = await create_person(coordinator.client, **confidential_person_body())
    person_id = uuid.UUID(person["id"])
    patched = await coordinator.client.patch(
        f"{API}/persons/{person['id']}",
        json={"notes": "Seen in court"},
        headers=if_match(1),
    )
    assert patched.status_code == 200, patched.text
    case = await create_case(coordinator.client, person["id"])
    assert (await caseworker.client.get(f"{API}/persons/{person['id']}")).status_code == 200
    refused = await caseworker.client.patch(
        f"{API}/cases/{case['id']}", json={"detention_places": []}, headers=if_match(1)
    )
    assert refused.status_code == 403

    # Each search is compared with the trail as it was before it (it adds its own event).
    expected = await _seqs(db, "actor_id = $1", caseworker.account.id)
    by_actor = await search_events(auditor.client, actor_id=str(caseworker.account.id))
    assert [e["seq"] for e in by_actor] == expected
    assert {e["action"] for e in by_actor} >= {"person.read", "case.update", "auth.sign_in"}

    expected = await _seqs(db, "resource_id = $1 OR $1 = ANY(related)", person_id)
    about = await search_events(auditor.client, resource_id=person["id"])
    assert [e["seq"] for e in about] == expected
    # The case file's creation names the person only among its related records.
    assert "case.create" in {e["action"] for e in about}

    expected = await _seqs(db, "resource_type = 'case'")
    cases = await search_events(auditor.client, resource_type="case")
    assert [e["seq"] for e in cases] == expected and expected

    updates = await search_events(auditor.client, action="person.update")
    assert [e["action"] for e in updates] == ["person.update"]
    (update,) = updates
    assert update["changed"] == [
        {"type": "person", "id": person["id"], "fields": ["notes", "version"]}
    ]

    expected = await _seqs(db, "outcome = 'denied'")
    denials = await search_events(auditor.client, outcome="denied")
    assert [e["seq"] for e in denials] == expected
    assert [(e["action"], e["actor"]["id"]) for e in denials] == [
        ("case.update", str(caseworker.account.id))
    ]

    # Time: since is inclusive, until exclusive.
    middle = await db.fetchrow(
        "SELECT seq, occurred_at FROM audit_event WHERE action = 'person.update'"
    )
    moment = middle["occurred_at"]
    expected = await _seqs(db, "occurred_at >= $1", moment)
    since = await search_events(auditor.client, since=moment.isoformat(), limit=100)
    assert [e["seq"] for e in since] == expected
    assert middle["seq"] == expected[-1]
    expected = await _seqs(db, "occurred_at < $1", moment)
    until = await search_events(auditor.client, until=moment.isoformat(), limit=100)
    assert [e["seq"] for e in until] == expected
    assert middle["seq"] not in expected and expected
    window = await search_events(
        auditor.client,
        since=moment.isoformat(),
        until=(moment + timedelta(microseconds=1)).isoformat(),
    )
    assert middle["seq"] in [e["seq"] for e in window]
    naive = await auditor.client.get(
        f"{API}/audit/events", params={"since": moment.replace(tzinfo=None).isoformat()}
    )
    assert naive.status_code == 422

    # Pages, newest first, following `next`.
    everything = await _seqs(db, "true")
    paged: list[int] = []
    next_url: str | None = f"{API}/audit/events?limit=3"
    while next_url is not None:
        response = await auditor.client.get(next_url)
        assert response.status_code == 200, response.text
        paged.extend(e["seq"] for e in response.json()["items"])
        next_url = response.json()["next"]
    assert paged == everything

    # No values: not the notes written, not a fingerprint, not a confidential value.
    listing = await auditor.client.get(f"{API}/audit/events", params={"limit": 100})
    assert "Seen in court" not in listing.text
    assert FINGERPRINT not in listing.text
    assert '"before"' not in listing.text and '"after"' not in listing.text
    for secret in PERSON_SECRETS:
        assert secret not in listing.text

    # The search itself is on the record: who searched, for what.
    before = await head_seq(db)
    await search_events(auditor.client, resource_id=person["id"], action="person.update")
    search = await only_event_after(db, before)
    assert search["action"] == "audit.search" and search["outcome"] == "success"
    assert search["actor_id"] == auditor.account.id
    assert search["detail"] == {"resource_id": person["id"], "action": "person.update"}


async def test_only_auditors_search_the_trail(sign_in_as: SignInAs, db: asyncpg.Connection) -> None:
    """Every other role is refused the trail (403), and the refusal is recorded."""
    for role in (Role.coordinator, Role.caseworker, Role.analyst, Role.admin):
        signed = await sign_in_as(role)
        before = await head_seq(db)
        response = await signed.client.get(f"{API}/audit/events")
        assert response.status_code == 403, (role, response.text)
        denial = await only_event_after(db, before)
        assert (denial["action"], denial["outcome"]) == ("audit.read", "denied")
        assert denial["actor_id"] == signed.account.id


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor",
        # A well-formed cursor of another query (a person list) is refused too.
        None,
    ],
)
async def test_a_damaged_or_foreign_cursor_is_a_clear_400(
    sign_in_as: SignInAs, client: httpx.AsyncClient, cursor: str | None
) -> None:
    """Bad paging input gets a problem+json 400 from the search and the history, never a
    500 or another query's page."""
    auditor = (await sign_in_as(Role.auditor)).client
    if cursor is None:
        for _ in range(2):
            await create_person(client)
        listed = await client.get(f"{API}/persons", params={"limit": 1})
        next_link = listed.json()["next"]
        assert next_link is not None
        cursor = httpx.URL(next_link).params["cursor"]
    person = await create_person(client)
    for caller, path in (
        (auditor, f"{API}/audit/events"),
        (client, f"{API}/persons/{person['id']}/history"),
    ):
        response = await caller.get(path, params={"cursor": cursor})
        assert response.status_code == 400, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"].endswith("invalid-cursor")

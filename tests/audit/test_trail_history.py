"""The field-level history of a case file or person, read from the trail (coordinators)."""

from typing import Any

import asyncpg
import httpx

from app.access.principal import Role
from tests.audit.trail import (
    head_seq,
    is_fingerprint,
    only_event_after,
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
    event,
    if_match,
)


async def _all_pages(client: httpx.AsyncClient, url: str) -> tuple[list[dict[str, Any]], int]:
    """Every entry of a history, following `next`; and how many pages it took."""
    entries: list[dict[str, Any]] = []
    pages = 0
    next_url: str | None = url
    while next_url is not None:
        response = await client.get(next_url)
        assert response.status_code == 200, response.text
        body = response.json()
        entries.extend(body["entries"])
        next_url = body["next"]
        pages += 1
    return entries, pages


async def test_case_history_lists_every_write_newest_first(
    sign_in_as: SignInAs, db: asyncpg.Connection
) -> None:
    """A case file's history (coordinators): every write that changed it, newest first,
    field by field, a collective event's change to it included (and nothing of the other
    case files it changed); pages follow `next`."""
    coordinator = await sign_in_as(Role.coordinator)
    client = coordinator.client
    case = await create_case(client)
    spare = await create_case(client)
    patched = await client.patch(
        f"{API}/cases/{case['id']}",
        json={"detention_places": [{"place": "Pre-trial prison No. 1"}]},
        headers=if_match(1),
    )
    assert patched.status_code == 200, patched.text
    moved = await client.post(
        f"{API}/cases/{case['id']}/status-events",
        json=event("sentenced", "2022-01-15"),
        headers=if_match(2),
    )
    assert moved.status_code == 201, moved.text
    collective = await client.post(
        f"{API}/collective-events",
        json={
            "title": "Pardon decree",
            "kind": "pardon",
            "to_status": "pardoned",
            "confidence": "confirmed",
            "effective_date": "2023-01-05",
            "case_file_ids": [case["id"], spare["id"]],
        },
    )
    assert collective.status_code == 201, collective.text

    entries, pages = await _all_pages(client, f"{API}/cases/{case['id']}/history?limit=2")
    assert pages == 2
    assert [e["action"] for e in entries] == [
        "collective.create",
        "case.transition",
        "case.update",
        "case.create",
    ]
    seqs = [e["seq"] for e in entries]
    assert seqs == sorted(seqs, reverse=True)
    assert all(e["actor"]["id"] == str(coordinator.account.id) for e in entries)
    pardon, transition, update, creation = entries
    assert pardon["request_id"] == collective.headers["x-request-id"]
    # Only what concerns this case file: its own row and its own status events.
    assert {c["type"] for c in pardon["changes"]} == {"case", "status_event"}
    for entry in entries:
        for c in entry["changes"]:
            assert c["id"] == case["id"] or c["fields"].get("case_file_id", {}).get("after") in (
                None,
                case["id"],
            )
            assert c["id"] != spare["id"]
    (pardon_case,) = [c for c in pardon["changes"] if c["type"] == "case"]
    assert pardon_case["fields"]["status"] == {"before": "sentenced", "after": "pardoned"}
    (update_case,) = update["changes"]
    assert set(update_case["fields"]) == {"detention_places", "version"}
    assert update_case["fields"]["version"] == {"before": 1, "after": 2}
    assert {c["type"] for c in transition["changes"]} == {"case", "status_event"}
    assert {c["type"] for c in creation["changes"]} == {"case", "status_event"}


async def test_person_history_shows_confidential_changes_as_fingerprints(
    client: httpx.AsyncClient,
) -> None:
    """A person's history: their writes, newest first, with before and after of each field,
    confidential values only as fingerprints."""
    person = await create_person(client, **confidential_person_body())
    for version, body in ((1, {"notes": "Seen in court"}), (2, {"address": "Another street 1"})):
        response = await client.patch(
            f"{API}/persons/{person['id']}", json=body, headers=if_match(version)
        )
        assert response.status_code == 200, response.text
    history = await client.get(f"{API}/persons/{person['id']}/history")
    assert history.status_code == 200, history.text
    for secret in (*PERSON_SECRETS, "Another street 1"):
        assert secret not in history.text
    entries = history.json()["entries"]
    assert [e["action"] for e in entries] == ["person.update", "person.update", "person.create"]
    address = entries[0]["changes"][0]["fields"]["address"]
    assert is_fingerprint(address["before"]) and is_fingerprint(address["after"])
    assert entries[1]["changes"][0]["fields"]["notes"] == {
        "before": None,
        "after": "Seen in court",
    }


async def test_person_history_lists_only_writes_that_changed_the_person(
    client: httpx.AsyncClient,
) -> None:
    """Every entry of a person's history shows a change to that person (or a record that
    names them, such as a new case file); a change of status of one of their case files
    is not a change of the person and must not appear as an empty entry."""
    case = await create_case(client)
    person_id = case["person_id"]
    moved = await client.post(
        f"{API}/cases/{case['id']}/status-events",
        json=event("sentenced", "2022-01-15"),
        headers=if_match(1),
    )
    assert moved.status_code == 201, moved.text
    decided = await client.post(
        f"{API}/persons/{person_id}/recognition",
        json={"status": "under_review", "decided_on": "2022-01-10", "criteria": []},
        headers=if_match(0),
    )
    assert decided.status_code == 201, decided.text
    history = await client.get(f"{API}/persons/{person_id}/history")
    assert history.status_code == 200, history.text
    entries = history.json()["entries"]
    assert "recognition.decide" in [e["action"] for e in entries]
    empty = [entry["action"] for entry in entries if not entry["changes"]]
    assert empty == []


async def test_person_history_pages_are_full_until_the_last(client: httpx.AsyncClient) -> None:
    """Every page of a history but the last holds `limit` entries, so that a client that
    stops at a short or empty page misses nothing; the pages together list the person's
    writes, newest first."""
    case = await create_case(client)
    for version, (status, day) in enumerate(
        (("sentenced", "2022-01-15"), ("released", "2023-01-15")), start=1
    ):
        moved = await client.post(
            f"{API}/cases/{case['id']}/status-events",
            json=event(status, day),
            headers=if_match(version),
        )
        assert moved.status_code == 201, moved.text
    pages: list[list[str]] = []
    next_url: str | None = f"{API}/persons/{case['person_id']}/history?limit=1"
    while next_url is not None:
        response = await client.get(next_url)
        assert response.status_code == 200, response.text
        pages.append([entry["action"] for entry in response.json()["entries"]])
        next_url = response.json()["next"]
    assert [action for page in pages for action in page] == ["case.create", "person.create"]
    assert pages == [["case.create"], ["person.create"]]


async def test_history_is_for_coordinators_only(
    sign_in_as: SignInAs, db: asyncpg.Connection
) -> None:
    """A caseworker who may read the case file is refused its history (403); an auditor,
    who may not see case content at all, gets a 404 as for any hidden record. Both are
    recorded as denials."""
    coordinator = (await sign_in_as(Role.coordinator)).client
    caseworker = await sign_in_as(Role.caseworker)
    auditor = await sign_in_as(Role.auditor)
    case = await create_case(coordinator, assigned_caseworkers=[str(caseworker.account.id)])
    for signed, status in ((caseworker, 403), (auditor, 404)):
        for url in (f"/cases/{case['id']}/history", f"/persons/{case['person_id']}/history"):
            before = await head_seq(db)
            response = await signed.client.get(f"{API}{url}")
            assert response.status_code == status, (url, response.text)
            assert "entries" not in response.text
            denial = await only_event_after(db, before)
            assert denial["outcome"] == "denied"
            assert denial["actor_id"] == signed.account.id
            assert denial["detail"]["status"] == status

import uuid
from typing import Any

import asyncpg
import httpx

from app.access.principal import Role
from tests.conftest import row_counts
from tests.factories import API, batch, create_case, event, sentenced_cases


class TestCreateCollectiveEvent:
    async def test_applies_one_transition_to_every_case_file(
        self, client: httpx.AsyncClient
    ) -> None:
        cases = await sentenced_cases(client, 3)
        response = await client.post(
            f"{API}/collective-events", json=batch([c["id"] for c in cases])
        )
        assert response.status_code == 201, response.text
        created = response.json()
        assert created["case_file_count"] == 3
        assert {r["outcome"] for r in created["results"]} == {"applied"}
        assert {r["from_status"] for r in created["results"]} == {"sentenced"}
        for case in cases:
            current = (await client.get(f"{API}/cases/{case['id']}")).json()
            assert current["status"] == "deported"
            assert current["version"] == 2
            last = (await client.get(f"{API}/cases/{case['id']}/status-events")).json()["events"][
                -1
            ]
            assert last["collective_event_id"] == created["id"]
            assert last["details"] == {"destination_country": "LT"}

    async def test_one_case_file_that_cannot_transition_changes_nothing(
        self, client: httpx.AsyncClient, db: asyncpg.Connection
    ) -> None:
        cases = await sentenced_cases(client, 2)
        dead = await create_case(
            client,
            history=[event("detained", "2021-01-01"), event("died_in_custody", "2024-02-16")],
        )
        before = await row_counts(db)
        ids = [cases[0]["id"], dead["id"], cases[1]["id"]]
        response = await client.post(f"{API}/collective-events", json=batch(ids))
        assert response.status_code == 409
        problem = response.json()
        assert problem["type"] == "urn:habeas:problem:collective-transition-rejected"
        outcomes = {r["case_file_id"]: r["outcome"] for r in problem["results"]}
        assert outcomes == {
            cases[0]["id"]: "would_apply",
            dead["id"]: "rejected",
            cases[1]["id"]: "would_apply",
        }
        assert await row_counts(db) == before
        for case in cases:
            assert (await client.get(f"{API}/cases/{case['id']}")).json()["status"] == "sentenced"

    async def test_an_unknown_case_file_changes_nothing(
        self, client: httpx.AsyncClient, db: asyncpg.Connection
    ) -> None:
        cases = await sentenced_cases(client, 1)
        before = await row_counts(db)
        unknown = str(uuid.uuid4())
        response = await client.post(
            f"{API}/collective-events", json=batch([cases[0]["id"], unknown])
        )
        assert response.status_code == 409
        outcomes = {r["case_file_id"]: r["outcome"] for r in response.json()["results"]}
        assert outcomes[unknown] == "not_found"
        assert await row_counts(db) == before

    async def test_a_date_before_a_case_files_last_event_changes_nothing(
        self, client: httpx.AsyncClient, db: asyncpg.Connection
    ) -> None:
        cases = await sentenced_cases(client, 2)
        before = await row_counts(db)
        response = await client.post(
            f"{API}/collective-events",
            json=batch([c["id"] for c in cases], effective_date="2021-05-01"),
        )
        assert response.status_code == 409
        assert await row_counts(db) == before

    async def test_refuses_bad_input(
        self, client: httpx.AsyncClient, db: asyncpg.Connection
    ) -> None:
        cases = await sentenced_cases(client, 1)
        case_id = cases[0]["id"]
        before = await row_counts(db)
        for bad in (
            batch([]),
            batch([case_id, case_id]),
            batch([case_id], to_status="deported", destination_country=None),
            batch([case_id], kind="coup"),
            batch([case_id], effective_date="2025-02-30"),
            batch([case_id], source_ids=[str(uuid.uuid4())]),
            batch([case_id], to_status="released"),
            batch([str(uuid.uuid4())] * 0 + [str(uuid.uuid4()) for _ in range(2001)]),
        ):
            response = await client.post(f"{API}/collective-events", json=bad)
            assert response.status_code == 422, (bad.get("kind"), response.text)
        assert await row_counts(db) == before


class TestReadCollectiveEvents:
    async def test_reads_an_event_with_each_case_files_result(
        self, client: httpx.AsyncClient
    ) -> None:
        cases = await sentenced_cases(client, 2)
        created = (
            await client.post(f"{API}/collective-events", json=batch([c["id"] for c in cases]))
        ).json()
        read = await client.get(f"{API}/collective-events/{created['id']}")
        assert read.status_code == 200
        assert {r["case_file_id"] for r in read.json()["results"]} == {c["id"] for c in cases}
        listing = (await client.get(f"{API}/collective-events")).json()
        assert [e["id"] for e in listing["items"]] == [created["id"]]
        assert (await client.get(f"{API}/collective-events/{uuid.uuid4()}")).status_code == 404


async def test_the_list_counts_only_the_case_files_the_caller_may_see(
    client: httpx.AsyncClient, sign_in_as: Any
) -> None:
    """Reading one event shows only the visible case files; the list must not give the
    others away through its count."""
    normal = await sentenced_cases(client, 2)
    high = await create_case(
        client,
        history=[event("detained", "2021-01-01"), event("sentenced", "2021-06-01")],
        confidentiality="high",
    )
    created = await client.post(
        f"{API}/collective-events", json=batch([c["id"] for c in [*normal, high]])
    )
    assert created.status_code == 201, created.text
    analyst = (await sign_in_as(Role.analyst)).client
    listed = (await analyst.get(f"{API}/collective-events")).json()["items"]
    assert [item["case_file_count"] for item in listed] == [2]
    read = (await analyst.get(f"{API}/collective-events/{created.json()['id']}")).json()
    assert read["case_file_count"] == len(read["results"]) == 2
    coordinator_list = (await client.get(f"{API}/collective-events")).json()["items"]
    assert [item["case_file_count"] for item in coordinator_list] == [3]

import uuid
from datetime import timedelta

import asyncpg
import httpx

from app.core.clock import today
from tests.conftest import row_counts
from tests.factories import API, RECOGNISED, WITHDRAWN, create_case, create_person, decide


class TestRecognition:
    async def test_a_person_starts_not_assessed_at_version_0(
        self, client: httpx.AsyncClient
    ) -> None:
        person = await create_person(client)
        response = await client.get(f"{API}/persons/{person['id']}/recognition")
        assert response.status_code == 200
        assert response.json()["status"] == "not_assessed"
        assert response.json()["current"] is None
        assert response.headers["etag"] == '"0"'

    async def test_decisions_are_appended_and_the_latest_is_current(
        self, client: httpx.AsyncClient
    ) -> None:
        person = await create_person(client)
        first = await decide(
            client, person["id"], {"status": "under_review", "decided_on": "2022-01-10"}, 0
        )
        assert first.status_code == 201, first.text
        second = await decide(client, person["id"], RECOGNISED, 1)
        assert second.status_code == 201
        recognition = (await client.get(f"{API}/persons/{person['id']}/recognition")).json()
        assert recognition["status"] == "political_prisoner"
        assert recognition["version"] == 2
        assert [d["status"] for d in recognition["history"]] == [
            "political_prisoner",
            "under_review",
        ]
        read = (await client.get(f"{API}/persons/{person['id']}")).json()
        assert read["recognition_status"] == "political_prisoner"

    async def test_recognition_filters_case_lists(self, client: httpx.AsyncClient) -> None:
        recognised = await create_person(client)
        other = await create_person(client)
        case = await create_case(client, recognised["id"])
        await create_case(client, other["id"])
        await decide(client, recognised["id"], RECOGNISED, 0)
        page = (await client.get(f"{API}/cases?recognition_status=political_prisoner")).json()
        assert [c["id"] for c in page["items"]] == [case["id"]]
        persons = (await client.get(f"{API}/persons?recognition_status=political_prisoner")).json()
        assert [p["id"] for p in persons["items"]] == [recognised["id"]]

    async def test_a_stale_or_missing_version_is_refused(
        self, client: httpx.AsyncClient, db: asyncpg.Connection
    ) -> None:
        person = await create_person(client)
        await decide(client, person["id"], RECOGNISED, 0)
        stale = await decide(client, person["id"], WITHDRAWN, 0)
        assert stale.status_code == 412
        missing = await client.post(f"{API}/persons/{person['id']}/recognition", json=RECOGNISED)
        assert missing.status_code == 428
        assert await db.fetchval("SELECT count(*) FROM recognition_decision") == 1

    async def test_refuses_unknown_criteria_missing_criteria_and_future_dates(
        self, client: httpx.AsyncClient, db: asyncpg.Connection
    ) -> None:
        person = await create_person(client)
        before = await row_counts(db)
        tomorrow = (today() + timedelta(days=2)).isoformat()
        for bad in (
            {**RECOGNISED, "criteria": ["G9.9"]},
            {**RECOGNISED, "criteria": []},
            {**RECOGNISED, "criteria": ["G3.1a", "G3.1a"]},
            {**RECOGNISED, "decided_on": tomorrow},
            {**RECOGNISED, "status": "hero"},
            {**RECOGNISED, "source_ids": [str(uuid.uuid4())]},
            {**RECOGNISED, "version": 5},
        ):
            response = await decide(client, person["id"], bad, 0)
            assert response.status_code == 422, (bad, response.text)
        assert await row_counts(db) == before

    async def test_an_unknown_person_is_404(self, client: httpx.AsyncClient) -> None:
        assert (await client.get(f"{API}/persons/{uuid.uuid4()}/recognition")).status_code == 404
        assert (await decide(client, str(uuid.uuid4()), RECOGNISED, 0)).status_code == 404

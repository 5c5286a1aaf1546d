import uuid

import asyncpg
import httpx

from tests.conftest import row_counts
from tests.factories import API, SOURCE, create_case, event


class TestSources:
    async def test_creates_reads_and_lists_sources(self, client: httpx.AsyncClient) -> None:
        created = await client.post(f"{API}/sources", json=SOURCE)
        assert created.status_code == 201, created.text
        source = created.json()
        read = await client.get(f"{API}/sources/{source['id']}")
        assert read.json() == source
        assert read.headers["etag"] == '"1"'
        listing = (
            await client.get(f"{API}/sources", params={"publisher": SOURCE["publisher"]})
        ).json()
        assert [s["id"] for s in listing["items"]] == [source["id"]]

    async def test_events_may_cite_existing_sources(self, client: httpx.AsyncClient) -> None:
        source = (await client.post(f"{API}/sources", json=SOURCE)).json()
        case = await create_case(
            client, history=[event("detained", "2024-03-20", source_ids=[source["id"]])]
        )
        events = (await client.get(f"{API}/cases/{case['id']}/status-events")).json()["events"]
        assert events[0]["source_ids"] == [source["id"]]

    async def test_refuses_bad_grades_urls_and_dates(
        self, client: httpx.AsyncClient, db: asyncpg.Connection
    ) -> None:
        before = await row_counts(db)
        for bad in (
            {**SOURCE, "reliability": "G"},
            {**SOURCE, "credibility": 7},
            {**SOURCE, "url": "javascript:alert(1)"},
            {**SOURCE, "published_on": "2999-01-01"},
            {**SOURCE, "extra": 1},
        ):
            assert (await client.post(f"{API}/sources", json=bad)).status_code == 422, bad
        assert await row_counts(db) == before
        assert (await client.get(f"{API}/sources/{uuid.uuid4()}")).status_code == 404

"""An Idempotency-Key whose record has expired is taken afresh, once."""

import asyncio

import asyncpg
import httpx

from tests.factories import API, person_body


async def test_concurrent_retries_of_an_expired_key_run_once(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    headers = {"Idempotency-Key": "old-key"}
    first = await client.post(f"{API}/persons", json=person_body(), headers=headers)
    assert first.status_code == 201
    await db.execute("UPDATE idempotency_record SET created_at = now() - interval '2 days'")
    # The same person again would meet the duplicate check; the caller states it is
    # someone else.
    body = person_body(confirmed_distinct_from=[first.json()["id"]])
    responses = await asyncio.gather(
        *(client.post(f"{API}/persons", json=body, headers=headers) for _ in range(6))
    )
    assert [r.status_code for r in responses] == [201] * 6
    assert len({r.json()["id"] for r in responses}) == 1
    assert await db.fetchval("SELECT count(*) FROM person") == 2

"""Regression tests for defects found in review: each once gave a 500 or a wrong answer."""

import asyncio
import base64
import json

import asyncpg
import httpx
import pytest

from app.sources import service as sources_service
from tests.collective.test_router import batch, sentenced_cases
from tests.factories import API, create_case, create_person, person_body
from tests.recognition.test_router import RECOGNISED, decide
from tests.sources.test_router import SOURCE


async def test_control_characters_in_a_url_are_refused(client: httpx.AsyncClient) -> None:
    for url in ("http://a\u0000b", "http://a\u0007b"):
        response = await client.post(f"{API}/sources", json={**SOURCE, "url": url})
        assert response.status_code == 422


@pytest.mark.parametrize("score", ["2" + "0" * 308, "NaN", "Infinity", "true"])
async def test_a_forged_search_cursor_is_a_400(client: httpx.AsyncClient, score: str) -> None:
    person = await create_person(client)
    page = (await client.get(f"{API}/persons", params={"q": "Labanovich", "limit": 1})).json()
    assert page["items"][0]["id"] == person["id"]
    honest = json.loads(base64.urlsafe_b64decode((await _search_cursor(client)) + "=="))
    forged = f'{{"p":[{score},"{person["id"]}",true],"q":"{honest["q"]}"}}'
    cursor = base64.urlsafe_b64encode(forged.encode()).decode().rstrip("=")
    response = await client.get(f"{API}/persons", params={"q": "Labanovich", "cursor": cursor})
    assert response.status_code == 400


async def _search_cursor(client: httpx.AsyncClient) -> str:
    await create_person(client)
    page = (await client.get(f"{API}/persons", params={"q": "Labanovich", "limit": 1})).json()
    return str(page["next"].split("cursor=")[1])


async def test_concurrent_retries_of_an_expired_key_run_once(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    headers = {"Idempotency-Key": "old-key"}
    assert (
        await client.post(f"{API}/persons", json=person_body(), headers=headers)
    ).status_code == 201
    await db.execute("UPDATE idempotency_record SET created_at = now() - interval '2 days'")
    responses = await asyncio.gather(
        *(client.post(f"{API}/persons", json=person_body(), headers=headers) for _ in range(6))
    )
    assert [r.status_code for r in responses] == [201] * 6
    assert len({r.json()["id"] for r in responses}) == 1
    assert await db.fetchval("SELECT count(*) FROM person") == 2


async def test_an_unexpected_error_is_a_generic_500_with_the_usual_headers(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object) -> None:
        raise RuntimeError("secret detail that must not leak")

    monkeypatch.setattr(sources_service, "get", broken)
    response = await client.get(f"{API}/sources/01a2109f-13cc-7416-b07f-aafbffcc8609")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-request-id"]
    assert "secret detail" not in response.text


async def test_a_recognition_decision_changes_the_persons_etag(client: httpx.AsyncClient) -> None:
    person = await create_person(client)
    await decide(client, person["id"], RECOGNISED, 0)
    read = await client.get(f"{API}/persons/{person['id']}")
    assert read.json()["recognition_status"] == "political_prisoner"
    assert read.headers["etag"] == '"2"'


async def test_recognition_decisions_cannot_go_back_in_time(client: httpx.AsyncClient) -> None:
    person = await create_person(client)
    await decide(client, person["id"], RECOGNISED, 0)
    earlier = await decide(
        client, person["id"], {"status": "withdrawn", "decided_on": "2022-02-01"}, 1
    )
    assert earlier.status_code == 409


async def test_a_collective_destination_cannot_contradict_its_details(
    client: httpx.AsyncClient,
) -> None:
    cases = await sentenced_cases(client, 1)
    response = await client.post(
        f"{API}/collective-events",
        json=batch([cases[0]["id"]], details={"destination_country": "PL"}),
    )
    assert response.status_code == 422


async def test_reading_a_collective_event_keeps_each_from_status(client: httpx.AsyncClient) -> None:
    cases = await sentenced_cases(client, 2)
    created = (
        await client.post(f"{API}/collective-events", json=batch([c["id"] for c in cases]))
    ).json()
    read = (await client.get(f"{API}/collective-events/{created['id']}")).json()
    assert {r["from_status"] for r in read["results"]} == {"sentenced"}
    assert sorted(read["results"], key=lambda r: r["case_file_id"]) == sorted(
        created["results"], key=lambda r: r["case_file_id"]
    )


async def test_dates_take_ascii_digits_only(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{API}/persons", json=person_body(birth_date="١٩٨٤"))
    assert response.status_code == 422


async def test_if_match_must_be_exactly_a_quoted_version(client: httpx.AsyncClient) -> None:
    case = await create_case(client)
    for value in ('"0_1"', '"1 "', 'W/"1"', "1", '"+1"'):
        response = await client.patch(
            f"{API}/cases/{case['id']}", json={"jurisdiction": "RU"}, headers={"If-Match": value}
        )
        assert response.status_code == 412, value


async def test_links_never_carry_the_callers_host(client: httpx.AsyncClient) -> None:
    created = await client.post(
        f"{API}/persons", json=person_body(), headers={"Host": "evil.example"}
    )
    assert created.headers["location"].startswith("/api/v1/persons/")
    await create_person(client)
    page = (await client.get(f"{API}/persons?limit=1", headers={"Host": "evil.example"})).json()
    assert page["next"].startswith("/api/v1/persons?")

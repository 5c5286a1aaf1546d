"""Recognition decisions follow one another in time and move the person's version."""

import httpx

from tests.factories import API, RECOGNISED, WITHDRAWN, create_person, decide


async def test_a_recognition_decision_changes_the_persons_etag(client: httpx.AsyncClient) -> None:
    person = await create_person(client)
    await decide(client, person["id"], RECOGNISED, 0)
    read = await client.get(f"{API}/persons/{person['id']}")
    assert read.json()["recognition_status"] == "political_prisoner"
    assert read.headers["etag"] == '"2"'


async def test_recognition_decisions_cannot_go_back_in_time(client: httpx.AsyncClient) -> None:
    person = await create_person(client)
    await decide(client, person["id"], RECOGNISED, 0)
    earlier = await decide(client, person["id"], {**WITHDRAWN, "decided_on": "2022-02-01"}, 1)
    assert earlier.status_code == 409

"""The links the API answers with (Location, `next`) are paths of its own."""

import httpx

from tests.factories import API, create_person, person_body


async def test_links_never_carry_the_callers_host(client: httpx.AsyncClient) -> None:
    created = await client.post(
        f"{API}/persons", json=person_body(), headers={"Host": "evil.example"}
    )
    assert created.headers["location"].startswith("/api/v1/persons/")
    await create_person(client)
    page = (await client.get(f"{API}/persons?limit=1", headers={"Host": "evil.example"})).json()
    assert page["next"].startswith("/api/v1/persons?")

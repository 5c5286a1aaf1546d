"""A collective event agrees with itself: its destination with its details, what is read
with what was created.
"""

import httpx

from tests.factories import API, batch, sentenced_cases


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

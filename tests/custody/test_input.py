"""Bad input is refused with a problem document, and nothing is written."""

import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from app.core.clock import today
from tests.conftest import row_counts
from tests.custody.custody import create_facility, entry, timeline_path
from tests.factories import create_case

PROBLEM = "application/problem+json"
NOWHERE = str(uuid.UUID(int=0x0190_0000_0000_7000_8000_0000_0000_0001))
# Two days ahead of UTC is in the future in every time zone on Earth.
TOMORROW = (today() + timedelta(days=2)).isoformat()


@pytest.mark.parametrize(
    ("body", "slug"),
    [
        (entry("transfer", "2022-04-02", facility_id=NOWHERE), "unknown-reference"),
        (entry("transfer", "2022-04-02"), "invalid-input"),
        (entry("incommunicado", "2022-04-02", facility_id="FACILITY"), "invalid-input"),
        (
            entry("transfer", "2022-04-02", facility_id="FACILITY", from_facility_id="FACILITY"),
            "invalid-input",
        ),
        (entry("new_charge", "2022-04-02"), "invalid-input"),
        (entry("new_charge", "2022-04-02", details={"article": "411", "term": 3}), "invalid-input"),
        (entry("punishment_cell", "2022-04-02", details={"days": "10"}), "invalid-input"),
        (
            entry("expected_release", "2022-04-02", details={"release_on": "2031-02-30"}),
            "invalid-input",
        ),
        (entry("hunger_strike", TOMORROW), "invalid-input"),
        (entry("hunger_strike", "2022-04-02", end_date=TOMORROW), "invalid-input"),
        (
            entry("new_charge", "2022-04-02", end_date="2022-05", details={"article": "1"}),
            "invalid-input",
        ),
        (entry("hunger_strike", "2022-04-01", end_date="2022-03"), "invalid-input"),
        (entry("hunger_strike", "21-04-2022"), "invalid-input"),
        (entry("hunger_strike", "2022-04", confidence="likely"), "invalid-input"),
        (entry("hunger_strike", "2022-04", source_ids=[NOWHERE]), "unknown-reference"),
        (entry("hunger_strike", "2022-04", place="cell 4"), "invalid-input"),
        (entry("exile", "2022-04"), "invalid-input"),
    ],
)
async def test_a_bad_entry_is_refused_and_nothing_is_written(
    client: httpx.AsyncClient, db: asyncpg.Connection, body: dict[str, Any], slug: str
) -> None:
    facility = await create_facility(client, 17)
    case = await create_case(client)
    body = {key: facility if value == "FACILITY" else value for key, value in body.items()}
    before = await row_counts(db)
    response = await client.post(timeline_path(case), json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == f"urn:habeas:problem:{slug}"
    assert await row_counts(db) == before


async def test_malformed_json_and_wrong_shapes(client: httpx.AsyncClient) -> None:
    case = await create_case(client)
    path = timeline_path(case)
    malformed = await client.post(
        path, content=b'{"kind": "transfer",', headers={"Content-Type": "application/json"}
    )
    assert malformed.status_code == 400
    assert malformed.json()["type"] == "urn:habeas:problem:malformed-json"
    for body in ([], "transfer", None):
        response = await client.post(path, json=body)
        assert response.status_code == 422, body
        assert response.headers["content-type"] == PROBLEM
    # A retraction needs its reason; an end its date.
    made = await client.post(path, json=entry("incommunicado", "2022-04"))
    entry_path = f"{path}/{made.json()['id']}"
    for suffix, body in (
        ("retraction", {}),
        ("retraction", {"reason": ""}),
        ("retraction", {"reason": "x", "extra": 1}),
        ("end", {"confidence": "confirmed"}),
        ("end", {"effective_date": TOMORROW, "confidence": "confirmed"}),
    ):
        response = await client.post(f"{entry_path}/{suffix}", json=body)
        assert response.status_code == 422, (suffix, body, response.text)
    # An entry of another case file, or none, is not found.
    other = await create_case(client)
    foreign = await client.post(
        f"{timeline_path(other)}/{made.json()['id']}/retraction", json={"reason": "x"}
    )
    assert foreign.status_code == 404
    assert (await client.get(path, params={"known_at": "2024-01-01"})).status_code == 422


async def test_a_facility_must_be_well_described(client: httpx.AsyncClient) -> None:
    from tests.custody.custody import facility_body

    for body in (
        facility_body(names=[]),
        facility_body(region="RU-MOW"),
        facility_body(country="Belarus"),
        facility_body(type="camp"),
        facility_body(names=[{"value": "Colony\u202e", "script": "Latn"}]),
        facility_body(names=[{"value": "Colony", "script": "latin"}]),
        facility_body(capacity=1000),
    ):
        response = await client.post("/api/v1/facilities", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == PROBLEM

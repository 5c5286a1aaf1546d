"""The facility register: public reference data, kept by coordinators."""

from collections.abc import Awaitable, Callable

import asyncpg
import httpx
from fastapi import FastAPI

from app.access.principal import Role
from tests.audit.trail import change_of, created, events_after, head_seq
from tests.auth import SignedIn
from tests.custody.custody import create_facility, facility_body, partner_client
from tests.factories import API

SignIn = Callable[..., Awaitable[SignedIn]]


async def test_a_coordinator_registers_a_facility_with_its_names_in_each_script(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    seq = await head_seq(db)
    response = await client.post(f"{API}/facilities", json=facility_body(17))
    assert response.status_code == 201, response.text
    made = response.json()
    assert response.headers["etag"] == '"1"'
    assert response.headers["location"] == f"{API}/facilities/{made['id']}"
    assert [name["script"] for name in made["names"]] == ["Latn", "Cyrl"]
    assert (made["country"], made["region"], made["type"]) == ("BY", "BY-VI", "penal_colony")
    read = await client.get(f"{API}/facilities/{made['id']}")
    assert read.status_code == 200 and read.json() == made
    (recorded,) = await events_after(db, seq)
    assert (recorded["action"], recorded["resource_type"]) == ("facility.create", "facility")
    values = created(change_of(recorded, "facility", made["id"]))
    assert values["names"][0]["value"] == "Penal Colony No. 17 (synthetic)"


async def test_the_register_is_listed_by_country_type_and_any_spelling(
    client: httpx.AsyncClient,
) -> None:
    colony = await create_facility(client, 17)
    remand = await create_facility(client, 1, type="pretrial_detention_centre", region="BY-HM")
    abroad = await create_facility(client, 5, country="RU", region=None)

    async def ids(**params: str) -> list[str]:
        response = await client.get(f"{API}/facilities", params=params)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert await ids() == sorted([colony, remand, abroad])
    assert await ids(country="RU") == [abroad]
    assert await ids(type="pretrial_detention_centre") == [remand]
    assert await ids(q="колония № 17") == [colony]
    assert await ids(q="PENAL COLONY NO. 1 ") == [remand]
    assert await ids(q="100%") == []
    first = await client.get(f"{API}/facilities", params={"limit": 2})
    rest = await client.get(first.json()["next"])
    assert [i["id"] for i in first.json()["items"] + rest.json()["items"]] == await ids()
    assert (await client.get(f"{API}/facilities", params={"type": "gulag"})).status_code == 422


async def test_a_correction_needs_the_version_read(client: httpx.AsyncClient) -> None:
    facility = await create_facility(client, 17)
    path = f"{API}/facilities/{facility}"
    renamed = {"names": [{"value": "Penal Colony No. 71 (synthetic)", "script": "Latn"}]}
    assert (await client.patch(path, json=renamed)).status_code == 428
    assert (await client.patch(path, json=renamed, headers={"If-Match": '"3"'})).status_code == 412
    response = await client.patch(path, json=renamed, headers={"If-Match": '"1"'})
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == '"2"'
    assert response.json()["names"][0]["value"] == "Penal Colony No. 71 (synthetic)"
    # A region of another country, or clearing the type, is refused.
    for body in ({"region": "RU-MOW"}, {"type": None}, {"colour": "grey"}):
        refused = await client.patch(path, json=body, headers={"If-Match": '"2"'})
        assert refused.status_code == 422, (body, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"


async def test_everyone_reads_the_register_and_only_coordinators_keep_it(
    app: FastAPI, sign_in_as: SignIn
) -> None:
    coordinator = (await sign_in_as(Role.coordinator)).client
    facility = await create_facility(coordinator, 17)
    path = f"{API}/facilities/{facility}"
    for role in (Role.caseworker, Role.analyst, Role.auditor, Role.admin):
        caller = (await sign_in_as(role)).client
        assert (await caller.get(path)).status_code == 200, role
        assert (await caller.get(f"{API}/facilities")).status_code == 200, role
        refused = await caller.post(f"{API}/facilities", json=facility_body(3))
        assert refused.status_code == 403, role
        patched = await caller.patch(path, json={"type": "prison"}, headers={"If-Match": '"1"'})
        assert patched.status_code == 403, role
    partner = await partner_client(app, "public")
    try:
        assert (await partner.get(path)).status_code == 200
        assert (await partner.post(f"{API}/facilities", json=facility_body(3))).status_code == 403
    finally:
        await partner.aclose()
    assert (
        await coordinator.get(f"{API}/facilities/{'0' * 8}-0000-7000-8000-{'0' * 12}")
    ).status_code == 404

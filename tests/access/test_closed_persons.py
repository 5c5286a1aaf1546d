"""A person with a high-confidentiality case file is as closed as that case file (DESIGN
§4): their other case files do not show them to anyone not in charge."""

from collections.abc import Awaitable, Callable

from fastapi import FastAPI

from app.access.principal import Role
from tests.auth import SignedIn, api_client, create_account, create_partner, partner_token
from tests.factories import API, create_case, create_person

SignIn = Callable[..., Awaitable[SignedIn]]


async def test_a_closed_person_is_not_shown_through_their_normal_case_file(
    app: FastAPI, sign_in_as: SignIn
) -> None:
    coordinator = (await sign_in_as(Role.coordinator)).client
    in_charge = await sign_in_as(Role.caseworker)
    on_the_normal_one = await sign_in_as(Role.caseworker)
    bystander = (await sign_in_as(Role.caseworker)).client
    analyst = (await sign_in_as(Role.analyst)).client
    other = await create_account(app, Role.caseworker)
    person = await create_person(coordinator)
    normal = await create_case(
        coordinator, person["id"], assigned_caseworkers=[str(on_the_normal_one.account.id)]
    )
    await create_case(
        coordinator,
        person["id"],
        confidentiality="high",
        assigned_caseworkers=[str(in_charge.account.id), str(other.id)],
    )
    partner, secret = await create_partner(
        app,
        scopes=["sync:read"],
        agreement={"jurisdiction": "BY", "recognised_only": False, "max_tier": "restricted"},
    )
    async with api_client(app) as partner_client:
        token = await partner_token(partner_client, partner.client_id, str(secret))
        partner_client.headers["Authorization"] = f"Bearer {token}"
        for client in (bystander, analyst, partner_client):
            assert (await client.get(f"{API}/persons/{person['id']}")).status_code == 404
            assert (await client.get(f"{API}/cases/{normal['id']}")).status_code == 404
            for query in ("", "&recognition_status=not_assessed", "&citizenship=BY"):
                listed = await client.get(f"{API}/cases?person_id={person['id']}{query}")
                assert listed.status_code == 200 and listed.json()["items"] == [], listed.text
    # The caseworker of the normal case file keeps working on it, without the person.
    mine = on_the_normal_one.client
    assert (await mine.get(f"{API}/cases/{normal['id']}")).status_code == 200
    assert (await mine.get(f"{API}/persons/{person['id']}")).status_code == 404
    # Those in charge of the high case file see the person.
    assert (await in_charge.client.get(f"{API}/persons/{person['id']}")).status_code == 200

"""What a caller may not see stays out of every answer: a public partner gets no internal
reasons, and a stored answer is not replayed to a caller who has since lost access.
"""

import httpx
from fastapi import FastAPI

from app.access.principal import Role
from tests.auth import SignInAs, api_client, create_partner, partner_token
from tests.factories import API, case_body, create_person, event


async def _public_partner(app: FastAPI) -> httpx.AsyncClient:
    partner, secret = await create_partner(
        app,
        scopes=["sync:read"],
        agreement={"jurisdiction": "BY", "recognised_only": False, "max_tier": "public"},
    )
    client = api_client(app)
    client.headers["Authorization"] = (
        f"Bearer {await partner_token(client, partner.client_id, str(secret))}"
    )
    return client


async def test_public_partners_get_no_internal_reasons(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    person = await create_person(client)
    decided = await client.post(
        f"{API}/persons/{person['id']}/recognition",
        json={
            "status": "political_prisoner",
            "criteria": ["G3.1a"],
            "decided_on": "2022-01-10",
            "rationale": "internal: informant says so",
            "co_signers": ["Board member A"],
        },
        headers={"If-Match": '"0"'},
    )
    assert decided.status_code == 201, decided.text
    case = await client.post(
        f"{API}/cases",
        json=case_body(
            person["id"], [event("detained", "2021-08-10"), event("sentenced", "2022-01-01")]
        ),
    )
    events = (await client.get(f"{API}/cases/{case.json()['id']}/status-events")).json()
    retracted = await client.post(
        f"{API}/cases/{case.json()['id']}/status-events/{events['events'][1]['id']}/retraction",
        json={"reason": "informant in colony 15 recanted"},
        headers={"If-Match": '"1"'},
    )
    assert retracted.status_code == 201, retracted.text
    partner = await _public_partner(app)
    try:
        recognition = (await partner.get(f"{API}/persons/{person['id']}/recognition")).json()
        history = (await partner.get(f"{API}/cases/{case.json()['id']}/status-events")).json()
    finally:
        await partner.aclose()
    current = recognition["current"]
    assert current["status"] == "political_prisoner"
    for field in ("rationale", "co_signers", "decided_by", "source_ids"):
        assert field not in current, field
    retraction = history["events"][1]["retraction"]
    # That the event was withdrawn is public; why and by whom is not.
    assert retraction is not None
    assert "reason" not in retraction and "recorded_by" not in retraction


async def test_a_stored_answer_is_not_replayed_to_a_caller_who_lost_access(
    client: httpx.AsyncClient, sign_in_as: SignInAs
) -> None:
    caseworker = await sign_in_as(Role.caseworker)
    person = await create_person(client)
    case = (
        await client.post(
            f"{API}/cases",
            json=case_body(person["id"], assigned_caseworkers=[str(caseworker.account.id)]),
        )
    ).json()
    headers = {"If-Match": '"1"', "Idempotency-Key": "sentence-1"}
    body = event("sentenced", "2022-03-01", note="seen by the assigned caseworker only")
    first = await caseworker.client.post(
        f"{API}/cases/{case['id']}/status-events", json=body, headers=headers
    )
    assert first.status_code == 201, first.text
    withdrawn = await client.patch(
        f"{API}/cases/{case['id']}",
        json={"assigned_caseworkers": [], "confidentiality": "high"},
        headers={"If-Match": '"2"'},
    )
    assert withdrawn.status_code == 200, withdrawn.text
    again = await caseworker.client.post(
        f"{API}/cases/{case['id']}/status-events", json=body, headers=headers
    )
    assert again.status_code == 404
    assert "seen by the assigned caseworker only" not in again.text

"""Lists apply the policies in SQL; reads ask Cedar. Over a generated population of records
and principals, a record appears in a list exactly when reading it alone is allowed."""

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.access.principal import Role
from tests.auth import SignedIn, api_client, create_partner, partner_token
from tests.factories import API, case_body, create_person, event

case_file = st.fixed_dictionaries(
    {
        "jurisdiction": st.sampled_from(["BY", "RU"]),
        "confidentiality": st.sampled_from(["normal", "high"]),
        "assigned_to_caseworker": st.booleans(),
        "listed_for_partner": st.booleans(),
    }
)
# A person with one or two case files (a re-arrest is a new case file), so that a person
# can have a normal case file in a caseworker's care and a high one that is not.
record = st.fixed_dictionaries(
    {
        "recognised": st.booleans(),
        "documented_by_caseworker": st.booleans(),
        "case_files": st.lists(case_file, min_size=1, max_size=2),
    }
)
agreement = st.fixed_dictionaries(
    {
        "jurisdiction": st.sampled_from(["BY", "RU", None]),
        "recognised_only": st.booleans(),
        "max_tier": st.sampled_from(["public", "restricted"]),
    }
)


def _cases_of(records: list[dict[str, Any]]) -> list[tuple[bool, dict[str, Any]]]:
    """Every case file in creation order, with whether its person is closed (has a
    high-confidentiality case file)."""
    return [
        (any(c["confidentiality"] == "high" for c in item["case_files"]), case)
        for item in records
        for case in item["case_files"]
    ]


async def _listed(client: httpx.AsyncClient, path: str) -> set[str]:
    found: set[str] = set()
    url: str | None = f"{path}?limit=200"
    while url:
        response = await client.get(url)
        assert response.status_code == 200, response.text
        page = response.json()
        found |= {item["id"] for item in page["items"]}
        url = page["next"]
    return found


async def _readable(client: httpx.AsyncClient, path: str, ids: list[str]) -> set[str]:
    readable = set()
    for record_id in ids:
        status = (await client.get(f"{path}/{record_id}")).status_code
        assert status in (200, 404), status
        if status == 200:
            readable.add(record_id)
    return readable


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(records=st.lists(record, min_size=1, max_size=6), terms=agreement)
async def test_a_record_is_listed_exactly_when_it_may_be_read(
    app: FastAPI,
    db: Any,
    sign_in_as: Callable[..., Awaitable[SignedIn]],
    records: list[dict[str, Any]],
    terms: dict[str, Any],
) -> None:
    # As conftest.empty_all_tables does: the cascade reaches the append-only merge log.
    async with db.transaction():
        await db.execute("SET LOCAL session_replication_role = replica")
        await db.execute("TRUNCATE person, case_file, partner, app_user CASCADE")
    coordinator = (await sign_in_as(Role.coordinator)).client
    caseworker = await sign_in_as(Role.caseworker)
    case_ids: list[str] = []
    person_ids: list[str] = []
    listed_ids: list[uuid.UUID] = []
    for item in records:
        person = await create_person(
            caseworker.client if item["documented_by_caseworker"] else coordinator
        )
        person_ids.append(person["id"])
        for case in item["case_files"]:
            response = await coordinator.post(
                f"{API}/cases",
                json=case_body(
                    person["id"],
                    [event("detained", "2021-08-10")],
                    jurisdiction=case["jurisdiction"],
                    confidentiality=case["confidentiality"],
                    assigned_caseworkers=(
                        [str(caseworker.account.id)] if case["assigned_to_caseworker"] else []
                    ),
                ),
            )
            assert response.status_code == 201, response.text
            case_ids.append(response.json()["id"])
            if case["listed_for_partner"]:
                listed_ids.append(uuid.UUID(response.json()["id"]))
        if item["recognised"]:
            # Covers the person's (open) case files: a recognition is per case file.
            decided = await coordinator.post(
                f"{API}/persons/{person['id']}/recognition",
                json={
                    "status": "political_prisoner",
                    "criteria": ["G3.1a"],
                    "decided_on": "2022-01-10",
                },
                headers={"If-Match": '"0"'},
            )
            assert decided.status_code == 201, decided.text

    partner, secret = await create_partner(
        app,
        scopes=["sync:read"],
        agreement={**terms, "case_file_ids": [str(i) for i in listed_ids]},
    )
    partner_client = api_client(app)
    partner_client.headers["Authorization"] = (
        f"Bearer {await partner_token(partner_client, partner.client_id, str(secret))}"
    )
    callers = {
        "coordinator": coordinator,
        "caseworker": caseworker.client,
        "analyst": (await sign_in_as(Role.analyst)).client,
        "partner": partner_client,
    }
    try:
        for name, caller in callers.items():
            for path, ids in ((f"{API}/cases", case_ids), (f"{API}/persons", person_ids)):
                listed = await _listed(caller, path)
                readable = await _readable(caller, path, ids)
                assert listed == readable, (name, path, records, terms)
        # And both follow DESIGN §4: a person with a high-confidentiality case file is
        # seen by a caseworker only when assigned to such a case file, whoever recorded
        # them; any other person is seen.
        expected = {
            person_id
            for person_id, item in zip(person_ids, records, strict=True)
            if all(c["confidentiality"] == "normal" for c in item["case_files"])
            or any(
                c["confidentiality"] == "high" and c["assigned_to_caseworker"]
                for c in item["case_files"]
            )
        }
        assert await _listed(caseworker.client, f"{API}/persons") == expected, records
        # A case file of such a person is as closed as they are: a caseworker sees it only
        # when assigned to it, an analyst never.
        seen_by_caseworker = {
            case_id
            for case_id, (person_closed, case) in zip(case_ids, _cases_of(records), strict=True)
            if case["assigned_to_caseworker"] or not person_closed
        }
        assert await _listed(caseworker.client, f"{API}/cases") == seen_by_caseworker, records
    finally:
        await partner_client.aclose()

"""A recognition decision covers case files (DESIGN §2): a person recognised for one
prosecution is not counted, listed or shared as a recognised prisoner for a later arrest
until a decision covers it."""

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from app.access.principal import Role
from tests.auth import SignedIn, api_client, create_partner, partner_token
from tests.conftest import row_counts
from tests.factories import API, RECOGNISED, WITHDRAWN, create_case, create_person, decide, event
from tests.factories import transition as record_transition


@pytest.fixture
async def partner_for_recognised(app: FastAPI, clean_tables: None) -> AsyncIterator[Any]:
    """A partner whose agreement shares the BY case files of recognised political prisoners
    (made on demand, after the records exist, like the tests' other partners)."""
    opened: list[httpx.AsyncClient] = []

    async def make() -> httpx.AsyncClient:
        partner, secret = await create_partner(
            app,
            scopes=["sync:read"],
            agreement={"jurisdiction": "BY", "recognised_only": True, "max_tier": "restricted"},
        )
        client = api_client(app)
        opened.append(client)
        token = await partner_token(client, partner.client_id, str(secret))
        client.headers["Authorization"] = f"Bearer {token}"
        return client

    yield make
    for client in opened:
        await client.aclose()


async def _ids(client: httpx.AsyncClient, query: str = "") -> list[str]:
    response = await client.get(f"{API}/cases?{query}")
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def _case(client: httpx.AsyncClient, case_id: str) -> dict[str, Any]:
    response = await client.get(f"{API}/cases/{case_id}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _released_in_2021_and_arrested_again_in_2024(
    client: httpx.AsyncClient,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Recognised in 2020 for case file A, released; arrested again in 2024 (case file B)."""
    person = await create_person(client)
    first = await create_case(client, person["id"], [event("detained", "2020-08-10")])
    decided = await decide(client, person["id"], {**RECOGNISED, "decided_on": "2020-10-01"}, 0)
    assert decided.status_code == 201, decided.text
    assert decided.json()["current"]["case_file_ids"] == [first["id"]]
    released = await record_transition(client, first, "released", "2021-06-01", version=2)
    assert released.status_code == 201, released.text
    second = await create_case(client, person["id"], [event("detained", "2024-03-01")])
    return person, first, second


async def test_a_recognition_does_not_cover_a_later_arrest_until_a_decision_does(
    client: httpx.AsyncClient, partner_for_recognised: Callable[[], Awaitable[httpx.AsyncClient]]
) -> None:
    person, first, second = await _released_in_2021_and_arrested_again_in_2024(client)

    # Held again, but not as a recognised political prisoner: the 2020 decision is about A.
    assert await _ids(client, "recognition_status=political_prisoner&status=detained") == []
    assert await _ids(client, "recognition_status=political_prisoner") == [first["id"]]
    assert await _ids(client, "recognition_status=not_assessed") == [second["id"]]
    assert (await _case(client, second["id"]))["recognition_status"] == "not_assessed"
    assert (await _case(client, first["id"]))["recognition_status"] == "political_prisoner"
    # The person's own status is still their latest decision.
    read = (await client.get(f"{API}/persons/{person['id']}")).json()
    assert read["recognition_status"] == "political_prisoner"

    # A partner limited to recognised prisoners gets A (and so the person), not B.
    partner = await partner_for_recognised()
    assert (await partner.get(f"{API}/cases/{second['id']}")).status_code == 404
    assert (await partner.get(f"{API}/cases/{first['id']}")).status_code == 200
    assert await _ids(partner) == [first["id"]]
    assert (await partner.get(f"{API}/persons/{person['id']}")).status_code == 200
    assert await _ids(partner, "status=detained") == []
    # What the partner reads of the recognition names only the case files it may see.
    seen = (await partner.get(f"{API}/persons/{person['id']}/recognition")).json()
    assert seen["current"]["case_file_ids"] == [first["id"]]

    # A new decision covers the open case file, B, and changes both.
    later = await decide(client, person["id"], {**RECOGNISED, "decided_on": "2024-05-02"}, 1)
    assert later.status_code == 201, later.text
    assert later.json()["current"]["case_file_ids"] == [second["id"]]
    assert await _ids(client, "recognition_status=political_prisoner&status=detained") == [
        second["id"]
    ]
    covered = await client.get(f"{API}/cases/{second['id']}")
    assert covered.json()["recognition_status"] == "political_prisoner"
    # A covered case file moves to a new version: what it shows changed.
    assert covered.headers["etag"] == f'"{second["version"] + 1}"'
    assert (await partner.get(f"{API}/cases/{second['id']}")).status_code == 200
    assert set(await _ids(partner)) == {first["id"], second["id"]}
    # A, released, keeps its recognition: a former political prisoner.
    assert (await _case(client, first["id"]))["former_political_prisoner"] is True


async def test_a_decision_may_list_the_case_files_it_covers(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    person, first, second = await _released_in_2021_and_arrested_again_in_2024(client)
    other = await create_case(client)
    before = await row_counts(db)
    for foreign in ([other["id"]], [str(uuid.uuid4())], [second["id"], other["id"]]):
        refused = await decide(
            client,
            person["id"],
            {**RECOGNISED, "decided_on": "2024-05-02", "case_file_ids": foreign},
            1,
        )
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"] == "urn:habeas:problem:unknown-reference"
    twice = await decide(
        client,
        person["id"],
        {**RECOGNISED, "decided_on": "2024-05-02", "case_file_ids": [second["id"]] * 2},
        1,
    )
    assert twice.status_code == 422, twice.text
    assert await row_counts(db) == before

    # Under review for the new arrest only: A keeps its recognition.
    review = await decide(
        client,
        person["id"],
        {"status": "under_review", "decided_on": "2024-05-02", "case_file_ids": [second["id"]]},
        1,
    )
    assert review.status_code == 201, review.text
    assert (await _case(client, second["id"]))["recognition_status"] == "under_review"
    assert (await _case(client, first["id"]))["recognition_status"] == "political_prisoner"
    # An empty list covers nothing: a decision about the person alone.
    alone = await decide(
        client,
        person["id"],
        {"status": "under_review", "decided_on": "2024-05-03", "case_file_ids": []},
        2,
    )
    assert alone.status_code == 201, alone.text
    assert alone.json()["current"]["case_file_ids"] == []
    history = alone.json()["history"]
    assert [d["case_file_ids"] for d in history] == [[], [second["id"]], [first["id"]]]


async def test_a_withdrawal_states_its_rationale_and_exclusion_code(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    person, first, second = await _released_in_2021_and_arrested_again_in_2024(client)
    before = await row_counts(db)
    without_reason = {k: v for k, v in WITHDRAWN.items() if k != "rationale"}
    without_code = {k: v for k, v in WITHDRAWN.items() if k != "exclusion_code"}
    for bad in (
        without_reason,
        {**WITHDRAWN, "rationale": "   "},
        without_code,
        {**WITHDRAWN, "exclusion_code": "released"},
        # A recognition has no exclusion; nor has a review.
        {**RECOGNISED, "exclusion_code": "other", "decided_on": "2024-05-02"},
        {"status": "under_review", "decided_on": "2024-05-02", "exclusion_code": "other"},
    ):
        refused = await decide(client, person["id"], bad, 1)
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
    assert await row_counts(db) == before

    withdrawn = await decide(client, person["id"], {**WITHDRAWN, "decided_on": "2024-06-01"}, 1)
    assert withdrawn.status_code == 201, withdrawn.text
    current = withdrawn.json()["current"]
    assert current["exclusion_code"] == "committed_violent_offence"
    # By default a withdrawal takes back the recognition on the closed case file too, and
    # covers the open one.
    assert current["case_file_ids"] == sorted([first["id"], second["id"]])
    released = await _case(client, first["id"])
    assert released["recognition_status"] == "withdrawn"
    assert released["former_political_prisoner"] is False
    assert await _ids(client, "former_political_prisoner=true") == []

    # Someone persecuted may be left unrecognised for an exclusion.
    persecuted = await decide(
        client,
        person["id"],
        {
            "status": "politically_persecuted",
            "criteria": ["PACE-c"],
            "decided_on": "2024-07-01",
            "exclusion_code": "advocated_violence",
            "rationale": "Persecuted, but called for violence.",
        },
        2,
    )
    assert persecuted.status_code == 201, persecuted.text


async def test_a_former_political_prisoner_is_recognised_and_no_longer_held(
    client: httpx.AsyncClient,
) -> None:
    person = await create_person(client)
    case = await create_case(
        client, person["id"], [event("detained", "2021-01-10"), event("sentenced", "2021-09-01")]
    )
    never_recognised = await create_case(
        client, history=[event("detained", "2021-02-01"), event("released", "2021-05-01")]
    )
    assert (await decide(client, person["id"], RECOGNISED, 0)).status_code == 201
    # Sentenced and held: a political prisoner, not a former one.
    held = await _case(client, case["id"])
    assert (held["recognition_status"], held["former_political_prisoner"]) == (
        "political_prisoner",
        False,
    )
    assert await _ids(client, "former_political_prisoner=true") == []

    freed = await record_transition(client, case, "pardoned", "2023-09-11", version=2)
    assert freed.status_code == 201, freed.text
    assert await _ids(client, "former_political_prisoner=true") == [case["id"]]
    assert await _ids(client, "former_political_prisoner=false") == [never_recognised["id"]]
    assert await _ids(client, "former_political_prisoner=true&status=pardoned") == [case["id"]]
    assert (await _case(client, case["id"]))["former_political_prisoner"] is True
    assert (await _case(client, never_recognised["id"]))["former_political_prisoner"] is False
    assert (await client.get(f"{API}/cases?former_political_prisoner=maybe")).status_code in (
        400,
        422,
    )


async def test_a_decision_records_each_case_file_it_changed(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    person = await create_person(client)
    case = await create_case(client, person["id"])
    decided = await decide(client, person["id"], RECOGNISED, 0)
    assert decided.status_code == 201, decided.text
    changes = await db.fetchval(
        "SELECT changes FROM audit_event WHERE action = 'recognition.decide' ORDER BY seq DESC"
    )
    by_record = {(c["type"], c["id"]): c["fields"] for c in json.loads(changes)}
    assert by_record[("case", case["id"])] == {
        "recognition_status": {"before": "not_assessed", "after": "political_prisoner"},
        "version": {"before": 1, "after": 2},
    }
    decision = by_record[("recognition_decision", decided.json()["current"]["id"])]
    assert decision["case_file_ids"]["after"] == [case["id"]]


async def test_the_criteria_carry_their_version_sources_and_wording(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(f"{API}/recognition/criteria")
    assert response.status_code == 200, response.text
    table = response.json()
    assert table["version"] == "2"
    sources = {source["id"]: source for source in table["sources"]}
    guidelines, pace = sources["guidelines-2013"], sources["pace-1900"]
    assert "Guidelines on the Definition of Political Prisoner" in guidelines["title"]
    assert "Resolution 1900 (2012)" in pace["title"] and pace["part"] == "§3 (a)–(e)"
    criteria = {c["code"]: c for c in table["criteria"]}
    for code in ("G3.1a", "G3.1b", "G3.1c", "G3.2a", "G3.2b", "G3.2c", "G3.2d"):
        assert criteria[code]["source"] == "guidelines-2013"
        assert criteria[code]["wording"] == "paraphrase"
        assert "checked against the published Guidelines" in criteria[code]["note"]
    for letter in "abcde":
        assert criteria[f"PACE-{letter}"]["source"] == "pace-1900"
        assert criteria[f"PACE-{letter}"]["wording"] == "official"
    assert criteria["PACE-b"]["text"] == (
        "if the detention has been imposed for purely political reasons without connection "
        "to any offence"
    )
    codes = [c["code"] for c in table["exclusion_codes"]]
    assert "advocated_violence" in codes and "other" in codes
    # Every code the table lists is one a decision may cite.
    person = await create_person(client)
    cites_all = await decide(client, person["id"], {**RECOGNISED, "criteria": list(criteria)}, 0)
    assert cites_all.status_code == 201, cites_all.text


async def test_only_a_coordinator_decides(
    client: httpx.AsyncClient,
    sign_in_as: Callable[..., Awaitable[SignedIn]],
    partner_for_recognised: Callable[[], Awaitable[httpx.AsyncClient]],
    db: asyncpg.Connection,
) -> None:
    person, _, second = await _released_in_2021_and_arrested_again_in_2024(client)
    hidden = await create_case(client, jurisdiction="RU")
    caseworker = (await sign_in_as(Role.caseworker)).client
    analyst = (await sign_in_as(Role.analyst)).client
    admin = (await sign_in_as(Role.admin)).client
    auditor = (await sign_in_as(Role.auditor)).client
    partner = await partner_for_recognised()
    body = {**RECOGNISED, "decided_on": "2024-05-02", "case_file_ids": [second["id"]]}
    before = await row_counts(db)
    for caller, expected in ((caseworker, 403), (analyst, 403), (partner, 403), (admin, 404)):
        refused = await decide(caller, person["id"], body, 1)
        assert refused.status_code == expected, refused.text
    # A person the partner does not see is not there at all.
    assert (await decide(partner, hidden["person_id"], RECOGNISED, 0)).status_code == 404
    assert await row_counts(db) == before
    # The criteria are reference data for those who read case files; not for the admin
    # or the auditor.
    for caller, expected in ((caseworker, 200), (analyst, 200), (partner, 200)):
        assert (await caller.get(f"{API}/recognition/criteria")).status_code == expected
    for caller in (admin, auditor):
        assert (await caller.get(f"{API}/recognition/criteria")).status_code == 403

"""The duplicate check at intake (DESIGN §2, "Persons are one record each"): a would-be
person is compared with the recorded ones the caller may see; intake refuses a likely
duplicate with the candidates unless the caller states the person is someone else."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from app.access.principal import Role
from app.persons.matching import DUPLICATE_THRESHOLD
from app.persons.names import tokens
from tests.auth import SignedIn, api_client, create_partner, partner_token
from tests.conftest import row_counts
from tests.factories import API, create_case, person_body

SignIn = Callable[..., Awaitable[SignedIn]]


def olga(**overrides: Any) -> dict[str, Any]:
    names = [{"value": "Ольга Ковальчук", "script": "Cyrl", "language": "ru", "kind": "legal"}]
    return person_body(
        **{"names": names, "birth_date": "1985-04-02", "gender": "female", **overrides}
    )


def olga_in_latin(**overrides: Any) -> dict[str, Any]:
    names = [{"value": "Olga Kovalchuk", "script": "Latn", "kind": "transliteration"}]
    return person_body(**{"names": names, "birth_date": "1985", "gender": "female", **overrides})


async def test_a_second_record_of_one_person_is_refused_with_the_candidates(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    first = await client.post(f"{API}/persons", json=olga())
    assert first.status_code == 201
    before = await row_counts(db)
    again = await client.post(f"{API}/persons", json=olga_in_latin())
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    problem = again.json()
    assert problem["type"] == "urn:habeas:problem:possible-duplicate"
    assert problem["threshold"] == DUPLICATE_THRESHOLD
    (candidate,) = problem["candidates"]
    assert candidate["person"]["id"] == first.json()["id"]
    assert candidate["likely_duplicate"] is True
    assert candidate["score"] >= DUPLICATE_THRESHOLD
    reasons = {reason["kind"]: reason for reason in candidate["reasons"]}
    assert reasons["name"]["verdict"] == "same_spelling"
    assert reasons["name"]["given"] == "Olga Kovalchuk"
    assert reasons["name"]["recorded"] == "Ольга Ковальчук"
    assert reasons["birth_date"]["verdict"] == "agrees"
    # Nothing was written but the reading of the candidates.
    after = await row_counts(db)
    assert {t: n for t, n in after.items() if t != "audit_event"} == {
        t: n for t, n in before.items() if t != "audit_event"
    }


async def test_a_different_person_is_recorded_once_the_caller_says_so(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    first = (await client.post(f"{API}/persons", json=olga())).json()
    body = olga_in_latin(confirmed_distinct_from=[first["id"]])
    second = await client.post(f"{API}/persons", json=body)
    assert second.status_code == 201, second.text
    assert second.json()["confirmed_distinct_from"] == [first["id"]]
    # The statement is kept and shown with both persons.
    read_first = await client.get(f"{API}/persons/{first['id']}")
    assert read_first.json()["confirmed_distinct_from"] == [second.json()["id"]]
    listed = await client.get(f"{API}/persons", params={"q": "Kovalchuk"})
    shown = {item["id"]: item["confirmed_distinct_from"] for item in listed.json()["items"]}
    assert shown == {first["id"]: [second.json()["id"]], second.json()["id"]: [first["id"]]}
    assert await db.fetchval("SELECT count(*) FROM person_distinction") == 1
    # A third spelling of the same name meets both and must say so of both.
    third = person_body(
        names=[{"value": "Olha Kowalczuk", "script": "Latn", "kind": "legal"}],
        birth_date="1985",
        gender="female",
        confirmed_distinct_from=[first["id"]],
    )
    refused = await client.post(f"{API}/persons", json=third)
    assert refused.status_code == 409
    assert [c["person"]["id"] for c in refused.json()["candidates"]] == [second.json()["id"]]


async def test_facts_that_tell_people_apart_let_a_namesake_through(
    client: httpx.AsyncClient,
) -> None:
    await client.post(f"{API}/persons", json=olga())
    older = olga_in_latin(birth_date="1961")
    response = await client.post(f"{API}/persons", json=older)
    assert response.status_code == 201, response.text
    checked = await client.post(
        f"{API}/person-matches",
        json={"names": [{"value": "Olga Kovalchuk"}], "gender": "male", "birth_date": "1985"},
    )
    assert checked.status_code == 200
    top = checked.json()["candidates"][0]
    assert top["likely_duplicate"] is False
    assert {"kind": "gender", "verdict": "conflicts"} in [
        {"kind": r["kind"], "verdict": r["verdict"]} for r in top["reasons"]
    ]


async def test_a_surname_alone_is_a_candidate_but_never_stops_intake(
    client: httpx.AsyncClient,
) -> None:
    first = (await client.post(f"{API}/persons", json=olga())).json()
    checked = await client.post(f"{API}/person-matches", json={"names": [{"value": "Kovalchuk"}]})
    assert checked.status_code == 200
    (candidate,) = checked.json()["candidates"]
    assert candidate["person"]["id"] == first["id"]
    assert candidate["likely_duplicate"] is False
    body = person_body(names=[{"value": "Коvalchuk", "script": "Latn", "kind": "legal"}])
    assert (await client.post(f"{API}/persons", json=body)).status_code == 201


async def test_the_check_finds_only_persons_the_caller_may_see(
    app: FastAPI, sign_in_as: SignIn
) -> None:
    coordinator = (await sign_in_as(Role.coordinator)).client
    caseworker = (await sign_in_as(Role.caseworker)).client
    closed = (await coordinator.post(f"{API}/persons", json=olga())).json()
    await create_case(coordinator, closed["id"], confidentiality="high")
    query = {"names": [{"value": "Olga Kovalchuk"}], "birth_date": "1985"}
    mine = await coordinator.post(f"{API}/person-matches", json=query)
    assert [c["person"]["id"] for c in mine.json()["candidates"]] == [closed["id"]]
    theirs = await caseworker.post(f"{API}/person-matches", json=query)
    assert theirs.status_code == 200
    assert theirs.json()["candidates"] == []
    # Intake by someone who may not see the person is not refused: a refusal would tell
    # them the closed person exists.
    assert (await caseworker.post(f"{API}/persons", json=olga_in_latin())).status_code == 201
    # Nor can they name the closed person as someone else.
    body = olga_in_latin(confirmed_distinct_from=[closed["id"]])
    stated = await caseworker.post(f"{API}/persons", json=body)
    assert stated.status_code == 422
    assert stated.json()["type"] == "urn:habeas:problem:unknown-reference"


async def test_private_names_and_restricted_facts_stay_out_of_reasons(
    app: FastAPI, sign_in_as: SignIn
) -> None:
    coordinator = (await sign_in_as(Role.coordinator)).client
    names = [
        {"value": "Ганна Зарэчная", "script": "Cyrl", "kind": "legal"},
        {"value": "Ганна Сакалоўская", "script": "Cyrl", "kind": "former", "is_public": False},
    ]
    person = await coordinator.post(
        f"{API}/persons", json=person_body(names=names, birth_date="1990")
    )
    assert person.status_code == 201
    by_private_name = {"names": [{"value": "Hanna Sakalouskaya"}], "birth_date": "1990"}
    found = await coordinator.post(f"{API}/person-matches", json=by_private_name)
    assert [c["person"]["id"] for c in found.json()["candidates"]] == [person.json()["id"]]
    # A caseworker may not find a person by a private name: at most by the public one.
    caseworker = (await sign_in_as(Role.caseworker)).client
    hidden = await caseworker.post(f"{API}/person-matches", json=by_private_name)
    assert hidden.status_code == 200
    assert all(not c["likely_duplicate"] for c in hidden.json()["candidates"])
    assert "Сакалоўская" not in hidden.text
    # A partner reads at its agreement's tier: the birth date is not compared for it.
    await create_case(coordinator, person.json()["id"])
    partner, secret = await create_partner(
        app,
        scopes=["sync:read"],
        agreement={"jurisdiction": "BY", "recognised_only": False, "max_tier": "public"},
    )
    async with api_client(app) as partner_client:
        token = await partner_token(partner_client, partner.client_id, str(secret))
        partner_client.headers["Authorization"] = f"Bearer {token}"
        seen = await partner_client.post(
            f"{API}/person-matches",
            json={
                "names": [{"value": "Hanna Zarechnaya"}],
                "birth_date": "1990",
                "citizenships": ["BY"],
                "region": "BY-HM",
            },
        )
    assert seen.status_code == 200, seen.text
    (candidate,) = seen.json()["candidates"]
    assert "birth_date" not in candidate["person"]
    assert [r["kind"] for r in candidate["reasons"]] == ["name", "citizenship", "region"]
    assert all("Сакалоўская" not in str(r) for r in candidate["reasons"])


async def test_who_may_not_check_is_refused(
    anonymous: httpx.AsyncClient, sign_in_as: SignIn
) -> None:
    query = {"names": [{"value": "Olga Kovalchuk"}]}
    assert (await anonymous.post(f"{API}/person-matches", json=query)).status_code == 401
    auditor = (await sign_in_as(Role.auditor)).client
    assert (await auditor.post(f"{API}/person-matches", json=query)).status_code == 403


async def test_bad_input_is_refused_and_nothing_is_written(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    first = (await client.post(f"{API}/persons", json=olga())).json()
    before = await row_counts(db)
    for bad in (
        {"names": []},
        {"names": [{"value": "Olga Kovalchuk"}], "birth_date": "2999"},
        {"names": [{"value": "Olga Kovalchuk"}], "is_admin": True},
        {"names": [{"value": "Olga Kovalchuk", "script": 7}]},
        {"names": "Olga Kovalchuk"},
    ):
        response = await client.post(f"{API}/person-matches", json=bad)
        assert response.status_code == 422, (bad, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    unknown = "00000000-0000-7000-8000-000000000000"
    for distinct in (["not-an-id"], [first["id"], first["id"]], [unknown], "x"):
        response = await client.post(
            f"{API}/persons", json=olga_in_latin(confirmed_distinct_from=distinct)
        )
        assert response.status_code == 422, (distinct, response.text)
    after = await row_counts(db)
    assert {t: n for t, n in after.items() if t != "audit_event"} == {
        t: n for t, n in before.items() if t != "audit_event"
    }


async def test_the_check_is_recorded_as_a_reading_with_the_names_as_fingerprints(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    first = (await client.post(f"{API}/persons", json=olga())).json()
    checked = await client.post(
        f"{API}/person-matches", json={"names": [{"value": "Olga Kovalchuk"}]}
    )
    assert checked.status_code == 200
    refused = await client.post(f"{API}/persons", json=olga_in_latin())
    assert refused.status_code == 409
    events = await db.fetch(
        "SELECT action, outcome, resource_id::text || related::text AS related,"
        " detail::text AS detail"
        " FROM audit_event WHERE action = 'person.match' ORDER BY seq"
    )
    # The check asked and the candidates shown by the refusal: each a reading of them.
    assert len(events) == 2, events
    for event in events:
        assert first["id"] in event["related"]
        assert "Kovalchuk" not in (event["detail"] or "")


async def test_two_intakes_of_one_person_at_once_record_them_once(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    responses = await asyncio.gather(
        client.post(f"{API}/persons", json=olga()),
        client.post(f"{API}/persons", json=olga_in_latin()),
    )
    assert sorted(r.status_code for r in responses) == [201, 409]
    assert await db.fetchval("SELECT count(*) FROM person") == 1


async def test_renaming_a_person_into_a_recorded_one_meets_the_check(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    first = (await client.post(f"{API}/persons", json=olga())).json()
    placeholder = person_body(
        names=[{"value": "Nieviadomaja Asoba", "script": "Latn", "kind": "legal"}],
        gender="female",
        birth_date="1985",
    )
    second = (await client.post(f"{API}/persons", json=placeholder)).json()
    rename = {"names": [{"value": "Olga Kovalchuk", "script": "Latn", "kind": "legal"}]}
    refused = await client.patch(
        f"{API}/persons/{second['id']}", json=rename, headers={"If-Match": '"1"'}
    )
    assert refused.status_code == 409, refused.text
    assert [c["person"]["id"] for c in refused.json()["candidates"]] == [first["id"]]
    kept = await client.get(f"{API}/persons/{second['id']}")
    assert [n["value"] for n in kept.json()["names"]] == ["Nieviadomaja Asoba"]
    stated = await client.patch(
        f"{API}/persons/{second['id']}",
        json={**rename, "confirmed_distinct_from": [first["id"]]},
        headers={"If-Match": '"1"'},
    )
    assert stated.status_code == 200, stated.text
    assert stated.json()["confirmed_distinct_from"] == [first["id"]]
    # A later edit of the names does not propose the pair again.
    again = await client.patch(
        f"{API}/persons/{second['id']}",
        json={"names": [{"value": "Olha Kovalchuk", "script": "Latn", "kind": "legal"}]},
        headers={"If-Match": '"2"'},
    )
    assert again.status_code == 200, again.text
    assert await db.fetchval("SELECT count(*) FROM person_distinction") == 1


@pytest.mark.parametrize(
    ("recorded", "typed"),
    [
        ("Ольга Ковальчук", "Olga Kovalcuhk"),  # two letters swapped
        ("Ольга Ковальчук", "Olga Kovalchk"),  # a letter left out
        ("Ольга Ковальчук", "Olag Kovalchuk"),  # in a short given name
        ("Иван Петров", "Ivan Petorv"),  # swapped, in a short surname
        ("Алесь Беляцкий", "Ales Bialatski"),  # a letter left out, Belarusian spelling
        ("Алесь Беляцкий", "Ales Bialliatski"),  # a letter doubled
    ],
)
async def test_a_typo_in_a_name_is_still_a_candidate(
    client: httpx.AsyncClient, recorded: str, typed: str
) -> None:
    """No reading folds a letter typed wrong: the word is matched through the recorded
    word keys a typo away (a letter wrong, one more or less, two swapped)."""
    body = person_body(names=[{"value": recorded, "script": "Cyrl", "kind": "legal"}])
    first = await client.post(f"{API}/persons", json=body)
    assert first.status_code == 201, first.text
    query = {"names": [{"value": typed}], "birth_date": body["birth_date"][:4]}
    shown = (await client.post(f"{API}/person-matches", json=query)).json()["candidates"]
    assert [candidate["person"]["id"] for candidate in shown] == [first.json()["id"]]
    far = {"names": [{"value": "Olga Kozlovskaya"}], "birth_date": "1985"}
    assert (await client.post(f"{API}/person-matches", json=far)).json()["candidates"] == []


async def test_a_name_removed_leaves_no_word_in_the_lexicon(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """The lexicon of word keys (name_token) holds the words of the names recorded now:
    a name the family asked to remove takes its words with it."""
    secret = "Зьмітрок Ўладарэвіч"
    body = person_body(
        names=[
            {"value": "Міхась Лабановіч", "script": "Cyrl", "kind": "legal"},
            {"value": secret, "script": "Cyrl", "kind": "alias", "is_public": False},
        ]
    )
    made = (await client.post(f"{API}/persons", json=body)).json()
    words = [key for key in tokens(secret) if not key.startswith("=")]
    count = "SELECT count(*) FROM name_token WHERE token = ANY($1::text[])"
    assert await db.fetchval(count, words) > 0
    kept = [{"value": "Міхась Лабановіч", "script": "Cyrl", "kind": "legal"}]
    renamed = await client.patch(
        f"{API}/persons/{made['id']}",
        json={"names": kept},
        headers={"If-Match": f'"{made["version"]}"'},
    )
    assert renamed.status_code == 200, renamed.text
    assert await db.fetchval(count, words) == 0
    # The words still held stay.
    assert await db.fetchval(count, [k for k in tokens("Лабановіч")]) > 0

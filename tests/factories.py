"""Synthetic test data made through the API (never real people)."""

from typing import Any

import httpx
from anyascii import anyascii

from app.seed import vocabulary

API = "/api/v1"

# Synthetic confidential values: tests of what must never show them look for them.
SECRET_RELATIVE = "Aliaksandra Zyablitskaya"
SECRET_PHONE = "+375 29 555 01 23"
SECRET_ADDRESS = "Vulitsa Zialiony Luh 7, flat 12"
SECRET_NAME = "Tajny Psieudanim"
SECRET_WITNESS = "cellmate Yanka, via his mother"
PERSON_SECRETS = (SECRET_RELATIVE, SECRET_PHONE, SECRET_ADDRESS, SECRET_NAME)

SOURCE = {
    "publisher": "Regional human rights monitor",
    "title": "Weekly bulletin no. 12",
    "url": "https://monitor.example/bulletins/12",
    "published_on": "2024-03-22",
    "reliability": "B",
    "credibility": 2,
    "is_public": True,
}

RECOGNISED = {
    "status": "political_prisoner",
    "criteria": ["G3.1a", "PACE-a"],
    "co_signers": ["Partner Human Rights Centre"],
    "decided_on": "2022-03-01",
    "rationale": "Prosecuted for peaceful participation in protests.",
}

# A withdrawal states its reason: a rationale and an exclusion code.
WITHDRAWN = {
    "status": "withdrawn",
    "decided_on": "2023-01-01",
    "rationale": "Court records show he organised an armed attack on a guard.",
    "exclusion_code": "committed_violent_offence",
}


class _Namesakes:
    """How many default persons the running test has made (reset before each test by
    tests/conftest.py). The first is Міхась Лабановіч; each later one gets a surname of
    their own, so that the duplicate check does not take them for one person."""

    made = 0


def reset_default_names() -> None:
    _Namesakes.made = 0


def _default_names() -> list[dict[str, Any]]:
    made, _Namesakes.made = _Namesakes.made, _Namesakes.made + 1
    first_be, first_ru, first_latin = "Міхась", "Михаил", "Mikhas"
    if made == 0:
        be, ru, latin = "Лабановіч", "Лобанович", "Labanovich"
    else:
        # An invented surname, and past the first 29 another first name too: never two
        # persons with names the duplicate check would take for one.
        stems = vocabulary.SURNAME_STEMS[1:]
        endings = vocabulary.SURNAME_ENDINGS[1:]
        # Each round of the stems takes another ending and another first name: one stem
        # with two endings alone (Сасноўёнак, Сасноўенка) reads as one name.
        index, stem = divmod(made - 1, len(stems))
        ending = index % len(endings)
        if index:
            first_be, first_ru = vocabulary.MALE_FIRST[(index - 1) % len(vocabulary.MALE_FIRST)]
            first_latin = anyascii(first_be)
        be = stems[stem][0] + endings[ending][0]
        ru = stems[stem][1] + endings[ending][2]
        latin = anyascii(be)
    return [
        {"value": f"{first_be} {be}", "script": "Cyrl", "language": "be", "kind": "legal"},
        {
            "value": f"{first_ru} {ru}",
            "script": "Cyrl",
            "language": "ru",
            "kind": "transliteration",
        },
        {
            "value": f"{first_latin} {latin}",
            "script": "Latn",
            "language": "en",
            "kind": "transliteration",
        },
    ]


def person_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "names": _default_names() if "names" not in overrides else [],
        "publish_consent": True,
        "birth_date": "1979-03",
        "gender": "male",
        "citizenships": ["BY"],
        "region": "BY-HM",
        "occupation": "teacher",
    }
    body.update(overrides)
    return body


def confidential_person_body(**overrides: Any) -> dict[str, Any]:
    """A person with every kind of confidential value: relatives, contacts, an address and
    a name kept out of public view."""
    body = person_body(
        relatives=[{"name": SECRET_RELATIVE, "relation": "sister"}],
        contacts=[{"kind": "phone", "value": SECRET_PHONE}],
        address=SECRET_ADDRESS,
        names=[
            *person_body()["names"],
            {"value": SECRET_NAME, "script": "Latn", "kind": "hidden", "is_public": False},
        ],
    )
    body.update(overrides)
    return body


def if_match(version: int) -> dict[str, str]:
    return {"If-Match": f'"{version}"'}


def event(to_status: str, effective_date: str, **extra: Any) -> dict[str, Any]:
    details = extra.pop("details", {})
    if to_status == "released" and not details:
        details = {"release_reason": "sentence_served"}
    if to_status == "deported" and not details:
        details = {"destination_country": "LT"}
    if to_status == "sentenced" and "sentence_type" not in details:
        details = {"sentence_type": "imprisonment", **details}
    return {
        "to_status": to_status,
        "effective_date": effective_date,
        "confidence": extra.pop("confidence", "confirmed"),
        "details": details,
        **extra,
    }


def case_body(
    person_id: str, history: list[dict[str, Any]] | None = None, **overrides: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "person_id": person_id,
        "jurisdiction": "BY",
        "deprivation_type": "pretrial_custody",
        "charges": [{"code": "BY-CC", "article": "342", "part": "1"}],
        "status_history": history or [event("detained", "2021-08-10")],
    }
    body.update(overrides)
    return body


async def create_person(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    """A person created as intake does when the duplicate check proposes someone: the
    caller states that the candidates are someone else."""
    return await post_person(client, person_body(**overrides))


async def post_person(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(f"{API}/persons", json=body)
    if response.status_code == 409 and "candidates" in response.json():
        distinct = [candidate["person"]["id"] for candidate in response.json()["candidates"]]
        body = {**body, "confirmed_distinct_from": distinct}
        response = await client.post(f"{API}/persons", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def create_case(
    client: httpx.AsyncClient,
    person_id: str | None = None,
    history: list[dict[str, Any]] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    if person_id is None:
        person_id = (await create_person(client))["id"]
    response = await client.post(f"{API}/cases", json=case_body(person_id, history, **overrides))
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def transition(
    client: httpx.AsyncClient,
    case: dict[str, Any],
    to_status: str,
    effective_date: str,
    version: int | None = None,
    **extra: Any,
) -> httpx.Response:
    return await client.post(
        f"{API}/cases/{case['id']}/status-events",
        json=event(to_status, effective_date, **extra),
        headers={"If-Match": f'"{version if version is not None else case["version"]}"'},
    )


async def sentenced_cases(client: httpx.AsyncClient, count: int) -> list[dict[str, Any]]:
    return [
        await create_case(
            client, history=[event("detained", "2021-01-01"), event("sentenced", "2021-06-01")]
        )
        for _ in range(count)
    ]


def batch(case_ids: list[str], **overrides: Any) -> dict[str, Any]:
    """A collective event's body: one transition for all these case files."""
    body: dict[str, Any] = {
        "title": "Expulsion of 3 prisoners",
        "kind": "deportation",
        "effective_date": "2025-09-11",
        "to_status": "deported",
        "destination_country": "LT",
        "confidence": "confirmed",
        "case_file_ids": case_ids,
    }
    body.update(overrides)
    return body


def amnesty(case_ids: list[str], **overrides: Any) -> dict[str, Any]:
    """A collective event's body: these case files' prisoners released under an amnesty."""
    body: dict[str, Any] = {
        "title": "Amnesty",
        "kind": "amnesty",
        "to_status": "released",
        "confidence": "confirmed",
        "effective_date": "2023-02-01",
        "details": {"release_reason": "other"},
        "case_file_ids": case_ids,
    }
    body.update(overrides)
    return body


async def decide(
    client: httpx.AsyncClient, person_id: str, body: dict[str, object], version: int
) -> httpx.Response:
    """A recognition decision; `version` is the person's recognition version."""
    return await client.post(
        f"{API}/persons/{person_id}/recognition", json=body, headers={"If-Match": f'"{version}"'}
    )

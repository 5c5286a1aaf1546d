"""Synthetic test data made through the API (never real people)."""

from typing import Any

import httpx

API = "/api/v1"


def person_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "names": [
            {"value": "Міхась Лабановіч", "script": "Cyrl", "language": "be", "kind": "legal"},
            {
                "value": "Михаил Лобанович",
                "script": "Cyrl",
                "language": "ru",
                "kind": "transliteration",
            },
            {
                "value": "Mikhas Labanovich",
                "script": "Latn",
                "language": "en",
                "kind": "transliteration",
            },
        ],
        "publish_consent": True,
        "birth_date": "1979-03",
        "gender": "male",
        "citizenships": ["BY"],
        "region": "BY-HM",
        "occupation": "teacher",
    }
    body.update(overrides)
    return body


def event(to_status: str, effective_date: str, **extra: Any) -> dict[str, Any]:
    details = extra.pop("details", {})
    if to_status == "released" and not details:
        details = {"release_reason": "sentence_served"}
    if to_status == "deported" and not details:
        details = {"destination_country": "LT"}
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
    response = await client.post(f"{API}/persons", json=person_body(**overrides))
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

"""Building the custody timeline through the API, for the tests beside this module.
Facilities are fictional: every name carries "(synthetic)"."""

from typing import Any

import httpx
from fastapi import FastAPI

from tests.auth import api_client, create_partner, partner_token
from tests.factories import API


def facility_body(number: int = 17, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "names": [
            {"value": f"Penal Colony No. {number} (synthetic)", "script": "Latn", "language": "en"},
            {
                "value": f"Исправительная колония № {number} (синтетическая)",
                "script": "Cyrl",
                "language": "ru",
            },
        ],
        "country": "BY",
        "region": "BY-VI",
        "type": "penal_colony",
    }
    body.update(overrides)
    return body


async def create_facility(client: httpx.AsyncClient, number: int = 17, **overrides: Any) -> str:
    response = await client.post(f"{API}/facilities", json=facility_body(number, **overrides))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def timeline_path(case: dict[str, Any]) -> str:
    return f"{API}/cases/{case['id']}/custody-timeline"


def entry(kind: str, effective_date: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "effective_date": effective_date,
        "confidence": extra.pop("confidence", "confirmed"),
        **extra,
    }


async def record(
    client: httpx.AsyncClient, case: dict[str, Any], kind: str, effective_date: str, **extra: Any
) -> dict[str, Any]:
    response = await client.post(timeline_path(case), json=entry(kind, effective_date, **extra))
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def transfer(
    client: httpx.AsyncClient, case: dict[str, Any], facility_id: str, day: str, **extra: Any
) -> dict[str, Any]:
    return await record(client, case, "transfer", day, facility_id=facility_id, **extra)


async def timeline(client: httpx.AsyncClient, case: dict[str, Any], **params: Any) -> Any:
    response = await client.get(timeline_path(case), params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def listed_ids(client: httpx.AsyncClient, **params: Any) -> set[str]:
    response = await client.get(f"{API}/cases", params=params)
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()["items"]}


async def partner_client(app: FastAPI, max_tier: str) -> httpx.AsyncClient:
    """A partner whose agreement shares every BY case file, up to `max_tier`. The caller
    closes the client."""
    partner, secret = await create_partner(
        app,
        scopes=["sync:read"],
        agreement={"jurisdiction": "BY", "recognised_only": False, "max_tier": max_tier},
    )
    client = api_client(app)
    token = await partner_token(client, partner.client_id, str(secret))
    client.headers["Authorization"] = f"Bearer {token}"
    return client

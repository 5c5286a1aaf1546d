"""Making report fixtures through the API, and asking for reports."""

import asyncio
from typing import Any

import httpx
from fastapi import FastAPI

from app.core.config import Settings
from app.reports import basis
from tests.factories import API, RECOGNISED, case_body, event, person_body


async def settle(app: FastAPI) -> None:
    """Wait until what was just recorded is inside a default report's knowledge time: the
    generation time less the settling interval (HABEAS_REPORT_SETTLE_SECONDS)."""
    settings: Settings = app.state.settings
    await asyncio.sleep(settings.report_settle_seconds + 0.01)


async def person(client: httpx.AsyncClient, *citizenships: str, **fields: Any) -> str:
    response = await client.post(
        f"{API}/persons", json=person_body(citizenships=list(citizenships) or ["BY"], **fields)
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def case(
    client: httpx.AsyncClient, person_id: str, *history: dict[str, Any], **fields: Any
) -> str:
    response = await client.post(f"{API}/cases", json=case_body(person_id, list(history), **fields))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def version_of(client: httpx.AsyncClient, case_id: str) -> int:
    return int((await client.get(f"{API}/cases/{case_id}")).json()["version"])


async def move(
    client: httpx.AsyncClient, case_id: str, to_status: str, day: str, **extra: Any
) -> httpx.Response:
    """Append a status event (at the case file's current version)."""
    return await client.post(
        f"{API}/cases/{case_id}/status-events",
        json=event(to_status, day, **extra),
        headers={"If-Match": f'"{await version_of(client, case_id)}"'},
    )


async def events_of(client: httpx.AsyncClient, case_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"{API}/cases/{case_id}/status-events")
    assert response.status_code == 200, response.text
    return response.json()["events"]  # type: ignore[no-any-return]


async def on_event(
    client: httpx.AsyncClient, case_id: str, event_id: str, action: str, body: dict[str, Any]
) -> httpx.Response:
    """Retract, supersede, confirm or reject one event."""
    return await client.post(
        f"{API}/cases/{case_id}/status-events/{event_id}/{action}",
        json=body,
        headers={"If-Match": f'"{await version_of(client, case_id)}"'},
    )


async def recognise(
    client: httpx.AsyncClient, person_id: str, decided_on: str, **fields: Any
) -> httpx.Response:
    version = (await client.get(f"{API}/persons/{person_id}/recognition")).json()["version"]
    return await client.post(
        f"{API}/persons/{person_id}/recognition",
        json={**RECOGNISED, "decided_on": decided_on, **fields},
        headers={"If-Match": f'"{version}"'},
    )


async def generate(client: httpx.AsyncClient, **parameters: Any) -> dict[str, Any]:
    body = {
        "kind": "status",
        "as_known_at": None,
        "baseline": "2020-01-01",
        "jurisdiction": "BY",
        **parameters,
    }
    response = await client.post(f"{API}/reports", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def build_basis(app: FastAPI, *, margin_seconds: float | None = None) -> None:
    """Build the path basis reports read, as the worker's job does (app/reports/basis.py);
    the margin is the settings' (none in tests) unless given."""
    if margin_seconds is None:
        margin_seconds = app.state.settings.report_basis_margin_seconds
    async with app.state.session_factory() as session:
        built = await basis.build(
            session,
            settle_seconds=app.state.settings.report_settle_seconds,
            margin_seconds=margin_seconds,
        )
        await session.commit()
    assert built is not None

"""The reports API: who may generate and read, snapshots that never change, the audit
record of every generation, bad input, and the consented public list."""

import csv
import io
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import openpyxl
import pypdf
import pytest
from fastapi import FastAPI
from PIL import Image

from app.access.principal import Role
from tests.auth import SignedIn, api_client, create_partner, partner_token
from tests.conftest import row_counts
from tests.factories import API, RECOGNISED, create_case, create_person, decide, event

pytestmark = pytest.mark.asyncio

REPORT = {
    "kind": "status",
    "as_of": "2025-09-30",
    "period": {"from": "2025-09-01", "to": "2025-09-30"},
    "baseline": "2020-01-01",
    "jurisdiction": "BY",
}


async def _held_person(
    client: httpx.AsyncClient, *, name: str, consent: bool, recognised: bool = True, **case: Any
) -> dict[str, Any]:
    person = await create_person(
        client,
        publish_consent=consent,
        names=[{"value": name, "script": "Latn", "language": "en", "kind": "legal"}],
    )
    created = await create_case(
        client,
        person["id"],
        history=[
            event("detained", "2024-03-02"),
            event(
                "sentenced",
                "2024-11-20",
                details={"sentence_type": "imprisonment", "term_months": 48},
            ),
        ],
        **case,
    )
    if recognised:
        response = await decide(client, person["id"], RECOGNISED, 0)
        assert response.status_code == 201, response.text
    return {"person": person, "case": created}


async def _partner(app: FastAPI, scopes: list[str]) -> httpx.AsyncClient:
    partner, secret = await create_partner(
        app,
        scopes=scopes,
        agreement={"jurisdiction": "BY", "recognised_only": True, "max_tier": "public"},
    )
    client = api_client(app)
    token = await partner_token(client, partner.client_id, str(secret))
    client.headers["Authorization"] = f"Bearer {token}"
    return client


async def test_who_may_generate_and_read(
    app: FastAPI, sign_in_as: Callable[..., Awaitable[SignedIn]], db: asyncpg.Connection
) -> None:
    coordinator = (await sign_in_as(Role.coordinator, "coordinator")).client
    await _held_person(coordinator, name="Ales Testovich", consent=True)
    made = {}
    for role in (Role.analyst, Role.coordinator, Role.admin):
        client = (await sign_in_as(role, f"reporter-{role.value}")).client
        response = await client.post(f"{API}/reports", json=REPORT)
        assert response.status_code == 201, (role, response.text)
        made[role] = response.json()
        assert response.headers["Location"] == f"{API}/reports/{made[role]['id']}"
        assert (await client.get(response.headers["Location"])).status_code == 200
    for role in (Role.caseworker, Role.auditor):
        client = (await sign_in_as(role, f"refused-{role.value}")).client
        before = await row_counts(db)
        refused = await client.post(f"{API}/reports", json=REPORT)
        assert refused.status_code == 403, role
        assert await row_counts(db) == before
        assert (await client.get(f"{API}/reports/{made[Role.analyst]['id']}")).status_code == 403
        assert (await client.get(f"{API}/reports")).status_code == 403
        public = await client.get(f"{API}/reports/public-list", params={"as_of": "2025-09-30"})
        assert public.status_code == 403
    async with api_client(app) as anonymous:
        assert (await anonymous.post(f"{API}/reports", json=REPORT)).status_code == 401
        assert (await anonymous.get(f"{API}/reports")).status_code == 401

    reader = await _partner(app, ["reports:read"])
    syncer = await _partner(app, ["sync:read"])
    try:
        read = await reader.get(f"{API}/reports/{made[Role.analyst]['id']}")
        assert read.status_code == 200
        assert read.json()["figures"]["held"]["total"] == 1
        assert (await reader.post(f"{API}/reports", json=REPORT)).status_code == 403
        assert (await syncer.get(f"{API}/reports")).status_code == 403
        assert (await syncer.get(f"{API}/reports/{made[Role.analyst]['id']}")).status_code == 403
    finally:
        await reader.aclose()
        await syncer.aclose()


async def test_a_snapshot_never_changes_and_every_generation_is_audited(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await _held_person(client, name="Ales Testovich", consent=True)
    made = (await client.post(f"{API}/reports", json=REPORT)).json()
    url = f"{API}/reports/{made['id']}"
    for method in ("PUT", "PATCH", "DELETE"):
        response = await client.request(method, url, json=made)
        assert response.status_code == 405, method
    assert (await client.get(url)).json() == made

    with pytest.raises(asyncpg.PostgresError):
        await db.execute("UPDATE report_snapshot SET content_sha256 = 'x'")
    with pytest.raises(asyncpg.PostgresError):
        await db.execute("DELETE FROM report_snapshot")
    with pytest.raises(asyncpg.PostgresError):
        await db.execute("TRUNCATE report_snapshot")
    assert await db.fetchval("SELECT content_sha256 FROM report_snapshot") == made["content_sha256"]
    audited = await db.fetch(
        "SELECT action, resource_id FROM audit_event WHERE action = 'report.generate'"
    )
    assert [(row["action"], str(row["resource_id"])) for row in audited] == [
        ("report.generate", made["id"])
    ]


async def test_generation_is_safe_to_retry_with_its_key(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    headers = {"Idempotency-Key": "report-2025-09"}
    first = await client.post(f"{API}/reports", json=REPORT, headers=headers)
    again = await client.post(f"{API}/reports", json=REPORT, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert await db.fetchval("SELECT count(*) FROM report_snapshot") == 1


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({**REPORT, "surprise": 1}, ["body", "surprise"]),
        ({**REPORT, "as_of": "2025-02-30"}, ["body", "as_of"]),
        ({**REPORT, "period": {"from": "2025-09-30", "to": "2025-09-01"}}, ["body"]),
        ({**REPORT, "as_of": "2025-08-31"}, ["body"]),
        ({**REPORT, "jurisdiction": "Belarus"}, ["body", "jurisdiction"]),
        ({**REPORT, "held_deprivation_types": []}, ["body", "held_deprivation_types"]),
        ({**REPORT, "as_known_at": "2025-09-30T10:00:00"}, ["body", "as_known_at"]),
        ({**REPORT, "kind": "weather"}, ["body", "kind"]),
    ],
)
async def test_bad_input_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, db: asyncpg.Connection, body: dict[str, Any], where: list[Any]
) -> None:
    before = await row_counts(db)
    response = await client.post(f"{API}/reports", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["loc"][: len(where)] == where
    assert await row_counts(db) == before


async def test_a_knowledge_time_to_come_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{API}/reports", json={**REPORT, "as_known_at": "2999-01-01T00:00:00Z"}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["type"] == "date_in_future"


async def test_unknown_report_is_404(client: httpx.AsyncClient) -> None:
    missing = await client.get(f"{API}/reports/0193a000-0000-7000-8000-000000000000")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


async def test_the_list_pages_newest_first(client: httpx.AsyncClient) -> None:
    made = [
        (await client.post(f"{API}/reports", json={**REPORT, "as_of": day})).json()["id"]
        for day in ("2025-09-30", "2025-10-31", "2025-11-30")
    ]
    first = (await client.get(f"{API}/reports", params={"limit": 2})).json()
    assert [item["id"] for item in first["items"]] == [made[2], made[1]]
    rest = (await client.get(first["next"])).json()
    assert [item["id"] for item in rest["items"]] == [made[0]]
    assert rest["next"] is None
    assert "figures" not in first["items"][0]


async def test_differences_name_only_who_may_be_named(client: httpx.AsyncClient) -> None:
    before = (
        await client.post(
            f"{API}/reports",
            json={
                **REPORT,
                "as_of": "2024-01-31",
                "period": {"from": "2024-01-01", "to": "2024-01-31"},
            },
        )
    ).json()
    assert before["differences"]["previous_id"] is None
    assert before["differences"]["entered_custody"] is None
    await _held_person(client, name="Named Person", consent=True)
    await _held_person(client, name="Unnamed Person", consent=False)
    await _held_person(client, name="Hidden Person", consent=True, confidentiality="high")
    after = (await client.post(f"{API}/reports", json=REPORT)).json()
    differences = after["differences"]
    assert differences["previous_id"] == before["id"]
    assert differences["entered_custody"] == {"count": 3, "named": [{"name": "Named Person"}]}
    assert differences["left_custody"] == {"count": 0, "named": []}
    assert "Unnamed Person" not in str(after) and "Hidden Person" not in str(after)


async def test_the_public_list_holds_only_consented_recognised_prisoners(
    client: httpx.AsyncClient,
) -> None:
    await _held_person(client, name="Listed Prisoner", consent=True)
    await _held_person(client, name="No Consent", consent=False)
    await _held_person(client, name="Not Recognised", consent=True, recognised=False)
    await _held_person(client, name="High Confidentiality", consent=True, confidentiality="high")
    response = await client.get(f"{API}/reports/public-list", params={"as_of": "2025-09-30"})
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["next"] is None
    assert page["items"] == [
        {
            "names": ["Listed Prisoner"],
            "birth_year": 1979,
            "region": "BY-HM",
            "articles": ["342"],
            "sentence_type": "imprisonment",
            "term_months": 48,
            "held_since": "2024-03-02",
        }
    ]
    before = await client.get(f"{API}/reports/public-list", params={"as_of": "2024-03-01"})
    assert before.json()["items"] == []

    document = await client.get(
        f"{API}/reports/public-list", params={"as_of": "2025-09-30", "format": "csv"}
    )
    assert document.status_code == 200
    assert document.headers["content-type"].startswith("text/csv")
    text = document.content.decode("utf-8")
    assert text.startswith("\ufeff")
    assert "Listed Prisoner" in text
    for absent in ("No Consent", "Not Recognised", "High Confidentiality"):
        assert absent not in text
    assert len(text.strip().splitlines()) == 2


async def test_a_report_downloads_in_every_format(client: httpx.AsyncClient) -> None:
    await _held_person(client, name="Алесь Тэставы", consent=True)
    made = (await client.post(f"{API}/reports", json=REPORT)).json()
    url = f"{API}/reports/{made['id']}"
    held = made["figures"]["held"]["total"]
    assert held == 1

    pdf = await client.get(url, params={"format": "pdf"})
    assert pdf.headers["content-type"] == "application/pdf"
    text = "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf.content)).pages)
    assert made["content_sha256"] in text
    assert made["parameters"]["as_known_at"][:10] in text

    png = await client.get(url, headers={"Accept": "image/png"}, params={"chart": "releases"})
    assert png.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).size == (1200, 600)

    xlsx = await client.get(url, params={"format": "xlsx"})
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.content))["figures"]
    rows = {(row[0], row[1] or ""): row[2] for row in sheet.iter_rows(values_only=True)}
    assert rows[("held.total", "")] == held

    table = await client.get(url, headers={"Accept": "text/csv"})
    assert table.content.startswith("\ufeff".encode())
    read = list(csv.DictReader(io.StringIO(table.content.decode("utf-8-sig"))))
    assert {"figure": "held.total", "key": "", "value": str(held)} in read

    assert (await client.get(url, headers={"Accept": "text/html"})).json() == made
    refused = await client.get(url, params={"format": "docx"})
    assert refused.status_code == 422

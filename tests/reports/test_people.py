"""Reports count people, and name only those who may be named when the report is read."""

import io
from typing import Any

import httpx
import pypdf
import pytest

from tests.factories import API, event
from tests.reports.reporting import case, move, person

pytestmark = pytest.mark.asyncio

SEPTEMBER = {
    "as_of": "2025-09-30",
    "period": {"from": "2025-09-01", "to": "2025-09-30"},
    "jurisdiction": "BY",
}


async def _generate(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post(f"{API}/reports", json={**SEPTEMBER, **body})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _named(name: str, consent: bool) -> dict[str, Any]:
    return {
        "publish_consent": consent,
        "names": [{"value": name, "script": "Latn", "language": "en", "kind": "legal"}],
    }


async def test_a_withdrawn_consent_takes_effect_in_reports_already_stored(
    client: httpx.AsyncClient,
) -> None:
    before = await _generate(
        client, as_of="2025-08-31", period={"from": "2025-08-01", "to": "2025-08-31"}
    )
    consenting = await person(client, **_named("Ales Consenting", consent=True))
    silent = await person(client, **_named("Hanna Silent", consent=False))
    for someone in (consenting, silent):
        held = await case(client, someone, event("detained", "2025-09-03"))
        claim = await move(client, held, "released", "2025-09-17", confidence="unconfirmed")
        assert claim.status_code == 201, claim.text
    made = await _generate(client)
    url = f"{API}/reports/{made['id']}"
    claims = made["figures"]["claims"]["unconfirmed"]
    assert claims["count"] == 2
    # Only who may be named is listed; the other claim is counted, never referenced.
    assert claims["items"] == [
        {"to_status": "released", "effective_date": "2025-09-17", "name": "Ales Consenting"}
    ]
    assert made["differences"]["previous_id"] == before["id"]
    assert made["differences"]["entered_custody"] == {
        "count": 2,
        "named": [{"name": "Ales Consenting"}],
    }

    etag = (await client.get(f"{API}/persons/{consenting}")).headers["ETag"]
    withdrawn = await client.patch(
        f"{API}/persons/{consenting}", json={"publish_consent": False}, headers={"If-Match": etag}
    )
    assert withdrawn.status_code == 200, withdrawn.text
    read = (await client.get(url)).json()
    assert read["figures"]["claims"]["unconfirmed"] == {**claims, "items": []}
    assert read["differences"]["entered_custody"] == {"count": 2, "named": []}
    assert read["content_sha256"] == made["content_sha256"]
    table = await client.get(url, params={"format": "csv"})
    assert "Consenting" not in table.content.decode("utf-8-sig")
    pdf = await client.get(url, params={"format": "pdf"})
    pages = pypdf.PdfReader(io.BytesIO(pdf.content)).pages
    assert "Consenting" not in "".join(page.extract_text() for page in pages)
    assert "Silent" not in str(made) + str(read)


async def test_a_person_with_two_case_files_dies_and_is_pardoned_once(
    client: httpx.AsyncClient,
) -> None:
    dying = await person(client)
    first = await case(client, dying, event("detained", "2025-01-10"))
    await case(client, dying, event("detained", "2025-02-10"))
    assert (await move(client, first, "died_in_custody", "2025-09-05")).status_code == 201

    pardoned = await person(client, "BY", "LT")
    for day in ("2025-01-10", "2025-02-10"):
        held = await case(client, pardoned, event("detained", day))
        assert (await move(client, held, "pardoned", "2025-09-11")).status_code == 201

    figures = (await _generate(client))["figures"]
    # The death recorded on one case file ends the custody the other still shows.
    assert figures["held"]["total"] == 0
    assert figures["period"]["deaths_in_custody"] == 1
    assert figures["cumulative"]["deaths_in_custody_since_baseline"] == 1
    assert figures["period"]["released"]["total"] == 1
    assert figures["period"]["released"]["by_mode"]["pardoned"] == 1
    assert figures["period"]["released_foreign_by_citizenship"] == {"LT": 1}
    assert figures["series"]["held_by_month"][-1] == {
        "month_end": "2025-09-30",
        "held": 0,
        "recognised": 0,
    }
    august = (
        await _generate(
            client, as_of="2025-08-31", period={"from": "2025-08-01", "to": "2025-08-31"}
        )
    )["figures"]
    assert august["held"]["total"] == 2
    assert august["period"]["new_detentions"] == 0
    assert august["cumulative"]["detentions_since_baseline"] == 4


async def test_a_day_to_come_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{API}/reports",
        json={"as_of": "9999-12-31", "period": {"from": "9999-12-01", "to": "9999-12-31"}},
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["type"] == "date_in_future"
    listed = await client.get(f"{API}/reports/public-list", params={"as_of": "9999-12-31"})
    assert listed.status_code == 422
    assert listed.json()["errors"][0]["loc"] == ["query", "as_of"]


async def test_accept_quality_values_are_honoured(client: httpx.AsyncClient) -> None:
    made = await _generate(client)
    url = f"{API}/reports/{made['id']}"
    refused_png = await client.get(url, headers={"Accept": "image/png;q=0, application/json"})
    assert refused_png.headers["content-type"] == "application/json"
    preferred = await client.get(url, headers={"Accept": "application/json;q=0.5, text/csv"})
    assert preferred.headers["content-type"].startswith("text/csv")
    assert "attachment" in preferred.headers["content-disposition"]

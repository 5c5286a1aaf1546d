"""The sources a shared record cites reach a partner beside it in the change feed, at the
restricted tier only (where citations are shown), never with the witness, and nowhere
else: not the sources of records it does not share, not through /sources."""

from contextlib import aclosing
from typing import Any
from uuid import UUID

import asyncpg
import httpx
from fastapi import FastAPI

from app.sync.schemas import FeedPage
from tests.custody.custody import create_facility, transfer
from tests.factories import (
    API,
    RECOGNISED,
    create_case,
    create_person,
    decide,
    if_match,
    transition,
)
from tests.sync.feed import FEED, Copy, feed_partner, follow

SHARES_BY = {"jurisdiction": "BY", "recognised_only": False, "max_tier": "public"}
WITNESS = "A cellmate's sister, reachable through the Vilnius office"


async def _source(client: httpx.AsyncClient, title: str, **extra: Any) -> dict[str, Any]:
    response = await client.post(
        f"{API}/sources",
        json={
            "publisher": "Regional monitor",
            "title": title,
            "reliability": "B",
            "credibility": 2,
            "is_public": False,
            **extra,
        },
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _everything_said(copy: Copy) -> str:
    return repr(copy.records)


async def test_a_restricted_partner_reads_the_sources_its_shared_records_cite_and_no_other(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    hearing = await _source(client, "Court hearing report", witness=WITNESS)
    decision_basis = await _source(client, "Appeal of the family", is_public=True)
    elsewhere = await _source(client, "Report from another country")
    never_cited = await _source(client, "Unused interview notes")
    transfer_call = await _source(client, "A call from the colony")
    release_letter = await _source(client, "Letter from the released")

    person = await create_person(client)
    case = await create_case(client, person["id"], jurisdiction="BY")
    other_person = await create_person(client)
    other_case = await create_case(client, other_person["id"], jurisdiction="RU")
    moved = await transition(
        client, other_case, "sentenced", "2022-02-01", source_ids=[elsewhere["id"]]
    )
    assert moved.status_code == 201, moved.text

    public, _ = await feed_partner(app, SHARES_BY)
    restricted, record = await feed_partner(app, SHARES_BY | {"max_tier": "restricted"})
    async with aclosing(public), aclosing(restricted):
        public_copy, restricted_copy = Copy(), Copy()
        await follow(public, public_copy)
        await follow(restricted, restricted_copy)
        assert restricted_copy.records[("case", case["id"])]["sources"] is None

        # A sentence citing the hearing report: the case file comes again, with it.
        moved = await transition(
            client, case, "sentenced", "2022-01-15", source_ids=[hearing["id"]]
        )
        assert moved.status_code == 201, moved.text
        assert restricted_copy.records[("case", case["id"])]["sources"] is None
        await follow(restricted, restricted_copy)
        assert [s["id"] for s in restricted_copy.records[("case", case["id"])]["sources"]] == [
            hearing["id"]
        ]
        # A transfer cites one, a claim's confirmation another: each is beside the case too.
        facility = await create_facility(client)
        await transfer(client, case, facility, "2022-03-01", source_ids=[transfer_call["id"]])
        current = (await client.get(f"{API}/cases/{case['id']}")).json()
        claim = await transition(
            client, current, "released", "2025-02-01", confidence="unconfirmed"
        )
        assert claim.status_code == 201, claim.text
        confirmed = await client.post(
            f"{API}/cases/{case['id']}/status-events/{claim.json()['event']['id']}/confirmation",
            json={"source_ids": [release_letter["id"]]},
            headers=if_match(claim.json()["case_version"]),
        )
        assert confirmed.status_code == 201, confirmed.text
        decided = await decide(
            client, person["id"], {**RECOGNISED, "source_ids": [decision_basis["id"]]}, 0
        )
        assert decided.status_code == 201, decided.text
        await follow(public, public_copy)
        await follow(restricted, restricted_copy)

        # A page as a client generated from the contract reads it.
        page = await restricted.get(FEED, params={"limit": 500})
        assert page.status_code == 200, page.text
        assert page.headers["content-type"] == "application/json"
        items = FeedPage.model_validate(page.json()).items
        (with_source,) = [item for item in items if item.kind == "case" and item.sources]
        assert UUID(hearing["id"]) in [source.id for source in with_source.sources or []]

        shared_case = restricted_copy.records[("case", case["id"])]
        assert [source["id"] for source in shared_case["sources"]] == sorted(
            [hearing["id"], transfer_call["id"], release_letter["id"]]
        )
        (cited,) = [s for s in shared_case["sources"] if s["id"] == hearing["id"]]
        assert cited["title"] == "Court hearing report"
        assert cited["reliability"] == "B" and cited["credibility"] == 2
        # The witness is confidential: it never leaves for a partner.
        assert "witness" not in cited
        assert WITNESS not in _everything_said(restricted_copy)
        (event,) = [e for e in shared_case["status_events"] if e["to_status"] == "sentenced"]
        assert event["source_ids"] == [hearing["id"]]
        (basis,) = restricted_copy.records[("person", person["id"])]["sources"]
        assert basis["id"] == decision_basis["id"]

        # Not the sources of a case file it does not share, nor one nobody cites.
        said = _everything_said(restricted_copy)
        assert elsewhere["id"] not in said and never_cited["id"] not in said

        # A public partner is shown no citations, and so no sources.
        public_case = public_copy.records[("case", case["id"])]
        assert public_case["sources"] is None
        assert public_copy.records[("person", person["id"])]["sources"] is None
        public_said = _everything_said(public_copy)
        assert hearing["id"] not in public_said and decision_basis["id"] not in public_said

        # Nowhere else: /sources does not serve a partner, even a source it was handed (a
        # record it may not read there is not there).
        for partner in (restricted, public):
            assert (await partner.get(f"{API}/sources/{hearing['id']}")).status_code == 404
            assert (await partner.get(f"{API}/sources")).status_code == 403

    # Each source handed over is a reading in the trail, by that partner.
    reads = await db.fetch(
        "SELECT related FROM audit_event WHERE action = 'sync.read' AND actor_id = $1",
        record.id,
    )
    related = {str(related) for row in reads for related in row["related"]}
    assert {hearing["id"], decision_basis["id"]} <= related
    assert elsewhere["id"] not in related

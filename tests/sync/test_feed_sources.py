"""The sources a shared record cites reach a partner beside it in the change feed, at the
restricted tier only (where citations are shown), never with the witness, and nowhere
else: not the sources of what it is not shared (another case file of the person, a
decision that also covers one), not through /sources."""

import json
import uuid
from contextlib import aclosing
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from app.access.policy import PolicyEngine
from app.access.principal import Principal, PrincipalKind, Role, SharingAgreement, Tier
from app.access.visibility import cited_source_resource
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
RESTRICTED = SHARES_BY | {"max_tier": "restricted"}
WITNESS = "A cellmate's sister, reachable through the Vilnius office"
NDJSON = {"Accept": "application/x-ndjson"}


async def _source(client: httpx.AsyncClient, title: str, **extra: Any) -> dict[str, Any]:
    response = await client.post(
        f"{API}/sources",
        json={
            "publisher": "Regional monitor",
            "title": title,
            "reliability": "B",
            "credibility": 2,
            "is_public": False,
            "witness": WITNESS,
            **extra,
        },
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _sources_of(copy: Copy, kind: str, record_id: str) -> list[str] | None:
    listed = copy.records[(kind, record_id)]["sources"]
    return None if listed is None else [source["id"] for source in listed]


async def test_a_restricted_partner_reads_the_sources_its_shared_records_cite_and_no_other(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    hearing = await _source(client, "Court hearing report")
    transfer_call = await _source(client, "A call from the colony")
    release_letter = await _source(client, "Letter from the released")
    decision_basis = await _source(client, "Appeal of the family", is_public=True)
    russian_verdict = await _source(client, "Verdict of the Russian court")
    both_cases = await _source(client, "Appeal covering both prosecutions")

    person = await create_person(client)
    case = await create_case(client, person["id"], jurisdiction="BY")
    # The same person's case file in another jurisdiction: not shared with the partner.
    unshared = await create_case(client, person["id"], jurisdiction="RU")

    public, _ = await feed_partner(app, SHARES_BY)
    restricted, record = await feed_partner(app, RESTRICTED)
    async with aclosing(public), aclosing(restricted):
        public_copy, restricted_copy = Copy(), Copy()
        await follow(public, public_copy)
        await follow(restricted, restricted_copy)
        # Nothing cited yet: an empty list at the restricted tier, none below it.
        assert _sources_of(restricted_copy, "case", case["id"]) == []
        assert _sources_of(public_copy, "case", case["id"]) is None

        # A sentence citing the hearing report: the case file comes again, with it.
        moved = await transition(
            client, case, "sentenced", "2022-01-15", source_ids=[hearing["id"]]
        )
        assert moved.status_code == 201, moved.text
        await follow(restricted, restricted_copy)
        assert _sources_of(restricted_copy, "case", case["id"]) == [hearing["id"]]

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
        # The unshared case file cites its own; a decision covering only the shared case
        # file cites one, and a later one covering both case files another.
        russian = await transition(
            client, unshared, "sentenced", "2022-02-01", source_ids=[russian_verdict["id"]]
        )
        assert russian.status_code == 201, russian.text
        decided = await decide(
            client,
            person["id"],
            {**RECOGNISED, "case_file_ids": [case["id"]], "source_ids": [decision_basis["id"]]},
            0,
        )
        assert decided.status_code == 201, decided.text
        again = await decide(
            client,
            person["id"],
            {
                **RECOGNISED,
                "decided_on": "2023-03-01",
                "case_file_ids": [case["id"], unshared["id"]],
                "source_ids": [both_cases["id"]],
            },
            1,
        )
        assert again.status_code == 201, again.text
        await follow(public, public_copy)
        await follow(restricted, restricted_copy)

        assert _sources_of(restricted_copy, "case", case["id"]) == sorted(
            [hearing["id"], transfer_call["id"], release_letter["id"]]
        )
        shared_case = restricted_copy.records[("case", case["id"])]
        (cited,) = [s for s in shared_case["sources"] if s["id"] == hearing["id"]]
        assert cited["title"] == "Court hearing report"
        assert (cited["reliability"], cited["credibility"]) == ("B", 2)
        # The witness is confidential: it never leaves for a partner.
        assert all("witness" not in source for source in shared_case["sources"])
        (event,) = [e for e in shared_case["status_events"] if e["to_status"] == "sentenced"]
        assert event["source_ids"] == [hearing["id"]]
        # The person's decisions: the sources of the one about the shared case file only.
        # The later one also covers the Russian case file: the partner sees that it was
        # decided and which source ids it cites, not what those sources are.
        assert _sources_of(restricted_copy, "person", person["id"]) == [decision_basis["id"]]
        decisions = restricted_copy.records[("person", person["id"])]["recognition"]
        assert [d["source_ids"] for d in decisions] == [
            [both_cases["id"]],
            [decision_basis["id"]],
        ]
        said = json.dumps(list(restricted_copy.records.values()))
        assert WITNESS not in said
        assert russian_verdict["id"] not in said
        assert "Appeal covering both prosecutions" not in said

        # A public partner is shown no citations, and so no sources.
        assert _sources_of(public_copy, "case", case["id"]) is None
        assert _sources_of(public_copy, "person", person["id"]) is None
        public_said = json.dumps(list(public_copy.records.values()))
        for source in (hearing, transfer_call, release_letter, decision_basis, both_cases):
            assert source["id"] not in public_said

        # Read again, nothing has changed: nothing is handed again.
        assert await follow(restricted, restricted_copy) == []

        # As a client generated from the contract reads a page, and as one stream.
        page = await restricted.get(FEED, params={"limit": 500})
        assert page.status_code == 200, page.text
        assert WITNESS not in page.text
        items = FeedPage.model_validate(page.json()).items
        (with_sources,) = [item for item in items if item.id == uuid.UUID(case["id"])]
        assert [str(source.id) for source in with_sources.sources or []] == sorted(
            [hearing["id"], transfer_call["id"], release_letter["id"]]
        )
        streamed = await restricted.get(FEED, params={"limit": 500}, headers=NDJSON)
        assert streamed.status_code == 200, streamed.text
        assert WITNESS not in streamed.text
        lines = [json.loads(line) for line in streamed.text.splitlines()]
        (streamed_case,) = [line for line in lines if line.get("id") == case["id"]]
        (paged_case,) = [item for item in page.json()["items"] if item["id"] == case["id"]]
        assert streamed_case["sources"] == paged_case["sources"]

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
    handed = {hearing["id"], transfer_call["id"], release_letter["id"], decision_basis["id"]}
    assert handed <= related
    assert not {russian_verdict["id"], both_cases["id"]} & related


def _partner(max_tier: Tier, scopes: frozenset[str] = frozenset({"sync:read"})) -> Principal:
    return Principal(
        kind=PrincipalKind.partner,
        id=uuid.uuid4(),
        scopes=scopes,
        agreement=SharingAgreement(jurisdiction="BY", max_tier=max_tier),
    )


@pytest.mark.parametrize(
    ("principal", "cited_by_a_shared_record", "clearance"),
    [
        (_partner(Tier.restricted), True, Tier.restricted),
        # Not cited by what its agreement shares: not its source.
        (_partner(Tier.restricted), False, None),
        # Below the restricted tier, where no citation is shown.
        (_partner(Tier.public), True, None),
        # A partner without the scope to read its feed.
        (_partner(Tier.restricted, frozenset({"reports:read"})), True, None),
    ],
)
def test_the_policies_give_a_partner_a_source_only_as_shared_and_never_its_witness(
    principal: Principal, cited_by_a_shared_record: bool, clearance: Tier | None
) -> None:
    engine = PolicyEngine()
    resource = cited_source_resource(principal, cited_by_a_shared_record=cited_by_a_shared_record)
    assert engine.clearance(principal, "source", resource) == clearance


def test_staff_read_a_cited_source_as_any_other() -> None:
    engine = PolicyEngine()
    coordinator = Principal(kind=PrincipalKind.user, id=uuid.uuid4(), role=Role.coordinator)
    resource = cited_source_resource(coordinator, cited_by_a_shared_record=True)
    assert engine.clearance(coordinator, "source", resource) == Tier.confidential

"""The partners' change feed (GET /sync/changes): a snapshot of what the agreement shares,
then every change in commit order, each record as the partner may see it now; records
that leave the agreement arrive as tombstones (only for partners that had them), merged
persons as redirects."""

import asyncio
import random
from contextlib import aclosing
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI

from app.access.principal import Role
from tests.auth import PROBLEM
from tests.custody.custody import create_facility, transfer
from tests.factories import (
    API,
    RECOGNISED,
    create_case,
    create_person,
    decide,
    event,
    transition,
)
from tests.merges.test_merges import SignIn, merge
from tests.sync.feed import FEED, Copy, change_case, feed_partner, follow, forged, share

SHARES_BY = {"jurisdiction": "BY", "recognised_only": False, "max_tier": "public"}


async def test_a_partner_follows_what_its_agreement_shares_and_nothing_else(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    shared_person = await create_person(client)
    shared = await create_case(client, shared_person["id"], jurisdiction="BY")
    other_person = await create_person(client)
    elsewhere = await create_case(client, other_person["id"], jurisdiction="LT")
    partner, _ = await feed_partner(app, SHARES_BY)
    async with aclosing(partner):
        copy = Copy()
        # The first read is a snapshot of what is shared now.
        await follow(partner, copy, limit=1)
        assert set(copy.records) == {("person", shared_person["id"]), ("case", shared["id"])}
        case_copy = copy.records[("case", shared["id"])]
        assert case_copy["status"] == shared["status"]
        assert [e["to_status"] for e in case_copy["status_events"]] == ["detained"]
        # Public tier: the restricted fields never leave.
        assert "detention_places" not in case_copy and "assigned_caseworkers" not in case_copy
        assert "birth_date" not in copy.records[("person", shared_person["id"])]
        assert await follow(partner, copy) == []

        # A sentence on the shared case file reaches the partner; a change to the case
        # file it does not share never does, not even as a tombstone.
        sentenced = await transition(client, shared, "sentenced", "2022-02-01")
        assert sentenced.status_code == 201, sentenced.text
        moved = await transition(client, elsewhere, "sentenced", "2022-02-01")
        assert moved.status_code == 201, moved.text
        new = await follow(partner, copy)
        assert {(item["kind"], item["id"]) for item in new} <= {
            ("person", shared_person["id"]),
            ("case", shared["id"]),
        }
        assert [e["to_status"] for e in copy.records[("case", shared["id"])]["status_events"]] == [
            "detained",
            "sentenced",
        ]
        assert copy.records[("case", shared["id"])]["status"] == "sentenced"
        ids_seen = {item["id"] for item in copy.received}
        assert other_person["id"] not in ids_seen and elsewhere["id"] not in ids_seen

        # The case file is made high-confidentiality: it and its person leave the feed as
        # tombstones, and the partner's copy is empty.
        closed = await change_case(client, shared["id"], confidentiality="high")
        assert closed.status_code == 200, closed.text
        gone = await follow(partner, copy)
        assert {(item["kind"], item["id"], item["change"]) for item in gone} == {
            ("person", shared_person["id"], "tombstone"),
            ("case", shared["id"], "tombstone"),
        }
        assert all(set(item) >= {"seq", "kind", "id", "change"} for item in gone)
        assert all(item.get("case") is None and item.get("person") is None for item in gone)
        assert copy.records == {}


async def test_a_restricted_partner_gets_the_restricted_tier_and_its_reads_are_in_the_trail(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    person = await create_person(client)
    shared = await create_case(client, person["id"], jurisdiction="BY")
    partner, record = await feed_partner(app, SHARES_BY | {"max_tier": "restricted"})
    async with aclosing(partner):
        copy = Copy()
        await follow(partner, copy)
    assert "detention_places" in copy.records[("case", shared["id"])]
    assert copy.records[("person", person["id"])]["birth_date"] == person["birth_date"]
    # Confidential values never leave for a partner.
    assert "relatives" not in copy.records[("person", person["id"])]
    reads = await db.fetch(
        "SELECT related FROM audit_event WHERE action = 'sync.read' AND actor_id = $1",
        record.id,
    )
    assert reads
    assert {str(related) for row in reads for related in row["related"]} >= {
        person["id"],
        shared["id"],
    }


async def test_a_merged_person_arrives_as_a_redirect(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    kept = await create_person(
        client, names=[{"value": "Міхась Лабановіч", "script": "Cyrl", "kind": "legal"}]
    )
    merged = await create_person(
        client, names=[{"value": "Mikhas Labanovich", "script": "Latn", "kind": "legal"}]
    )
    await create_case(client, kept["id"], jurisdiction="BY")
    await create_case(
        client, merged["id"], jurisdiction="BY", history=[event("detained", "2023-05-02")]
    )
    partner, _ = await feed_partner(app, SHARES_BY)
    async with aclosing(partner):
        copy = Copy()
        await follow(partner, copy)
        assert ("person", merged["id"]) in copy.records
        kept = (await client.get(f"{API}/persons/{kept['id']}")).json()
        done = await merge(
            client, kept, merged, keep_overlapping_custody=True, overrule_distinction=True
        )
        assert done.status_code == 201, done.text
        new = await follow(partner, copy)
        assert {
            (item["id"], item["change"], item.get("merged_into"))
            for item in new
            if item["kind"] == "person"
        } >= {(merged["id"], "redirect", kept["id"])}
        assert copy.redirects == {merged["id"]: kept["id"]}
        assert ("person", merged["id"]) not in copy.records
        # Both case files are now the kept person's, in the partner's copy too.
        assert {
            record["person_id"] for (kind, _), record in copy.records.items() if kind == "case"
        } == {kept["id"]}


async def test_a_narrowed_agreement_starts_again_and_takes_back_what_left(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    minsk = await create_case(client, jurisdiction="BY")
    vilnius = await create_case(client, jurisdiction="LT")
    partner, record = await feed_partner(app, {"jurisdiction": "BY", "recognised_only": False})
    async with aclosing(partner):
        copy = Copy()
        await follow(partner, copy)
        assert ("case", minsk["id"]) in copy.records
        narrowed = await share(client, record.id, SHARES_BY | {"jurisdiction": "LT"})
        assert narrowed.status_code == 200, narrowed.text
        again = await follow(partner, copy)
        changes = {(item["kind"], item["id"], item["change"]) for item in again}
        assert ("case", minsk["id"], "tombstone") in changes
        assert ("person", minsk["person_id"], "tombstone") in changes
        assert ("case", vilnius["id"], "upsert") in changes
        assert set(copy.records) == {("case", vilnius["id"]), ("person", vilnius["person_id"])}


async def test_after_a_restart_only_what_left_is_taken_back_what_stays_is_kept(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """The stage after the new snapshot passes over everything the partner was handed
    before, page by page, and sends a tombstone for what it may no longer read: never for
    what it still reads, however the two are mixed on a page."""
    cases = [await create_case(client, jurisdiction="BY") for _ in range(5)]
    recognised = cases[1::2]
    for case in recognised:
        decided = await decide(client, case["person_id"], RECOGNISED, 0)
        assert decided.status_code == 201, decided.text
    partner, record = await feed_partner(app, SHARES_BY)
    async with aclosing(partner):
        copy = Copy()
        await follow(partner, copy, limit=2)
        mine = {("case", case["id"]) for case in cases} | {
            ("person", case["person_id"]) for case in cases
        }
        assert mine <= set(copy.records)
        narrowed = await share(client, record.id, SHARES_BY | {"recognised_only": True})
        assert narrowed.status_code == 200, narrowed.text
        again = await follow(partner, copy, limit=2)
        staying = {("case", case["id"]) for case in recognised} | {
            ("person", case["person_id"]) for case in recognised
        }
        leaving = mine - staying
        gone = {(item["kind"], item["id"]) for item in again if item["change"] == "tombstone"}
        assert leaving <= gone
        assert not gone & staying
        assert staying <= set(copy.records)
        assert not leaving & set(copy.records)


async def test_who_may_read_the_feed(
    app: FastAPI, client: httpx.AsyncClient, anonymous: httpx.AsyncClient, sign_in_as: SignIn
) -> None:
    assert (await anonymous.get(FEED)).status_code == 401
    # Staff follow the records themselves, not a partner's feed.
    for role in (Role.coordinator, Role.analyst):
        refused = await (await sign_in_as(role)).client.get(FEED)
        assert refused.status_code == 403, refused.text
    no_scope, _ = await feed_partner(app, SHARES_BY, scopes=["reports:read"])
    async with aclosing(no_scope):
        assert (await no_scope.get(FEED)).status_code == 403
    first, _ = await feed_partner(app, SHARES_BY)
    second, _ = await feed_partner(app, SHARES_BY)
    async with aclosing(first), aclosing(second):
        page = (await first.get(FEED)).json()
        # A cursor is the partner's own; a damaged one is refused, not guessed at.
        for cursor in (page["next"], "bm90IGEgY3Vyc29y", "%%%"):
            refused = await second.get(FEED, params={"cursor": cursor})
            assert refused.status_code == 400, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["type"] == f"{PROBLEM}invalid-cursor"
        for limit in ("0", "501", "ten"):
            assert (await first.get(FEED, params={"limit": limit})).status_code == 422


async def test_a_reader_following_concurrent_writers_ends_with_what_a_fresh_read_gives(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """Writers change case files concurrently (some of their writes refused and rolled
    back, some held open while later ones commit) while a partner follows the feed; when
    the writers are done and the partner has caught up, its copy equals a new partner's
    snapshot."""
    cases = [await create_case(client, jurisdiction=random.choice(["BY", "LT"])) for _ in range(8)]
    partner, _ = await feed_partner(app, SHARES_BY)
    fresh, _ = await feed_partner(app, SHARES_BY)
    copy = Copy()
    writing = True

    async def writer(case: dict[str, Any]) -> None:
        steps = [
            ("sentenced", "2022-02-01"),
            ("released", "2021-01-01"),  # before the sentence: refused, nothing written
            ("released", "2024-03-01"),
        ]
        for to_status, day in steps:
            current = (await client.get(f"{API}/cases/{case['id']}")).json()
            await transition(client, current, to_status, day)
            await asyncio.sleep(random.random() / 50)
        current = (await client.get(f"{API}/cases/{case['id']}")).json()
        jurisdiction = "LT" if current["jurisdiction"] == "BY" else "BY"
        await change_case(client, case["id"], jurisdiction=jurisdiction)

    async def slow_writer() -> None:
        # A transaction that holds the audit head as a slow commit would: the API's writes
        # queue behind it and commit after it, in order.
        for _ in range(3):
            async with db.transaction():
                await db.execute("SELECT seq FROM audit_head FOR UPDATE")
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.05)

    async def reader() -> None:
        while writing:
            await follow(partner, copy, limit=3)
            await asyncio.sleep(0.01)

    async with aclosing(partner), aclosing(fresh):
        following = asyncio.create_task(reader())
        await asyncio.gather(*(writer(case) for case in cases), slow_writer())
        writing = False
        await following
        await follow(partner, copy)
        expected = Copy()
        await follow(fresh, expected)
    assert copy.records == expected.records
    assert copy.records, "the agreement shares some of the case files"


async def test_what_a_partner_may_not_see_sends_nothing_not_even_that_it_changed(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """A person with a shared case file and one that is not: work on the other one moves
    nothing in the partner's feed; neither does work on a case file after it left (one
    tombstone, then silence)."""
    person = await create_person(client)
    shared = await create_case(client, person["id"], jurisdiction="BY")
    unshared = await create_case(client, person["id"], jurisdiction="LT")
    leaving = await create_case(client, jurisdiction="BY")
    partner, _ = await feed_partner(app, SHARES_BY)
    async with aclosing(partner):
        copy = Copy()
        await follow(partner, copy)
        assert ("case", shared["id"]) in copy.records
        assert ("case", unshared["id"]) not in copy.records
        sentenced = await transition(client, unshared, "sentenced", "2022-02-01")
        assert sentenced.status_code == 201, sentenced.text
        assert await follow(partner, copy) == []

        moved = await change_case(client, leaving["id"], jurisdiction="LT")
        assert moved.status_code == 200, moved.text
        gone = await follow(partner, copy)
        assert {(item["id"], item["change"]) for item in gone} == {
            (leaving["id"], "tombstone"),
            (leaving["person_id"], "tombstone"),
        }
        again = await transition(client, moved.json(), "sentenced", "2022-02-01")
        assert again.status_code == 201, again.text
        assert await follow(partner, copy) == []


async def test_a_page_read_again_after_its_answer_was_lost_hands_the_same_items(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    case = await create_case(client, jurisdiction="BY")
    partner, _ = await feed_partner(app, SHARES_BY)
    async with aclosing(partner):
        copy = Copy()
        await follow(partner, copy)
        before = copy.cursor
        assert (await transition(client, case, "sentenced", "2022-02-01")).status_code == 201
        first = (await partner.get(FEED, params={"cursor": before})).json()
        # The answer never arrived: the partner asks again from where it was.
        second = (await partner.get(FEED, params={"cursor": before})).json()
        assert [(i["kind"], i["id"], i["change"]) for i in first["items"]] == [
            (i["kind"], i["id"], i["change"]) for i in second["items"]
        ]
        assert ("case", case["id"], "upsert") in {
            (i["kind"], i["id"], i["change"]) for i in second["items"]
        }


async def test_a_redirect_to_a_person_the_partner_may_no_longer_see_becomes_a_tombstone(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    kept = await create_person(
        client, names=[{"value": "Алесь Шастак", "script": "Cyrl", "kind": "legal"}]
    )
    merged = await create_person(
        client, names=[{"value": "Ales Shastak", "script": "Latn", "kind": "legal"}]
    )
    kept_case = await create_case(client, kept["id"], jurisdiction="BY")
    await create_case(
        client, merged["id"], jurisdiction="BY", history=[event("detained", "2023-05-02")]
    )
    partner, _ = await feed_partner(app, SHARES_BY)
    async with aclosing(partner):
        copy = Copy()
        await follow(partner, copy)
        kept = (await client.get(f"{API}/persons/{kept['id']}")).json()
        done = await merge(
            client, kept, merged, keep_overlapping_custody=True, overrule_distinction=True
        )
        assert done.status_code == 201, done.text
        await follow(partner, copy)
        assert copy.redirects == {merged["id"]: kept["id"]}
        # The kept person's case files are made high-confidentiality: the partner loses
        # the kept person, and the redirect that would name them.
        kept_cases = await client.get(f"{API}/cases", params={"person_id": kept["id"]})
        for case in kept_cases.json()["items"]:
            closed = await change_case(client, case["id"], confidentiality="high")
            assert closed.status_code == 200, closed.text
        gone = await follow(partner, copy)
        assert (merged["id"], "tombstone") in {(item["id"], item["change"]) for item in gone}
        assert copy.redirects == {} and copy.records == {}
        assert kept_case["id"] not in {key[1] for key in copy.records}


async def test_a_cursor_the_database_no_longer_holds_starts_again_with_a_reset(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """The database restored from an older backup: the cursor's position is past the
    audit trail's head, or names an event the trail no longer holds."""
    case = await create_case(client, jurisdiction="BY")
    partner, _ = await feed_partner(app, SHARES_BY)
    async with aclosing(partner):
        copy = Copy()
        await follow(partner, copy)
        assert copy.cursor is not None
        for cursor in (
            forged(copy.cursor, seq=10**12),
            forged(copy.cursor, anchor="00" * 8),
        ):
            page = (await partner.get(FEED, params={"cursor": cursor})).json()
            assert page["reset"] is True
            assert ("case", case["id"]) in {(i["kind"], i["id"]) for i in page["items"]}


async def test_damaged_cursors_are_refused_with_a_problem(app: FastAPI) -> None:
    partner, _ = await feed_partner(app, SHARES_BY)
    async with aclosing(partner):
        cursor = (await partner.get(FEED)).json()["next"]
        for damaged in (
            forged(cursor, stage=["persons"]),
            forged(cursor, stage="elsewhere"),
            forged(cursor, seq=2**63),
            forged(cursor, seq=-1),
            forged(cursor, kind="case\u0000"),
            forged(cursor, after_id="not-a-uuid"),
            forged(cursor, settled="7"),
        ):
            refused = await partner.get(FEED, params={"cursor": damaged})
            assert refused.status_code == 400, (damaged, refused.text)
            assert refused.json()["type"] == f"{PROBLEM}invalid-cursor"


async def test_custody_and_recognition_reach_a_partner_at_its_tier(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """A transfer (restricted) reaches a restricted partner in the case file's custody
    timeline and sends a public partner nothing at all; a recognition decision reaches
    both in the person's item, without its restricted fields for the public one."""
    person = await create_person(client)
    case = await create_case(client, person["id"], jurisdiction="BY")
    facility = await create_facility(client)
    public, _ = await feed_partner(app, SHARES_BY)
    restricted, _ = await feed_partner(app, SHARES_BY | {"max_tier": "restricted"})
    async with aclosing(public), aclosing(restricted):
        public_copy, restricted_copy = Copy(), Copy()
        await follow(public, public_copy)
        await follow(restricted, restricted_copy)
        await transfer(client, case, facility, "2021-09-01")
        assert await follow(public, public_copy) == []
        await follow(restricted, restricted_copy)
        custody = restricted_copy.records[("case", case["id"])]["custody"]
        assert [entry["kind"] for entry in custody["entries"]] == ["transfer"]
        assert custody["current_facility_id"] == facility
        public_custody = public_copy.records[("case", case["id"])]["custody"]
        assert public_custody["entries"] == [] and "current_facility_id" not in public_custody

        decided = await decide(client, person["id"], RECOGNISED, 0)
        assert decided.status_code == 201, decided.text
        await follow(public, public_copy)
        await follow(restricted, restricted_copy)
        for copy in (public_copy, restricted_copy):
            (decision,) = copy.records[("person", person["id"])]["recognition"]
            assert decision["status"] == "political_prisoner"
            assert decision["case_file_ids"] == [case["id"]]
            assert copy.records[("case", case["id"])]["recognition_status"] == "political_prisoner"

"""`habeas sync pull` in the process: a second Habeas mirrors the test app's instance as
its partner and holds exactly what that partner may read there, through retractions,
supersessions, merges and records leaving the agreement; a page read twice changes
nothing; who reads the mirror."""

import asyncio
import json
from contextlib import aclosing
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.access.principal import Role
from app.audit.journal import as_system
from app.core.clock import utcnow
from app.core.db import commit
from app.mirrors import repository, service
from app.mirrors.pull import PullRefused, pull
from app.mirrors.service import UpstreamMoved
from app.mirrors.upstream import UpstreamFeed
from tests.auth import AuditedTransport, api_client
from tests.factories import API, create_case, create_person, event, if_match, transition
from tests.mirrors.mirror import (
    MIRRORS,
    SHARES_BY,
    Second,
    fresh_view,
    merge_and_withdraw,
    mirrored,
    mirrored_partner,
    signed_in_to,
)
from tests.sync.feed import change_case, first_page_read, let_tokens_expire


async def pull_once(app: FastAPI, second: Second, partner: Any, key: Any) -> dict[str, int]:
    transport = AuditedTransport(app)
    async with httpx.AsyncClient(transport=transport) as http:
        upstream = UpstreamFeed("https://habeas", partner.client_id, key, http, page_limit=3)
        progress = await pull(
            second.engine, second.url, second.app.state.security.audit_keys, upstream
        )
    assert progress.caught_up
    return {"pages": progress.pages, "upserted": progress.upserted, "gone": progress.gone}


async def one_person_mirrored(
    app: FastAPI, client: httpx.AsyncClient, second: Second
) -> tuple[dict[str, Any], Any, Any]:
    """A person with a case file shared with a partner, pulled by the second instance: the
    person, the partner and its key."""
    person = await create_person(client)
    await create_case(client, person["id"], jurisdiction="BY")
    partner, key = await mirrored_partner(app, SHARES_BY)
    await pull_once(app, second, partner, key)
    return person, partner, key


async def status_events(client: httpx.AsyncClient, case: dict[str, Any]) -> list[dict[str, Any]]:
    response = await client.get(f"{API}/cases/{case['id']}/status-events")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["events"]
    return found


async def correct(
    client: httpx.AsyncClient, case: dict[str, Any], event_id: str, path: str, body: Any
) -> None:
    current = (await client.get(f"{API}/cases/{case['id']}")).json()
    response = await client.post(
        f"{API}/cases/{case['id']}/status-events/{event_id}/{path}",
        json=body,
        headers=if_match(current["version"]),
    )
    assert response.status_code == 201, response.text


async def test_a_mirror_holds_exactly_what_its_upstream_shares_with_it(
    app: FastAPI, client: httpx.AsyncClient, second: Second
) -> None:
    sentenced_person = await create_person(client)
    sentenced = await create_case(
        client,
        sentenced_person["id"],
        jurisdiction="BY",
        history=[event("detained", "2021-03-01"), event("sentenced", "2021-09-01")],
    )
    leaving_person = await create_person(client)
    leaving = await create_case(client, leaving_person["id"], jurisdiction="BY")
    elsewhere_person = await create_person(client)
    await create_case(client, elsewhere_person["id"], jurisdiction="LT")
    kept = await create_person(client)
    await create_case(client, kept["id"], jurisdiction="BY")
    merged = await create_person(client)
    await create_case(
        client, merged["id"], jurisdiction="BY", history=[event("detained", "2023-05-02")]
    )
    partner, key = await mirrored_partner(app, SHARES_BY)

    first = await pull_once(app, second, partner, key)
    assert first["pages"] > 1 and first["upserted"] == 8
    mirror = await signed_in_to(second)
    async with aclosing(mirror):
        assert await mirrored(mirror) == await fresh_view(app, SHARES_BY)
        listed = (await mirror.get(MIRRORS)).json()["items"][0]
        assert (listed["persons"], listed["cases"], listed["caught_up"]) == (4, 4, True)
        # Restricted fields arrive at the agreement's tier; the other jurisdiction never.
        held = await mirrored(mirror)
        assert "detention_places" in held[("case", sentenced["id"])]
        assert ("person", elsewhere_person["id"]) not in held

        # Upstream: a claim citing a source, then a retraction and a supersession of its
        # path; a merge; a case file made high-confidentiality (it and its person leave the
        # agreement).
        source = await client.post(
            f"{API}/sources",
            json={
                "publisher": "Regional monitor",
                "title": "A relative's call",
                "reliability": "C",
                "credibility": 3,
                "is_public": False,
                "witness": "The sister, by phone",
            },
        )
        assert source.status_code == 201, source.text
        claimed = await transition(
            client,
            sentenced,
            "released",
            "2025-09-11",
            confidence="unconfirmed",
            source_ids=[source.json()["id"]],
        )
        assert claimed.status_code == 201, claimed.text
        path = await status_events(client, sentenced)
        await correct(
            client,
            sentenced,
            next(e["id"] for e in path if e["to_status"] == "sentenced"),
            "supersession",
            {
                "reason": "The verdict was a day later",
                "event": event("sentenced", "2021-09-02", details={"term_months": 30}),
            },
        )
        await correct(
            client, sentenced, claimed.json()["event"]["id"], "retraction", {"reason": "Denied"}
        )
        await merge_and_withdraw(client, kept, merged, leaving["id"])

        await pull_once(app, second, partner, key)
        held = await mirrored(mirror)
        assert held == await fresh_view(app, SHARES_BY)
        states = {
            (e["to_status"], e["effective_date"]): e["state"]
            for e in held[("case", sentenced["id"])]["status_events"]
        }
        assert states[("sentenced", "2021-09-01")] == "superseded"
        assert states[("released", "2025-09-11")] == "retracted"
        # The retracted claim still cites its source: the mirror holds it, without the
        # witness.
        (cited,) = held[("case", sentenced["id"])]["sources"]
        assert cited["id"] == source.json()["id"] and "witness" not in cited
        assert ("case", leaving["id"]) not in held and ("person", leaving_person["id"]) not in held
        gone = await mirrored(mirror, "gone")
        assert {("case", leaving["id"]), ("person", leaving_person["id"])} <= set(gone)
        assert all(row["record"] is None for row in gone.values())
        redirects = await mirrored(mirror, "redirect")
        pointer = redirects[("person", merged["id"])]
        assert pointer["merged_into"] == kept["id"]
        assert pointer["merged_into_here"] == held_id(await mirror_rows(mirror), kept["id"])

        # Shared again: the same record keeps its id here.
        before = {row["upstream_id"]: row["id"] for row in await mirror_rows(mirror, "gone")}
        reopened = await change_case(client, leaving["id"], confidentiality="normal")
        assert reopened.status_code == 200, reopened.text
        await pull_once(app, second, partner, key)
        after = {row["upstream_id"]: row["id"] for row in await mirror_rows(mirror)}
        assert after[leaving["id"]] == before[leaving["id"]]
        assert await mirrored(mirror) == await fresh_view(app, SHARES_BY)


async def mirror_rows(client: httpx.AsyncClient, state: str = "live") -> list[dict[str, Any]]:
    mirror_id = (await client.get(MIRRORS)).json()["items"][0]["id"]
    rows: list[dict[str, Any]] = []
    for kind in ("person", "case"):
        response = await client.get(
            f"{MIRRORS}/{mirror_id}/records", params={"kind": kind, "state": state, "limit": 100}
        )
        rows += response.json()["items"]
    return rows


def held_id(rows: list[dict[str, Any]], upstream_id: str) -> str:
    return next(str(row["id"]) for row in rows if row["upstream_id"] == upstream_id)


async def test_a_page_read_again_changes_nothing_and_every_pull_is_in_the_trail(
    app: FastAPI, client: httpx.AsyncClient, second: Second
) -> None:
    _, partner, key = await one_person_mirrored(app, client, second)
    events = await second.db.fetch(
        "SELECT action, actor_type, changes FROM audit_event"
        " WHERE action LIKE 'mirror.%' ORDER BY seq"
    )
    assert events[0]["action"] == "mirror.upstream_add"
    assert {row["actor_type"] for row in events} == {"system"}
    created = [
        change
        for row in events
        for change in json.loads(row["changes"] or "[]")
        if change["type"] in ("mirror_person", "mirror_case")
    ]
    assert len(created) == 2

    # The cursor goes back one page (its commit lost, as a killed pull's): the page is read
    # again and changes nothing.
    await second.db.execute("UPDATE mirror_upstream SET cursor = NULL")
    rows_before = await second.db.fetch("SELECT id, content_hash FROM mirror_record ORDER BY id")
    last_seq = await second.db.fetchval("SELECT max(seq) FROM audit_event")
    progress = await pull_once(app, second, partner, key)
    assert progress["upserted"] == 0
    rows_after = await second.db.fetch("SELECT id, content_hash FROM mirror_record ORDER BY id")
    assert rows_after == rows_before
    again = await second.db.fetch(
        "SELECT changes FROM audit_event WHERE action = 'mirror.pull' AND seq > $1", last_seq
    )
    assert again and all(not json.loads(row["changes"] or "[]") for row in again)


async def test_only_coordinators_read_mirrored_records_and_admins_see_the_mirrors(
    app: FastAPI, client: httpx.AsyncClient, second: Second
) -> None:
    person, _, _ = await one_person_mirrored(app, client, second)
    mirror_id = str(await second.db.fetchval("SELECT id FROM mirror_upstream"))
    records = f"{MIRRORS}/{mirror_id}/records?kind=person"
    for role, listing, reading in (
        (Role.coordinator, 200, 200),
        (Role.admin, 200, 403),
        (Role.caseworker, 403, 403),
        (Role.analyst, 403, 403),
    ):
        async with aclosing(await signed_in_to(second, role)) as reader:
            assert (await reader.get(MIRRORS)).status_code == listing, role
            assert (await reader.get(records)).status_code == reading, role
            if reading == 200:
                missing = await reader.get(f"{MIRRORS}/{person['id']}/records?kind=person")
                assert missing.status_code == 404
                bad = await reader.get(f"{MIRRORS}/{mirror_id}/records?kind=source")
                assert bad.status_code == 422
                damaged = await reader.get(f"{records}&cursor=not-ours")
                assert damaged.status_code == 400
    async with api_client(second.app) as anonymous:
        assert (await anonymous.get(MIRRORS)).status_code == 401
    # A coordinator's reading of mirrored records is in the second instance's trail, with
    # the records read, as a reading of the restricted tier.
    read = await second.db.fetch(
        "SELECT actor_role, resource_id, related, detail FROM audit_event"
        " WHERE action = 'mirror.read' AND outcome = 'success'"
    )
    mirrored_person = await second.db.fetchval("SELECT id FROM mirror_record WHERE kind = 'person'")
    assert [row["actor_role"] for row in read] == ["coordinator"]
    assert mirrored_person in [read[0]["resource_id"], *read[0]["related"]]
    assert json.loads(read[0]["detail"])["upstream"] == mirror_id


async def apply_on_second(second: Second, page: dict[str, Any], read_from: str | None) -> Any:
    """A page applied on the second instance as a pull applies it."""
    async with second.app.state.session_factory() as session:
        as_system(session, second.app.state.security.audit_keys)
        upstream = await repository.upstream_at(session, "https://habeas", ANY_CLIENT)
        if upstream is None:
            upstream = await service.upstream_for(session, "https://habeas", ANY_CLIENT, utcnow())
        applied = await service.apply_page(session, upstream, page, utcnow(), read_from=read_from)
        await commit(session)
    return applied


ANY_CLIENT = "hbp_made_up"
PERSON_ID = "0190e6a4-0000-7000-8000-000000000001"


def a_page(next_cursor: str, *items: dict[str, Any], reset: bool = False) -> dict[str, Any]:
    return {
        "items": list(items),
        "next": next_cursor,
        "phase": "changes",
        "caught_up": True,
        "reset": reset,
    }


def a_person(seq: int, surname: str) -> dict[str, Any]:
    return {
        "seq": seq,
        "kind": "person",
        "id": PERSON_ID,
        "change": "upsert",
        "person": {"id": PERSON_ID, "surname": surname},
        "recognition": [],
    }


async def test_a_page_applies_only_from_the_cursor_it_was_read_from(second: Second) -> None:
    await apply_on_second(second, a_page("c1", a_person(1, "A")), None)
    # A page read from the start again (by a pull that lost the race, or a stale one) is
    # refused whole once the cursor has moved on.
    with pytest.raises(UpstreamMoved):
        await apply_on_second(second, a_page("c9", a_person(9, "Stale")), None)
    with pytest.raises(UpstreamMoved):
        await apply_on_second(second, a_page("c9", a_person(9, "Stale")), "c0")
    body = await second.db.fetchval("SELECT body FROM mirror_record")
    assert json.loads(body)["person"]["surname"] == "A"
    assert await second.db.fetchval("SELECT cursor FROM mirror_upstream") == "c1"
    applied = await apply_on_second(second, a_page("c2", a_person(2, "B")), "c1")
    assert applied.upserted == 1


async def test_a_reset_forgets_every_record_and_says_so_record_by_record(second: Second) -> None:
    await apply_on_second(second, a_page("c1", a_person(1, "A")), None)
    record_id = await second.db.fetchval("SELECT id FROM mirror_record")
    last_seq = await second.db.fetchval("SELECT max(seq) FROM audit_event")
    applied = await apply_on_second(second, a_page("s1", reset=True), "c1")
    assert applied.forgotten == 1
    row = await second.db.fetchrow("SELECT state, body, content_hash FROM mirror_record")
    assert (row["state"], row["body"], row["content_hash"]) == ("gone", None, None)
    changes = json.loads(
        await second.db.fetchval(
            "SELECT changes FROM audit_event WHERE action = 'mirror.pull' AND seq > $1", last_seq
        )
    )
    assert changes == [
        {
            "type": "mirror_person",
            "id": str(record_id),
            "fields": {
                "state": {"before": "live", "after": "gone"},
                "content_hash": {
                    "before": changes[0]["fields"]["content_hash"]["before"],
                    "after": None,
                },
            },
        }
    ]
    assert changes[0]["fields"]["content_hash"]["before"] is not None
    # A caught-up feed asked again moves nothing and records nothing.
    seq_before = await second.db.fetchval("SELECT max(seq) FROM audit_event")
    await apply_on_second(second, a_page("s1"), "s1")
    await apply_on_second(second, a_page("s1"), "s1")
    assert await second.db.fetchval("SELECT max(seq) FROM audit_event") == seq_before
    assert await second.db.fetchval("SELECT pages FROM mirror_upstream") == 2


async def test_a_second_pull_of_the_same_upstream_is_refused(
    app: FastAPI, client: httpx.AsyncClient, second: Second
) -> None:
    _, partner, key = await one_person_mirrored(app, client, second)
    upstream_id = await second.db.fetchval("SELECT id FROM mirror_upstream")
    # Another pull holds it (its session lock).
    assert await repository.hold(second.db, upstream_id)
    try:
        with pytest.raises(PullRefused, match="another pull"):
            await pull_once(app, second, partner, key)
    finally:
        await second.db.execute("SELECT pg_advisory_unlock_all()")
    await pull_once(app, second, partner, key)


async def test_a_token_that_expires_mid_catch_up_is_renewed_and_the_pull_goes_on(
    app: FastAPI, client: httpx.AsyncClient, second: Second, db: Any, monkeypatch: Any
) -> None:
    """The upstream's clock passes the mirror's token lifetime after the first page: the
    stream ends with a 401 line, the pull asks for a new token at once (no wait, no
    failure) and catches up to what a fresh read gives."""
    for _ in range(6):
        person = await create_person(client)
        await create_case(client, person["id"], jurisdiction="BY")
    partner, key = await mirrored_partner(app, SHARES_BY)

    async def expire_after_the_first_page() -> None:
        # (The test transport hands the stream over whole: the clock moves while the
        # upstream writes it, after its first page.)
        await first_page_read(db, partner.id)
        let_tokens_expire(monkeypatch, app)

    transport = AuditedTransport(app)
    async with httpx.AsyncClient(transport=transport) as http:
        upstream = UpstreamFeed("https://habeas", partner.client_id, key, http, page_limit=1)
        expiring = asyncio.create_task(expire_after_the_first_page())
        progress = await pull(
            second.engine,
            second.url,
            second.app.state.security.audit_keys,
            upstream,
            max_failures=1,  # a wait after the expiry would end the pull
        )
        await expiring
    assert progress.caught_up and progress.pages > 1
    issued = await db.fetchval(
        "SELECT count(*) FROM audit_event WHERE action = 'auth.token' AND actor_id = $1",
        partner.id,
    )
    assert issued == 2
    mirror = await signed_in_to(second)
    async with aclosing(mirror):
        assert await mirrored(mirror) == await fresh_view(app, SHARES_BY)

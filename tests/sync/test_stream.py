"""The change feed as one stream (`Accept: application/x-ndjson`): the same items page
after page, each page read in its own transaction with the token checked again; a stream
cut off (the partner disabled meanwhile, a token expired) resumes from its last position
line."""

import asyncio
from contextlib import aclosing
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from fastapi import FastAPI

from tests.auth import api_client, create_partner, partner_token
from tests.factories import create_case
from tests.sync.feed import (
    FEED,
    Copy,
    feed_partner,
    first_page_read,
    follow,
    fresh_copy,
    let_tokens_expire,
)

SHARES_BY = {"jurisdiction": "BY", "recognised_only": False, "max_tier": "restricted"}
NDJSON = {"Accept": "application/x-ndjson"}


def lines(body: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in body.splitlines() if line]


def apply_stream(copy: Copy, streamed: list[dict[str, Any]]) -> None:
    for line in streamed:
        if "next" in line:
            copy.cursor = line["next"]
        elif "kind" in line:
            copy.apply(line)


def cut_off(streamed: list[dict[str, Any]]) -> Copy:
    """The copy a stream refused after its first pages left: it ended with a 401 problem
    line, and the partner holds part of the snapshot and a position to resume from."""
    assert streamed[-1]["problem"]["status"] == 401, streamed[-1]
    copy = Copy()
    apply_stream(copy, streamed)
    assert copy.cursor is not None and 0 < len(copy.records) < 40
    return copy


async def test_a_stream_hands_over_what_the_pages_do(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    for _ in range(7):
        await create_case(client, jurisdiction="BY")
    streaming, _ = await feed_partner(app, SHARES_BY)
    paging, _ = await feed_partner(app, SHARES_BY)
    async with aclosing(streaming), aclosing(paging):
        answer = await streaming.get(FEED, params={"limit": 3}, headers=NDJSON)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("application/x-ndjson")
        streamed = lines(answer.content)
        positions = [line for line in streamed if "next" in line]
        # 7 persons and 7 case files in pages of 3: five pages, each with its position.
        assert len(positions) >= 5
        assert positions[-1]["caught_up"] is True
        assert all(not line["caught_up"] for line in positions[:-1])
        by_stream = Copy()
        apply_stream(by_stream, streamed)
        by_pages = Copy()
        await follow(paging, by_pages, limit=3)
        assert by_stream.records == by_pages.records
        assert len(by_stream.records) == 14
        # From the stream's last position, nothing more.
        again = await streaming.get(FEED, params={"cursor": by_stream.cursor}, headers=NDJSON)
        assert [line for line in lines(again.content) if "kind" in line] == []
        # A damaged cursor is refused before the stream starts.
        refused = await streaming.get(FEED, params={"cursor": "bm9wZQ"}, headers=NDJSON)
        assert refused.status_code == 400
        assert refused.headers["content-type"] == "application/problem+json"


async def test_a_stream_cut_off_resumes_from_its_last_position(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """The partner is disabled while its stream runs (as a token that expires): the stream
    ends with a problem line; enabled again, with a new token, it resumes from the last
    position line and ends with what a fresh snapshot gives."""
    for _ in range(20):
        await create_case(client, jurisdiction="BY")
    partner, record = await feed_partner(app, SHARES_BY)

    async def disable_after_the_first_page() -> None:
        await first_page_read(db, record.id)
        await db.execute("UPDATE partner SET disabled = true WHERE id = $1", record.id)

    async with aclosing(partner):
        cutting = asyncio.create_task(disable_after_the_first_page())
        answer = await partner.get(FEED, params={"limit": 1}, headers=NDJSON)
        await cutting
        copy = cut_off(lines(answer.content))

        # Enabled again, the partner's token (still within its lifetime) is accepted again.
        await db.execute("UPDATE partner SET disabled = false WHERE id = $1", record.id)
        await follow(partner, copy)
    assert copy.records == (await fresh_copy(app, SHARES_BY)).records


async def test_a_stream_whose_token_expires_ends_and_a_new_token_resumes_it(
    app: FastAPI,
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The partner's token expires while its stream runs (the clock passes its lifetime
    after the first page): the stream ends with a 401 problem line; with a new token it
    resumes from the last position line and ends with what a fresh snapshot gives."""
    for _ in range(20):
        await create_case(client, jurisdiction="BY")
    record, secret = await create_partner(app, scopes=["sync:read"], agreement=SHARES_BY)

    async def expire_after_the_first_page() -> None:
        await first_page_read(db, record.id)
        let_tokens_expire(monkeypatch, app)

    partner = api_client(app)
    async with aclosing(partner):
        token = await partner_token(partner, record.client_id, str(secret))
        partner.headers["Authorization"] = f"Bearer {token}"
        expiring = asyncio.create_task(expire_after_the_first_page())
        answer = await partner.get(FEED, params={"limit": 1}, headers=NDJSON)
        await expiring
        streamed = lines(answer.content)
        copy = cut_off(streamed)
        assert "expired" in streamed[-1]["problem"]["detail"]

        # The old token stays refused; a new one (issued by the moved clock) goes on.
        assert (await partner.get(FEED, params={"cursor": copy.cursor})).status_code == 401
        token = await partner_token(partner, record.client_id, str(secret))
        partner.headers["Authorization"] = f"Bearer {token}"
        await follow(partner, copy)
    assert copy.records == (await fresh_copy(app, SHARES_BY)).records

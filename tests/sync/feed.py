"""Following a partner's change feed as a partner's system would: a local copy keyed by
kind and id, updated from every page until the feed is caught up."""

import asyncio
import base64
import json
import time
import uuid
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from app.identity import tokens
from tests.auth import api_client, create_partner, partner_token
from tests.factories import API, if_match

FEED = f"{API}/sync/changes"


@dataclass
class Copy:
    """A partner's copy: records by (kind, id), redirects of merged persons, and every item
    received in order."""

    records: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    received: list[dict[str, Any]] = field(default_factory=list)
    cursor: str | None = None

    def apply(self, item: dict[str, Any]) -> None:
        self.received.append(item)
        key = (item["kind"], item["id"])
        if item["change"] == "upsert":
            extras = (
                ("status_events", "custody", "sources")
                if item["kind"] == "case"
                else ("recognition", "sources")
            )
            self.records[key] = item[item["kind"]] | {name: item[name] for name in extras}
            self.redirects.pop(item["id"], None)
        elif item["change"] == "tombstone":
            self.records.pop(key, None)
            self.redirects.pop(item["id"], None)
        else:
            self.records.pop(key, None)
            self.redirects[item["id"]] = item["merged_into"]


async def follow(
    client: httpx.AsyncClient, copy: Copy, limit: int = 100, pages: int | None = None
) -> list[dict[str, Any]]:
    """Read pages from the copy's cursor until caught up (or, with `pages`, stop after so
    many, as a partner that stops in the middle); the items of this catch-up."""
    new: list[dict[str, Any]] = []
    read = 0
    while pages is None or read < pages:
        params: dict[str, Any] = {"limit": limit}
        if copy.cursor is not None:
            params["cursor"] = copy.cursor
        response = await client.get(FEED, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        # Only a restored database starts a feed again from nothing.
        assert not page["reset"]
        for item in page["items"]:
            copy.apply(item)
            new.append(item)
        copy.cursor = page["next"]
        read += 1
        if page["caught_up"]:
            break
    return new


async def change_case(client: httpx.AsyncClient, case_id: str, **fields: Any) -> httpx.Response:
    """A coordinator changes a case file as it is now (its current version)."""
    current = (await client.get(f"{API}/cases/{case_id}")).json()
    return await client.patch(
        f"{API}/cases/{case_id}", json=fields, headers=if_match(current["version"])
    )


async def share(
    client: httpx.AsyncClient, partner_id: Any, agreement: dict[str, Any]
) -> httpx.Response:
    """A coordinator sets a partner's whole agreement, as the partner is now."""
    current = (await client.get(f"{API}/partners/{partner_id}")).json()
    return await client.put(
        f"{API}/partners/{partner_id}/agreement",
        json=agreement,
        headers=if_match(current["version"]),
    )


async def feed_partner(
    app: FastAPI, agreement: dict[str, Any], scopes: list[str] | None = None
) -> tuple[httpx.AsyncClient, Any]:
    """A partner's signed-in client (the caller closes it) and the partner."""
    partner, secret = await create_partner(
        app, scopes=scopes if scopes is not None else ["sync:read"], agreement=agreement
    )
    client = api_client(app)
    token = await partner_token(client, partner.client_id, str(secret))
    client.headers["Authorization"] = f"Bearer {token}"
    return client, partner


async def fresh_copy(app: FastAPI, agreement: dict[str, Any]) -> Copy:
    """What a new partner with the agreement holds once caught up: what any partner's
    copy must end as."""
    fresh, _ = await feed_partner(app, agreement)
    copy = Copy()
    async with aclosing(fresh):
        await follow(fresh, copy)
    return copy


def forged(cursor: str, **changes: Any) -> str:
    """A partner's own cursor with some of its positions changed (cursors are opaque, not
    secret: a partner can decode and edit one)."""
    payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    names = ["seq", "anchor", "terms", "stage", "kind", "after_id", "settled"]
    for name, value in changes.items():
        payload["p"][names.index(name)] = value
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


async def first_page_read(db: asyncpg.Connection, partner_id: uuid.UUID) -> None:
    """Wait until the partner has read a page of the feed (its reading is in the trail):
    a stream under way has handed its first page."""
    for _ in range(1000):
        if await db.fetchval(
            "SELECT count(*) FROM audit_event WHERE action = 'sync.read' AND actor_id = $1",
            partner_id,
        ):
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the partner read no page")


def let_tokens_expire(monkeypatch: pytest.MonkeyPatch, app: FastAPI) -> None:
    """Move the moment tokens are issued and checked at past a partner token's lifetime:
    the tokens issued so far are expired, those issued from now on are not."""
    later = app.state.settings.partner_token_minutes * 60 + 90
    monkeypatch.setattr(tokens, "seconds_now", lambda: int(time.time()) + later)

"""Following a partner's change feed as a partner's system would: a local copy keyed by
kind and id, updated from every page until the feed is caught up."""

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI

from tests.auth import api_client, create_partner, partner_token
from tests.factories import API

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
            extras = ("status_events", "custody") if item["kind"] == "case" else ("recognition",)
            self.records[key] = item[item["kind"]] | {name: item[name] for name in extras}
            self.redirects.pop(item["id"], None)
        elif item["change"] == "tombstone":
            self.records.pop(key, None)
            self.redirects.pop(item["id"], None)
        else:
            self.records.pop(key, None)
            self.redirects[item["id"]] = item["merged_into"]


async def follow(client: httpx.AsyncClient, copy: Copy, limit: int = 100) -> list[dict[str, Any]]:
    """Read pages from the copy's cursor until caught up; the items of this catch-up."""
    new: list[dict[str, Any]] = []
    while True:
        params: dict[str, Any] = {"limit": limit}
        if copy.cursor is not None:
            params["cursor"] = copy.cursor
        response = await client.get(FEED, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        if page["reset"]:
            copy.records.clear()
            copy.redirects.clear()
        for item in page["items"]:
            copy.apply(item)
            new.append(item)
        copy.cursor = page["next"]
        if page["caught_up"]:
            return new


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


def forged(cursor: str, **changes: Any) -> str:
    """A partner's own cursor with some of its positions changed (cursors are opaque, not
    secret: a partner can decode and edit one)."""
    payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    names = ["seq", "anchor", "terms", "stage", "kind", "after_id", "settled"]
    for name, value in changes.items():
        payload["p"][names.index(name)] = value
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")

"""A second Habeas on a database of its own, which mirrors the test app's instance as one of
its partners; and what each side holds, to compare."""

from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI
from joserfc.jwk import ECKey
from sqlalchemy.ext.asyncio import AsyncEngine

from app.access.principal import Role
from tests.auth import api_client, create_account, create_partner, log_in
from tests.factories import API
from tests.merges.test_merges import merge
from tests.sync.feed import Copy, change_case, feed_partner, follow

# What the mirrored partner is shared: Belarus's case files up to the restricted tier.
SHARES_BY = {"jurisdiction": "BY", "recognised_only": False, "max_tier": "restricted"}
MIRRORS = f"{API}/mirrors"


@dataclass
class Second:
    """The second instance: its database, its app (its own API) and an engine for pulls."""

    url: str
    app: FastAPI
    engine: AsyncEngine
    db: asyncpg.Connection


async def mirrored_partner(app: FastAPI, agreement: dict[str, Any]) -> tuple[Any, ECKey]:
    """A partner of the test app that authenticates with a key, as a mirroring instance."""
    key = ECKey.generate_key("P-256", private=True, parameters={"kid": "mirror-1"})
    partner, _ = await create_partner(
        app,
        agreement,
        scopes=["sync:read"],
        auth_method="private_key_jwt",
        public_jwks={"keys": [key.as_dict(private=False)]},
    )
    return partner, key


async def signed_in_to(second: Second, role: Role = Role.coordinator) -> httpx.AsyncClient:
    """An account of the role signed in to the second instance (the caller closes it)."""
    account = await create_account(second.app, role)
    client = api_client(second.app)
    tokens = await log_in(client, account)
    client.headers["Authorization"] = f"Bearer {tokens['access_token']}"
    return client


async def mirrored(client: httpx.AsyncClient, state: str = "live") -> dict[tuple[str, str], Any]:
    """Every record the second instance mirrors in a state, through its API, by the
    upstream's kind and id, each as the feed hands a record (its fields and its parts)."""
    listed = (await client.get(MIRRORS)).json()["items"]
    assert len(listed) == 1, listed
    held: dict[tuple[str, str], Any] = {}
    for kind in ("person", "case"):
        url: str | None = f"{MIRRORS}/{listed[0]['id']}/records?kind={kind}&state={state}&limit=7"
        while url is not None:
            response = await client.get(url)
            assert response.status_code == 200, response.text
            page = response.json()
            for row in page["items"]:
                key = (row["kind"], row["upstream_id"])
                assert key not in held, f"{key} twice"
                held[key] = row if state != "live" else as_copied(kind, row["record"])
            url = page["next"]
    return held


def as_copied(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    extras = (
        ("status_events", "custody", "sources") if kind == "case" else ("recognition", "sources")
    )
    copied: dict[str, Any] = body[kind] | {name: body[name] for name in extras}
    return copied


async def fresh_view(app: FastAPI, agreement: dict[str, Any]) -> dict[tuple[str, str], Any]:
    """What a partner with the same agreement reads from nothing: the redacted view."""
    reader, _ = await feed_partner(app, agreement)
    async with aclosing(reader):
        copy = Copy()
        await follow(reader, copy, limit=500)
    return dict(copy.records)


async def merge_and_withdraw(
    client: httpx.AsyncClient, kept: dict[str, Any], merged: dict[str, Any], leaving_id: str
) -> None:
    """Upstream: `merged` merged into `kept` (a redirect for a mirror), and case file
    `leaving_id` made high-confidentiality (it and its person leave the agreement)."""
    kept_now = (await client.get(f"{API}/persons/{kept['id']}")).json()
    done = await merge(
        client, kept_now, merged, keep_overlapping_custody=True, overrule_distinction=True
    )
    assert done.status_code == 201, done.text
    closed = await change_case(client, leaving_id, confidentiality="high")
    assert closed.status_code == 200, closed.text

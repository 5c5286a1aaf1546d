"""Reading the audit trail in tests: the events a request appended, what they changed, and
whether a value shows in plain text."""

import json
from typing import Any

import asyncpg
import httpx

from tests.factories import API

Event = dict[str, Any]

FINGERPRINT = "hmac-sha256:"


def _decoded(row: asyncpg.Record) -> Event:
    found = dict(row)
    for name in ("changes", "detail"):
        if isinstance(found[name], str):
            found[name] = json.loads(found[name])
    return found


async def head_seq(db: asyncpg.Connection) -> int:
    return int(await db.fetchval("SELECT coalesce(max(seq), 0) FROM audit_event"))


async def events_after(db: asyncpg.Connection, seq: int) -> list[Event]:
    """The events appended after `seq`, oldest first; `whole` is the entire row as text."""
    rows = await db.fetch(
        "SELECT e.*, row_to_json(e)::text AS whole FROM audit_event e WHERE seq > $1 ORDER BY seq",
        seq,
    )
    return [_decoded(row) for row in rows]


async def only_event_after(db: asyncpg.Connection, seq: int) -> Event:
    found = await events_after(db, seq)
    assert len(found) == 1, [(e["seq"], e["action"], e["outcome"]) for e in found]
    return found[0]


def change_of(recorded: Event, kind: str, record_id: Any) -> dict[str, Any]:
    """The fields one record changed in an event: {name: {"before", "after"}}."""
    matches = [
        c for c in recorded["changes"] or [] if c["type"] == kind and c["id"] == str(record_id)
    ]
    assert len(matches) == 1, (kind, record_id, recorded["changes"])
    fields: dict[str, Any] = matches[0]["fields"]
    return fields


def created(fields: dict[str, Any]) -> dict[str, Any]:
    """A created record's values (and that it had none before)."""
    assert all(value["before"] is None for value in fields.values()), fields
    return {name: value["after"] for name, value in fields.items()}


def assert_no_plain(recorded: Event, values: tuple[str, ...]) -> None:
    for value in values:
        assert value not in recorded["whole"], f"{value!r} is in audit event {recorded['seq']}"


def is_fingerprint(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(FINGERPRINT)


async def search_events(auditor: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    """An auditor's search of the trail (GET /audit/events): the items of its first page."""
    response = await auditor.get(f"{API}/audit/events", params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items

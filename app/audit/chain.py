"""The hash chain: how an event is encoded and hashed, and how it is appended.

Each event's hash is SHA-256 over the RFC 8785 canonical JSON of all its columns (the
previous event's hash among them), so changing, removing or reordering any event breaks
the chain from there on. Appends take the lock on the one `audit_head` row as the last
statement of their transaction and hold it until commit: sequence numbers are therefore
contiguous (a rolled-back append gives its number back) and follow commit order.
"""

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import rfc8785
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.db import driver_connection

# What the first event links to.
GENESIS_HASH = bytes(32)
# Bumped if the encoding ever changes; it is hashed with every event.
ENCODING_VERSION = 1

# Every column of audit_event except `hash`, in the order statements use them.
HASHED_COLUMNS = (
    "seq",
    "occurred_at",
    "actor_type",
    "actor_id",
    "actor_role",
    "action",
    "resource_type",
    "resource_id",
    "related",
    "outcome",
    "request_id",
    "client_address",
    "user_agent",
    "changes",
    "detail",
    "prev_hash",
)

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# The same text from PostgreSQL, for the verifier (which reads columns as text).
SQL_TIME_FORMAT = """'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'"""


def canonical(value: Any) -> bytes:
    """RFC 8785 (JSON Canonicalization Scheme)."""
    return rfc8785.dumps(value)


def event_hash(document: Mapping[str, Any]) -> bytes:
    return hashlib.sha256(canonical(document)).digest()


def fast_event_hash(document: Mapping[str, Any]) -> bytes:
    """`event_hash` by orjson with sorted keys: the same for what events hold (see
    `hash_matches`). Raises orjson.JSONEncodeError where orjson cannot encode."""
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).digest()


def hash_matches(document: Mapping[str, Any], stored: bytes) -> bool:
    """Whether the document hashes to `stored`.

    orjson with sorted keys writes the same bytes as RFC 8785 for what events hold
    (strings, integers, booleans, null, lists and objects with ASCII keys) and is some
    twenty times faster; when its bytes differ, the canonical encoder decides. Equal bytes
    are the same JSON value, so the fast path can never accept a changed event.
    """
    try:
        if fast_event_hash(document) == stored:
            return True
    except (orjson.JSONEncodeError, RecursionError):
        pass
    try:
        return event_hash(document) == stored
    except (rfc8785.CanonicalizationError, TypeError, ValueError, RecursionError):
        # Nothing the application appends fails to encode: the event was changed.
        return False


@dataclass
class EventDraft:
    """An event before it has its place in the chain."""

    actor_type: str
    actor_id: uuid.UUID | None
    actor_role: str | None
    action: str
    outcome: str
    resource_type: str | None = None
    resource_id: uuid.UUID | None = None
    related: list[uuid.UUID] = field(default_factory=list)
    request_id: str | None = None
    client_address: str | None = None
    user_agent: str | None = None
    changes: list[dict[str, Any]] | None = None
    detail: dict[str, Any] | None = None
    # When a read appended in a batch was served (the API process's clock); not a column:
    # said in `detail` only when the event is appended late (see `append_all`).
    read_at: datetime | None = None

    def row(
        self, *, seq: int, occurred_at: datetime, prev_hash: bytes, digest: bytes
    ) -> tuple[Any, ...]:
        """The values of `audit_event`'s columns: HASHED_COLUMNS in order, then the hash."""
        return (
            seq,
            occurred_at,
            self.actor_type,
            self.actor_id,
            self.actor_role,
            self.action,
            self.resource_type,
            self.resource_id,
            self.related,
            self.outcome,
            self.request_id,
            self.client_address,
            self.user_agent,
            _json(self.changes),
            _json(self.detail),
            prev_hash,
            digest,
        )

    def document(self, seq: int, occurred_at: datetime, prev_hash: bytes) -> dict[str, Any]:
        """The JSON the hash covers: every column, as the verifier reads it back."""
        return document_of(
            {
                "seq": seq,
                "occurred_at": occurred_at.astimezone(UTC).strftime(TIME_FORMAT),
                "actor_type": self.actor_type,
                "actor_id": _text(self.actor_id),
                "actor_role": self.actor_role,
                "action": self.action,
                "resource_type": self.resource_type,
                "resource_id": _text(self.resource_id),
                "related": [str(item) for item in self.related],
                "outcome": self.outcome,
                "request_id": self.request_id,
                "client_address": self.client_address,
                "user_agent": self.user_agent,
                "changes": self.changes,
                "detail": self.detail,
                "prev_hash": prev_hash.hex(),
            }
        )


def document_of(columns: Mapping[str, Any]) -> dict[str, Any]:
    return {"v": ENCODING_VERSION, **columns}


def _text(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


_LOCK_HEAD = "SELECT seq, hash, occurred_at, clock_timestamp() AS now FROM audit_head FOR UPDATE"
_APPEND = f"""
WITH appended AS (
    INSERT INTO audit_event ({", ".join(HASHED_COLUMNS)}, hash)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
)
UPDATE audit_head SET seq = $1, hash = $17, occurred_at = $2
"""


async def append(session: AsyncSession, draft: EventDraft, *, durable: bool = True) -> None:
    """Append one event in the session's transaction. Call it last before commit: the
    head stays locked until then, and every other append waits.

    `durable=False` (for a transaction that only read) commits without waiting for the
    disk: the head's lock is then held for microseconds instead of an fsync, which is
    what lets audited reads run concurrently. A crash can lose the last fraction of a
    second of such events, never a write's, and never from the middle of the chain: the
    log is written in order, so what is lost is a suffix.
    """
    await append_on(await driver_connection(session), draft, durable=durable)


async def append_on(
    connection: asyncpg.Connection, draft: EventDraft, *, durable: bool = True
) -> None:
    """The same, on a connection whose transaction is open (the benchmark's baseline)."""
    if not durable:
        await connection.execute("SET LOCAL synchronous_commit = off")
    head = await connection.fetchrow(_LOCK_HEAD)
    if head is None:
        raise RuntimeError("audit_head has no row: the migrations have not run")
    seq = head["seq"] + 1
    # The database's clock, never earlier than the event before (clocks can step back).
    occurred_at: datetime = head["now"]
    if head["occurred_at"] is not None and head["occurred_at"] > occurred_at:
        occurred_at = head["occurred_at"]
    prev_hash: bytes = head["hash"]
    digest = event_hash(draft.document(seq, occurred_at, prev_hash))
    await connection.execute(
        _APPEND, *draft.row(seq=seq, occurred_at=occurred_at, prev_hash=prev_hash, digest=digest)
    )


# A read's event appended so long after the read says when the read was (a batch retried
# while the database was away); within it, the event's own time is close enough.
LATE = timedelta(seconds=1)


def _moment(value: datetime) -> str:
    return value.astimezone(UTC).strftime(TIME_FORMAT)


_INSERT = f"""
INSERT INTO audit_event ({", ".join(HASHED_COLUMNS)}, hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
"""
_MOVE_HEAD = "UPDATE audit_head SET seq = $1, hash = $2, occurred_at = $3"


async def append_all(
    connection: asyncpg.Connection, drafts: Sequence[EventDraft]
) -> tuple[int, bytes]:
    """Append several events, in order, under one lock of the head: the same chain as
    appending them one by one, for one lock, one round trip of inserts and one commit.
    The transaction must be open; the head stays locked until it ends. Returns the last
    event's number and hash (by which a commit of unknown outcome can be checked)."""
    head = await connection.fetchrow(_LOCK_HEAD)
    if head is None:
        raise RuntimeError("audit_head has no row: the migrations have not run")
    seq: int = head["seq"]
    occurred_at: datetime = head["now"]
    if head["occurred_at"] is not None and head["occurred_at"] > occurred_at:
        occurred_at = head["occurred_at"]
    prev_hash: bytes = head["hash"]
    rows = []
    for draft in drafts:
        if draft.read_at is not None and occurred_at - draft.read_at > LATE:
            draft.detail = {**(draft.detail or {}), "read_at": _moment(draft.read_at)}
        seq += 1
        digest = event_hash(draft.document(seq, occurred_at, prev_hash))
        rows.append(draft.row(seq=seq, occurred_at=occurred_at, prev_hash=prev_hash, digest=digest))
        prev_hash = digest
    await connection.executemany(_INSERT, rows)
    await connection.execute(_MOVE_HEAD, seq, prev_hash, occurred_at)
    return seq, prev_hash


async def was_appended(connection: asyncpg.Connection, seq: int, digest: bytes) -> bool:
    """Whether the event of that number and hash is in the chain (a commit whose outcome
    was unknown took effect)."""
    found: bytes | None = await connection.fetchval(
        "SELECT hash FROM audit_event WHERE seq = $1", seq
    )
    return found == digest


def _json(value: Sequence[Any] | Mapping[str, Any] | None) -> str | None:
    # JSONB parameters go to this connection as JSON text (see driver_connection).
    return None if value is None else orjson.dumps(value).decode()

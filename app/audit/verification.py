"""Verifying the chain: contiguity, links, hashes, time, and signed checkpoints.

The verifier reads the events in order, in batches, and recomputes everything from the
columns; it trusts neither `audit_head` nor anything else the database says about the
chain. Checkpoints are trusted only when their Ed25519 signature verifies against keys
held outside the database. A history rewritten and re-hashed by someone who can bypass
the triggers is internally consistent; it is caught where it disagrees with a checkpoint.
"""

import asyncio
import base64
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from app.audit.chain import (
    ENCODING_VERSION,
    GENESIS_HASH,
    HASHED_COLUMNS,
    SQL_TIME_FORMAT,
    TIME_FORMAT,
    canonical,
    hash_matches,
)

BATCH = 20_000
CHECKPOINT_LOG = "habeas-audit"

# Columns as the hashed document has them (text, not UUIDs or timestamps).
_AS_DOCUMENT = {
    "occurred_at": f"to_char(occurred_at AT TIME ZONE 'UTC', {SQL_TIME_FORMAT})",
    "actor_id": "actor_id::text",
    "resource_id": "resource_id::text",
    "related": "related::text[]",
    "changes": "changes::text",
    "detail": "detail::text",
    "prev_hash": "encode(prev_hash, 'hex')",
}
_DOCUMENT_KEYS = ("v", *HASHED_COLUMNS)
_SELECT_BATCH = (
    f"SELECT {ENCODING_VERSION} AS v, "
    + ", ".join(_AS_DOCUMENT.get(column, column) for column in HASHED_COLUMNS)
    + ", hash FROM audit_event WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3"
)


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement that the chain's event `seq` had hash `head_hash`."""

    seq: int
    head_hash: bytes
    signed_at: datetime
    key_id: str
    signature: bytes

    def statement(self) -> bytes:
        """The bytes that are signed (RFC 8785 JSON)."""
        return statement_bytes(
            self.seq, self.head_hash, signed_at=self.signed_at, key_id=self.key_id
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "log": CHECKPOINT_LOG,
            "seq": self.seq,
            "head_hash": self.head_hash.hex(),
            "signed_at": self.signed_at.strftime(TIME_FORMAT),
            "key_id": self.key_id,
            "signature": base64.b64encode(self.signature).decode(),
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> "Checkpoint":
        """Read a saved checkpoint; ValueError if it is not one."""
        try:
            if document["log"] != CHECKPOINT_LOG:
                raise ValueError("not a checkpoint of this log")
            return cls(
                seq=int(document["seq"]),
                head_hash=bytes.fromhex(document["head_hash"]),
                signed_at=datetime.strptime(document["signed_at"], TIME_FORMAT).replace(tzinfo=UTC),
                key_id=str(document["key_id"]),
                signature=base64.b64decode(document["signature"], validate=True),
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"not a checkpoint: {error}") from None

    def signed_by(self, keys: Mapping[str, Ed25519PublicKey]) -> bool:
        key = keys.get(self.key_id)
        if key is None:
            return False
        try:
            key.verify(self.signature, self.statement())
        except InvalidSignature:
            return False
        return True


def statement_bytes(seq: int, head_hash: bytes, *, signed_at: datetime, key_id: str) -> bytes:
    return canonical(
        {
            "log": CHECKPOINT_LOG,
            "seq": seq,
            "head_hash": head_hash.hex(),
            "signed_at": signed_at.strftime(TIME_FORMAT),
            "key_id": key_id,
        }
    )


@dataclass
class Report:
    ok: bool = True
    events_checked: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS_HASH.hex()
    first_bad_seq: int | None = None
    problem: str | None = None
    checkpoints_checked: int = 0
    seconds: float = 0.0
    events_per_second: float = 0.0

    def fail(self, seq: int, problem: str) -> None:
        if self.ok:
            self.ok, self.first_bad_seq, self.problem = False, seq, problem


class _Walk:
    """The state carried from one event to the next."""

    def __init__(self, checkpoints: Mapping[int, list[Checkpoint]]) -> None:
        self.expected_seq = 1
        self.prev_hash = GENESIS_HASH
        self.prev_time = ""
        self.checkpoints = checkpoints
        self.checked = 0

    def check(self, rows: Sequence[asyncpg.Record], report: Report) -> bool:
        """Check a batch in order; False (and the report says where) at the first problem."""
        prev_hex = self.prev_hash.hex()
        for row in rows:
            seq = row[1]
            if seq != self.expected_seq:
                report.fail(self.expected_seq, f"event {self.expected_seq} is missing")
                return False
            # The document exactly as hashed: the encoding version, then every column.
            document = dict(zip(_DOCUMENT_KEYS, row[:-1], strict=True))
            stored_hash: bytes = row[-1]
            if document["prev_hash"] != prev_hex:
                report.fail(seq, f"event {seq} does not link to event {seq - 1}")
                return False
            try:
                for json_column in ("changes", "detail"):
                    if document[json_column] is not None:
                        document[json_column] = orjson.loads(document[json_column])
            except (orjson.JSONDecodeError, RecursionError):
                # Valid JSONB the application never writes (a huge number, deep nesting).
                report.fail(seq, f"event {seq} does not match its hash (it was changed)")
                return False
            if not hash_matches(document, stored_hash):
                report.fail(seq, f"event {seq} does not match its hash (it was changed)")
                return False
            if document["occurred_at"] < self.prev_time:
                report.fail(seq, f"event {seq} is dated before event {seq - 1}")
                return False
            for checkpoint in self.checkpoints.get(seq, ()):
                if checkpoint.head_hash != stored_hash:
                    report.fail(
                        seq,
                        f"event {seq} differs from the signed checkpoint of "
                        f"{checkpoint.signed_at.strftime(TIME_FORMAT)}: the history up to "
                        "here was rewritten",
                    )
                    return False
                report.checkpoints_checked += 1
            self.prev_hash, self.prev_time = stored_hash, document["occurred_at"]
            prev_hex = stored_hash.hex()
            self.expected_seq = seq + 1
            self.checked += 1
        return True


async def _start_after(
    connection: asyncpg.Connection, since: Checkpoint, *, walk: _Walk, report: Report
) -> None:
    row = await connection.fetchrow(
        f"SELECT hash, to_char(occurred_at AT TIME ZONE 'UTC', {SQL_TIME_FORMAT}) AS at "
        "FROM audit_event WHERE seq = $1",
        since.seq,
    )
    if row is None or row["hash"] != since.head_hash:
        report.fail(since.seq, f"event {since.seq} differs from its signed checkpoint")
        return
    walk.expected_seq, walk.prev_hash, walk.prev_time = since.seq + 1, since.head_hash, row["at"]


async def verify(
    connection: asyncpg.Connection,
    checkpoints: Sequence[Checkpoint],
    public_keys: Mapping[str, Ed25519PublicKey],
    *,
    since: Checkpoint | None = None,
    batch: int = BATCH,
) -> Report:
    """Verify the chain as it stands when verification starts, against the given
    checkpoints: all of it, or (`since`) what follows a checkpoint already trusted.
    Hashing runs in a thread, batch by batch, while the next batch is read."""
    started = time.perf_counter()
    report = Report()
    trusted: dict[int, list[Checkpoint]] = {}
    untrusted: Checkpoint | None = None
    for checkpoint in sorted(checkpoints, key=lambda c: c.seq):
        if checkpoint.signed_by(public_keys):
            trusted.setdefault(checkpoint.seq, []).append(checkpoint)
        elif untrusted is None:
            untrusted = checkpoint
    last = await connection.fetchval("SELECT coalesce(max(seq), 0) FROM audit_event")
    walk = _Walk(trusted)
    after = 0
    if since is not None and report.ok:
        await _start_after(connection, since, walk=walk, report=report)
        after = since.seq
    statement = await connection.prepare(_SELECT_BATCH)
    pending = asyncio.ensure_future(statement.fetch(after, last, batch)) if report.ok else None
    while pending is not None:
        rows = await pending
        pending = None
        if rows:
            after = rows[-1][1]
            if after < last:
                pending = asyncio.ensure_future(statement.fetch(after, last, batch))
            if not await asyncio.to_thread(walk.check, rows, report):
                if pending is not None:
                    await pending
                    pending = None
                break
    if report.ok:
        beyond = [seq for seq in trusted if seq >= walk.expected_seq]
        if beyond:
            report.fail(
                walk.expected_seq,
                f"the chain ends at event {walk.expected_seq - 1}, but a signed checkpoint "
                f"vouches for event {min(beyond)}: events were removed from the end",
            )
    if untrusted is not None:
        # A forged checkpoint is a problem in itself; a bad event before it comes first.
        failed_at = report.first_bad_seq
        if failed_at is None or untrusted.seq < failed_at:
            report.ok, report.first_bad_seq = True, None
            report.fail(
                untrusted.seq,
                f"the checkpoint at event {untrusted.seq} is not signed by a known audit key",
            )
    report.events_checked = walk.checked
    report.head_seq = walk.expected_seq - 1
    report.head_hash = walk.prev_hash.hex()
    report.seconds = time.perf_counter() - started
    report.events_per_second = walk.checked / report.seconds if report.seconds > 0 else 0.0
    return report

"""How fast the audit trail verifies: a chain of N synthetic events (written straight
into a database of its own, hashed as the application hashes them), then `verify`."""

import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from app.audit.chain import GENESIS_HASH, HASHED_COLUMNS, EventDraft, event_hash, fast_event_hash
from app.audit.verification import verify
from app.core import embedded
from app.core.ids import new_id
from app.core.migrations import upgrade_async

DATABASE = "habeas_bench_audit"
_COLUMNS = (*HASHED_COLUMNS, "hash")


def _draft(rng: random.Random, actors: list[uuid.UUID]) -> EventDraft:
    """A status transition's event, the most common write, or a case read."""
    case_id = new_id()
    writing = rng.random() < 0.5
    version = rng.randint(1, 20)
    return EventDraft(
        actor_type="user",
        actor_id=rng.choice(actors),
        actor_role=rng.choice(["caseworker", "coordinator"]),
        action="case.transition" if writing else "case.read",
        outcome="success",
        resource_type="case",
        resource_id=case_id,
        related=[new_id()],
        request_id=str(new_id()),
        client_address=f"10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        user_agent="habeas-bench",
        changes=[
            {
                "type": "case",
                "id": str(case_id),
                "fields": {
                    "status": {"before": "detained", "after": "sentenced"},
                    "version": {"before": version, "after": version + 1},
                },
            }
        ]
        if writing
        else None,
    )


async def _fill(connection: asyncpg.Connection, events: int, batch: int = 50_000) -> None:
    rng = random.Random(7)
    actors = [new_id() for _ in range(50)]
    prev_hash = GENESIS_HASH
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    seq = 0
    while seq < events:
        rows: list[tuple[Any, ...]] = []
        for _ in range(min(batch, events - seq)):
            seq += 1
            moment += timedelta(microseconds=rng.randint(1, 5_000_000))
            draft = _draft(rng, actors)
            document = draft.document(seq, moment, prev_hash)
            # The application's own (RFC 8785) hash on a sample; the fast encoding gives the
            # same bytes for these documents.
            digest = event_hash(document) if seq % 1000 == 1 else fast_event_hash(document)
            rows.append(draft.row(seq=seq, occurred_at=moment, prev_hash=prev_hash, digest=digest))
            prev_hash = digest
        await connection.copy_records_to_table("audit_event", records=rows, columns=_COLUMNS)
    await connection.execute(
        "UPDATE audit_head SET seq = $1, hash = $2, occurred_at = $3", seq, prev_hash, moment
    )


async def verification_rate(data_dir: Path, server_url: str | None, events: int) -> dict[str, Any]:
    """Verify a chain of `events` events (made once and kept); the rate and the time."""
    admin_url = server_url or embedded.start(data_dir / "bench-pg")
    url = embedded.with_database(admin_url, DATABASE)
    await embedded.ensure_database(admin_url, DATABASE)
    await upgrade_async(url)
    connection = await asyncpg.connect(**embedded.asyncpg_connect_kwargs(url))
    try:
        present = await connection.fetchval("SELECT count(*) FROM audit_event")
        if present != events:
            await connection.close()
            await embedded.drop_database(admin_url, DATABASE)
            await embedded.ensure_database(admin_url, DATABASE)
            await upgrade_async(url)
            connection = await asyncpg.connect(**embedded.asyncpg_connect_kwargs(url))
            print(f"writing a chain of {events} audit events (once) ...", flush=True)  # noqa: T201
            await _fill(connection, events)
            await connection.execute("VACUUM ANALYZE audit_event")
        report = await verify(connection, [], {})
    finally:
        await connection.close()
    return {
        "events": report.events_checked,
        "ok": report.ok,
        "seconds": round(report.seconds, 2),
        "events_per_second": round(report.events_per_second),
        "first_bad_seq": report.first_bad_seq,
    }

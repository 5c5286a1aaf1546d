"""The scheduled integrity check: on a chain that holds, a signed checkpoint exported as a
whole file that the audit key verifies; on a tampered chain, the alert and no checkpoint;
every run recorded for the operator's figures. And the purge job."""

import json
import uuid
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
import structlog
from fastapi import FastAPI

from app.audit import service as audit_service
from app.audit.schemas import CheckpointRead
from app.audit.verification import Checkpoint
from app.core.clock import utcnow
from app.core.crypto import public_key_text
from app.jobs import service
from tests.audit.chain import build_chain, bypassing_triggers, pinned_public_key
from tests.auth import SignInAs


def exported(directory: Path) -> list[Path]:
    return sorted(directory.iterdir()) if directory.exists() else []


async def integrity_rows(db: asyncpg.Connection) -> list[asyncpg.Record]:
    return await db.fetch("SELECT * FROM integrity_check ORDER BY finished_at")


async def test_a_chain_that_holds_is_checkpointed_and_exported(
    app: FastAPI, sign_in_as: SignInAs, db: asyncpg.Connection, export_dir: Path
) -> None:
    await build_chain(sign_in_as, db, persons=3)
    head = await db.fetchval("SELECT max(seq) FROM audit_event")
    keys = app.state.security.audit_keys

    with structlog.testing.capture_logs() as logs:
        check = await service.check_integrity(app.state.session_factory, keys, export_dir)

    assert check.ok and check.error is None
    assert (check.head_seq, check.checkpoint_seq, check.first_bad_seq) == (head, head, None)
    assert not [entry for entry in logs if entry["log_level"] == "error"], logs
    # One whole file, nothing half-written beside it.
    (file,) = exported(export_dir)
    assert file.name.startswith(f"checkpoint-{head:012d}-") and file.suffix == ".json"
    assert str(file) == check.checkpoint_file
    document = json.loads(file.read_text())
    # The document `habeas audit checkpoint --out` writes.
    assert set(document) == set(CheckpointRead.model_fields)
    saved = Checkpoint.from_json(document)
    pinned = pinned_public_key(saved.key_id)
    assert saved.seq == head and saved.signed_by({saved.key_id: pinned})
    assert document["public_key"] == public_key_text(pinned)
    async with app.state.session_factory() as session:
        report = await audit_service.verify_chain(session, {saved.key_id: pinned}, [saved])
    assert report.ok and report.checkpoints_checked >= 1

    (row,) = await integrity_rows(db)
    assert row["ok"] and row["checkpoint_seq"] == head and row["checkpoint_file"] == str(file)
    assert row["events_checked"] == head and row["started_at"] <= row["finished_at"]

    # Nothing appended since: the same checkpoint, no second file; the run is recorded.
    again = await service.check_integrity(app.state.session_factory, keys, export_dir)
    assert again.checkpoint_seq == head and exported(export_dir) == [file]
    assert len(await integrity_rows(db)) == 2

    async with app.state.session_factory() as session:
        health = await service.job_health(session)
    assert health.last_integrity_check is not None and health.last_integrity_check.ok
    assert health.last_verified_at == health.last_integrity_check.finished_at


async def test_a_tampered_chain_raises_the_alert_and_nothing_is_signed(
    app: FastAPI, sign_in_as: SignInAs, db: asyncpg.Connection, export_dir: Path
) -> None:
    chain = await build_chain(sign_in_as, db, persons=5)
    keys = app.state.security.audit_keys
    first = await service.check_integrity(app.state.session_factory, keys, export_dir)
    assert first.ok
    bad = chain.middle
    async with bypassing_triggers(db):
        await db.execute("UPDATE audit_event SET action = 'person.read' WHERE seq = $1", bad)
    await chain.coordinator.get("/api/v1/persons")  # the chain goes on past the change
    checkpoints = await db.fetchval("SELECT count(*) FROM audit_checkpoint")
    files = exported(export_dir)

    with structlog.testing.capture_logs() as logs:
        check = await service.check_integrity(app.state.session_factory, keys, export_dir)

    assert not check.ok and check.first_bad_seq == bad and check.checkpoint_seq is None
    alerts = [entry for entry in logs if entry["event"] == "audit_verification_failed"]
    assert len(alerts) == 1, logs
    (alert,) = alerts
    assert alert["log_level"] == "error" and alert["first_bad_seq"] == bad
    # Where, never what: no field of the event in the alert.
    assert set(alert) == {"event", "log_level", "first_bad_seq", "head_seq", "events_checked"}
    assert await db.fetchval("SELECT count(*) FROM audit_checkpoint") == checkpoints
    assert exported(export_dir) == files

    row = (await integrity_rows(db))[-1]
    assert not row["ok"] and row["first_bad_seq"] == bad and row["checkpoint_seq"] is None
    assert "does not match its hash" in row["problem"]
    async with app.state.session_factory() as session:
        health = await service.job_health(session)
    assert health.last_integrity_check is not None
    assert not health.last_integrity_check.ok
    assert health.last_integrity_check.first_bad_seq == bad
    # The last time it held is still known: since when the problem is there.
    assert health.last_verified_at == first.finished_at


async def test_an_export_that_fails_fails_the_run_and_is_recorded(
    app: FastAPI, sign_in_as: SignInAs, db: asyncpg.Connection, tmp_path: Path
) -> None:
    await build_chain(sign_in_as, db, persons=1)
    not_a_directory = tmp_path / "taken"
    not_a_directory.write_text("")

    with pytest.raises(FileExistsError):
        await service.check_integrity(
            app.state.session_factory, app.state.security.audit_keys, not_a_directory
        )

    (row,) = await integrity_rows(db)
    assert row["ok"] and row["checkpoint_seq"] is not None and row["checkpoint_file"] is None
    assert row["error"].startswith("the checkpoint was signed but not exported")
    assert exported(tmp_path) == [not_a_directory]


async def test_without_an_export_directory_the_checkpoint_is_only_stored(
    app: FastAPI, sign_in_as: SignInAs, db: asyncpg.Connection
) -> None:
    await build_chain(sign_in_as, db, persons=1)
    check = await service.check_integrity(
        app.state.session_factory, app.state.security.audit_keys, None
    )
    assert check.ok and check.checkpoint_file is None
    assert await db.fetchval(
        "SELECT count(*) FROM audit_checkpoint WHERE seq = $1", check.checkpoint_seq
    )


async def test_the_purge_job_deletes_expired_records_and_old_failed_jobs(
    app: FastAPI, db: asyncpg.Connection, clean_tables: None, empty_queue: None
) -> None:
    settings = app.state.settings
    now = utcnow()
    retention = timedelta(hours=settings.idempotency_retention_hours)
    expired, fresh = uuid.uuid4(), uuid.uuid4()
    for record_id, created_at in ((expired, now - retention - timedelta(minutes=1)), (fresh, now)):
        await db.execute(
            "INSERT INTO idempotency_record (id, scope, key, fingerprint, created_at)"
            " VALUES ($1, 'test', $2, 'f', $3)",
            record_id,
            str(record_id),
            created_at,
        )
    days = settings.failed_job_retention_days
    for age in (timedelta(days=days, minutes=1), timedelta(days=days - 1)):
        await db.execute(
            "INSERT INTO pgqueuer (priority, status, entrypoint, updated)"
            " VALUES (0, 'failed', 'purge_expired', now() - $1::interval)",
            age,
        )

    purged = await service.purge(app.state.session_factory, settings)

    assert purged["idempotency_records"] == 1 and purged["failed_jobs"] == 1
    assert [row["id"] for row in await db.fetch("SELECT id FROM idempotency_record")] == [fresh]
    async with app.state.session_factory() as session:
        health = await service.job_health(session)
    assert health.failed_jobs == 1
    assert health.queue_depth == {("purge_expired", "failed"): 1}
    # Idempotent: a second run (another worker, the API's own loop) finds nothing left.
    again = await service.purge(app.state.session_factory, settings)
    assert again["idempotency_records"] == 0 and again["failed_jobs"] == 0

"""The audit trail's hash chain: how it verifies, what breaks it, who may touch it.

A chain is built through real API writes; it is then tampered with the way only the owner
of the tables (or a superuser) could, with the triggers switched off for the transaction
(`session_replication_role = replica`), and the verifier must name the first event that
is wrong. A history rewritten and re-hashed is internally consistent: only a signed
checkpoint taken before the rewrite can prove it.
"""

import asyncio
import base64
import dataclasses
import hashlib
import json
import secrets
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from app.access.principal import Role
from app.audit.chain import GENESIS_HASH, HASHED_COLUMNS, EventDraft, append, event_hash
from app.audit.verification import Checkpoint, verify
from app.core.clock import utcnow
from app.core.crypto import public_key_text
from app.main import create_app
from tests.audit.chain import (
    PERSONS,
    build_chain,
    bypassing_triggers,
    cli_env,
    key_file,
    pinned_public_key,
)
from tests.auth import SignInAs, api_client
from tests.conftest import settings_for
from tests.factories import create_case, create_person, person_body, transition

API = "/api/v1"
VERIFY = f"{API}/audit/verify"
LATEST = f"{API}/audit/checkpoints/latest"
PROBLEM_JSON = "application/problem+json"


# Helpers ---------------------------------------------------------------------------------


async def event_count(db: asyncpg.Connection) -> int:
    count: int = await db.fetchval("SELECT count(*) FROM audit_event")
    return count


async def verify_api(auditor: httpx.AsyncClient) -> dict[str, Any]:
    response = await auditor.get(VERIFY)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def assert_fails_at(report: Any, seq: int, problem: str) -> None:
    """A report (API JSON or the verifier's Report) that names `seq` as the first bad one."""
    values = report if isinstance(report, dict) else dataclasses.asdict(report)
    assert values["ok"] is False, values
    assert values["first_bad_seq"] == seq, values
    assert problem in values["problem"], values


# The draft's columns (`read_at` is when a batched read was served, not a column).
_DRAFT_FIELDS = tuple(
    field.name for field in dataclasses.fields(EventDraft) if field.name != "read_at"
)
assert HASHED_COLUMNS[0] == "seq"  # $1 below
_REWRITE = (
    "UPDATE audit_event SET "
    + ", ".join(f"{column} = ${n}" for n, column in enumerate(HASHED_COLUMNS[1:], start=2))
    + f", hash = ${len(HASHED_COLUMNS) + 1} WHERE seq = $1"
)


async def rewrite_from(
    db: asyncpg.Connection, start: int, edit: Callable[[dict[str, Any]], None]
) -> None:
    """Edit event `start` and re-hash it and every later event with the application's own
    encoding, then move the chain head: a rewrite with nothing left inconsistent."""
    previous = (
        GENESIS_HASH
        if start == 1
        else await db.fetchval("SELECT hash FROM audit_event WHERE seq = $1", start - 1)
    )
    rows = await db.fetch("SELECT * FROM audit_event WHERE seq >= $1 ORDER BY seq", start)
    assert rows
    async with bypassing_triggers(db):
        for row in rows:
            values = dict(row)
            for column in ("changes", "detail"):
                if values[column] is not None:
                    values[column] = json.loads(values[column])
            if values["seq"] == start:
                edit(values)
            draft = EventDraft(**{name: values[name] for name in _DRAFT_FIELDS})
            digest = event_hash(draft.document(values["seq"], values["occurred_at"], previous))
            arguments = [values[column] for column in HASHED_COLUMNS]
            for index, column in enumerate(HASHED_COLUMNS):
                if column in ("changes", "detail") and values[column] is not None:
                    arguments[index] = json.dumps(values[column])
            arguments[HASHED_COLUMNS.index("prev_hash")] = previous
            await db.execute(_REWRITE, *arguments, digest)
            previous = digest
        await db.execute(
            "UPDATE audit_head SET seq = $1, hash = $2, occurred_at = $3",
            values["seq"],
            previous,
            values["occurred_at"],
        )


def ring_public_keys(app: FastAPI) -> dict[str, Any]:
    keys: dict[str, Any] = app.state.security.audit_keys.public_keys()
    return keys


async def run_cli(
    args: list[str], database_url: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    # cwd is an empty directory, so no stray .env file feeds the settings.
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app.cli", *args],
        capture_output=True,
        text=True,
        env=cli_env(database_url),
        cwd=cwd,
        timeout=120,
        check=False,
    )


def last_json_line(output: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return document


async def empty_audit_trail(db: asyncpg.Connection) -> None:
    """Only the audit tables (accounts and sessions stay, so tokens keep working)."""
    async with bypassing_triggers(db):
        await db.execute("TRUNCATE audit_event, audit_checkpoint")
        await db.execute("UPDATE audit_head SET seq = 0, hash = $1, occurred_at = NULL", bytes(32))


def independent_hash(row: asyncpg.Record) -> bytes:
    """SHA-256 over RFC 8785 JSON of every column but `hash`, built here from the
    specification rather than with the application's encoder."""
    document: dict[str, Any] = {"v": 1}
    for column in HASHED_COLUMNS:
        value = row[column]
        if column == "occurred_at":
            value = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        elif column in ("actor_id", "resource_id") and value is not None:
            value = str(value)
        elif column == "related":
            value = [str(item) for item in value]
        elif column in ("changes", "detail") and value is not None:
            value = json.loads(value)
        elif column == "prev_hash":
            value = bytes(value).hex()
        document[column] = value
    return hashlib.sha256(rfc8785.dumps(document)).digest()


# A clean chain ---------------------------------------------------------------------------


async def test_a_clean_chain_verifies_through_the_api_the_cli_and_the_verifier(
    app: FastAPI,
    sign_in_as: SignInAs,
    db: asyncpg.Connection,
    database_url: str,
    tmp_path: Path,
) -> None:
    chain = await build_chain(sign_in_as, db)
    rows = await db.fetch("SELECT * FROM audit_event ORDER BY seq")
    count = len(rows)
    assert count >= PERSONS + 4  # two accounts made and signed in, then the persons
    assert [row["seq"] for row in rows] == list(range(1, count + 1))

    # Every column but `hash` is hashed, and the hash is what the specification says.
    columns = {
        row["column_name"]
        for row in await db.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'audit_event'"
        )
    }
    assert columns == {*HASHED_COLUMNS, "hash"}
    previous = GENESIS_HASH
    for row in rows:
        assert row["prev_hash"] == previous
        assert independent_hash(row) == row["hash"]
        previous = row["hash"]
    head = await db.fetchrow("SELECT seq, hash, occurred_at FROM audit_head")
    assert (head["seq"], head["hash"], head["occurred_at"]) == (
        rows[-1]["seq"],
        rows[-1]["hash"],
        rows[-1]["occurred_at"],
    )

    report = await verify_api(chain.auditor)
    assert report["ok"] is True
    assert report["first_bad_seq"] is None and report["problem"] is None
    assert report["head_seq"] == report["events_checked"] == count
    assert report["head_hash"] == rows[-1]["hash"].hex()

    done = await run_cli(["audit", "verify"], database_url, tmp_path)
    assert done.returncode == 0, done.stderr
    printed = last_json_line(done.stdout)
    assert printed["ok"] is True
    assert printed["head_seq"] == printed["events_checked"] == count

    # Directly, in batches small enough that every boundary falls somewhere else.
    for batch in (1, 2, 5, 7, 20_000):
        direct = await verify(db, [], ring_public_keys(app), batch=batch)
        assert direct.ok and direct.head_seq == direct.events_checked == count, batch


# Triggers --------------------------------------------------------------------------------


REFUSED_TO_EVERYONE = [
    ("UPDATE audit_event SET action = 'person.delete' WHERE seq = 1", "audit_event", "UPDATE"),
    ("UPDATE audit_event SET action = action", "audit_event", "UPDATE"),
    ("DELETE FROM audit_event WHERE seq = 1", "audit_event", "DELETE"),
    ("DELETE FROM audit_event", "audit_event", "DELETE"),
    ("TRUNCATE audit_event", "audit_event", "TRUNCATE"),
    ("TRUNCATE audit_event CASCADE", "audit_event", "TRUNCATE"),
    ("UPDATE audit_checkpoint SET head_hash = sha256(head_hash)", "audit_checkpoint", "UPDATE"),
    ("DELETE FROM audit_checkpoint", "audit_checkpoint", "DELETE"),
    ("TRUNCATE audit_checkpoint", "audit_checkpoint", "TRUNCATE"),
]


@pytest.mark.parametrize(("statement", "table", "operation"), REFUSED_TO_EVERYONE)
async def test_the_database_refuses_changes_to_the_trail_even_to_a_superuser(
    sign_in_as: SignInAs, db: asyncpg.Connection, statement: str, table: str, operation: str
) -> None:
    chain = await build_chain(sign_in_as, db, persons=2)
    assert (await chain.auditor.get(LATEST)).status_code == 200
    assert await db.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    before = [dict(row) for row in await db.fetch(f"SELECT * FROM {table} ORDER BY seq")]
    assert before

    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only") as refused:
        await db.execute(statement)
    assert f"{table} is append-only: {operation} refused" in str(refused.value)
    assert [dict(row) for row in await db.fetch(f"SELECT * FROM {table} ORDER BY seq")] == before
    assert (await verify_api(chain.auditor))["ok"] is True


# Tampering -------------------------------------------------------------------------------


CHANGED_FIELDS = [
    pytest.param("action = 'person.delete'", "does not match its hash", id="action"),
    pytest.param(
        "changes = jsonb_set(changes, '{0,fields,occupation,after}', '\"engineer\"')",
        "does not match its hash",
        id="a-value-inside-changes",
    ),
    pytest.param("outcome = 'denied'", "does not match its hash", id="outcome"),
    pytest.param("actor_id = gen_random_uuid()", "does not match its hash", id="actor"),
    pytest.param(
        "related = array_append(related, gen_random_uuid())",
        "does not match its hash",
        id="related",
    ),
    pytest.param("client_address = '203.0.113.9'", "does not match its hash", id="address"),
    pytest.param('detail = \'{"note": "added"}\'', "does not match its hash", id="detail"),
    pytest.param(
        "occurred_at = occurred_at + interval '1 microsecond'",
        "does not match its hash",
        id="time",
    ),
    pytest.param("hash = sha256(hash)", "does not match its hash", id="stored-hash"),
    pytest.param("prev_hash = sha256(prev_hash)", "does not link", id="link"),
]


@pytest.mark.parametrize(("assignment", "problem"), CHANGED_FIELDS)
async def test_a_changed_field_is_caught_at_its_event(
    sign_in_as: SignInAs, db: asyncpg.Connection, assignment: str, problem: str
) -> None:
    chain = await build_chain(sign_in_as, db)
    assert (await verify_api(chain.auditor))["ok"] is True
    bad = chain.middle
    async with bypassing_triggers(db):
        changed = await db.execute(f"UPDATE audit_event SET {assignment} WHERE seq = $1", bad)
    assert changed == "UPDATE 1"

    report = await verify_api(chain.auditor)
    assert_fails_at(report, bad, problem)
    assert report["events_checked"] == bad - 1
    assert report["head_seq"] == bad - 1


@pytest.mark.parametrize("which", ["first", "middle", "second-to-last"])
async def test_a_deleted_event_is_reported_missing(
    app: FastAPI,
    sign_in_as: SignInAs,
    db: asyncpg.Connection,
    database_url: str,
    tmp_path: Path,
    which: str,
) -> None:
    chain = await build_chain(sign_in_as, db)
    last = await event_count(db)
    gone = {"first": 1, "middle": chain.middle, "second-to-last": last - 1}[which]
    async with bypassing_triggers(db):
        assert await db.execute("DELETE FROM audit_event WHERE seq = $1", gone) == "DELETE 1"

    assert_fails_at(await verify_api(chain.auditor), gone, f"event {gone} is missing")
    for batch in (1, 3, 20_000):
        direct = await verify(db, [], ring_public_keys(app), batch=batch)
        assert_fails_at(direct, gone, "is missing")
    if which == "middle":
        done = await run_cli(["audit", "verify"], database_url, tmp_path)
        assert done.returncode == 1, done.stderr
        assert_fails_at(last_json_line(done.stdout), gone, "is missing")


async def test_two_swapped_events_are_caught_at_the_first_of_them(
    sign_in_as: SignInAs, db: asyncpg.Connection
) -> None:
    chain = await build_chain(sign_in_as, db)
    first = chain.middle
    others = [column for column in (*HASHED_COLUMNS, "hash") if column != "seq"]
    async with bypassing_triggers(db):
        swapped = await db.execute(
            "UPDATE audit_event AS a SET "
            + ", ".join(f"{column} = b.{column}" for column in others)
            + " FROM audit_event AS b"
            " WHERE (a.seq = $1 AND b.seq = $1 + 1) OR (a.seq = $1 + 1 AND b.seq = $1)",
            first,
        )
    assert swapped == "UPDATE 2"
    moved = await db.fetchrow("SELECT action, prev_hash FROM audit_event WHERE seq = $1", first)
    assert moved["action"] == "person.create"

    assert_fails_at(await verify_api(chain.auditor), first, f"event {first} does not link")


async def test_time_going_backwards_is_caught_even_when_everything_is_rehashed(
    app: FastAPI, sign_in_as: SignInAs, db: asyncpg.Connection
) -> None:
    chain = await build_chain(sign_in_as, db)
    bad = chain.middle
    earlier = await db.fetchval("SELECT occurred_at FROM audit_event WHERE seq = $1", bad - 1)

    def backdate(values: dict[str, Any]) -> None:
        values["occurred_at"] = earlier - timedelta(seconds=1)

    # Event `bad` and every later one are re-hashed, so links and hashes all hold: only
    # the order of time gives the rewrite away.
    await rewrite_from(db, bad, backdate)
    report = await verify_api(chain.auditor)
    assert_fails_at(report, bad, f"event {bad} is dated before event {bad - 1}")
    assert report["events_checked"] == bad - 1
    assert_fails_at(await verify(db, [], ring_public_keys(app)), bad, "is dated before")


async def test_a_rewritten_and_rehashed_history_is_caught_only_against_a_checkpoint(
    app: FastAPI,
    sign_in_as: SignInAs,
    db: asyncpg.Connection,
    database_url: str,
    tmp_path: Path,
) -> None:
    chain = await build_chain(sign_in_as, db)
    saved = tmp_path / "checkpoint.json"
    made = await run_cli(["audit", "checkpoint", "--out", str(saved)], database_url, tmp_path)
    assert made.returncode == 0, made.stderr
    document = json.loads(saved.read_text())
    vouched = document["seq"]
    assert vouched == await event_count(db)
    # The API hands out the same checkpoint: nothing was appended since.
    latest = await chain.auditor.get(LATEST)
    assert latest.status_code == 200
    assert latest.json()["signature"] == document["signature"]
    # More history after the checkpoint.
    for _ in range(3):
        await create_person(chain.coordinator)
    total = await event_count(db)

    bad = chain.middle
    assert bad < vouched < total

    def rewrite(values: dict[str, Any]) -> None:
        values["changes"][0]["fields"]["occupation"]["after"] = "engineer"

    await rewrite_from(db, bad, rewrite)
    assert "engineer" in await db.fetchval(
        "SELECT changes::text FROM audit_event WHERE seq = $1", bad
    )

    # On its own the rewritten history holds together.
    alone = await verify(db, [], ring_public_keys(app))
    assert alone.ok, alone
    assert alone.head_seq == alone.events_checked == total

    # Against the stored checkpoint it does not, first where the checkpoint vouches.
    report = await verify_api(chain.auditor)
    assert_fails_at(report, vouched, "was rewritten")
    assert report["events_checked"] == vouched - 1
    # And no new checkpoint vouches for it.
    refused = await chain.auditor.get(LATEST)
    assert refused.status_code == 409
    assert refused.headers["content-type"].startswith(PROBLEM_JSON)
    assert refused.json()["first_bad_seq"] == vouched
    assert await db.fetchval("SELECT count(*) FROM audit_checkpoint") == 1

    # The attacker removes the stored checkpoints as well: the database no longer
    # contradicts the rewrite...
    async with bypassing_triggers(db):
        await db.execute("DELETE FROM audit_checkpoint")
    assert (await verify_api(chain.auditor))["ok"] is True
    # ...but the checkpoint saved outside it still does, with the key from the file or a
    # pinned public key.
    kid = document["key_id"]
    pinned = public_key_text(pinned_public_key(kid))
    for extra in ([], ["--public-key", f"{kid}={pinned}"]):
        done = await run_cli(
            ["audit", "verify", "--checkpoint", str(saved), *extra], database_url, tmp_path
        )
        assert done.returncode == 1, (extra, done.stdout, done.stderr)
        report = last_json_line(done.stdout)
        assert_fails_at(report, vouched, "was rewritten")
    # The same checkpoint, read directly by the verifier.
    direct = await verify(db, [Checkpoint.from_json(document)], ring_public_keys(app))
    assert_fails_at(direct, vouched, "was rewritten")


@pytest.mark.parametrize("removed", [1, 5])
async def test_a_removed_tail_is_caught_against_a_checkpoint_that_vouches_for_it(
    app: FastAPI, sign_in_as: SignInAs, db: asyncpg.Connection, removed: int
) -> None:
    chain = await build_chain(sign_in_as, db)
    response = await chain.auditor.get(LATEST)
    assert response.status_code == 200
    checkpoint = Checkpoint.from_json(response.json())
    total = await event_count(db)
    assert checkpoint.seq == total
    first_gone = total - removed + 1

    async with bypassing_triggers(db):
        await db.execute("DELETE FROM audit_event WHERE seq >= $1", first_gone)
        await db.execute(
            "UPDATE audit_head SET (seq, hash, occurred_at) = "
            "(SELECT seq, hash, occurred_at FROM audit_event WHERE seq = $1)",
            first_gone - 1,
        )

    # Without a checkpoint, a shorter chain is still a valid chain.
    alone = await verify(db, [], ring_public_keys(app))
    assert alone.ok and alone.head_seq == first_gone - 1
    # The stored checkpoint says there was more.
    report = await verify_api(chain.auditor)
    assert_fails_at(report, first_gone, "events were removed from the end")
    # With the stored checkpoints gone too, the one kept outside still says so.
    async with bypassing_triggers(db):
        await db.execute("DELETE FROM audit_checkpoint")
    assert (await verify_api(chain.auditor))["ok"] is True
    direct = await verify(db, [checkpoint], ring_public_keys(app))
    assert_fails_at(direct, first_gone, "removed from the end")


def _forged(kind: str, seq: int, head_hash: bytes, kid: str) -> Checkpoint:
    signed_at = utcnow()
    stranger = Ed25519PrivateKey.generate()
    honest = Checkpoint(seq, head_hash, signed_at, kid, b"")
    if kind == "random-signature":
        return dataclasses.replace(honest, signature=secrets.token_bytes(64))
    if kind == "unknown-key":
        unknown = dataclasses.replace(honest, key_id="attacker-key")
        return dataclasses.replace(unknown, signature=stranger.sign(unknown.statement()))
    if kind == "stranger-under-our-key-id":
        return dataclasses.replace(honest, signature=stranger.sign(honest.statement()))
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind", ["random-signature", "unknown-key", "stranger-under-our-key-id", "altered-hash"]
)
async def test_a_forged_checkpoint_row_fails_verification(
    app: FastAPI, sign_in_as: SignInAs, db: asyncpg.Connection, kind: str
) -> None:
    chain = await build_chain(sign_in_as, db)
    at = chain.middle
    head_hash = await db.fetchval("SELECT hash FROM audit_event WHERE seq = $1", at)
    kid = app.state.security.audit_keys.active_kid
    if kind == "altered-hash":
        # A genuine checkpoint whose stored hash was changed afterwards (inserting the
        # altered copy is all the append-only table allows).
        genuine = (await chain.auditor.get(LATEST)).json()
        async with bypassing_triggers(db):
            await db.execute("DELETE FROM audit_checkpoint")
        signed = Checkpoint.from_json(genuine)
        assert signed.signed_by(ring_public_keys(app))
        forged = dataclasses.replace(signed, head_hash=bytes(32))
        at = signed.seq
    else:
        forged = _forged(kind, at, head_hash, kid)
    await db.execute(
        "INSERT INTO audit_checkpoint (seq, key_id, head_hash, signed_at, signature) "
        "VALUES ($1, $2, $3, $4, $5)",
        forged.seq,
        forged.key_id,
        forged.head_hash,
        forged.signed_at,
        forged.signature,
    )

    report = await verify_api(chain.auditor)
    assert_fails_at(report, at, "is not signed by a known audit key")
    assert report["checkpoints_checked"] == 0
    # No checkpoint is signed on top of it either.
    stored = await db.fetchval("SELECT count(*) FROM audit_checkpoint")
    assert (await chain.auditor.get(LATEST)).status_code == 409
    assert await db.fetchval("SELECT count(*) FROM audit_checkpoint") == stored


# Concurrency -----------------------------------------------------------------------------


def _person(n: int) -> dict[str, Any]:
    return person_body(occupation=f"writer {n}")


async def test_fifty_concurrent_writers_leave_a_contiguous_valid_chain(
    app: FastAPI, sign_in_as: SignInAs, db: asyncpg.Connection
) -> None:
    auditor = (await sign_in_as(Role.auditor)).client
    first = (await sign_in_as(Role.coordinator)).client
    second = (await sign_in_as(Role.coordinator)).client
    analyst = (await sign_in_as(Role.analyst)).client
    cases = [await create_case(first) for _ in range(10)]
    before = await event_count(db)

    async def rolled_back_append() -> None:
        """An append whose transaction then rolls back: its number must be reused."""
        async with app.state.session_factory() as session:
            draft = EventDraft("system", None, "system", "test.rolled_back", "success")
            await append(session, draft)
            await asyncio.sleep(0.01)  # holding the chain's lock
            await session.rollback()

    writes: list[Awaitable[httpx.Response]] = [
        *(first.post(f"{API}/persons", json=_person(n)) for n in range(20)),
        *(second.post(f"{API}/persons", json=_person(n)) for n in range(20, 30)),
        *(
            transition(first if n % 2 else second, case, "sentenced", "2022-01-01")
            for n, case in enumerate(cases)
        ),
        # A stale version: refused with 412, nothing appended.
        *(transition(second, case, "released", "2023-01-01", version=9) for case in cases[:5]),
        # Refused access: recorded as a denial.
        *(analyst.post(f"{API}/persons", json=_person(n)) for n in range(5)),
    ]
    assert len(writes) == 50
    responses, _ = await asyncio.gather(
        asyncio.gather(*writes), asyncio.gather(*(rolled_back_append() for _ in range(5)))
    )
    statuses = [response.status_code for response in responses]
    assert statuses == [201] * 40 + [412] * 5 + [403] * 5, [
        (response.status_code, response.text) for response in responses
    ]

    rows = await db.fetch("SELECT * FROM audit_event ORDER BY seq")
    assert len(rows) == before + 45  # one event per success and per denial, none else
    assert [row["seq"] for row in rows] == list(range(1, len(rows) + 1))
    previous, previous_time = GENESIS_HASH, rows[0]["occurred_at"]
    for row in rows:
        assert row["prev_hash"] == previous, row["seq"]
        assert row["occurred_at"] >= previous_time, row["seq"]
        assert independent_hash(row) == row["hash"], row["seq"]
        previous, previous_time = row["hash"], row["occurred_at"]
    new = rows[before:]
    assert sum(row["outcome"] == "denied" for row in new) == 5
    assert sum(row["action"] == "person.create" for row in new) == 35
    assert not [row for row in rows if row["action"] == "test.rolled_back"]
    head = await db.fetchrow("SELECT seq, hash, occurred_at FROM audit_head")
    assert tuple(head) == (rows[-1]["seq"], rows[-1]["hash"], rows[-1]["occurred_at"])

    report = await verify_api(auditor)
    assert report["ok"] is True
    assert report["head_seq"] == report["events_checked"] == len(rows)


# The application's database role ---------------------------------------------------------


async def _as_role(db: asyncpg.Connection, role: str, statement: str, *args: Any) -> Any:
    """Run a statement as the role, and roll it back whatever it did."""
    transaction = db.transaction()
    await transaction.start()
    try:
        await db.execute(f'SET LOCAL ROLE "{role}"')
        return await db.fetch(statement, *args)
    finally:
        await transaction.rollback()


REFUSED_TO_THE_APPLICATION = [
    "UPDATE audit_event SET action = action",
    "DELETE FROM audit_event",
    "TRUNCATE audit_event",
    "UPDATE audit_checkpoint SET key_id = key_id",
    "DELETE FROM audit_checkpoint",
    "TRUNCATE audit_checkpoint",
    "INSERT INTO audit_event SELECT * FROM audit_event WHERE seq = 1 "
    "ON CONFLICT (seq) DO UPDATE SET action = 'person.delete'",
    "INSERT INTO audit_head SELECT * FROM audit_head",
    "DELETE FROM audit_head",
    "TRUNCATE audit_head",
    "UPDATE alembic_version SET version_num = version_num",
    "SET LOCAL session_replication_role = replica",
    "ALTER TABLE audit_event DISABLE TRIGGER USER",
    "DROP TRIGGER audit_event_no_update_or_delete ON audit_event",
]


async def test_the_application_role_may_append_to_the_trail_but_never_change_it(
    app: FastAPI,
    sign_in_as: SignInAs,
    db: asyncpg.Connection,
    database_url: str,
    tmp_path: Path,
) -> None:
    chain = await build_chain(sign_in_as, db, persons=2)
    person_id = await db.fetchval("SELECT id FROM person LIMIT 1")
    role = f"habeas_app_test_{secrets.token_hex(4)}"
    password = secrets.token_hex(16)
    await db.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'")
    try:
        missing = await run_cli(["db", "grant", f"{role}_missing"], database_url, tmp_path)
        assert missing.returncode == 2
        granted = await run_cli(["db", "grant", role], database_url, tmp_path)
        assert granted.returncode == 0, granted.stderr
        assert last_json_line(granted.stdout)["role"] == role

        for table in ("audit_event", "audit_checkpoint"):
            for privilege in ("UPDATE", "DELETE", "TRUNCATE", "TRIGGER", "REFERENCES"):
                assert not await db.fetchval(
                    "SELECT has_table_privilege($1, $2, $3)", role, table, privilege
                ), (table, privilege)
            for privilege in ("SELECT", "INSERT"):
                assert await db.fetchval(
                    "SELECT has_table_privilege($1, $2, $3)", role, table, privilege
                ), (table, privilege)

        # Refused by the grants, before any trigger would have a say.
        for statement in REFUSED_TO_THE_APPLICATION:
            with pytest.raises(asyncpg.InsufficientPrivilegeError) as refused:
                await _as_role(db, role, statement)
            assert "append-only" not in str(refused.value), statement
        # What the application needs.
        assert await _as_role(db, role, "SELECT count(*) FROM audit_event")
        assert await _as_role(db, role, "SELECT seq, hash FROM audit_head FOR UPDATE")
        await _as_role(db, role, "UPDATE audit_head SET seq = seq")
        await _as_role(db, role, "UPDATE person SET version = version WHERE id = $1", person_id)
        await _as_role(db, role, "DELETE FROM person_name WHERE person_id = $1", uuid.uuid4())
        assert await _as_role(db, role, "SELECT version_num FROM alembic_version")

        # The application itself, connected as the role: writes append events, auditors
        # verify and get checkpoints.
        url = make_url(database_url).set(username=role, password=password)
        as_role = settings_for(url.render_as_string(hide_password=False))
        role_app = create_app(as_role)
        before = await event_count(db)
        async with (
            role_app.router.lifespan_context(role_app),
            api_client(role_app) as coordinator,
            api_client(role_app) as auditor,
        ):
            coordinator.headers["Authorization"] = chain.coordinator.headers["Authorization"]
            auditor.headers["Authorization"] = chain.auditor.headers["Authorization"]
            case = await create_case(coordinator)
            moved = await transition(coordinator, case, "sentenced", "2022-01-01")
            assert moved.status_code == 201, moved.text
            assert (await verify_api(auditor))["ok"] is True
            checkpoint = await auditor.get(LATEST)
            assert checkpoint.status_code == 200, checkpoint.text
            assert checkpoint.json()["seq"] == before + 3
            denied = await coordinator.get(VERIFY)
            assert denied.status_code == 403
        assert await event_count(db) == before + 4
        assert (await verify_api(chain.auditor))["ok"] is True
    finally:
        await db.execute(f'DROP OWNED BY "{role}"')
        await db.execute(f'DROP ROLE "{role}"')


# Checkpoints -----------------------------------------------------------------------------


async def test_a_checkpoint_is_an_ed25519_signed_statement_of_the_head(
    app: FastAPI, sign_in_as: SignInAs, db: asyncpg.Connection
) -> None:
    chain = await build_chain(sign_in_as, db, persons=3)
    response = await chain.auditor.get(LATEST)
    assert response.status_code == 200, response.text
    checkpoint = response.json()
    head = await db.fetchrow("SELECT seq, hash FROM audit_event ORDER BY seq DESC LIMIT 1")
    assert checkpoint["log"] == "habeas-audit"
    assert checkpoint["seq"] == head["seq"]
    assert checkpoint["head_hash"] == head["hash"].hex()

    statement = checkpoint["statement"].encode()
    said = json.loads(statement)
    assert said == {
        name: checkpoint[name] for name in ("log", "seq", "head_hash", "signed_at", "key_id")
    }
    assert rfc8785.dumps(said) == statement  # canonical: anyone can rebuild the bytes
    key = pinned_public_key(checkpoint["key_id"])
    assert checkpoint["public_key"] == public_key_text(key)
    signature = base64.b64decode(checkpoint["signature"])
    key.verify(signature, statement)
    with pytest.raises(InvalidSignature):
        key.verify(signature, statement.replace(checkpoint["head_hash"].encode(), b"0" * 64))

    # Nothing appended since: the same checkpoint comes back.
    again = await chain.auditor.get(LATEST)
    assert again.json() == checkpoint
    assert await db.fetchval("SELECT count(*) FROM audit_checkpoint") == 1
    # The head moved: a new checkpoint, for the new head.
    await create_person(chain.coordinator)
    moved = (await chain.auditor.get(LATEST)).json()
    assert moved["seq"] == checkpoint["seq"] + 1 == await event_count(db)
    assert moved["signature"] != checkpoint["signature"]
    key.verify(base64.b64decode(moved["signature"]), moved["statement"].encode())
    assert await db.fetchval("SELECT count(*) FROM audit_checkpoint") == 2
    report = await verify_api(chain.auditor)
    assert report["ok"] is True and report["checkpoints_checked"] == 2


async def test_an_empty_chain_has_no_checkpoint(
    sign_in_as: SignInAs, db: asyncpg.Connection
) -> None:
    auditor = (await sign_in_as(Role.auditor)).client
    await empty_audit_trail(db)
    response = await auditor.get(LATEST)
    assert response.status_code == 409
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert response.json()["status"] == 409
    assert await db.fetchval("SELECT count(*) FROM audit_checkpoint") == 0
    report = await verify_api(auditor)
    assert report["ok"] is True and report["head_seq"] == 0


async def test_the_audit_keys_are_nowhere_in_the_database(
    sign_in_as: SignInAs, db: asyncpg.Connection
) -> None:
    chain = await build_chain(sign_in_as, db, persons=2)
    assert (await chain.auditor.get(LATEST)).status_code == 200
    secrets_in_file = [
        base64.b64decode(material[part])
        for material in key_file()["keys"].values()
        for part in ("signing", "fingerprint")
    ]
    needles = []
    for raw in secrets_in_file:
        text = base64.b64encode(raw).decode()
        # As text, as bytes (bytea shows as hex in a row's text), and as text stored in bytea.
        needles += [text, text.rstrip("="), raw.hex(), text.encode().hex()]
    tables = [
        row["tablename"]
        for row in await db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    ]
    assert {"audit_event", "audit_checkpoint", "app_user", "person"} <= set(tables)

    async def rows_holding(needle: str) -> dict[str, int]:
        found = {}
        for table in tables:
            count = await db.fetchval(
                f'SELECT count(*) FROM "{table}" AS r WHERE strpos(r::text, $1) > 0', needle
            )
            if count:
                found[table] = count
        return found

    # The search finds what is there (a head hash, stored as bytea)...
    head_hash = await db.fetchval("SELECT head_hash FROM audit_checkpoint")
    assert "audit_checkpoint" in await rows_holding(head_hash.hex())
    # ...and no key material.
    for needle in needles:
        assert await rows_holding(needle) == {}, needle


# Who may verify --------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.coordinator, Role.caseworker, Role.analyst, Role.admin])
async def test_only_auditors_verify_and_get_checkpoints(
    app: FastAPI, sign_in_as: SignInAs, db: asyncpg.Connection, role: Role
) -> None:
    chain = await build_chain(sign_in_as, db, persons=1)
    other = (await sign_in_as(role)).client
    before = await event_count(db)
    for path in (VERIFY, LATEST):
        response = await other.get(path)
        assert response.status_code == 403, (path, response.text)
        assert response.headers["content-type"].startswith(PROBLEM_JSON)
        assert "ok" not in response.json() and "signature" not in response.json()
    async with api_client(app) as anonymous:
        for path in (VERIFY, LATEST):
            assert (await anonymous.get(path)).status_code == 401
    assert await db.fetchval("SELECT count(*) FROM audit_checkpoint") == 0
    denials = await db.fetch(
        "SELECT action, outcome, actor_role FROM audit_event WHERE seq > $1 ORDER BY seq", before
    )
    assert [tuple(row) for row in denials[:2]] == [
        ("audit.verify", "denied", role.value),
        ("audit.verify", "denied", role.value),
    ]
    assert (await verify_api(chain.auditor))["ok"] is True


# Values the JSON libraries refuse, forged checkpoints (found as bugs, now fixed) --------


UNREADABLE_VALUES = [
    pytest.param(
        "changes = jsonb_set(changes, '{0,fields,version,after}', "
        "('1' || repeat('0', 400))::jsonb)",
        id="number-beyond-double-range",
    ),
    pytest.param(
        "detail = (repeat('[', 300) || repeat(']', 300))::jsonb",
        id="nesting-deeper-than-orjson-writes",
    ),
]


@pytest.mark.parametrize("assignment", UNREADABLE_VALUES)
async def test_a_value_the_json_libraries_refuse_is_reported_not_a_crash(
    sign_in_as: SignInAs, db: asyncpg.Connection, assignment: str
) -> None:
    chain = await build_chain(sign_in_as, db, persons=4)
    bad = chain.middle
    async with bypassing_triggers(db):
        await db.execute(f"UPDATE audit_event SET {assignment} WHERE seq = $1", bad)
    response = await chain.auditor.get(VERIFY)
    assert response.status_code == 200, response.status_code
    assert_fails_at(response.json(), bad, "does not match its hash")


async def test_an_unsigned_checkpoint_does_not_hide_an_earlier_changed_event(
    app: FastAPI, sign_in_as: SignInAs, db: asyncpg.Connection
) -> None:
    chain = await build_chain(sign_in_as, db)
    bad, later = chain.middle, chain.person_seqs[-1]
    head_hash = await db.fetchval("SELECT hash FROM audit_event WHERE seq = $1", later)
    forged = _forged("random-signature", later, head_hash, app.state.security.audit_keys.active_kid)
    async with bypassing_triggers(db):
        await db.execute("UPDATE audit_event SET action = 'person.delete' WHERE seq = $1", bad)
    await db.execute(
        "INSERT INTO audit_checkpoint (seq, key_id, head_hash, signed_at, signature) "
        "VALUES ($1, $2, $3, $4, $5)",
        forged.seq,
        forged.key_id,
        forged.head_hash,
        forged.signed_at,
        forged.signature,
    )
    report = await verify_api(chain.auditor)
    assert report["ok"] is False
    assert report["first_bad_seq"] == bad, report

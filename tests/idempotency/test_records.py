"""Idempotency records: what a create stores to replay is sealed, a replay shows the record
as the caller may see it now, and expired records are purged."""

import asyncio
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

import asyncpg
import pytest
from fastapi import FastAPI
from sqlalchemy import LargeBinary

from app.access.principal import Role
from app.core.crypto import UndecryptableValue, new_audit_key
from app.core.db import metadata
from app.idempotency.service import SEALED_AT
from app.jobs.housekeeping import purge_expired
from app.main import create_app
from app.ops.keys import SEALED_COLUMNS
from tests.auth import SignedIn, api_client
from tests.conftest import TEST_KEYS_DIR, settings_for
from tests.factories import API, case_body, person_body

SignIn = Callable[..., Awaitable[SignedIn]]

ADDRESS = "Vulica Sadovaja 3, flat 4"
WITNESS = "a neighbour, through her son"
# Binary columns that hold digests, hashes or signatures, never a value to keep secret.
NOT_SEALED = frozenset(
    {
        ("refresh_token", "token_hash"),
        ("app_user", "enrolment_code_hash"),
        ("audit_event", "hash"),
        ("audit_event", "prev_hash"),
        ("audit_head", "hash"),
        ("audit_checkpoint", "head_hash"),
        ("audit_checkpoint", "signature"),
        # what the change feed last handed a partner: a digest of what it may read anyway
        ("sync_delivered", "content_hash"),
        # a mirrored record's digest, of content the upstream shares at most at restricted
        # tier (a partner's agreement never reaches confidential)
        ("mirror_record", "content_hash"),
    }
)


def _person_with_secrets() -> dict[str, object]:
    return person_body(
        address=ADDRESS,
        names=[
            *person_body()["names"],
            {"value": "Ciemny Pseudonim", "script": "Latn", "kind": "hidden", "is_public": False},
        ],
    )


async def test_a_stored_response_is_sealed_and_bound_to_its_record(
    app: FastAPI, sign_in_as: SignIn, db: asyncpg.Connection
) -> None:
    coordinator = (await sign_in_as(Role.coordinator)).client
    created = await coordinator.post(
        f"{API}/persons", json=_person_with_secrets(), headers={"Idempotency-Key": "k1"}
    )
    assert created.status_code == 201, created.text
    assert created.json()["address"] == ADDRESS
    source = await coordinator.post(
        f"{API}/sources",
        headers={"Idempotency-Key": "k1"},
        json={
            "publisher": "Monitor",
            "title": "Call",
            "reliability": "C",
            "credibility": 3,
            "is_public": False,
            "witness": WITNESS,
        },
    )
    assert source.status_code == 201, source.text

    rows = await db.fetch("SELECT id, response_sealed FROM idempotency_record ORDER BY id")
    assert len(rows) == 2
    for row in rows:
        raw = bytes(row["response_sealed"])
        assert raw[0] == 1  # an envelope: version byte, then the key id
        for secret in (ADDRESS, WITNESS, "Ciemny Pseudonim", "Sadovaja"):
            assert secret.encode() not in raw
    ring = app.state.security.data_keys
    first, second = rows
    opened = ring.open_json(*SEALED_AT, first["id"], envelope=first["response_sealed"])
    assert opened["id"] in (created.json()["id"], source.json()["id"])
    # Copied onto another record it does not open.
    with pytest.raises(UndecryptableValue):
        ring.open(*SEALED_AT, second["id"], envelope=first["response_sealed"])


def test_every_binary_column_is_sealed_and_rotated_or_a_digest() -> None:
    """A new confidential column must be in the rotation's list; this fails until it is."""
    binary = {
        (table.name, column.name)
        for table in metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, LargeBinary)
    }
    assert binary == set(SEALED_COLUMNS) | NOT_SEALED


async def test_a_replay_answers_the_person_as_the_caller_may_see_them_now(
    sign_in_as: SignIn, db: asyncpg.Connection
) -> None:
    coordinator = (await sign_in_as(Role.coordinator)).client
    body = _person_with_secrets()
    created = await coordinator.post(f"{API}/persons", json=body, headers={"Idempotency-Key": "p"})
    assert created.status_code == 201, created.text
    person_id = created.json()["id"]

    replayed = await coordinator.post(f"{API}/persons", json=body, headers={"Idempotency-Key": "p"})
    assert replayed.status_code == 201
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json() == created.json()
    assert replayed.headers["Location"] == created.headers["Location"]
    assert await db.fetchval("SELECT count(*) FROM person") == 1

    # Changed since by someone else: the replay shows the person as they are now.
    other = (await sign_in_as(Role.coordinator)).client
    changed = await other.patch(
        f"{API}/persons/{person_id}",
        json={"address": "Vulica Novaja 1"},
        headers={"If-Match": created.headers["ETag"]},
    )
    assert changed.status_code == 200, changed.text
    again = await coordinator.post(f"{API}/persons", json=body, headers={"Idempotency-Key": "p"})
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["address"] == "Vulica Novaja 1"
    assert again.headers["ETag"] == changed.headers["ETag"]
    # A replay is a read of the person, and recorded as one.
    action = await db.fetchval("SELECT action FROM audit_event ORDER BY seq DESC LIMIT 1")
    assert action == "person.read"


async def test_a_replay_of_a_record_now_hidden_is_not_found_and_recorded(
    sign_in_as: SignIn, db: asyncpg.Connection
) -> None:
    caseworker = (await sign_in_as(Role.caseworker)).client
    coordinator = (await sign_in_as(Role.coordinator)).client
    body = _person_with_secrets()
    created = await caseworker.post(f"{API}/persons", json=body, headers={"Idempotency-Key": "p"})
    assert created.status_code == 201, created.text
    assert created.json()["address"] == ADDRESS
    person_id = created.json()["id"]
    # A high-confidentiality case file that the caseworker is not in charge of closes the
    # person to them, the one who recorded them included.
    case = await coordinator.post(
        f"{API}/cases", json=case_body(person_id, confidentiality="high", assigned_caseworkers=[])
    )
    assert case.status_code == 201, case.text

    replayed = await caseworker.post(f"{API}/persons", json=body, headers={"Idempotency-Key": "p"})
    assert replayed.status_code == 404, replayed.text
    assert ADDRESS not in replayed.text
    denial = await db.fetchrow(
        "SELECT outcome, resource_id FROM audit_event ORDER BY seq DESC LIMIT 1"
    )
    assert denial["outcome"] == "denied" and str(denial["resource_id"]) == person_id


async def test_a_replayed_case_file_is_read_again_for_the_caller(sign_in_as: SignIn) -> None:
    coordinator = (await sign_in_as(Role.coordinator)).client
    person = await coordinator.post(f"{API}/persons", json=person_body())
    body = case_body(person.json()["id"])
    created = await coordinator.post(f"{API}/cases", json=body, headers={"Idempotency-Key": "c"})
    assert created.status_code == 201, created.text
    changed = await coordinator.patch(
        f"{API}/cases/{created.json()['id']}",
        json={"confidentiality": "high"},
        headers={"If-Match": created.headers["ETag"]},
    )
    assert changed.status_code == 200, changed.text
    replayed = await coordinator.post(f"{API}/cases", json=body, headers={"Idempotency-Key": "c"})
    assert replayed.status_code == 201
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json()["confidentiality"] == "high"
    assert replayed.headers["ETag"] == changed.headers["ETag"]


async def test_expired_records_are_purged(
    app: FastAPI, sign_in_as: SignIn, db: asyncpg.Connection
) -> None:
    coordinator = (await sign_in_as(Role.coordinator)).client
    for key in ("old", "fresh"):
        response = await coordinator.post(
            f"{API}/persons", json=person_body(), headers={"Idempotency-Key": key}
        )
        assert response.status_code == 201, response.text
    retention = timedelta(hours=app.state.settings.idempotency_retention_hours)
    await db.execute(
        "UPDATE idempotency_record SET created_at = now() - $1::interval WHERE key = 'old'",
        retention + timedelta(minutes=1),
    )
    purged = await purge_expired(app.state.session_factory, app.state.settings)
    assert purged["idempotency_records"] == 1
    assert [row["key"] for row in await db.fetch("SELECT key FROM idempotency_record")] == ["fresh"]
    # The purged key is free again: the same key now creates a new person.
    again = await coordinator.post(
        f"{API}/persons", json=person_body(), headers={"Idempotency-Key": "old"}
    )
    assert again.status_code == 201 and "Idempotent-Replayed" not in again.headers
    assert await db.fetchval("SELECT count(*) FROM person") == 3


async def test_servers_purge_on_their_own(
    sign_in_as: SignIn, db: asyncpg.Connection, database_url: str
) -> None:
    coordinator = (await sign_in_as(Role.coordinator)).client
    response = await coordinator.post(
        f"{API}/persons", json=person_body(), headers={"Idempotency-Key": "stale"}
    )
    assert response.status_code == 201
    await db.execute("UPDATE idempotency_record SET created_at = now() - interval '30 days'")
    application = create_app(settings_for(database_url, housekeeping_interval_seconds=1))
    async with application.router.lifespan_context(application):
        for _ in range(50):
            if not await db.fetchval("SELECT count(*) FROM idempotency_record"):
                break
            await asyncio.sleep(0.1)
    assert await db.fetchval("SELECT count(*) FROM idempotency_record") == 0
    assert uuid.UUID(response.json()["id"])


async def test_the_request_fingerprint_is_keyed_and_survives_a_key_rotation(
    sign_in_as: SignIn, db: asyncpg.Connection, database_url: str
) -> None:
    """A plain hash of a request would let anyone with a copy of the database confirm a
    guessed address or witness; the stored digest is keyed, and a retry after the audit
    keys rotated still matches it."""
    signed_in = await sign_in_as(Role.coordinator)
    body = _person_with_secrets()
    created = await signed_in.client.post(
        f"{API}/persons", json=body, headers={"Idempotency-Key": "keyed"}
    )
    assert created.status_code == 201, created.text
    stored = await db.fetchval("SELECT fingerprint FROM idempotency_record")
    plain = json.dumps([body], sort_keys=True, default=str, separators=(",", ":"))
    assert stored != hashlib.sha256(plain.encode()).hexdigest()

    ring = json.loads((TEST_KEYS_DIR / "keys" / "audit.json").read_text())
    rotated = {"active": "rotated", "keys": {**ring["keys"], "rotated": new_audit_key()}}
    application = create_app(settings_for(database_url, audit_keys=json.dumps(rotated)))
    async with application.router.lifespan_context(application), api_client(application) as client:
        client.headers["Authorization"] = signed_in.client.headers["Authorization"]
        replayed = await client.post(
            f"{API}/persons", json=body, headers={"Idempotency-Key": "keyed"}
        )
        assert replayed.status_code == 201, replayed.text
        assert replayed.headers["Idempotent-Replayed"] == "true"
        other = await client.post(
            f"{API}/persons", json=person_body(), headers={"Idempotency-Key": "keyed"}
        )
        assert other.status_code == 422, other.text

"""Backups (issue 11): `habeas backup create` → `habeas backup restore` into a new database,
verified; a changed file, a missing or wrong data key, a database that is not empty and a
broken audit chain are each refused or reported."""

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from app.access.principal import Role
from app.core import embedded
from app.core.crypto import new_data_key, write_key_file
from app.main import create_app
from app.ops.backup import BackupError, Client, choose_client, postgres_clients
from tests.auth import SignedIn, api_client, log_in
from tests.conftest import TEST_KEYS_DIR, settings_for
from tests.factories import API, case_body, event, person_body

SignIn = Callable[..., Awaitable[SignedIn]]
SECRET_ADDRESS = "Vulitsa Kalinoŭskaha 3, flat 41"
SECRET_RELATIVE = "Alesia, his daughter"


def habeas(database_url: str, *args: str, **environment: str) -> subprocess.CompletedProcess[str]:
    """The command as an operator runs it, on the test database and the tests' keys."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "HABEAS_DATA_DIR": str(TEST_KEYS_DIR),
        **environment,
    }
    return subprocess.run(  # noqa: S603 (this project's own command)
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


async def all_row_counts(connection: asyncpg.Connection) -> dict[str, int]:
    tables = await connection.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
    )
    return {row[0]: await connection.fetchval(f'SELECT count(*) FROM "{row[0]}"') for row in tables}


async def _world(sign_in_as: SignIn) -> dict[str, Any]:
    """Persons with confidential values (one created with an Idempotency-Key, so that a
    sealed stored response is among them), a case file with its history, their audit
    events, and the coordinator's account (its TOTP secret is sealed too)."""
    coordinator = await sign_in_as(Role.coordinator)
    people = []
    for number in range(3):
        response = await coordinator.client.post(
            f"{API}/persons",
            json=person_body(
                address=SECRET_ADDRESS,
                relatives=[{"name": SECRET_RELATIVE, "relation": "daughter"}],
            ),
            headers={"Idempotency-Key": f"backup-person-{number}"},
        )
        assert response.status_code == 201, response.text
        people.append(response.json())
    case = await coordinator.client.post(
        f"{API}/cases",
        json=case_body(
            people[0]["id"],
            [event("detained", "2021-08-10"), event("sentenced", "2022-02-01")],
        ),
    )
    assert case.status_code == 201, case.text
    return {"coordinator": coordinator, "people": people, "case": case.json()}


@pytest.fixture
async def restored(admin_url: str) -> AsyncIterator[str]:
    """A name for the database a restore creates; dropped afterwards."""
    name = f"habeas_restored_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    yield name
    await embedded.drop_database(admin_url, name)


async def _database_exists(db: asyncpg.Connection, name: str) -> bool:
    return bool(await db.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))


def _created(database_url: str, out: Path) -> dict[str, Any]:
    made = habeas(database_url, "backup", "create", "--out", str(out))
    assert made.returncode == 0, made.stderr
    summary: dict[str, Any] = json.loads(made.stdout)
    return summary


async def test_a_backup_restores_into_a_new_database_and_verifies(
    sign_in_as: SignIn,
    db: asyncpg.Connection,
    database_url: str,
    admin_url: str,
    restored: str,
    tmp_path: Path,
) -> None:
    world = await _world(sign_in_as)
    signed = habeas(database_url, "audit", "checkpoint")
    assert signed.returncode == 0, signed.stderr
    before = await all_row_counts(db)
    out = tmp_path / "habeas.backup"

    summary = _created(database_url, out)

    assert out.stat().st_mode & 0o777 == 0o600
    assert out.read_bytes().startswith(b"HABEAS-BACKUP 1\n")
    assert summary["audit_head"]["seq"] == before["audit_event"]
    # The backup itself is in the trail (after the snapshot it was made in).
    recorded = await db.fetchrow("SELECT action, detail FROM audit_event ORDER BY seq DESC LIMIT 1")
    assert recorded["action"] == "backup.create"
    assert json.loads(recorded["detail"])["backup_id"] == summary["backup_id"]
    shown = habeas(database_url, "backup", "show", str(out))
    manifest = json.loads(shown.stdout)
    assert manifest["row_counts"] == before
    assert manifest["checkpoint_key_ids"] and manifest["data_key_ids"]
    assert manifest["dump"]["sha256"] == summary["dump_sha256"]
    # Names the keys, never holds one.
    key_material = [
        material
        for ring in ("data", "audit", "backup")
        for material in json.loads((TEST_KEYS_DIR / "keys" / f"{ring}.json").read_text())[
            "keys"
        ].values()
    ]
    assert not any(str(material) in shown.stdout for material in key_material)

    done = habeas(database_url, "backup", "restore", str(out), "--database", restored)

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] and report["problems"] == []
    assert report["database"] == restored
    assert report["audit"]["ok"] and report["audit"]["checkpoints_checked"] >= 1
    assert report["audit"]["head_seq"] == before["audit_event"]
    assert report["sealed_values"]["failed"] == 0
    assert report["sealed_values"]["opened"]["person.address"] == 3
    assert report["sealed_values"]["opened"]["idempotency_record.response_sealed"] == 3
    assert report["sealed_values"]["opened"]["app_user.totp_secret"] >= 1
    restored_url = embedded.with_database(database_url, restored)
    connection = await asyncpg.connect(**embedded.asyncpg_connect_kwargs(restored_url))
    try:
        assert await all_row_counts(connection) == before
    finally:
        await connection.close()
    # The restored database serves: the same account signs in (its sealed TOTP secret
    # opens) and reads the person's confidential address.
    app = create_app(settings_for(restored_url))
    async with app.router.lifespan_context(app), api_client(app) as client:
        tokens = await log_in(client, world["coordinator"].account, steps_ahead=1)
        client.headers["Authorization"] = f"Bearer {tokens['access_token']}"
        person = await client.get(f"{API}/persons/{world['people'][0]['id']}")
        assert person.status_code == 200, person.text
        assert person.json()["address"] == SECRET_ADDRESS
        case = await client.get(f"{API}/cases/{world['case']['id']}")
        assert case.status_code == 200
        assert case.json()["status"] == world["case"]["status"]


async def test_a_changed_backup_file_is_refused_before_anything_is_restored(
    sign_in_as: SignIn,
    db: asyncpg.Connection,
    database_url: str,
    restored: str,
    tmp_path: Path,
) -> None:
    await _world(sign_in_as)
    out = tmp_path / "habeas.backup"
    _created(database_url, out)
    original = out.read_bytes()
    header_end = original.index(b"\n", len(b"HABEAS-BACKUP 1\n")) + 1
    backup_id_at = original.index(b'"backup_id":"') + len(b'"backup_id":"')

    def flipped(at: int) -> bytes:
        return original[:at] + bytes([original[at] ^ 0x01]) + original[at + 1 :]

    relabelled = original[:backup_id_at] + (
        b"0" if original[backup_id_at : backup_id_at + 1] != b"0" else b"1"
    )
    tamperings = {
        "a bit of the dump": flipped(header_end + (len(original) - header_end) // 2),
        "the header": relabelled + original[backup_id_at + 1 :],
        # The trailer is the last 24 bytes.
        "the manifest's last byte": flipped(len(original) - 25),
    }
    for what, content in tamperings.items():
        out.write_bytes(content)
        refused = habeas(database_url, "backup", "restore", str(out), "--database", restored)
        assert refused.returncode == 2, what
        assert "failed authentication" in refused.stderr, (what, refused.stderr)
        assert not await _database_exists(db, restored), what
    out.write_bytes(original[:-100])
    truncated = habeas(database_url, "backup", "restore", str(out), "--database", restored)
    assert truncated.returncode == 2
    assert "not a complete Habeas backup" in truncated.stderr


async def test_a_restore_without_the_data_key_the_backup_needs_is_refused(
    sign_in_as: SignIn,
    db: asyncpg.Connection,
    database_url: str,
    restored: str,
    tmp_path: Path,
) -> None:
    await _world(sign_in_as)
    out = tmp_path / "habeas.backup"
    _created(database_url, out)
    needed = json.loads(habeas(database_url, "backup", "show", str(out)).stdout)["data_key_ids"]
    other_ring = tmp_path / "other-data.json"
    write_key_file(
        other_ring, {"active": "20260101-0ther", "keys": {"20260101-0ther": new_data_key()}}
    )

    refused = habeas(
        database_url,
        "backup",
        "restore",
        str(out),
        "--database",
        restored,
        HABEAS_DATA_KEY_FILE=str(other_ring),
    )

    assert refused.returncode == 2
    assert f"data key {needed[0]} is needed and not in HABEAS_DATA_KEY_FILE" in refused.stderr
    assert not await _database_exists(db, restored)


async def test_every_sealed_value_must_open_with_the_configured_data_key(
    sign_in_as: SignIn,
    database_url: str,
    restored: str,
    tmp_path: Path,
) -> None:
    """A key file with the right key id but another key (say, a file regenerated by
    mistake): the restore goes through, and the check of every row reports it."""
    await _world(sign_in_as)
    out = tmp_path / "habeas.backup"
    _created(database_url, out)
    needed = json.loads(habeas(database_url, "backup", "show", str(out)).stdout)["data_key_ids"]
    impostor = tmp_path / "impostor-data.json"
    write_key_file(impostor, {"active": needed[0], "keys": {kid: new_data_key() for kid in needed}})

    done = habeas(
        database_url,
        "backup",
        "restore",
        str(out),
        "--database",
        restored,
        HABEAS_DATA_KEY_FILE=str(impostor),
    )

    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert not report["ok"]
    assert report["audit"]["ok"]
    sealed = report["sealed_values"]
    assert sealed["failed"] >= 3 + 3 + 1  # addresses, relatives, stored responses, TOTP
    assert sum(sealed["opened"].values()) == 0
    assert "do not open with the data keys in HABEAS_DATA_KEY_FILE" in done.stderr


async def test_a_restore_goes_only_into_an_empty_database(
    sign_in_as: SignIn,
    db: asyncpg.Connection,
    database_url: str,
    admin_url: str,
    restored: str,
    tmp_path: Path,
) -> None:
    await _world(sign_in_as)
    out = tmp_path / "habeas.backup"
    _created(database_url, out)
    before = await all_row_counts(db)

    into_itself = habeas(database_url, "backup", "restore", str(out))
    existing = embedded.asyncpg_connect_kwargs(database_url)["database"]
    into_existing = habeas(database_url, "backup", "restore", str(out), "--database", str(existing))

    assert into_itself.returncode == 2
    assert "is not empty" in into_itself.stderr
    assert into_existing.returncode == 2
    assert "exists already" in into_existing.stderr
    assert await all_row_counts(db) == before
    # An empty database made beforehand (as production's usually is) is restored into.
    await embedded.ensure_database(admin_url, restored)
    empty_url = embedded.with_database(database_url, restored)
    done = habeas(empty_url, "backup", "restore", str(out))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["database"] == restored


async def test_a_broken_audit_chain_is_reported_after_the_restore(
    sign_in_as: SignIn,
    db: asyncpg.Connection,
    database_url: str,
    restored: str,
    tmp_path: Path,
) -> None:
    """The backup of a trail someone rewrote (with the power to switch triggers off):
    restored as it is, and the restore says it does not verify."""
    await _world(sign_in_as)
    async with db.transaction():
        await db.execute("SET LOCAL session_replication_role = replica")
        await db.execute("UPDATE audit_event SET outcome = 'denied' WHERE seq = 2")
    out = tmp_path / "habeas.backup"
    _created(database_url, out)

    done = habeas(database_url, "backup", "restore", str(out), "--database", restored)

    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert not report["audit"]["ok"] and report["audit"]["first_bad_seq"] == 2
    assert "the audit chain does not verify" in done.stderr


def test_pg_dump_is_chosen_by_the_server_version() -> None:
    clients = [
        Client(Path("/usr/lib/postgresql/15/bin/pg_dump"), 15, "15.20"),
        Client(Path("/opt/pg/18/bin/pg_dump"), 18, "18.6"),
    ]
    assert choose_client("pg_dump", at_least=15, clients=clients).major == 15
    assert choose_client("pg_dump", at_least=16, clients=clients).major == 18
    with pytest.raises(BackupError, match="no pg_dump of PostgreSQL 19 or newer was found"):
        choose_client("pg_dump", at_least=19, clients=clients)
    # The embedded server's own client programs are always among those found.
    assert any(
        client.path.parent == embedded.client_programs_dir().resolve()
        for client in postgres_clients("pg_dump")
    )

"""Rotating the key rings kept in files (`habeas keys rotate --signing | --audit`,
`habeas backup rotate-key`): a new key becomes the active one, the old ones stay, and the
audit trail says which ring got which key. A ring given in the environment is rotated where
it is set, and the command refuses. (Data keys, which also re-seal every value, are
tests/access/test_tiers.py's.)"""

import json
import shutil
from pathlib import Path

import asyncpg
import pytest

from app.core.crypto import backup_key_ring
from tests.audit.trail import head_seq, only_event_after
from tests.auth import cli_env, run_cli
from tests.conftest import TEST_KEYS_DIR, settings_for

ROTATIONS = [
    (["keys", "rotate", "--signing"], "jwt", "signing_key"),
    (["keys", "rotate", "--audit"], "audit", "audit_key"),
    (["backup", "rotate-key"], "backup", "backup_key"),
]


def _data_dir(tmp_path: Path, database_url: str) -> Path:
    """A copy of the test application's keys (a rotation must not change the keys the
    other tests' application uses), with a backup ring."""
    data_dir = tmp_path / "data"
    shutil.copytree(TEST_KEYS_DIR / "keys", data_dir / "keys")
    backup_key_ring(settings_for(database_url, data_dir=data_dir))
    return data_dir


@pytest.mark.usefixtures("app")  # which makes the test keys
@pytest.mark.parametrize(("args", "ring", "answer"), ROTATIONS)
async def test_a_key_file_gets_a_new_active_key_and_the_trail_records_it(
    db: asyncpg.Connection,
    database_url: str,
    tmp_path: Path,
    args: list[str],
    ring: str,
    answer: str,
) -> None:
    data_dir = _data_dir(tmp_path, database_url)
    env = cli_env(DATABASE_URL=database_url, HABEAS_DATA_DIR=str(data_dir))
    key_file = data_dir / "keys" / f"{ring}.json"
    old_keys = set(json.loads(key_file.read_text())["keys"])
    seq = await head_seq(db)

    rotated = await run_cli(args, env, tmp_path)

    assert rotated.returncode == 0, rotated.stderr
    answered = json.loads(rotated.stdout)
    new_kid = answered[answer]
    assert answered["file"] == str(key_file)
    ring_file = json.loads(key_file.read_text())
    assert ring_file["active"] == new_kid
    assert set(ring_file["keys"]) == old_keys | {new_kid} and new_kid not in old_keys
    recorded = await only_event_after(db, seq)
    assert recorded["action"] == "keys.rotate"
    assert recorded["detail"] == {"ring": ring, "key": new_kid}


@pytest.mark.usefixtures("app")  # which makes the test keys
@pytest.mark.parametrize(("args", "ring", "answer"), ROTATIONS)
async def test_a_ring_given_in_the_environment_is_not_rotated_here(
    db: asyncpg.Connection,
    database_url: str,
    tmp_path: Path,
    args: list[str],
    ring: str,
    answer: str,
) -> None:
    data_dir = _data_dir(tmp_path, database_url)
    variable = f"HABEAS_{ring.upper()}_KEYS"
    env = cli_env(
        DATABASE_URL=database_url,
        HABEAS_DATA_DIR=str(data_dir),
        **{variable: (data_dir / "keys" / f"{ring}.json").read_text()},
    )
    files_before = {path.name: path.read_text() for path in (data_dir / "keys").iterdir()}
    seq = await head_seq(db)

    refused = await run_cli(args, env, tmp_path)

    assert refused.returncode == 2, (refused.stdout, refused.stderr)
    assert f"come from {variable}; rotate them there." in refused.stderr
    assert answer not in refused.stdout
    assert {path.name: path.read_text() for path in (data_dir / "keys").iterdir()} == files_before
    assert await head_seq(db) == seq

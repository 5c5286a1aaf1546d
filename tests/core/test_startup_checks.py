"""What the server and the command check before they work: that the data keys open the
values stored, and that the database is migrated."""

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable

import pytest

from app.access.principal import Role
from app.core import embedded
from app.core.crypto import KeyConfigurationError, new_data_key
from app.main import create_app
from tests.auth import SignedIn
from tests.conftest import TEST_KEYS_DIR, settings_for
from tests.factories import API, person_body

SignIn = Callable[..., Awaitable[SignedIn]]


def _habeas(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 (our own CLI)
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_the_server_refuses_to_start_with_keys_that_do_not_open_the_data(
    sign_in_as: SignIn, database_url: str
) -> None:
    coordinator = (await sign_in_as(Role.coordinator)).client
    created = await coordinator.post(f"{API}/persons", json=person_body(address="Vulica 1"))
    assert created.status_code == 201, created.text
    other_ring = json.dumps({"active": "other", "keys": {"other": new_data_key()}})
    wrong = create_app(settings_for(database_url, data_keys=other_ring))
    with pytest.raises(KeyConfigurationError, match=r"person\.address .* key"):
        async with wrong.router.lifespan_context(wrong):
            pass
    # The right keys start.
    right = create_app(settings_for(database_url))
    async with right.router.lifespan_context(right):
        pass


async def test_commands_on_an_unmigrated_database_say_to_migrate(admin_url: str) -> None:
    name = f"habeas_unmigrated_{uuid.uuid4().hex[:8]}"
    await embedded.ensure_database(admin_url, name)
    try:
        env = {
            **os.environ,
            "DATABASE_URL": embedded.with_database(admin_url, name),
            "HABEAS_DATA_DIR": str(TEST_KEYS_DIR),
        }
        result = _habeas(env, "users", "add", "someone", "--role", "caseworker")
        assert result.returncode == 2, result.stderr
        assert "run `habeas migrate`" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        await embedded.drop_database(admin_url, name)


@pytest.mark.parametrize("command", [["worker"], ["users", "add", "someone", "--role", "analyst"]])
def test_commands_on_a_database_that_is_away_say_so(command: list[str]) -> None:
    """A worker restarted while PostgreSQL is still down (compose restarts it) says what
    is wrong and exits, instead of a traceback."""
    env = {
        **os.environ,
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/habeas",
        "HABEAS_DATA_DIR": str(TEST_KEYS_DIR),
    }
    result = _habeas(env, *command)
    assert result.returncode == 3, result.stderr
    assert "The database cannot be reached" in result.stderr
    assert "Traceback" not in result.stderr

"""A chain built through real API writes, and what only the owner of the tables could do to
it, for the tests of the chain and of the jobs that verify it."""

import base64
import dataclasses
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.access.principal import Role
from tests.auth import SignInAs
from tests.conftest import TEST_KEYS_DIR
from tests.factories import create_person

PERSONS = 12


@dataclasses.dataclass
class Chain:
    auditor: httpx.AsyncClient
    coordinator: httpx.AsyncClient
    # The sequence numbers of the person creations, in order.
    person_seqs: list[int]

    @property
    def middle(self) -> int:
        """An event with events before and after it."""
        return self.person_seqs[len(self.person_seqs) // 2]


async def build_chain(
    sign_in_as: SignInAs, db: asyncpg.Connection, persons: int = PERSONS
) -> Chain:
    """Accounts signing in, then `persons` person creations: one event each."""
    auditor = (await sign_in_as(Role.auditor)).client
    coordinator = (await sign_in_as(Role.coordinator)).client
    for _ in range(persons):
        await create_person(coordinator)
    seqs = [
        row["seq"]
        for row in await db.fetch(
            "SELECT seq FROM audit_event WHERE action = 'person.create' ORDER BY seq"
        )
    ]
    assert len(seqs) == persons
    return Chain(auditor, coordinator, seqs)


@asynccontextmanager
async def bypassing_triggers(db: asyncpg.Connection) -> AsyncIterator[None]:
    """What the owner of the tables, or a superuser, can do: a transaction in which the
    append-only triggers do not fire."""
    async with db.transaction():
        await db.execute("SET LOCAL session_replication_role = replica")
        yield


def key_file() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((TEST_KEYS_DIR / "keys" / "audit.json").read_text())
    return document


def pinned_public_key(kid: str) -> Any:
    """The public key derived from the key file itself, not from anything the API says."""
    seed = base64.b64decode(key_file()["keys"][kid]["signing"])
    return Ed25519PrivateKey.from_private_bytes(seed).public_key()


def cli_env(database_url: str) -> dict[str, str]:
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("HABEAS_") and name != "DATABASE_URL"
    }
    return {**inherited, "DATABASE_URL": database_url, "HABEAS_DATA_DIR": str(TEST_KEYS_DIR)}

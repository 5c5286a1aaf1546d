"""A block on failed sign-ins holds under concurrent attempts and costs the database nothing
for the names a blocked address tries.
"""

import asyncio
from typing import Any

import httpx
from fastapi import FastAPI

from app.access.principal import Role
from tests.auth import api_client, create_account
from tests.factories import API


async def test_concurrent_wrong_sign_ins_cannot_outrun_the_account_block(
    app: FastAPI, clean_tables: None
) -> None:
    account = await create_account(app, Role.caseworker)
    async with api_client(app) as client:

        async def attempt() -> int:
            response = await client.post(
                f"{API}/auth/login",
                json={"username": account.username, "password": "wrong", "code": "000000"},
            )
            return response.status_code

        codes = await asyncio.gather(*(attempt() for _ in range(15)))
    # The limit is 5 failures: the others are judged after the block and refused unheard.
    assert codes.count(401) == 5
    assert codes.count(429) == 10


async def test_a_blocked_address_writes_nothing_for_the_names_it_tries(
    anonymous: httpx.AsyncClient, db: Any
) -> None:
    async def attempt(name: str) -> int:
        response = await anonymous.post(
            f"{API}/auth/login", json={"username": name, "password": "x", "code": "000000"}
        )
        return response.status_code

    assert [await attempt(f"nobody{i}") for i in range(20)] == [401] * 20
    rows = await db.fetchval("SELECT count(*) FROM sign_in_throttle")
    assert [await attempt(f"invented{i}") for i in range(10)] == [429] * 10
    assert await db.fetchval("SELECT count(*) FROM sign_in_throttle") == rows

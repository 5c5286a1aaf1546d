"""The development admin made on first start, and password rehashing on sign-in."""

import asyncio
import uuid

import asyncpg
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI

from app.access.principal import Role
from app.cli.server import first_admin
from app.main import security_kit
from tests.auth import Account, api_client, create_account, log_in
from tests.conftest import settings_for


async def test_first_start_in_development_makes_one_admin_and_shows_it_once(
    app: FastAPI, database_url: str, clean_tables: None, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for(database_url)
    kit = security_kit(settings)
    await asyncio.to_thread(first_admin, settings, database_url, kit)
    shown = capsys.readouterr().out
    assert "username: admin" in shown
    password = shown.split("password: ")[1].split()[0]
    secret = shown.split("TOTP secret: ")[1].split()[0]
    await asyncio.to_thread(first_admin, settings, database_url, kit)
    assert capsys.readouterr().out == ""  # never again once an account exists

    admin = Account(uuid.uuid4(), "admin", password, secret, Role.admin)
    async with api_client(app) as client:
        token = (await log_in(client, admin))["access_token"]
        users = await client.get("/api/v1/users", headers={"Authorization": f"Bearer {token}"})
    assert users.status_code == 200
    assert [user["role"] for user in users.json()["items"]] == ["admin"]


async def test_sign_in_rehashes_a_password_hashed_with_old_parameters(
    app: FastAPI, db: asyncpg.Connection, clean_tables: None
) -> None:
    account = await create_account(app, Role.analyst)
    old = PasswordHasher(time_cost=2, memory_cost=128, parallelism=1).hash(account.password)
    await db.execute("UPDATE app_user SET password_hash = $1 WHERE id = $2", old, account.id)
    async with api_client(app) as client:
        await log_in(client, account)
    stored = await db.fetchval("SELECT password_hash FROM app_user WHERE id = $1", account.id)
    assert stored != old
    assert stored.startswith("$argon2id$v=19$m=64,t=1,p=1$")  # the configured parameters

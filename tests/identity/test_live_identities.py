"""Sessions and partners checked from memory (app/identity/live.py): a revocation reaches
every process within a second, and a process that cannot hear the database asks it on
every request instead (never fails open)."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, aclosing, asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from app.access.principal import Role
from app.identity.live import LiveIdentities, LiveSession
from app.identity.tokens import unverified_parts
from tests.auth import api_client, create_account, log_in
from tests.conftest import separate_app
from tests.factories import API
from tests.sync.feed import FEED, feed_partner

WORKERS = 3
PERSONS = f"{API}/persons"
USERS = f"{API}/users"
SHARES_BY = {"jurisdiction": "BY", "recognised_only": False, "max_tier": "public"}


@asynccontextmanager
async def workers(database_url: str, count: int = WORKERS) -> AsyncIterator[list[FastAPI]]:
    """Several API processes' apps on one database, each listening on its own connection."""
    async with AsyncExitStack() as stack:
        apps = [await stack.enter_async_context(separate_app(database_url)) for _ in range(count)]
        for app in apps:
            await asyncio.wait_for(live(app).connected.wait(), 5)
        yield apps


def live(app: FastAPI) -> LiveIdentities:
    found: LiveIdentities = app.state.live_identities
    return found


def clients(apps: list[FastAPI], token: str) -> list[httpx.AsyncClient]:
    return [api_client(app, headers={"Authorization": f"Bearer {token}"}) for app in apps]


def session_id(token: str) -> uuid.UUID:
    return uuid.UUID(unverified_parts(token)[1]["sid"])


async def refused_everywhere_within(
    callers: list[httpx.AsyncClient], path: str, seconds: float, *, status: int = 401
) -> float:
    """How long until every caller is answered `status` (failing past `seconds`)."""
    started = time.monotonic()
    pending = list(callers)
    while pending:
        pending = [c for c in pending if (await c.get(path)).status_code != status]
        elapsed = time.monotonic() - started
        assert elapsed < seconds, f"{len(pending)} of {len(callers)} still served after {elapsed}"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def signed_in_everywhere(
    apps: list[FastAPI], role: Role, path: str = PERSONS
) -> tuple[list[httpx.AsyncClient], str, uuid.UUID]:
    """One account signed in once, its token used with every process (each asked once)."""
    account = await create_account(apps[0], role)
    async with api_client(apps[0]) as signing_in:
        token = (await log_in(signing_in, account))["access_token"]
    callers = clients(apps, token)
    for caller in callers:
        assert (await caller.get(path)).status_code == 200
    return callers, token, account.id


async def test_a_logout_reaches_every_process_within_a_second(
    database_url: str, clean_tables: None
) -> None:
    async with workers(database_url) as apps:
        callers, token, _ = await signed_in_everywhere(apps, Role.caseworker)
        # Every process answered from what it read and now keeps in memory.
        assert all(live(app).session(session_id(token)) is not None for app in apps)
        out = await callers[0].post(f"{API}/auth/logout")
        assert out.status_code == 204, out.text
        took = await refused_everywhere_within(callers, PERSONS, 1.0)
        assert all(live(app).session(session_id(token)) is None for app in apps)
        for caller in callers:
            await caller.aclose()
    assert took < 1.0


async def test_a_user_disabled_or_given_another_role_in_the_database_reaches_every_process(
    database_url: str, clean_tables: None, db: asyncpg.Connection
) -> None:
    async with workers(database_url) as apps:
        admins, _, admin_id = await signed_in_everywhere(apps, Role.admin, USERS)
        # An operator's SQL, not the API: the database itself announces the change.
        await db.execute("UPDATE app_user SET role = 'caseworker' WHERE id = $1", admin_id)
        await refused_everywhere_within(admins, USERS, 1.0, status=403)
        caseworkers, _, caseworker_id = await signed_in_everywhere(apps, Role.caseworker)
        await db.execute("UPDATE app_user SET disabled = true WHERE id = $1", caseworker_id)
        await refused_everywhere_within(caseworkers, PERSONS, 1.0)
        for caller in admins + caseworkers:
            await caller.aclose()


async def test_a_disabled_partner_is_refused_by_every_process_within_a_second(
    database_url: str, clean_tables: None, db: asyncpg.Connection
) -> None:
    async with workers(database_url) as apps:
        first, partner = await feed_partner(apps[0], SHARES_BY)
        async with aclosing(first):
            token = first.headers["Authorization"].removeprefix("Bearer ")
        callers = clients(apps, token)
        for caller in callers:
            assert (await caller.get(FEED)).status_code == 200
        assert all(live(app).partner(partner.id) is not None for app in apps)
        await db.execute("UPDATE partner SET disabled = true WHERE id = $1", partner.id)
        await refused_everywhere_within(callers, FEED, 1.0)
        for caller in callers:
            await caller.aclose()


async def wait_until(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.01)


async def test_a_process_that_cannot_hear_the_database_asks_it_on_every_request(
    database_url: str, clean_tables: None, db: asyncpg.Connection
) -> None:
    async with workers(database_url, count=1) as apps:
        [caller], token, user_id = await signed_in_everywhere(apps, Role.caseworker)
        memory = live(apps[0])
        assert memory.session(session_id(token)) is not None
        # The listening connection goes away (a restart, a network failure, an operator),
        # and no new one can be had for now.
        reconnect = memory._connect
        memory._connect = _never
        await db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'habeas-listener' AND datname = current_database()"
        )
        await wait_until(lambda: not memory.listening, 2.0)
        # Nothing answered from memory: a change nobody announced to it is seen at once.
        assert memory.session(session_id(token)) is None
        await db.execute("UPDATE app_user SET disabled = true WHERE id = $1", user_id)
        assert (await caller.get(PERSONS)).status_code == 401
        await db.execute("UPDATE app_user SET disabled = false WHERE id = $1", user_id)
        assert (await caller.get(PERSONS)).status_code == 200
        # It connects again by itself once it can, and keeps answers again.
        memory._connect = reconnect
        await wait_until(lambda: memory.listening, 6.0)
        assert (await caller.get(PERSONS)).status_code == 200
        assert memory.session(session_id(token)) is not None
        await caller.aclose()


async def test_an_answer_read_while_a_change_was_announced_is_not_kept() -> None:
    memory = LiveIdentities(connect=_never)
    memory.listening = True
    state = LiveSession(uuid.uuid4(), "caseworker", _far_future())
    session = uuid.uuid4()
    asked_at = memory.generation
    memory._heard()  # a notice arrives while the request reads the database
    memory.keep_session(asked_at, session, state)
    assert memory.session(session) is None
    memory.keep_session(memory.generation, session, state)
    assert memory.session(session) == state
    memory.listening = False
    assert memory.session(session) is None


def _never() -> Awaitable[asyncpg.Connection]:
    raise OSError("no database in this test")


def _far_future() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


async def test_sessions_emptied_by_truncate_are_refused_by_every_process(
    database_url: str, clean_tables: None, db: asyncpg.Connection
) -> None:
    async with workers(database_url) as apps:
        callers, _, _ = await signed_in_everywhere(apps, Role.caseworker)
        # An operator's emergency: every session ended at once, by a statement no row
        # trigger sees.
        await db.execute("TRUNCATE user_session CASCADE")
        await refused_everywhere_within(callers, PERSONS, 1.0)
        for caller in callers:
            await caller.aclose()


async def test_the_process_that_ends_a_session_refuses_it_at_once_without_the_notice(
    database_url: str, clean_tables: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with workers(database_url, count=1) as apps:
        [caller], token, _ = await signed_in_everywhere(apps, Role.caseworker)
        # Notices arrive late here (they travel through the database: milliseconds that a
        # client's very next request need not wait for).
        monkeypatch.setattr(live(apps[0]), "_heard", lambda *_: None)
        assert (await caller.post(f"{API}/auth/logout")).status_code == 204
        assert (await caller.get(PERSONS)).status_code == 401
        assert live(apps[0]).session(session_id(token)) is None
        await caller.aclose()

"""The API through ordinary database events: backends terminated under it, the server
unreachable, a failure during COMMIT. It recovers on its own, answers 503 problem+json
with Retry-After while the database is away, and never a 500."""

import asyncio
import shutil
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from fastapi import FastAPI

from app.access.principal import Role
from app.core import embedded
from app.core.migrations import upgrade_async
from app.main import create_app
from tests.auth import SignedIn, api_client, create_account, log_in
from tests.conftest import settings_for
from tests.factories import API, create_case, person_body

SignIn = Callable[..., Awaitable[SignedIn]]


async def _terminate_api_backends(db: asyncpg.Connection) -> int:
    """What an administrator's pg_terminate_backend (or a failover) does to the API's
    pooled connections; the test's own connection is spared. Returns once the backends
    have exited: pg_terminate_backend only signals them, and on a busy machine a backend
    could otherwise still answer a pool's liveness check and die just after it."""
    # Chosen first, then signalled: in one scan the filter's order is the planner's,
    # and pg_terminate_backend could meet the test's own connection.
    chosen = [
        row["pid"]
        for row in await db.fetch(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = 'habeas'"
            " AND pid <> pg_backend_pid()"
        )
    ]
    pids: list[int] = [
        row["pid"]
        for row in await db.fetch(
            "SELECT pid FROM unnest($1::int[]) AS pid WHERE pg_terminate_backend(pid)", chosen
        )
    ]
    deadline = asyncio.get_running_loop().time() + 5
    while await db.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])", pids
    ):
        assert asyncio.get_running_loop().time() < deadline, "backends did not exit"
        await asyncio.sleep(0.005)
    return len(pids)


async def test_requests_after_the_backends_were_terminated_all_succeed(
    sign_in_as: SignIn, db: asyncpg.Connection
) -> None:
    coordinator = (await sign_in_as(Role.coordinator)).client
    case = await create_case(coordinator)
    # Several connections in the pool, then every one of them cut.
    warm = await asyncio.gather(*(coordinator.get(f"{API}/cases/{case['id']}") for _ in range(8)))
    assert {response.status_code for response in warm} == {200}
    assert await _terminate_api_backends(db) >= 1
    await asyncio.sleep(0.05)
    statuses = [(await coordinator.get(f"{API}/cases/{case['id']}")).status_code for _ in range(20)]
    assert statuses == [200] * 20
    # Writes too, and concurrent ones.
    await _terminate_api_backends(db)
    await asyncio.sleep(0.05)
    created = await asyncio.gather(
        *(coordinator.post(f"{API}/persons", json=person_body()) for _ in range(5))
    )
    assert [response.status_code for response in created] == [201] * 5


async def test_backends_terminated_under_load_cost_at_most_the_requests_that_met_them(
    sign_in_as: SignIn, db: asyncpg.Connection
) -> None:
    """Every connection of the API is cut, five times, while six clients read and create:
    a request may fail only if its own connection was cut under it, it fails with a 503
    (never a 500), the next request succeeds, and a create retried with its key after a
    503 exists once."""
    coordinator = (await sign_in_as(Role.coordinator)).client
    case_url = f"{API}/cases/{(await create_case(coordinator))['id']}"
    persons_before: int = await db.fetchval("SELECT count(*) FROM person")
    load = await _terminate_under_load(coordinator, case_url, db)

    assert load.terminated >= 5
    assert load.statuses - {200, 201, 503} == set(), load.statuses
    assert load.bad_503s == 0
    assert len(load.failed_creates) + load.failed_reads <= load.terminated, load
    assert load.recovery_seconds < 1.0, load
    # A create answered 503 was saved or not: retried with its key, it exists once.
    for key, body in load.failed_creates.items():
        again = await coordinator.post(
            f"{API}/persons", json=body, headers={"Idempotency-Key": key}
        )
        assert again.status_code == 201, again.text
    created = load.created_keys | set(load.failed_creates)
    assert await db.fetchval("SELECT count(*) FROM person") == persons_before + len(created)


@dataclass
class LoadOutcome:
    statuses: set[int]
    bad_503s: int
    terminated: int
    failed_reads: int
    failed_creates: dict[str, dict[str, object]]
    created_keys: set[str]
    requests: int
    recovery_seconds: float


async def _terminate_under_load(
    client: httpx.AsyncClient, case_url: str, db: asyncpg.Connection
) -> LoadOutcome:
    outcome = LoadOutcome(set(), 0, 0, 0, {}, set(), 0, 0.0)
    stop = asyncio.Event()

    async def keep_asking(index: int) -> None:
        while not stop.is_set():
            key = uuid.uuid4().hex
            body = person_body()
            if index % 2:
                response = await client.get(case_url)
            else:
                response = await client.post(
                    f"{API}/persons", json=body, headers={"Idempotency-Key": key}
                )
            outcome.requests += 1
            outcome.statuses.add(response.status_code)
            if response.status_code == 503:
                if (
                    response.headers.get("content-type") != "application/problem+json"
                    or "Retry-After" not in response.headers
                ):
                    outcome.bad_503s += 1
                if index % 2:
                    outcome.failed_reads += 1
                else:
                    outcome.failed_creates[key] = body
            elif response.status_code == 201:
                outcome.created_keys.add(key)
            await asyncio.sleep(0.005)

    clients = [asyncio.create_task(keep_asking(index)) for index in range(6)]
    try:
        await asyncio.sleep(0.3)
        for _ in range(5):
            outcome.terminated += await _terminate_api_backends(db)
            await asyncio.sleep(0.15)
        outcome.terminated += await _terminate_api_backends(db)
        cut = time.monotonic()
        while (await client.get(case_url)).status_code != 200:
            if time.monotonic() - cut > 10:
                break
        outcome.recovery_seconds = time.monotonic() - cut
        await asyncio.sleep(0.3)
    finally:
        stop.set()
        await asyncio.gather(*clients)
    return outcome


async def test_a_database_that_cannot_be_reached_is_a_503_with_retry_after(
    database_url: str, app: FastAPI
) -> None:
    # The same schema and keys, on a port where no server listens.
    unreachable = create_app(settings_for("postgresql://postgres@127.0.0.1:9/nowhere", pool_size=2))
    async with (
        unreachable.router.lifespan_context(unreachable),
        api_client(unreachable) as client,
    ):
        responses = [
            await client.get(f"{API}/cases/{uuid.uuid4()}", headers={"Authorization": "Bearer x"}),
            await client.post(
                f"{API}/auth/login",
                json={"username": "someone", "password": "pw", "code": "123456"},
            ),
        ]
    for response in responses:
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert int(response.headers["Retry-After"]) >= 1
        assert response.json()["type"].endswith("database-unavailable")


CUT_AT_COMMIT = """
CREATE SEQUENCE cut_at_commit_once;
CREATE FUNCTION cut_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- Once only (a sequence is not rolled back): the connection dies during COMMIT.
  IF NEW.notes = 'cut at commit' AND nextval('cut_at_commit_once') = 1 THEN
    PERFORM pg_terminate_backend(pg_backend_pid());
  END IF;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER cut_at_commit AFTER INSERT ON person
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION cut_at_commit();
"""


async def test_a_connection_lost_during_commit_says_so_and_the_retry_applies_once(
    sign_in_as: SignIn, db: asyncpg.Connection
) -> None:
    coordinator = (await sign_in_as(Role.coordinator)).client
    await db.execute(CUT_AT_COMMIT)
    try:
        body = person_body(notes="cut at commit")
        headers = {"Idempotency-Key": "cut-1"}
        first = await coordinator.post(f"{API}/persons", json=body, headers=headers)
        assert first.status_code == 503, first.text
        assert first.headers["content-type"] == "application/problem+json"
        assert first.json()["type"].endswith("commit-outcome-unknown")
        assert "Idempotency-Key" in first.json()["detail"]
        assert int(first.headers["Retry-After"]) >= 1
        again = await coordinator.post(f"{API}/persons", json=body, headers=headers)
        assert again.status_code == 201, again.text
        replayed = await coordinator.post(f"{API}/persons", json=body, headers=headers)
        assert replayed.status_code == 201
        assert replayed.headers["Idempotent-Replayed"] == "true"
        assert replayed.json()["id"] == again.json()["id"]
        assert await db.fetchval("SELECT count(*) FROM person") == 1
    finally:
        await db.execute(
            "DROP TRIGGER cut_at_commit ON person; DROP FUNCTION cut_at_commit();"
            " DROP SEQUENCE cut_at_commit_once"
        )


async def test_a_database_restart_under_load_is_503s_then_recovery_without_help() -> None:
    """A PostgreSQL server of its own is stopped and started while clients keep reading
    and writing: while it is away they get 503 (never 500), and the first request after
    it is back succeeds, with nobody calling /readyz. Restarted again while the API idles,
    it costs nothing: the first request after it succeeds."""
    # Not under pytest's tmp_path: the server's own system user must reach the directory.
    scratch = Path(tempfile.mkdtemp(prefix="habeas-restart-"))
    pgdata = scratch / "pg"
    admin_url = embedded.start(pgdata)
    try:
        await embedded.ensure_database(admin_url, "habeas")
        url = embedded.with_database(admin_url, "habeas")
        await upgrade_async(url)
        application = create_app(settings_for(url, pool_size=4, connect_timeout_seconds=1.0))
        async with application.router.lifespan_context(application):
            account = await create_account(application, Role.coordinator)
            async with api_client(application) as client:
                tokens = await log_in(client, account)
                client.headers["Authorization"] = f"Bearer {tokens['access_token']}"
                created = await client.post(f"{API}/persons", json=person_body())
                assert created.status_code == 201, created.text
                person_url = f"{API}/persons/{created.json()['id']}"
                outcome = await _restart_under_load(client, person_url, pgdata)
                await asyncio.to_thread(embedded.stop, pgdata)
                await asyncio.to_thread(embedded.start_again, pgdata)
                after_idle_restart = await client.get(person_url)
    finally:
        embedded.stop(pgdata)
        shutil.rmtree(scratch, ignore_errors=True)
    assert outcome.statuses - {200, 201, 503} == set(), outcome.statuses
    assert 503 in outcome.statuses
    # Every 503 said so in problem+json, with a Retry-After.
    assert outcome.bad_503s == 0
    assert outcome.recovery_seconds < 1.0, outcome
    assert after_idle_restart.status_code == 200, after_idle_restart.text


@dataclass
class Outcome:
    statuses: set[int]
    bad_503s: int
    recovery_seconds: float


async def _restart_under_load(client: httpx.AsyncClient, person_url: str, pgdata: Path) -> Outcome:
    statuses: set[int] = set()
    bad_503s = 0
    stop = asyncio.Event()

    async def keep_asking(index: int) -> None:
        nonlocal bad_503s
        while not stop.is_set():
            if index % 2:
                response = await client.get(person_url)
            else:
                response = await client.post(
                    f"{API}/persons",
                    json=person_body(),
                    headers={"Idempotency-Key": uuid.uuid4().hex},
                )
            statuses.add(response.status_code)
            if response.status_code == 503 and (
                response.headers.get("content-type") != "application/problem+json"
                or "Retry-After" not in response.headers
            ):
                bad_503s += 1
            await asyncio.sleep(0.01)

    clients = [asyncio.create_task(keep_asking(index)) for index in range(4)]
    try:
        await asyncio.sleep(0.5)
        await asyncio.to_thread(embedded.stop, pgdata)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(embedded.start_again, pgdata)
        back = time.monotonic()
        while (await client.get(person_url)).status_code != 200:
            if time.monotonic() - back > 10:
                break
            await asyncio.sleep(0.01)
        recovery = time.monotonic() - back
        await asyncio.sleep(0.3)
    finally:
        stop.set()
        await asyncio.gather(*clients)
    return Outcome(statuses, bad_503s, recovery)

"""Reads' audit events are appended in batches after their requests commit
(app/audit/read_events.py): a read does not wait for the chain's lock, every read served
is in the trail moments later, in one contiguous chain, and none is served unrecorded."""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from app.access.principal import Role
from app.audit.chain import EventDraft
from app.audit.read_events import ReadEvents
from app.core import embedded
from app.core.errors import DatabaseUnavailable
from tests.auth import BASE_URL, SignInAs, create_account, log_in
from tests.conftest import separate_app
from tests.factories import API, create_case, create_person, if_match


def plain_client(app: FastAPI) -> httpx.AsyncClient:
    """A client that, unlike the tests' usual one, never asks the queue to hurry: it
    sees the trail as another process would."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL)


@asynccontextmanager
async def signed_in(app: FastAPI, role: Role) -> AsyncIterator[httpx.AsyncClient]:
    account = await create_account(app, role)
    async with plain_client(app) as client:
        tokens = await log_in(client, account)
        client.headers["Authorization"] = f"Bearer {tokens['access_token']}"
        yield client


async def reads_recorded(db: asyncpg.Connection, case_ids: list[str]) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT seq, occurred_at, resource_id FROM audit_event"
        " WHERE action = 'case.read' AND resource_id = ANY($1::uuid[]) ORDER BY seq",
        case_ids,
    )


async def wait_for_reads(
    db: asyncpg.Connection, case_ids: list[str], count: int, within: float
) -> list[asyncpg.Record]:
    deadline = time.monotonic() + within
    while True:
        found = await reads_recorded(db, case_ids)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.01)


@asynccontextmanager
async def chain_locked(database_url: str) -> AsyncIterator[None]:
    """Another transaction holds the chain's head, as a long write would."""
    holder = await asyncpg.connect(**embedded.asyncpg_connect_kwargs(database_url))
    try:
        async with holder.transaction():
            await holder.execute("SELECT seq FROM audit_head FOR UPDATE")
            yield
    finally:
        await holder.close()


async def test_concurrent_reads_are_recorded_together_in_one_chain_moments_later(
    app: FastAPI, sign_in_as: SignInAs, db: asyncpg.Connection
) -> None:
    coordinator = (await sign_in_as(Role.coordinator)).client
    person = await create_person(coordinator)
    cases = [await create_case(coordinator, person_id=person["id"]) for _ in range(3)]
    case_ids = [case["id"] for case in cases] * 8
    async with signed_in(app, Role.caseworker) as caseworker:
        answers = await asyncio.gather(*(caseworker.get(f"{API}/cases/{i}") for i in case_ids))
        assert [answer.status_code for answer in answers] == [200] * len(case_ids)
        # No flush asked: the queue appends on its own within its batch time (25 ms).
        recorded = await wait_for_reads(db, case_ids, len(case_ids), within=2.0)
    assert len(recorded) == len(case_ids)
    # Appended together: a batch's events share the moment it took the chain's head.
    moments = {row["occurred_at"] for row in recorded}
    assert len(moments) < len(case_ids) / 2, moments
    seqs = [row["seq"] for row in await db.fetch("SELECT seq FROM audit_event ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1))
    auditor = (await sign_in_as(Role.auditor)).client
    verified = (await auditor.get(f"{API}/audit/verify")).json()
    assert verified["ok"] is True, verified
    # The auditor's sign-in came after: the chain checked holds at least those above.
    assert verified["events_checked"] >= len(seqs)


async def test_a_read_does_not_wait_for_the_chain_that_a_write_waits_for(
    app: FastAPI, database_url: str, sign_in_as: SignInAs, db: asyncpg.Connection
) -> None:
    coordinator = (await sign_in_as(Role.coordinator)).client
    case = await create_case(coordinator)
    async with signed_in(app, Role.caseworker) as caseworker:
        async with chain_locked(database_url):
            read = asyncio.create_task(caseworker.get(f"{API}/cases/{case['id']}"))
            await asyncio.wait({read}, timeout=1.0)
            read_answered_while_held = read.done()
            # A write appends in its own transaction: it waits for the chain.
            write = asyncio.create_task(
                coordinator.patch(
                    f"{API}/cases/{case['id']}",
                    json={"deprivation_type": "imprisonment"},
                    headers=if_match(case["version"]),
                )
            )
            await asyncio.wait({write}, timeout=0.3)
            write_answered_while_held = write.done()
            recorded_while_held = await reads_recorded(db, [case["id"]])
        assert read_answered_while_held
        assert (await read).status_code == 200
        assert not write_answered_while_held
        assert recorded_while_held == []
        assert (await write).status_code == 200
        recorded = await wait_for_reads(db, [case["id"]], 1, within=2.0)
    assert len(recorded) == 1


async def test_a_full_queue_makes_a_read_wait_and_never_serves_it_unrecorded(
    database_url: str, clean_tables: None, db: asyncpg.Connection
) -> None:
    async with (
        separate_app(database_url, audit_read_queue_limit=1, pool_timeout_seconds=0.5) as limited,
        signed_in(limited, Role.coordinator) as coordinator,
    ):
        case = await create_case(coordinator)
        async with chain_locked(database_url):
            first = asyncio.create_task(coordinator.get(f"{API}/cases/{case['id']}"))
            await asyncio.wait({first}, timeout=2.0)
            # The first read's event cannot be appended while the chain is held: the
            # queue is full, and the next read is refused rather than unrecorded.
            second = asyncio.create_task(coordinator.get(f"{API}/cases/{case['id']}"))
            await asyncio.wait({second}, timeout=2.0)
            both_answered_while_held = first.done() and second.done()
        assert both_answered_while_held
        assert (await first).status_code == 200
        refused = await second
        assert refused.status_code == 503, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        recorded = await wait_for_reads(db, [case["id"]], 1, within=3.0)
        assert len(recorded) == 1
        await asyncio.sleep(0.2)
        assert len(await reads_recorded(db, [case["id"]])) == 1


async def test_what_waits_is_appended_when_the_process_stops(
    database_url: str, clean_tables: None, db: asyncpg.Connection
) -> None:
    async with (
        separate_app(database_url, audit_read_batch_ms=50) as stopping,
        signed_in(stopping, Role.coordinator) as coordinator,
    ):
        case = await create_case(coordinator)
        read = await coordinator.get(f"{API}/cases/{case['id']}")
        assert read.status_code == 200
    # The lifespan ended at once, within the batch's wait.
    assert len(await reads_recorded(db, [case["id"]])) == 1


async def test_reads_unrecorded_only_when_measuring_and_then_said_in_the_trail(
    database_url: str, clean_tables: None, db: asyncpg.Connection
) -> None:
    async with separate_app(database_url, audit_reads=False) as measuring:
        said = await db.fetchrow(
            "SELECT actor_type, detail FROM audit_event WHERE action = 'audit.reads_unrecorded'"
        )
        assert said is not None and said["actor_type"] == "system"
        async with signed_in(measuring, Role.coordinator) as coordinator:
            case = await create_case(coordinator)
            assert (await coordinator.get(f"{API}/cases/{case['id']}")).status_code == 200
            await asyncio.sleep(0.2)
            # Writes are still recorded; the read is not.
            assert await reads_recorded(db, [case["id"]]) == []
            created = await db.fetchval(
                "SELECT count(*) FROM audit_event WHERE action = 'case.create'"
            )
            assert created == 1


async def test_a_batch_whose_connection_is_cut_is_appended_again_once(
    app: FastAPI, database_url: str, sign_in_as: SignInAs, db: asyncpg.Connection
) -> None:
    coordinator = (await sign_in_as(Role.coordinator)).client
    case = await create_case(coordinator)
    async with signed_in(app, Role.caseworker) as caseworker:
        async with chain_locked(database_url):
            assert (await caseworker.get(f"{API}/cases/{case['id']}")).status_code == 200
            # The batch waits for the chain's head; its connection is cut meanwhile.
            waiting: list[asyncpg.Record] = []
            deadline = time.monotonic() + 2
            while not waiting and time.monotonic() < deadline:
                waiting = await db.fetch(
                    "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND query LIKE '%audit_head FOR UPDATE%' AND datname = current_database()"
                )
                await asyncio.sleep(0.01)
            assert len(waiting) == 1
            await db.execute("SELECT pg_terminate_backend($1)", waiting[0]["pid"])
        recorded = await wait_for_reads(db, [case["id"]], 1, within=3.0)
        await asyncio.sleep(0.3)
        assert len(await reads_recorded(db, [case["id"]])) == len(recorded) == 1
    seqs = [row["seq"] for row in await db.fetch("SELECT seq FROM audit_event ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1))


CommitFault = Callable[[Callable[[], Awaitable[None]], AsyncSession], Awaitable[None]]


def with_commit(
    sessions: async_sessionmaker[AsyncSession], fault: CommitFault
) -> Callable[[], AbstractAsyncContextManager[AsyncSession]]:
    """Sessions whose COMMIT goes through `fault(commit, session)`: the database failing
    as the test needs, in the appender's own unit of work."""

    @asynccontextmanager
    async def session() -> AsyncIterator[AsyncSession]:
        async with sessions() as opened:
            commit = opened.commit

            async def faulty_commit() -> None:
                await fault(commit, opened)

            opened.commit = faulty_commit  # type: ignore[method-assign]
            yield opened

    return session


def losing_the_first_reply() -> CommitFault:
    """The first COMMIT takes effect but its reply is lost on the way back (the connection
    drops just then): the committer cannot know."""
    lost: list[bool] = []

    async def fault(commit: Callable[[], Awaitable[None]], _: AsyncSession) -> None:
        await commit()
        if not lost:
            lost.append(True)
            raise ConnectionResetError("the reply to COMMIT was lost")

    return fault


def failing_while(failing: list[bool]) -> CommitFault:
    """COMMIT fails (nothing committed) while `failing` holds True."""

    async def fault(commit: Callable[[], Awaitable[None]], session: AsyncSession) -> None:
        if failing[0]:
            await session.rollback()
            raise ConnectionResetError("the database went away")
        await commit()

    return fault


async def test_a_batch_whose_commit_took_effect_unheard_is_not_appended_twice(
    app: FastAPI, clean_tables: None, db: asyncpg.Connection
) -> None:
    queue = ReadEvents(
        with_commit(app.state.session_factory, losing_the_first_reply()),  # type: ignore[arg-type]
        batch_seconds=0.01,
        limit=100,
        room_timeout_seconds=1.0,
    )
    queue.start()
    request_ids = [f"read-{n}" for n in range(3)]
    for request_id in request_ids:
        await queue.record(
            EventDraft("user", None, "caseworker", "case.read", "success", request_id=request_id)
        )
    await asyncio.wait_for(queue.flush(), 5)
    await queue.close()
    recorded = await db.fetch(
        "SELECT request_id FROM audit_event WHERE request_id = ANY($1::text[]) ORDER BY seq",
        request_ids,
    )
    assert [row["request_id"] for row in recorded] == request_ids
    seqs = [row["seq"] for row in await db.fetch("SELECT seq FROM audit_event ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1))


async def test_while_batches_fail_a_read_waits_for_its_own_event_or_is_refused(
    app: FastAPI, clean_tables: None, db: asyncpg.Connection
) -> None:
    failing = [True]
    queue = ReadEvents(
        with_commit(app.state.session_factory, failing_while(failing)),  # type: ignore[arg-type]
        batch_seconds=0.01,
        limit=100,
        # Longer than the appender's longest wait between tries (0.5 s).
        room_timeout_seconds=1.5,
    )
    queue.start()
    try:
        # The first read's batch fails: from then on, reads wait for their own event.
        await queue.record(EventDraft("user", None, "caseworker", "case.read", "success"))
        await asyncio.sleep(0.1)
        with pytest.raises(DatabaseUnavailable):
            await queue.record(EventDraft("user", None, "caseworker", "case.read", "success"))
        # The database is back while a read waits: it returns once its event is in.
        waiting = asyncio.create_task(
            queue.record(
                EventDraft("user", None, "caseworker", "case.read", "success", request_id="r3")
            )
        )
        await asyncio.sleep(0.1)
        assert not waiting.done()
        failing[0] = False
        await asyncio.wait_for(waiting, 3)
        assert await db.fetchval("SELECT count(*) FROM audit_event WHERE request_id = 'r3'") == 1
    finally:
        await queue.close()
    # Every read queued is in the chain once (the refused one too: it was queued, only not
    # answered), in one contiguous chain.
    assert await db.fetchval("SELECT count(*) FROM audit_event WHERE action = 'case.read'") == 3
    seqs = [row["seq"] for row in await db.fetch("SELECT seq FROM audit_event ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1))


async def test_an_auditor_finds_the_reads_this_process_served_a_moment_ago(
    app: FastAPI, sign_in_as: SignInAs
) -> None:
    coordinator = (await sign_in_as(Role.coordinator)).client
    case = await create_case(coordinator)
    auditor = (await sign_in_as(Role.auditor)).client
    async with signed_in(app, Role.caseworker) as caseworker:
        # Through a client that does not hurry the queue: the search itself does.
        assert (await caseworker.get(f"{API}/cases/{case['id']}")).status_code == 200
        found = await auditor.get(
            f"{API}/audit/events", params={"action": "case.read", "resource_id": case["id"]}
        )
    assert found.status_code == 200, found.text
    assert len(found.json()["items"]) == 1

"""`kill -9` of the real server in the middle of a burst of idempotent writes (creates of
persons and case files, status transitions under If-Match, one collective event), then a
restart on the same database and a retry of every request of the burst with its key and
body: every write happened once or not at all, never in part; every retry succeeds and
applies what had not been saved or replays what had; the audit chain verifies.

One server process (`habeas serve`, as an operator starts it) on the test database and
the tests' keys, killed with SIGKILL: no shutdown code runs, transactions in progress are
cut wherever they were. The kill comes at one of two moments, found through a trigger so
that a busy machine cannot move it: while the collective event's transaction is half
written (it has inserted the first of its status events), or the instant it commits
(mostly before the server has answered it; the answer sometimes wins the race, and both
outcomes are checked the same way). Two starts and a burst take ten to twenty seconds."""

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from app.access.principal import Role
from tests.auth import SignedIn
from tests.conftest import TEST_KEYS_DIR
from tests.factories import API, batch, case_body, create_case, create_person, event, person_body

SignIn = Callable[..., Awaitable[SignedIn]]

STARTUP_SECONDS = 90
REQUEST_SECONDS = 60
PERSON_CREATES = 30
CASE_CREATES = 10
TRANSITIONS = 12
COLLECTIVE_CASE_FILES = 40

# The server is killed once this many answers of the burst have arrived (and, in the
# first case, the collective event is held half written): the rest are queued, running or
# committing at that moment.
KILL_AFTER_ANSWERS = 15

# Test instruments on the database, removed afterwards. The first holds the collective
# event's transaction after its first status event (once: a sequence is not rolled back)
# on an advisory lock the test holds, until the test has killed the server; the second
# tells the test's listening connection the moment the transaction that made the
# collective event commits (a notification is delivered at commit, never before).
HOLD = 7011
HOLD_IN_COLLECTIVE = f"""
CREATE SEQUENCE chaos_hold_once;
CREATE FUNCTION chaos_hold() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF nextval('chaos_hold_once') = 1 THEN PERFORM pg_advisory_xact_lock({HOLD}); END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER chaos_hold AFTER INSERT ON status_event FOR EACH ROW
  WHEN (NEW.collective_event_id IS NOT NULL) EXECUTE FUNCTION chaos_hold();
"""
REMOVE_HOLD = (
    "DROP TRIGGER chaos_hold ON status_event; DROP FUNCTION chaos_hold();"
    " DROP SEQUENCE chaos_hold_once"
)
NOTIFY_COMMIT = """
CREATE FUNCTION chaos_committed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('chaos_collective', NEW.id::text);
  RETURN NULL;
END $$;
CREATE TRIGGER chaos_committed AFTER INSERT ON collective_event FOR EACH ROW
  EXECUTE FUNCTION chaos_committed();
"""
REMOVE_NOTIFY = "DROP TRIGGER chaos_committed ON collective_event; DROP FUNCTION chaos_committed()"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def operator_env(database_url: str) -> dict[str, str]:
    """The environment without any Habeas settings, then the test database and keys."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("HABEAS_") and name != "DATABASE_URL"
    }
    return {
        **inherited,
        "DATABASE_URL": database_url,
        "HABEAS_DATA_DIR": str(TEST_KEYS_DIR),
        "HABEAS_ENV": "test",
        "HABEAS_LOG_LEVEL": "WARNING",
        # Nothing but the burst writes: no purge runs while it is checked.
        "HABEAS_HOUSEKEEPING_INTERVAL_SECONDS": "0",
    }


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path
    ready_seconds: float = 0.0

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@contextmanager
def scratch_dir() -> Iterator[Path]:
    # Not under pytest's tmp_path (see tests/test_serve.py).
    path = Path(tempfile.mkdtemp(prefix="habeas-chaos-"))
    try:
        yield path
    finally:
        for child in path.iterdir():
            child.unlink()
        path.rmdir()


def start_server(database_url: str, scratch: Path) -> Server:
    """`habeas serve` in its own session on the already migrated test database, once its
    /readyz answers 200; `ready_seconds` is how long that took from the start."""
    port = free_port()
    log = scratch / f"serve-{port}.log"
    started = time.monotonic()
    with log.open("wb") as stderr:
        process = subprocess.Popen(  # noqa: S603 (our own command)
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--no-migrate"],
            cwd=scratch,  # no stray .env feeds the settings
            env=operator_env(database_url),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    while time.monotonic() - started < STARTUP_SECONDS:
        if process.poll() is not None:
            pytest.fail(f"serve exited with {process.returncode}:\n{server.output()}")
        try:
            if httpx.get(f"{server.base_url}/readyz", timeout=2).status_code == 200:
                server.ready_seconds = time.monotonic() - started
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    kill(server)
    pytest.fail(f"serve was not ready in {STARTUP_SECONDS} s:\n{server.output()}")


def kill_now(server: Server) -> None:
    """SIGKILL: the process ends at once, whatever it was doing."""
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGKILL)


def kill(server: Server) -> None:
    kill_now(server)
    server.process.wait(timeout=30)


@dataclass
class Write:
    """One request of the burst: sent once before the kill, and again after it."""

    kind: str  # person, case, transition or collective
    path: str
    body: dict[str, Any]
    key: str
    if_match: str | None = None
    first: httpx.Response | None = None
    first_error: str | None = None
    retry: httpx.Response | None = None
    case_file_id: str | None = None

    def headers(self) -> dict[str, str]:
        headers = {"Idempotency-Key": self.key}
        if self.if_match is not None:
            headers["If-Match"] = self.if_match
        return headers

    def audit_entry(self) -> tuple[str, str]:
        """The audit event the write records: its action and resource."""
        assert self.retry is not None
        if self.kind == "transition":
            assert self.case_file_id is not None
            return ("case.transition", self.case_file_id)
        action = {"person": "person.create", "case": "case.create"}.get(self.kind)
        return (action or "collective.create", self.effect_id(self.retry))

    def effect_id(self, response: httpx.Response) -> str:
        """The record the write made: the person, case file, status event or collective
        event."""
        created = response.json()
        if self.kind == "transition":
            return str(created["event"]["id"])
        return str(created["id"])


@dataclass
class World:
    """What exists before the burst."""

    persons_for_cases: list[str]
    detained_cases: list[str]
    sentenced_cases: list[str]


async def prepare(client: httpx.AsyncClient) -> World:
    persons = await asyncio.gather(*(create_person(client) for _ in range(CASE_CREATES)))
    detained = await asyncio.gather(*(create_case(client) for _ in range(TRANSITIONS)))
    sentenced = await asyncio.gather(
        *(
            create_case(
                client, history=[event("detained", "2021-01-01"), event("sentenced", "2021-06-01")]
            )
            for _ in range(COLLECTIVE_CASE_FILES)
        )
    )
    assert {case["version"] for case in detained} == {1}
    return World(
        [person["id"] for person in persons],
        [case["id"] for case in detained],
        [case["id"] for case in sentenced],
    )


def burst(world: World) -> list[Write]:
    """The collective event first (so that it is among the requests running when the
    server dies), then the rest in a fixed shuffled order."""
    collective = Write(
        "collective",
        f"{API}/collective-events",
        batch(world.sentenced_cases, title="Pardon and expulsion (chaos run)"),
        "chaos-collective",
    )
    others = [
        Write("person", f"{API}/persons", person_body(notes=f"chaos {n}"), f"chaos-person-{n}")
        for n in range(PERSON_CREATES)
    ]
    others += [
        Write("case", f"{API}/cases", case_body(person_id), f"chaos-case-{n}")
        for n, person_id in enumerate(world.persons_for_cases)
    ]
    others += [
        Write(
            "transition",
            f"{API}/cases/{case_id}/status-events",
            event("sentenced", "2022-01-01", details={"term_months": 36}),
            f"chaos-transition-{n}",
            if_match='"1"',
            case_file_id=case_id,
        )
        for n, case_id in enumerate(world.detained_cases)
    ]
    random.Random(11).shuffle(others)
    return [collective, *others]


async def send(client: httpx.AsyncClient, write: Write) -> httpx.Response:
    return await client.post(write.path, json=write.body, headers=write.headers())


@dataclass
class KillFigures:
    answered_before_kill: int
    in_flight_at_kill: int


async def burst_then_kill(
    server: Server, token: str, writes: list[Write], db: asyncpg.Connection, kill_point: str
) -> KillFigures:
    """Send every write at once and kill the server at `kill_point`; how many had been
    answered at that instant."""
    answers = 0
    answered_at_kill: int | None = None
    killed = asyncio.Event()

    def kill_and_count(*_: object) -> None:
        nonlocal answered_at_kill
        kill_now(server)
        answered_at_kill = answers
        killed.set()

    async def first_try(client: httpx.AsyncClient, write: Write) -> None:
        nonlocal answers
        try:
            write.first = await send(client, write)
            answers += 1
        except httpx.TransportError as error:
            write.first_error = type(error).__name__

    async def kill_while_held() -> None:
        held = (
            "SELECT count(*) FROM pg_locks"
            f" WHERE locktype = 'advisory' AND objid = {HOLD} AND NOT granted"
        )
        while True:  # bounded by the caller's wait_for
            if answers >= KILL_AFTER_ANSWERS and await db.fetchval(held):
                kill_and_count()
                return
            await asyncio.sleep(0.005)

    if kill_point == "commit":
        await db.add_listener("chaos_collective", kill_and_count)
    else:
        await db.execute(f"SELECT pg_advisory_lock({HOLD})")
    async with httpx.AsyncClient(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=REQUEST_SECONDS,
        limits=httpx.Limits(max_connections=len(writes)),
    ) as client:
        tries = [asyncio.create_task(first_try(client, write)) for write in writes]
        try:
            if kill_point == "commit":
                await asyncio.wait_for(killed.wait(), REQUEST_SECONDS)
            else:
                await asyncio.wait_for(kill_while_held(), REQUEST_SECONDS)
        finally:
            kill(server)
            if kill_point == "commit":
                await db.remove_listener("chaos_collective", kill_and_count)
            else:
                # The dead server's transaction goes on, meets its closed socket and ends.
                await db.execute(f"SELECT pg_advisory_unlock({HOLD})")
        await asyncio.gather(*tries)
    assert answered_at_kill is not None
    return KillFigures(answered_at_kill, len(writes) - answered_at_kill)


async def retry_all(server: Server, token: str, writes: list[Write]) -> None:
    async def again(client: httpx.AsyncClient, write: Write) -> None:
        write.retry = await send(client, write)

    async with httpx.AsyncClient(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=REQUEST_SECONDS,
        limits=httpx.Limits(max_connections=len(writes)),
    ) as client:
        await asyncio.gather(*(again(client, write) for write in writes))


async def collective_state(db: asyncpg.Connection, case_ids: list[str]) -> dict[str, int]:
    """The collective event's case files by status, and how many of its events exist."""
    ids = [uuid.UUID(case_id) for case_id in case_ids]
    rows = await db.fetch(
        "SELECT status, count(*) FROM case_file WHERE id = ANY($1) GROUP BY status", ids
    )
    state = {row[0]: row[1] for row in rows}
    state["events"] = await db.fetchval(
        "SELECT count(*) FROM status_event WHERE case_file_id = ANY($1)"
        " AND collective_event_id IS NOT NULL",
        ids,
    )
    state["collective_events"] = await db.fetchval("SELECT count(*) FROM collective_event")
    return state


async def settle(db: asyncpg.Connection) -> float:
    """Wait until the database has ended the dead server's transactions (a backend learns
    that its client is gone when it next reads from it, after any lock it waits for); how
    long that took. Other connections to the test database are idle now."""
    started = time.monotonic()
    while await db.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND backend_type = 'client backend' AND pid <> pg_backend_pid() AND state <> 'idle'"
    ):
        assert time.monotonic() - started < REQUEST_SECONDS, "backends of the dead server remain"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


def audit_verify(database_url: str) -> dict[str, Any]:
    """`habeas audit verify`, as an operator runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "audit", "verify"],
        env=operator_env(database_url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


@pytest.fixture
async def kill_point(request: pytest.FixtureRequest, db: asyncpg.Connection) -> AsyncIterator[str]:
    point: str = request.param
    install, remove = (
        (NOTIFY_COMMIT, REMOVE_NOTIFY) if point == "commit" else (HOLD_IN_COLLECTIVE, REMOVE_HOLD)
    )
    await db.execute(install)
    try:
        yield point
    finally:
        # Whatever happened, the held transaction may go on (and end) first.
        await db.execute("SELECT pg_advisory_unlock_all()")
        await db.execute(remove)


@pytest.mark.parametrize(
    "kill_point",
    ["collective half written", "commit"],
    ids=["killed while the collective event is half written", "killed as it commits"],
    indirect=True,
)
async def test_a_server_killed_in_the_middle_of_a_burst_loses_nothing_and_doubles_nothing(
    sign_in_as: SignIn, database_url: str, db: asyncpg.Connection, kill_point: str
) -> None:
    coordinator = await sign_in_as(Role.coordinator)
    token = coordinator.tokens["access_token"]
    world = await prepare(coordinator.client)
    writes = burst(world)
    persons_before = await db.fetchval("SELECT count(*) FROM person")
    cases_before = await db.fetchval("SELECT count(*) FROM case_file")

    with scratch_dir() as scratch:
        server = start_server(database_url, scratch)
        try:
            killed = await burst_then_kill(server, token, writes, db, kill_point)
        finally:
            kill(server)
        interrupted = [write for write in writes if write.first is None]
        answered = [write for write in writes if write.first is not None]
        assert interrupted, "every request was answered before the kill: nothing was tested"
        for write in answered:
            assert write.first is not None
            assert write.first.status_code == 201, (write.key, write.first.text)

        settled_seconds = await settle(db)
        # Before any retry: what was answered is saved, and the collective event is all
        # there or not at all.
        before_retry = await collective_state(db, world.sentenced_cases)
        none_of_it = {"sentenced": COLLECTIVE_CASE_FILES, "events": 0, "collective_events": 0}
        all_of_it = {"deported": COLLECTIVE_CASE_FILES, "events": COLLECTIVE_CASE_FILES}
        all_of_it["collective_events"] = 1
        assert before_retry == (all_of_it if kill_point == "commit" else none_of_it)
        saved_before_retry = await db.fetchval("SELECT count(*) FROM idempotency_record")
        for write in answered:
            assert write.first is not None
            assert await db.fetchval(
                "SELECT count(*) FROM idempotency_record WHERE key = $1", write.key
            ), write.key

        restarted = start_server(database_url, scratch)
        try:
            await retry_all(restarted, token, writes)
        finally:
            kill(restarted)

    replayed = applied = 0
    for write in writes:
        assert write.retry is not None
        assert write.retry.status_code == 201, (write.key, write.retry.text)
        if write.retry.headers.get("Idempotent-Replayed") == "true":
            replayed += 1
        else:
            applied += 1
        if write.first is not None:
            # An answered write is replayed, never applied a second time.
            assert write.retry.headers.get("Idempotent-Replayed") == "true", write.key
            assert write.effect_id(write.retry) == write.effect_id(write.first), write.key
    # The writes saved before the kill are exactly the ones replayed.
    assert replayed == saved_before_retry

    # Each effect exactly once.
    by_kind: dict[str, set[str]] = {}
    for write in writes:
        assert write.retry is not None
        by_kind.setdefault(write.kind, set()).add(write.effect_id(write.retry))
    assert len(by_kind["person"]) == PERSON_CREATES
    assert len(by_kind["case"]) == CASE_CREATES
    assert len(by_kind["transition"]) == TRANSITIONS
    assert await db.fetchval("SELECT count(*) FROM person") == persons_before + PERSON_CREATES
    assert await db.fetchval("SELECT count(*) FROM case_file") == cases_before + CASE_CREATES
    assert await db.fetchval("SELECT count(*) FROM idempotency_record") == len(writes)
    transitioned = [uuid.UUID(case_id) for case_id in world.detained_cases]
    assert await db.fetch(
        "SELECT DISTINCT status, version, (SELECT count(*) FROM status_event e"
        " WHERE e.case_file_id = c.id) AS events FROM case_file c WHERE id = ANY($1)",
        transitioned,
    ) == [("sentenced", 2, 2)]
    assert await collective_state(db, world.sentenced_cases) == {
        "deported": COLLECTIVE_CASE_FILES,
        "events": COLLECTIVE_CASE_FILES,
        "collective_events": 1,
    }
    # The audit trail records each write once, and its chain verifies.
    expected = {write.audit_entry() for write in writes}
    audited = await db.fetch(
        "SELECT action, resource_id::text, count(*) FROM audit_event"
        " WHERE outcome = 'success' AND resource_id = ANY($1) GROUP BY 1, 2",
        [uuid.UUID(resource) for _, resource in expected],
    )
    counts = {(action, resource): count for action, resource, count in audited}
    assert {entry: counts.get(entry, 0) for entry in expected} == dict.fromkeys(expected, 1)
    report = audit_verify(database_url)
    assert report["ok"] is True, report
    assert report["events_checked"] == await db.fetchval("SELECT count(*) FROM audit_event")

    cut_by = ", ".join(sorted({write.first_error or "" for write in interrupted}))
    # The figures docs/reliability.md quotes (seen with pytest -s).
    print(  # noqa: T201
        f"\nchaos ({kill_point}): {len(writes)} writes;"
        f" {killed.answered_before_kill} answered when killed,"
        f" {killed.in_flight_at_kill} in flight; {len(answered)} answered in all,"
        f" {len(interrupted)} cut ({cut_by}); collective answered: {writes[0].first is not None};"
        f" retries: {applied} applied, {replayed} replayed"
        f" ({replayed - len(answered)} saved but unanswered);"
        f" database settled in {settled_seconds:.2f} s;"
        f" ready in {server.ready_seconds:.2f} s, again in {restarted.ready_seconds:.2f} s"
    )

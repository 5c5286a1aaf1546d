"""Database errors are logged and counted as what they are (issue 11): a serialization
failure, a deadlock, a lock or statement timeout is `database_<kind>` with its SQLSTATE
and class, never its message (which can quote data), and the client gets 503 with
Retry-After (nothing was saved; the same request may be sent again), not a 500. JSON
log lines carry the request id that the answer's X-Request-ID shows."""

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.types import Receive, Scope, Send

from app.access.principal import Role
from app.core.database_errors import DatabaseErrorKind, classify
from app.core.errors import UnexpectedErrorMiddleware
from tests.auth import SignedIn
from tests.conftest import PROJECT_ROOT, TEST_KEYS_DIR
from tests.factories import API, person_body

SignIn = Callable[..., Awaitable[SignedIn]]

# Words the database's message carries, which must never reach a log line.
SECRET = "Labanovich lives at Secret Street 7"

# A refusal the database raises with a given SQLSTATE, for a person whose notes name it:
# during the INSERT (`refuse_now`), or at COMMIT (`refuse_at_commit`, deferred).
REFUSALS = f"""
CREATE FUNCTION refuse_with_sqlstate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.notes LIKE 'refuse %' THEN
    RAISE EXCEPTION '{SECRET}' USING ERRCODE = split_part(NEW.notes, ' ', 2);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER refuse_now AFTER INSERT ON person
  FOR EACH ROW WHEN (NEW.notes LIKE 'refuse % now') EXECUTE FUNCTION refuse_with_sqlstate();
CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT ON person
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.notes LIKE 'refuse % at-commit')
  EXECUTE FUNCTION refuse_with_sqlstate();
"""
DROP_REFUSALS = """
DROP TRIGGER IF EXISTS refuse_now ON person;
DROP TRIGGER IF EXISTS refuse_at_commit ON person;
DROP FUNCTION IF EXISTS refuse_with_sqlstate();
"""


@pytest.fixture
async def refusals(db: asyncpg.Connection, clean_tables: None) -> AsyncIterator[None]:
    await db.execute(DROP_REFUSALS)
    await db.execute(REFUSALS)
    yield
    await db.execute(DROP_REFUSALS)


def errors_counted(kind: DatabaseErrorKind) -> float:
    return REGISTRY.get_sample_value("habeas_database_errors_total", {"kind": kind.value}) or 0.0


async def _raised_by_the_server(db: asyncpg.Connection, sqlstate: str) -> asyncpg.PostgresError:
    with pytest.raises(asyncpg.PostgresError) as raised:
        await db.execute(f"DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '{sqlstate}'; END $$")
    return raised.value


@pytest.mark.parametrize(
    ("sqlstate", "kind"),
    [
        ("40001", DatabaseErrorKind.serialization_failure),
        ("40P01", DatabaseErrorKind.deadlock),
        ("55P03", DatabaseErrorKind.lock_timeout),
        ("57014", DatabaseErrorKind.statement_timeout),
        ("53100", DatabaseErrorKind.insufficient_resources),  # disk full
        ("57P01", DatabaseErrorKind.connection_lost),
        ("08006", DatabaseErrorKind.connection_lost),
        ("57P03", DatabaseErrorKind.unavailable),
        ("23505", None),  # a unique violation is a refusal, not a fault
        ("P0001", None),  # a plain RAISE: a bug
    ],
)
async def test_the_servers_errors_are_classified_by_sqlstate(
    db: asyncpg.Connection, sqlstate: str, kind: DatabaseErrorKind | None
) -> None:
    assert classify(await _raised_by_the_server(db, sqlstate)) == kind


@pytest.mark.parametrize(
    ("sqlstate", "kind"),
    [
        ("40001", DatabaseErrorKind.serialization_failure),
        ("40P01", DatabaseErrorKind.deadlock),
        ("55P03", DatabaseErrorKind.lock_timeout),
        ("57014", DatabaseErrorKind.statement_timeout),
    ],
)
@pytest.mark.parametrize("moment", ["now", "at-commit"])
async def test_a_transaction_the_database_undoes_is_a_503_with_retry_after(
    sign_in_as: SignIn,
    db: asyncpg.Connection,
    refusals: None,
    sqlstate: str,
    kind: DatabaseErrorKind,
    moment: str,
) -> None:
    coordinator = (await sign_in_as(Role.coordinator)).client
    counted = errors_counted(kind)
    response = await coordinator.post(
        f"{API}/persons", json=person_body(notes=f"refuse {sqlstate} {moment}")
    )
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json()["type"] == "urn:habeas:problem:database-busy"
    assert SECRET not in response.text
    assert await db.fetchval("SELECT count(*) FROM person") == 0
    assert errors_counted(kind) == counted + 1
    # The connection went back to the pool in good order: the next request succeeds.
    again = await coordinator.post(f"{API}/persons", json=person_body())
    assert again.status_code == 201, again.text


def test_a_json_log_line_names_the_error_and_carries_the_answers_request_id(
    database_url: str, db: asyncpg.Connection, refusals: None
) -> None:
    """Run as an operator sees it: JSON lines on stdout, from a process of its own."""
    probe = subprocess.run(  # noqa: S603 (our own module)
        [
            sys.executable,
            "-m",
            "tests.core.json_log_probe",
            database_url,
            str(TEST_KEYS_DIR),
            "refuse 40P01 now",
        ],
        cwd=PROJECT_ROOT,
        env={
            **{name: value for name, value in os.environ.items() if not name.startswith("HABEAS")},
            "PYTHONPATH": str(PROJECT_ROOT),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    answer = json.loads(probe.stderr.strip().splitlines()[-1])
    assert answer["status"] == 503
    assert answer["type"] == "urn:habeas:problem:database-busy"
    assert int(answer["retry_after"]) >= 1
    lines = [json.loads(line) for line in probe.stdout.splitlines() if line.startswith("{")]
    [logged] = [line for line in lines if line["event"] == "database_deadlock"]
    assert logged["request_id"] == answer["request_id"]
    assert logged["sqlstate"] == "40P01"
    assert logged["error_class"] == "DeadlockDetectedError"
    assert logged["level"] == "warning"
    [request] = [
        line
        for line in lines
        if line["event"] == "request" and line.get("request_id") == answer["request_id"]
    ]
    assert request["status"] == 503
    assert not [line for line in lines if line["event"] == "unhandled_error"]
    assert SECRET not in probe.stdout
    assert "Secret Street" not in probe.stdout


async def test_a_database_error_that_escapes_is_named_and_answered_503(
    db: asyncpg.Connection,
) -> None:
    """The last line of defence, for an error outside any request's unit of work: a
    deadlock is a 503 with Retry-After, a bug is still a 500."""
    deadlock = await _raised_by_the_server(db, "40P01")
    connection_lost = await _raised_by_the_server(db, "08006")

    def failing(error: Exception) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            raise error

        return app

    answers = {}
    for name, error in (
        ("deadlock", deadlock),
        ("lost", connection_lost),
        ("bug", ValueError("x")),
    ):
        transport = httpx.ASGITransport(app=UnexpectedErrorMiddleware(failing(error)))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            answers[name] = await client.get("/anything")
    assert answers["deadlock"].status_code == 503
    assert answers["deadlock"].json()["type"] == "urn:habeas:problem:database-busy"
    assert int(answers["deadlock"].headers["Retry-After"]) >= 1
    assert answers["lost"].status_code == 503
    assert answers["lost"].json()["type"] == "urn:habeas:problem:database-unavailable"
    assert answers["bug"].status_code == 500
    assert answers["bug"].json()["type"] == "urn:habeas:problem:internal-error"


def _raised(error: BaseException, during: BaseException | None = None) -> BaseException:
    try:
        try:
            if during is not None:
                raise during
        finally:
            raise error
    except BaseException as caught:
        return caught


async def test_only_the_drivers_network_errors_are_the_database(db: asyncpg.Connection) -> None:
    """A key file that went missing (FileNotFoundError), a timeout of our own, a bug while
    handling either, or one raised `from None` past a database error: bugs (500, logged
    with their traceback), not an outage. The same network errors raised by the driver
    when it cannot connect are one."""
    unreachable = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    try:
        with pytest.raises(ConnectionRefusedError) as refused:
            async with unreachable.connect() as connection:
                await connection.execute(text("SELECT 1"))
    finally:
        await unreachable.dispose()
    assert classify(refused.value) is DatabaseErrorKind.unavailable

    lost = await _raised_by_the_server(db, "08006")
    assert classify(_raised(ValueError("bug"), during=lost)) is DatabaseErrorKind.connection_lost
    assert classify(_raised(FileNotFoundError("data.json"))) is None
    assert classify(_raised(TimeoutError())) is None
    assert classify(_raised(KeyError("x"), during=TimeoutError())) is None
    disowned = _raised(ValueError("x"), during=lost)
    disowned.__suppress_context__ = True
    assert classify(disowned) is None

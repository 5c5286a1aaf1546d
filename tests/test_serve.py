"""`habeas serve` on its embedded PostgreSQL, for real, in a subprocess (issue 10): its API
connects as the application's role, not as the owner of the tables; and however it is
stopped, the database stops with it. A few seconds per start."""

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest

from app.core import embedded

STARTUP_SECONDS = 90
STOP_SECONDS = 30


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    """One data directory for every start (initdb runs once); outside pytest's own temporary
    tree, whose permissions a concurrent pytest resets under the database's feet."""
    path = Path(tempfile.mkdtemp(prefix="habeas-serve-"))
    try:
        yield path
    finally:
        embedded.stop(embedded.embedded_pgdata(path))
        shutil.rmtree(path, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def serve_env(data_dir: Path) -> dict[str, str]:
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("HABEAS_") and name != "DATABASE_URL"
    }
    return {
        **inherited,
        "HABEAS_DATA_DIR": str(data_dir),
        "HABEAS_ENV": "development",
        "HABEAS_LOG_LEVEL": "WARNING",
        # The first admin's password is hashed at start; cheaply here.
        "HABEAS_PASSWORD_TIME_COST": "1",
        "HABEAS_PASSWORD_MEMORY_KIB": "64",
    }


class Served:
    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process = process
        self.base_url = f"http://127.0.0.1:{port}"
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@contextmanager
def serving(data_dir: Path) -> Iterator[Served]:
    """`habeas serve` in its own session (signals reach only it), up and healthy; killed and
    its database stopped afterwards whatever happened."""
    port = free_port()
    log = data_dir / f"serve-{port}.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(  # noqa: S603 (our own command)
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            cwd=data_dir,  # no stray .env feeds the settings
            env=serve_env(data_dir),
            # The first start prints the first admin's secrets: not kept.
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    served = Served(process, port, log)
    try:
        wait_until_healthy(served)
        yield served
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        embedded.stop(embedded.embedded_pgdata(data_dir))


def wait_until_healthy(served: Served) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            pytest.fail(f"serve exited with {served.process.returncode}:\n{served.output()}")
        try:
            if httpx.get(f"{served.base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"serve did not come up in {STARTUP_SECONDS} s:\n{served.output()}")


def postmaster(data_dir: Path) -> psutil.Process:
    info = embedded.PostmasterInfo.read_from_pgdata(embedded.embedded_pgdata(data_dir))
    assert info is not None
    assert info.is_running()
    assert info.process is not None
    process: psutil.Process = info.process
    return process


def assert_stopped_with_the_database(
    served: Served, data_dir: Path, database: psutil.Process
) -> None:
    served.process.wait(timeout=STOP_SECONDS)
    try:
        database.wait(timeout=STOP_SECONDS)
    except psutil.TimeoutExpired:
        pytest.fail(f"PostgreSQL still running after serve exited:\n{served.output()}")
    assert not (embedded.embedded_pgdata(data_dir) / "postmaster.pid").exists()


@pytest.mark.parametrize(
    "stop_signal",
    [signal.SIGTERM, signal.SIGINT, signal.SIGHUP],
    ids=["SIGTERM", "SIGINT (Ctrl-C)", "SIGHUP (terminal closed)"],
)
def test_serve_runs_the_api_as_its_role_and_every_way_of_stopping_it_stops_the_database(
    data_dir: Path, stop_signal: signal.Signals
) -> None:
    with serving(data_dir) as served:
        ready = httpx.get(f"{served.base_url}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        users, owner = asyncio.run(api_users_and_owner(data_dir))
        assert users == {"habeas_app"}
        assert owner == "postgres"

        database = postmaster(data_dir)
        served.process.send_signal(stop_signal)
        assert_stopped_with_the_database(served, data_dir, database)


def test_a_serve_killed_outright_does_not_keep_the_next_ones_database_alive(
    data_dir: Path,
) -> None:
    with serving(data_dir) as killed:
        left_running = postmaster(data_dir)
        killed.process.kill()
        killed.process.wait()
        # Nothing can stop it on SIGKILL; the next start joins it, and stops it at the end.
        assert left_running.is_running()
        with serving(data_dir) as served:
            assert postmaster(data_dir).pid == left_running.pid
            served.process.send_signal(signal.SIGTERM)
            assert_stopped_with_the_database(served, data_dir, left_running)


async def api_users_and_owner(data_dir: Path) -> tuple[set[str], str]:
    """Who the API's pool is connected as, and who owns the audit trail."""
    info = embedded.PostmasterInfo.read_from_pgdata(embedded.embedded_pgdata(data_dir))
    assert info is not None
    admin_url = info.get_uri(database="habeas")
    connection = await asyncpg.connect(**embedded.asyncpg_connect_kwargs(admin_url))
    try:
        rows = await connection.fetch(
            "SELECT usename FROM pg_stat_activity"
            " WHERE application_name = 'habeas' AND datname = 'habeas'"
        )
        owner = await connection.fetchval(
            "SELECT tableowner FROM pg_tables WHERE tablename = 'audit_event'"
        )
        return {row["usename"] for row in rows}, owner
    finally:
        await connection.close()

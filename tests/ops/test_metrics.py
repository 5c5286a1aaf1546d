"""/metrics for the operator's Prometheus (issue 11): behind a bearer token from a file,
absent without one; requests counted by their route's template (never a raw path or an
id), the pool, sign-in failures and throttles, audit append latency; and, with several
worker processes, one sum over all of them whichever worker answers the scrape."""

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from fastapi import FastAPI

from app.access.principal import Role
from app.core.config import InvalidSetting
from app.main import create_app
from tests.auth import api_client, create_account, log_in
from tests.conftest import PROJECT_ROOT, TEST_KEYS_DIR, settings_for
from tests.factories import API, create_case, person_body
from tests.ops.metrics import samples, scrape, value, write_token

UUID_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture(scope="module")
def token_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="habeas-metrics-test-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def metrics_token(token_dir: Path) -> tuple[Path, str]:
    return write_token(token_dir)


@pytest.fixture(scope="module")
async def metrics_app(database_url: str, metrics_token: tuple[Path, str]) -> AsyncIterator[FastAPI]:
    """The API with /metrics on: the same database and keys as the other tests' app."""
    application = create_app(settings_for(database_url, metrics_token_file=metrics_token[0]))
    async with application.router.lifespan_context(application):
        yield application


async def test_without_a_token_file_metrics_is_not_served(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/metrics")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_metrics_refuses_a_missing_or_wrong_token(
    metrics_app: FastAPI, metrics_token: tuple[Path, str], clean_tables: None
) -> None:
    _, token = metrics_token
    account = await create_account(metrics_app, Role.admin)
    async with api_client(metrics_app) as client:
        access_token = (await log_in(client, account))["access_token"]
        wrong = token[:-1] + ("a" if token[-1] != "a" else "b")
        for headers in (
            {},
            {"Authorization": f"Bearer {wrong}"},
            {"Authorization": f"Bearer {token}x"},
            {"Authorization": f"Basic {token}"},
            {"Authorization": token},
            # An admin's access token is for the API, not for the metrics.
            {"Authorization": f"Bearer {access_token}"},
        ):
            response = await client.get("/metrics", headers=headers)
            assert response.status_code == 401, headers
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json()["status"] == 401
            assert "habeas_" not in response.text
        right = await client.get("/metrics", headers={"Authorization": f"bearer {token}"})
    assert right.status_code == 200
    assert "habeas_http_requests_total" in right.text


async def test_metrics_is_not_in_the_published_contract(metrics_app: FastAPI) -> None:
    assert "/metrics" not in metrics_app.openapi()["paths"]


def test_a_token_file_that_cannot_serve_stops_the_start(database_url: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        short = Path(directory) / "short"
        short.write_text("too-short")
        for path in (short, Path(directory) / "missing"):
            with pytest.raises(InvalidSetting, match="HABEAS_METRICS_TOKEN_FILE"):
                create_app(settings_for(database_url, metrics_token_file=path))


async def test_requests_are_counted_by_route_template_method_and_status(
    metrics_app: FastAPI, metrics_token: tuple[Path, str], clean_tables: None
) -> None:
    _, token = metrics_token
    account = await create_account(metrics_app, Role.coordinator)
    async with api_client(metrics_app) as client:
        tokens = await log_in(client, account)
        client.headers["Authorization"] = f"Bearer {tokens['access_token']}"
        case = await create_case(client)
        template = "/api/v1/cases/{case_id}"
        before = await scrape(metrics_app, token)
        assert (await client.get(f"{API}/cases/{case['id']}")).status_code == 200
        assert (await client.get(f"{API}/cases/{case['id']}")).status_code == 200
        missing = uuid.uuid4()
        assert (await client.get(f"{API}/cases/{missing}")).status_code == 404
        assert (await client.delete(f"{API}/cases/{case['id']}")).status_code == 405
        assert (await client.get(f"/no/such/path/{missing}")).status_code == 404
        after = await scrape(metrics_app, token)

    def increase(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "habeas_http_requests_total"
    assert increase(requests, route=template, method="GET", status="200") == 2
    assert increase(requests, route=template, method="GET", status="404") == 1
    assert increase(requests, route=template, method="DELETE", status="405") == 1
    assert increase(requests, route="unmatched", method="GET", status="404") == 1
    # The scrape before this one is counted too, under its own route.
    assert increase(requests, route="/metrics", method="GET", status="200") == 1
    latency = "habeas_http_request_duration_seconds_count"
    assert increase(latency, route=template, method="GET") == 3
    assert value(after, "habeas_http_request_duration_seconds_sum", route=template, method="GET")
    # Ids, names and raw paths never become label values.
    for _, labels, _ in samples(after):
        for label in labels.values():
            assert not UUID_PATTERN.search(label), labels
            assert account.username not in label
    # Every route label is the template of a route that exists, or "unmatched".
    routes = {labels["route"] for name, labels, _ in samples(after) if name == requests}
    templates = set(metrics_app.openapi()["paths"]) | {"/metrics", "unmatched"}
    assert template in routes
    assert routes <= templates, routes - templates


async def test_pool_gauges_are_published(
    metrics_app: FastAPI, metrics_token: tuple[Path, str]
) -> None:
    _, token = metrics_token
    async with api_client(metrics_app) as client:
        assert (await client.get("/readyz")).status_code == 200
        # A connection held while the scrape runs is counted as in use.
        async with metrics_app.state.engine.connect():
            held = await scrape(metrics_app, token)
    released = await scrape(metrics_app, token)
    settings = metrics_app.state.settings
    assert value(held, "habeas_db_pool_size") == settings.pool_size
    assert value(held, "habeas_db_pool_max_overflow") == settings.pool_max_overflow
    assert value(held, "habeas_db_pool_connections_in_use") >= 1
    assert (
        value(released, "habeas_db_pool_connections_in_use")
        == value(held, "habeas_db_pool_connections_in_use") - 1
    )
    assert value(released, "habeas_db_pool_connections_idle") >= 1
    assert value(released, "habeas_db_pool_overflow") == 0
    assert value(released, "habeas_db_pool_waiting") == 0


async def test_an_exhausted_pool_counts_the_wait_and_the_timeout(
    database_url: str, metrics_token: tuple[Path, str]
) -> None:
    path, token = metrics_token
    tiny = create_app(
        settings_for(
            database_url,
            metrics_token_file=path,
            pool_size=1,
            pool_max_overflow=0,
            pool_timeout_seconds=0.5,
            # Nothing else takes the one connection.
            housekeeping_interval_seconds=0,
        )
    )
    async with tiny.router.lifespan_context(tiny), api_client(tiny) as client:
        before = await scrape(tiny, token)
        async with tiny.state.engine.connect():
            # The only connection is taken: a request that needs one waits, then gives up.
            started = time.monotonic()
            waiting = asyncio.create_task(client.get(f"{API}/cases/{uuid.uuid4()}"))
            await asyncio.sleep(0.1)
            during = await scrape(tiny, token)
            response = await waiting
            elapsed = time.monotonic() - started
        after = await scrape(tiny, token)
    assert response.status_code == 503
    # Once: giving up does not wait for a connection a second time to clean up.
    assert elapsed < 0.95
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["Retry-After"]) >= 1
    assert value(during, "habeas_db_pool_waiting") == 1
    assert value(after, "habeas_db_pool_waiting") == 0
    # A scrape does not queue for a connection behind the requests (its wait would count
    # as theirs): the figures it reads from the database wait for the next scrape.
    assert "habeas_jobs_queued" not in during
    assert "habeas_jobs_queued" in after
    for name, labels in (
        ("habeas_db_pool_checkout_timeouts_total", {}),
        ("habeas_db_pool_checkout_wait_seconds_count", {}),
        ("habeas_database_errors_total", {"kind": "pool_timeout"}),
    ):
        assert value(after, name, **labels) - value(before, name, **labels) == 1, name
    waited = value(after, "habeas_db_pool_checkout_wait_seconds_sum") - value(
        before, "habeas_db_pool_checkout_wait_seconds_sum"
    )
    assert 0.45 <= waited < 0.95


async def test_failed_and_throttled_sign_ins_are_counted_without_names(
    metrics_app: FastAPI, metrics_token: tuple[Path, str], clean_tables: None
) -> None:
    _, token = metrics_token
    account = await create_account(metrics_app, Role.caseworker)
    settings = metrics_app.state.settings
    before = await scrape(metrics_app, token)
    async with api_client(metrics_app) as client:
        answers = []
        for _ in range(settings.login_max_failures_per_account_and_address + 1):
            response = await client.post(
                f"{API}/auth/login",
                json={"username": account.username, "password": "not-the-password", "code": "0"},
            )
            answers.append(response.status_code)
    after = await scrape(metrics_app, token)
    failures = settings.login_max_failures_per_account_and_address
    assert answers == [401] * failures + [429]
    failed = "habeas_sign_in_failures_total"
    throttled = "habeas_sign_in_throttled_total"
    assert value(after, failed, flow="user") - value(before, failed, flow="user") == failures
    assert value(after, throttled, flow="user") - value(before, throttled, flow="user") == 1
    assert account.username not in after
    assert "127.0.0.1" not in after


async def test_audit_appends_are_timed(
    metrics_app: FastAPI, metrics_token: tuple[Path, str], clean_tables: None
) -> None:
    _, token = metrics_token
    account = await create_account(metrics_app, Role.coordinator)
    async with api_client(metrics_app) as client:
        tokens = await log_in(client, account)
        client.headers["Authorization"] = f"Bearer {tokens['access_token']}"
        before = await scrape(metrics_app, token)
        created = await client.post(f"{API}/persons", json=person_body())
        assert created.status_code == 201
        after = await scrape(metrics_app, token)
    count = "habeas_audit_append_seconds_count"
    assert value(after, count, kind="write") - value(before, count, kind="write") == 1
    spent = value(after, "habeas_audit_append_seconds_sum", kind="write") - value(
        before, "habeas_audit_append_seconds_sum", kind="write"
    )
    assert 0 < spent < 5


async def test_scrape_hooks_add_figures_read_at_scrape_time(
    metrics_app: FastAPI, metrics_token: tuple[Path, str]
) -> None:
    """Where figures kept in the database (a job queue's depth) go: a hook that queries at
    scrape time; one that fails leaves the rest of the scrape whole."""
    from prometheus_client.core import GaugeMetricFamily
    from sqlalchemy import text

    async def backends(engine: object) -> list[GaugeMetricFamily]:
        async with metrics_app.state.engine.connect() as connection:
            count = await connection.scalar(text("SELECT count(*) FROM pg_stat_activity"))
        return [GaugeMetricFamily("habeas_test_backends", "Backends.", value=count)]

    async def broken(engine: object) -> list[GaugeMetricFamily]:
        raise RuntimeError("the database is away")

    _, token = metrics_token
    metrics_app.state.scrape_hooks.extend([broken, backends])
    try:
        exposition = await scrape(metrics_app, token)
        async with api_client(metrics_app) as client:
            # Prometheus may ask for OpenMetrics: one document, hooks' families included.
            openmetrics = await client.get(
                "/metrics",
                headers={
                    "Authorization": f"Bearer {token}",
                    "Accept": "application/openmetrics-text; version=1.0.0",
                },
            )
    finally:
        del metrics_app.state.scrape_hooks[-2:]
    assert value(exposition, "habeas_test_backends") >= 1
    assert "habeas_http_requests_total" in exposition
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.endswith("# EOF\n")
    assert openmetrics.text.count("# EOF") == 1
    assert "habeas_test_backends" in openmetrics.text


# Several worker processes -----------------------------------------------------------------

STARTUP_SECONDS = 90
SERVE = [sys.executable, "-m", "app.cli", "serve"]


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _scrape_served(base_url: str, token: str) -> str:
    response = httpx.get(
        f"{base_url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    assert response.status_code == 200, response.text
    return response.text


def _until(predicate: object, what: str, seconds: float = STARTUP_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if predicate():  # type: ignore[operator]
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def test_several_workers_answer_one_sum_whichever_answers(
    database_url: str, metrics_token: tuple[Path, str], token_dir: Path
) -> None:
    """`habeas serve --workers 2`: every scrape shows every request, whichever worker
    served it and whichever answers the scrape; the pool gauges add up the live workers,
    and a worker killed outright stops counting in them (its requests still count)."""
    path, token = metrics_token
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    pool_size = 3
    # The operator's directory (else `serve` makes a temporary one): a previous run's files
    # are removed at the start, or their counts would be added to this run's.
    shared = token_dir / "multiprocess"
    shared.mkdir()
    stale = shared / "counter_999999.db"
    stale.write_bytes(b"stale")
    env = {
        **{
            name: value
            for name, value in os.environ.items()
            if not name.startswith("HABEAS_") and name != "PROMETHEUS_MULTIPROC_DIR"
        },
        "DATABASE_URL": database_url,
        "HABEAS_ENV": "test",
        "HABEAS_DATA_DIR": str(TEST_KEYS_DIR),
        # uvicorn's own lines (a worker died) are logged at info, as JSON like ours.
        "HABEAS_LOG_LEVEL": "INFO",
        "HABEAS_LOG_JSON": "true",
        "HABEAS_POOL_SIZE": str(pool_size),
        "HABEAS_METRICS_TOKEN_FILE": str(path),
        "HABEAS_HOUSEKEEPING_INTERVAL_SECONDS": "0",
        "PROMETHEUS_MULTIPROC_DIR": str(shared),
    }
    log = token_dir / "serve.log"
    with log.open("wb") as output:
        server = subprocess.Popen(  # noqa: S603 (our own command)
            [*SERVE, "--port", str(port), "--workers", "2", "--no-migrate"],
            cwd=token_dir,
            env={**env, "PYTHONPATH": str(PROJECT_ROOT)},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def pool_of_both_workers() -> bool:
            return value(_scrape_served(base_url, token), "habeas_db_pool_size") == 2 * pool_size

        _until(pool_of_both_workers, "both workers' pools")
        assert len(_workers(server.pid)) == 2
        assert not stale.exists()

        with httpx.Client(base_url=base_url, timeout=10) as client:
            # New connections, so that the kernel spreads them over the workers.
            for _ in range(30):
                assert client.get("/healthz", headers={"Connection": "close"}).status_code == 200
        healthz = {"route": "/healthz", "method": "GET", "status": "200"}
        for _ in range(8):
            exposition = _scrape_served(base_url, token)
            assert value(exposition, "habeas_http_requests_total", **healthz) == 30
            assert value(exposition, "habeas_db_pool_size") == 2 * pool_size

        # One worker killed outright: uvicorn starts another, and the dead one's pool no
        # longer counts (else the pool would read 3 workers' worth).
        first = {worker.pid for worker in _workers(server.pid)}
        victim = _workers(server.pid)[0]
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)

        def replacement_has_its_pool() -> bool:
            new = [worker.pid for worker in _workers(server.pid) if worker.pid not in first]
            return bool(new) and _published_pool_size(shared, new[0]) == pool_size

        _until(replacement_has_its_pool, "a new worker in place of the killed one")
        exposition = _scrape_served(base_url, token)
        assert value(exposition, "habeas_db_pool_size") == 2 * pool_size
        assert value(exposition, "habeas_http_requests_total", **healthz) == 30
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    # Every line of the parent and its workers is JSON, uvicorn's included (app/core/logging.py).
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    uvicorn = {line["event"] for line in lines if str(line.get("logger")).startswith("uvicorn")}
    assert f"Child process [{victim.pid}] died" in uvicorn, uvicorn
    assert any(event.startswith("Started server process") for event in uvicorn), uvicorn


def _published_pool_size(directory: Path, pid: int) -> float:
    """What one worker process has published as its pool's size (0: nothing yet)."""
    from prometheus_client.multiprocess import MultiProcessCollector

    path = directory / f"gauge_livesum_{pid}.db"
    if not path.exists():
        return 0.0
    for metric in MultiProcessCollector.merge([str(path)], accumulate=False):  # type: ignore[no-untyped-call]
        if metric.name == "habeas_db_pool_size":
            return float(sum(sample.value for sample in metric.samples))
    return 0.0


def _workers(server_pid: int) -> list[psutil.Process]:
    """uvicorn's worker processes (not the spawn machinery's resource tracker)."""
    workers = []
    for child in psutil.Process(server_pid).children():
        try:
            command = " ".join(child.cmdline())
        except psutil.NoSuchProcess:
            continue
        if "spawn_main" in command and "resource_tracker" not in command:
            workers.append(child)
    return workers

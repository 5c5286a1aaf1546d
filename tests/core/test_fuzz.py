"""Schemathesis against the real server: whatever the schema allows a client to send, the
answer is never a server error."""

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pyotp
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.conftest import TEST_KEYS_DIR

FUZZ_EXAMPLES = int(os.environ.get("HABEAS_FUZZ_EXAMPLES", "25"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def live_server(database_url: str) -> Iterator[str]:
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "HABEAS_LOG_LEVEL": "WARNING",
        "HABEAS_DATA_DIR": str(TEST_KEYS_DIR),
    }
    process = subprocess.Popen(  # noqa: S603 (our own CLI)
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--no-migrate"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base_url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise RuntimeError("the server did not start")
        yield base_url, _coordinator_token(base_url, env)
    finally:
        process.terminate()
        process.wait(timeout=15)


def _coordinator_token(base_url: str, env: dict[str, str]) -> str:
    """A coordinator made with the real CLI, enrolled through the real endpoints, its role
    approved on the CLI, and signed in."""
    username = f"fuzz-{os.getpid()}"
    password = "fuzzing-password-long-enough"

    def habeas(*args: str) -> dict[str, str]:
        done = subprocess.run(  # noqa: S603 (our own CLI)
            [sys.executable, "-m", "app.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        printed: dict[str, str] = json.loads(done.stdout)
        return printed

    code = habeas("users", "add", username, "--role", "coordinator")["enrolment_code"]
    started = httpx.post(
        f"{base_url}/api/v1/auth/enrolment",
        json={"enrolment_code": code, "password": password},
    )
    started.raise_for_status()
    totp = pyotp.TOTP(started.json()["totp_secret"])
    httpx.post(
        f"{base_url}/api/v1/auth/enrolment/confirmation",
        json={"enrolment_code": code, "code": totp.now()},
    ).raise_for_status()
    # Approved once enrolled (an approval vouches for whoever enrolled).
    habeas("users", "approve", username)
    response = httpx.post(
        f"{base_url}/api/v1/auth/login",
        # The next step's code: the current one confirmed the enrolment.
        json={"username": username, "password": password, "code": totp.at(time.time() + 30)},
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_causes_a_server_error(live_server: tuple[str, str], mode: GenerationMode) -> None:
    """Valid inputs (positive) and inputs that break the schema (negative), for every
    operation, as a signed-in coordinator: never a 5xx, and every refusal is problem+json
    (the token endpoint answers in OAuth's own error format, RFC 6749 §5.2)."""
    base_url, token = live_server
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=FUZZ_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            response = case.call(headers={"Authorization": f"Bearer {token}"})
            oauth_error = case.path == "/api/v1/auth/token" and response.headers.get(
                "content-type"
            ) == ["application/json"]
            if response.status_code >= 500 or (
                response.status_code >= 400
                and response.headers.get("content-type") != ["application/problem+json"]
                and not oauth_error
            ):
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code} "
                    f"{response.headers.get('content-type')}: "
                    f"{response.text[:300]}"
                )

        try:
            check()
        except Unsatisfiable:
            # An operation without inputs (e.g. /healthz) has no invalid form to send.
            assert mode is GenerationMode.NEGATIVE
    assert failures == []

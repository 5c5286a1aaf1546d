"""The published contract, checked the way a generated client meets it: Schemathesis with
every check (status codes, content types, headers and bodies as documented, valid input
accepted, invalid input refused, required headers, 405 with Allow, authentication
enforced, stateful sequences along the OpenAPI links), against the real server on the
test database, once for each role with a real signed-in user.

Bounded for CI: `HABEAS_CONTRACT_EXAMPLES` examples per operation (20), a fixed seed
(`HABEAS_CONTRACT_SEED`) so that a run can be repeated, `HABEAS_CONTRACT_ROLES` to choose
the roles (all by default). Each role's run is kept as a JUnit report in
`HABEAS_CONTRACT_REPORT_DIR` (default `.data/contract-reports/`).
"""

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyotp
import pytest

from tests.conftest import TEST_KEYS_DIR

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("schemathesis.toml")
ROLES = ("coordinator", "caseworker", "analyst", "auditor", "admin")
EXAMPLES = os.environ.get("HABEAS_CONTRACT_EXAMPLES", "20")
SEED = os.environ.get("HABEAS_CONTRACT_SEED", "20261129")
REPORTS = Path(os.environ.get("HABEAS_CONTRACT_REPORT_DIR", ROOT / ".data" / "contract-reports"))
# Signing out ends the session that every other operation's run relies on: it is
# checked in a run of its own, with a session of its own.
SIGN_OUT = "/api/v1/auth/logout"


def _selected_roles() -> list[str]:
    chosen = os.environ.get("HABEAS_CONTRACT_ROLES")
    if not chosen:
        return list(ROLES)
    return [role.strip() for role in chosen.split(",") if role.strip() in ROLES]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    def __init__(self, base_url: str, env: dict[str, str]) -> None:
        self.base_url = base_url
        self.env = env

    def habeas(self, *args: str, check: bool = True) -> dict[str, str]:
        done = subprocess.run(  # noqa: S603 (our own CLI)
            [sys.executable, "-m", "app.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=check,
        )
        printed: dict[str, str] = json.loads(done.stdout) if done.returncode == 0 else {}
        return printed

    def signed_in(self, role: str, name: str) -> str:
        """A user made with the real CLI, enrolled through the real endpoints, approved
        when the role needs it, and signed in: their access token."""
        username = f"contract-{name}-{os.getpid()}"
        password = "contract-password-long-enough"
        code = self.habeas("users", "add", username, "--role", role)["enrolment_code"]
        started = httpx.post(
            f"{self.base_url}/api/v1/auth/enrolment",
            json={"enrolment_code": code, "password": password},
        )
        started.raise_for_status()
        totp = pyotp.TOTP(started.json()["totp_secret"])
        httpx.post(
            f"{self.base_url}/api/v1/auth/enrolment/confirmation",
            json={"enrolment_code": code, "code": totp.now()},
        ).raise_for_status()
        # Roles that read case content or administer wait for a second person; the
        # auditor's does not, and its approval is refused.
        self.habeas("users", "approve", username, check=False)
        response = httpx.post(
            f"{self.base_url}/api/v1/auth/login",
            # The next step's code: the current one confirmed the enrolment.
            json={"username": username, "password": password, "code": totp.at(time.time() + 30)},
        )
        response.raise_for_status()
        return str(response.json()["access_token"])


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[Server]:
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
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base_url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError("the server did not start")
        yield Server(base_url, env)
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.fixture(scope="module")
def tokens(server: Server) -> dict[str, str]:
    """Every session is opened before any run: a run fuzzes the sign-in and enrolment
    endpoints from this address, which then throttles them."""
    made = {role: server.signed_in(role, role) for role in _selected_roles()}
    made["sign-out"] = server.signed_in("analyst", "sign-out")
    return made


def _schemathesis(server: Server, token: str, report: str, *selection: str) -> None:
    REPORTS.mkdir(parents=True, exist_ok=True)
    command = [
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(CONFIG),
        "--no-color",
        "run",
        f"{server.base_url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        EXAMPLES,
        "--seed",
        SEED,
        "--report",
        "junit",
        "--report-junit-path",
        str(REPORTS / f"{report}.xml"),
        *selection,
    ]
    done = subprocess.run(  # noqa: S603 (the test dependency's own CLI)
        command,
        cwd=ROOT,
        env={
            **os.environ,
            "SCHEMATHESIS_HOOKS": "tests.contract.hooks",
            "HABEAS_CONTRACT_TOKEN": token,
        },
        capture_output=True,
        text=True,
        timeout=900,
    )
    summary = done.stdout[-20_000:]
    assert done.returncode == 0, f"schemathesis as {report} found failures:\n{summary}"
    # Something was tested: a selection that matched nothing would pass as well.
    assert " passed" in summary, summary


@pytest.mark.parametrize("role", _selected_roles())
def test_the_contract_holds_for_every_role(
    server: Server, tokens: dict[str, str], role: str
) -> None:
    _schemathesis(server, tokens[role], role, "--exclude-path", SIGN_OUT)


def test_the_contract_holds_for_signing_out(server: Server, tokens: dict[str, str]) -> None:
    # One operation has no links to follow: no stateful phase.
    _schemathesis(
        server,
        tokens["sign-out"],
        "sign-out",
        "--include-path",
        SIGN_OUT,
        "--phases",
        "examples,coverage,fuzzing",
    )

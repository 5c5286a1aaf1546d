"""`habeas users add` and the refusals of the command line, run as an operator runs them."""

import json
import uuid
from pathlib import Path

import httpx
import pyotp
import pytest
from fastapi import FastAPI

from app.access.principal import Role
from tests.auth import (
    Account,
    SignInAs,
    cli_env,
    log_in,
    probe,
    run_cli,
    unverified,
)
from tests.conftest import TEST_KEYS_DIR

API = "/api/v1"
VERSION_1 = {"If-Match": '"1"'}


async def test_the_cli_creates_a_user_who_enrols_and_signs_in(
    app: FastAPI,
    sign_in_as: SignInAs,
    anonymous: httpx.AsyncClient,
    database_url: str,
    tmp_path: Path,
) -> None:
    env = cli_env(DATABASE_URL=database_url, HABEAS_DATA_DIR=str(TEST_KEYS_DIR))
    done = await run_cli(["users", "add", "cli.worker", "--role", "caseworker"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout.strip().splitlines()[-1])
    # An enrolment code for the person; no password is asked for, no TOTP secret shown.
    assert printed.keys() == {
        "id",
        "username",
        "role",
        "pending_role",
        "enrolment_code",
        "enrolment_expires_at",
    }
    assert printed["role"] is None and printed["pending_role"] == "caseworker"

    password = "cli made password, 123"
    started = await anonymous.post(
        f"{API}/auth/enrolment",
        json={"enrolment_code": printed["enrolment_code"], "password": password},
    )
    assert started.status_code == 200, started.text
    secret = started.json()["totp_secret"]
    confirmed = await anonymous.post(
        f"{API}/auth/enrolment/confirmation",
        json={"enrolment_code": printed["enrolment_code"], "code": pyotp.TOTP(secret).now()},
    )
    assert confirmed.status_code == 204, confirmed.text
    # The system asked for the role; a coordinator approves it.
    coordinator = (await sign_in_as(Role.coordinator)).client
    requests = (await coordinator.get(f"{API}/role-requests")).json()["items"]
    assert [(r["username"], r["requested_by"]) for r in requests] == [("cli.worker", None)]
    approval = await coordinator.post(
        f"{API}/role-requests/{requests[0]['id']}/approval", headers=VERSION_1
    )
    assert approval.status_code == 200, approval.text
    account = Account(uuid.UUID(printed["id"]), "cli.worker", password, secret, Role.caseworker)
    tokens = await log_in(anonymous, account, 1)
    assert unverified(tokens["access_token"])[1]["sub"] == printed["id"]
    assert await probe(anonymous, tokens["access_token"]) == 200


@pytest.mark.parametrize(
    "args",
    [
        ["users", "add", "Sekret-Value-42!", "--role", "analyst"],
        ["users", "add", "fine.name", "--role", "Sekret-Value-42!"],
    ],
    ids=["username", "role"],
)
async def test_the_cli_never_prints_rejected_input_back(
    database_url: str, tmp_path: Path, args: list[str]
) -> None:
    """A refusal names the field and the reason only: the input could be a secret typed in
    the wrong place, and stderr ends up in terminals and logs."""
    env = cli_env(DATABASE_URL=database_url, HABEAS_DATA_DIR=str(TEST_KEYS_DIR))
    done = await run_cli(args, env, tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("Not created: ")
    assert ("username: " in done.stderr) or ("role: " in done.stderr)
    assert "Sekret" not in done.stderr + done.stdout


def test_validation_errors_are_shown_without_their_input() -> None:
    from pydantic import ValidationError

    from app.cli.common import validation_problems
    from app.identity.schemas import EnrolmentInput, PartnerCreate

    for model, data in (
        (EnrolmentInput, {"enrolment_code": "Sekret-code", "password": "Sekret-pw"}),
        (PartnerCreate, {"name": "Sekret partner", "scopes": ["Sekret:scope"]}),
    ):
        with pytest.raises(ValidationError) as raised:
            model.model_validate(data)
        assert "Sekret" in str(raised.value)  # what used to be printed
        shown = validation_problems(raised.value)
        assert "Sekret" not in shown
        assert ": " in shown


async def test_the_cli_refuses_production_without_configured_keys(tmp_path: Path) -> None:
    # A data directory holding development keys must not be picked up in production.
    env = cli_env(HABEAS_ENV="production", HABEAS_DATA_DIR=str(TEST_KEYS_DIR))
    done = await run_cli(["users", "add", "prod.user", "--role", "caseworker"], env, tmp_path)
    assert done.returncode != 0
    assert "Refusing to start" in done.stderr
    assert done.stdout == ""

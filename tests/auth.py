"""Accounts and sign-in for tests, through the real identity service and endpoints; reading
tokens and refusals; and the `habeas` command as an operator runs it."""

import asyncio
import base64
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyotp
from fastapi import FastAPI

from app.access.principal import Role
from app.audit.journal import as_system
from app.core.db import commit
from app.core.errors import EnrolmentFailed
from app.identity import partners
from app.identity import service as identity_service
from app.identity.passwords import problems_with
from app.identity.schemas import AgreementInput, PartnerCreate, UserCreate

BASE_URL = "http://habeas.test"


@dataclass
class Account:
    id: uuid.UUID
    username: str
    password: str
    totp_secret: str
    role: Role

    def code(self, steps_ahead: int = 0) -> str:
        return pyotp.TOTP(self.totp_secret).at(time.time() + 30 * steps_ahead)


@dataclass
class SignedIn:
    client: httpx.AsyncClient
    account: Account
    tokens: dict[str, Any]


class AuditedTransport(httpx.ASGITransport):
    """The app in process, as its clients reach it; once a response is in, the reads'
    audit events it queued are appended (app/audit/read_events.py), so that a test reads
    the trail as an auditor does some milliseconds later."""

    def __init__(self, app: FastAPI, **kwargs: Any) -> None:
        super().__init__(app=app, **kwargs)
        self._app = app

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        read_events = getattr(self._app.state, "read_events", None)
        if read_events is not None:
            await read_events.flush()
        return response


def api_client(app: FastAPI, **kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=AuditedTransport(app), base_url=BASE_URL, **kwargs)


async def create_account(app: FastAPI, role: Role, username: str | None = None) -> Account:
    """An account made the way a person gets one: created (by the system), enrolled with
    the code (a password of their own, then the TOTP confirmed), and its role approved by
    the system when it needs approval. One transaction."""
    username = username or f"{role.value}-{secrets.token_hex(3)}"
    password = _new_password(username)
    for attempt in (1, 2):
        try:
            return await _enrolled_account(app, role, username, password)
        except EnrolmentFailed:
            # The TOTP step turned over between making the code and checking it.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _new_password(username: str) -> str:
    password = secrets.token_urlsafe(16)
    while problems_with(password, username):  # a random password hardly ever breaks one
        password = secrets.token_urlsafe(16)
    return password


async def _enrol(session: Any, kit: Any, code: str, password: str) -> str:
    """Both steps of enrolment, as the person; their TOTP secret."""
    _, secret = await identity_service.start_enrolment(
        session, kit, code, password=password, address="test"
    )
    # The previous step's code confirms, so that a sign-in right after may use the current
    # one (each code is good once).
    earlier = pyotp.TOTP(secret).at(time.time() - 30)
    await identity_service.confirm_enrolment(
        session, kit, code, one_time_code=earlier, address="test", user_agent=None
    )
    return secret


async def _enrolled_account(app: FastAPI, role: Role, username: str, password: str) -> Account:
    kit = app.state.security
    async with app.state.session_factory() as session:
        as_system(session, kit.audit_keys)
        data = UserCreate(username=username, role=role)
        user, code = await identity_service.create_user(session, kit, data, requested_by=None)
        secret = await _enrol(session, kit, code.value, password)
        if role in kit.roles_needing_approval:
            request = await identity_service.pending_role_request_of(session, username)
            await identity_service.decide_role_request(
                session, request.id, request.version, approve=True, decider=None
            )
        await commit(session)
    return Account(user.id, username, password, secret, role)


@dataclass
class NewAccount:
    """An account as an admin just made it: not enrolled, with its enrolment code, and the
    request for its role if that needs approval."""

    id: uuid.UUID
    username: str
    enrolment_code: str
    role_request_id: uuid.UUID | None


async def new_account(app: FastAPI, role: Role) -> NewAccount:
    """Made by the system (so that any admin or coordinator may decide its role request)."""
    kit = app.state.security
    async with app.state.session_factory() as session:
        as_system(session, kit.audit_keys)
        data = UserCreate(username=f"new-{secrets.token_hex(3)}", role=role)
        user, code = await identity_service.create_user(session, kit, data, requested_by=None)
        pending = await identity_service.pending_roles(session, [user])
        request = (
            await identity_service.pending_role_request_of(session, user.username)
            if pending
            else None
        )
        await commit(session)
    return NewAccount(user.id, user.username, code.value, request.id if request else None)


async def enrolled_awaiting_approval(app: FastAPI, role: Role) -> NewAccount:
    """A new account (made by the system) that its person has enrolled, its role waiting
    for approval: a role is approved only once the account is enrolled."""
    created = await new_account(app, role)
    kit = app.state.security
    for attempt in (1, 2):
        try:
            async with app.state.session_factory() as session:
                as_system(session, kit.audit_keys)
                password = _new_password(created.username)
                await _enrol(session, kit, created.enrolment_code, password)
                await commit(session)
            return created
        except EnrolmentFailed:
            # The TOTP step turned over between making the code and checking it.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def log_in(client: httpx.AsyncClient, account: Account, steps_ahead: int = 0) -> Any:
    response = await client.post(
        "/api/v1/auth/login",
        json={
            "username": account.username,
            "password": account.password,
            "code": account.code(steps_ahead),
        },
    )
    assert response.status_code == 200, response.text
    return response.json()


async def create_partner(
    app: FastAPI, agreement: dict[str, Any] | None = None, **fields: Any
) -> tuple[Any, str | None]:
    """A partner made by the system, as `habeas partners add` makes one: its sharing
    agreement (the narrowest when none is given) approved at once, at version 1."""
    data = PartnerCreate.model_validate(
        {"name": f"partner-{secrets.token_hex(3)}", "auth_method": "client_secret", **fields}
    )
    terms = AgreementInput.model_validate(agreement or {})
    async with app.state.session_factory() as session:
        as_system(session, app.state.security.audit_keys)
        partner, secret = await partners.create_partner(
            session, app.state.security, data, system_agreement=terms
        )
        await commit(session)
    return partner, secret


async def partner_token(
    client: httpx.AsyncClient, client_id: str, secret: str, scope: str | None = None
) -> str:
    form = {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
    response = await client.post("/api/v1/auth/token", data=form, auth=(client_id, secret))
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def while_an_uncommitted_insert_holds_the_name(
    db: Any, insert_sql: str, send: Any
) -> httpx.Response:
    """Send a create while another transaction has inserted the same unique name and not
    committed: the API's existence check cannot see it, so its own insert must wait on the
    unique index, and fail when the other transaction commits."""
    async with db.transaction():
        await db.execute(insert_sql, uuid.uuid4())
        request = asyncio.create_task(send())
        for _ in range(200):
            if await db.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted"):
                break
            await asyncio.sleep(0.02)
        else:
            request.cancel()
            raise AssertionError("the API's insert never waited on the other transaction")
    return await request


# Tokens and refusals --------------------------------------------------------------------------

PROBLEM = "urn:habeas:problem:"
# Any role but admin may list persons: the probe for "does this token work".
PROBE = "/api/v1/persons"

SignInAs = Callable[..., Awaitable[SignedIn]]


def decode_part(part: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a compact JWS, read without checking anything."""
    header, payload, _ = token.split(".")
    return decode_part(header), decode_part(payload)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def probe(client: httpx.AsyncClient, token: str) -> int:
    return (await client.get(PROBE, headers=bearer(token))).status_code


def login_body(account: Account, **overrides: str) -> dict[str, str]:
    return {
        "username": account.username,
        "password": account.password,
        "code": account.code(),
        **overrides,
    }


def wrong_code(account: Account) -> str:
    """A well-formed code that matches none of the steps the server accepts."""
    totp = pyotp.TOTP(account.totp_secret)
    accepted = {totp.at(time.time() + 30 * offset) for offset in (-2, -1, 0, 1, 2)}
    return next(c for c in (f"{n:06d}" for n in range(0, 10**6, 7919)) if c not in accepted)


def assert_problem(response: httpx.Response, status: int, slug: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == PROBLEM + slug


async def etag_of(admin: httpx.AsyncClient, user_id: object) -> str:
    response = await admin.get(f"/api/v1/users/{user_id}")
    assert response.status_code == 200, response.text
    return response.headers["etag"]


# The command line -------------------------------------------------------------------------------


def cli_env(**values: str) -> dict[str, str]:
    """The inherited environment without any Habeas settings, plus the given ones."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("HABEAS_") and name != "DATABASE_URL"
    }
    return {**inherited, **values}


async def run_cli(
    args: list[str], env: dict[str, str], cwd: Path, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    # cwd is an empty directory, so no stray .env file feeds the settings.
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )

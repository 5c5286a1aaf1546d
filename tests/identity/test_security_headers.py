"""Every answer, whatever its status, is uncacheable and carries the security headers."""

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI

from app.access.principal import Role
from tests.auth import (
    PROBE,
    SignInAs,
    create_account,
    login_body,
)

API = "/api/v1"
LOGIN = f"{API}/auth/login"
REFRESH = f"{API}/auth/refresh"
LOGOUT = f"{API}/auth/logout"
USERS = f"{API}/users"

SECURITY_HEADERS = {
    "cache-control": "no-store",
    "pragma": "no-cache",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-resource-policy": "same-origin",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
}


async def _signed_in_read(c: "Scenario") -> httpx.Response:
    return await (await c.sign_in_as(Role.coordinator)).client.get(PROBE)


async def _login(c: "Scenario") -> httpx.Response:
    account = await create_account(c.app, Role.caseworker)
    return await c.anonymous.post(LOGIN, json=login_body(account))


async def _refresh(c: "Scenario") -> httpx.Response:
    tokens = (await c.sign_in_as(Role.caseworker)).tokens
    return await c.anonymous.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})


async def _no_token(c: "Scenario") -> httpx.Response:
    return await c.anonymous.get(PROBE)


async def _failed_login(c: "Scenario") -> httpx.Response:
    return await c.anonymous.post(LOGIN, json={"username": "x", "password": "y", "code": "1"})


async def _forbidden(c: "Scenario") -> httpx.Response:
    return await (await c.sign_in_as(Role.coordinator)).client.get(USERS)


async def _not_found(c: "Scenario") -> httpx.Response:
    return await (await c.sign_in_as(Role.admin)).client.get(f"{USERS}/{uuid.uuid4()}")


async def _invalid(c: "Scenario") -> httpx.Response:
    return await c.anonymous.post(LOGIN, json={})


async def _throttled(c: "Scenario") -> httpx.Response:
    body = {"username": "x", "password": "y", "code": "123456"}
    for _ in range(5):
        await c.anonymous.post(LOGIN, json=body)
    return await c.anonymous.post(LOGIN, json=body)


async def _logout(c: "Scenario") -> httpx.Response:
    return await (await c.sign_in_as(Role.auditor)).client.post(LOGOUT)


@dataclass
class Scenario:
    app: FastAPI
    anonymous: httpx.AsyncClient
    sign_in_as: SignInAs


RESPONSES: dict[str, tuple[Callable[[Scenario], Awaitable[httpx.Response]], int]] = {
    "read": (_signed_in_read, 200),
    "login": (_login, 200),
    "refresh": (_refresh, 200),
    "logout": (_logout, 204),
    "no token": (_no_token, 401),
    "failed login": (_failed_login, 401),
    "forbidden": (_forbidden, 403),
    "not found": (_not_found, 404),
    "invalid body": (_invalid, 422),
    "throttled": (_throttled, 429),
}


@pytest.mark.parametrize(("make", "status"), RESPONSES.values(), ids=RESPONSES.keys())
async def test_every_answer_is_uncacheable_and_carries_the_security_headers(
    app: FastAPI,
    anonymous: httpx.AsyncClient,
    sign_in_as: SignInAs,
    make: Callable[[Scenario], Awaitable[httpx.Response]],
    status: int,
) -> None:
    response = await make(Scenario(app, anonymous, sign_in_as))
    assert response.status_code == status, response.text
    for name, value in SECURITY_HEADERS.items():
        # get_list: a header sent twice (e.g. two Cache-Control lines) would show here.
        assert response.headers.get_list(name) == [value], name
    assert response.headers["x-request-id"]

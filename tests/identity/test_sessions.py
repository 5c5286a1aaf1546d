"""Sessions after sign-in: refresh tokens rotate (a reused one ends the session), sign-out
ends a session at once, and so does any change to the account."""

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from app.access.principal import Role
from tests.auth import (
    PROBE,
    SignInAs,
    assert_problem,
    bearer,
    create_account,
    etag_of,
    log_in,
    login_body,
    probe,
    unverified,
)

API = "/api/v1"
LOGIN = f"{API}/auth/login"
REFRESH = f"{API}/auth/refresh"
LOGOUT = f"{API}/auth/logout"
USERS = f"{API}/users"

# Refresh-token rotation -----------------------------------------------------------------


async def test_refresh_rotates_and_a_reused_refresh_token_ends_the_session(
    app: FastAPI, anonymous: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    account = await create_account(app, Role.caseworker)
    first = await log_in(anonymous, account)

    rotated = await anonymous.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert (
        unverified(second["access_token"])[1]["sid"] == unverified(first["access_token"])[1]["sid"]
    )
    assert await probe(anonymous, second["access_token"]) == 200

    # Someone replays the spent refresh token: the whole family ends.
    reused = await anonymous.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    assert_problem(reused, 401, "session-revoked")
    assert reused.headers["www-authenticate"] == "Bearer"
    assert await db.fetchval("SELECT revoked_reason FROM user_session") == "refresh_token_reuse"

    later = await anonymous.post(REFRESH, json={"refresh_token": second["refresh_token"]})
    assert later.status_code == 401
    for tokens in (first, second):
        assert await probe(anonymous, tokens["access_token"]) == 401


async def test_an_unknown_refresh_token_is_refused(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.post(REFRESH, json={"refresh_token": "made-up"})
    assert_problem(response, 401, "unauthenticated")


# Sign-out -------------------------------------------------------------------------------


async def test_logout_ends_the_access_and_refresh_tokens_at_once(
    app: FastAPI, anonymous: httpx.AsyncClient
) -> None:
    account = await create_account(app, Role.caseworker)
    tokens = await log_in(anonymous, account)
    assert await probe(anonymous, tokens["access_token"]) == 200

    response = await anonymous.post(LOGOUT, headers=bearer(tokens["access_token"]))
    assert response.status_code == 204
    assert response.content == b""

    assert await probe(anonymous, tokens["access_token"]) == 401
    again = await anonymous.post(LOGOUT, headers=bearer(tokens["access_token"]))
    assert again.status_code == 401
    refreshed = await anonymous.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 401


async def test_logout_ends_only_its_own_session(app: FastAPI, anonymous: httpx.AsyncClient) -> None:
    account = await create_account(app, Role.caseworker)
    laptop = await log_in(anonymous, account)
    phone = await log_in(anonymous, account, steps_ahead=1)
    assert (await anonymous.post(LOGOUT, headers=bearer(laptop["access_token"]))).status_code == 204
    assert await probe(anonymous, laptop["access_token"]) == 401
    assert await probe(anonymous, phone["access_token"]) == 200


async def test_logout_needs_a_token(anonymous: httpx.AsyncClient) -> None:
    assert_problem(await anonymous.post(LOGOUT), 401, "unauthenticated")


# Account changes end the user's sessions ------------------------------------------------


@pytest.mark.parametrize(
    "change",
    # (auditor: a role granted at once; the others wait for approval, test_enrolment.py)
    [{"disabled": True}, {"role": "auditor"}],
    ids=["disable", "role"],
)
async def test_an_account_change_ends_the_users_tokens_at_once(
    sign_in_as: SignInAs, anonymous: httpx.AsyncClient, db: asyncpg.Connection, change: dict
) -> None:
    admin = (await sign_in_as(Role.admin)).client
    target = await sign_in_as(Role.caseworker)
    assert (await target.client.get(PROBE)).status_code == 200

    version = int((await etag_of(admin, target.account.id)).strip('"'))
    response = await admin.patch(
        f"{USERS}/{target.account.id}", json=change, headers={"If-Match": f'"{version}"'}
    )
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == f'"{version + 1}"'
    assert "password" not in response.json()

    assert_problem(await target.client.get(PROBE), 401, "unauthenticated")
    refresh_token = target.tokens["refresh_token"]
    assert (await anonymous.post(REFRESH, json={"refresh_token": refresh_token})).status_code == 401
    reason = "SELECT revoked_reason FROM user_session WHERE user_id = $1"
    assert await db.fetchval(reason, target.account.id) == "account_changed"

    # Signing in again: refused when disabled, with the new role otherwise. (A password is
    # never set by an admin: tests/identity/test_enrolment.py resets accounts.)
    account = target.account
    again = await anonymous.post(LOGIN, json=login_body(account, code=account.code(1)))
    if change.get("disabled"):
        assert_problem(again, 401, "sign-in-failed")
        return
    assert again.status_code == 200, again.text
    assert unverified(again.json()["access_token"])[1]["role"] == change.get("role", "caseworker")


async def test_re_enabling_a_user_does_not_revive_old_tokens(
    sign_in_as: SignInAs,
) -> None:
    admin = (await sign_in_as(Role.admin)).client
    target = await sign_in_as(Role.caseworker)
    for disabled in (True, False):
        changed = await admin.patch(
            f"{USERS}/{target.account.id}",
            json={"disabled": disabled},
            headers={"If-Match": await etag_of(admin, target.account.id)},
        )
        assert changed.status_code == 200, changed.text
    assert (await target.client.get(PROBE)).status_code == 401


async def test_a_disabled_users_token_is_refused_even_if_sessions_were_not_revoked(
    sign_in_as: SignInAs, db: asyncpg.Connection
) -> None:
    # Disabling straight in the database (no session revocation): the per-request check
    # of the account still refuses the token.
    target = await sign_in_as(Role.coordinator)
    await db.execute("UPDATE app_user SET disabled = true WHERE id = $1", target.account.id)
    assert await db.fetchval("SELECT count(*) FROM user_session WHERE revoked_at IS NULL") == 1
    assert_problem(await target.client.get(PROBE), 401, "unauthenticated")

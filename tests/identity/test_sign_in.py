"""Signing in: the token it issues, one answer for every way it fails, and one-time codes
that are good once. Against the real app and database."""

import json
import statistics
import time
import uuid

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import ECKey

from app.access.principal import Role
from tests.auth import (
    PROBLEM,
    api_client,
    assert_problem,
    create_account,
    log_in,
    login_body,
    probe,
    unverified,
    wrong_code,
)
from tests.conftest import separate_app

API = "/api/v1"
LOGIN = f"{API}/auth/login"

# The happy path -------------------------------------------------------------------------


async def test_sign_in_issues_an_es256_access_token_that_works(
    app: FastAPI, anonymous: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    account = await create_account(app, Role.coordinator)
    response = await anonymous.post(LOGIN, json=login_body(account))
    assert response.status_code == 200, response.text
    pair = response.json()
    assert set(pair) == {
        "access_token",
        "refresh_token",
        "expires_in",
        "refresh_expires_in",
        "token_type",
    }
    assert pair["token_type"] == "Bearer"
    assert 0 < pair["expires_in"] <= 15 * 60
    assert pair["refresh_expires_in"] > pair["expires_in"]

    header, claims = unverified(pair["access_token"])
    public_kids = {key["kid"] for key in app.state.security.tokens.keys.public_jwks()["keys"]}
    assert header["alg"] == "ES256"
    assert header["typ"] == "at+jwt"
    assert header["kid"] in public_kids
    settings = app.state.settings
    assert claims["iss"] == settings.token_issuer
    assert claims["aud"] == settings.token_audience
    assert claims["sub"] == str(account.id)
    assert claims["role"] == "coordinator"
    assert claims["jti"]
    now = time.time()
    assert now < claims["exp"] <= now + 15 * 60 + 5
    assert claims["exp"] - claims["iat"] == pair["expires_in"]
    # `sid` names the session row just written for this user.
    assert (
        await db.fetchval(
            "SELECT user_id FROM user_session WHERE id = $1", uuid.UUID(claims["sid"])
        )
        == account.id
    )
    # The signature verifies with the published public key.
    public = ECKey.import_key(app.state.security.tokens.keys.public_jwks()["keys"][0])
    assert jwt.decode(pair["access_token"], public, algorithms=["ES256"]).claims["sub"]

    assert await probe(anonymous, pair["access_token"]) == 200


# One answer for every way a sign-in fails -----------------------------------------------


async def test_every_failed_sign_in_gets_the_identical_answer(
    app: FastAPI, anonymous: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    account = await create_account(app, Role.caseworker)
    disabled = await create_account(app, Role.caseworker)
    await db.execute("UPDATE app_user SET disabled = true WHERE id = $1", disabled.id)
    # The code is spent by a successful sign-in first, so the "reused" attempt below
    # differs from a good one only in the code having been used.
    await log_in(anonymous, account)

    attempts = {
        "unknown user": login_body(account, username="nobody-at-all"),
        "wrong password": login_body(account, password="not-the-password"),
        "wrong code": login_body(account, code=wrong_code(account)),
        "reused code": login_body(account),
        "disabled account": login_body(disabled),
    }
    answers = {}
    for name, body in attempts.items():
        response = await anonymous.post(LOGIN, json=body)
        answers[name] = (
            response.status_code,
            response.headers["content-type"],
            response.content,
        )
    first = answers["unknown user"]
    assert first[0] == 401
    assert json.loads(first[2])["type"] == PROBLEM + "sign-in-failed"
    for name, answer in answers.items():
        assert answer == first, name


@pytest.mark.parametrize(
    "username",
    ["ad\u202emin", "nul\x00name", "zero\u200bwidth", "", "x" * 65, "Ünïcode"],
    ids=["bidi-override", "nul", "zero-width", "empty", "too-long", "not-ascii"],
)
async def test_a_name_that_cannot_be_a_username_fails_like_a_wrong_password(
    app: FastAPI, anonymous: httpx.AsyncClient, db: asyncpg.Connection, username: str
) -> None:
    """Not a 422: sign-in tells an attacker nothing a wrong password does not. The name is
    counted by the throttle like any unknown one, without its characters in the table."""
    account = await create_account(app, Role.caseworker)
    wrong = await anonymous.post(LOGIN, json=login_body(account, password="not-it"))
    odd = await anonymous.post(
        LOGIN,
        content=json.dumps(login_body(account, username=username)).encode(),
        headers={"content-type": "application/json"},
    )
    assert (odd.status_code, odd.headers["content-type"], odd.content) == (
        wrong.status_code,
        wrong.headers["content-type"],
        wrong.content,
    )
    keys = [row["key"] for row in await db.fetch("SELECT key FROM sign_in_throttle")]
    assert len(keys) == 5  # the pair, account and address of each attempt (address shared)
    assert all(key.isprintable() and username not in key for key in keys if username)


async def test_an_unknown_user_costs_as_much_as_a_wrong_password(
    database_url: str, clean_tables: None
) -> None:
    # The shared app hashes almost for free, which would hide a skipped hash. Here a
    # verification costs ~50 ms, so refusing an unknown user without hashing would be
    # several times faster than refusing a wrong password.
    async with separate_app(
        database_url, password_time_cost=2, password_memory_kib=32768
    ) as slow_app:
        account = await create_account(slow_app, Role.caseworker)
        async with api_client(slow_app) as client:

            async def timed(body: dict[str, str]) -> float:
                started = time.perf_counter()
                response = await client.post(LOGIN, json=body)
                elapsed = time.perf_counter() - started
                assert response.status_code == 401, response.text
                return elapsed

            # A warm-up, then interleaved tries (5 each, under both throttle limits; each
            # unknown name is new so no account throttle starts).
            await timed(login_body(account, username="warm-up-name"))
            unknown, wrong = [], []
            for attempt in range(4):
                unknown.append(await timed(login_body(account, username=f"ghost-{attempt}")))
                wrong.append(await timed(login_body(account, password="wrong-password")))
    fast, slow = sorted([statistics.median(unknown), statistics.median(wrong)])
    assert slow <= 3 * fast or slow - fast <= 0.020, (unknown, wrong)


# One-time codes are single-use ----------------------------------------------------------


async def test_a_used_code_is_refused_even_with_the_right_password(
    app: FastAPI, anonymous: httpx.AsyncClient
) -> None:
    account = await create_account(app, Role.caseworker)
    await log_in(anonymous, account)
    again = await anonymous.post(LOGIN, json=login_body(account))
    assert_problem(again, 401, "sign-in-failed")
    # The next step's code is fresh, and the one before it can no longer be used either.
    assert (await log_in(anonymous, account, steps_ahead=1))["access_token"]
    assert_problem(await anonymous.post(LOGIN, json=login_body(account)), 401, "sign-in-failed")

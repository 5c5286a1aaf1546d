"""Staff sign-in, sessions and access tokens, against the real app and database.

Every refusal is checked through the HTTP API; only set-up and the "what was written"
checks touch the database directly. Hand-made tokens copy the claims of a real one, so
that in each attack exactly one property is wrong.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pyotp
import pytest
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import ECKey

from app.access.principal import Role
from app.main import create_app
from app.ops.housekeeping import purge_expired
from tests.auth import (
    Account,
    SignedIn,
    api_client,
    create_account,
    create_partner,
    log_in,
    while_an_uncommitted_insert_holds_the_name,
)
from tests.conftest import TEST_KEYS_DIR, settings_for
from tests.identity.addresses import OWNER, client_at

# An address the account never signed in from.
NEW_PLACE = "198.51.100.77"

API = "/api/v1"
LOGIN = f"{API}/auth/login"
REFRESH = f"{API}/auth/refresh"
LOGOUT = f"{API}/auth/logout"
USERS = f"{API}/users"
# Any role but admin may list persons: the probe for "does this token work".
PROBE = f"{API}/persons"
PROBLEM = "urn:habeas:problem:"
ADDRESS = "127.0.0.1"  # httpx.ASGITransport's fixed client address
VERSION_1 = {"If-Match": '"1"'}

SignInAs = Callable[..., Awaitable[SignedIn]]


# Helpers ----------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: object) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def decode_part(part: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a compact JWS, read without checking anything."""
    header, payload, _ = token.split(".")
    return decode_part(header), decode_part(payload)


def hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    signing_input = f"{b64json(header)}.{b64json(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


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
    response = await admin.get(f"{USERS}/{user_id}")
    assert response.status_code == 200, response.text
    return response.headers["etag"]


@asynccontextmanager
async def separate_app(database_url: str, **overrides: object) -> AsyncIterator[FastAPI]:
    """A second app on the same test database, for settings the shared app does not have."""
    application = create_app(settings_for(database_url, **overrides))
    async with application.router.lifespan_context(application):
        yield application


# 1. The happy path -------------------------------------------------------------------------


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


# 2. One answer for every way a sign-in fails ----------------------------------------------


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


# 3. One-time codes are single-use ----------------------------------------------------------


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


# 4. Throttling ------------------------------------------------------------------------------


async def throttle_row(db: asyncpg.Connection, key: str) -> asyncpg.Record:
    row = await db.fetchrow(
        "SELECT failures, blocked_until FROM sign_in_throttle WHERE key = $1", key
    )
    assert row is not None, f"no failures recorded for {key}"
    return row


def pair_key(account: Account, address: str = ADDRESS) -> str:
    return f"account|address:{account.username}|{address}"


async def test_five_failures_block_the_account_from_that_address_even_with_the_right_credentials(
    app: FastAPI, anonymous: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    account = await create_account(app, Role.caseworker)
    other = await create_account(app, Role.caseworker)

    first = await anonymous.post(LOGIN, json=login_body(account, password="wrong"))
    assert_problem(first, 401, "sign-in-failed")
    # The refusal was an error response, yet the failure was committed.
    assert (await throttle_row(db, pair_key(account)))["failures"] == 1
    for _ in range(4):
        response = await anonymous.post(LOGIN, json=login_body(account, password="wrong"))
        assert_problem(response, 401, "sign-in-failed")
    row = await throttle_row(db, pair_key(account))
    assert row["failures"] == 5 and row["blocked_until"] is not None
    # The account-wide and the address's counts go on, far from their limits.
    for key in (f"account:{account.username}", f"address:{ADDRESS}"):
        row = await throttle_row(db, key)
        assert row["failures"] == 5 and row["blocked_until"] is None, key

    blocked = await anonymous.post(LOGIN, json=login_body(account))
    assert_problem(blocked, 429, "too-many-attempts")
    retry_after = int(blocked.headers["retry-after"])
    assert 0 < retry_after <= app.state.settings.login_block_seconds + 1
    # The block did not consume the code or sign anyone in.
    assert await db.fetchval("SELECT count(*) FROM user_session") == 0

    # Another account from the same address is not affected (the address allows 4x more).
    assert (await log_in(anonymous, other))["access_token"]


async def test_an_attacker_elsewhere_cannot_lock_the_owner_out(
    app: FastAPI, anonymous: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    account = await create_account(app, Role.caseworker)
    # 20 failures on the account, five from each of four addresses: each address is
    # blocked for this account, even when it then sends the right password and code.
    attackers = [f"203.0.113.{n}" for n in range(1, 5)]
    for address in attackers:
        async with client_at(app, address) as attacker:
            for _ in range(5):
                response = await attacker.post(LOGIN, json=login_body(account, password="x"))
                assert_problem(response, 401, "sign-in-failed")
            right = await attacker.post(LOGIN, json=login_body(account))
            assert_problem(right, 429, "too-many-attempts")

    async with client_at(app, OWNER) as owner:
        tokens = await log_in(owner, account)
        assert await probe(owner, tokens["access_token"]) == 200
    # The owner's success lifts no one else's block.
    async with client_at(app, attackers[0]) as attacker:
        again = await attacker.post(LOGIN, json=login_body(account, code=account.code(1)))
        assert_problem(again, 429, "too-many-attempts")
    assert (await throttle_row(db, pair_key(account, attackers[0])))["blocked_until"] is not None


async def test_guessing_spread_over_many_addresses_is_bounded_for_the_account(
    app: FastAPI, anonymous: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """The review's attack: ten addresses fail five times each, then one failure per block
    (timed by Retry-After) keeps the account blocked for ever. Guessing stays at one try
    per block; the owner, from where they signed in before, is not held back."""
    settings = app.state.settings
    per_address = settings.login_max_failures_per_account_and_address
    account_wide = settings.login_max_failures_per_account
    assert account_wide >= 10 * per_address, "a few addresses must not lock an account"
    account = await create_account(app, Role.caseworker)
    bystander = await create_account(app, Role.caseworker)
    account_key = f"account:{account.username}"
    async with client_at(app, OWNER) as owner:
        await log_in(owner, account)

    async def fail_from(address: str, times: int) -> None:
        async with client_at(app, address) as attacker:
            for _ in range(times):
                response = await attacker.post(LOGIN, json=login_body(account, password="x"))
                assert_problem(response, 401, "sign-in-failed")

    async def signs_in_from(address: str) -> httpx.Response:
        # Each code is good once, and the test signs in more often than codes change.
        await db.execute("UPDATE app_user SET totp_last_step = 0 WHERE id = $1", account.id)
        async with client_at(app, address) as client:
            return await client.post(LOGIN, json=login_body(account))

    async def block_passes() -> None:
        await db.execute(
            "UPDATE sign_in_throttle SET blocked_until = now() - interval '1 second'"
            " WHERE key = $1",
            account_key,
        )

    for n in range(account_wide // per_address):
        await fail_from(f"203.0.113.{n + 1}", per_address)
    row = await throttle_row(db, account_key)
    assert row["failures"] == account_wide and row["blocked_until"] is not None

    # Now the account is held back, briefly, from everywhere it never signed in from,
    # the right credentials too; other accounts are not.
    blocked = await signs_in_from(NEW_PLACE)
    assert_problem(blocked, 429, "too-many-attempts")
    assert 0 < int(blocked.headers["retry-after"]) <= settings.login_account_block_seconds + 1
    async with client_at(app, NEW_PLACE) as elsewhere:
        assert (await log_in(elsewhere, bystander))["access_token"]
    # The owner, at a known address, signs in during the block.
    assert (await signs_in_from(OWNER)).status_code == 200
    # When the short block has passed, each further failure from anywhere blocks again:
    # guessing stays at one try per block, and the owner signs in each time.
    for _ in range(2):
        await block_passes()
        await fail_from("192.0.2.99", 1)
        assert_problem(await signs_in_from(NEW_PLACE), 429, "too-many-attempts")
        assert (await signs_in_from(OWNER)).status_code == 200
    await block_passes()
    assert (await signs_in_from(NEW_PLACE)).status_code == 200


async def test_a_known_address_keeps_its_own_limits_and_is_known_for_a_while(
    app: FastAPI, db: asyncpg.Connection, clean_tables: None
) -> None:
    settings = app.state.settings
    account = await create_account(app, Role.caseworker)
    async with client_at(app, OWNER) as owner:
        await log_in(owner, account)
    await db.execute(
        "UPDATE sign_in_throttle SET failures = $2, blocked_until = now() + interval '1 minute'"
        " WHERE key = $1",
        f"account:{account.username}",
        settings.login_max_failures_per_account,
    )
    async with client_at(app, OWNER) as owner:
        signed_in = await owner.post(LOGIN, json=login_body(account, code=account.code(1)))
        assert signed_in.status_code == 200, signed_in.text
        # Its own failures still block it: five from the owner's address.
        for _ in range(settings.login_max_failures_per_account_and_address):
            wrong = await owner.post(LOGIN, json=login_body(account, password="x"))
            assert_problem(wrong, 401, "sign-in-failed")
        right = await owner.post(LOGIN, json=login_body(account, code=account.code(2)))
        assert_problem(right, 429, "too-many-attempts")
    # An address signed in from longer ago than the setting says is not known any more.
    await db.execute("DELETE FROM sign_in_throttle WHERE key LIKE 'account|address:%'")
    await db.execute(
        "UPDATE known_sign_in_address SET last_signed_in_at = now() - $1::interval",
        timedelta(days=settings.login_known_address_days, minutes=1),
    )
    async with client_at(app, OWNER) as owner:
        late = await owner.post(LOGIN, json=login_body(account, code=account.code(2)))
        assert_problem(late, 429, "too-many-attempts")


async def test_ipv6_addresses_in_one_64_share_a_counter(
    app: FastAPI, db: asyncpg.Connection, clean_tables: None
) -> None:
    """A host holds a whole /64: changing the last 64 bits is not a new address."""
    account = await create_account(app, Role.caseworker)
    per_address = app.state.settings.login_max_failures_per_account_and_address
    for n in range(per_address):
        async with client_at(app, f"2001:db8:1:2::{n + 1:x}") as attacker:
            response = await attacker.post(LOGIN, json=login_body(account, password="x"))
            assert_problem(response, 401, "sign-in-failed")
    row = await throttle_row(db, pair_key(account, "2001:db8:1:2::/64"))
    assert row["failures"] == per_address and row["blocked_until"] is not None
    async with client_at(app, "2001:db8:1:2:ffff:ffff:ffff:fffe") as same_host:
        blocked = await same_host.post(LOGIN, json=login_body(account))
        assert_problem(blocked, 429, "too-many-attempts")
    async with client_at(app, "2001:db8:1:3::1") as other_network:
        assert (await log_in(other_network, account))["access_token"]


async def test_unknown_accounts_are_throttled_like_known_ones(
    anonymous: httpx.AsyncClient,
) -> None:
    # Otherwise a 429 would tell which names exist.
    body = {"username": "no-such-user", "password": "guess", "code": "123456"}
    for _ in range(5):
        assert_problem(await anonymous.post(LOGIN, json=body), 401, "sign-in-failed")
    assert_problem(await anonymous.post(LOGIN, json=body), 429, "too-many-attempts")


async def test_twenty_failures_from_one_address_block_every_account_from_it(
    app: FastAPI, anonymous: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    account = await create_account(app, Role.caseworker)
    # 4 failures on each of 5 names: no account reaches its limit, the address does.
    for attempt in range(20):
        body = {"username": f"guess-{attempt % 5}", "password": "x", "code": "123456"}
        assert_problem(await anonymous.post(LOGIN, json=body), 401, "sign-in-failed")
    row = await throttle_row(db, f"address:{ADDRESS}")
    assert row["failures"] == 20 and row["blocked_until"] is not None
    assert_problem(await anonymous.post(LOGIN, json=login_body(account)), 429, "too-many-attempts")
    # From anywhere else the owner signs in.
    async with client_at(app, OWNER) as owner:
        assert (await log_in(owner, account))["access_token"]


async def test_expired_throttles_known_addresses_and_assertions_are_purged(
    app: FastAPI, anonymous: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """The throttle's keys hold whatever names were typed: they go once their window has
    passed and they block nothing, like known addresses and client assertion ids past
    their time."""
    settings = app.state.settings
    account = await create_account(app, Role.caseworker)
    await log_in(anonymous, account)
    for name in ("old-typo", "blocked-typo", "fresh-typo"):
        body = {"username": name, "password": "x", "code": "123456"}
        assert_problem(await anonymous.post(LOGIN, json=body), 401, "sign-in-failed")
    window = timedelta(seconds=settings.login_failure_window_seconds, minutes=1)
    await db.execute(
        "UPDATE sign_in_throttle SET window_started_at = now() - $1::interval"
        " WHERE key LIKE '%old-typo%' OR key LIKE '%blocked-typo%'",
        window,
    )
    await db.execute(
        "UPDATE sign_in_throttle SET blocked_until = now() + interval '1 minute'"
        " WHERE key = 'account:blocked-typo'"
    )
    other = await create_account(app, Role.analyst)
    async with client_at(app, OWNER) as owner:
        await log_in(owner, other)
    await db.execute(
        "UPDATE known_sign_in_address SET last_signed_in_at = now() - $1::interval"
        " WHERE user_id = $2",
        timedelta(days=settings.login_known_address_days, minutes=1),
        other.id,
    )
    partner, _ = await create_partner(app, scopes=["sync:read"])
    await db.executemany(
        "INSERT INTO client_assertion_use (partner_id, jti, expires_at)"
        " VALUES ($1, $2, now() + $3::interval)",
        [(partner.id, "spent", timedelta(minutes=-1)), (partner.id, "live", timedelta(minutes=5))],
    )

    purged = await purge_expired(app.state.session_factory, settings)
    assert {key: purged[key] for key in purged if key != "idempotency_records"} == {
        "sign_in_throttles": 3,
        "known_sign_in_addresses": 1,
        "client_assertion_uses": 1,
    }
    keys = {row["key"] for row in await db.fetch("SELECT key FROM sign_in_throttle")}
    assert not any("old-typo" in key for key in keys)
    assert {"account:blocked-typo", "account:fresh-typo"} <= keys
    assert "account|address:blocked-typo|127.0.0.1" not in keys
    known = await db.fetch("SELECT user_id, address FROM known_sign_in_address")
    assert [(row["user_id"], row["address"]) for row in known] == [(account.id, ADDRESS)]
    assert await db.fetchval("SELECT array_agg(jti) FROM client_assertion_use") == ["live"]
    # Done again, there is nothing left to purge.
    again = await purge_expired(app.state.session_factory, settings)
    assert not any(again.values())


# 5. Refresh-token rotation --------------------------------------------------------------------


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


# 6. Sign-out --------------------------------------------------------------------------------------


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


# 7. Account changes end the user's sessions --------------------------------------------------


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


# 8. Forged and malformed tokens ---------------------------------------------------------------


@dataclass
class RealToken:
    """A working coordinator token, taken apart, and the server's signing key."""

    token: str
    header: dict[str, Any]
    claims: dict[str, Any]
    key: ECKey
    audience: str

    def signed(
        self,
        header: dict[str, Any] | None = None,
        claims: dict[str, Any] | None = None,
        key: ECKey | None = None,
    ) -> str:
        """The real header and claims with changes (None removes a member), signed ES256
        by the real key unless another is given."""
        return jwt.encode(
            _without_nones({**self.header, **(header or {})}),
            _without_nones({**self.claims, **(claims or {})}),
            key or self.key,
            algorithms=["ES256"],
            default_type=None,
        )


def _without_nones(members: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in members.items() if value is not None}


ATTACKER = ECKey.generate_key("P-256", private=True, parameters={"kid": "attacker"})


@pytest.fixture
async def real(app: FastAPI, sign_in_as: SignInAs) -> RealToken:
    signed = await sign_in_as(Role.coordinator)
    token = signed.tokens["access_token"]
    header, claims = unverified(token)
    key = app.state.security.tokens.keys.signing_key()
    assert key.kid == header["kid"]
    real = RealToken(token, header, claims, key, app.state.settings.token_audience)
    # The untampered token works, so each 401 below is the attack's doing; and a token
    # re-signed from the same parts works too, so the forging helper itself is sound.
    assert await probe(signed.client, token) == 200
    assert await probe(signed.client, real.signed(claims={"jti": uuid.uuid4().hex})) == 200
    return real


def _now() -> int:
    return int(time.time())


def _tamper_payload(real: RealToken) -> str:
    header, _, signature = real.token.split(".")
    return f"{header}.{b64json({**real.claims, 'role': 'admin'})}.{signature}"


def _flip_signature(real: RealToken) -> str:
    head, _, signature = real.token.rpartition(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return f"{head}.{flipped}"


FORGERIES: dict[str, Callable[[RealToken], str]] = {
    "alg none": lambda r: f"{b64json({'alg': 'none', 'typ': 'at+jwt'})}.{b64json(r.claims)}.",
    "alg none with kid": lambda r: f"{b64json({**r.header, 'alg': 'none'})}.{b64json(r.claims)}.",
    "HS256 keyed with the public PEM": lambda r: hs256(
        {**r.header, "alg": "HS256"}, r.claims, r.key.as_pem(private=False)
    ),
    "HS256 keyed with the public JWK": lambda r: hs256(
        {**r.header, "alg": "HS256"},
        r.claims,
        json.dumps(r.key.as_dict(private=False)).encode(),
    ),
    "wrong issuer": lambda r: r.signed(claims={"iss": "https://evil.example"}),
    "wrong audience": lambda r: r.signed(claims={"aud": "another-api"}),
    "expired": lambda r: r.signed(
        claims={"iat": _now() - 4000, "nbf": _now() - 4000, "exp": _now() - 3600}
    ),
    "not yet valid": lambda r: r.signed(claims={"nbf": _now() + 3600}),
    "without exp": lambda r: r.signed(claims={"exp": None}),
    "attacker key in a jwk header": lambda r: r.signed(
        header={"kid": ATTACKER.kid, "jwk": ATTACKER.as_dict(private=False)}, key=ATTACKER
    ),
    "attacker key at a jku url": lambda r: r.signed(
        header={"kid": ATTACKER.kid, "jku": "https://evil.example/jwks.json"}, key=ATTACKER
    ),
    "jku header on a real signature": lambda r: r.signed(
        header={"jku": "https://evil.example/jwks.json"}
    ),
    "attacker key under the real kid": lambda r: r.signed(key=ATTACKER),
    "unknown kid": lambda r: r.signed(header={"kid": "no-such-key"}, key=ATTACKER),
    "typ JWT": lambda r: r.signed(header={"typ": "JWT"}),
    "no typ": lambda r: r.signed(header={"typ": None}),
    "an ID token": lambda r: r.signed(
        header={"typ": "JWT"}, claims={"aud": "habeas", "nonce": "n-0S6_WzA2Mj", "azp": "habeas"}
    ),
    "someone else's sid": lambda r: r.signed(claims={"sid": str(uuid.uuid4())}),
    "sub not a uuid": lambda r: r.signed(claims={"sub": "admin"}),
    "payload changed after signing": _tamper_payload,
    "signature altered": _flip_signature,
    "signature stripped": lambda r: r.token.rpartition(".")[0] + ".",
    "garbage": lambda r: "garbage",
    "two parts": lambda r: "a.b",
    "three empty parts": lambda r: "..",
    "not base64": lambda r: "!!!.@@@.###",
    "header is a JSON list": lambda r: f"{b64json([1])}.{b64json(r.claims)}.sig",
    "header not JSON": lambda r: f"{b64url(b'not json')}.{b64json(r.claims)}.sig",
    "header not UTF-8": lambda r: f"{b64url(bytes([0xFF, 0xFE]))}.{b64json(r.claims)}.sig",
}


@pytest.mark.parametrize("forge", FORGERIES.values(), ids=FORGERIES.keys())
async def test_a_forged_or_malformed_token_is_refused(
    real: RealToken, anonymous: httpx.AsyncClient, forge: Callable[[RealToken], str]
) -> None:
    token = forge(real)
    response = await anonymous.get(PROBE, headers=bearer(token))
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_deeply_nested_token_header_is_a_401_not_a_500(
    anonymous: httpx.AsyncClient,
) -> None:
    # ~6.7 kB: well within what HTTP servers accept in one header.
    token = f"{b64url(b'[' * 5000)}.{b64json({})}.sig"
    response = await anonymous.get(PROBE, headers=bearer(token))
    assert response.status_code == 401


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Basic {token}", "Token {token}", "{token}", "Bearer  x y"],
    ids=["missing", "empty", "scheme only", "scheme and space", "basic", "token", "bare", "junk"],
)
async def test_the_token_must_come_as_a_bearer_credential(
    real: RealToken, anonymous: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {}
    if authorization is not None:
        headers["Authorization"] = authorization.format(token=real.token)
    response = await anonymous.get(PROBE, headers=headers)
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"


# 9. Headers on every answer -------------------------------------------------------------------

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


# 10. Account administration --------------------------------------------------------------------


async def test_an_admin_creates_lists_and_reads_accounts(
    sign_in_as: SignInAs, db: asyncpg.Connection
) -> None:
    # Enrolment and the approval of roles: tests/identity/test_enrolment.py.
    admin = (await sign_in_as(Role.admin)).client
    created = await admin.post(USERS, json={"username": "new.worker", "role": "caseworker"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert not {"password", "password_hash", "totp_secret", "totp_uri"} & set(body)
    assert body["username"] == "new.worker" and body["role"] is None
    assert body["pending_role"] == "caseworker" and body["enrolled"] is False
    assert body["disabled"] is False and body["version"] == 1
    assert body["enrolment_code"] and body["enrolment_expires_at"]
    assert created.headers["etag"] == '"1"'
    assert created.headers["location"] == f"{USERS}/{body['id']}"

    # Only the code's hash is kept.
    stored = await db.fetchval(
        "SELECT enrolment_code_hash FROM app_user WHERE id = $1", uuid.UUID(body["id"])
    )
    assert hashlib.sha256(body["enrolment_code"].replace("-", "").encode()).digest() == stored

    listed = await admin.get(USERS)
    assert listed.status_code == 200
    items = {item["username"]: item for item in listed.json()["items"]}
    assert "new.worker" in items
    assert "enrolment_code" not in items["new.worker"]
    read = await admin.get(created.headers["location"])
    assert read.status_code == 200
    assert "enrolment_code" not in read.json()


@pytest.mark.parametrize("role", [r for r in Role if r is not Role.admin])
async def test_only_admins_manage_accounts(sign_in_as: SignInAs, role: Role) -> None:
    client = (await sign_in_as(role)).client
    own_id = (await sign_in_as(Role.caseworker)).account.id
    new = {"username": "sneaky", "role": "admin"}
    for response in (
        await client.get(USERS),
        await client.post(USERS, json=new),
        await client.get(f"{USERS}/{own_id}"),
        await client.patch(f"{USERS}/{own_id}", json={"role": "admin"}, headers=VERSION_1),
        await client.post(f"{USERS}/{own_id}/reset", headers=VERSION_1),
    ):
        assert_problem(response, 403, "forbidden")


async def test_account_administration_needs_a_token(anonymous: httpx.AsyncClient) -> None:
    for response in (
        await anonymous.get(USERS),
        await anonymous.post(USERS, json={"username": "abc", "role": "admin"}),
    ):
        assert_problem(response, 401, "unauthenticated")


async def test_account_conflicts_preconditions_and_validation(
    sign_in_as: SignInAs,
) -> None:
    signed_admin = await sign_in_as(Role.admin)
    admin = signed_admin.client
    target = await sign_in_as(Role.caseworker)
    url = f"{USERS}/{target.account.id}"
    taken = {"username": target.account.username, "role": "analyst"}
    assert_problem(await admin.post(USERS, json=taken), 409, "conflict")

    assert_problem(await admin.patch(url, json={"role": "analyst"}), 428, "if-match-required")
    current = await etag_of(admin, target.account.id)
    stale = await admin.patch(url, json={"role": "analyst"}, headers={"If-Match": '"77"'})
    assert_problem(stale, 412, "stale-version")
    assert f'"{stale.json()["current_version"]}"' == current
    assert_problem(await admin.post(f"{url}/reset"), 428, "if-match-required")
    stale_reset = await admin.post(f"{url}/reset", headers={"If-Match": '"77"'})
    assert_problem(stale_reset, 412, "stale-version")
    # Nothing changed: the target's session survived the refused requests.
    assert (await target.client.get(PROBE)).status_code == 200

    upper = {"username": "Capital", "role": "analyst"}
    assert_problem(await admin.post(USERS, json=upper), 422, "invalid-input")
    unknown_role = {"username": "rooty", "role": "root"}
    assert_problem(await admin.post(USERS, json=unknown_role), 422, "invalid-input")
    nulled = await admin.patch(url, json={"role": None}, headers={"If-Match": '"1"'})
    assert_problem(nulled, 422, "invalid-input")

    # An admin cannot lock themselves out.
    own = f"{USERS}/{signed_admin.account.id}"
    own_version = await etag_of(admin, signed_admin.account.id)
    for change in ({"disabled": True}, {"role": "analyst"}):
        response = await admin.patch(own, json=change, headers={"If-Match": own_version})
        assert_problem(response, 409, "conflict")


async def test_a_username_taken_concurrently_is_a_409_not_a_500(
    sign_in_as: SignInAs, db: asyncpg.Connection
) -> None:
    admin = (await sign_in_as(Role.admin)).client
    body = {"username": "raced", "role": "analyst"}
    # Another transaction inserts the same name and has not committed yet: the API's
    # existence check cannot see it, so its insert waits on the unique index.
    response = await while_an_uncommitted_insert_holds_the_name(
        db,
        "INSERT INTO app_user (id, username, password_hash, role, totp_secret,"
        " totp_last_step, disabled, version, created_at, updated_at)"
        " VALUES ($1, 'raced', 'x', 'analyst', '\\x00', 0, false, 1, now(), now())",
        lambda: admin.post(USERS, json=body),
    )
    assert response.status_code == 409, response.text


# 11. The command line ---------------------------------------------------------------------------


def _cli_env(**values: str) -> dict[str, str]:
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


async def test_the_cli_creates_a_user_who_enrols_and_signs_in(
    app: FastAPI,
    sign_in_as: SignInAs,
    anonymous: httpx.AsyncClient,
    database_url: str,
    tmp_path: Path,
) -> None:
    env = _cli_env(DATABASE_URL=database_url, HABEAS_DATA_DIR=str(TEST_KEYS_DIR))
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
    env = _cli_env(DATABASE_URL=database_url, HABEAS_DATA_DIR=str(TEST_KEYS_DIR))
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
    env = _cli_env(HABEAS_ENV="production", HABEAS_DATA_DIR=str(TEST_KEYS_DIR))
    done = await run_cli(["users", "add", "prod.user", "--role", "caseworker"], env, tmp_path)
    assert done.returncode != 0
    assert "Refusing to start" in done.stderr
    assert done.stdout == ""

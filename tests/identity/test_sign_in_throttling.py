"""Throttling of failed sign-ins: per account and address, per address, per account from
everywhere (but not from addresses the owner signed in from lately), and the purge of
what it no longer needs."""

from datetime import timedelta

import asyncpg
import httpx
from fastapi import FastAPI

from app.access.principal import Role
from app.jobs.housekeeping import purge_expired
from tests.auth import (
    Account,
    assert_problem,
    create_account,
    create_partner,
    log_in,
    login_body,
    probe,
)
from tests.identity.addresses import OWNER, client_at

# An address the account never signed in from.
NEW_PLACE = "198.51.100.77"
API = "/api/v1"
LOGIN = f"{API}/auth/login"
ADDRESS = "127.0.0.1"  # httpx.ASGITransport's fixed client address


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
        "webhook_deliveries": 0,
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

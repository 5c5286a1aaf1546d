"""Partner systems: registration, the client-credentials token endpoint (client secret and
private-key JWT, RFC 7523) and what a partner token may reach, against the real app and
database."""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import ECKey

from app.access.principal import Role
from app.core import embedded
from app.core.migrations import downgrade, upgrade
from tests.auth import (
    SignedIn,
    api_client,
    bearer,
    create_partner,
    while_an_uncommitted_insert_holds_the_name,
)
from tests.conftest import TEST_KEYS_DIR, separate_app
from tests.factories import create_case, create_person
from tests.identity.addresses import ATTACKER, client_at

API = "/api/v1"
TOKEN = f"{API}/auth/token"
PARTNERS = f"{API}/partners"
CASES = f"{API}/cases"
# The audience a client assertion must name: the token endpoint's URL (app/identity/router.py).
TOKEN_AUDIENCE = "https://habeas/api/v1/auth/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

SignInAs = Callable[..., Awaitable[SignedIn]]

# Key generation is cheap for P-256, but one pair per role keeps the tests readable.
PARTNER_KEY = ECKey.generate_key("P-256", private=True, parameters={"kid": "k1"})
OTHER_KEY = ECKey.generate_key("P-256", private=True, parameters={"kid": "k1"})


# Helpers ----------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: object) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


async def register(admin: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {
        "name": f"partner-{secrets.token_hex(3)}",
        "scopes": ["sync:read"],
        "auth_method": "client_secret",
        **fields,
    }
    response = await admin.post(PARTNERS, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def register_with_key(admin: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    return await register(
        admin,
        auth_method="private_key_jwt",
        public_jwks={"keys": [PARTNER_KEY.as_dict(private=False)]},
        **fields,
    )


async def request_token(
    client: httpx.AsyncClient,
    form: dict[str, str],
    auth: tuple[str, str] | None = None,
) -> httpx.Response:
    return await client.post(TOKEN, data={"grant_type": "client_credentials", **form}, auth=auth)


async def secret_token(
    client: httpx.AsyncClient, partner: dict[str, Any], scope: str | None = None
) -> str:
    form = {"scope": scope} if scope else {}
    response = await request_token(client, form, (partner["client_id"], partner["client_secret"]))
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def assertion(
    client_id: str,
    key: ECKey = PARTNER_KEY,
    *,
    lifetime: int = 60,
    **claims: Any,
) -> str:
    """A client assertion (RFC 7523 §3) that is valid unless the arguments say otherwise
    (a claim given as None is left out)."""
    now = int(time.time())
    body = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_AUDIENCE,
        "iat": now,
        "exp": now + lifetime,
        "jti": secrets.token_hex(16),
        **claims,
    }
    body = {name: value for name, value in body.items() if value is not None}
    return jwt.encode({"alg": "ES256", "kid": key.kid}, body, key, algorithms=["ES256"])


def assertion_form(token: str, **extra: str) -> dict[str, str]:
    return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": token, **extra}


def assert_oauth_error(response: httpx.Response, error: str, *statuses: int) -> None:
    assert response.status_code in statuses, response.text
    assert response.json()["error"] == error
    assert "access_token" not in response.json()
    assert response.headers["cache-control"] == "no-store"


@pytest.fixture
async def admin(sign_in_as: SignInAs) -> httpx.AsyncClient:
    return (await sign_in_as(Role.admin)).client


# A partner as an admin registers it: an agreement that shares nothing, not approved.
NO_AGREEMENT = {
    "jurisdiction": None,
    "recognised_only": True,
    "case_file_ids": [],
    "max_tier": "public",
    "read_write": False,
    "trusted_as_confirmed": False,
    "approved": False,
    "approved_by": None,
    "approved_at": None,
}


# 1. Registration ----------------------------------------------------------------------------


async def test_a_client_secret_is_shown_once_and_stored_hashed(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    response = await admin.post(
        PARTNERS,
        json={
            "name": "Viasna",
            "scopes": ["sync:read", "reports:read"],
            "auth_method": "client_secret",
        },
    )
    assert response.status_code == 201, response.text
    created = response.json()
    secret = created["client_secret"]
    assert secret and len(secret) >= 32
    assert created["client_id"].startswith("hbp_")
    assert created["scopes"] == ["reports:read", "sync:read"]
    assert created["key_thumbprints"] == []
    assert created["agreement"] == NO_AGREEMENT
    assert response.headers["location"] == f"{PARTNERS}/{created['id']}"
    assert response.headers["etag"] == '"1"'

    read = await admin.get(response.headers["location"])
    listed = await admin.get(PARTNERS)
    for shown in (read.json(), *listed.json()["items"]):
        assert "client_secret" not in shown
    assert secret not in read.text + listed.text
    assert [p["client_id"] for p in (await admin.get(PARTNERS)).json()["items"]] == [
        created["client_id"]
    ]

    stored = await db.fetchval(
        "SELECT secret_hash FROM partner WHERE id = $1", uuid.UUID(created["id"])
    )
    assert stored.startswith("$argon2id$")
    assert secret not in stored
    assert await secret_token(anonymous, created)


@pytest.mark.parametrize("role", [r for r in Role if r is not Role.admin])
async def test_only_admins_manage_partners_and_coordinators_read_them(
    sign_in_as: SignInAs, role: Role
) -> None:
    client = (await sign_in_as(role)).client
    body = {"name": "x", "scopes": ["sync:read"], "auth_method": "client_secret"}
    listed = await client.get(PARTNERS)
    assert listed.status_code == (200 if role is Role.coordinator else 403), listed.text
    assert (await client.post(PARTNERS, json=body)).status_code == 403


async def test_partner_administration_needs_a_token(anonymous: httpx.AsyncClient) -> None:
    assert (await anonymous.get(PARTNERS)).status_code == 401


BAD_REGISTRATIONS = {
    "private EC key": {
        "auth_method": "private_key_jwt",
        "public_jwks": {"keys": [PARTNER_KEY.as_dict(private=True)]},
    },
    "symmetric oct key": {
        "auth_method": "private_key_jwt",
        "public_jwks": {"keys": [{"kty": "oct", "k": b64url(secrets.token_bytes(32))}]},
    },
    "not a key": {"auth_method": "private_key_jwt", "public_jwks": {"keys": [{"kty": "EC"}]}},
    "no keys": {"auth_method": "private_key_jwt", "public_jwks": {"keys": []}},
    "keys for a secret client": {
        "auth_method": "client_secret",
        "public_jwks": {"keys": [PARTNER_KEY.as_dict(private=False)]},
    },
    "private_key_jwt without keys": {"auth_method": "private_key_jwt"},
    "unknown scope": {"auth_method": "client_secret", "scopes": ["admin"]},
    "no scope": {"auth_method": "client_secret", "scopes": []},
    # Only a coordinator gives a partner an agreement (PUT …/agreement).
    "an agreement": {
        "auth_method": "client_secret",
        "agreement": {"jurisdiction": "BY", "recognised_only": False, "max_tier": "restricted"},
    },
}


@pytest.mark.parametrize("fields", BAD_REGISTRATIONS.values(), ids=BAD_REGISTRATIONS.keys())
async def test_a_bad_registration_is_a_422_and_stores_nothing(
    admin: httpx.AsyncClient, db: asyncpg.Connection, fields: dict[str, Any]
) -> None:
    body = {"name": "bad", "scopes": ["sync:read"], **fields}
    response = await admin.post(PARTNERS, json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert await db.fetchval("SELECT count(*) FROM partner") == 0


async def test_partner_names_are_unique(admin: httpx.AsyncClient) -> None:
    await register(admin, name="Memorial")
    again = await admin.post(
        PARTNERS, json={"name": "Memorial", "scopes": ["sync:read"], "auth_method": "client_secret"}
    )
    assert again.status_code == 409, again.text


async def test_a_partner_name_too_long_for_the_column_is_a_422(admin: httpx.AsyncClient) -> None:
    body = {"name": "n" * 250, "scopes": ["sync:read"], "auth_method": "client_secret"}
    response = await admin.post(PARTNERS, json=body)
    assert response.status_code == 422, response.text


async def test_a_partner_name_taken_concurrently_is_a_409_not_a_500(
    admin: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    body = {"name": "Raced", "scopes": ["sync:read"], "auth_method": "client_secret"}
    # Another transaction holds the same name, uncommitted: the API's check cannot see it,
    # so its insert waits on the unique index until that transaction commits.
    response = await while_an_uncommitted_insert_holds_the_name(
        db,
        "INSERT INTO partner (id, name, client_id, auth_method, scopes, disabled,"
        " share_recognised_only, share_case_file_ids, max_tier, read_write, version,"
        " created_at, updated_at) VALUES ($1, 'Raced', 'hbp_raced', 'client_secret',"
        " '{sync:read}', false, true, '{}', 'public', false, 1, now(), now())",
        lambda: admin.post(PARTNERS, json=body),
    )
    assert response.status_code == 409, response.text


# 2. The token endpoint with a client secret ---------------------------------------------------


async def test_a_client_secret_gets_a_short_scoped_token(
    app: FastAPI, admin: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    partner = await register(admin, scopes=["sync:read", "reports:read"])
    auth = (partner["client_id"], partner["client_secret"])
    response = await request_token(anonymous, {"scope": "sync:read"}, auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert 0 < body["expires_in"] <= 900
    assert body["scope"] == "sync:read"
    # RFC 6749 §5.1: token responses are never cached.
    assert response.headers["cache-control"] == "no-store"
    assert "no-cache" in response.headers["pragma"]
    claims = claims_of(body["access_token"])
    assert claims["sub"] == partner["id"]
    assert claims["client_id"] == partner["client_id"]
    assert claims["scope"] == "sync:read"
    assert claims["aud"] == app.state.settings.token_audience
    assert claims["exp"] - claims["iat"] == body["expires_in"]
    # Without a scope parameter, every granted scope.
    everything = await request_token(anonymous, {}, auth)
    assert everything.json()["scope"] == "reports:read sync:read"
    # The secret may also come in the form (client_secret_post).
    posted = await request_token(
        anonymous,
        {"client_id": partner["client_id"], "client_secret": partner["client_secret"]},
    )
    assert posted.status_code == 200, posted.text


async def test_token_endpoint_refusals(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    partner = await register(admin, scopes=["sync:read"])
    client_id, secret = partner["client_id"], partner["client_secret"]

    wrong = await request_token(anonymous, {}, (client_id, secret + "x"))
    assert_oauth_error(wrong, "invalid_client", 401)
    unknown = await request_token(anonymous, {}, ("hbp_" + "0" * 24, secret))
    assert_oauth_error(unknown, "invalid_client", 401)
    no_credentials = await request_token(anonymous, {})
    assert_oauth_error(no_credentials, "invalid_client", 400, 401)
    wrong_post = await request_token(anonymous, {"client_id": client_id, "client_secret": "guess"})
    assert_oauth_error(wrong_post, "invalid_client", 400, 401)

    password_grant = await anonymous.post(
        TOKEN,
        data={"grant_type": "password", "username": "a", "password": "b"},
        auth=(client_id, secret),
    )
    assert_oauth_error(password_grant, "unsupported_grant_type", 400)
    not_granted = await request_token(anonymous, {"scope": "reports:read"}, (client_id, secret))
    assert_oauth_error(not_granted, "invalid_scope", 400)
    partly_granted = await request_token(
        anonymous, {"scope": "sync:read sync:write"}, (client_id, secret)
    )
    assert_oauth_error(partly_granted, "invalid_scope", 400)
    made_up = await request_token(anonymous, {"scope": "admin"}, (client_id, secret))
    assert_oauth_error(made_up, "invalid_scope", 400)

    not_a_form = await anonymous.post(TOKEN, json={"grant_type": "client_credentials"})
    assert 400 <= not_a_form.status_code < 500
    # A refused request claims no assertion id and writes nothing.
    assert await db.fetchval("SELECT count(*) FROM client_assertion_use") == 0


async def test_disabling_a_partner_stops_its_secret_and_its_tokens_at_once(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    partner = await register(admin, scopes=["sync:read"])
    token = await secret_token(anonymous, partner)
    assert (await anonymous.get(CASES, headers=bearer(token))).status_code == 200

    disabled = await admin.patch(
        f"{PARTNERS}/{partner['id']}", json={"disabled": True}, headers={"If-Match": '"1"'}
    )
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["disabled"] is True

    refused = await request_token(anonymous, {}, (partner["client_id"], partner["client_secret"]))
    assert_oauth_error(refused, "invalid_client", 400, 401)
    old = await anonymous.get(CASES, headers=bearer(token))
    assert old.status_code == 401
    assert old.json()["type"] == "urn:habeas:problem:unauthenticated"


async def test_a_new_secret_replaces_the_old_one(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    partner = await register(admin)
    url = f"{PARTNERS}/{partner['id']}/secret"
    assert (await admin.post(url)).status_code == 428
    assert (await admin.post(url, headers={"If-Match": '"9"'})).status_code == 412
    rotated = await admin.post(url, headers={"If-Match": '"1"'})
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["client_secret"]
    assert new_secret != partner["client_secret"]

    old = await request_token(anonymous, {}, (partner["client_id"], partner["client_secret"]))
    assert_oauth_error(old, "invalid_client", 401)
    assert await secret_token(anonymous, {**partner, "client_secret": new_secret})


async def test_partner_changes_need_the_version_read(admin: httpx.AsyncClient) -> None:
    partner = await register(admin)
    url = f"{PARTNERS}/{partner['id']}"
    assert (await admin.patch(url, json={"disabled": True})).status_code == 428
    stale = await admin.patch(url, json={"disabled": True}, headers={"If-Match": '"2"'})
    assert stale.status_code == 412
    assert (await admin.get(url)).json()["disabled"] is False


async def test_the_token_response_sends_each_security_header_once(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    partner = await register(admin)
    response = await request_token(anonymous, {}, (partner["client_id"], partner["client_secret"]))
    assert response.status_code == 200
    for name in ("cache-control", "pragma", "x-frame-options", "x-content-type-options"):
        assert len(response.headers.get_list(name)) == 1, (name, response.headers.get_list(name))


# 3. Private-key JWT client authentication (RFC 7523) -------------------------------------------


async def test_a_signed_assertion_gets_a_token_once(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    partner = await register_with_key(admin)
    assert partner["client_secret"] is None
    stored = await db.fetchrow(
        "SELECT secret_hash, public_jwks FROM partner WHERE id = $1", uuid.UUID(partner["id"])
    )
    assert stored["secret_hash"] is None
    assert "d" not in json.loads(stored["public_jwks"])["keys"][0]

    signed = assertion(partner["client_id"])
    response = await request_token(anonymous, assertion_form(signed))
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    assert claims_of(token)["sub"] == partner["id"]
    assert (await anonymous.get(CASES, headers=bearer(token))).status_code == 200

    # The same assertion again is a replay, even seconds later.
    replayed = await request_token(anonymous, assertion_form(signed))
    assert_oauth_error(replayed, "invalid_client", 400, 401)
    # A fresh assertion works again.
    again = await request_token(anonymous, assertion_form(assertion(partner["client_id"])))
    assert again.status_code == 200, again.text


async def test_concurrent_replays_of_one_assertion_get_one_token(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    partner = await register_with_key(admin)
    form = assertion_form(assertion(partner["client_id"]))
    responses = await asyncio.gather(*(request_token(anonymous, form) for _ in range(5)))
    assert sorted(r.status_code for r in responses)[0] == 200
    assert [r.status_code for r in responses].count(200) == 1, [r.text for r in responses]


def _hs256_assertion(client_id: str) -> str:
    # Algorithm confusion: HMAC keyed with the partner's public key, which is not secret.
    now = int(time.time())
    header = {"alg": "HS256", "kid": "k1"}
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_AUDIENCE,
        "exp": now + 60,
        "jti": secrets.token_hex(8),
    }
    secret = json.dumps(PARTNER_KEY.as_dict(private=False)).encode()
    signing_input = f"{b64json(header)}.{b64json(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def _unsigned_assertion(client_id: str) -> str:
    signed = assertion(client_id)
    return f"{b64json({'alg': 'none'})}.{signed.split('.')[1]}."


BAD_ASSERTIONS: dict[str, Callable[[str], str]] = {
    "HS256 keyed with the public key": _hs256_assertion,
    "alg none": _unsigned_assertion,
    "signed by another key": lambda cid: assertion(cid, OTHER_KEY),
    "wrong audience": lambda cid: assertion(cid, aud="https://habeas/api/v1/users"),
    "expired": lambda cid: assertion(cid, iat=int(time.time()) - 600, exp=int(time.time()) - 300),
    "valid for too long": lambda cid: assertion(cid, lifetime=3600),
    "issuer is not the subject": lambda cid: assertion(cid, iss="hbp_someone_else"),
    "without jti": lambda cid: assertion(cid, jti=None),
    "unknown subject": lambda cid: assertion("hbp_" + "f" * 24, iss="hbp_" + "f" * 24),
    "not a JWT": lambda cid: "not-a-jwt",
}


@pytest.mark.parametrize("make", BAD_ASSERTIONS.values(), ids=BAD_ASSERTIONS.keys())
async def test_a_bad_assertion_is_refused(
    admin: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    db: asyncpg.Connection,
    make: Callable[[str], str],
) -> None:
    partner = await register_with_key(admin)
    response = await request_token(anonymous, assertion_form(make(partner["client_id"])))
    assert_oauth_error(response, "invalid_client", 400, 401)
    assert await db.fetchval("SELECT count(*) FROM client_assertion_use") == 0


async def test_a_key_partner_cannot_use_a_secret(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    partner = await register_with_key(admin)
    guessed = await request_token(anonymous, {}, (partner["client_id"], "anything"))
    assert_oauth_error(guessed, "invalid_client", 401)


async def test_a_secret_partner_cannot_use_an_assertion(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    partner = await register(admin)
    # Signed by a key registered for nobody: an attacker needs only the (public) client id.
    forged = assertion(partner["client_id"])
    response = await request_token(anonymous, assertion_form(forged))
    assert_oauth_error(response, "invalid_client", 400, 401)


async def test_a_disabled_key_partner_gets_no_token(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    partner = await register_with_key(admin)
    disabled = await admin.patch(
        f"{PARTNERS}/{partner['id']}", json={"disabled": True}, headers={"If-Match": '"1"'}
    )
    assert disabled.status_code == 200
    response = await request_token(anonymous, assertion_form(assertion(partner["client_id"])))
    assert_oauth_error(response, "invalid_client", 400, 401)


async def test_replacing_the_keys_stops_the_old_key(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    partner = await register_with_key(admin)
    replaced = await admin.patch(
        f"{PARTNERS}/{partner['id']}",
        json={"public_jwks": {"keys": [OTHER_KEY.as_dict(private=False)]}},
        headers={"If-Match": '"1"'},
    )
    assert replaced.status_code == 200, replaced.text
    old = await request_token(anonymous, assertion_form(assertion(partner["client_id"])))
    assert_oauth_error(old, "invalid_client", 400, 401)
    new = await request_token(anonymous, assertion_form(assertion(partner["client_id"], OTHER_KEY)))
    assert new.status_code == 200, new.text


async def test_an_assertion_cannot_be_replayed_just_after_it_expires(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    partner = await register_with_key(admin)
    # An ordinary, short assertion: used once, then captured and replayed 3 s later
    # (past its exp, still inside the 30 s clock-skew allowance).
    form = assertion_form(assertion(partner["client_id"], lifetime=2))
    assert (await request_token(anonymous, form)).status_code == 200
    await asyncio.sleep(3.5)
    replayed = await request_token(anonymous, form)
    assert replayed.status_code != 200, "the replayed assertion got a token"


async def test_a_deeply_nested_assertion_is_refused_without_a_500(
    anonymous: httpx.AsyncClient,
) -> None:
    nested = f"{b64json({'alg': 'ES256'})}.{b64url(b'[' * 5000)}.sig"
    response = await request_token(anonymous, assertion_form(nested))
    assert response.status_code in (400, 401), response.text


async def test_an_overlong_assertion_id_is_refused_without_a_500(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    partner = await register_with_key(admin)
    signed = assertion(partner["client_id"], jti="j" * 300)
    response = await request_token(anonymous, assertion_form(signed))
    assert response.status_code in (200, 400, 401), response.text


# 4. One answer for every refused client, and throttling -----------------------------------------


async def test_every_refused_client_gets_the_identical_answer(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    with_secret = await register(admin)
    with_key = await register_with_key(admin)
    disabled = await register(admin)
    switched_off = await admin.patch(
        f"{PARTNERS}/{disabled['id']}", json={"disabled": True}, headers={"If-Match": '"1"'}
    )
    assert switched_off.status_code == 200, switched_off.text
    client_id, secret = with_secret["client_id"], with_secret["client_secret"]
    unknown = "hbp_" + "0" * 24
    used = assertion_form(assertion(with_key["client_id"]))
    assert (await request_token(anonymous, used)).status_code == 200

    attempts: dict[str, tuple[dict[str, str], tuple[str, str] | None]] = {
        "unknown client id": ({}, (unknown, secret)),
        "wrong secret": ({}, (client_id, secret + "x")),
        "unknown client id in the form": ({"client_id": unknown, "client_secret": secret}, None),
        "wrong secret in the form": ({"client_id": client_id, "client_secret": "guess"}, None),
        "not a client id at all": ({}, ("someone", secret)),
        "disabled partner, right secret": ({}, (disabled["client_id"], disabled["client_secret"])),
        "key partner, a secret": ({}, (with_key["client_id"], secret)),
        "assertion by another key": (
            assertion_form(assertion(with_key["client_id"], OTHER_KEY)),
            None,
        ),
        "assertion for an unknown client": (
            assertion_form(assertion(unknown, iss=unknown)),
            None,
        ),
        "assertion for a secret partner": (assertion_form(assertion(client_id)), None),
        "replayed assertion": (used, None),
    }
    answers = {}
    for name, (form, auth) in attempts.items():
        response = await request_token(anonymous, form, auth)
        answers[name] = (response.status_code, response.headers["content-type"], response.content)
    first = answers["unknown client id"]
    assert first[0] == 401
    assert json.loads(first[2])["error"] == "invalid_client"
    for name, answer in answers.items():
        assert answer == first, name


async def test_an_unknown_client_costs_as_much_as_a_wrong_secret(
    database_url: str, clean_tables: None
) -> None:
    # As for sign-in (tests/identity/test_sign_in.py): a verification costs ~50 ms here, so
    # refusing an unknown client without one would be several times faster.
    async with separate_app(
        database_url,
        password_time_cost=2,
        password_memory_kib=32768,
        login_max_failures_per_account_and_address=100,
        login_max_failures_per_address=100,
    ) as slow_app:
        partner, secret = await create_partner(slow_app, scopes=["sync:read"])
        async with api_client(slow_app) as client:

            async def timed(client_id: str) -> float:
                started = time.perf_counter()
                response = await request_token(client, {}, (client_id, f"{secret}x"))
                elapsed = time.perf_counter() - started
                assert response.status_code == 401, response.text
                return elapsed

            await timed("hbp_" + "e" * 24)  # warm-up
            unknown, wrong = [], []
            for attempt in range(5):
                unknown.append(await timed(f"hbp_{attempt:024x}"))
                wrong.append(await timed(partner.client_id))
    fast, slow = sorted([statistics.median(unknown), statistics.median(wrong)])
    assert slow <= 3 * fast or slow - fast <= 0.020, (unknown, wrong)


async def test_failed_client_authentication_is_throttled_per_client_and_address(
    app: FastAPI, admin: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    settings = app.state.settings
    partner = await register(admin)
    right = (partner["client_id"], partner["client_secret"])
    wrong = (partner["client_id"], "guess")
    unknown = ("hbp_" + "a" * 24, "guess")
    async with client_at(app, ATTACKER) as attacker:
        for _ in range(settings.login_max_failures_per_account_and_address):
            assert_oauth_error(await request_token(attacker, {}, wrong), "invalid_client", 401)
            # An unknown client id is held back after as many failures as a known one.
            assert_oauth_error(await request_token(attacker, {}, unknown), "invalid_client", 401)
        for auth in (right, unknown):
            blocked = await request_token(attacker, {}, auth)
            assert blocked.status_code == 429, blocked.text
            assert blocked.headers["content-type"] == "application/problem+json"
            assert blocked.json()["type"] == "urn:habeas:problem:too-many-attempts"
            assert 0 < int(blocked.headers["retry-after"]) <= settings.login_block_seconds + 1
    # The partner's own system, elsewhere, still gets its token, and its success lifts no
    # block on the attacker.
    assert (await request_token(anonymous, {}, right)).status_code == 200
    async with client_at(app, ATTACKER) as attacker:
        assert (await request_token(attacker, {}, right)).status_code == 429


async def test_a_blocked_address_is_refused_for_every_client_and_writes_nothing(
    app: FastAPI,
    admin: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    db: asyncpg.Connection,
) -> None:
    settings = app.state.settings
    partner = await register(admin)
    right = (partner["client_id"], partner["client_secret"])
    per_client = settings.login_max_failures_per_account_and_address
    async with client_at(app, ATTACKER) as attacker:
        # Fewer failures on each invented id than its own limit; together they reach the
        # address's.
        for attempt in range(settings.login_max_failures_per_address):
            guess = (f"hbp_{attempt // (per_client - 1):024x}", "guess")
            assert_oauth_error(await request_token(attacker, {}, guess), "invalid_client", 401)
        rows = await db.fetchval("SELECT count(*) FROM sign_in_throttle")
        for attempt in range(5):
            invented = (f"hbp_{attempt + 1000:024x}", "guess")
            assert (await request_token(attacker, {}, invented)).status_code == 429
        assert (await request_token(attacker, {}, right)).status_code == 429
        assert await db.fetchval("SELECT count(*) FROM sign_in_throttle") == rows
        # Staff sign-in from that address counts apart.
        login = {"username": "someone", "password": "guess", "code": "123456"}
        assert (await attacker.post(f"{API}/auth/login", json=login)).status_code == 401
    assert (await request_token(anonymous, {}, right)).status_code == 200


# 5. Scopes per endpoint -------------------------------------------------------------------------


async def test_reading_case_files_needs_the_sync_read_scope(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    partner = await register(admin, scopes=["sync:read", "reports:read"])
    reports_only = await secret_token(anonymous, partner, "reports:read")
    sync = await secret_token(anonymous, partner, "sync:read")

    refused = await anonymous.get(CASES, headers=bearer(reports_only))
    assert refused.status_code == 403
    assert refused.json()["type"] == "urn:habeas:problem:forbidden"
    assert (await anonymous.get(CASES, headers=bearer(sync))).status_code == 200
    # Staff administration is never open to a partner, whatever its scopes.
    assert (await anonymous.get(f"{API}/users", headers=bearer(sync))).status_code == 403
    assert (await anonymous.get(PARTNERS, headers=bearer(sync))).status_code == 403

    # Withdrawing the scope takes effect on tokens already issued.
    withdrawn = await admin.patch(
        f"{PARTNERS}/{partner['id']}",
        json={"scopes": ["reports:read"]},
        headers={"If-Match": '"1"'},
    )
    assert withdrawn.status_code == 200, withdrawn.text
    assert (await anonymous.get(CASES, headers=bearer(sync))).status_code == 403


# 6. The command line -----------------------------------------------------------------------------


async def test_the_cli_registers_a_partner_whose_secret_works(
    sign_in_as: SignInAs,
    anonymous: httpx.AsyncClient,
    database_url: str,
    db: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    """The operator (who holds the database and the keys) gives the agreement at once; it
    is recorded as approved by the system, and honoured."""
    coordinator = (await sign_in_as(Role.coordinator)).client
    person_id, case_id = await _documented_person(coordinator)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HABEAS_")},
        "DATABASE_URL": database_url,
        "HABEAS_DATA_DIR": str(TEST_KEYS_DIR),
    }
    args = ["partners", "add", "Cli Partner", "--scopes", "sync:read reports:read"]
    args += ["--jurisdiction", "BY", "--all-case-files", "--max-tier", "restricted"]
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,  # an empty directory: no stray .env feeds the settings
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout.strip().splitlines()[-1])
    assert printed["client_id"].startswith("hbp_")
    assert printed["client_secret"]
    assert printed["scopes"] == ["reports:read", "sync:read"]
    stored = await db.fetchval(
        "SELECT secret_hash FROM partner WHERE client_id = $1", printed["client_id"]
    )
    assert printed["client_secret"] not in stored

    approval = await db.fetchrow(
        "SELECT agreement_approved_by, agreement_approved_at FROM partner WHERE client_id = $1",
        printed["client_id"],
    )
    assert approval["agreement_approved_by"] is None
    assert approval["agreement_approved_at"] is not None
    recorded = await db.fetchrow(
        "SELECT e.actor_type, e.changes::text FROM audit_event e JOIN partner p"
        " ON p.id = e.resource_id WHERE e.action = 'partner.create' AND p.client_id = $1",
        printed["client_id"],
    )
    assert recorded["actor_type"] == "system"
    assert '"agreement_approved"' in recorded["changes"]

    token = await secret_token(anonymous, printed, "sync:read")
    seen = await _reads(anonymous, token, person_id, case_id)
    assert (seen["person"], seen["case"]) == (200, 200), seen
    assert seen["person_body"]["health"] == "Needs insulin"


# 7. Sharing agreements are a coordinator's decision ------------------------------------------
# An admin manages partner clients but never decides what they see: otherwise an admin could
# register a partner with a generous agreement, take its secret and read case content
# (DESIGN §4). A change of credentials suspends the agreement until a coordinator approves
# it again, since the admin then holds what the agreement would honour.

PERSONS = f"{API}/persons"
BY_RESTRICTED = {"jurisdiction": "BY", "recognised_only": False, "max_tier": "restricted"}


async def _documented_person(coordinator: httpx.AsyncClient) -> tuple[str, str]:
    """A person with restricted fields and a normal BY case file: (person id, case id)."""
    person = await create_person(
        coordinator,
        birth_date="1979-03-14",
        health="Needs insulin",
        lawyer="Advocate Kavaliova",
        notes="Transferred twice",
    )
    case = await create_case(coordinator, person["id"])
    return person["id"], case["id"]


async def _reads(
    client: httpx.AsyncClient, token: str, person_id: str, case_id: str
) -> dict[str, Any]:
    """What a partner token reaches: the person and case file alone, and both lists."""
    headers = bearer(token)
    person = await client.get(f"{PERSONS}/{person_id}", headers=headers)
    case = await client.get(f"{CASES}/{case_id}", headers=headers)
    persons = await client.get(PERSONS, headers=headers)
    cases = await client.get(CASES, headers=headers)
    assert persons.status_code == cases.status_code == 200, (persons.text, cases.text)
    return {
        "person": person.status_code,
        "case": case.status_code,
        "person_body": person.json(),
        "persons": [p["id"] for p in persons.json()["items"]],
        "cases": [c["id"] for c in cases.json()["items"]],
    }


def _sees_nothing(seen: dict[str, Any]) -> None:
    assert (seen["person"], seen["case"]) == (404, 404), seen
    assert seen["persons"] == seen["cases"] == [], seen


async def _share(
    coordinator: httpx.AsyncClient, partner_id: str, version: int, agreement: dict[str, Any]
) -> httpx.Response:
    return await coordinator.put(
        f"{PARTNERS}/{partner_id}/agreement",
        json=agreement,
        headers={"If-Match": f'"{version}"'},
    )


async def test_an_admin_cannot_give_a_partner_an_agreement(
    admin: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """The review's attack, step one: the agreement field is refused on create and on
    update, and the agreement route is a coordinator's."""
    body = {
        "name": "x",
        "auth_method": "client_secret",
        "scopes": ["sync:read"],
        "agreement": BY_RESTRICTED,
    }
    created = await admin.post(PARTNERS, json=body)
    assert created.status_code == 422, created.text
    assert created.headers["content-type"] == "application/problem+json"
    assert await db.fetchval("SELECT count(*) FROM partner") == 0

    partner = await register(admin)
    url = f"{PARTNERS}/{partner['id']}"
    patched = await admin.patch(url, json={"agreement": BY_RESTRICTED}, headers={"If-Match": '"1"'})
    assert patched.status_code == 422, patched.text
    shared = await _share(admin, partner["id"], 1, BY_RESTRICTED)
    assert shared.status_code == 403, shared.text
    assert shared.json()["type"] == "urn:habeas:problem:forbidden"
    stored = await admin.get(url)
    assert stored.json()["agreement"] == NO_AGREEMENT
    assert stored.json()["version"] == 1


async def test_an_admin_made_partner_reads_nothing_until_a_coordinator_shares(
    sign_in_as: SignInAs, admin: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    """The attack story: an admin registers a partner and takes its token; it reads nothing
    until a coordinator shares; the admin's new secret suspends the agreement (for the old
    token and the new secret alike) until a coordinator approves it again."""
    coordinator = await sign_in_as(Role.coordinator)
    person_id, case_id = await _documented_person(coordinator.client)

    partner = await register(admin)
    token = await secret_token(anonymous, partner)
    _sees_nothing(await _reads(anonymous, token, person_id, case_id))

    shared = await _share(coordinator.client, partner["id"], 1, BY_RESTRICTED)
    assert shared.status_code == 200, shared.text
    assert shared.headers["etag"] == '"2"'
    agreement = shared.json()["agreement"]
    assert agreement["jurisdiction"] == "BY" and agreement["max_tier"] == "restricted"
    assert agreement["approved"] is True
    assert agreement["approved_by"] == str(coordinator.account.id)
    assert agreement["approved_at"] is not None
    # The same token: the agreement is read on every request.
    seen = await _reads(anonymous, token, person_id, case_id)
    assert (seen["person"], seen["case"]) == (200, 200), seen
    assert seen["person_body"]["health"] == "Needs insulin"
    assert seen["persons"] == [person_id] and seen["cases"] == [case_id]

    rotated = await admin.post(f"{PARTNERS}/{partner['id']}/secret", headers={"If-Match": '"2"'})
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["client_secret"]
    new_token = await secret_token(anonymous, {**partner, "client_secret": new_secret})
    for held in (token, new_token):
        _sees_nothing(await _reads(anonymous, held, person_id, case_id))
    suspended = (await admin.get(f"{PARTNERS}/{partner['id']}")).json()
    assert suspended["version"] == 3
    # The terms stay for the coordinator to see; they are not honoured.
    assert suspended["agreement"]["jurisdiction"] == "BY"
    assert suspended["agreement"]["approved"] is False
    assert suspended["agreement"]["approved_by"] is None

    confirmed = await _share(coordinator.client, partner["id"], 3, BY_RESTRICTED)
    assert confirmed.status_code == 200, confirmed.text
    seen = await _reads(anonymous, new_token, person_id, case_id)
    assert (seen["person"], seen["persons"]) == (200, [person_id]), seen


async def test_new_keys_suspend_the_agreement(
    sign_in_as: SignInAs, admin: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    coordinator = await sign_in_as(Role.coordinator)
    person_id, case_id = await _documented_person(coordinator.client)
    partner = await register_with_key(admin)
    assert (await _share(coordinator.client, partner["id"], 1, BY_RESTRICTED)).status_code == 200

    def key_token(key: ECKey) -> Awaitable[httpx.Response]:
        return request_token(anonymous, assertion_form(assertion(partner["client_id"], key)))

    token = (await key_token(PARTNER_KEY)).json()["access_token"]
    assert (await _reads(anonymous, token, person_id, case_id))["person"] == 200

    # The same keys again change nothing; other keys suspend the agreement.
    url = f"{PARTNERS}/{partner['id']}"
    same = {"public_jwks": {"keys": [PARTNER_KEY.as_dict(private=False)]}}
    kept = await admin.patch(url, json=same, headers={"If-Match": '"2"'})
    assert kept.json()["agreement"]["approved"] is True
    other = {"public_jwks": {"keys": [OTHER_KEY.as_dict(private=False)]}}
    replaced = await admin.patch(url, json=other, headers={"If-Match": '"3"'})
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["agreement"]["approved"] is False
    assert replaced.json()["key_thumbprints"] == [OTHER_KEY.thumbprint()]
    other_token = (await key_token(OTHER_KEY)).json()["access_token"]
    _sees_nothing(await _reads(anonymous, other_token, person_id, case_id))


async def test_an_approval_is_of_the_partner_as_the_coordinator_read_it(
    sign_in_as: SignInAs, admin: httpx.AsyncClient
) -> None:
    """If-Match binds the approval to the credentials the coordinator saw: a secret changed
    in between makes it a 412, and nothing is approved."""
    coordinator = (await sign_in_as(Role.coordinator)).client
    partner = await register(admin)
    url = f"{PARTNERS}/{partner['id']}"
    read = await coordinator.get(url)
    assert read.status_code == 200 and read.headers["etag"] == '"1"'
    assert "client_secret" not in read.json()

    missing = await coordinator.put(f"{url}/agreement", json=BY_RESTRICTED)
    assert missing.status_code == 428, missing.text
    assert (await admin.post(f"{url}/secret", headers={"If-Match": '"1"'})).status_code == 200
    stale = await _share(coordinator, partner["id"], 1, BY_RESTRICTED)
    assert stale.status_code == 412, stale.text
    assert stale.headers["content-type"] == "application/problem+json"
    assert (await coordinator.get(url)).json()["agreement"]["approved"] is False

    confidential = await _share(coordinator, partner["id"], 2, {"max_tier": "confidential"})
    assert confidential.status_code == 422, confidential.text
    unknown = await _share(coordinator, str(uuid.uuid4()), 1, BY_RESTRICTED)
    assert unknown.status_code == 404, unknown.text


async def test_coordinators_see_the_key_thumbprints_to_confirm(
    sign_in_as: SignInAs, admin: httpx.AsyncClient
) -> None:
    coordinator = (await sign_in_as(Role.coordinator)).client
    await register_with_key(admin)
    listed = (await coordinator.get(PARTNERS)).json()["items"]
    assert [p["key_thumbprints"] for p in listed] == [[PARTNER_KEY.thumbprint()]]


async def test_the_agreement_route_is_documented_with_every_status(
    anonymous: httpx.AsyncClient,
) -> None:
    schema = (await anonymous.get("/openapi.json")).json()
    operation = schema["paths"][f"{PARTNERS}/{{partner_id}}/agreement"]["put"]
    # Its own refusals, and those every body and every operation can meet (app/core/openapi.py).
    own = {"200", "401", "403", "404", "412", "422", "428"}
    assert set(operation["responses"]) == own | {"400", "408", "409", "413", "415", "503"}
    for status in ("401", "403", "404", "412", "422", "428"):
        assert "application/problem+json" in operation["responses"][status]["content"]
    assert "agreement" not in schema["components"]["schemas"]["PartnerCreate"]["properties"]
    assert "agreement" not in schema["components"]["schemas"]["PartnerUpdate"]["properties"]


async def test_migration_0007_leaves_agreements_unapproved_and_its_downgrade_empties_them(
    admin_url: str,
) -> None:
    """Agreements made before 0007 were an admin's alone: they start unapproved. Going back
    to 0006, which honours every agreement, empties those no coordinator approved."""
    name = f"habeas_test_partner_0007_{os.getpid()}"
    await embedded.drop_database(admin_url, name)
    await embedded.ensure_database(admin_url, name)
    url = embedded.with_database(admin_url, name)
    insert = (
        "INSERT INTO partner (id, name, client_id, auth_method, scopes, disabled,"
        " share_jurisdiction, share_recognised_only, share_case_file_ids, max_tier, read_write,"
        " version, created_at, updated_at) VALUES ($1, $2, $2, 'client_secret', '{sync:read}',"
        " false, 'BY', false, '{}', 'restricted', true, 1, now(), now())"
    )
    terms = "SELECT share_jurisdiction, share_recognised_only, max_tier, read_write FROM partner"
    try:
        await asyncio.to_thread(upgrade, url, "0006")
        connection = await asyncpg.connect(**embedded.asyncpg_connect_kwargs(url))
        try:
            await connection.execute(insert, uuid.uuid4(), "before")
            await asyncio.to_thread(upgrade, url, "0007")
            assert await connection.fetchval("SELECT agreement_approved_at FROM partner") is None
            approved = uuid.uuid4()
            await connection.execute(insert, approved, "approved")
            await connection.execute(
                "UPDATE partner SET agreement_approved_at = now() WHERE id = $1", approved
            )
            await asyncio.to_thread(downgrade, url, "0006")
            kept = await connection.fetchrow(f"{terms} WHERE id = $1", approved)
            emptied = await connection.fetchrow(f"{terms} WHERE name = 'before'")
        finally:
            await connection.close()
    finally:
        await embedded.drop_database(admin_url, name)
    assert tuple(kept) == ("BY", False, "restricted", True)
    assert tuple(emptied) == (None, True, "public", False)

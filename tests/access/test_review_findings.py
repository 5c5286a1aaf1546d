"""Regression tests for what the independent security review of identity and access found."""

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.access.principal import Role
from app.core.config import Settings
from app.core.crypto import RELOAD_CHECK_SECONDS, new_signing_key, signing_key_ring, write_key_file
from app.core.errors import Unauthenticated
from app.identity.tokens import AccessTokens
from tests.auth import SignedIn, api_client, create_account, create_partner, partner_token
from tests.factories import API, case_body, create_person, event

SignIn = Callable[..., Awaitable[SignedIn]]


async def test_concurrent_wrong_sign_ins_cannot_outrun_the_account_block(
    app: FastAPI, clean_tables: None
) -> None:
    account = await create_account(app, Role.caseworker)
    async with api_client(app) as client:

        async def attempt() -> int:
            response = await client.post(
                f"{API}/auth/login",
                json={"username": account.username, "password": "wrong", "code": "000000"},
            )
            return response.status_code

        codes = await asyncio.gather(*(attempt() for _ in range(15)))
    # The limit is 5 failures: the others are judged after the block and refused unheard.
    assert codes.count(401) == 5
    assert codes.count(429) == 10


async def _public_partner(app: FastAPI) -> httpx.AsyncClient:
    partner, secret = await create_partner(
        app,
        scopes=["sync:read"],
        agreement={"jurisdiction": "BY", "recognised_only": False, "max_tier": "public"},
    )
    client = api_client(app)
    client.headers["Authorization"] = (
        f"Bearer {await partner_token(client, partner.client_id, str(secret))}"
    )
    return client


async def test_public_partners_get_no_internal_reasons(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    person = await create_person(client)
    decided = await client.post(
        f"{API}/persons/{person['id']}/recognition",
        json={
            "status": "political_prisoner",
            "criteria": ["G3.1a"],
            "decided_on": "2022-01-10",
            "rationale": "internal: informant says so",
            "co_signers": ["Board member A"],
        },
        headers={"If-Match": '"0"'},
    )
    assert decided.status_code == 201, decided.text
    case = await client.post(
        f"{API}/cases",
        json=case_body(
            person["id"], [event("detained", "2021-08-10"), event("sentenced", "2022-01-01")]
        ),
    )
    events = (await client.get(f"{API}/cases/{case.json()['id']}/status-events")).json()
    retracted = await client.post(
        f"{API}/cases/{case.json()['id']}/status-events/{events['events'][1]['id']}/retraction",
        json={"reason": "informant in colony 15 recanted"},
        headers={"If-Match": '"1"'},
    )
    assert retracted.status_code == 201, retracted.text
    partner = await _public_partner(app)
    try:
        recognition = (await partner.get(f"{API}/persons/{person['id']}/recognition")).json()
        history = (await partner.get(f"{API}/cases/{case.json()['id']}/status-events")).json()
    finally:
        await partner.aclose()
    current = recognition["current"]
    assert current["status"] == "political_prisoner"
    for field in ("rationale", "co_signers", "decided_by", "source_ids"):
        assert field not in current, field
    retraction = history["events"][1]["retraction"]
    # That the event was withdrawn is public; why and by whom is not.
    assert retraction is not None
    assert "reason" not in retraction and "recorded_by" not in retraction


async def test_a_stored_answer_is_not_replayed_to_a_caller_who_lost_access(
    client: httpx.AsyncClient, sign_in_as: SignIn
) -> None:
    caseworker = await sign_in_as(Role.caseworker)
    person = await create_person(client)
    case = (
        await client.post(
            f"{API}/cases",
            json=case_body(person["id"], assigned_caseworkers=[str(caseworker.account.id)]),
        )
    ).json()
    headers = {"If-Match": '"1"', "Idempotency-Key": "sentence-1"}
    body = event("sentenced", "2022-03-01", note="seen by the assigned caseworker only")
    first = await caseworker.client.post(
        f"{API}/cases/{case['id']}/status-events", json=body, headers=headers
    )
    assert first.status_code == 201, first.text
    withdrawn = await client.patch(
        f"{API}/cases/{case['id']}",
        json={"assigned_caseworkers": [], "confidentiality": "high"},
        headers={"If-Match": '"2"'},
    )
    assert withdrawn.status_code == 200, withdrawn.text
    again = await caseworker.client.post(
        f"{API}/cases/{case['id']}/status-events", json=body, headers=headers
    )
    assert again.status_code == 404
    assert "seen by the assigned caseworker only" not in again.text


def test_a_cached_token_is_dropped_when_its_key_leaves_the_ring(tmp_path: Path) -> None:
    first, second = new_signing_key("k1"), new_signing_key("k2")
    key_file = tmp_path / "jwt.json"
    write_key_file(key_file, {"active": "k1", "keys": {"k1": first, "k2": second}})
    settings = Settings(_env_file=None, jwt_key_file=key_file)
    tokens = AccessTokens(settings, signing_key_ring(settings))
    token = tokens.issue(uuid.uuid4(), 60, client_id="habeas").token
    assert tokens.verify(token)["client_id"] == "habeas"  # verified once, now cached
    write_key_file(key_file, {"active": "k2", "keys": {"k2": second}})
    os.utime(key_file, (1, 1))  # another modification time, even within one clock tick
    time.sleep(RELOAD_CHECK_SECONDS + 0.1)  # the ring's next look at its file is due
    with pytest.raises(Unauthenticated):
        tokens.verify(token)


async def test_a_blocked_address_writes_nothing_for_the_names_it_tries(
    anonymous: httpx.AsyncClient, db: Any
) -> None:
    async def attempt(name: str) -> int:
        response = await anonymous.post(
            f"{API}/auth/login", json={"username": name, "password": "x", "code": "000000"}
        )
        return response.status_code

    assert [await attempt(f"nobody{i}") for i in range(20)] == [401] * 20
    rows = await db.fetchval("SELECT count(*) FROM sign_in_throttle")
    assert [await attempt(f"invented{i}") for i in range(10)] == [429] * 10
    assert await db.fetchval("SELECT count(*) FROM sign_in_throttle") == rows


async def test_a_client_id_with_a_nul_byte_is_an_oauth_error_not_a_500(
    anonymous: httpx.AsyncClient,
) -> None:
    # Found by the fuzz test: the id went to the database, which refuses NUL in text.
    for form in (
        "grant_type=client_credentials&client_id=hbp_%00&client_secret=x",
        "grant_type=client_credentials&client_id=a%00b&client_secret=x",
    ):
        response = await anonymous.post(
            f"{API}/auth/token",
            content=form.encode(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        # The one answer for a client that fails to authenticate (RFC 6749 §5.2).
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "invalid_client"

"""Account administration by admins: create, list, read, and the refusals around it."""

import hashlib
import uuid

import asyncpg
import httpx
import pytest

from app.access.principal import Role
from tests.auth import (
    PROBE,
    SignInAs,
    assert_problem,
    etag_of,
    while_an_uncommitted_insert_holds_the_name,
)

API = "/api/v1"
USERS = f"{API}/users"
VERSION_1 = {"If-Match": '"1"'}


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

"""Separation of duties (DESIGN §4), told through the API: an admin makes accounts but never
learns a password or TOTP secret (a one-time enrolment code instead), the person enrols
themselves, and the roles that read case content, and admin, are held only once a second
person has approved them. Also the password rules, and that all of it is audited without
secrets.

Only set-up (an expired code) and the "what was stored" checks touch the database directly.
"""

import ast
import json
import secrets
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pyotp
import pytest

from app.access.principal import Role
from app.core import config as config_module
from app.core.config import InvalidSetting
from app.identity.passwords import problems_with
from app.identity.roles import ALWAYS_NEEDING_APPROVAL, roles_needing_approval
from app.main import create_app
from tests.auth import (
    Account,
    SignedIn,
    api_client,
    assert_problem,
    cli_env,
    etag_of,
    log_in,
    run_cli,
    unverified,
)
from tests.conftest import TEST_KEYS_DIR, separate_app, settings_for
from tests.factories import create_case
from tests.identity.addresses import ATTACKER, OWNER, client_at

API = "/api/v1"
USERS = f"{API}/users"
ENROL = f"{API}/auth/enrolment"
CONFIRM = f"{API}/auth/enrolment/confirmation"
LOGIN = f"{API}/auth/login"
REFRESH = f"{API}/auth/refresh"
ROLE_REQUESTS = f"{API}/role-requests"
AUDIT_EVENTS = f"{API}/audit/events"
GOOD_PASSWORD = "winter orchard lantern 47"

SignInAs = Callable[..., Awaitable[SignedIn]]


# Helpers ----------------------------------------------------------------------------------


async def create(admin: httpx.AsyncClient, username: str, role: str) -> dict[str, Any]:
    response = await admin.post(USERS, json={"username": username, "role": role})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def enrol(
    anonymous: httpx.AsyncClient, code: str, password: str = GOOD_PASSWORD
) -> dict[str, Any]:
    """Both steps of enrolment, as the person does them; the TOTP secret they got."""
    started = await anonymous.post(ENROL, json={"enrolment_code": code, "password": password})
    assert started.status_code == 200, started.text
    secret = started.json()["totp_secret"]
    confirmed = await anonymous.post(
        CONFIRM, json={"enrolment_code": code, "code": pyotp.TOTP(secret).now()}
    )
    assert confirmed.status_code == 204, confirmed.text
    body: dict[str, Any] = started.json()
    return body


def account_of(created: dict[str, Any], enrolled: dict[str, Any], role: Role) -> Account:
    return Account(
        uuid.UUID(created["id"]), created["username"], GOOD_PASSWORD, enrolled["totp_secret"], role
    )


def login_body(account: Account, steps_ahead: int = 1) -> dict[str, str]:
    # The confirming code used the current step; sign-ins use later ones.
    return {
        "username": account.username,
        "password": account.password,
        "code": account.code(steps_ahead),
    }


async def pending_request(client: httpx.AsyncClient, user_id: object) -> dict[str, Any]:
    listed = await client.get(ROLE_REQUESTS)
    assert listed.status_code == 200, listed.text
    found = [item for item in listed.json()["items"] if item["user_id"] == str(user_id)]
    assert len(found) == 1, listed.json()
    return found[0]


async def decide(
    client: httpx.AsyncClient, request: dict[str, Any], verdict: str
) -> httpx.Response:
    return await client.post(
        f"{ROLE_REQUESTS}/{request['id']}/{verdict}",
        headers={"If-Match": f'"{request["version"]}"'},
    )


async def audit_rows(db: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT action, outcome, resource_type, resource_id, actor_id, changes, detail,"
        " row_to_json(e)::text AS whole FROM audit_event e ORDER BY seq"
    )
    found = []
    for row in rows:
        event = dict(row)
        for name in ("changes", "detail"):
            if isinstance(event[name], str):
                event[name] = json.loads(event[name])
        found.append(event)
    return found


def user_fields(event: dict[str, Any], user_id: object) -> dict[str, Any]:
    matches = [c for c in event["changes"] if c["type"] == "user" and c["id"] == str(user_id)]
    assert len(matches) == 1, event["changes"]
    fields: dict[str, Any] = matches[0]["fields"]
    return fields


# 1. A new coordinator ----------------------------------------------------------------------


async def test_an_admin_making_a_coordinator_never_sees_its_credentials_nor_can_approve_it(
    sign_in_as: SignInAs, anonymous: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    admin = await sign_in_as(Role.admin)
    created = await create(admin.client, "new.coordinator", "coordinator")
    # The admin gets a code to hand over, and nothing to sign in with.
    assert not {"password", "totp_secret", "totp_uri"} & set(created)
    assert created["role"] is None and created["pending_role"] == "coordinator"
    assert created["enrolled"] is False
    code = created["enrolment_code"]
    assert len(code.replace("-", "")) == 32  # 160 random bits
    stored = await db.fetchrow(
        "SELECT password_hash, totp_secret, enrolment_code_hash FROM app_user WHERE id = $1",
        uuid.UUID(created["id"]),
    )
    assert stored["password_hash"] is None and stored["totp_secret"] is None
    assert code.encode() not in bytes(stored["enrolment_code_hash"])

    # The person enrols with the code; until a second person approves, they cannot sign in
    # (the same answer as a wrong password), let alone act as a coordinator.
    enrolled = await enrol(anonymous, code)
    assert enrolled["username"] == "new.coordinator"
    assert enrolled["totp_uri"].startswith("otpauth://totp/")
    account = account_of(created, enrolled, Role.coordinator)
    assert_problem(await anonymous.post(LOGIN, json=login_body(account)), 401, "sign-in-failed")

    # The admin who asked cannot approve it.
    request = await pending_request(admin.client, created["id"])
    assert request["role"] == "coordinator" and request["requested_by"] == str(admin.account.id)
    assert request["username"] == "new.coordinator" and request["status"] == "pending"
    refused = await decide(admin.client, request, "approval")
    assert_problem(refused, 403, "forbidden")
    assert_problem(await anonymous.post(LOGIN, json=login_body(account)), 401, "sign-in-failed")

    # A second admin can; then the person signs in as a coordinator.
    second = await sign_in_as(Role.admin)
    approved = await decide(second.client, request, "approval")
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    assert approved.json()["decided_by"] == str(second.account.id)
    assert approved.headers["etag"] == '"2"'
    # (A refused sign-in used no code: the next step is still free.)
    tokens = await log_in(anonymous, account, 1)
    assert unverified(tokens["access_token"])[1]["role"] == "coordinator"
    as_coordinator = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await anonymous.get(ROLE_REQUESTS, headers=as_coordinator)).status_code == 200
    read = await second.client.get(f"{USERS}/{created['id']}")
    assert read.json()["role"] == "coordinator" and read.json()["pending_role"] is None
    assert read.json()["enrolled"] is True
    # Decided once: the request is no longer listed, and cannot be decided again.
    listed = (await second.client.get(ROLE_REQUESTS)).json()["items"]
    assert str(created["id"]) not in {item["user_id"] for item in listed}
    again = await second.client.post(
        f"{ROLE_REQUESTS}/{request['id']}/rejection", headers={"If-Match": '"2"'}
    )
    assert_problem(again, 409, "conflict")


async def test_a_coordinator_may_approve_and_the_admin_role_needs_approval_too(
    sign_in_as: SignInAs, anonymous: httpx.AsyncClient
) -> None:
    """The obvious loophole: an admin makes a second admin, redeems its code and approves
    their own request. The second admin holds no role until someone else approves."""
    admin = await sign_in_as(Role.admin)
    created = await create(admin.client, "second.admin", "admin")
    assert created["role"] is None and created["pending_role"] == "admin"
    account = account_of(created, await enrol(anonymous, created["enrolment_code"]), Role.admin)
    assert_problem(await anonymous.post(LOGIN, json=login_body(account)), 401, "sign-in-failed")
    request = await pending_request(admin.client, created["id"])
    assert_problem(await decide(admin.client, request, "approval"), 403, "forbidden")

    coordinator = await sign_in_as(Role.coordinator)
    approved = await decide(coordinator.client, request, "approval")
    assert approved.status_code == 200, approved.text
    tokens = await log_in(anonymous, account, 1)
    assert unverified(tokens["access_token"])[1]["role"] == "admin"


async def test_the_auditor_role_reads_no_case_content_and_is_granted_at_once(
    sign_in_as: SignInAs, anonymous: httpx.AsyncClient
) -> None:
    admin = (await sign_in_as(Role.admin)).client
    created = await create(admin, "plain.auditor", "auditor")
    assert created["role"] == "auditor" and created["pending_role"] is None
    account = account_of(created, await enrol(anonymous, created["enrolment_code"]), Role.auditor)
    tokens = await log_in(anonymous, account, 1)
    assert unverified(tokens["access_token"])[1]["role"] == "auditor"


@pytest.mark.parametrize("role", [Role.caseworker, Role.analyst])
async def test_an_admin_who_redeems_the_code_of_a_reader_of_case_files_reads_none_until_approved(
    sign_in_as: SignInAs, anonymous: httpx.AsyncClient, role: Role
) -> None:
    """The admin is shown every new account's enrolment code and can redeem it: were a
    caseworker's or an analyst's role granted at once, the admin would read every normal
    case file's restricted fields through an account of their own making."""
    coordinator = await sign_in_as(Role.coordinator)
    case_url = f"{API}/cases/{(await create_case(coordinator.client))['id']}"
    admin = await sign_in_as(Role.admin)
    created = await create(admin.client, f"own.{role.value}", role.value)
    assert created["role"] is None and created["pending_role"] == role.value

    # The admin enrols with the code: the account is theirs, but it holds no role, so it
    # gets no token to read anything with, and the admin cannot approve it.
    account = account_of(created, await enrol(anonymous, created["enrolment_code"]), role)
    assert_problem(await anonymous.post(LOGIN, json=login_body(account)), 401, "sign-in-failed")
    request = await pending_request(admin.client, created["id"])
    assert request["requested_by"] == str(admin.account.id)
    assert_problem(await decide(admin.client, request, "approval"), 403, "forbidden")
    assert_problem(await anonymous.post(LOGIN, json=login_body(account)), 401, "sign-in-failed")

    # A coordinator approves (vouching for the person): from then on it reads case files.
    assert (await decide(coordinator.client, request, "approval")).status_code == 200
    tokens = await log_in(anonymous, account, 1)
    assert unverified(tokens["access_token"])[1]["role"] == role.value
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    read = await anonymous.get(case_url, headers=bearer)
    assert read.status_code == 200, read.text


async def test_the_setting_adds_roles_needing_approval_and_drops_none(
    sign_in_as: SignInAs, database_url: str
) -> None:
    """The setting can add a role (here auditor), never drop one that reads case content
    or administers, even when it names only some of them."""
    admin = await sign_in_as(Role.admin)
    for setting in ("auditor", "admin,coordinator,auditor"):
        async with (
            separate_app(database_url, roles_needing_approval=setting) as configured,
            api_client(configured, headers=admin.client.headers) as client,
        ):
            for role in ("auditor", "caseworker", "analyst", "coordinator", "admin"):
                created = await create(client, f"{role}.{secrets.token_hex(2)}", role)
                assert created["role"] is None and created["pending_role"] == role, setting


def test_every_role_that_reads_case_content_and_admin_always_need_approval() -> None:
    assert {Role.admin, Role.coordinator, Role.caseworker, Role.analyst} == ALWAYS_NEEDING_APPROVAL
    assert roles_needing_approval("") == ALWAYS_NEEDING_APPROVAL
    assert roles_needing_approval(" Auditor, admin ,") == ALWAYS_NEEDING_APPROVAL | {Role.auditor}


async def test_an_unknown_role_in_the_setting_stops_the_start(
    database_url: str, tmp_path: Path
) -> None:
    with pytest.raises(InvalidSetting, match="'gardener' is not a role"):
        create_app(settings_for(database_url, roles_needing_approval="auditor,gardener"))
    env = cli_env(
        DATABASE_URL=database_url,
        HABEAS_DATA_DIR=str(TEST_KEYS_DIR),
        HABEAS_ROLES_NEEDING_APPROVAL="auditor,gardener",
    )
    done = await run_cli(["users", "add", "never.made", "--role", "analyst"], env, tmp_path)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "Refusing to start: HABEAS_ROLES_NEEDING_APPROVAL: 'gardener' is not a role"
        " (one of admin, coordinator, caseworker, analyst, auditor)."
    ]


def test_the_settings_know_no_feature() -> None:
    """app/core imports no feature: the roles in the setting are plain names, checked by
    app/identity at start-up."""
    tree = ast.parse(Path(config_module.__file__).read_text())
    imported = [
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    ]
    features = [n for n in imported if n and n.startswith("app.") and not n.startswith("app.core")]
    assert features == []


# 2. Role changes of existing users ----------------------------------------------------------


async def test_an_existing_user_keeps_their_role_until_the_new_one_is_approved(
    sign_in_as: SignInAs, anonymous: httpx.AsyncClient
) -> None:
    admin = (await sign_in_as(Role.admin)).client
    target = await sign_in_as(Role.caseworker)
    asked = await admin.patch(
        f"{USERS}/{target.account.id}",
        json={"role": "coordinator"},
        headers={"If-Match": await etag_of(admin, target.account.id)},
    )
    assert asked.status_code == 200, asked.text
    assert asked.json()["role"] == "caseworker" and asked.json()["pending_role"] == "coordinator"
    # Still a caseworker: the session goes on, without coordinator powers.
    assert (await target.client.get(f"{API}/persons")).status_code == 200
    assert_problem(await target.client.get(ROLE_REQUESTS), 403, "forbidden")
    assert unverified(target.tokens["access_token"])[1]["role"] == "caseworker"

    # A coordinator rejects it: nothing changes for the user.
    coordinator = (await sign_in_as(Role.coordinator)).client
    request = await pending_request(coordinator, target.account.id)
    rejected = await decide(coordinator, request, "rejection")
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    read = (await admin.get(f"{USERS}/{target.account.id}")).json()
    assert read["role"] == "caseworker" and read["pending_role"] is None
    assert (await target.client.get(f"{API}/persons")).status_code == 200

    # Asked again and approved: the old sessions end; the next one is a coordinator's.
    await admin.patch(
        f"{USERS}/{target.account.id}",
        json={"role": "coordinator"},
        headers={"If-Match": await etag_of(admin, target.account.id)},
    )
    request = await pending_request(coordinator, target.account.id)
    assert (await decide(coordinator, request, "approval")).status_code == 200
    assert_problem(await target.client.get(f"{API}/persons"), 401, "unauthenticated")
    tokens = await log_in(anonymous, target.account, 1)
    assert unverified(tokens["access_token"])[1]["role"] == "coordinator"


async def test_an_auditor_given_a_role_that_reads_case_files_reads_none_until_approved(
    sign_in_as: SignInAs, anonymous: httpx.AsyncClient
) -> None:
    """The way round the approval of new accounts: an admin makes an auditor (granted at
    once), redeems its code, then gives the account a role that reads case files."""
    coordinator = await sign_in_as(Role.coordinator)
    case_url = f"{API}/cases/{(await create_case(coordinator.client))['id']}"
    admin = (await sign_in_as(Role.admin)).client
    target = await sign_in_as(Role.auditor)
    asked = await admin.patch(
        f"{USERS}/{target.account.id}",
        json={"role": "caseworker"},
        headers={"If-Match": await etag_of(admin, target.account.id)},
    )
    assert asked.status_code == 200, asked.text
    assert asked.json()["role"] == "auditor" and asked.json()["pending_role"] == "caseworker"
    # Still an auditor, its session unchanged: the case file is hidden from it.
    assert_problem(await target.client.get(case_url), 404, "not-found")

    request = await pending_request(admin, target.account.id)
    assert_problem(await decide(admin, request, "approval"), 403, "forbidden")
    assert (await decide(coordinator.client, request, "approval")).status_code == 200
    tokens = await log_in(anonymous, target.account, 1)
    assert unverified(tokens["access_token"])[1]["role"] == "caseworker"
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await anonymous.get(case_url, headers=bearer)).status_code == 200


async def test_nobody_approves_a_role_for_themselves(sign_in_as: SignInAs) -> None:
    admin = (await sign_in_as(Role.admin)).client
    subject = await sign_in_as(Role.coordinator)
    await admin.patch(
        f"{USERS}/{subject.account.id}",
        json={"role": "admin"},
        headers={"If-Match": await etag_of(admin, subject.account.id)},
    )
    request = await pending_request(subject.client, subject.account.id)
    assert_problem(await decide(subject.client, request, "approval"), 403, "forbidden")
    assert (await admin.get(f"{USERS}/{subject.account.id}")).json()["role"] == "coordinator"
    other = (await sign_in_as(Role.coordinator)).client
    assert (await decide(other, request, "approval")).status_code == 200


async def test_a_later_role_change_withdraws_the_open_request(sign_in_as: SignInAs) -> None:
    admin = (await sign_in_as(Role.admin)).client
    target = await sign_in_as(Role.analyst)
    url = f"{USERS}/{target.account.id}"
    for role in ("coordinator", "auditor"):
        changed = await admin.patch(
            url, json={"role": role}, headers={"If-Match": await etag_of(admin, target.account.id)}
        )
        assert changed.status_code == 200, changed.text
    read = (await admin.get(url)).json()
    assert read["role"] == "auditor" and read["pending_role"] is None
    assert (await admin.get(ROLE_REQUESTS)).json()["items"] == []


async def test_deciding_needs_the_version_and_only_admins_and_coordinators_may(
    sign_in_as: SignInAs,
) -> None:
    admin = (await sign_in_as(Role.admin)).client
    created = await create(admin, "waiting.one", "coordinator")
    request = await pending_request(admin, created["id"])
    url = f"{ROLE_REQUESTS}/{request['id']}/approval"
    other = (await sign_in_as(Role.coordinator)).client
    assert_problem(await other.post(url), 428, "if-match-required")
    assert_problem(await other.post(url, headers={"If-Match": '"5"'}), 412, "stale-version")
    missing = await other.post(
        f"{ROLE_REQUESTS}/{uuid.uuid4()}/approval", headers={"If-Match": '"1"'}
    )
    assert_problem(missing, 404, "not-found")
    for role in (Role.caseworker, Role.analyst, Role.auditor):
        client = (await sign_in_as(role)).client
        assert_problem(await client.get(ROLE_REQUESTS), 403, "forbidden")
        assert_problem(await decide(client, request, "approval"), 403, "forbidden")
    assert (await pending_request(admin, created["id"]))["status"] == "pending"


@pytest.mark.parametrize(
    ("held", "given"),
    [
        (Role.coordinator, Role.caseworker),
        (Role.caseworker, Role.analyst),
        (Role.coordinator, Role.auditor),
        (Role.admin, Role.auditor),
    ],
)
async def test_a_role_that_reads_no_more_takes_effect_at_once(
    sign_in_as: SignInAs, anonymous: httpx.AsyncClient, held: Role, given: Role
) -> None:
    """A demotion waits for no one: the user does not keep the old role meanwhile."""
    admin = (await sign_in_as(Role.admin)).client
    target = await sign_in_as(held)
    changed = await admin.patch(
        f"{USERS}/{target.account.id}",
        json={"role": given.value},
        headers={"If-Match": await etag_of(admin, target.account.id)},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["role"] == given.value and changed.json()["pending_role"] is None
    assert (await admin.get(ROLE_REQUESTS)).json()["items"] == []
    # The old session, with the old role, ends at once.
    assert_problem(await target.client.get(ROLE_REQUESTS), 401, "unauthenticated")
    tokens = await log_in(anonymous, target.account, 1)
    assert unverified(tokens["access_token"])[1]["role"] == given.value


@pytest.mark.parametrize(
    ("held", "given"),
    [
        (Role.analyst, Role.caseworker),
        (Role.caseworker, Role.coordinator),
        (Role.coordinator, Role.admin),
        (Role.admin, Role.coordinator),
        (Role.admin, Role.analyst),
    ],
)
async def test_a_role_that_reads_more_or_administers_waits_for_approval(
    sign_in_as: SignInAs, held: Role, given: Role
) -> None:
    admin = (await sign_in_as(Role.admin)).client
    target = await sign_in_as(held)
    asked = await admin.patch(
        f"{USERS}/{target.account.id}",
        json={"role": given.value},
        headers={"If-Match": await etag_of(admin, target.account.id)},
    )
    assert asked.status_code == 200, asked.text
    assert asked.json()["role"] == held.value and asked.json()["pending_role"] == given.value
    # Still signed in, with the old role.
    assert (await target.client.get(ROLE_REQUESTS)).status_code != 401
    read = (await admin.get(f"{USERS}/{target.account.id}")).json()
    assert read["role"] == held.value


# Approval vouches for whoever enrolled ------------------------------------------------------

ALICE_PHONE = "Mozilla/5.0 (Alice's phone)"


async def confirm_from(
    app: Any, address: str, code: str, user_agent: str, password: str = GOOD_PASSWORD
) -> str:
    """Both steps of enrolment from a client at `address`; the TOTP secret."""
    async with client_at(app, address) as person:
        person.headers["User-Agent"] = user_agent
        started = await person.post(ENROL, json={"enrolment_code": code, "password": password})
        assert started.status_code == 200, started.text
        secret: str = started.json()["totp_secret"]
        confirmed = await person.post(
            CONFIRM, json={"enrolment_code": code, "code": pyotp.TOTP(secret).now()}
        )
        assert confirmed.status_code == 204, confirmed.text
    return secret


def assert_not_enrolled(response: httpx.Response) -> None:
    assert_problem(response, 409, "conflict")
    assert "has not enrolled" in response.json()["detail"]
    assert "out of band" in response.json()["detail"]


async def test_a_role_is_approved_only_once_the_account_is_enrolled(
    app: Any, sign_in_as: SignInAs, anonymous: httpx.AsyncClient
) -> None:
    """The review's case: an admin makes "alice-new" a coordinator and keeps the code; a
    coordinator approves before anyone enrolled; the admin redeems the code and is a
    coordinator. Approval now waits for the enrolment, and shows the approver when and
    from where it happened, to check with Alice."""
    admin = (await sign_in_as(Role.admin)).client
    coordinator = (await sign_in_as(Role.coordinator)).client
    created = await create(admin, "alice-new", "coordinator")
    request = await pending_request(coordinator, created["id"])
    assert request["enrolled_at"] is None and request["enrolled_from_address"] is None
    assert_not_enrolled(await decide(coordinator, request, "approval"))

    # Halfway (a password set, the authenticator not confirmed) is not enrolled either.
    started = await anonymous.post(
        ENROL, json={"enrolment_code": created["enrolment_code"], "password": GOOD_PASSWORD}
    )
    assert started.status_code == 200, started.text
    assert_not_enrolled(await decide(coordinator, request, "approval"))
    # Refusing needs no enrolment.
    assert (await pending_request(coordinator, created["id"]))["status"] == "pending"

    before = datetime.now(UTC)
    secret = await confirm_from(app, OWNER, created["enrolment_code"], ALICE_PHONE)
    request = await pending_request(coordinator, created["id"])
    assert before <= datetime.fromisoformat(request["enrolled_at"]) <= datetime.now(UTC)
    assert request["enrolled_from_address"] == OWNER
    assert request["enrolled_user_agent"] == ALICE_PHONE
    approved = await decide(coordinator, request, "approval")
    assert approved.status_code == 200, approved.text
    assert approved.json()["enrolled_from_address"] == OWNER
    account = Account(
        uuid.UUID(created["id"]), "alice-new", GOOD_PASSWORD, secret, Role.coordinator
    )
    tokens = await log_in(anonymous, account, 1)
    assert unverified(tokens["access_token"])[1]["role"] == "coordinator"
    # Not on the public record of the account.
    assert "enrolled_from_address" not in (await admin.get(f"{USERS}/{created['id']}")).json()


async def reset(admin: httpx.AsyncClient, user_id: object) -> dict[str, Any]:
    response = await admin.post(
        f"{USERS}/{user_id}/reset", headers={"If-Match": await etag_of(admin, user_id)}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_reset_withdraws_a_request_waiting_for_a_new_account(
    app: Any, sign_in_as: SignInAs, db: asyncpg.Connection
) -> None:
    """An account that holds no role yet, enrolled and waiting: a reset (a new code) must
    not let an approval of that request reach whoever redeems the new code."""
    admin = (await sign_in_as(Role.admin)).client
    coordinator = (await sign_in_as(Role.coordinator)).client
    created = await create(admin, "waits.for.approval", "coordinator")
    await confirm_from(app, OWNER, created["enrolment_code"], ALICE_PHONE)
    earlier = await pending_request(coordinator, created["id"])
    assert earlier["enrolled_from_address"] == OWNER

    after_reset = await reset(admin, created["id"])
    assert after_reset["role"] is None and after_reset["pending_role"] == "coordinator"
    fresh = await pending_request(coordinator, created["id"])
    assert fresh["id"] != earlier["id"] and fresh["role"] == "coordinator"
    assert fresh["enrolled_at"] is None and fresh["enrolled_from_address"] is None
    withdrawn = await db.fetchval(
        "SELECT status FROM role_request WHERE id = $1", uuid.UUID(earlier["id"])
    )
    assert withdrawn == "withdrawn"
    # The approval someone was about to give (the request they read) is not reused: it
    # changed since, and is withdrawn.
    assert_problem(await decide(coordinator, earlier, "approval"), 412, "stale-version")
    refused = await decide(coordinator, {**earlier, "version": 2}, "approval")
    assert_problem(refused, 409, "conflict")
    assert "withdrawn" in refused.json()["detail"]
    assert_not_enrolled(await decide(coordinator, fresh, "approval"))

    # The admin redeems the new code: the approver sees that enrolment, not the old one.
    await confirm_from(app, ATTACKER, after_reset["enrolment_code"], "admin-laptop")
    shown = await pending_request(coordinator, created["id"])
    assert shown["enrolled_from_address"] == ATTACKER
    assert shown["enrolled_user_agent"] == "admin-laptop"
    assert (await admin.get(f"{USERS}/{created['id']}")).json()["role"] is None


async def test_a_reset_withdraws_the_request_of_an_auditor_waiting_for_a_content_role(
    app: Any, sign_in_as: SignInAs, anonymous: httpx.AsyncClient
) -> None:
    admin = (await sign_in_as(Role.admin)).client
    coordinator = (await sign_in_as(Role.coordinator)).client
    auditor = await sign_in_as(Role.auditor)
    await admin.patch(
        f"{USERS}/{auditor.account.id}",
        json={"role": "caseworker"},
        headers={"If-Match": await etag_of(admin, auditor.account.id)},
    )
    earlier = await pending_request(coordinator, auditor.account.id)

    after_reset = await reset(admin, auditor.account.id)
    # Auditor needs no approval, so it is kept; the request is filed afresh.
    assert after_reset["role"] == "auditor" and after_reset["pending_role"] == "caseworker"
    fresh = await pending_request(coordinator, auditor.account.id)
    assert fresh["id"] != earlier["id"] and fresh["role"] == "caseworker"
    assert_problem(
        await decide(coordinator, {**earlier, "version": 2}, "approval"), 409, "conflict"
    )
    assert_not_enrolled(await decide(coordinator, fresh, "approval"))
    # Once the person enrols again, it can be approved.
    secret = await confirm_from(app, OWNER, after_reset["enrolment_code"], ALICE_PHONE)
    assert (await decide(coordinator, fresh, "approval")).status_code == 200
    account = Account(
        auditor.account.id, auditor.account.username, GOOD_PASSWORD, secret, Role.caseworker
    )
    tokens = await log_in(anonymous, account, 1)
    assert unverified(tokens["access_token"])[1]["role"] == "caseworker"


async def test_an_admin_who_resets_another_admin_gets_no_approval_ahead_of_enrolment(
    app: Any, sign_in_as: SignInAs
) -> None:
    """Escalation: admin A resets admin B, and a colleague approves what looks like a
    routine request before anyone enrolled. Refused; once someone enrols, the request shows
    when and from where, for the colleague to check with B."""
    first = await sign_in_as(Role.admin)
    second = await sign_in_as(Role.admin)
    colleague = (await sign_in_as(Role.coordinator)).client
    after_reset = await reset(first.client, second.account.id)
    assert after_reset["role"] is None and after_reset["pending_role"] == "admin"
    request = await pending_request(colleague, second.account.id)
    assert request["requested_by"] == str(first.account.id)
    assert_not_enrolled(await decide(colleague, request, "approval"))

    await confirm_from(app, ATTACKER, after_reset["enrolment_code"], "admin-a-laptop")
    request = await pending_request(colleague, second.account.id)
    assert request["enrolled_from_address"] == ATTACKER
    assert request["enrolled_user_agent"] == "admin-a-laptop"
    assert_problem(await decide(first.client, request, "approval"), 403, "forbidden")


# 3. Codes: single use, expiry, reset -----------------------------------------------------------


async def test_a_code_is_good_for_one_enrolment_and_refusals_are_uniform(
    sign_in_as: SignInAs, anonymous: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    admin = (await sign_in_as(Role.admin)).client
    used = await create(admin, "used.code", "analyst")
    await enrol(anonymous, used["enrolment_code"])
    expired = await create(admin, "expired.code", "analyst")
    await db.execute(
        "UPDATE app_user SET enrolment_expires_at = now() - interval '1 second' WHERE id = $1",
        uuid.UUID(expired["id"]),
    )
    answers = []
    for code in (
        used["enrolment_code"],
        expired["enrolment_code"],
        "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHHH",
    ):
        for path, body in (
            (ENROL, {"enrolment_code": code, "password": GOOD_PASSWORD}),
            (CONFIRM, {"enrolment_code": code, "code": "123456"}),
        ):
            response = await anonymous.post(path, json=body)
            assert_problem(response, 400, "enrolment-failed")
            answers.append({k: v for k, v in response.json().items() if k != "instance"})
    assert all(answer == answers[0] for answer in answers)


async def test_an_account_cannot_sign_in_before_the_authenticator_is_confirmed(
    sign_in_as: SignInAs, anonymous: httpx.AsyncClient
) -> None:
    admin = (await sign_in_as(Role.admin)).client
    created = await create(admin, "half.enrolled", "auditor")
    code = created["enrolment_code"]
    # Entering the code without dashes, in lower case, is the same code.
    relaxed = code.replace("-", "").lower()
    started = await anonymous.post(
        ENROL, json={"enrolment_code": relaxed, "password": GOOD_PASSWORD}
    )
    assert started.status_code == 200, started.text
    account = account_of(created, started.json(), Role.auditor)
    assert_problem(await anonymous.post(LOGIN, json=login_body(account)), 401, "sign-in-failed")
    # A wrong authenticator code does not confirm; the right one does.
    wrong = await anonymous.post(CONFIRM, json={"enrolment_code": code, "code": "000000"})
    assert_problem(wrong, 400, "enrolment-failed")
    right = await anonymous.post(CONFIRM, json={"enrolment_code": code, "code": account.code()})
    assert right.status_code == 204, right.text
    assert (await log_in(anonymous, account, 1))["access_token"]
    assert (await admin.get(f"{USERS}/{created['id']}")).json()["enrolled"] is True


async def test_a_reset_ends_every_session_and_the_old_code_and_credentials(
    sign_in_as: SignInAs, anonymous: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    # An auditor: its role is held at once, and stays through a reset.
    admin = (await sign_in_as(Role.admin)).client
    created = await create(admin, "reset.me", "auditor")
    url = f"{USERS}/{created['id']}/reset"
    # A second code before the first was used: the first stops working.
    reissued = await admin.post(url, headers={"If-Match": '"1"'})
    assert reissued.status_code == 200, reissued.text
    first, second = created["enrolment_code"], reissued.json()["enrolment_code"]
    assert first != second
    stale = await anonymous.post(ENROL, json={"enrolment_code": first, "password": GOOD_PASSWORD})
    assert_problem(stale, 400, "enrolment-failed")
    account = account_of(created, await enrol(anonymous, second), Role.auditor)
    tokens = await log_in(anonymous, account, 1)
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await anonymous.get(AUDIT_EVENTS, headers=bearer)).status_code == 200

    reset = await admin.post(url, headers={"If-Match": await etag_of(admin, created["id"])})
    assert reset.status_code == 200, reset.text
    assert reset.json()["enrolled"] is False and "totp_secret" not in reset.json()
    assert reset.json()["role"] == "auditor" and reset.json()["pending_role"] is None
    assert reset.headers["etag"] == f'"{reset.json()["version"]}"'
    # At once: the access token, the refresh token and the old password all stop working.
    assert_problem(await anonymous.get(AUDIT_EVENTS, headers=bearer), 401, "unauthenticated")
    refresh = {"refresh_token": tokens["refresh_token"]}
    assert (await anonymous.post(REFRESH, json=refresh)).status_code == 401
    stored = await db.fetchrow(
        "SELECT password_hash, totp_secret FROM app_user WHERE id = $1", account.id
    )
    assert stored["password_hash"] is None and stored["totp_secret"] is None
    # The person enrols again with the new code.
    again = account_of(
        created, await enrol(anonymous, reset.json()["enrolment_code"]), Role.auditor
    )
    assert (await log_in(anonymous, again, 1))["access_token"]


@pytest.mark.parametrize("role", [Role.coordinator, Role.caseworker, Role.analyst])
async def test_a_reset_suspends_a_role_that_needs_approval(
    sign_in_as: SignInAs, anonymous: httpx.AsyncClient, role: Role
) -> None:
    """Whoever redeems a reset's code gets the account: an admin could reset a coordinator,
    a caseworker or an analyst, enrol as them and read case files. The role returns only
    when a second person approves."""
    approver = await sign_in_as(Role.coordinator)
    case_url = f"{API}/cases/{(await create_case(approver.client))['id']}"
    admin = (await sign_in_as(Role.admin)).client
    target = await sign_in_as(role)
    assert (await target.client.get(case_url)).status_code == 200
    reset = await admin.post(
        f"{USERS}/{target.account.id}/reset",
        headers={"If-Match": await etag_of(admin, target.account.id)},
    )
    assert reset.status_code == 200, reset.text
    assert reset.json()["role"] is None and reset.json()["pending_role"] == role.value
    assert_problem(await target.client.get(case_url), 401, "unauthenticated")
    created = {"id": str(target.account.id), "username": target.account.username}
    account = account_of(created, await enrol(anonymous, reset.json()["enrolment_code"]), role)
    assert_problem(await anonymous.post(LOGIN, json=login_body(account)), 401, "sign-in-failed")
    request = await pending_request(admin, target.account.id)
    assert_problem(await decide(admin, request, "approval"), 403, "forbidden")
    assert (await decide(approver.client, request, "approval")).status_code == 200
    tokens = await log_in(anonymous, account, 1)
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await anonymous.get(case_url, headers=bearer)).status_code == 200


async def test_an_admin_cannot_set_a_password_or_reset_themselves(sign_in_as: SignInAs) -> None:
    signed = await sign_in_as(Role.admin)
    admin = signed.client
    target = await sign_in_as(Role.caseworker)
    url = f"{USERS}/{target.account.id}"
    refused = await admin.patch(url, json={"password": GOOD_PASSWORD}, headers={"If-Match": '"1"'})
    assert_problem(refused, 422, "invalid-input")
    assert GOOD_PASSWORD not in refused.text
    created = await admin.post(
        USERS, json={"username": "with.password", "role": "analyst", "password": GOOD_PASSWORD}
    )
    assert_problem(created, 422, "invalid-input")
    # The old routes that showed a TOTP secret are gone.
    assert (await admin.post(f"{url}/totp", headers={"If-Match": '"1"'})).status_code in (404, 405)
    own = await admin.post(
        f"{USERS}/{signed.account.id}/reset",
        headers={"If-Match": await etag_of(admin, signed.account.id)},
    )
    assert_problem(own, 409, "conflict")
    assert (await target.client.get(f"{API}/persons")).status_code == 200


async def test_wrong_codes_are_throttled_per_address(
    app: Any, anonymous: httpx.AsyncClient
) -> None:
    limit = app.state.security.settings.login_max_failures_per_address
    body = {"enrolment_code": "no-such-code", "password": GOOD_PASSWORD}
    for _ in range(limit):
        assert_problem(await anonymous.post(ENROL, json=body), 400, "enrolment-failed")
    throttled = await anonymous.post(ENROL, json=body)
    assert_problem(throttled, 429, "too-many-attempts")
    assert int(throttled.headers["retry-after"]) > 0


# 4. The password rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("aaaaaaaaaaaa", "password_repetitive"),
        ("abcabcabcabc", "password_repetitive"),
        ("1212121212121", "password_repetitive"),
        ("123456789012", "password_sequential"),
        ("abcdefghijklmn", "password_sequential"),
        ("ZYXWVUTSRQPO", "password_sequential"),
        ("my-Rule.Keeper-2024", "password_contains_username"),
        ("Password1234", "password_guessable"),
        ("qwertyuiopasdf", "password_guessable"),
        ("iloveyou2024!", "password_guessable"),
    ],
)
async def test_a_weak_password_is_refused_with_the_reason(
    sign_in_as: SignInAs, anonymous: httpx.AsyncClient, password: str, rule: str
) -> None:
    admin = (await sign_in_as(Role.admin)).client
    created = await create(admin, "rule.keeper", "analyst")
    code = created["enrolment_code"]
    refused = await anonymous.post(ENROL, json={"enrolment_code": code, "password": password})
    assert_problem(refused, 422, "invalid-input")
    problem = refused.json()
    assert [error["type"] for error in problem["errors"]] == [rule]
    assert problem["errors"][0]["loc"] == ["body", "password"]
    assert problem["errors"][0]["msg"] in problem["detail"]
    assert password not in refused.text and password.lower() not in refused.text.lower()
    # A refused password does not use up the code.
    assert (await enrol(anonymous, code))["username"] == "rule.keeper"


def test_the_rules_say_why_and_accept_a_good_password() -> None:
    assert problems_with(GOOD_PASSWORD, "someone") == []
    assert problems_with(secrets.token_urlsafe(12), "someone") == []
    reasons = {p.code: p.reason for p in problems_with("aaaaaaaaaaaa", "someone")}
    assert "repeats" in reasons["password_repetitive"]
    assert "username" in problems_with("xx-SOMEONE-xx-77", "someone")[0].reason
    guessable = problems_with("Password1234", "someone")[0]
    assert "common" in guessable.reason and "Password1234" not in guessable.reason
    # Longer than the estimator reads: the rules before it still see all of it.
    assert problems_with("ab" * 100, "someone")[0].code == "password_repetitive"
    assert problems_with("kx7!Qp2#vLm9" * 3 + "a" * 80, "someone") == []


async def test_a_short_password_is_refused_by_the_schema(
    sign_in_as: SignInAs, anonymous: httpx.AsyncClient
) -> None:
    admin = (await sign_in_as(Role.admin)).client
    created = await create(admin, "short.one", "analyst")
    body = {"enrolment_code": created["enrolment_code"], "password": "Xq7-short"}
    refused = await anonymous.post(ENROL, json=body)
    assert_problem(refused, 422, "invalid-input")
    assert "Xq7-short" not in refused.text


# 5. The audit trail ------------------------------------------------------------------------------


async def test_the_whole_story_is_audited_and_no_code_or_secret_is_in_the_trail(
    sign_in_as: SignInAs, anonymous: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    admin = await sign_in_as(Role.admin)
    created = await create(admin.client, "audited.one", "coordinator")
    user_id = created["id"]
    enrolled = await enrol(anonymous, created["enrolment_code"])
    request = await pending_request(admin.client, user_id)
    await decide(admin.client, request, "approval")  # refused: the one who asked
    second = await sign_in_as(Role.admin)
    assert (await decide(second.client, request, "approval")).status_code == 200
    reset = await second.client.post(
        f"{USERS}/{user_id}/reset", headers={"If-Match": await etag_of(second.client, user_id)}
    )
    assert reset.status_code == 200
    secrets_shown = [
        created["enrolment_code"],
        created["enrolment_code"].replace("-", ""),
        reset.json()["enrolment_code"],
        GOOD_PASSWORD,
        enrolled["totp_secret"],
    ]
    stored_hash = await db.fetchval(
        "SELECT password_hash FROM app_user WHERE id = $1", uuid.UUID(user_id)
    )
    assert stored_hash is None  # cleared by the reset

    events = [
        e
        for e in await audit_rows(db)
        if e["resource_id"] in {uuid.UUID(user_id), uuid.UUID(request["id"])}
    ]
    by_action = {(e["action"], e["outcome"]): e for e in events}
    assert set(by_action) >= {
        ("user.create", "success"),
        ("user.enrol", "success"),
        ("user.confirm_enrolment", "success"),
        ("user.approve_role", "denied"),
        ("user.approve_role", "success"),
        ("user.reset", "success"),
    }
    for event in events:
        for value in secrets_shown:
            assert value not in event["whole"], (event["action"], "holds a secret")

    create_fields = user_fields(by_action[("user.create", "success")], user_id)
    assert create_fields["enrolment_code"] == {"before": None, "after": "changed"}
    assert "role" not in create_fields  # none held: only asked for, below
    assert by_action[("user.create", "success")]["actor_id"] == admin.account.id
    requested = [
        c for c in by_action[("user.create", "success")]["changes"] if c["type"] == "role_request"
    ]
    assert requested[0]["fields"]["role"]["after"] == "coordinator"

    enrol_event = by_action[("user.enrol", "success")]
    assert enrol_event["actor_id"] == uuid.UUID(user_id)
    assert user_fields(enrol_event, user_id)["password"] == {"before": None, "after": "changed"}
    confirm_fields = user_fields(by_action[("user.confirm_enrolment", "success")], user_id)
    assert confirm_fields["enrolled"] == {"before": False, "after": True}

    denied = by_action[("user.approve_role", "denied")]
    assert denied["actor_id"] == admin.account.id and denied["detail"]["status"] == 403
    approval = by_action[("user.approve_role", "success")]
    assert approval["actor_id"] == second.account.id
    assert user_fields(approval, user_id)["role"] == {"before": None, "after": "coordinator"}

    reset_fields = user_fields(by_action[("user.reset", "success")], user_id)
    for credential in ("password", "totp", "enrolment_code"):
        assert reset_fields[credential] == {"before": None, "after": "changed"}
    assert reset_fields["role"] == {"before": "coordinator", "after": None}


async def test_listing_accounts_shows_who_waits_for_what(sign_in_as: SignInAs) -> None:
    admin = (await sign_in_as(Role.admin)).client
    created = await create(admin, "listed.one", "admin")
    items = {item["username"]: item for item in (await admin.get(USERS)).json()["items"]}
    assert items["listed.one"]["pending_role"] == "admin"
    assert items["listed.one"]["role"] is None and items["listed.one"]["enrolled"] is False
    assert "enrolment_code" not in items["listed.one"]
    read = await admin.get(f"{USERS}/{created['id']}")
    assert "enrolment_code" not in read.json()
    # The code lapses after the configured time (72 hours by default).
    expires = datetime.fromisoformat(created["enrolment_expires_at"])
    expected = datetime.now(UTC) + timedelta(hours=72)
    assert abs((expires - expected).total_seconds()) < 60


# 6. The command line -----------------------------------------------------------------------------


def _cli_json(done: Any) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr
    printed: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return printed


async def test_the_cli_grants_the_admin_role_at_once_only_while_there_is_no_admin(
    anonymous: httpx.AsyncClient, database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    env = cli_env(DATABASE_URL=database_url, HABEAS_DATA_DIR=str(TEST_KEYS_DIR))
    first = _cli_json(
        await run_cli(["users", "add", "root.admin", "--role", "admin"], env, tmp_path)
    )
    assert first["role"] == "admin" and first["pending_role"] is None
    bootstrap = await db.fetchval(
        "SELECT detail FROM audit_event WHERE action = 'user.create' AND resource_id = $1",
        uuid.UUID(first["id"]),
    )
    assert json.loads(bootstrap) == {"bootstrap": True}

    # There is an admin now (not yet enrolled, but enabled): the next one waits.
    second = _cli_json(
        await run_cli(["users", "add", "next.admin", "--role", "admin"], env, tmp_path)
    )
    assert second["role"] is None and second["pending_role"] == "admin"
    coordinator = _cli_json(
        await run_cli(["users", "add", "cli.coord", "--role", "coordinator"], env, tmp_path)
    )
    assert coordinator["role"] is None and coordinator["pending_role"] == "coordinator"

    # The first admin may approve what the system asked for.
    created = {"id": first["id"], "username": "root.admin"}
    admin = account_of(created, await enrol(anonymous, first["enrolment_code"]), Role.admin)
    tokens = await log_in(anonymous, admin, 1)
    as_admin = {"Authorization": f"Bearer {tokens['access_token']}"}
    listed = await anonymous.get(ROLE_REQUESTS, headers=as_admin)
    waiting = {item["username"]: item for item in listed.json()["items"]}
    assert waiting.keys() == {"next.admin", "cli.coord"}
    assert waiting["cli.coord"]["requested_by"] is None
    request = waiting["cli.coord"]
    url = f"{ROLE_REQUESTS}/{request['id']}/approval"
    headers = {**as_admin, "If-Match": f'"{request["version"]}"'}
    # Once the person has enrolled.
    assert_problem(await anonymous.post(url, headers=headers), 409, "conflict")
    await enrol(anonymous, coordinator["enrolment_code"])
    approved = await anonymous.post(url, headers=headers)
    assert approved.status_code == 200, approved.text

    # The operator's break-glass: approve from the command line, as the system; it too
    # waits for the enrolment.
    early = await run_cli(["users", "approve", "next.admin"], env, tmp_path)
    assert early.returncode == 1
    assert early.stderr.startswith("Not approved: The account has not enrolled yet")
    await enrol(anonymous, second["enrolment_code"])
    done = _cli_json(await run_cli(["users", "approve", "next.admin"], env, tmp_path))
    assert done["role"] == "admin"
    actor = await db.fetchval(
        "SELECT actor_type FROM audit_event WHERE action = 'user.approve_role'"
        " AND related @> ARRAY[$1::uuid] ORDER BY seq DESC LIMIT 1",
        uuid.UUID(second["id"]),
    )
    assert actor == "system"
    nothing = await run_cli(["users", "approve", "next.admin"], env, tmp_path)
    assert nothing.returncode == 1 and "no role request" in nothing.stderr


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/api/v1/users/{user_id}/reset", "post"),
        ("/api/v1/role-requests/{request_id}/approval", "post"),
        ("/api/v1/role-requests/{request_id}/rejection", "post"),
    ],
)
async def test_decisions_document_every_refusal(
    anonymous: httpx.AsyncClient, path: str, method: str
) -> None:
    """A generated client learns from the schema every refusal these routes can answer,
    each as a problem document."""
    operation = (await anonymous.get("/openapi.json")).json()["paths"][path][method]
    refusals = {"401", "403", "404", "409", "412", "428"}
    assert refusals <= set(operation["responses"])
    for status in refusals:
        assert "application/problem+json" in operation["responses"][status]["content"]

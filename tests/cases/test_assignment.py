"""Who may be assigned to a case file, and what naming a person in a new case file tells."""

import uuid
from collections.abc import Awaitable, Callable

import asyncpg
from fastapi import FastAPI

from app.access.principal import Role
from tests.auth import SignedIn, create_account
from tests.conftest import row_counts
from tests.factories import API, case_body, create_case, create_person

SignIn = Callable[..., Awaitable[SignedIn]]


async def test_only_active_caseworker_accounts_are_assigned(
    app: FastAPI, sign_in_as: SignIn, db: asyncpg.Connection
) -> None:
    coordinator = (await sign_in_as(Role.coordinator)).client
    caseworker = await create_account(app, Role.caseworker)
    disabled = await create_account(app, Role.caseworker)
    await db.execute("UPDATE app_user SET disabled = true WHERE id = $1", disabled.id)
    analyst = await create_account(app, Role.analyst)
    admin = await create_account(app, Role.admin)
    person = await create_person(coordinator)
    before = await row_counts(db)
    for wrong in (uuid.uuid4(), analyst.id, admin.id, disabled.id):
        refused = await coordinator.post(
            f"{API}/cases",
            json=case_body(person["id"], assigned_caseworkers=[str(caseworker.id), str(wrong)]),
        )
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert str(wrong) in refused.json()["detail"]
        assert str(caseworker.id) not in refused.json()["detail"]
    assert await row_counts(db) == before

    case = await create_case(
        coordinator, person["id"], assigned_caseworkers=[str(caseworker.id)] * 2
    )
    assert case["assigned_caseworkers"] == [str(caseworker.id)]
    refused = await coordinator.patch(
        f"{API}/cases/{case['id']}",
        json={"assigned_caseworkers": [str(caseworker.id), str(analyst.id)]},
        headers={"If-Match": '"1"'},
    )
    assert refused.status_code == 422, refused.text
    # Someone already assigned whose account was disabled since does not block an update.
    await db.execute("UPDATE app_user SET disabled = true WHERE id = $1", caseworker.id)
    other = await create_account(app, Role.caseworker)
    kept = await coordinator.patch(
        f"{API}/cases/{case['id']}",
        json={"assigned_caseworkers": [str(caseworker.id), str(other.id)]},
        headers={"If-Match": '"1"'},
    )
    assert kept.status_code == 200, kept.text
    assert kept.json()["assigned_caseworkers"] == [str(caseworker.id), str(other.id)]


async def test_naming_a_hidden_person_answers_as_an_unknown_one_and_is_recorded(
    sign_in_as: SignIn, db: asyncpg.Connection
) -> None:
    """A caseworker probing for a person behind a high-confidentiality case file through
    a new case file learns nothing, and the attempt is recorded as a denial."""
    coordinator = (await sign_in_as(Role.coordinator)).client
    caseworker = await sign_in_as(Role.caseworker)
    hidden = await create_person(coordinator)
    await create_case(coordinator, hidden["id"], confidentiality="high")
    before = await row_counts(db)
    seq = await db.fetchval("SELECT seq FROM audit_head")

    missing_id = str(uuid.uuid4())
    unknown = await caseworker.client.post(f"{API}/cases", json=case_body(missing_id))
    probed = await caseworker.client.post(f"{API}/cases", json=case_body(hidden["id"]))
    assert unknown.status_code == probed.status_code == 422, probed.text
    assert {k: v for k, v in unknown.json().items() if k != "instance"} == {
        k: v for k, v in probed.json().items() if k != "instance"
    }
    assert await row_counts(db) == before
    events = await db.fetch(
        "SELECT action, outcome, resource_type, resource_id, actor_id FROM audit_event"
        " WHERE seq > $1 ORDER BY seq",
        seq,
    )
    assert [(e["action"], e["outcome"], e["resource_type"]) for e in events] == [
        ("case.create", "not_found", "person"),
        ("case.create", "denied", "person"),
    ]
    assert [str(e["resource_id"]) for e in events] == [missing_id, hidden["id"]]
    assert {e["actor_id"] for e in events} == {caseworker.account.id}

"""The audit trail, end to end through the real app.

The rules protected here (the issue's wording):

- Every write endpoint produces exactly one audit event with the right diff. The table
  WRITES names every registered write route; `test_every_write_route_is_in_the_table`
  fails for a write route without an entry, so a new one cannot ship unaudited.
- Confidential values never reach the trail in plain text: they are keyed fingerprints
  (`hmac-sha256:…`), the same value giving the same fingerprint.
- Refusals of access (401, 403, a hidden record's 404) are recorded as denials; other
  refusals (412, 422, 428) record nothing; a missing record is recorded as not found.
- A request that fails after its write leaves neither the change nor its audit event.
- Reads of restricted data by a caseworker are logged; reads of public data are not, and a
  read that ends in a write is covered by the write's one event.
- The field-level history of a case file or person (coordinators) and the audit search
  (auditors, no values, itself recorded).
"""

import json
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pyotp
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from app.access.principal import Role, Tier
from app.audit.journal import Actor, Journal, Origin, attach, change
from app.core.db import commit
from tests.auth import (
    SignedIn,
    api_client,
    create_account,
    create_partner,
    enrolled_awaiting_approval,
    new_account,
    partner_token,
)
from tests.factories import API, case_body, create_case, create_person, event, person_body

SignIn = Callable[..., Awaitable[SignedIn]]
Event = dict[str, Any]

FINGERPRINT = "hmac-sha256:"
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})

# Synthetic confidential values: none of them may appear in plain text in any audit row.
SECRET_RELATIVE = "Aliaksandra Zyablitskaya"
SECRET_PHONE = "+375 29 555 01 23"
SECRET_ADDRESS = "Vulitsa Zialiony Luh 7, flat 12"
SECRET_NAME = "Tajny Psieudanim"
SECRET_WITNESS = "cellmate Yanka, via his mother"
PERSON_SECRETS = (SECRET_RELATIVE, SECRET_PHONE, SECRET_ADDRESS, SECRET_NAME)


def confidential_person_body(**overrides: Any) -> dict[str, Any]:
    """A person with every kind of confidential value: relatives, contacts, an address and
    a name kept out of public view."""
    body = person_body(
        relatives=[{"name": SECRET_RELATIVE, "relation": "sister"}],
        contacts=[{"kind": "phone", "value": SECRET_PHONE}],
        address=SECRET_ADDRESS,
        names=[
            *person_body()["names"],
            {"value": SECRET_NAME, "script": "Latn", "kind": "hidden", "is_public": False},
        ],
    )
    body.update(overrides)
    return body


# Reading the trail ---------------------------------------------------------------------


def _decoded(row: asyncpg.Record) -> Event:
    found = dict(row)
    for name in ("changes", "detail"):
        if isinstance(found[name], str):
            found[name] = json.loads(found[name])
    return found


async def head_seq(db: asyncpg.Connection) -> int:
    return int(await db.fetchval("SELECT coalesce(max(seq), 0) FROM audit_event"))


async def events_after(db: asyncpg.Connection, seq: int) -> list[Event]:
    """The events appended after `seq`, oldest first; `whole` is the entire row as text."""
    rows = await db.fetch(
        "SELECT e.*, row_to_json(e)::text AS whole FROM audit_event e WHERE seq > $1 ORDER BY seq",
        seq,
    )
    return [_decoded(row) for row in rows]


async def only_event_after(db: asyncpg.Connection, seq: int) -> Event:
    found = await events_after(db, seq)
    assert len(found) == 1, [(e["seq"], e["action"], e["outcome"]) for e in found]
    return found[0]


def change_of(recorded: Event, kind: str, record_id: Any) -> dict[str, Any]:
    """The fields one record changed in an event: {name: {"before", "after"}}."""
    matches = [
        c for c in recorded["changes"] or [] if c["type"] == kind and c["id"] == str(record_id)
    ]
    assert len(matches) == 1, (kind, record_id, recorded["changes"])
    fields: dict[str, Any] = matches[0]["fields"]
    return fields


def created(fields: dict[str, Any]) -> dict[str, Any]:
    """A created record's values (and that it had none before)."""
    assert all(value["before"] is None for value in fields.values()), fields
    return {name: value["after"] for name, value in fields.items()}


def assert_no_plain(recorded: Event, values: tuple[str, ...]) -> None:
    for value in values:
        assert value not in recorded["whole"], f"{value!r} is in audit event {recorded['seq']}"


def is_fingerprint(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(FINGERPRINT)


# The write routes ----------------------------------------------------------------------


@dataclass
class World:
    app: FastAPI
    db: asyncpg.Connection
    sign_in_as: SignIn
    anonymous: httpx.AsyncClient
    _coordinator: SignedIn | None = None

    async def coordinator(self) -> SignedIn:
        if self._coordinator is None:
            self._coordinator = await self.sign_in_as(Role.coordinator)
        return self._coordinator


@dataclass
class Attempt:
    """One write, set up and ready to send, with what its event must say."""

    client: httpx.AsyncClient
    send: Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]
    status: int
    actor: tuple[str, uuid.UUID | None, str | None]
    # The record the event is about (from the response when the write creates it).
    resource: Callable[[httpx.Response], Awaitable[uuid.UUID]]
    # Values that must never appear in the row (credentials, confidential values).
    secrets: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)


Prepare = Callable[[World], Awaitable[Attempt]]
Check = Callable[[World, Event, Attempt, httpx.Response], Awaitable[None]]


@dataclass(frozen=True)
class Write:
    prepare: Prepare
    action: str
    resource_type: str
    check: Check


def _user(signed: SignedIn) -> tuple[str, uuid.UUID | None, str | None]:
    return ("user", signed.account.id, signed.account.role.value)


def _fixed(value: Any) -> Callable[[httpx.Response], Awaitable[uuid.UUID]]:
    async def resolve(response: httpx.Response) -> uuid.UUID:
        return uuid.UUID(str(value))

    return resolve


async def _response_id(response: httpx.Response) -> uuid.UUID:
    return uuid.UUID(response.json()["id"])


def _if_match(version: int) -> dict[str, str]:
    return {"If-Match": f'"{version}"'}


# persons


async def prepare_person_create(w: World) -> Attempt:
    caseworker = await w.sign_in_as(Role.caseworker)
    body = confidential_person_body(notes="Needs insulin")
    return Attempt(
        caseworker.client,
        lambda c: c.post(f"{API}/persons", json=body),
        201,
        _user(caseworker),
        _response_id,
        secrets=list(PERSON_SECRETS),
    )


async def check_person_create(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    assert len(e["changes"]) == 1
    values = created(change_of(e, "person", r.json()["id"]))
    assert values["notes"] == "Needs insulin" and values["version"] == 1
    for name in ("relatives", "contacts", "address"):
        assert is_fingerprint(values[name]), (name, values[name])
    names = {n["kind"]: n for n in values["names"]}
    assert is_fingerprint(names["hidden"]["value"]) and not names["hidden"]["is_public"]
    assert names["legal"]["value"] == "Міхась Лабановіч"


async def prepare_person_update(w: World) -> Attempt:
    coordinator = await w.coordinator()
    person = await create_person(coordinator.client, **confidential_person_body())
    return Attempt(
        coordinator.client,
        lambda c: c.patch(
            f"{API}/persons/{person['id']}", json={"notes": "Seen in court"}, headers=_if_match(1)
        ),
        200,
        _user(coordinator),
        _fixed(person["id"]),
        secrets=list(PERSON_SECRETS),
    )


async def check_person_update(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    assert len(e["changes"]) == 1
    assert change_of(e, "person", r.json()["id"]) == {
        "notes": {"before": None, "after": "Seen in court"},
        "version": {"before": 1, "after": 2},
    }


async def prepare_recognition(w: World) -> Attempt:
    coordinator = await w.coordinator()
    person = await create_person(coordinator.client)
    body = {"status": "under_review", "decided_on": "2022-01-10", "criteria": []}
    return Attempt(
        coordinator.client,
        lambda c: c.post(
            f"{API}/persons/{person['id']}/recognition", json=body, headers=_if_match(0)
        ),
        201,
        _user(coordinator),
        _fixed(person["id"]),
    )


async def check_recognition(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    person_id = r.json()["person_id"]
    decision = created(change_of(e, "recognition_decision", r.json()["current"]["id"]))
    assert decision["status"] == "under_review" and decision["person_id"] == person_id
    stored = await w.db.fetchrow(
        "SELECT recognition_status, version FROM person WHERE id = $1", uuid.UUID(person_id)
    )
    assert (stored["recognition_status"], stored["version"]) == ("under_review", 2)
    assert change_of(e, "person", person_id) == {
        "recognition_status": {"before": "not_assessed", "after": "under_review"},
        "version": {"before": 1, "after": 2},
    }


# case files


async def prepare_case_create(w: World) -> Attempt:
    coordinator = await w.coordinator()
    person = await create_person(coordinator.client)
    return Attempt(
        coordinator.client,
        lambda c: c.post(f"{API}/cases", json=case_body(person["id"])),
        201,
        _user(coordinator),
        _response_id,
        facts={"person_id": person["id"]},
    )


async def check_case_create(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    case_id = r.json()["id"]
    case = created(change_of(e, "case", case_id))
    assert case["status"] == "detained" and case["version"] == 1
    assert case["person_id"] == a.facts["person_id"]
    (event_row,) = [c for c in e["changes"] if c["type"] == "status_event"]
    status_event = created(event_row["fields"])
    assert status_event["to_status"] == "detained" and status_event["case_file_id"] == case_id
    assert uuid.UUID(a.facts["person_id"]) in e["related"]


async def prepare_case_update(w: World) -> Attempt:
    coordinator = await w.coordinator()
    case = await create_case(coordinator.client)
    body = {"detention_places": [{"place": "Pre-trial prison No. 1"}]}
    return Attempt(
        coordinator.client,
        lambda c: c.patch(f"{API}/cases/{case['id']}", json=body, headers=_if_match(1)),
        200,
        _user(coordinator),
        _fixed(case["id"]),
    )


async def check_case_update(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    assert len(e["changes"]) == 1
    fields = change_of(e, "case", r.json()["id"])
    assert set(fields) == {"detention_places", "version"}
    assert fields["version"] == {"before": 1, "after": 2}
    assert fields["detention_places"]["before"] == []
    assert [p["place"] for p in fields["detention_places"]["after"]] == ["Pre-trial prison No. 1"]


async def prepare_transition(w: World) -> Attempt:
    coordinator = await w.coordinator()
    case = await create_case(coordinator.client)
    return Attempt(
        coordinator.client,
        lambda c: c.post(
            f"{API}/cases/{case['id']}/status-events",
            json=event("sentenced", "2022-01-15", note="verdict read out"),
            headers=_if_match(1),
        ),
        201,
        _user(coordinator),
        _fixed(case["id"]),
        facts={"case_id": case["id"]},
    )


async def check_transition(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    case_id = a.facts["case_id"]
    fields = change_of(e, "case", case_id)
    assert fields["status"] == {"before": "detained", "after": "sentenced"}
    assert fields["version"] == {"before": 1, "after": 2}
    # Nothing that did not change is listed.
    assert all(value["before"] != value["after"] for value in fields.values())
    new_event = created(change_of(e, "status_event", r.json()["event"]["id"]))
    assert new_event["to_status"] == "sentenced" and new_event["from_status"] == "detained"
    assert new_event["case_file_id"] == case_id and new_event["note"] == "verdict read out"
    assert len(e["changes"]) == 2


async def prepare_retraction(w: World) -> Attempt:
    coordinator = await w.coordinator()
    case = await create_case(
        coordinator.client,
        history=[event("detained", "2021-08-10"), event("sentenced", "2022-02-01")],
    )
    events = (await coordinator.client.get(f"{API}/cases/{case['id']}/status-events")).json()
    last = events["events"][-1]["id"]
    return Attempt(
        coordinator.client,
        lambda c: c.post(
            f"{API}/cases/{case['id']}/status-events/{last}/retraction",
            json={"reason": "entered twice"},
            headers=_if_match(1),
        ),
        201,
        _user(coordinator),
        _fixed(case["id"]),
        facts={"case_id": case["id"], "event_id": last},
    )


async def check_retraction(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    fields = change_of(e, "case", a.facts["case_id"])
    assert fields["status"] == {"before": "sentenced", "after": "detained"}
    assert fields["version"] == {"before": 1, "after": 2}
    retracted = change_of(e, "status_event", a.facts["event_id"])
    assert set(retracted) == {"retraction"}
    assert retracted["retraction"]["before"] is None
    assert retracted["retraction"]["after"]["reason"] == "entered twice"
    assert len(e["changes"]) == 2


async def prepare_collective(w: World) -> Attempt:
    coordinator = await w.coordinator()
    cases = [await create_case(coordinator.client) for _ in range(2)]
    body = {
        "title": "Amnesty",
        "kind": "amnesty",
        "to_status": "released",
        "confidence": "confirmed",
        "effective_date": "2023-02-01",
        "details": {"release_reason": "other"},
        "case_file_ids": [case["id"] for case in cases],
    }
    return Attempt(
        coordinator.client,
        lambda c: c.post(f"{API}/collective-events", json=body),
        201,
        _user(coordinator),
        _response_id,
        facts={"cases": cases},
    )


async def check_collective(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    collective = created(change_of(e, "collective_event", r.json()["id"]))
    assert collective["title"] == "Amnesty" and collective["to_status"] == "released"
    new_events = [c for c in e["changes"] if c["type"] == "status_event"]
    for case in a.facts["cases"]:
        fields = change_of(e, "case", case["id"])
        assert fields["status"] == {"before": "detained", "after": "released"}
        assert fields["version"] == {"before": 1, "after": 2}
        (mine,) = [c for c in new_events if c["fields"]["case_file_id"]["after"] == case["id"]]
        assert created(mine["fields"])["collective_event_id"] == r.json()["id"]
        assert uuid.UUID(case["id"]) in e["related"]
        assert uuid.UUID(case["person_id"]) in e["related"]
    assert len(e["changes"]) == 1 + 2 * len(a.facts["cases"])


# sources


async def prepare_source(w: World) -> Attempt:
    caseworker = await w.sign_in_as(Role.caseworker)
    body = {
        "publisher": "Regional monitor",
        "title": "Court hearing report",
        "reliability": "B",
        "credibility": 2,
        "is_public": False,
        "witness": SECRET_WITNESS,
    }
    return Attempt(
        caseworker.client,
        lambda c: c.post(f"{API}/sources", json=body),
        201,
        _user(caseworker),
        _response_id,
        secrets=[SECRET_WITNESS],
    )


async def check_source(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    source = created(change_of(e, "source", r.json()["id"]))
    assert source["title"] == "Court hearing report"
    assert is_fingerprint(source["witness"])


# accounts


async def _user_version(db: asyncpg.Connection, user_id: uuid.UUID) -> int:
    return int(await db.fetchval("SELECT version FROM app_user WHERE id = $1", user_id))


async def prepare_user_create(w: World) -> Attempt:
    admin = await w.sign_in_as(Role.admin)
    body = {"username": f"new-{secrets.token_hex(4)}", "role": "auditor"}
    return Attempt(
        admin.client,
        lambda c: c.post(f"{API}/users", json=body),
        201,
        _user(admin),
        _response_id,
        facts={"username": body["username"]},
    )


async def check_user_create(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    user = created(change_of(e, "user", r.json()["id"]))
    assert user == {
        "username": a.facts["username"],
        "role": "auditor",
        "disabled": False,
        "enrolled": False,
        "version": 1,
        "enrolment_code": "changed",
    }
    code = r.json()["enrolment_code"]
    assert_no_plain(e, (code, code.replace("-", "")))


async def prepare_user_update(w: World) -> Attempt:
    admin = await w.sign_in_as(Role.admin)
    target = await create_account(w.app, Role.analyst)
    version = await _user_version(w.db, target.id)
    return Attempt(
        admin.client,
        lambda c: c.patch(
            f"{API}/users/{target.id}", json={"role": "auditor"}, headers=_if_match(version)
        ),
        200,
        _user(admin),
        _fixed(target.id),
        secrets=[target.password, target.totp_secret],
        facts={"version": version},
    )


async def check_user_update(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    version = a.facts["version"]
    assert change_of(e, "user", r.json()["id"]) == {
        "role": {"before": "analyst", "after": "auditor"},
        "version": {"before": version, "after": version + 1},
    }


async def prepare_user_reset(w: World) -> Attempt:
    admin = await w.sign_in_as(Role.admin)
    target = await create_account(w.app, Role.auditor)
    version = await _user_version(w.db, target.id)
    return Attempt(
        admin.client,
        lambda c: c.post(f"{API}/users/{target.id}/reset", headers=_if_match(version)),
        200,
        _user(admin),
        _fixed(target.id),
        secrets=[target.password, target.totp_secret],
        facts={"user_id": target.id, "version": version},
    )


async def check_user_reset(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    version = a.facts["version"]
    assert change_of(e, "user", a.facts["user_id"]) == {
        "password": {"before": None, "after": "changed"},
        "totp": {"before": None, "after": "changed"},
        "enrolment_code": {"before": None, "after": "changed"},
        "enrolled": {"before": True, "after": False},
        "version": {"before": version, "after": version + 1},
    }
    assert_no_plain(e, (r.json()["enrolment_code"],))


async def prepare_enrol(w: World) -> Attempt:
    account = await new_account(w.app, Role.auditor)
    password = "a pass phrase of one's own " + secrets.token_hex(4)
    body = {"enrolment_code": account.enrolment_code, "password": password}
    return Attempt(
        w.anonymous,
        lambda c: c.post(f"{API}/auth/enrolment", json=body),
        200,
        ("user", account.id, "auditor"),
        _fixed(account.id),
        secrets=[account.enrolment_code, password],
        facts={"user_id": account.id},
    )


async def check_enrol(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    assert change_of(e, "user", a.facts["user_id"]) == {
        "password": {"before": None, "after": "changed"},
        "totp": {"before": None, "after": "changed"},
        "version": {"before": 1, "after": 2},
    }
    assert_no_plain(e, (r.json()["totp_secret"],))


async def prepare_confirm_enrolment(w: World) -> Attempt:
    account = await new_account(w.app, Role.auditor)
    password = "a pass phrase of one's own " + secrets.token_hex(4)
    started = await w.anonymous.post(
        f"{API}/auth/enrolment",
        json={"enrolment_code": account.enrolment_code, "password": password},
    )
    assert started.status_code == 200, started.text
    secret = started.json()["totp_secret"]
    return Attempt(
        w.anonymous,
        lambda c: c.post(
            f"{API}/auth/enrolment/confirmation",
            json={"enrolment_code": account.enrolment_code, "code": pyotp.TOTP(secret).now()},
        ),
        204,
        ("user", account.id, "auditor"),
        _fixed(account.id),
        secrets=[account.enrolment_code, password, secret],
        facts={"user_id": account.id},
    )


async def check_confirm_enrolment(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    assert change_of(e, "user", a.facts["user_id"]) == {
        "enrolled": {"before": False, "after": True},
        "version": {"before": 2, "after": 3},
    }


def _prepare_role_decision(verdict: str) -> Prepare:
    async def prepare(w: World) -> Attempt:
        admin = await w.sign_in_as(Role.admin)
        account = await enrolled_awaiting_approval(w.app, Role.coordinator)
        assert account.role_request_id is not None
        return Attempt(
            admin.client,
            lambda c: c.post(
                f"{API}/role-requests/{account.role_request_id}/{verdict}", headers=_if_match(1)
            ),
            200,
            _user(admin),
            _fixed(account.role_request_id),
            secrets=[account.enrolment_code],
            facts={"user_id": account.id, "request_id": account.role_request_id, "by": admin},
        )

    return prepare


def _check_role_decision(status: str, role: str | None) -> Check:
    async def check(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
        decided_by = str(a.facts["by"].account.id)
        assert change_of(e, "role_request", a.facts["request_id"]) == {
            "status": {"before": "pending", "after": status},
            "decided_by": {"before": None, "after": decided_by},
            "version": {"before": 1, "after": 2},
        }
        user = change_of(e, "user", a.facts["user_id"])
        # Version 3: made, then enrolled in two steps.
        assert user.pop("version") == {"before": 3, "after": 4}
        assert user == ({"role": {"before": None, "after": role}} if role else {})
        assert e["related"] == [a.facts["user_id"]]

    return check


# partners


async def _secret_hash(db: asyncpg.Connection, partner_id: str) -> str:
    return str(
        await db.fetchval("SELECT secret_hash FROM partner WHERE id = $1", uuid.UUID(partner_id))
    )


async def prepare_partner_create(w: World) -> Attempt:
    admin = await w.sign_in_as(Role.admin)
    body = {
        "name": f"Partner {secrets.token_hex(4)}",
        "scopes": ["sync:read"],
        "auth_method": "client_secret",
    }
    return Attempt(
        admin.client,
        lambda c: c.post(f"{API}/partners", json=body),
        201,
        _user(admin),
        _response_id,
        facts={"name": body["name"]},
    )


async def check_partner_create(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    partner = created(change_of(e, "partner", r.json()["id"]))
    assert partner["name"] == a.facts["name"] and partner["scopes"] == ["sync:read"]
    assert not {"secret", "secret_hash", "client_secret"} & set(partner)
    assert_no_plain(e, (r.json()["client_secret"], await _secret_hash(w.db, r.json()["id"])))


async def prepare_partner_update(w: World) -> Attempt:
    admin = await w.sign_in_as(Role.admin)
    partner, _ = await create_partner(w.app, scopes=["sync:read"])
    return Attempt(
        admin.client,
        lambda c: c.patch(
            f"{API}/partners/{partner.id}",
            json={"scopes": ["sync:read", "reports:read"]},
            headers=_if_match(1),
        ),
        200,
        _user(admin),
        _fixed(partner.id),
    )


async def check_partner_update(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    assert change_of(e, "partner", r.json()["id"]) == {
        "scopes": {"before": ["sync:read"], "after": ["reports:read", "sync:read"]},
        "version": {"before": 1, "after": 2},
    }


async def prepare_partner_secret(w: World) -> Attempt:
    admin = await w.sign_in_as(Role.admin)
    partner, old_secret = await create_partner(w.app, scopes=["sync:read"])
    return Attempt(
        admin.client,
        lambda c: c.post(f"{API}/partners/{partner.id}/secret", headers=_if_match(1)),
        200,
        _user(admin),
        _fixed(partner.id),
        secrets=[str(old_secret)],
        facts={"partner_id": str(partner.id)},
    )


async def check_partner_secret(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    partner_id = a.facts["partner_id"]
    # A new secret suspends the agreement (approved by the system when it was made).
    assert change_of(e, "partner", partner_id) == {
        "secret": {"before": None, "after": "changed"},
        "agreement_approved": {"before": True, "after": False},
        "version": {"before": 1, "after": 2},
    }
    assert_no_plain(e, (r.json()["client_secret"], await _secret_hash(w.db, partner_id)))


async def prepare_partner_share(w: World) -> Attempt:
    admin = await w.sign_in_as(Role.admin)
    registered = await admin.client.post(
        f"{API}/partners",
        json={
            "name": f"Partner {secrets.token_hex(4)}",
            "scopes": ["sync:read"],
            "auth_method": "client_secret",
        },
    )
    assert registered.status_code == 201, registered.text
    partner = registered.json()
    coordinator = await w.coordinator()
    agreement = {"jurisdiction": "BY", "recognised_only": False, "max_tier": "restricted"}
    return Attempt(
        coordinator.client,
        lambda c: c.put(
            f"{API}/partners/{partner['id']}/agreement", json=agreement, headers=_if_match(1)
        ),
        200,
        _user(coordinator),
        _fixed(partner["id"]),
        secrets=[partner["client_secret"]],
        facts={"partner_id": partner["id"], "by": coordinator},
    )


async def check_partner_share(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    assert change_of(e, "partner", a.facts["partner_id"]) == {
        "share_jurisdiction": {"before": None, "after": "BY"},
        "share_recognised_only": {"before": True, "after": False},
        "max_tier": {"before": "public", "after": "restricted"},
        "agreement_approved": {"before": False, "after": True},
        "agreement_approved_by": {"before": None, "after": str(a.facts["by"].account.id)},
        "version": {"before": 1, "after": 2},
    }


# sign-in, tokens, sign-out


async def _session_of(db: asyncpg.Connection, user_id: uuid.UUID) -> uuid.UUID:
    found: uuid.UUID = await db.fetchval(
        "SELECT id FROM user_session WHERE user_id = $1 ORDER BY created_at DESC LIMIT 1", user_id
    )
    return found


async def prepare_logout(w: World) -> Attempt:
    analyst = await w.sign_in_as(Role.analyst)
    session_id = await _session_of(w.db, analyst.account.id)
    return Attempt(
        analyst.client,
        lambda c: c.post(f"{API}/auth/logout"),
        204,
        _user(analyst),
        _fixed(session_id),
        secrets=[analyst.tokens["refresh_token"]],
        facts={"session_id": session_id},
    )


async def check_logout(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    assert change_of(e, "user_session", a.facts["session_id"]) == {
        "revoked_reason": {"before": None, "after": "signed_out"}
    }


async def prepare_login(w: World) -> Attempt:
    account = await create_account(w.app, Role.caseworker)
    code = account.code()

    async def send(c: httpx.AsyncClient) -> httpx.Response:
        return await c.post(
            f"{API}/auth/login",
            json={"username": account.username, "password": account.password, "code": code},
        )

    async def session_id(response: httpx.Response) -> uuid.UUID:
        return await _session_of(w.db, account.id)

    return Attempt(
        w.anonymous,
        send,
        200,
        ("user", account.id, "caseworker"),
        session_id,
        secrets=[account.password, account.totp_secret],
        facts={"user_id": account.id},
    )


async def check_signed_in(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    assert e["changes"] == []
    assert e["related"] == [a.facts["user_id"]]
    assert_no_plain(e, (r.json()["access_token"], r.json()["refresh_token"]))


async def prepare_refresh(w: World) -> Attempt:
    signed = await w.sign_in_as(Role.analyst)
    refresh_token = signed.tokens["refresh_token"]
    return Attempt(
        w.anonymous,
        lambda c: c.post(f"{API}/auth/refresh", json={"refresh_token": refresh_token}),
        200,
        _user(signed),
        _fixed(await _session_of(w.db, signed.account.id)),
        secrets=[refresh_token],
        facts={"user_id": signed.account.id},
    )


async def prepare_token(w: World) -> Attempt:
    partner, secret = await create_partner(w.app, scopes=["sync:read"])
    form = {"grant_type": "client_credentials", "scope": "sync:read"}
    return Attempt(
        w.anonymous,
        lambda c: c.post(f"{API}/auth/token", data=form, auth=(partner.client_id, str(secret))),
        200,
        ("partner", partner.id, "partner"),
        _fixed(partner.id),
        secrets=[str(secret)],
    )


async def check_token(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    assert e["changes"] == []
    assert_no_plain(e, (r.json()["access_token"],))


WRITES: dict[tuple[str, str], Write] = {
    ("POST", "/api/v1/persons"): Write(
        prepare_person_create, "person.create", "person", check_person_create
    ),
    ("PATCH", "/api/v1/persons/{person_id}"): Write(
        prepare_person_update, "person.update", "person", check_person_update
    ),
    ("POST", "/api/v1/persons/{person_id}/recognition"): Write(
        prepare_recognition,
        "recognition.decide",
        "person",
        check_recognition,
    ),
    ("POST", "/api/v1/cases"): Write(prepare_case_create, "case.create", "case", check_case_create),
    ("PATCH", "/api/v1/cases/{case_id}"): Write(
        prepare_case_update, "case.update", "case", check_case_update
    ),
    ("POST", "/api/v1/cases/{case_id}/status-events"): Write(
        prepare_transition, "case.transition", "case", check_transition
    ),
    ("POST", "/api/v1/cases/{case_id}/status-events/{event_id}/retraction"): Write(
        prepare_retraction, "case.retract", "case", check_retraction
    ),
    ("POST", "/api/v1/collective-events"): Write(
        prepare_collective, "collective.create", "collective_event", check_collective
    ),
    ("POST", "/api/v1/sources"): Write(prepare_source, "source.create", "source", check_source),
    ("POST", "/api/v1/users"): Write(prepare_user_create, "user.create", "user", check_user_create),
    ("PATCH", "/api/v1/users/{user_id}"): Write(
        prepare_user_update, "user.update", "user", check_user_update
    ),
    ("POST", "/api/v1/users/{user_id}/reset"): Write(
        prepare_user_reset, "user.reset", "user", check_user_reset
    ),
    ("POST", "/api/v1/auth/enrolment"): Write(prepare_enrol, "user.enrol", "user", check_enrol),
    ("POST", "/api/v1/auth/enrolment/confirmation"): Write(
        prepare_confirm_enrolment, "user.confirm_enrolment", "user", check_confirm_enrolment
    ),
    ("POST", "/api/v1/role-requests/{request_id}/approval"): Write(
        _prepare_role_decision("approval"),
        "user.approve_role",
        "role_request",
        _check_role_decision("approved", "coordinator"),
    ),
    ("POST", "/api/v1/role-requests/{request_id}/rejection"): Write(
        _prepare_role_decision("rejection"),
        "user.reject_role",
        "role_request",
        _check_role_decision("rejected", None),
    ),
    ("POST", "/api/v1/partners"): Write(
        prepare_partner_create, "partner.create", "partner", check_partner_create
    ),
    ("PATCH", "/api/v1/partners/{partner_id}"): Write(
        prepare_partner_update, "partner.update", "partner", check_partner_update
    ),
    ("POST", "/api/v1/partners/{partner_id}/secret"): Write(
        prepare_partner_secret, "partner.new_secret", "partner", check_partner_secret
    ),
    ("PUT", "/api/v1/partners/{partner_id}/agreement"): Write(
        prepare_partner_share, "partner.share", "partner", check_partner_share
    ),
    ("POST", "/api/v1/auth/logout"): Write(
        prepare_logout, "auth.sign_out", "user_session", check_logout
    ),
    ("POST", "/api/v1/auth/login"): Write(
        prepare_login, "auth.sign_in", "user_session", check_signed_in
    ),
    ("POST", "/api/v1/auth/refresh"): Write(
        prepare_refresh, "auth.refresh", "user_session", check_signed_in
    ),
    ("POST", "/api/v1/auth/token"): Write(prepare_token, "auth.token", "partner", check_token),
}


def _write_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Every write route as served (FastAPI resolves included routers lazily)."""
    routes: list[Any] = [
        route
        for route in iter_route_contexts(app.routes)
        if isinstance(route.original_route, APIRoute) and str(route.path).startswith(API)
    ]
    return {
        (str(method), str(route.path))
        for route in routes
        for method in route.methods
        if method in WRITE_METHODS
    }


def test_every_write_route_is_in_the_table(app: FastAPI) -> None:
    """A write route without an entry in WRITES (and so without a test that it is
    audited) fails here; so does an entry for a route that no longer exists."""
    assert _write_routes(app) == set(WRITES)


@pytest.fixture
async def world(
    app: FastAPI, db: asyncpg.Connection, sign_in_as: SignIn, anonymous: httpx.AsyncClient
) -> World:
    return World(app, db, sign_in_as, anonymous)


@pytest.mark.parametrize(("method", "path"), sorted(WRITES))
async def test_each_write_appends_exactly_one_event_with_its_diff(
    world: World, method: str, path: str
) -> None:
    """Every write route: one event, outcome success, the declared action and record, the
    caller as actor, the request's id, the field-level diff, and no credential or
    confidential value in plain text anywhere in the row."""
    write = WRITES[(method, path)]
    attempt = await write.prepare(world)
    before = await head_seq(world.db)
    response = await attempt.send(attempt.client)
    assert response.status_code == attempt.status, response.text
    recorded = await only_event_after(world.db, before)
    assert recorded["outcome"] == "success"
    assert recorded["action"] == write.action
    assert recorded["resource_type"] == write.resource_type
    assert recorded["resource_id"] == await attempt.resource(response)
    assert (recorded["actor_type"], recorded["actor_id"], recorded["actor_role"]) == attempt.actor
    assert recorded["request_id"] == response.headers["x-request-id"]
    assert recorded["user_agent"] == response.request.headers["user-agent"]
    assert recorded["client_address"] == "127.0.0.1"
    assert recorded["detail"] is None or "status" not in recorded["detail"]
    assert_no_plain(recorded, tuple(attempt.secrets))
    await write.check(world, recorded, attempt, response)


# Confidential values --------------------------------------------------------------------


async def test_confidential_values_are_fingerprinted_consistently(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """The same confidential value gives the same fingerprint wherever it is recorded
    (so that an auditor can follow it), a different value a different one; neither is
    readable. Changing one shows the old and the new fingerprint."""
    start = await head_seq(db)
    first = await create_person(client, **confidential_person_body())
    moved = "Prospekt Niezalezhnasci 44, flat 3"
    response = await client.patch(
        f"{API}/persons/{first['id']}",
        json={"address": moved, "contacts": [{"kind": "email", "value": "relay@example.org"}]},
        headers=_if_match(1),
    )
    assert response.status_code == 200, response.text
    second = await create_person(client, address=SECRET_ADDRESS)
    created_first, updated, created_second = await events_after(db, start)
    for recorded in (created_first, updated, created_second):
        assert_no_plain(recorded, (*PERSON_SECRETS, moved, "relay@example.org"))
    original = change_of(created_first, "person", first["id"])["address"]["after"]
    fields = change_of(updated, "person", first["id"])
    assert set(fields) == {"address", "contacts", "version"}
    assert fields["address"]["before"] == original
    assert is_fingerprint(fields["address"]["after"]) and fields["address"]["after"] != original
    assert is_fingerprint(fields["contacts"]["after"])
    assert change_of(created_second, "person", second["id"])["address"]["after"] == original


# Denials --------------------------------------------------------------------------------


async def test_a_request_without_a_valid_token_is_recorded_as_denied(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """A 401 on a protected route (no token, a garbage token) is one denial by an
    anonymous actor, naming the route's action and the record in its path."""
    person = await create_person(client)
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        before = await head_seq(db)
        response = await anonymous.patch(
            f"{API}/persons/{person['id']}",
            json={"notes": "x"},
            headers={**headers, **_if_match(1)},
        )
        assert response.status_code == 401, response.text
        denial = await only_event_after(db, before)
        assert denial["outcome"] == "denied"
        assert (denial["actor_type"], denial["actor_id"], denial["actor_role"]) == (
            "anonymous",
            None,
            None,
        )
        assert denial["action"] == "person.update"
        assert denial["resource_id"] == uuid.UUID(person["id"])
        assert denial["detail"]["status"] == 401
        assert denial["detail"]["route"].startswith("PATCH ")
        assert denial["detail"]["route"].endswith("/persons/{person_id}")
        assert denial["request_id"] == response.headers["x-request-id"]
        assert denial["changes"] is None
    stored = await db.fetchrow("SELECT version, notes FROM person")
    assert stored["version"] == 1


async def test_a_denial_names_the_route_as_served(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """The route a denial names is the template of the path that was requested, so that it
    can be matched with the API's documentation and access logs."""
    person = await create_person(client)
    before = await head_seq(db)
    response = await anonymous.get(f"{API}/persons/{person['id']}")
    assert response.status_code == 401
    denial = await only_event_after(db, before)
    assert denial["detail"]["route"] == "GET /api/v1/persons/{person_id}"


async def test_a_forbidden_write_is_recorded_and_changes_nothing(
    sign_in_as: SignIn, db: asyncpg.Connection
) -> None:
    """A caseworker's 403 on a case file it may see but is not assigned: one denial with
    the caller and the case file, and the case file as it was."""
    coordinator = (await sign_in_as(Role.coordinator)).client
    caseworker = await sign_in_as(Role.caseworker)
    case = await create_case(coordinator)
    before = await head_seq(db)
    response = await caseworker.client.patch(
        f"{API}/cases/{case['id']}",
        json={"detention_places": [{"place": "Pre-trial prison No. 1"}]},
        headers=_if_match(1),
    )
    assert response.status_code == 403, response.text
    denial = await only_event_after(db, before)
    assert denial["outcome"] == "denied"
    assert (denial["actor_type"], denial["actor_id"], denial["actor_role"]) == (
        "user",
        caseworker.account.id,
        "caseworker",
    )
    assert (denial["action"], denial["resource_type"]) == ("case.update", "case")
    assert denial["resource_id"] == uuid.UUID(case["id"])
    assert denial["detail"]["status"] == 403
    assert denial["changes"] is None
    stored = await db.fetchrow(
        "SELECT version, detention_places FROM case_file WHERE id = $1", uuid.UUID(case["id"])
    )
    assert stored["version"] == 1
    assert json.loads(stored["detention_places"]) == []


async def test_a_hidden_record_is_a_denial_and_a_missing_one_is_recorded_apart(
    sign_in_as: SignIn, db: asyncpg.Connection
) -> None:
    """An analyst asking for a high-confidentiality case file gets the same 404 as for one
    that does not exist; the first is recorded as a denial, the second as not found (both
    are recorded, so that one does not answer more slowly than the other)."""
    coordinator = (await sign_in_as(Role.coordinator)).client
    analyst = await sign_in_as(Role.analyst)
    person = await create_person(coordinator)
    high = await create_case(
        coordinator,
        person["id"],
        confidentiality="high",
        assigned_caseworkers=[],
    )
    before = await head_seq(db)
    missing_id = uuid.uuid4()
    missing = await analyst.client.get(f"{API}/cases/{missing_id}")
    assert missing.status_code == 404
    absence = await only_event_after(db, before)
    assert (absence["outcome"], absence["action"]) == ("not_found", "case.read")
    assert absence["resource_id"] == missing_id and absence["actor_id"] == analyst.account.id
    before = await head_seq(db)
    hidden = await analyst.client.get(f"{API}/cases/{high['id']}")
    assert hidden.status_code == 404
    assert hidden.json()["detail"] == missing.json()["detail"]
    denial = await only_event_after(db, before)
    assert denial["outcome"] == "denied" and denial["action"] == "case.read"
    assert denial["actor_id"] == analyst.account.id
    assert denial["resource_id"] == uuid.UUID(high["id"])
    assert denial["detail"]["status"] == 404
    assert denial["request_id"] == hidden.headers["x-request-id"]
    # The same for a write: refused as if the record did not exist, recorded, not done.
    before = await head_seq(db)
    refused = await analyst.client.patch(
        f"{API}/cases/{high['id']}", json={"detention_places": []}, headers=_if_match(1)
    )
    assert refused.status_code == 404, refused.text
    denial = await only_event_after(db, before)
    assert (denial["outcome"], denial["action"]) == ("denied", "case.update")
    assert denial["resource_id"] == uuid.UUID(high["id"])
    assert (
        await db.fetchval("SELECT version FROM case_file WHERE id = $1", uuid.UUID(high["id"])) == 1
    )


async def test_a_failed_sign_in_is_recorded_against_the_account(
    app: FastAPI, anonymous: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """A wrong password is a denial of auth.sign_in about the account it named (and no
    session, and never the password tried)."""
    account = await create_account(app, Role.caseworker)
    wrong = "not the password " + secrets.token_hex(4)
    before = await head_seq(db)
    response = await anonymous.post(
        f"{API}/auth/login",
        json={"username": account.username, "password": wrong, "code": account.code()},
    )
    assert response.status_code == 401, response.text
    denial = await only_event_after(db, before)
    assert (denial["outcome"], denial["action"]) == ("denied", "auth.sign_in")
    assert denial["actor_type"] == "anonymous"
    assert (denial["resource_type"], denial["resource_id"]) == ("user", account.id)
    assert denial["detail"]["status"] == 401
    assert_no_plain(denial, (wrong, account.password))
    assert await db.fetchval("SELECT count(*) FROM user_session") == 0


async def test_refusals_that_are_not_about_access_record_nothing(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """422 (invalid input), 412 (stale If-Match) and 428 (no If-Match) are not denials of
    access: nothing is recorded. (A record that does not exist is: see above.)"""
    person = await create_person(client)
    url = f"{API}/persons/{person['id']}"
    before = await head_seq(db)
    attempts: list[tuple[int, str, dict[str, Any], dict[str, str]]] = [
        (422, url, {"notes": 5}, _if_match(1)),
        (412, url, {"notes": "x"}, _if_match(7)),
        (428, url, {"notes": "x"}, {}),
    ]
    for status, target, body, headers in attempts:
        response = await client.patch(target, json=body, headers=headers)
        assert response.status_code == status, response.text
    # A refusal by the service after it loaded the record: an invalid transition.
    case = await create_case(client, person["id"])
    before_transition = await head_seq(db)
    refused = await client.post(
        f"{API}/cases/{case['id']}/status-events",
        json=event("sentenced", "2001-01-01"),
        headers=_if_match(1),
    )
    assert refused.status_code in (409, 422), refused.text
    assert await events_after(db, before_transition) == []
    assert [e["action"] for e in await events_after(db, before)] == ["case.create"]


# A write that fails at commit ----------------------------------------------------------

FAILING_TRIGGER = "audit_trail_test_fails_at_commit"


async def test_a_request_that_fails_after_its_write_leaves_no_change_and_no_event(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """The change and its event commit together or not at all: a transition refused by the
    database only at COMMIT (a deferred constraint trigger) leaves the case file, its
    status events, the trail and the chain's head as they were; the next write gets the
    next sequence number, linked to the same head."""
    case = await create_case(client)
    case_id = uuid.UUID(case["id"])

    async def case_state() -> tuple[Any, ...]:
        row = await db.fetchrow("SELECT status, version FROM case_file WHERE id = $1", case_id)
        events = await db.fetchval(
            "SELECT count(*) FROM status_event WHERE case_file_id = $1", case_id
        )
        return (row["status"], row["version"], events)

    state = await case_state()
    head = await db.fetchrow("SELECT seq, hash FROM audit_head")
    count = await db.fetchval("SELECT count(*) FROM audit_event")
    await db.execute(
        f"""
        CREATE FUNCTION {FAILING_TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'refused at commit (test)'; END $$;
        CREATE CONSTRAINT TRIGGER {FAILING_TRIGGER} AFTER UPDATE ON case_file
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {FAILING_TRIGGER}();
        """
    )
    try:
        response = await client.post(
            f"{API}/cases/{case_id}/status-events",
            json=event("sentenced", "2022-01-15"),
            headers=_if_match(1),
        )
        assert response.status_code >= 500, response.text
    finally:
        await db.execute(
            f"DROP TRIGGER IF EXISTS {FAILING_TRIGGER} ON case_file;"
            f"DROP FUNCTION IF EXISTS {FAILING_TRIGGER}();"
        )
    assert await case_state() == state
    assert await db.fetchval("SELECT count(*) FROM audit_event") == count
    assert await db.fetchrow("SELECT seq, hash FROM audit_head") == head

    retried = await client.post(
        f"{API}/cases/{case_id}/status-events",
        json=event("sentenced", "2022-01-15"),
        headers=_if_match(1),
    )
    assert retried.status_code == 201, retried.text
    appended = await only_event_after(db, head["seq"])
    assert appended["seq"] == head["seq"] + 1
    assert appended["prev_hash"] == head["hash"]
    assert appended["action"] == "case.transition"


async def test_a_write_whose_event_cannot_be_appended_is_not_committed(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """The other direction: when the trail refuses the event (here a trigger on
    audit_event), the change it describes is not committed either."""
    case = await create_case(client)
    case_id = uuid.UUID(case["id"])
    head = await db.fetchrow("SELECT seq, hash FROM audit_head")
    await db.execute(
        f"""
        CREATE FUNCTION {FAILING_TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'the trail refuses this event (test)'; END $$;
        CREATE TRIGGER {FAILING_TRIGGER} BEFORE INSERT ON audit_event
            FOR EACH ROW WHEN (NEW.action = 'case.transition')
            EXECUTE FUNCTION {FAILING_TRIGGER}();
        """
    )
    try:
        response = await client.post(
            f"{API}/cases/{case_id}/status-events",
            json=event("sentenced", "2022-01-15"),
            headers=_if_match(1),
        )
        assert response.status_code >= 500, response.text
    finally:
        await db.execute(
            f"DROP TRIGGER IF EXISTS {FAILING_TRIGGER} ON audit_event;"
            f"DROP FUNCTION IF EXISTS {FAILING_TRIGGER}();"
        )
    stored = await db.fetchrow("SELECT status, version FROM case_file WHERE id = $1", case_id)
    assert (stored["status"], stored["version"]) == ("detained", 1)
    assert await db.fetchval("SELECT count(*) FROM status_event") == 1
    assert await db.fetchrow("SELECT seq, hash FROM audit_head") == head


async def test_a_refusal_after_a_write_leaves_no_change_and_no_event(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """A collective event writes its own row first, then finds a case file that cannot
    transition: the whole request is refused (409) and neither the collective event, nor
    any status event, nor an audit event remains."""
    ready = await create_case(client)
    released = await create_case(
        client, history=[event("detained", "2021-08-10"), event("released", "2022-01-10")]
    )
    before = await head_seq(db)
    counts = [
        await db.fetchval(f"SELECT count(*) FROM {table}")
        for table in ("collective_event", "status_event")
    ]
    response = await client.post(
        f"{API}/collective-events",
        json={
            "title": "Amnesty",
            "kind": "amnesty",
            "to_status": "released",
            "confidence": "confirmed",
            "effective_date": "2023-02-01",
            "details": {"release_reason": "other"},
            "case_file_ids": [ready["id"], released["id"]],
        },
    )
    assert response.status_code == 409, response.text
    assert [
        await db.fetchval(f"SELECT count(*) FROM {table}")
        for table in ("collective_event", "status_event")
    ] == counts
    assert await db.fetchval("SELECT max(version) FROM case_file") == 1
    assert await events_after(db, before) == []


# Reads ----------------------------------------------------------------------------------


async def test_reads_of_restricted_data_by_a_caseworker_are_logged(
    sign_in_as: SignIn, db: asyncpg.Connection
) -> None:
    """Each read that shows more than the public tier is one event: the record read, or
    for a page, the records on it."""
    coordinator = (await sign_in_as(Role.coordinator)).client
    caseworker = await sign_in_as(Role.caseworker)
    mine = await create_case(coordinator, assigned_caseworkers=[str(caseworker.account.id)])
    other = await create_case(coordinator)
    source = await coordinator.post(
        f"{API}/sources",
        json={
            "publisher": "Monitor",
            "title": "Report",
            "reliability": "B",
            "credibility": 2,
            "is_public": False,
        },
    )
    assert source.status_code == 201, source.text
    cases = {uuid.UUID(mine["id"]), uuid.UUID(other["id"])}
    persons = {uuid.UUID(mine["person_id"]), uuid.UUID(other["person_id"])}
    reads: list[tuple[str, str, set[uuid.UUID]]] = [
        (f"/cases/{mine['id']}", "case.read", {uuid.UUID(mine["id"])}),
        (f"/cases/{other['id']}", "case.read", {uuid.UUID(other["id"])}),
        (
            f"/cases/{other['id']}/status-events",
            "case.read_status_events",
            {uuid.UUID(other["id"])},
        ),
        (f"/persons/{other['person_id']}", "person.read", {uuid.UUID(other["person_id"])}),
        (
            f"/persons/{other['person_id']}/recognition",
            "recognition.read",
            {uuid.UUID(other["person_id"])},
        ),
        ("/cases", "case.list", cases),
        ("/persons", "person.list", persons),
        (f"/sources/{source.json()['id']}", "source.read", {uuid.UUID(source.json()["id"])}),
    ]
    for path, action, records in reads:
        before = await head_seq(db)
        response = await caseworker.client.get(f"{API}{path}")
        assert response.status_code == 200, (path, response.text)
        read = await only_event_after(db, before)
        assert (read["action"], read["outcome"]) == (action, "success"), path
        assert read["actor_id"] == caseworker.account.id
        assert read["request_id"] == response.headers["x-request-id"]
        assert read["changes"] is None
        shown = {read["resource_id"], *read["related"]} - {None}
        assert shown == records, path


async def test_a_name_searched_for_is_kept_only_as_a_fingerprint(
    sign_in_as: SignIn, db: asyncpg.Connection
) -> None:
    """A search by name is logged with the persons it showed, the name as a fingerprint."""
    coordinator = (await sign_in_as(Role.coordinator)).client
    caseworker = await sign_in_as(Role.caseworker)
    await create_case(coordinator)
    before = await head_seq(db)
    response = await caseworker.client.get(f"{API}/persons", params={"q": "Labanovich"})
    assert response.status_code == 200 and len(response.json()["items"]) == 1
    read = await only_event_after(db, before)
    assert read["action"] == "person.list"
    assert is_fingerprint(read["detail"]["q"])
    assert_no_plain(read, ("Labanovich", "Лабановіч"))


async def test_reads_of_public_data_are_not_logged(
    app: FastAPI, sign_in_as: SignIn, db: asyncpg.Connection
) -> None:
    """A partner whose agreement stops at the public tier reads shared records without a
    trace; the same reads by a partner cleared for the restricted tier are logged (so the
    first half is not silent by accident). Collective events are public for staff."""
    coordinator = (await sign_in_as(Role.coordinator)).client
    caseworker = await sign_in_as(Role.caseworker)
    case = await create_case(coordinator)
    collective = await coordinator.post(
        f"{API}/collective-events",
        json={
            "title": "Amnesty",
            "kind": "amnesty",
            "to_status": "released",
            "confidence": "confirmed",
            "effective_date": "2023-02-01",
            "details": {"release_reason": "other"},
            "case_file_ids": [case["id"]],
        },
    )
    assert collective.status_code == 201, collective.text
    paths = [
        f"/cases/{case['id']}",
        f"/cases/{case['id']}/status-events",
        f"/persons/{case['person_id']}",
        f"/persons/{case['person_id']}/recognition",
        "/cases",
        "/persons",
    ]
    logged: dict[str, list[str]] = {}
    for max_tier in ("public", "restricted"):
        partner, secret = await create_partner(
            app,
            scopes=["sync:read"],
            agreement={"jurisdiction": "BY", "recognised_only": False, "max_tier": max_tier},
        )
        async with api_client(app) as reader:
            token = await partner_token(reader, partner.client_id, str(secret))
            reader.headers["Authorization"] = f"Bearer {token}"
            before = await head_seq(db)
            for path in paths:
                response = await reader.get(f"{API}{path}")
                assert response.status_code == 200, (path, response.text)
                if path == "/cases":
                    assert [item["id"] for item in response.json()["items"]] == [case["id"]]
            logged[max_tier] = [e["action"] for e in await events_after(db, before)]
    assert logged["public"] == []
    assert len(logged["restricted"]) == len(paths)

    before = await head_seq(db)
    for path in ("/collective-events", f"/collective-events/{collective.json()['id']}"):
        response = await caseworker.client.get(f"{API}{path}")
        assert response.status_code == 200, response.text
    assert await events_after(db, before) == []


async def test_a_read_that_ends_in_a_write_is_covered_by_the_write(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """A unit of work appends at most one event: reads before and after a write (what the
    write answers with) are covered by the write's event, whose action and record are the
    write's. Through the app's own session, key ring and chain."""
    case = await create_case(client)
    case_id, person_id = uuid.UUID(case["id"]), uuid.UUID(case["person_id"])
    other_id = uuid.UUID((await create_case(client))["id"])
    coordinator_id: uuid.UUID = await db.fetchval("SELECT id FROM app_user")
    before = await head_seq(db)
    async with app.state.session_factory() as session:
        journal = attach(
            session,
            Journal(
                app.state.security.audit_keys,
                Origin(request_id="unit-of-work-1"),
                Actor("user", coordinator_id, "coordinator"),
            ),
        )
        journal.viewed("person.read", "person", [person_id], Tier.confidential)
        journal.changed(
            "case.update",
            "case",
            case_id,
            [change("case", case_id, {"version": 1}, {"version": 2})],
        )
        journal.viewed("case.list", "case", [case_id, other_id], Tier.confidential)
        await commit(session)
    event_row = await only_event_after(db, before)
    assert (event_row["action"], event_row["resource_id"]) == ("case.update", case_id)
    assert event_row["related"] == []
    assert event_row["changes"] == [
        {"type": "case", "id": str(case_id), "fields": {"version": {"before": 1, "after": 2}}}
    ]
    # And through the API: a transition answers with the new state, and is one event.
    before = await head_seq(db)
    response = await client.post(
        f"{API}/cases/{case_id}/status-events",
        json=event("sentenced", "2022-01-15"),
        headers=_if_match(1),
    )
    assert response.status_code == 201, response.text
    assert (await only_event_after(db, before))["action"] == "case.transition"


# Field-level history --------------------------------------------------------------------


async def _all_pages(client: httpx.AsyncClient, url: str) -> tuple[list[dict[str, Any]], int]:
    """Every entry of a history, following `next`; and how many pages it took."""
    entries: list[dict[str, Any]] = []
    pages = 0
    next_url: str | None = url
    while next_url is not None:
        response = await client.get(next_url)
        assert response.status_code == 200, response.text
        body = response.json()
        entries.extend(body["entries"])
        next_url = body["next"]
        pages += 1
    return entries, pages


async def test_case_history_lists_every_write_newest_first(
    sign_in_as: SignIn, db: asyncpg.Connection
) -> None:
    """A case file's history (coordinators): every write that changed it, newest first,
    field by field, a collective event's change to it included (and nothing of the other
    case files it changed); pages follow `next`."""
    coordinator = await sign_in_as(Role.coordinator)
    client = coordinator.client
    case = await create_case(client)
    spare = await create_case(client)
    patched = await client.patch(
        f"{API}/cases/{case['id']}",
        json={"detention_places": [{"place": "Pre-trial prison No. 1"}]},
        headers=_if_match(1),
    )
    assert patched.status_code == 200, patched.text
    moved = await client.post(
        f"{API}/cases/{case['id']}/status-events",
        json=event("sentenced", "2022-01-15"),
        headers=_if_match(2),
    )
    assert moved.status_code == 201, moved.text
    collective = await client.post(
        f"{API}/collective-events",
        json={
            "title": "Pardon decree",
            "kind": "pardon",
            "to_status": "pardoned",
            "confidence": "confirmed",
            "effective_date": "2023-01-05",
            "case_file_ids": [case["id"], spare["id"]],
        },
    )
    assert collective.status_code == 201, collective.text

    entries, pages = await _all_pages(client, f"{API}/cases/{case['id']}/history?limit=2")
    assert pages == 2
    assert [e["action"] for e in entries] == [
        "collective.create",
        "case.transition",
        "case.update",
        "case.create",
    ]
    seqs = [e["seq"] for e in entries]
    assert seqs == sorted(seqs, reverse=True)
    assert all(e["actor"]["id"] == str(coordinator.account.id) for e in entries)
    pardon, transition, update, creation = entries
    assert pardon["request_id"] == collective.headers["x-request-id"]
    # Only what concerns this case file: its own row and its own status events.
    assert {c["type"] for c in pardon["changes"]} == {"case", "status_event"}
    for entry in entries:
        for c in entry["changes"]:
            assert c["id"] == case["id"] or c["fields"].get("case_file_id", {}).get("after") in (
                None,
                case["id"],
            )
            assert c["id"] != spare["id"]
    (pardon_case,) = [c for c in pardon["changes"] if c["type"] == "case"]
    assert pardon_case["fields"]["status"] == {"before": "sentenced", "after": "pardoned"}
    (update_case,) = update["changes"]
    assert set(update_case["fields"]) == {"detention_places", "version"}
    assert update_case["fields"]["version"] == {"before": 1, "after": 2}
    assert {c["type"] for c in transition["changes"]} == {"case", "status_event"}
    assert {c["type"] for c in creation["changes"]} == {"case", "status_event"}


async def test_person_history_shows_confidential_changes_as_fingerprints(
    client: httpx.AsyncClient,
) -> None:
    """A person's history: their writes, newest first, with before and after of each field,
    confidential values only as fingerprints."""
    person = await create_person(client, **confidential_person_body())
    for version, body in ((1, {"notes": "Seen in court"}), (2, {"address": "Another street 1"})):
        response = await client.patch(
            f"{API}/persons/{person['id']}", json=body, headers=_if_match(version)
        )
        assert response.status_code == 200, response.text
    history = await client.get(f"{API}/persons/{person['id']}/history")
    assert history.status_code == 200, history.text
    for secret in (*PERSON_SECRETS, "Another street 1"):
        assert secret not in history.text
    entries = history.json()["entries"]
    assert [e["action"] for e in entries] == ["person.update", "person.update", "person.create"]
    address = entries[0]["changes"][0]["fields"]["address"]
    assert is_fingerprint(address["before"]) and is_fingerprint(address["after"])
    assert entries[1]["changes"][0]["fields"]["notes"] == {
        "before": None,
        "after": "Seen in court",
    }


async def test_person_history_lists_only_writes_that_changed_the_person(
    client: httpx.AsyncClient,
) -> None:
    """Every entry of a person's history shows a change to that person (or a record that
    names them, such as a new case file); a change of status of one of their case files
    is not a change of the person and must not appear as an empty entry."""
    case = await create_case(client)
    person_id = case["person_id"]
    moved = await client.post(
        f"{API}/cases/{case['id']}/status-events",
        json=event("sentenced", "2022-01-15"),
        headers=_if_match(1),
    )
    assert moved.status_code == 201, moved.text
    decided = await client.post(
        f"{API}/persons/{person_id}/recognition",
        json={"status": "under_review", "decided_on": "2022-01-10", "criteria": []},
        headers=_if_match(0),
    )
    assert decided.status_code == 201, decided.text
    history = await client.get(f"{API}/persons/{person_id}/history")
    assert history.status_code == 200, history.text
    entries = history.json()["entries"]
    assert "recognition.decide" in [e["action"] for e in entries]
    empty = [entry["action"] for entry in entries if not entry["changes"]]
    assert empty == []


async def test_person_history_pages_are_full_until_the_last(client: httpx.AsyncClient) -> None:
    """Every page of a history but the last holds `limit` entries, so that a client that
    stops at a short or empty page misses nothing; the pages together list the person's
    writes, newest first."""
    case = await create_case(client)
    for version, (status, day) in enumerate(
        (("sentenced", "2022-01-15"), ("released", "2023-01-15")), start=1
    ):
        moved = await client.post(
            f"{API}/cases/{case['id']}/status-events",
            json=event(status, day),
            headers=_if_match(version),
        )
        assert moved.status_code == 201, moved.text
    pages: list[list[str]] = []
    next_url: str | None = f"{API}/persons/{case['person_id']}/history?limit=1"
    while next_url is not None:
        response = await client.get(next_url)
        assert response.status_code == 200, response.text
        pages.append([entry["action"] for entry in response.json()["entries"]])
        next_url = response.json()["next"]
    assert [action for page in pages for action in page] == ["case.create", "person.create"]
    assert pages == [["case.create"], ["person.create"]]


async def test_history_is_for_coordinators_only(sign_in_as: SignIn, db: asyncpg.Connection) -> None:
    """A caseworker who may read the case file is refused its history (403); an auditor,
    who may not see case content at all, gets a 404 as for any hidden record. Both are
    recorded as denials."""
    coordinator = (await sign_in_as(Role.coordinator)).client
    caseworker = await sign_in_as(Role.caseworker)
    auditor = await sign_in_as(Role.auditor)
    case = await create_case(coordinator, assigned_caseworkers=[str(caseworker.account.id)])
    for signed, status in ((caseworker, 403), (auditor, 404)):
        for url in (f"/cases/{case['id']}/history", f"/persons/{case['person_id']}/history"):
            before = await head_seq(db)
            response = await signed.client.get(f"{API}{url}")
            assert response.status_code == status, (url, response.text)
            assert "entries" not in response.text
            denial = await only_event_after(db, before)
            assert denial["outcome"] == "denied"
            assert denial["actor_id"] == signed.account.id
            assert denial["detail"]["status"] == status


# Audit search ---------------------------------------------------------------------------


async def _search(auditor: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await auditor.get(f"{API}/audit/events", params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def _seqs(db: asyncpg.Connection, where: str, *args: Any) -> list[int]:
    rows = await db.fetch(f"SELECT seq FROM audit_event WHERE {where} ORDER BY seq DESC", *args)
    return [row["seq"] for row in rows]


async def test_audit_search_filters_pages_and_shows_no_values(
    sign_in_as: SignIn, db: asyncpg.Connection
) -> None:
    """Auditors search the trail newest first by actor, record (also where the record is
    one of several an event touched), action, outcome and time; the answer names the
    fields that changed and never their values; and each search is itself recorded."""
    coordinator = await sign_in_as(Role.coordinator)
    caseworker = await sign_in_as(Role.caseworker)
    auditor = await sign_in_as(Role.auditor)
    person = await create_person(coordinator.client, **confidential_person_body())
    person_id = uuid.UUID(person["id"])
    patched = await coordinator.client.patch(
        f"{API}/persons/{person['id']}",
        json={"notes": "Seen in court"},
        headers=_if_match(1),
    )
    assert patched.status_code == 200, patched.text
    case = await create_case(coordinator.client, person["id"])
    assert (await caseworker.client.get(f"{API}/persons/{person['id']}")).status_code == 200
    refused = await caseworker.client.patch(
        f"{API}/cases/{case['id']}", json={"detention_places": []}, headers=_if_match(1)
    )
    assert refused.status_code == 403

    # Each search is compared with the trail as it was before it (it adds its own event).
    expected = await _seqs(db, "actor_id = $1", caseworker.account.id)
    by_actor = await _search(auditor.client, actor_id=str(caseworker.account.id))
    assert [e["seq"] for e in by_actor] == expected
    assert {e["action"] for e in by_actor} >= {"person.read", "case.update", "auth.sign_in"}

    expected = await _seqs(db, "resource_id = $1 OR $1 = ANY(related)", person_id)
    about = await _search(auditor.client, resource_id=person["id"])
    assert [e["seq"] for e in about] == expected
    # The case file's creation names the person only among its related records.
    assert "case.create" in {e["action"] for e in about}

    expected = await _seqs(db, "resource_type = 'case'")
    cases = await _search(auditor.client, resource_type="case")
    assert [e["seq"] for e in cases] == expected and expected

    updates = await _search(auditor.client, action="person.update")
    assert [e["action"] for e in updates] == ["person.update"]
    (update,) = updates
    assert update["changed"] == [
        {"type": "person", "id": person["id"], "fields": ["notes", "version"]}
    ]

    expected = await _seqs(db, "outcome = 'denied'")
    denials = await _search(auditor.client, outcome="denied")
    assert [e["seq"] for e in denials] == expected
    assert [(e["action"], e["actor"]["id"]) for e in denials] == [
        ("case.update", str(caseworker.account.id))
    ]

    # Time: since is inclusive, until exclusive.
    middle = await db.fetchrow(
        "SELECT seq, occurred_at FROM audit_event WHERE action = 'person.update'"
    )
    moment = middle["occurred_at"]
    expected = await _seqs(db, "occurred_at >= $1", moment)
    since = await _search(auditor.client, since=moment.isoformat(), limit=100)
    assert [e["seq"] for e in since] == expected
    assert middle["seq"] == expected[-1]
    expected = await _seqs(db, "occurred_at < $1", moment)
    until = await _search(auditor.client, until=moment.isoformat(), limit=100)
    assert [e["seq"] for e in until] == expected
    assert middle["seq"] not in expected and expected
    window = await _search(
        auditor.client,
        since=moment.isoformat(),
        until=(moment + timedelta(microseconds=1)).isoformat(),
    )
    assert middle["seq"] in [e["seq"] for e in window]
    naive = await auditor.client.get(
        f"{API}/audit/events", params={"since": moment.replace(tzinfo=None).isoformat()}
    )
    assert naive.status_code == 422

    # Pages, newest first, following `next`.
    everything = await _seqs(db, "true")
    paged: list[int] = []
    next_url: str | None = f"{API}/audit/events?limit=3"
    while next_url is not None:
        response = await auditor.client.get(next_url)
        assert response.status_code == 200, response.text
        paged.extend(e["seq"] for e in response.json()["items"])
        next_url = response.json()["next"]
    assert paged == everything

    # No values: not the notes written, not a fingerprint, not a confidential value.
    listing = await auditor.client.get(f"{API}/audit/events", params={"limit": 100})
    assert "Seen in court" not in listing.text
    assert FINGERPRINT not in listing.text
    assert '"before"' not in listing.text and '"after"' not in listing.text
    for secret in PERSON_SECRETS:
        assert secret not in listing.text

    # The search itself is on the record: who searched, for what.
    before = await head_seq(db)
    await _search(auditor.client, resource_id=person["id"], action="person.update")
    search = await only_event_after(db, before)
    assert search["action"] == "audit.search" and search["outcome"] == "success"
    assert search["actor_id"] == auditor.account.id
    assert search["detail"] == {"resource_id": person["id"], "action": "person.update"}


async def test_only_auditors_search_the_trail(sign_in_as: SignIn, db: asyncpg.Connection) -> None:
    """Every other role is refused the trail (403), and the refusal is recorded."""
    for role in (Role.coordinator, Role.caseworker, Role.analyst, Role.admin):
        signed = await sign_in_as(role)
        before = await head_seq(db)
        response = await signed.client.get(f"{API}/audit/events")
        assert response.status_code == 403, (role, response.text)
        denial = await only_event_after(db, before)
        assert (denial["action"], denial["outcome"]) == ("audit.read", "denied")
        assert denial["actor_id"] == signed.account.id


async def test_the_chain_still_verifies_after_all_kinds_of_events(
    sign_in_as: SignIn, anonymous: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """Writes, reads, denials and searches all link into one chain that verifies, with
    contiguous sequence numbers."""
    coordinator = (await sign_in_as(Role.coordinator)).client
    caseworker = (await sign_in_as(Role.caseworker)).client
    auditor = (await sign_in_as(Role.auditor)).client
    case = await create_case(coordinator)
    await caseworker.get(f"{API}/cases/{case['id']}")
    await anonymous.get(f"{API}/cases/{case['id']}")
    await _search(auditor)
    seqs = [row["seq"] for row in await db.fetch("SELECT seq FROM audit_event ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1))
    outcomes = {row["outcome"] for row in await db.fetch("SELECT outcome FROM audit_event")}
    assert outcomes == {"success", "denied"}
    verified = await auditor.get(f"{API}/audit/verify")
    assert verified.status_code == 200, verified.text
    assert verified.json()["ok"] is True
    assert verified.json()["events_checked"] == len(seqs)


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor",
        # A well-formed cursor of another query (a person list) is refused too.
        None,
    ],
)
async def test_a_damaged_or_foreign_cursor_is_a_clear_400(
    sign_in_as: SignIn, client: httpx.AsyncClient, cursor: str | None
) -> None:
    """Bad paging input gets a problem+json 400 from the search and the history, never a
    500 or another query's page."""
    auditor = (await sign_in_as(Role.auditor)).client
    if cursor is None:
        for _ in range(2):
            await create_person(client)
        listed = await client.get(f"{API}/persons", params={"limit": 1})
        next_link = listed.json()["next"]
        assert next_link is not None
        cursor = httpx.URL(next_link).params["cursor"]
    person = await create_person(client)
    for caller, path in (
        (auditor, f"{API}/audit/events"),
        (client, f"{API}/persons/{person['id']}/history"),
    ):
        response = await caller.get(path, params={"cursor": cursor})
        assert response.status_code == 400, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"].endswith("invalid-cursor")

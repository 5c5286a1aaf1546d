"""Every write endpoint produces exactly one audit event with the right diff.

The table WRITES names every registered write route; `test_every_write_route_is_in_the_table`
fails for a write route without an entry, so a new one cannot ship unaudited.
"""

import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pyotp
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from app.access.principal import Role
from tests.audit.trail import (
    Event,
    assert_no_plain,
    change_of,
    created,
    head_seq,
    is_fingerprint,
    only_event_after,
)
from tests.auth import (
    SignedIn,
    SignInAs,
    create_account,
    create_partner,
    enrolled_awaiting_approval,
    new_account,
)
from tests.factories import (
    API,
    PERSON_SECRETS,
    SECRET_WITNESS,
    amnesty,
    case_body,
    confidential_person_body,
    create_case,
    create_person,
    event,
    if_match,
)
from tests.sync.feed import feed_partner

WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})


@dataclass
class World:
    app: FastAPI
    db: asyncpg.Connection
    sign_in_as: SignInAs
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
            f"{API}/persons/{person['id']}", json={"notes": "Seen in court"}, headers=if_match(1)
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


async def _merge_of_two(w: World) -> tuple[SignedIn, dict[str, Any], dict[str, Any]]:
    """A coordinator's merge of a person with every kind of confidential value (B) into
    one with none (A): B's sealed values and private name move to A."""
    coordinator = await w.coordinator()
    kept = await create_person(coordinator.client)
    merged = await create_person(coordinator.client, **confidential_person_body())
    return coordinator, kept, merged


def _merge_body(merged: dict[str, Any]) -> dict[str, Any]:
    return {
        "merged_person_id": merged["id"],
        "merged_person_version": merged["version"],
        "reason": "One person recorded twice",
    }


async def prepare_merge(w: World) -> Attempt:
    coordinator, kept, merged = await _merge_of_two(w)
    return Attempt(
        coordinator.client,
        lambda c: c.post(
            f"{API}/persons/{kept['id']}/merges", json=_merge_body(merged), headers=if_match(1)
        ),
        201,
        _user(coordinator),
        _fixed(kept["id"]),
        secrets=list(PERSON_SECRETS),
        facts={"merged": merged["id"]},
    )


async def check_merge(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    kept, merged = r.json()["person_id"], a.facts["merged"]
    assert change_of(e, "person", merged)["merged_into"] == {"before": None, "after": kept}
    kept_change = change_of(e, "person", kept)
    # Sealed values moved, kept as fingerprints only.
    assert kept_change["address"]["before"] is None
    assert is_fingerprint(kept_change["address"]["after"])
    assert e["detail"]["merge_id"] == r.json()["id"]


async def prepare_unmerge(w: World) -> Attempt:
    coordinator, kept, merged = await _merge_of_two(w)
    made = await coordinator.client.post(
        f"{API}/persons/{kept['id']}/merges", json=_merge_body(merged), headers=if_match(1)
    )
    assert made.status_code == 201, made.text
    path = f"{API}/persons/{kept['id']}/merges/{made.json()['id']}/unmerge"
    return Attempt(
        coordinator.client,
        lambda c: c.post(path, headers={"If-Match": made.headers["ETag"]}),
        200,
        _user(coordinator),
        _fixed(kept["id"]),
        secrets=list(PERSON_SECRETS),
        facts={"merged": merged["id"]},
    )


async def check_unmerge(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    kept, merged = r.json()["person_id"], a.facts["merged"]
    assert change_of(e, "person", merged)["merged_into"] == {"before": kept, "after": None}
    assert change_of(e, "person", kept)["address"]["after"] is None


async def prepare_recognition(w: World) -> Attempt:
    coordinator = await w.coordinator()
    person = await create_person(coordinator.client)
    body = {"status": "under_review", "decided_on": "2022-01-10", "criteria": []}
    return Attempt(
        coordinator.client,
        lambda c: c.post(
            f"{API}/persons/{person['id']}/recognition", json=body, headers=if_match(0)
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
        lambda c: c.patch(f"{API}/cases/{case['id']}", json=body, headers=if_match(1)),
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
            headers=if_match(1),
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
            headers=if_match(1),
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
    assert set(retracted) == {"retraction", "state"}
    assert retracted["state"] == {"before": "in_effect", "after": "retracted"}
    assert retracted["retraction"]["before"] is None
    assert retracted["retraction"]["after"]["reason"] == "entered twice"
    assert len(e["changes"]) == 2


async def _path_change(w: World, path: str, body: dict[str, Any], claim: bool) -> Attempt:
    """A change to one event of a sentenced case file (its sentence, or a claim of release)."""
    coordinator = await w.coordinator()
    history = [event("detained", "2021-08-10"), event("sentenced", "2022-02-01")]
    if claim:
        history.append(event("released", "2023-01-01", confidence="unconfirmed"))
    case = await create_case(coordinator.client, history=history)
    events = (await coordinator.client.get(f"{API}/cases/{case['id']}/status-events")).json()
    target = events["events"][-1]["id"]
    return Attempt(
        coordinator.client,
        lambda c: c.post(
            f"{API}/cases/{case['id']}/status-events/{target}/{path}",
            json=body,
            headers=if_match(1),
        ),
        201,
        _user(coordinator),
        _fixed(case["id"]),
        facts={"case_id": case["id"], "event_id": target},
    )


async def prepare_supersession(w: World) -> Attempt:
    corrected = event("sentenced", "2022-02-01", details={"term_months": 30})
    return await _path_change(
        w, "supersession", {"reason": "misreported", "event": corrected}, claim=False
    )


async def check_supersession(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    fields = change_of(e, "case", a.facts["case_id"])
    assert fields["version"] == {"before": 1, "after": 2}
    superseded = change_of(e, "status_event", a.facts["event_id"])
    assert superseded["state"] == {"before": "in_effect", "after": "superseded"}
    correction = r.json()["event"]["id"]
    assert superseded["retraction"]["after"]["superseded_by"] == correction
    new = created(change_of(e, "status_event", correction))
    assert new["supersedes"] == a.facts["event_id"] and new["details"]["term_months"] == 30
    assert len(e["changes"]) == 3


async def prepare_confirmation(w: World) -> Attempt:
    return await _path_change(w, "confirmation", {"confidence": "reported"}, claim=True)


async def check_confirmation(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    fields = change_of(e, "case", a.facts["case_id"])
    assert fields["status"] == {"before": "sentenced", "after": "released"}
    assert fields["pending_claims"] == {"before": 1, "after": 0}
    confirmed = change_of(e, "status_event", a.facts["event_id"])
    assert confirmed["state"] == {"before": "pending_claim", "after": "in_effect"}
    assert confirmed["claim"]["after"]["outcome"] == "confirmed"
    assert len(e["changes"]) == 2


async def prepare_rejection(w: World) -> Attempt:
    return await _path_change(w, "rejection", {"reason": "denied by the family"}, claim=True)


async def check_rejection(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    fields = change_of(e, "case", a.facts["case_id"])
    assert "status" not in fields
    assert fields["pending_claims"] == {"before": 1, "after": 0}
    rejected = change_of(e, "status_event", a.facts["event_id"])
    assert rejected["state"] == {"before": "pending_claim", "after": "rejected_claim"}
    assert rejected["claim"]["after"]["reason"] == "denied by the family"
    assert len(e["changes"]) == 2


async def prepare_collective_retraction(w: World) -> Attempt:
    coordinator = await w.coordinator()
    cases = [await create_case(coordinator.client) for _ in range(2)]
    made = await coordinator.client.post(
        f"{API}/collective-events", json=amnesty([case["id"] for case in cases])
    )
    collective_id = made.json()["id"]
    return Attempt(
        coordinator.client,
        lambda c: c.post(
            f"{API}/collective-events/{collective_id}/retraction",
            json={"reason": "reported by mistake"},
        ),
        201,
        _user(coordinator),
        _fixed(collective_id),
        facts={"cases": cases, "collective_id": collective_id},
    )


async def check_collective_retraction(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    collective = change_of(e, "collective_event", a.facts["collective_id"])
    assert collective["retraction_reason"] == {"before": None, "after": "reported by mistake"}
    for case in a.facts["cases"]:
        fields = change_of(e, "case", case["id"])
        assert fields["status"] == {"before": "released", "after": "detained"}
        assert fields["version"] == {"before": 2, "after": 3}
        assert uuid.UUID(case["id"]) in e["related"]
    # The collective event, and per case file: the case file and its retracted event.
    assert len(e["changes"]) == 1 + 2 * len(a.facts["cases"])


async def prepare_collective(w: World) -> Attempt:
    coordinator = await w.coordinator()
    cases = [await create_case(coordinator.client) for _ in range(2)]
    body = amnesty([case["id"] for case in cases])
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


# custody: the facility register and a case file's timeline

FACILITY = {
    "names": [{"value": "Penal Colony No. 9 (synthetic)", "script": "Latn"}],
    "country": "BY",
    "type": "penal_colony",
}


async def prepare_facility_create(w: World) -> Attempt:
    coordinator = await w.coordinator()
    return Attempt(
        coordinator.client,
        lambda c: c.post(f"{API}/facilities", json=FACILITY),
        201,
        _user(coordinator),
        _response_id,
    )


async def check_facility_create(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    facility = created(change_of(e, "facility", r.json()["id"]))
    assert (facility["type"], facility["country"]) == ("penal_colony", "BY")
    assert len(e["changes"]) == 1


REPORT = {"as_of": "2025-09-30", "period": {"from": "2025-09-01", "to": "2025-09-30"}}


async def prepare_report(w: World) -> Attempt:
    coordinator = await w.coordinator()
    return Attempt(
        coordinator.client,
        lambda c: c.post(f"{API}/reports", json=REPORT),
        201,
        _user(coordinator),
        _response_id,
    )


async def check_report(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    report = created(change_of(e, "report", r.json()["id"]))
    assert report["content_sha256"] == r.json()["content_sha256"]
    assert report["parameters"] == r.json()["parameters"]
    assert len(e["changes"]) == 1


SCHEDULE = {"name": "Monthly, Belarus", "cadence": "monthly", "jurisdiction": "BY"}


async def prepare_schedule_create(w: World) -> Attempt:
    coordinator = await w.coordinator()
    return Attempt(
        coordinator.client,
        lambda c: c.post(f"{API}/reports/schedules", json=SCHEDULE),
        201,
        _user(coordinator),
        _response_id,
    )


async def check_schedule_create(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    schedule = created(change_of(e, "report_schedule", r.json()["id"]))
    assert (schedule["cadence"], schedule["jurisdiction"]) == ("monthly", "BY")
    assert len(e["changes"]) == 1


async def prepare_schedule_update(w: World) -> Attempt:
    coordinator = await w.coordinator()
    made = await coordinator.client.post(f"{API}/reports/schedules", json=SCHEDULE)
    schedule_id = made.json()["id"]
    return Attempt(
        coordinator.client,
        lambda c: c.patch(
            f"{API}/reports/schedules/{schedule_id}",
            json={"enabled": False},
            headers=if_match(1),
        ),
        200,
        _user(coordinator),
        _fixed(schedule_id),
        facts={"schedule_id": schedule_id},
    )


async def check_schedule_update(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    fields = change_of(e, "report_schedule", a.facts["schedule_id"])
    assert fields["enabled"] == {"before": True, "after": False}


async def prepare_facility_update(w: World) -> Attempt:
    coordinator = await w.coordinator()
    made = await coordinator.client.post(f"{API}/facilities", json=FACILITY)
    facility_id = made.json()["id"]
    return Attempt(
        coordinator.client,
        lambda c: c.patch(
            f"{API}/facilities/{facility_id}", json={"type": "prison"}, headers=if_match(1)
        ),
        200,
        _user(coordinator),
        _fixed(facility_id),
        facts={"facility_id": facility_id},
    )


async def check_facility_update(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    fields = change_of(e, "facility", a.facts["facility_id"])
    assert fields["type"] == {"before": "penal_colony", "after": "prison"}


async def _custody_entry(w: World, action: str, kind: str) -> Attempt:
    """A case file with one timeline entry of `kind`; the attempt is `action` on it (or,
    for "record", adding the entry itself)."""
    coordinator = await w.coordinator()
    case = await create_case(coordinator.client)
    url = f"{API}/cases/{case['id']}/custody-timeline"
    body = {"kind": kind, "effective_date": "2022-03", "confidence": "reported"}
    entry_id = None
    if action != "record":
        made = await coordinator.client.post(url, json=body)
        assert made.status_code == 201, made.text
        entry_id = made.json()["id"]
    send = {
        "record": lambda c: c.post(url, json=body),
        "retraction": lambda c: c.post(
            f"{url}/{entry_id}/retraction", json={"reason": "entered twice"}
        ),
        "end": lambda c: c.post(
            f"{url}/{entry_id}/end", json={"effective_date": "2022-06", "confidence": "confirmed"}
        ),
    }[action]
    return Attempt(
        coordinator.client,
        send,
        201,
        _user(coordinator),
        _fixed(case["id"]),
        facts={"case_id": case["id"], "entry_id": entry_id},
    )


async def prepare_custody_record(w: World) -> Attempt:
    return await _custody_entry(w, "record", "hunger_strike")


async def check_custody_record(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    entry = created(change_of(e, "custody_event", r.json()["id"]))
    assert (entry["kind"], entry["case_file_id"]) == ("hunger_strike", a.facts["case_id"])
    assert len(e["changes"]) == 1


async def prepare_custody_retraction(w: World) -> Attempt:
    return await _custody_entry(w, "retraction", "hunger_strike")


async def check_custody_retraction(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    fields = change_of(e, "custody_event", a.facts["entry_id"])
    assert fields["retraction"]["before"] is None
    assert fields["retraction"]["after"]["reason"] == "entered twice"


async def prepare_custody_end(w: World) -> Attempt:
    return await _custody_entry(w, "end", "incommunicado")


async def check_custody_end(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    fields = change_of(e, "custody_event", a.facts["entry_id"])
    assert fields["end"]["before"] is None
    assert fields["end"]["after"]["effective_date"] == "2022-06"


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
            f"{API}/users/{target.id}", json={"role": "auditor"}, headers=if_match(version)
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
        lambda c: c.post(f"{API}/users/{target.id}/reset", headers=if_match(version)),
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
                f"{API}/role-requests/{account.role_request_id}/{verdict}", headers=if_match(1)
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
            headers=if_match(1),
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
        lambda c: c.post(f"{API}/partners/{partner.id}/secret", headers=if_match(1)),
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
            f"{API}/partners/{partner['id']}/agreement", json=agreement, headers=if_match(1)
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


# partners' sync

HOOK_URL = "https://partner.example/hook"


async def _feed_reader(w: World, **agreement: Any) -> tuple[httpx.AsyncClient, Any]:
    return await feed_partner(
        w.app,
        {"jurisdiction": "BY", "recognised_only": False, **agreement},
        scopes=["sync:read", "sync:write"],
    )


async def prepare_webhook_register(w: World) -> Attempt:
    client, partner = await _feed_reader(w)
    return Attempt(
        client,
        lambda c: c.post(f"{API}/sync/webhooks", json={"url": HOOK_URL}),
        201,
        ("partner", partner.id, None),
        _fixed(partner.id),
    )


async def check_webhook_register(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    assert change_of(e, "sync_webhook", r.json()["id"]) == {
        "url": {"before": None, "after": HOOK_URL}
    }
    assert_no_plain(e, (r.json()["secret"],))


async def _registered(w: World) -> tuple[httpx.AsyncClient, Any, dict[str, Any]]:
    client, partner = await _feed_reader(w)
    made = await client.post(f"{API}/sync/webhooks", json={"url": HOOK_URL})
    assert made.status_code == 201, made.text
    return client, partner, made.json()


async def prepare_webhook_rotate(w: World) -> Attempt:
    client, partner, hook = await _registered(w)
    return Attempt(
        client,
        lambda c: c.post(f"{API}/sync/webhooks/{hook['id']}/secret"),
        201,
        ("partner", partner.id, None),
        _fixed(partner.id),
        secrets=[hook["secret"]],
        facts={"webhook_id": hook["id"]},
    )


async def check_webhook_rotate(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    assert change_of(e, "sync_webhook", a.facts["webhook_id"]) == {
        "secret": {"before": "old", "after": "new"}
    }
    assert_no_plain(e, (r.json()["secret"],))


async def prepare_webhook_remove(w: World) -> Attempt:
    client, partner, hook = await _registered(w)
    return Attempt(
        client,
        lambda c: c.delete(f"{API}/sync/webhooks/{hook['id']}"),
        204,
        ("partner", partner.id, None),
        _fixed(partner.id),
        facts={"webhook_id": hook["id"]},
    )


async def check_webhook_remove(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    assert change_of(e, "sync_webhook", a.facts["webhook_id"]) == {
        "url": {"before": HOOK_URL, "after": None}
    }


async def prepare_batch(w: World) -> Attempt:
    coordinator = await w.coordinator()
    case = await create_case(coordinator.client, (await create_person(coordinator.client))["id"])
    client, partner = await _feed_reader(w, read_write=True)
    operations = [
        {
            "op": "event.append",
            "case": {"id": case["id"]},
            "version": case["version"],
            "event": event("charged", "2021-09-01"),
        }
    ]
    return Attempt(
        client,
        lambda c: c.post(
            f"{API}/sync/batches",
            json={"operations": operations},
            headers={"Idempotency-Key": str(uuid.uuid4())},
        ),
        200,
        ("partner", partner.id, None),
        _fixed(partner.id),
        facts={"case": case},
    )


async def check_batch(w: World, e: Event, a: Attempt, r: httpx.Response) -> None:
    case = a.facts["case"]
    changed = change_of(e, "case", case["id"])
    assert changed["version"] == {"before": case["version"], "after": case["version"] + 1}
    assert changed["status"] == {"before": "detained", "after": "charged"}
    (item,) = r.json()["items"]
    event_fields = change_of(e, "status_event", item["id"])
    # Entered as reported (the agreement does not trust the partner's confirmations).
    assert event_fields["confidence"] == {"before": None, "after": "reported"}
    assert e["detail"] == {"operations": 1}


WRITES: dict[tuple[str, str], Write] = {
    ("POST", "/api/v1/persons"): Write(
        prepare_person_create, "person.create", "person", check_person_create
    ),
    ("PATCH", "/api/v1/persons/{person_id}"): Write(
        prepare_person_update, "person.update", "person", check_person_update
    ),
    ("POST", "/api/v1/persons/{person_id}/merges"): Write(
        prepare_merge, "person.merge", "person", check_merge
    ),
    ("POST", "/api/v1/persons/{person_id}/merges/{merge_id}/unmerge"): Write(
        prepare_unmerge, "person.unmerge", "person", check_unmerge
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
    ("POST", "/api/v1/cases/{case_id}/status-events/{event_id}/supersession"): Write(
        prepare_supersession, "case.supersede", "case", check_supersession
    ),
    ("POST", "/api/v1/cases/{case_id}/status-events/{event_id}/confirmation"): Write(
        prepare_confirmation, "case.confirm_claim", "case", check_confirmation
    ),
    ("POST", "/api/v1/cases/{case_id}/status-events/{event_id}/rejection"): Write(
        prepare_rejection, "case.reject_claim", "case", check_rejection
    ),
    ("POST", "/api/v1/collective-events"): Write(
        prepare_collective, "collective.create", "collective_event", check_collective
    ),
    ("POST", "/api/v1/collective-events/{event_id}/retraction"): Write(
        prepare_collective_retraction,
        "collective.retract",
        "collective_event",
        check_collective_retraction,
    ),
    ("POST", "/api/v1/sources"): Write(prepare_source, "source.create", "source", check_source),
    ("POST", "/api/v1/reports"): Write(prepare_report, "report.generate", "report", check_report),
    ("POST", "/api/v1/reports/schedules"): Write(
        prepare_schedule_create, "report_schedule.create", "report_schedule", check_schedule_create
    ),
    ("PATCH", "/api/v1/reports/schedules/{schedule_id}"): Write(
        prepare_schedule_update, "report_schedule.update", "report_schedule", check_schedule_update
    ),
    ("POST", "/api/v1/facilities"): Write(
        prepare_facility_create, "facility.create", "facility", check_facility_create
    ),
    ("PATCH", "/api/v1/facilities/{facility_id}"): Write(
        prepare_facility_update, "facility.update", "facility", check_facility_update
    ),
    ("POST", "/api/v1/cases/{case_id}/custody-timeline"): Write(
        prepare_custody_record, "custody.record", "case", check_custody_record
    ),
    ("POST", "/api/v1/cases/{case_id}/custody-timeline/{entry_id}/retraction"): Write(
        prepare_custody_retraction, "custody.retract", "case", check_custody_retraction
    ),
    ("POST", "/api/v1/cases/{case_id}/custody-timeline/{entry_id}/end"): Write(
        prepare_custody_end, "custody.close", "case", check_custody_end
    ),
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
    ("POST", "/api/v1/sync/webhooks"): Write(
        prepare_webhook_register, "sync.webhook_register", "partner", check_webhook_register
    ),
    ("POST", "/api/v1/sync/webhooks/{webhook_id}/secret"): Write(
        prepare_webhook_rotate, "sync.webhook_rotate", "partner", check_webhook_rotate
    ),
    ("DELETE", "/api/v1/sync/webhooks/{webhook_id}"): Write(
        prepare_webhook_remove, "sync.webhook_remove", "partner", check_webhook_remove
    ),
    ("POST", "/api/v1/sync/batches"): Write(prepare_batch, "sync.batch", "partner", check_batch),
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


# POSTs that change nothing: the duplicate check takes a would-be person in its body, and
# records only its reading (tests/persons/test_duplicate_check.py).
READS_BY_POST = {("POST", "/api/v1/person-matches")}


def test_every_write_route_is_in_the_table(app: FastAPI) -> None:
    """A write route without an entry in WRITES (and so without a test that it is
    audited) fails here; so does an entry for a route that no longer exists."""
    assert _write_routes(app) - READS_BY_POST == set(WRITES)


@pytest.fixture
async def world(
    app: FastAPI, db: asyncpg.Connection, sign_in_as: SignInAs, anonymous: httpx.AsyncClient
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

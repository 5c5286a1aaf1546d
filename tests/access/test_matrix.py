"""The authorization matrix: every role and a partner × every endpoint × an own, a foreign
and a high-confidentiality record → the expected status.

The table below is the specification. A route of the app without an entry fails
`test_every_route_has_an_entry`, so a new endpoint cannot ship without a decision.

The world, for each principal:
- "own": a normal case file in BY, assigned to the caseworker, shared with the partner
  (whose agreement covers every BY case file), and its person;
- "foreign": a normal case file in RU, assigned to nobody, not shared, and its person;
- "high": a high-confidentiality case file in BY assigned to another caseworker, and its
  person (whose only case file is that one), whom the caseworker recorded.
"""

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from app.access.principal import Role
from app.identity.http import Requires, open_route
from tests.auth import (
    SignedIn,
    api_client,
    create_account,
    create_partner,
    enrolled_awaiting_approval,
    new_account,
    partner_token,
)
from tests.factories import API, amnesty, case_body, create_person, event

ROLES = ("admin", "coordinator", "caseworker", "analyst", "auditor", "partner")
KINDS = ("own", "foreign", "high")


@dataclass
class World:
    cases: dict[str, dict[str, Any]]
    persons: dict[str, dict[str, Any]]
    source: dict[str, Any]
    collective_id: str
    user_id: str
    partner_id: str
    # A pending role request (asked for by the system) of an enrolled account.
    role_request_id: str = ""
    # A facility of the register.
    facility_id: str = ""
    # A stored status report.
    report_id: str = ""
    # A schedule of status reports.
    report_schedule_id: str = ""
    # A merge of two persons of their own: the kept person, the merge and its ETag.
    merge: dict[str, str] = field(default_factory=dict)


def expect(**by_role: int | tuple[int, int, int]) -> dict[str, tuple[int, int, int]]:
    """Expected status per role for (own, foreign, high); one number means all three."""
    table = {}
    for role in ROLES:
        value = by_role.get(role, by_role.get("others"))
        assert value is not None, role
        table[role] = value if isinstance(value, tuple) else (value, value, value)
    return table


CASE_READ = expect(
    coordinator=200,
    caseworker=(200, 200, 404),
    analyst=(200, 200, 404),
    partner=(200, 404, 404),
    others=404,
)
CASE_WRITE = expect(
    coordinator=200,
    caseworker=(200, 403, 404),
    analyst=(403, 403, 404),
    partner=(403, 404, 404),
    others=404,
)
CASE_TRANSITION = {
    role: tuple(201 if code == 200 else code for code in codes)
    for role, codes in CASE_WRITE.items()
}
# A person whose case file is high-confidentiality is as closed as that case file.
PERSON_READ = expect(
    coordinator=200,
    caseworker=(200, 200, 404),
    analyst=(200, 200, 404),
    partner=(200, 404, 404),
    others=404,
)
PERSON_WRITE = expect(
    coordinator=200,
    caseworker=(200, 403, 404),
    analyst=(403, 403, 404),
    partner=(403, 404, 404),
    others=404,
)
RECOGNITION_DECIDE = expect(
    coordinator=201,
    caseworker=(403, 403, 404),
    analyst=(403, 403, 404),
    partner=(403, 404, 404),
    others=404,
)
STAFF_LIST = expect(coordinator=200, caseworker=200, analyst=200, partner=200, others=403)
STAFF_READ_ONLY_LIST = expect(coordinator=200, caseworker=200, analyst=200, others=403)
STAFF_READ = expect(coordinator=200, caseworker=200, analyst=200, others=404)
DOCUMENT = expect(coordinator=201, caseworker=201, others=403)
COORDINATE = expect(coordinator=201, others=403)
ADMIN_CREATE = expect(admin=201, others=403)
ADMIN = expect(admin=200, others=403)
# The second person for a role that needs approval.
APPROVER = expect(admin=200, coordinator=200, others=403)
# Partners: admins manage the clients, coordinators decide what each is shared; both see
# them.
PARTNER_READ = expect(admin=200, coordinator=200, others=403)
PARTNER_SHARE = expect(coordinator=200, others=403)
SIGNED_IN = expect(partner=403, others=204)
# Merging persons, and undoing it: coordinators only, refused to others before any record.
MERGE = expect(coordinator=201, others=403)
MERGE_READ = expect(coordinator=200, others=403)
# Field-level history: coordinators only; others who may see the record get a 403.
HISTORY = expect(
    coordinator=200,
    caseworker=(403, 403, 404),
    analyst=(403, 403, 404),
    partner=(403, 404, 404),
    others=404,
)
AUDITOR = expect(auditor=200, others=403)
# Reference data (the facility register): every caller reads it, coordinators keep it.
EVERYONE = expect(others=200)
COORDINATE_CHANGE = expect(coordinator=200, others=403)
# Status reports: public-tier figures for analysts, coordinators and admins (and partners
# with the reports:read scope, which the matrix's partner lacks).
REPORT_GENERATE = expect(admin=201, coordinator=201, analyst=201, others=403)
REPORT_READ = expect(admin=200, coordinator=200, analyst=200, others=403)
# The change feed: partners with the sync:read scope only (staff read the records).
SYNC_READ = expect(partner=200, others=403)
# Batches: partners with sync:write and a read-write agreement (which the matrix's partner
# lacks); never staff. tests/sync/test_batches.py tells the partner's stories.
SYNC_WRITE = expect(others=403)
# Webhooks: feed readers manage their own (an endpoint not its own is a 404); admins list
# every partner's.
WEBHOOK_REGISTER = expect(partner=201, others=403)
WEBHOOK_LIST = expect(partner=200, admin=200, others=403)
MIRROR_LIST = expect(admin=200, coordinator=200, others=403)
# No mirror in this world: a coordinator is told that one does not exist (the records of
# a real one: tests/mirrors/test_pull.py).
MIRROR_READ = expect(coordinator=404, others=403)
WEBHOOK_OF_ANOTHER = expect(partner=404, others=403)
# Partners' recognition proposals: for those who decide.
RECOGNITION_PROPOSALS = expect(
    coordinator=200,
    caseworker=(403, 403, 404),
    analyst=(403, 403, 404),
    partner=(403, 404, 404),
    others=404,
)
REPORT_BODY = {"as_of": "2023-12-31", "period": {"from": "2023-01-01", "to": "2023-12-31"}}
# Schedules of status reports: coordinators keep them, analysts and admins read them.
REPORT_SCHEDULE_LIST = expect(coordinator=200, analyst=200, admin=200, others=403)
REPORT_SCHEDULE_READ = expect(coordinator=200, analyst=200, admin=200, others=404)
REPORT_SCHEDULE_CHANGE = expect(coordinator=200, analyst=403, admin=403, others=404)

Call = Callable[[httpx.AsyncClient, World, str], Awaitable[httpx.Response]]


def _case(world: World, kind: str) -> str:
    return str(world.cases[kind]["id"])


def _person(world: World, kind: str) -> str:
    return str(world.persons[kind]["id"])


def _other_kind(kind: str) -> str:
    return "foreign" if kind == "own" else "own"


MATRIX: dict[tuple[str, str], tuple[dict[str, tuple[int, int, int]], Call]] = {
    ("POST", "/api/v1/persons"): (
        DOCUMENT,
        lambda c, w, k: c.post(f"{API}/persons", json={**_person_body(), "notes": "n"}),
    ),
    ("GET", "/api/v1/persons"): (STAFF_LIST, lambda c, w, k: c.get(f"{API}/persons")),
    ("POST", "/api/v1/person-matches"): (
        STAFF_LIST,
        lambda c, w, k: c.post(
            f"{API}/person-matches", json={"names": [{"value": "Mikhas Labanovich"}]}
        ),
    ),
    ("GET", "/api/v1/persons/{person_id}"): (
        PERSON_READ,
        lambda c, w, k: c.get(f"{API}/persons/{_person(w, k)}"),
    ),
    ("PATCH", "/api/v1/persons/{person_id}"): (
        PERSON_WRITE,
        lambda c, w, k: c.patch(
            f"{API}/persons/{_person(w, k)}",
            json={"notes": "seen in court"},
            headers={"If-Match": '"1"'},
        ),
    ),
    ("POST", "/api/v1/persons/{person_id}/merges"): (
        MERGE,
        lambda c, w, k: c.post(
            f"{API}/persons/{_person(w, k)}/merges",
            json={
                "merged_person_id": _person(w, _other_kind(k)),
                "merged_person_version": w.persons[_other_kind(k)]["version"],
                "reason": "One person recorded twice",
                "keep_overlapping_custody": True,
            },
            headers={"If-Match": f'"{w.persons[k]["version"]}"'},
        ),
    ),
    ("GET", "/api/v1/person-duplicates"): (
        MERGE_READ,
        lambda c, w, k: c.get(f"{API}/person-duplicates"),
    ),
    ("GET", "/api/v1/persons/{person_id}/merges"): (
        MERGE_READ,
        lambda c, w, k: c.get(f"{API}/persons/{_person(w, k)}/merges"),
    ),
    ("GET", "/api/v1/persons/{person_id}/merges/{merge_id}"): (
        MERGE_READ,
        lambda c, w, k: c.get(f"{API}/persons/{w.merge['person_id']}/merges/{w.merge['id']}"),
    ),
    ("POST", "/api/v1/persons/{person_id}/merges/{merge_id}/unmerge"): (
        MERGE_READ,
        lambda c, w, k: c.post(
            f"{API}/persons/{w.merge['person_id']}/merges/{w.merge['id']}/unmerge",
            headers={"If-Match": w.merge["etag"]},
        ),
    ),
    ("GET", "/api/v1/persons/{person_id}/recognition"): (
        PERSON_READ,
        lambda c, w, k: c.get(f"{API}/persons/{_person(w, k)}/recognition"),
    ),
    ("POST", "/api/v1/persons/{person_id}/recognition"): (
        RECOGNITION_DECIDE,
        lambda c, w, k: c.post(
            f"{API}/persons/{_person(w, k)}/recognition",
            json={"status": "under_review", "decided_on": "2022-01-10", "criteria": []},
            headers={"If-Match": '"0"'},
        ),
    ),
    ("GET", "/api/v1/persons/{person_id}/recognition/proposals"): (
        RECOGNITION_PROPOSALS,
        lambda c, w, k: c.get(f"{API}/persons/{_person(w, k)}/recognition/proposals"),
    ),
    ("GET", "/api/v1/recognition/criteria"): (
        STAFF_LIST,
        lambda c, w, k: c.get(f"{API}/recognition/criteria"),
    ),
    ("POST", "/api/v1/cases"): (
        DOCUMENT,
        lambda c, w, k: c.post(f"{API}/cases", json=case_body(_person(w, "own"))),
    ),
    ("GET", "/api/v1/cases"): (STAFF_LIST, lambda c, w, k: c.get(f"{API}/cases")),
    ("GET", "/api/v1/cases/{case_id}"): (
        CASE_READ,
        lambda c, w, k: c.get(f"{API}/cases/{_case(w, k)}"),
    ),
    ("PATCH", "/api/v1/cases/{case_id}"): (
        CASE_WRITE,
        lambda c, w, k: c.patch(
            f"{API}/cases/{_case(w, k)}",
            json={"detention_places": [{"place": "Pre-trial prison No. 1"}]},
            headers={"If-Match": '"1"'},
        ),
    ),
    ("GET", "/api/v1/cases/{case_id}/status-events"): (
        CASE_READ,
        lambda c, w, k: c.get(f"{API}/cases/{_case(w, k)}/status-events"),
    ),
    ("POST", "/api/v1/cases/{case_id}/status-events"): (
        CASE_TRANSITION,
        lambda c, w, k: c.post(
            f"{API}/cases/{_case(w, k)}/status-events",
            json=event("sentenced", "2022-03-01"),
            headers={"If-Match": '"1"'},
        ),
    ),
    ("POST", "/api/v1/cases/{case_id}/status-events/{event_id}/retraction"): (
        CASE_TRANSITION,
        lambda c, w, k: c.post(
            f"{API}/cases/{_case(w, k)}/status-events/{w.cases[k]['last_event_id']}/retraction",
            json={"reason": "entered twice"},
            headers={"If-Match": '"1"'},
        ),
    ),
    ("POST", "/api/v1/cases/{case_id}/status-events/{event_id}/supersession"): (
        CASE_TRANSITION,
        lambda c, w, k: c.post(
            f"{API}/cases/{_case(w, k)}/status-events/{w.cases[k]['last_event_id']}/supersession",
            json={"reason": "misreported", "event": event("sentenced", "2022-02-02")},
            headers={"If-Match": '"1"'},
        ),
    ),
    ("POST", "/api/v1/cases/{case_id}/status-events/{event_id}/confirmation"): (
        CASE_TRANSITION,
        lambda c, w, k: c.post(
            f"{API}/cases/{_case(w, k)}/status-events/{w.cases[k]['claim_id']}/confirmation",
            json={},
            headers={"If-Match": '"1"'},
        ),
    ),
    ("POST", "/api/v1/cases/{case_id}/status-events/{event_id}/rejection"): (
        CASE_TRANSITION,
        lambda c, w, k: c.post(
            f"{API}/cases/{_case(w, k)}/status-events/{w.cases[k]['claim_id']}/rejection",
            json={"reason": "denied by the family"},
            headers={"If-Match": '"1"'},
        ),
    ),
    ("POST", "/api/v1/collective-events/{event_id}/retraction"): (
        COORDINATE,
        lambda c, w, k: c.post(
            f"{API}/collective-events/{w.collective_id}/retraction",
            json={"reason": "reported by mistake"},
        ),
    ),
    ("GET", "/api/v1/cases/{case_id}/custody-timeline"): (
        CASE_READ,
        lambda c, w, k: c.get(f"{API}/cases/{_case(w, k)}/custody-timeline"),
    ),
    ("POST", "/api/v1/cases/{case_id}/custody-timeline"): (
        CASE_TRANSITION,
        lambda c, w, k: c.post(
            f"{API}/cases/{_case(w, k)}/custody-timeline",
            json={"kind": "hunger_strike", "effective_date": "2022-03", "confidence": "reported"},
        ),
    ),
    ("POST", "/api/v1/cases/{case_id}/custody-timeline/{entry_id}/retraction"): (
        CASE_TRANSITION,
        lambda c, w, k: c.post(
            f"{API}/cases/{_case(w, k)}/custody-timeline/{w.cases[k]['custody_entry_id']}"
            "/retraction",
            json={"reason": "entered twice"},
        ),
    ),
    ("POST", "/api/v1/cases/{case_id}/custody-timeline/{entry_id}/end"): (
        CASE_TRANSITION,
        lambda c, w, k: c.post(
            f"{API}/cases/{_case(w, k)}/custody-timeline/{w.cases[k]['custody_entry_id']}/end",
            json={"effective_date": "2022-06", "confidence": "confirmed"},
        ),
    ),
    ("POST", "/api/v1/facilities"): (
        COORDINATE,
        lambda c, w, k: c.post(f"{API}/facilities", json=_facility_body()),
    ),
    ("GET", "/api/v1/facilities"): (EVERYONE, lambda c, w, k: c.get(f"{API}/facilities")),
    ("GET", "/api/v1/facilities/{facility_id}"): (
        EVERYONE,
        lambda c, w, k: c.get(f"{API}/facilities/{w.facility_id}"),
    ),
    ("PATCH", "/api/v1/facilities/{facility_id}"): (
        COORDINATE_CHANGE,
        lambda c, w, k: c.patch(
            f"{API}/facilities/{w.facility_id}",
            json={"type": "prison"},
            headers={"If-Match": '"1"'},
        ),
    ),
    ("POST", "/api/v1/reports/schedules"): (
        COORDINATE,
        lambda c, w, k: c.post(f"{API}/reports/schedules", json=_report_schedule_body()),
    ),
    ("GET", "/api/v1/reports/schedules"): (
        REPORT_SCHEDULE_LIST,
        lambda c, w, k: c.get(f"{API}/reports/schedules"),
    ),
    ("GET", "/api/v1/reports/schedules/{schedule_id}"): (
        REPORT_SCHEDULE_READ,
        lambda c, w, k: c.get(f"{API}/reports/schedules/{w.report_schedule_id}"),
    ),
    ("GET", "/api/v1/reports/schedules/{schedule_id}/runs"): (
        REPORT_SCHEDULE_READ,
        lambda c, w, k: c.get(f"{API}/reports/schedules/{w.report_schedule_id}/runs"),
    ),
    ("PATCH", "/api/v1/reports/schedules/{schedule_id}"): (
        REPORT_SCHEDULE_CHANGE,
        lambda c, w, k: c.patch(
            f"{API}/reports/schedules/{w.report_schedule_id}",
            json={"enabled": False},
            headers={"If-Match": '"1"'},
        ),
    ),
    ("POST", "/api/v1/collective-events"): (
        COORDINATE,
        lambda c, w, k: c.post(
            f"{API}/collective-events",
            json={
                "title": "Pardon decree",
                "kind": "pardon",
                "to_status": "pardoned",
                "confidence": "confirmed",
                "effective_date": "2023-01-05",
                "case_file_ids": [_case(w, "own")],
            },
        ),
    ),
    ("GET", "/api/v1/collective-events"): (
        STAFF_READ_ONLY_LIST,
        lambda c, w, k: c.get(f"{API}/collective-events"),
    ),
    ("GET", "/api/v1/collective-events/{event_id}"): (
        STAFF_READ,
        lambda c, w, k: c.get(f"{API}/collective-events/{w.collective_id}"),
    ),
    ("POST", "/api/v1/sources"): (
        DOCUMENT,
        lambda c, w, k: c.post(f"{API}/sources", json=_source_body()),
    ),
    ("GET", "/api/v1/sources"): (STAFF_READ_ONLY_LIST, lambda c, w, k: c.get(f"{API}/sources")),
    ("GET", "/api/v1/sources/{source_id}"): (
        STAFF_READ,
        lambda c, w, k: c.get(f"{API}/sources/{w.source['id']}"),
    ),
    ("POST", "/api/v1/users"): (
        ADMIN_CREATE,
        lambda c, w, k: c.post(
            f"{API}/users",
            json={"username": f"new-{uuid.uuid4().hex[:8]}", "role": "analyst"},
        ),
    ),
    ("GET", "/api/v1/users"): (ADMIN, lambda c, w, k: c.get(f"{API}/users")),
    ("GET", "/api/v1/users/{user_id}"): (ADMIN, lambda c, w, k: c.get(f"{API}/users/{w.user_id}")),
    ("PATCH", "/api/v1/users/{user_id}"): (
        ADMIN,
        lambda c, w, k: c.patch(
            f"{API}/users/{w.user_id}", json={"role": "auditor"}, headers={"If-Match": '"1"'}
        ),
    ),
    ("POST", "/api/v1/users/{user_id}/reset"): (
        ADMIN,
        lambda c, w, k: c.post(f"{API}/users/{w.user_id}/reset", headers={"If-Match": '"1"'}),
    ),
    ("GET", "/api/v1/role-requests"): (APPROVER, lambda c, w, k: c.get(f"{API}/role-requests")),
    ("POST", "/api/v1/role-requests/{request_id}/approval"): (
        APPROVER,
        lambda c, w, k: c.post(
            f"{API}/role-requests/{w.role_request_id}/approval", headers={"If-Match": '"1"'}
        ),
    ),
    ("POST", "/api/v1/role-requests/{request_id}/rejection"): (
        APPROVER,
        lambda c, w, k: c.post(
            f"{API}/role-requests/{w.role_request_id}/rejection", headers={"If-Match": '"1"'}
        ),
    ),
    ("POST", "/api/v1/partners"): (
        ADMIN_CREATE,
        lambda c, w, k: c.post(
            f"{API}/partners",
            json={
                "name": f"Partner {uuid.uuid4().hex[:8]}",
                "scopes": ["sync:read"],
                "auth_method": "client_secret",
            },
        ),
    ),
    ("GET", "/api/v1/partners"): (PARTNER_READ, lambda c, w, k: c.get(f"{API}/partners")),
    ("GET", "/api/v1/partners/{partner_id}"): (
        PARTNER_READ,
        lambda c, w, k: c.get(f"{API}/partners/{w.partner_id}"),
    ),
    ("PUT", "/api/v1/partners/{partner_id}/agreement"): (
        PARTNER_SHARE,
        lambda c, w, k: c.put(
            f"{API}/partners/{w.partner_id}/agreement",
            json={"jurisdiction": "BY", "max_tier": "restricted"},
            headers={"If-Match": '"1"'},
        ),
    ),
    ("PATCH", "/api/v1/partners/{partner_id}"): (
        ADMIN,
        lambda c, w, k: c.patch(
            f"{API}/partners/{w.partner_id}",
            json={"scopes": ["sync:read", "reports:read"]},
            headers={"If-Match": '"1"'},
        ),
    ),
    ("POST", "/api/v1/partners/{partner_id}/secret"): (
        ADMIN,
        lambda c, w, k: c.post(
            f"{API}/partners/{w.partner_id}/secret", headers={"If-Match": '"1"'}
        ),
    ),
    ("POST", "/api/v1/auth/logout"): (SIGNED_IN, lambda c, w, k: c.post(f"{API}/auth/logout")),
    ("GET", "/api/v1/cases/{case_id}/history"): (
        HISTORY,
        lambda c, w, k: c.get(f"{API}/cases/{_case(w, k)}/history"),
    ),
    ("GET", "/api/v1/persons/{person_id}/history"): (
        HISTORY,
        lambda c, w, k: c.get(f"{API}/persons/{_person(w, k)}/history"),
    ),
    ("POST", "/api/v1/reports"): (
        REPORT_GENERATE,
        lambda c, w, k: c.post(f"{API}/reports", json=REPORT_BODY),
    ),
    ("GET", "/api/v1/reports"): (REPORT_READ, lambda c, w, k: c.get(f"{API}/reports")),
    ("GET", "/api/v1/reports/{report_id}"): (
        REPORT_READ,
        lambda c, w, k: c.get(f"{API}/reports/{w.report_id}"),
    ),
    ("GET", "/api/v1/reports/public-list"): (
        REPORT_READ,
        lambda c, w, k: c.get(f"{API}/reports/public-list", params={"as_of": "2023-12-31"}),
    ),
    ("GET", "/api/v1/sync/changes"): (SYNC_READ, lambda c, w, k: c.get(f"{API}/sync/changes")),
    ("POST", "/api/v1/sync/webhooks"): (
        WEBHOOK_REGISTER,
        lambda c, w, k: c.post(
            f"{API}/sync/webhooks", json={"url": "https://partner.example/hook"}
        ),
    ),
    ("GET", "/api/v1/sync/webhooks"): (WEBHOOK_LIST, lambda c, w, k: c.get(f"{API}/sync/webhooks")),
    ("POST", "/api/v1/sync/webhooks/{webhook_id}/secret"): (
        WEBHOOK_OF_ANOTHER,
        lambda c, w, k: c.post(f"{API}/sync/webhooks/{uuid.uuid4()}/secret"),
    ),
    ("DELETE", "/api/v1/sync/webhooks/{webhook_id}"): (
        WEBHOOK_OF_ANOTHER,
        lambda c, w, k: c.delete(f"{API}/sync/webhooks/{uuid.uuid4()}"),
    ),
    ("POST", "/api/v1/sync/batches"): (
        SYNC_WRITE,
        lambda c, w, k: c.post(
            f"{API}/sync/batches",
            json={
                "operations": [
                    {
                        "op": "case.update",
                        "case": {"id": _case(w, k)},
                        "version": 1,
                        "changes": {"deprivation_type": "imprisonment"},
                    }
                ]
            },
            headers={"Idempotency-Key": f"matrix-{uuid.uuid4()}"},
        ),
    ),
    ("GET", "/api/v1/mirrors"): (MIRROR_LIST, lambda c, w, k: c.get(f"{API}/mirrors")),
    ("GET", "/api/v1/mirrors/{mirror_id}/records"): (
        MIRROR_READ,
        lambda c, w, k: c.get(f"{API}/mirrors/{uuid.uuid4()}/records", params={"kind": "person"}),
    ),
    ("GET", "/api/v1/audit/events"): (AUDITOR, lambda c, w, k: c.get(f"{API}/audit/events")),
    ("GET", "/api/v1/audit/verify"): (AUDITOR, lambda c, w, k: c.get(f"{API}/audit/verify")),
    ("GET", "/api/v1/audit/checkpoints/latest"): (
        AUDITOR,
        lambda c, w, k: c.get(f"{API}/audit/checkpoints/latest"),
    ),
}

# Reachable without a token, on purpose: signing in, getting tokens, and enrolling with a
# one-time enrolment code.
OPEN_ROUTES = {
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/enrolment"),
    ("POST", "/api/v1/auth/enrolment/confirmation"),
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/auth/token"),
}


def _person_body() -> dict[str, Any]:
    from tests.factories import person_body

    # A name no one else has, so that the duplicate check does not stop the write.
    letters = uuid.uuid4().hex.translate(str.maketrans("0123456789", "ghijklmnop"))
    name = f"Matrix {letters[:10].capitalize()} {letters[10:20].capitalize()}"
    return person_body(names=[{"value": name, "script": "Latn", "kind": "legal"}])


def _facility_body() -> dict[str, Any]:
    return {
        "names": [{"value": "Penal Colony No. 9 (synthetic)", "script": "Latn"}],
        "country": "BY",
        "type": "penal_colony",
    }


def _report_schedule_body() -> dict[str, Any]:
    # Names are unique; every world makes one more.
    return {"name": f"Weekly {uuid.uuid4()}", "cadence": "weekly", "jurisdiction": "BY"}


def _source_body() -> dict[str, Any]:
    return {
        "publisher": "Regional monitor",
        "title": "Court hearing report",
        "reliability": "B",
        "credibility": 2,
        "is_public": False,
        "witness": "A relative, reachable through the office",
    }


def _api_routes(app: FastAPI) -> list[Any]:
    """Every API route as served (FastAPI resolves included routers lazily)."""
    return [
        route
        for route in iter_route_contexts(app.routes)
        if isinstance(route.original_route, APIRoute) and route.path.startswith("/api/v1")
    ]


def _route_keys(app: FastAPI) -> set[tuple[str, str]]:
    return {(method, route.path) for route in _api_routes(app) for method in route.methods}


def test_every_route_has_an_entry(app: FastAPI) -> None:
    assert _route_keys(app) == set(MATRIX) | OPEN_ROUTES


def _dependency_calls(route: Any) -> list[object]:
    found = []
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        found.append(dependant.call)
        stack.extend(dependant.dependencies)
    return found


def test_every_route_declares_its_action_or_is_marked_open(app: FastAPI) -> None:
    for route in _api_routes(app):
        calls = _dependency_calls(route)
        actions = [call.action for call in calls if isinstance(call, Requires)]
        for method in route.methods:
            if (method, route.path) in OPEN_ROUTES:
                assert open_route in calls, route.path
                assert not actions, route.path
            else:
                assert len(actions) == 1, f"{method} {route.path} declares {actions}"


async def _build_world(
    coordinator: httpx.AsyncClient, caseworker: SignedIn, other_caseworker_id: uuid.UUID
) -> World:
    # The high-confidentiality person was first recorded by the caseworker: recording a
    # person does not keep them open once a case file that is not theirs closes them.
    persons = {
        "own": await create_person(coordinator),
        "foreign": await create_person(coordinator),
        "high": await create_person(caseworker.client),
    }
    cases = {}
    setups = {
        "own": {"jurisdiction": "BY", "assigned_caseworkers": [str(caseworker.account.id)]},
        "foreign": {"jurisdiction": "RU"},
        "high": {
            "jurisdiction": "BY",
            "confidentiality": "high",
            "assigned_caseworkers": [str(other_caseworker_id)],
        },
    }
    for kind, overrides in setups.items():
        history = [
            event("detained", "2021-08-10"),
            event("sentenced", "2022-02-01"),
            # A pending claim, to confirm or reject.
            event("released", "2023-01-01", confidence="unconfirmed"),
        ]
        response = await coordinator.post(
            f"{API}/cases",
            json=case_body(str(persons[kind]["id"]), history, **overrides),
        )
        assert response.status_code == 201, response.text
        case = response.json()
        events = (await coordinator.get(f"{API}/cases/{case['id']}/status-events")).json()
        in_effect = [e for e in events["events"] if e["state"] == "in_effect"]
        case["last_event_id"] = in_effect[-1]["id"]
        case["claim_id"] = events["events"][-1]["id"]
        period = await coordinator.post(
            f"{API}/cases/{case['id']}/custody-timeline",
            json={"kind": "incommunicado", "effective_date": "2022-03", "confidence": "reported"},
        )
        assert period.status_code == 201, period.text
        case["custody_entry_id"] = period.json()["id"]
        cases[kind] = case
    # A collective event on a separate case file, so it changes none of the three.
    spare = await coordinator.post(f"{API}/cases", json=case_body(str(persons["own"]["id"])))
    collective = await coordinator.post(
        f"{API}/collective-events",
        json=amnesty([spare.json()["id"]]),
    )
    assert collective.status_code == 201, collective.text
    source = await coordinator.post(f"{API}/sources", json=_source_body())
    assert source.status_code == 201, source.text
    facility = await coordinator.post(f"{API}/facilities", json=_facility_body())
    assert facility.status_code == 201, facility.text
    report = await coordinator.post(f"{API}/reports", json=REPORT_BODY)
    assert report.status_code == 201, report.text
    schedule = await coordinator.post(f"{API}/reports/schedules", json=_report_schedule_body())
    assert schedule.status_code == 201, schedule.text
    kept, merged = await create_person(coordinator), await create_person(coordinator)
    merge = await coordinator.post(
        f"{API}/persons/{kept['id']}/merges",
        json={
            "merged_person_id": merged["id"],
            "merged_person_version": merged["version"],
            "reason": "One person recorded twice",
        },
        headers={"If-Match": f'"{kept["version"]}"'},
    )
    assert merge.status_code == 201, merge.text
    return World(
        cases,
        # Read again: case files and recognition may have moved their versions on.
        {
            kind: (await coordinator.get(f"{API}/persons/{p['id']}")).json()
            for kind, p in persons.items()
        },
        source.json(),
        collective.json()["id"],
        "",
        "",
        facility_id=facility.json()["id"],
        report_id=report.json()["id"],
        report_schedule_id=schedule.json()["id"],
        merge={"person_id": kept["id"], "id": merge.json()["id"], "etag": merge.headers["ETag"]},
    )


@pytest.mark.parametrize(("method", "path"), sorted(MATRIX))
async def test_matrix(
    app: FastAPI,
    sign_in_as: Callable[..., Awaitable[SignedIn]],
    method: str,
    path: str,
) -> None:
    expected, call = MATRIX[(method, path)]
    coordinator = (await sign_in_as(Role.coordinator)).client
    callers: dict[str, httpx.AsyncClient] = {"coordinator": coordinator}
    caseworker = await sign_in_as(Role.caseworker)
    callers["caseworker"] = caseworker.client
    other_caseworker = await create_account(app, Role.caseworker)
    for role in (Role.admin, Role.analyst, Role.auditor):
        callers[role.value] = (await sign_in_as(role)).client
    partner, secret = await create_partner(
        app,
        scopes=["sync:read"],
        agreement={"jurisdiction": "BY", "recognised_only": False, "max_tier": "restricted"},
    )
    partner_client = api_client(app)
    token = await partner_token(partner_client, partner.client_id, str(secret))
    partner_client.headers["Authorization"] = f"Bearer {token}"
    callers["partner"] = partner_client
    world = None
    try:
        for role in ROLES:
            for index, kind in enumerate(KINDS):
                # Writes change versions and statuses: they get a fresh world (and target
                # account and partner) per attempt; reads share one.
                if world is None or method != "GET":
                    world = await _build_world(coordinator, caseworker, other_caseworker.id)
                    # An account whose coordinator role awaits approval (version 1), and
                    # one its person enrolled, whose request can be approved (version 1).
                    target = await new_account(app, Role.coordinator)
                    world.user_id = str(target.id)
                    enrolled = await enrolled_awaiting_approval(app, Role.coordinator)
                    world.role_request_id = str(enrolled.role_request_id)
                    world.partner_id = str((await create_partner(app, scopes=["sync:read"]))[0].id)
                caller = callers[role]
                response = await call(caller, world, kind)
                assert response.status_code == expected[role][index], (
                    f"{role} {method} {path} on the {kind} record: "
                    f"{response.status_code} {response.text[:300]}"
                )
                if method == "POST" and path.endswith("/logout"):
                    # The caller just signed out; sign in again for the next attempt.
                    if role == "caseworker":
                        # The world is built with this caseworker's own account.
                        caseworker = await sign_in_as(Role.caseworker)
                        callers[role] = caseworker.client
                    else:
                        callers[role] = await _fresh(app, sign_in_as, role, partner, secret)
                    if role == "coordinator":
                        coordinator = callers[role]
    finally:
        await partner_client.aclose()


async def _fresh(
    app: FastAPI,
    sign_in_as: Callable[..., Awaitable[SignedIn]],
    role: str,
    partner: Any,
    secret: str | None,
) -> httpx.AsyncClient:
    if role == "partner":
        client = api_client(app)
        token = await partner_token(client, partner.client_id, str(secret))
        client.headers["Authorization"] = f"Bearer {token}"
        return client
    return (await sign_in_as(Role(role))).client

"""Who sees and records a custody timeline: as its case file decides, with places and
health at the restricted tier."""

from collections.abc import Awaitable, Callable

import httpx
from fastapi import FastAPI

from app.access.principal import Role
from tests.auth import SignedIn
from tests.custody.custody import (
    create_facility,
    entry,
    partner_client,
    record,
    timeline_path,
    transfer,
)
from tests.factories import API, create_case

SignIn = Callable[..., Awaitable[SignedIn]]
RESTRICTED_KINDS = {"transfer", "incommunicado", "hunger_strike", "punishment_cell"}


async def _full_timeline(client: httpx.AsyncClient, case: dict[str, object]) -> str:
    facility = await create_facility(client, 17)
    await transfer(client, case, facility, "2022-04-02", note="via Minsk remand")
    await record(client, case, "incommunicado", "2022-05")
    await record(client, case, "hunger_strike", "2022-06-01", end_date="2022-06-20")
    await record(client, case, "punishment_cell", "2022-07-01", details={"days": 15})
    charge = await record(
        client,
        case,
        "new_charge",
        "2022-08",
        details={"article": "BY-CC 411", "description": "disobeying the administration"},
        note="told by cellmate's family",
    )
    await client.post(
        f"{timeline_path(case)}/{charge['id']}/retraction", json={"reason": "second source"}
    )
    await record(client, case, "expected_release", "2022-09", details={"release_on": "2030"})
    return facility


async def test_a_partner_below_the_restricted_tier_sees_no_place_and_no_health(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    case = await create_case(client)
    facility = await _full_timeline(client, case)
    public = await partner_client(app, "public")
    restricted = await partner_client(app, "restricted")
    try:
        seen = (await public.get(timeline_path(case))).json()
        assert {e["kind"] for e in seen["entries"]} == {"new_charge", "expected_release"}
        assert "current_facility_id" not in seen and "incommunicado" not in seen
        charge = seen["entries"][0]
        assert charge["details"]["description"] == "disobeying the administration"
        assert "note" not in charge and "recorded_by" not in charge and "source_ids" not in charge
        assert charge["retraction"] is not None and "reason" not in charge["retraction"]
        # Nor may it find who is held where, who is incommunicado, or where someone was
        # deported to (an event's details), by filtering.
        for query in (
            {"facility_id": facility},
            {"incommunicado": "true"},
            {"destination_country": "LT"},
        ):
            refused = await public.get(f"{API}/cases", params=query)
            assert refused.status_code == 403, refused.text

        full = (await restricted.get(timeline_path(case))).json()
        assert {e["kind"] for e in full["entries"]} == RESTRICTED_KINDS | {
            "new_charge",
            "expected_release",
        }
        assert full["current_facility_id"] == facility and full["incommunicado"] is True
        moved = next(e for e in full["entries"] if e["kind"] == "transfer")
        assert moved["note"] == "via Minsk remand"
        listed = await restricted.get(f"{API}/cases", params={"facility_id": facility})
        assert [item["id"] for item in listed.json()["items"]] == [case["id"]]
        # Partners read; they record nothing.
        refused = await restricted.post(
            timeline_path(case), json=entry("new_charge", "2022-10", details={"article": "411"})
        )
        assert refused.status_code == 403, refused.text
    finally:
        await public.aclose()
        await restricted.aclose()


async def test_staff_who_read_the_case_file_see_the_whole_timeline(
    sign_in_as: SignIn,
) -> None:
    coordinator = (await sign_in_as(Role.coordinator)).client
    case = await create_case(coordinator)
    facility = await _full_timeline(coordinator, case)
    for role in (Role.analyst, Role.caseworker):
        caller = (await sign_in_as(role)).client
        seen = (await caller.get(timeline_path(case))).json()
        assert len(seen["entries"]) == 6, role
        assert seen["current_facility_id"] == facility
        listed = await caller.get(f"{API}/cases", params={"incommunicado": "true"})
        assert [item["id"] for item in listed.json()["items"]] == [case["id"]]


async def test_a_case_file_the_caller_may_not_see_has_no_timeline(
    sign_in_as: SignIn,
) -> None:
    coordinator = (await sign_in_as(Role.coordinator)).client
    assigned = await sign_in_as(Role.caseworker)
    other = (await sign_in_as(Role.caseworker)).client
    analyst = (await sign_in_as(Role.analyst)).client
    auditor = (await sign_in_as(Role.auditor)).client
    high = await create_case(
        coordinator,
        confidentiality="high",
        assigned_caseworkers=[str(assigned.account.id)],
    )
    period = await record(coordinator, high, "incommunicado", "2023-01")
    body = entry("hunger_strike", "2023-02")
    for caller in (other, analyst, auditor):
        assert (await caller.get(timeline_path(high))).status_code == 404
        assert (await caller.post(timeline_path(high), json=body)).status_code == 404
        retraction = await caller.post(
            f"{timeline_path(high)}/{period['id']}/retraction", json={"reason": "x"}
        )
        assert retraction.status_code == 404
        # The high case file is not found by filtering either.
        listed = await caller.get(f"{API}/cases", params={"incommunicado": "true"})
        assert listed.status_code in (200, 403)
        if listed.status_code == 200:
            assert listed.json()["items"] == []
    # A case file that does not exist answers the same.
    missing = {"id": "01900000-0000-7000-8000-000000000000"}
    assert (await coordinator.get(timeline_path(missing))).status_code == 404
    # The caseworker in charge sees and records it.
    seen = await assigned.client.get(timeline_path(high))
    assert seen.status_code == 200 and len(seen.json()["entries"]) == 1
    assert (await assigned.client.post(timeline_path(high), json=body)).status_code == 201


async def test_only_those_who_work_on_a_case_file_record_its_timeline(
    sign_in_as: SignIn,
) -> None:
    coordinator = (await sign_in_as(Role.coordinator)).client
    assigned = await sign_in_as(Role.caseworker)
    case = await create_case(coordinator, assigned_caseworkers=[str(assigned.account.id)])
    body = entry("incommunicado", "2023-01")
    for role in (Role.caseworker, Role.analyst):
        caller = (await sign_in_as(role)).client
        refused = await caller.post(timeline_path(case), json=body)
        assert refused.status_code == 403, (role, refused.text)
    made = await assigned.client.post(timeline_path(case), json=body)
    assert made.status_code == 201, made.text
    assert made.json()["recorded_by"] == str(assigned.account.id)


def test_every_kind_of_entry_has_a_tier() -> None:
    from app.access.tiers import RECORD_TIERS
    from app.custody.models import CustodyKind

    assert set(RECORD_TIERS["custody_event"]) == set(CustodyKind)
    assert {k for k, tier in RECORD_TIERS["custody_event"].items() if tier > 1} == RESTRICTED_KINDS

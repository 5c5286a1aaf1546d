"""What documentation teams meet every week, told through the API (issue 13): the
unconfirmed release, the late sentence, the corrected term inside a collective release,
the retrial, the in-absentia conviction, the fine that is not custody, pardoned and
expelled, and dates known only to the month or the year."""

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest

from app.access.principal import Role
from app.core import clock
from tests.auth import SignedIn
from tests.factories import (
    API,
    amnesty,
    create_case,
    event,
    if_match,
    sentenced_cases,
    transition,
)

SignIn = Callable[..., Awaitable[SignedIn]]


async def _case(client: httpx.AsyncClient, case: dict[str, Any]) -> dict[str, Any]:
    response = await client.get(f"{API}/cases/{case['id']}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _events(client: httpx.AsyncClient, case: dict[str, Any]) -> list[dict[str, Any]]:
    response = await client.get(f"{API}/cases/{case['id']}/status-events")
    assert response.status_code == 200, response.text
    return response.json()["events"]  # type: ignore[no-any-return]


async def _ids(client: httpx.AsyncClient, query: str) -> set[str]:
    response = await client.get(f"{API}/cases?{query}")
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()["items"]}


async def _post(
    client: httpx.AsyncClient, case: dict[str, Any], path: str, body: dict[str, Any], version: int
) -> httpx.Response:
    return await client.post(
        f"{API}/cases/{case['id']}/status-events/{path}", json=body, headers=if_match(version)
    )


class TestClaims:
    async def test_an_unconfirmed_release_is_a_pending_claim_until_confirmed(
        self, client: httpx.AsyncClient
    ) -> None:
        case = await create_case(client, history=[event("detained", "2021-08-10")])
        # "Reported among the freed, no confirmation of her release."
        claimed = await transition(client, case, "released", "2025-09-11", confidence="unconfirmed")
        assert claimed.status_code == 201, claimed.text
        claim = claimed.json()["event"]
        assert claim["state"] == "pending_claim"
        current = await _case(client, case)
        assert (current["status"], current["in_custody"], current["pending_claims"]) == (
            "detained",
            True,
            1,
        )
        assert case["id"] not in await _ids(client, "status=released")
        assert case["id"] in await _ids(client, "status=detained&has_pending_claims=true")
        assert case["id"] not in await _ids(client, "has_pending_claims=false")

        confirmed = await _post(
            client, case, f"{claim['id']}/confirmation", {"confidence": "reported"}, 2
        )
        assert confirmed.status_code == 201, confirmed.text
        assert confirmed.json()["event"]["state"] == "in_effect"
        assert confirmed.json()["event"]["claim"]["outcome"] == "confirmed"
        current = await _case(client, case)
        assert (current["status"], current["in_custody"], current["pending_claims"]) == (
            "released",
            False,
            0,
        )
        # How sure the status is: the confirmation's confidence.
        assert current["status_confidence"] == "reported"
        assert case["id"] in await _ids(client, "status=released&confidence=reported")
        again = await _post(client, case, f"{claim['id']}/confirmation", {}, 3)
        assert again.status_code == 409

    async def test_a_rejected_claim_stays_in_the_history_and_never_moves_the_status(
        self, client: httpx.AsyncClient
    ) -> None:
        case = await create_case(client, history=[event("detained", "2021-08-10")])
        claim = (
            await transition(
                client, case, "died_in_custody", "2024-02-01", confidence="unconfirmed"
            )
        ).json()["event"]
        missing_reason = await _post(client, case, f"{claim['id']}/rejection", {}, 2)
        assert missing_reason.status_code == 422
        rejected = await _post(
            client, case, f"{claim['id']}/rejection", {"reason": "Seen alive by her lawyer"}, 2
        )
        assert rejected.status_code == 201, rejected.text
        (_, event_read) = await _events(client, case)
        assert event_read["state"] == "rejected_claim"
        assert event_read["claim"]["reason"] == "Seen alive by her lawyer"
        current = await _case(client, case)
        assert (current["status"], current["pending_claims"], current["version"]) == (
            "detained",
            0,
            3,
        )
        assert (await _post(client, case, f"{claim['id']}/confirmation", {}, 3)).status_code == 409

    async def test_a_claim_that_could_never_take_effect_is_refused(
        self, client: httpx.AsyncClient
    ) -> None:
        case = await create_case(client, history=[event("detained", "2021-08-10")])
        response = await transition(
            client, case, "detained", "2022-01-01", confidence="unconfirmed"
        )
        assert response.status_code == 409

    async def test_a_confirmation_that_would_break_the_path_is_refused(
        self, client: httpx.AsyncClient
    ) -> None:
        case = await create_case(client, history=[event("detained", "2021-08-10")])
        claim = (
            await transition(client, case, "released", "2022-01-01", confidence="unconfirmed")
        ).json()["event"]
        # Meanwhile the death in custody is confirmed; the release can no longer be.
        assert (
            await transition(client, case, "died_in_custody", "2022-06-01", 2)
        ).status_code == 201
        refused = await _post(client, case, f"{claim['id']}/confirmation", {}, 3)
        assert refused.status_code == 409
        assert (await _case(client, case))["status"] == "died_in_custody"


async def test_late_news_of_a_sentence_is_inserted_where_it_belongs(
    client: httpx.AsyncClient,
) -> None:
    case = await create_case(
        client, history=[event("detained", "2021-08-10"), event("released", "2022-03-01")]
    )
    before = {e["id"]: e["recorded_at"] for e in await _events(client, case)}
    late = await transition(
        client,
        case,
        "sentenced",
        "2022-01-15",
        details={"sentence_type": "imprisonment", "term_months": 6, "court": "District court"},
    )
    assert late.status_code == 201, late.text
    events = await _events(client, case)
    assert [(e["from_status"], e["to_status"]) for e in events] == [
        (None, "detained"),
        ("detained", "sentenced"),
        ("sentenced", "released"),
    ]
    # Nothing already recorded was rewritten.
    assert {e["id"]: e["recorded_at"] for e in events if e["id"] in before} == before
    current = await _case(client, case)
    assert (current["status"], current["status_since"]) == ("released", "2022-03-01")
    assert [d["term_months"] for d in current["court_decisions"]] == [6]
    assert current["court_decisions"][0]["decided_on"] == "2022-01-15"


class TestCorrections:
    async def test_a_corrected_term_inside_a_collective_release_keeps_the_release(
        self, client: httpx.AsyncClient
    ) -> None:
        history = [
            event("detained", "2021-01-01"),
            event("sentenced", "2021-06-01", details={"term_months": 36}),
        ]
        first = await create_case(client, history=history)
        second = await create_case(client, history=history)
        release = await client.post(
            f"{API}/collective-events", json=amnesty([first["id"], second["id"]])
        )
        assert release.status_code == 201, release.text
        collective_id = release.json()["id"]
        wrong = next(e for e in await _events(client, first) if e["to_status"] == "sentenced")
        corrected = await _post(
            client,
            first,
            f"{wrong['id']}/supersession",
            {
                "reason": "The verdict says 30 months",
                "event": event("sentenced", "2021-06-01", details={"term_months": 30}),
            },
            2,
        )
        assert corrected.status_code == 201, corrected.text
        correction = corrected.json()["event"]
        assert correction["supersedes"] == wrong["id"]
        events = {e["id"]: e for e in await _events(client, first)}
        assert events[wrong["id"]]["state"] == "superseded"
        assert events[wrong["id"]]["retraction"]["superseded_by"] == correction["id"]
        assert [e["state"] for e in events.values()].count("in_effect") == 3
        current = await _case(client, first)
        assert current["status"] == "released"
        assert [d["term_months"] for d in current["court_decisions"]] == [30]
        read = (await client.get(f"{API}/collective-events/{collective_id}")).json()
        assert {(r["case_file_id"], r["outcome"]) for r in read["results"]} == {
            (first["id"], "applied"),
            (second["id"], "applied"),
        }

    async def test_a_corrected_release_date_keeps_its_collective_event(
        self, client: httpx.AsyncClient
    ) -> None:
        case = (await sentenced_cases(client, 1))[0]
        release = await client.post(f"{API}/collective-events", json=amnesty([case["id"]]))
        collective_id = release.json()["id"]
        released = next(e for e in await _events(client, case) if e["to_status"] == "released")
        corrected = await _post(
            client,
            case,
            f"{released['id']}/supersession",
            {
                "reason": "Released a day later",
                "event": event("released", "2023-02-02", details={"release_reason": "other"}),
            },
            2,
        )
        assert corrected.status_code == 201, corrected.text
        assert corrected.json()["event"]["collective_event_id"] == collective_id
        read = (await client.get(f"{API}/collective-events/{collective_id}")).json()
        assert sorted(r["outcome"] for r in read["results"]) == ["applied", "superseded"]
        assert read["case_file_count"] == 1
        assert (await _case(client, case))["status_since"] == "2023-02-02"

    async def test_a_correction_that_would_break_the_path_changes_nothing(
        self, client: httpx.AsyncClient
    ) -> None:
        case = await create_case(
            client, history=[event("detained", "2021-01-01"), event("released", "2021-06-01")]
        )
        detained = (await _events(client, case))[0]
        response = await _post(
            client,
            case,
            f"{detained['id']}/supersession",
            {"reason": "wrong", "event": event("sentenced", "2021-01-01")},
            1,
        )
        assert response.status_code == 409
        assert [e["state"] for e in await _events(client, case)] == ["in_effect", "in_effect"]
        assert (await _case(client, case))["version"] == 1


class TestCollectiveRetraction:
    async def test_all_of_a_collective_event_is_retracted_or_none(
        self, client: httpx.AsyncClient
    ) -> None:
        history = [event("charged", "2021-01-01", details={"situation": "travel_ban"})]
        first = await create_case(client, history=history)
        second = await create_case(client, history=history)
        # A wave of arrests of people who were at liberty under a travel ban.
        arrests = await client.post(
            f"{API}/collective-events",
            json=amnesty(
                [first["id"], second["id"]],
                title="Arrests of 2 defendants",
                kind="other",
                to_status="detained",
                details={},
            ),
        )
        assert arrests.status_code == 201, arrests.text
        collective_id = arrests.json()["id"]
        # The second was then pardoned: a pardon only follows custody.
        assert (await transition(client, second, "pardoned", "2023-03-01", 2)).status_code == 201
        url = f"{API}/collective-events/{collective_id}/retraction"
        refused = await client.post(url, json={"reason": "Reported by mistake"})
        assert refused.status_code == 409
        outcomes = {r["case_file_id"]: r["outcome"] for r in refused.json()["results"]}
        assert outcomes == {first["id"]: "would_retract", second["id"]: "rejected"}
        assert (await _case(client, first))["status"] == "detained"

        last = (await _events(client, second))[-1]
        assert (
            await _post(client, second, f"{last['id']}/retraction", {"reason": "no"}, 3)
        ).status_code == 201
        missing = await client.post(url, json={})
        assert missing.status_code == 422
        retracted = await client.post(url, json={"reason": "Reported by mistake"})
        assert retracted.status_code == 201, retracted.text
        body = retracted.json()
        assert body["retraction"]["reason"] == "Reported by mistake"
        assert {r["outcome"] for r in body["results"]} == {"retracted"}
        for case in (first, second):
            assert (await _case(client, case))["status"] == "charged"
        assert (await client.post(url, json={"reason": "again"})).status_code == 409

    async def test_only_a_coordinator_retracts_a_collective_event(
        self, client: httpx.AsyncClient, sign_in_as: SignIn
    ) -> None:
        case = (await sentenced_cases(client, 1))[0]
        created = await client.post(f"{API}/collective-events", json=amnesty([case["id"]]))
        url = f"{API}/collective-events/{created.json()['id']}/retraction"
        for role in (Role.caseworker, Role.analyst):
            other = (await sign_in_as(role)).client
            assert (await other.post(url, json={"reason": "x"})).status_code == 403
        assert (await _case(client, case))["status"] == "released"


class TestStateMachine:
    async def test_a_quashed_verdict_and_a_retrial_in_custody(
        self, client: httpx.AsyncClient
    ) -> None:
        case = await create_case(
            client,
            history=[
                event("detained", "2020-09-01"),
                event("sentenced", "2021-02-01", details={"term_months": 48}),
                event("detained", "2022-05-01", note="verdict quashed on appeal"),
                event("sentenced", "2022-11-01", details={"term_months": 60}),
            ],
        )
        assert (case["status"], case["in_custody"]) == ("sentenced", True)
        assert [d["term_months"] for d in case["court_decisions"]] == [48, 60]

    async def test_released_pending_trial_is_persecution_not_custody(
        self, client: httpx.AsyncClient
    ) -> None:
        case = await create_case(client, history=[event("detained", "2021-01-01")])
        moved = await transition(
            client,
            case,
            "charged",
            "2021-03-01",
            details={"situation": "released_pending_trial"},
        )
        assert moved.status_code == 201, moved.text
        current = await _case(client, case)
        assert (current["status"], current["in_custody"]) == ("charged", False)
        assert case["id"] in await _ids(client, "status=charged&in_custody=false")
        assert case["id"] not in await _ids(client, "in_custody=true")

    async def test_a_conviction_in_absentia_is_never_counted_as_held(
        self, client: httpx.AsyncClient
    ) -> None:
        case = await create_case(
            client,
            history=[
                event("charged", "2022-01-01", details={"situation": "abroad_tried_in_absentia"}),
                event(
                    "sentenced",
                    "2023-05-01",
                    details={
                        "sentence_type": "imprisonment",
                        "term_months": 96,
                        "in_absentia": True,
                    },
                ),
            ],
        )
        assert (case["status"], case["in_custody"], case["detained_on"]) == (
            "sentenced",
            False,
            "2022-01-01",
        )
        # Arrested on return: held from then on.
        assert (await transition(client, case, "detained", "2024-02-01")).status_code == 201
        assert (await _case(client, case))["in_custody"] is True

    @pytest.mark.parametrize(
        ("sentence", "held"),
        [
            ("fine", False),
            ("suspended", False),
            ("restriction_of_freedom_at_home", False),
            ("restriction_of_freedom_open_facility", True),
            ("imprisonment", True),
        ],
    )
    async def test_only_a_custodial_sentence_is_custody(
        self, client: httpx.AsyncClient, sentence: str, held: bool
    ) -> None:
        case = await create_case(client, history=[event("detained", "2021-01-01")])
        moved = await transition(
            client, case, "sentenced", "2021-06-01", details={"sentence_type": sentence}
        )
        assert moved.status_code == 201, moved.text
        current = await _case(client, case)
        assert (current["in_custody"], current["sentence_type"]) == (held, sentence)
        assert (case["id"] in await _ids(client, f"sentence_type={sentence}")) is True
        assert (case["id"] in await _ids(client, "in_custody=true")) is held

    async def test_a_sentence_must_say_its_type_and_the_error_points_at_it(
        self, client: httpx.AsyncClient
    ) -> None:
        case = await create_case(client, history=[event("detained", "2021-01-01")])
        response = await client.post(
            f"{API}/cases/{case['id']}/status-events",
            json={
                "to_status": "sentenced",
                "effective_date": "2021-06-01",
                "confidence": "confirmed",
                "details": {"term_months": 12},
            },
            headers=if_match(1),
        )
        assert response.status_code == 422
        assert "details" in response.text and "sentence_type" in response.text


class TestPardonedAndExpelled:
    async def test_a_pardon_ending_in_expulsion_records_both(
        self, client: httpx.AsyncClient
    ) -> None:
        cases = await sentenced_cases(client, 2)
        created = await client.post(
            f"{API}/collective-events",
            json=amnesty(
                [c["id"] for c in cases],
                title="52 pardoned and expelled",
                kind="pardon",
                to_status="pardoned",
                effective_date="2025-09-11",
                details={"pardon_decree": "Decree No. 1 (synthetic)"},
                expelled_to="LT",
            ),
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["expelled_to"] == "LT" and body["case_file_count"] == 2
        for case in cases:
            events = await _events(client, case)
            assert [e["to_status"] for e in events][-2:] == ["pardoned", "deported"]
            assert {e["collective_event_id"] for e in events[-2:]} == {body["id"]}
            assert (await _case(client, case))["status"] == "deported"
        assert {c["id"] for c in cases} <= await _ids(client, "destination_country=LT")
        assert {c["id"] for c in cases} <= await _ids(
            client, "released_from=2025-09-01&released_to=2025-09-30"
        )

    @pytest.mark.parametrize(
        ("kind", "to_status"),
        [("pardon", "died_in_custody"), ("pardon", "deported"), ("deportation", "released")],
    )
    async def test_a_kind_must_fit_its_transition(
        self, client: httpx.AsyncClient, kind: str, to_status: str
    ) -> None:
        case = await create_case(client)
        details = {"destination_country": "LT"} if to_status == "deported" else {}
        if to_status == "released":
            details = {"release_reason": "other"}
        response = await client.post(
            f"{API}/collective-events",
            json=amnesty([case["id"]], kind=kind, to_status=to_status, details=details),
        )
        assert response.status_code == 422, response.text
        assert (await _case(client, case))["status"] == "detained"


class TestPartialDates:
    async def test_a_date_known_to_the_year_is_returned_as_such_and_filtered_as_a_range(
        self, client: httpx.AsyncClient
    ) -> None:
        case = await create_case(client, history=[event("detained", "2021")])
        assert case["detained_on"] == "2021" and case["status_since"] == "2021"
        assert case["id"] in await _ids(client, "detained_from=2021-06-01&detained_to=2021-06-30")
        assert case["id"] not in await _ids(client, "detained_from=2022-01-01")
        assert case["id"] not in await _ids(client, "detained_to=2020-12-31")
        moved = await transition(client, case, "released", "2023-04")
        assert moved.status_code == 201
        assert case["id"] in await _ids(
            client, "status_changed_from=2023-04-30&status_changed_to=2023-05-31"
        )
        assert case["id"] not in await _ids(client, "status_changed_from=2023-05-01")


async def test_today_anywhere_on_earth_is_not_the_future(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 23:30 UTC on 1 March it is already 2 March in Minsk: an arrest that night is
    recorded with its local date."""
    case = await create_case(client, history=[event("detained", "2026-02-01")])
    monkeypatch.setattr(clock, "utcnow", lambda: datetime(2026, 3, 1, 23, 30, tzinfo=UTC))
    assert clock.latest_today() == date(2026, 3, 2)
    assert (await transition(client, case, "released", "2026-03-02")).status_code == 201
    refused = await transition(client, case, "deported", "2026-03-03", 2)
    assert refused.status_code == 422
    assert refused.json()["violation"] == "date_in_future"


async def test_only_those_who_may_change_a_case_file_settle_its_claims(
    client: httpx.AsyncClient, sign_in_as: SignIn
) -> None:
    case = await create_case(client, history=[event("detained", "2021-08-10")])
    claim = (
        await transition(client, case, "released", "2022-01-01", confidence="unconfirmed")
    ).json()["event"]
    analyst = (await sign_in_as(Role.analyst)).client
    for path, body in (
        ("confirmation", {}),
        ("rejection", {"reason": "x"}),
        ("supersession", {"reason": "x", "event": event("released", "2022-01-02")}),
    ):
        response = await _post(analyst, case, f"{claim['id']}/{path}", body, 2)
        assert response.status_code == 403, (path, response.text)
    foreign = await _post(client, case, "01900000-0000-7000-8000-000000000000/confirmation", {}, 2)
    assert foreign.status_code == 404
    current = await _case(client, case)
    assert (current["version"], current["pending_claims"]) == (2, 1)


async def test_a_verdict_names_the_charges_it_decided(client: httpx.AsyncClient) -> None:
    case = await create_case(
        client,
        charges=[
            {"code": "BY-CC", "article": "342", "part": "1"},
            {"code": "BY-CC", "article": "130", "part": "3"},
        ],
    )
    decided, other = (charge["charge_id"] for charge in case["charges"])
    unknown = await transition(
        client,
        case,
        "sentenced",
        "2022-01-15",
        details={"term_months": 36, "charge_ids": ["01900000-0000-7000-8000-000000000000"]},
    )
    assert unknown.status_code == 422
    verdict = await transition(
        client,
        case,
        "sentenced",
        "2022-01-15",
        details={"term_months": 36, "charge_ids": [decided]},
    )
    assert verdict.status_code == 201, verdict.text
    current = await _case(client, case)
    assert current["court_decisions"][0]["charge_ids"] == [decided]
    # The decided charge cannot be dropped from under its verdict; the other can.
    without_decided = [c for c in current["charges"] if c["charge_id"] != decided]
    refused = await client.patch(
        f"{API}/cases/{case['id']}", json={"charges": without_decided}, headers=if_match(2)
    )
    assert refused.status_code == 409
    kept = [c for c in current["charges"] if c["charge_id"] != other]
    dropped = await client.patch(
        f"{API}/cases/{case['id']}", json={"charges": kept}, headers=if_match(2)
    )
    assert dropped.status_code == 200, dropped.text
    assert [c["charge_id"] for c in dropped.json()["charges"]] == [decided]


class TestCorrectionsKeepTheirPlace:
    async def test_a_corrected_pardon_stays_before_the_expulsion_of_the_same_day(
        self, client: httpx.AsyncClient
    ) -> None:
        case = (await sentenced_cases(client, 1))[0]
        made = await client.post(
            f"{API}/collective-events",
            json=amnesty(
                [case["id"]],
                kind="pardon",
                to_status="pardoned",
                details={},
                effective_date="2025-09-11",
                expelled_to="LT",
            ),
        )
        assert made.status_code == 201, made.text
        pardon = next(e for e in await _events(client, case) if e["to_status"] == "pardoned")
        corrected = await _post(
            client,
            case,
            f"{pardon['id']}/supersession",
            {
                "reason": "The decree number was wrong",
                "event": event(
                    "pardoned", "2025-09-11", details={"pardon_decree": "No. 2 (synthetic)"}
                ),
            },
            2,
        )
        assert corrected.status_code == 201, corrected.text
        assert corrected.json()["event"]["collective_event_id"] == made.json()["id"]
        in_effect = [
            e["to_status"] for e in await _events(client, case) if e["state"] == "in_effect"
        ]
        assert in_effect[-2:] == ["pardoned", "deported"]

    async def test_a_corrected_term_stays_before_the_release_of_the_same_day(
        self, client: httpx.AsyncClient
    ) -> None:
        """Sentenced to time served and released in court."""
        case = await create_case(
            client,
            history=[
                event("detained", "2021-08-10"),
                event("sentenced", "2022-01-15", details={"term_months": 5}),
                event("released", "2022-01-15"),
            ],
        )
        sentence = (await _events(client, case))[1]
        corrected = await _post(
            client,
            case,
            f"{sentence['id']}/supersession",
            {"reason": "5 months and 5 days", "event": event("sentenced", "2022-01-15")},
            1,
        )
        assert corrected.status_code == 201, corrected.text
        assert (await _case(client, case))["status"] == "released"

    async def test_a_correction_recorded_as_a_claim_cannot_empty_or_break_the_path(
        self, client: httpx.AsyncClient
    ) -> None:
        case = await create_case(
            client, history=[event("detained", "2021-08-10"), event("sentenced", "2022-01-01")]
        )
        detained = (await _events(client, case))[0]
        # As a claim the correction would not be on the path: it would start with the sentence.
        claim = event("detained", "2021-08-11", confidence="unconfirmed")
        response = await _post(
            client, case, f"{detained['id']}/supersession", {"reason": "x", "event": claim}, 1
        )
        assert response.status_code == 409, response.text
        current = await _case(client, case)
        assert (current["status"], current["detained_on"], current["version"]) == (
            "sentenced",
            "2021-08-10",
            1,
        )

    async def test_a_correction_into_another_status_leaves_the_collective_event(
        self, client: httpx.AsyncClient
    ) -> None:
        case = (await sentenced_cases(client, 1))[0]
        made = await client.post(
            f"{API}/collective-events",
            json=amnesty([case["id"]], kind="pardon", to_status="pardoned", details={}),
        )
        pardon = next(e for e in await _events(client, case) if e["to_status"] == "pardoned")
        corrected = await _post(
            client,
            case,
            f"{pardon['id']}/supersession",
            {
                "reason": "She died before the decree",
                "event": event("died_in_custody", "2023-01-20"),
            },
            2,
        )
        assert corrected.status_code == 201, corrected.text
        assert corrected.json()["event"]["collective_event_id"] is None
        read = (await client.get(f"{API}/collective-events/{made.json()['id']}")).json()
        assert [r["outcome"] for r in read["results"]] == ["superseded"]


async def test_a_month_given_after_a_day_in_it_follows_that_day(
    client: httpx.AsyncClient,
) -> None:
    """Detained on 15 August, released "in August": the order given decides."""
    case = await create_case(
        client, history=[event("detained", "2021-08-15"), event("released", "2021-08")]
    )
    assert (case["status"], case["detained_on"]) == ("released", "2021-08-15")
    late = await transition(client, case, "sentenced", "2021-08")
    assert late.status_code == 409  # released → sentenced, as given


async def test_a_collective_verdict_names_only_charges_of_each_case_file(
    client: httpx.AsyncClient,
) -> None:
    case = await create_case(client)
    response = await client.post(
        f"{API}/collective-events",
        json=amnesty(
            [case["id"]],
            kind="other",
            to_status="sentenced",
            details={
                "sentence_type": "imprisonment",
                "charge_ids": ["01900000-0000-7000-8000-000000000000"],
            },
        ),
    )
    assert response.status_code == 409, response.text
    assert response.json()["results"][0]["outcome"] == "rejected"
    assert (await _case(client, case))["status"] == "detained"

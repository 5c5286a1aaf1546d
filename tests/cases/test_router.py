import asyncio
import uuid
from datetime import timedelta

import asyncpg
import httpx
import pytest

from app.core.clock import today
from tests.conftest import row_counts
from tests.factories import API, case_body, create_case, create_person, event, transition


class TestCreateCase:
    async def test_starts_detained_with_a_reference_and_derived_status(
        self, client: httpx.AsyncClient
    ) -> None:
        case = await create_case(client)
        assert case["status"] == "detained"
        assert case["in_custody"] is True
        assert case["status_since"] == "2021-08-10"
        assert case["detained_on"] == "2021-08-10"
        assert case["reference"].startswith(f"HB-{today().year}-")
        assert case["version"] == 1

    async def test_imports_a_whole_history_validated_as_a_path(
        self, client: httpx.AsyncClient
    ) -> None:
        history = [
            event("detained", "2020-09"),
            event("sentenced", "2021-02-01"),
            event("pardoned", "2024-07-03"),
            event("deported", "2024-07-03"),
        ]
        case = await create_case(client, history=history)
        assert case["status"] == "deported"
        assert case["in_custody"] is False
        assert case["status_since"] == "2024-07-03"
        # Known to the month: returned as such, never as an invented first of the month.
        assert case["detained_on"] == "2020-09"
        events = (await client.get(f"{API}/cases/{case['id']}/status-events")).json()["events"]
        assert [(e["from_status"], e["to_status"]) for e in events] == [
            (None, "detained"),
            ("detained", "sentenced"),
            ("sentenced", "pardoned"),
            ("pardoned", "deported"),
        ]

    @pytest.mark.parametrize(
        ("history", "violation", "status"),
        [
            ([event("sentenced", "2021-01-01")], "not_initial", 409),
            (
                [
                    event("detained", "2021-01-01"),
                    event("died_in_custody", "2021-02-01"),
                    event("released", "2021-03-01"),
                ],
                "not_allowed",
                409,
            ),
            (
                # In effective order the sentence comes first: a path cannot start there.
                [event("detained", "2021-05-01"), event("sentenced", "2021-04-30")],
                "not_initial",
                409,
            ),
            # Two days ahead of UTC is in the future in every time zone on Earth.
            ([event("detained", (today() + timedelta(days=2)).isoformat())], "date_in_future", 422),
        ],
    )
    async def test_refuses_an_invalid_history_and_writes_nothing(
        self,
        client: httpx.AsyncClient,
        db: asyncpg.Connection,
        history: list[dict[str, object]],
        violation: str,
        status: int,
    ) -> None:
        person = await create_person(client)
        before = await row_counts(db)
        response = await client.post(f"{API}/cases", json=case_body(person["id"], history))
        assert response.status_code == status, response.text
        assert response.json()["violation"] == violation
        assert await row_counts(db) == before

    async def test_refuses_foreign_ids_and_bad_fields(
        self, client: httpx.AsyncClient, db: asyncpg.Connection
    ) -> None:
        person = await create_person(client)
        before = await row_counts(db)
        unknown_source = event("detained", "2021-01-01", source_ids=[str(uuid.uuid4())])
        for bad in (
            case_body(str(uuid.uuid4())),
            case_body(person["id"], [unknown_source]),
            case_body(person["id"], status="released"),
            case_body(person["id"], version=3),
            case_body(person["id"], jurisdiction="Belarus"),
            case_body(person["id"], deprivation_type="exile"),
            case_body(person["id"], charges=[{"code": "BY-CC", "article": "three"}]),
            case_body(person["id"], status_history=[]),
            case_body(
                person["id"],
                [
                    event("detained", "2021-01-01"),
                    {
                        "to_status": "released",
                        "effective_date": "2021-02-01",
                        "confidence": "confirmed",
                    },
                ],
            ),
            case_body(person["id"], [event("detained", "2021-01-01", confidence="rumour")]),
            case_body(person["id"], [event("detained", "2021-13-01")]),
            case_body(person["id"], [event("detained", "2021-01-01", details={"x": 1})]),
        ):
            response = await client.post(f"{API}/cases", json=bad)
            assert response.status_code == 422, (bad, response.text)
        assert await row_counts(db) == before


class TestStatusTransitions:
    async def test_appends_an_event_and_moves_the_derived_status(
        self, client: httpx.AsyncClient
    ) -> None:
        case = await create_case(client)
        response = await transition(
            client,
            case,
            "sentenced",
            "2022-01-15",
            details={"term_months": 36, "regime": "general"},
        )
        assert response.status_code == 201, response.text
        change = response.json()
        assert change["case_status"] == "sentenced"
        assert change["case_version"] == 2
        assert change["event"]["from_status"] == "detained"
        assert change["event"]["details"] == {
            "sentence_type": "imprisonment",
            "term_months": 36,
            "regime": "general",
        }
        current = (await client.get(f"{API}/cases/{case['id']}")).json()
        assert current["status"] == "sentenced"
        assert current["version"] == 2

    async def test_a_transition_not_in_the_table_is_refused(
        self, client: httpx.AsyncClient, db: asyncpg.Connection
    ) -> None:
        case = await create_case(
            client,
            history=[event("detained", "2021-01-01"), event("died_in_custody", "2023-05-01")],
        )
        before = await row_counts(db)
        response = await transition(client, case, "released", "2023-06-01")
        assert response.status_code == 409
        body = response.json()
        assert body["type"] == "urn:habeas:problem:invalid-transition"
        assert body["violation"] == "not_allowed"
        assert await row_counts(db) == before

    async def test_an_event_dated_before_the_start_is_placed_there_and_refused(
        self, client: httpx.AsyncClient
    ) -> None:
        case = await create_case(client)
        response = await transition(client, case, "released", "2021-08-09")
        assert response.status_code == 409
        assert response.json()["violation"] == "not_initial"

    async def test_a_future_effective_date_is_refused(self, client: httpx.AsyncClient) -> None:
        case = await create_case(client)
        after_tomorrow = (today() + timedelta(days=2)).isoformat()
        response = await transition(client, case, "released", after_tomorrow)
        assert response.status_code == 422
        assert response.json()["violation"] == "date_in_future"

    async def test_requires_if_match_and_refuses_a_stale_version(
        self, client: httpx.AsyncClient, db: asyncpg.Connection
    ) -> None:
        case = await create_case(client)
        url = f"{API}/cases/{case['id']}/status-events"
        missing = await client.post(url, json=event("sentenced", "2022-01-01"))
        assert missing.status_code == 428
        assert (await transition(client, case, "sentenced", "2022-01-01")).status_code == 201
        stale = await transition(client, case, "released", "2022-02-01", version=1)
        assert stale.status_code == 412
        assert await db.fetchval("SELECT count(*) FROM status_event") == 2

    async def test_an_unknown_case_file_is_404(self, client: httpx.AsyncClient) -> None:
        response = await transition(
            client, {"id": str(uuid.uuid4()), "version": 1}, "released", "2022-01-01"
        )
        assert response.status_code == 404

    async def test_an_idempotent_retry_after_success_replays_instead_of_412(
        self, client: httpx.AsyncClient, db: asyncpg.Connection
    ) -> None:
        case = await create_case(client)
        headers = {"If-Match": '"1"', "Idempotency-Key": "sentence-1"}
        url = f"{API}/cases/{case['id']}/status-events"
        body = event("sentenced", "2022-01-01")
        first = await client.post(url, json=body, headers=headers)
        retry = await client.post(url, json=body, headers=headers)
        assert first.status_code == retry.status_code == 201
        assert retry.json() == first.json()
        assert await db.fetchval("SELECT count(*) FROM status_event") == 2

    async def test_twenty_simultaneous_transitions_from_one_version_apply_exactly_once(
        self, client: httpx.AsyncClient, db: asyncpg.Connection
    ) -> None:
        case = await create_case(client)
        responses = await asyncio.gather(
            *(
                transition(client, case, "sentenced", "2022-01-01", details={"term_months": n})
                for n in range(20)
            )
        )
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [201] + [412] * 19
        assert await db.fetchval("SELECT count(*) FROM status_event") == 2
        assert await db.fetchval("SELECT version FROM case_file") == 2


class TestRetraction:
    async def test_retracting_the_last_event_restores_the_previous_status(
        self, client: httpx.AsyncClient
    ) -> None:
        case = await create_case(client)
        wrong = (await transition(client, case, "released", "2022-03-01")).json()
        response = await client.post(
            f"{API}/cases/{case['id']}/status-events/{wrong['event']['id']}/retraction",
            json={"reason": "The release was a rumour; the family confirmed she is held."},
            headers={"If-Match": '"2"'},
        )
        assert response.status_code == 201, response.text
        assert response.json()["case_status"] == "detained"
        history = (await client.get(f"{API}/cases/{case['id']}/status-events")).json()
        assert history["status"] == "detained"
        retracted = history["events"][1]
        assert retracted["retraction"]["reason"].startswith("The release was a rumour")
        assert len(history["events"]) == 2

    async def test_a_retraction_that_would_break_the_path_is_refused(
        self, client: httpx.AsyncClient, db: asyncpg.Connection
    ) -> None:
        # Removing a middle step always leaves an allowed pair in this machine (every status
        # that may precede another may also precede what follows it), so the path breaks
        # only when its start goes: the history must begin with `detained`.
        single = await create_case(client)
        pardoned = await create_case(
            client,
            history=[
                event("detained", "2021-01-01"),
                event("pardoned", "2022-01-01"),
                event("deported", "2022-01-02"),
            ],
        )
        before = await row_counts(db)
        for case in (single, pardoned):
            first = (await client.get(f"{API}/cases/{case['id']}/status-events")).json()["events"][
                0
            ]
            response = await client.post(
                f"{API}/cases/{case['id']}/status-events/{first['id']}/retraction",
                json={"reason": "entered by mistake"},
                headers={"If-Match": '"1"'},
            )
            assert response.status_code == 409, response.text
            assert response.json()["violation"] in ("empty", "not_initial")
        assert await row_counts(db) == before

    async def test_retracting_a_middle_event_keeps_a_valid_path(
        self, client: httpx.AsyncClient
    ) -> None:
        case = await create_case(
            client,
            history=[
                event("detained", "2021-01-01"),
                event("pardoned", "2022-01-01"),
                event("deported", "2022-01-02"),
            ],
        )
        events = (await client.get(f"{API}/cases/{case['id']}/status-events")).json()["events"]
        response = await client.post(
            f"{API}/cases/{case['id']}/status-events/{events[1]['id']}/retraction",
            json={"reason": "no pardon decree was found"},
            headers={"If-Match": '"1"'},
        )
        assert response.status_code == 201
        after = (await client.get(f"{API}/cases/{case['id']}/status-events")).json()
        assert after["status"] == "deported"
        assert after["events"][2]["from_status"] == "detained"

    async def test_an_event_cannot_be_retracted_twice(self, client: httpx.AsyncClient) -> None:
        case = await create_case(client)
        change = (await transition(client, case, "sentenced", "2022-01-01")).json()
        url = f"{API}/cases/{case['id']}/status-events/{change['event']['id']}/retraction"
        first = await client.post(url, json={"reason": "wrong case"}, headers={"If-Match": '"2"'})
        assert first.status_code == 201
        second = await client.post(url, json={"reason": "again"}, headers={"If-Match": '"3"'})
        assert second.status_code == 409

    async def test_needs_a_reason_if_match_and_an_event_of_this_case(
        self, client: httpx.AsyncClient
    ) -> None:
        case = await create_case(client)
        other = await create_case(client)
        change = (await transition(client, case, "sentenced", "2022-01-01")).json()
        url = f"{API}/cases/{case['id']}/status-events/{change['event']['id']}/retraction"
        assert (
            await client.post(url, json={"reason": ""}, headers={"If-Match": '"2"'})
        ).status_code == 422
        assert (await client.post(url, json={"reason": "x"})).status_code == 428
        assert (
            await client.post(url, json={"reason": "x"}, headers={"If-Match": '"1"'})
        ).status_code == 412
        foreign = f"{API}/cases/{other['id']}/status-events/{change['event']['id']}/retraction"
        assert (
            await client.post(foreign, json={"reason": "x"}, headers={"If-Match": '"1"'})
        ).status_code == 404


class TestUpdateCase:
    async def test_updates_case_fields_but_never_the_status(
        self, client: httpx.AsyncClient
    ) -> None:
        case = await create_case(client)
        url = f"{API}/cases/{case['id']}"
        response = await client.patch(
            url,
            headers={"If-Match": '"1"'},
            json={
                "charges": [{"code": "BY-CC", "article": "361-1", "part": "2"}],
                "detention_places": [{"place": "Pre-trial prison No. 1", "since": "2021-08"}],
            },
        )
        assert response.status_code == 200, response.text
        assert response.json()["charges"][0]["article"] == "361-1"
        assert response.headers["etag"] == '"2"'
        refused = await client.patch(url, headers={"If-Match": '"2"'}, json={"status": "released"})
        assert refused.status_code == 422
        assert (await client.patch(url, json={"jurisdiction": "RU"})).status_code == 428
        assert (
            await client.patch(url, headers={"If-Match": '"1"'}, json={"jurisdiction": "RU"})
        ).status_code == 412
        assert (
            await client.patch(url, headers={"If-Match": '"2"'}, json={"charges": None})
        ).status_code == 422


class TestListCases:
    async def test_filters_by_status_jurisdiction_article_citizenship_and_dates(
        self, client: httpx.AsyncClient
    ) -> None:
        local = await create_person(client)
        foreign = await create_person(client, citizenships=["LT"])
        held = await create_case(client, local["id"])
        sentenced = await create_case(
            client,
            foreign["id"],
            history=[event("detained", "2020-03-01"), event("sentenced", "2020-09-01")],
            charges=[{"code": "BY-CC", "article": "130", "part": "3"}],
        )
        released = await create_case(
            client,
            local["id"],
            history=[event("detained", "2019-01-01"), event("released", "2019-02-01")],
            jurisdiction="RU",
        )

        async def ids(query: str) -> set[str]:
            page = (await client.get(f"{API}/cases?{query}")).json()
            return {c["id"] for c in page["items"]}

        assert await ids("status=sentenced") == {sentenced["id"]}
        assert await ids("jurisdiction=RU") == {released["id"]}
        assert await ids("article=130") == {sentenced["id"]}
        assert await ids("article=342") == {held["id"], released["id"]}
        assert await ids("citizenship=LT") == {sentenced["id"]}
        assert await ids("status=sentenced&citizenship=BY") == set()
        assert await ids("detained_from=2020-01-01&detained_to=2020-12-31") == {sentenced["id"]}
        assert await ids(f"person_id={local['id']}") == {held["id"], released["id"]}
        assert await ids("recognition_status=not_assessed") == {
            held["id"],
            sentenced["id"],
            released["id"],
        }

    async def test_refuses_bad_filters(self, client: httpx.AsyncClient) -> None:
        for query in (
            "status=free",
            "jurisdiction=by",
            "detained_from=2021-02-30",
            "article=abc",
            "limit=500",
            "cursor=%%%",
        ):
            response = await client.get(f"{API}/cases?{query}")
            assert response.status_code in (400, 422), query
            assert response.headers["content-type"] == "application/problem+json"


class TestConcurrencyStaggered:
    """Requests that overlap without starting together: each must see the row lock."""

    async def test_staggered_transitions_from_one_version_apply_exactly_once(
        self, client: httpx.AsyncClient, db: asyncpg.Connection
    ) -> None:
        case = await create_case(client)

        async def later(delay_ms: int) -> httpx.Response:
            await asyncio.sleep(delay_ms / 1000)
            return await transition(client, case, "sentenced", "2022-01-01")

        responses = await asyncio.gather(*(later(n * 2) for n in range(20)))
        assert sorted(r.status_code for r in responses) == [201] + [412] * 19
        assert await db.fetchval("SELECT count(*) FROM status_event") == 2
        assert await db.fetchval("SELECT version FROM case_file") == 2

    async def test_staggered_updates_from_one_version_lose_nothing(
        self, client: httpx.AsyncClient, db: asyncpg.Connection
    ) -> None:
        case = await create_case(client)

        async def later(delay_ms: int, country: str) -> httpx.Response:
            await asyncio.sleep(delay_ms / 1000)
            return await client.patch(
                f"{API}/cases/{case['id']}",
                headers={"If-Match": '"1"'},
                json={"jurisdiction": country},
            )

        countries = ["RU", "LT", "PL", "UA", "LV", "KZ", "DE", "SE", "US", "JP"]
        responses = await asyncio.gather(*(later(n * 2, c) for n, c in enumerate(countries)))
        winners = [r for r in responses if r.status_code == 200]
        assert sorted(r.status_code for r in responses) == [200] + [412] * 9
        assert (
            await db.fetchval("SELECT jurisdiction FROM case_file")
            == (winners[0].json()["jurisdiction"])
        )
        assert await db.fetchval("SELECT version FROM case_file") == 2


async def test_a_rolled_back_request_leaves_no_status_write(
    app: object, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    from app.access.caller import Caller
    from app.access.principal import Principal, PrincipalKind, Role
    from app.audit.journal import as_system
    from app.cases import transitions
    from app.cases.schemas import status_event_input

    case = await create_case(client)
    factory = app.state.session_factory  # type: ignore[attr-defined]
    coordinator = Caller(
        Principal(PrincipalKind.user, uuid.uuid4(), Role.coordinator),
        app.state.policy,  # type: ignore[attr-defined]
    )
    events_before = await db.fetchval("SELECT count(*) FROM audit_event")
    async with factory() as session:
        as_system(session, app.state.security.audit_keys)  # type: ignore[attr-defined]
        await transitions.append(
            session,
            coordinator,
            uuid.UUID(case["id"]),
            expected_version=1,
            data=status_event_input(
                {
                    "to_status": "released",
                    "effective_date": "2022-01-01",
                    "confidence": "confirmed",
                    "details": {"release_reason": "parole"},
                }
            ),
        )
        await session.rollback()
    assert await db.fetchval("SELECT count(*) FROM status_event") == 1
    assert await db.fetchrow("SELECT status, version FROM case_file") == ("detained", 1)
    assert await db.fetchval("SELECT count(*) FROM audit_event") == events_before

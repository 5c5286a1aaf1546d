"""Periods: incommunicado, hunger strikes, punishment cells. Open until their end is
recorded; "incommunicado now" lists the case files with an open period."""

import httpx

from tests.custody.custody import listed_ids, record, timeline, timeline_path
from tests.factories import create_case


async def test_incommunicado_now_lasts_until_the_end_is_recorded(
    client: httpx.AsyncClient,
) -> None:
    case = await create_case(client)
    other = await create_case(client)
    period = await record(client, case, "incommunicado", "2023-02", note="no letters since")
    assert period["end"] is None
    assert await listed_ids(client, incommunicado="true") == {case["id"]}
    assert await listed_ids(client, incommunicado="false") == {other["id"]}
    assert (await timeline(client, case))["incommunicado"] is True

    # Seen by a lawyer at last: the period ends, and the case file is no longer listed.
    response = await client.post(
        f"{timeline_path(case)}/{period['id']}/end",
        json={"effective_date": "2024-01-15", "confidence": "reported", "note": "lawyer visit"},
    )
    assert response.status_code == 201, response.text
    ended = response.json()
    assert ended["end"]["effective_date"] == "2024-01-15"
    assert ended["end"]["confidence"] == "reported"
    assert ended["effective_date"] == "2023-02"
    assert await listed_ids(client, incommunicado="true") == set()
    assert await listed_ids(client, incommunicado="false") == {case["id"], other["id"]}
    assert (await timeline(client, case))["incommunicado"] is False

    # Ended once: a second end, or one of an entry that is no period, is refused.
    again = await client.post(
        f"{timeline_path(case)}/{period['id']}/end",
        json={"effective_date": "2024-02-01", "confidence": "confirmed"},
    )
    assert again.status_code == 409, again.text
    charge = await record(client, case, "new_charge", "2023-05", details={"article": "BY-CC 411"})
    no_period = await client.post(
        f"{timeline_path(case)}/{charge['id']}/end",
        json={"effective_date": "2024-02-01", "confidence": "confirmed"},
    )
    assert no_period.status_code == 409, no_period.text


async def test_a_retracted_period_is_not_incommunicado_and_cannot_end(
    client: httpx.AsyncClient,
) -> None:
    case = await create_case(client)
    period = await record(client, case, "incommunicado", "2023-02-10")
    retracted = await client.post(
        f"{timeline_path(case)}/{period['id']}/retraction", json={"reason": "rumour"}
    )
    assert retracted.status_code == 201, retracted.text
    assert await listed_ids(client, incommunicado="true") == set()
    closing = await client.post(
        f"{timeline_path(case)}/{period['id']}/end",
        json={"effective_date": "2023-03", "confidence": "confirmed"},
    )
    assert closing.status_code == 409, closing.text


async def test_an_unconfirmed_claim_of_incommunicado_is_not_counted(
    client: httpx.AsyncClient,
) -> None:
    case = await create_case(client)
    await record(client, case, "incommunicado", "2023-02", confidence="unconfirmed")
    assert await listed_ids(client, incommunicado="true") == set()
    assert (await timeline(client, case))["incommunicado"] is False


async def test_periods_known_to_be_over_and_partial_dates_as_given(
    client: httpx.AsyncClient,
) -> None:
    case = await create_case(client)
    strike = await record(client, case, "hunger_strike", "2022-03", end_date="2022-04")
    cell = await record(
        client, case, "punishment_cell", "2022", end_date="2022-12-31", details={"days": 10}
    )
    release = await record(
        client, case, "expected_release", "2022-01-15", details={"release_on": "2031-08"}
    )
    assert (strike["effective_date"], strike["end"]["effective_date"]) == ("2022-03", "2022-04")
    assert (cell["effective_date"], cell["end"]["effective_date"]) == ("2022", "2022-12-31")
    assert cell["details"] == {"days": 10}
    assert release["details"] == {"release_on": "2031-08"}
    found = (await timeline(client, case))["entries"]
    # Effective order: 2022 (from 1 January), 15 January, March.
    assert [(e["kind"], e["effective_date"]) for e in found] == [
        ("punishment_cell", "2022"),
        ("expected_release", "2022-01-15"),
        ("hunger_strike", "2022-03"),
    ]
    assert found[2]["end"]["effective_date"] == "2022-04"
    # An end in the same month as a day-precise start may be before or after it: accepted.
    same_month = await record(client, case, "hunger_strike", "2022-06-20", end_date="2022-06")
    assert same_month["end"]["effective_date"] == "2022-06"


async def test_an_end_before_the_start_is_refused(client: httpx.AsyncClient) -> None:
    case = await create_case(client)
    at_once = await client.post(
        timeline_path(case),
        json={
            "kind": "hunger_strike",
            "effective_date": "2022-03-10",
            "end_date": "2022-02",
            "confidence": "confirmed",
        },
    )
    assert at_once.status_code == 422, at_once.text
    assert at_once.json()["errors"][0]["type"] == "end_before_start"
    period = await record(client, case, "punishment_cell", "2022-03-10")
    later = await client.post(
        f"{timeline_path(case)}/{period['id']}/end",
        json={"effective_date": "2022-03-09", "confidence": "confirmed"},
    )
    assert later.status_code == 422, later.text
    assert later.headers["content-type"] == "application/problem+json"
    assert later.json()["errors"][0]["type"] == "end_before_start"
    assert (await timeline(client, case))["entries"][0]["end"] is None

"""Where a person is held: transfers between facilities of the register, and the case list
filtered by the current facility."""

import httpx

from tests.custody.custody import create_facility, listed_ids, record, timeline, transfer
from tests.factories import create_case


async def test_a_transfer_moves_the_case_file_and_a_retraction_moves_it_back(
    client: httpx.AsyncClient,
) -> None:
    remand = await create_facility(client, 1, type="pretrial_detention_centre")
    colony = await create_facility(client, 17)
    case = await create_case(client)
    other = await create_case(client)

    first = await transfer(client, case, remand, "2021-08-12")
    assert first["kind"] == "transfer" and first["facility_id"] == remand
    assert await listed_ids(client, facility_id=remand) == {case["id"]}
    assert await listed_ids(client, facility_id=colony) == set()

    # After the verdict, to the colony: it is held there now, no longer in remand.
    moved = await transfer(client, case, colony, "2022-04-02", from_facility_id=remand)
    assert moved["from_facility_id"] == remand
    assert await listed_ids(client, facility_id=colony) == {case["id"]}
    assert await listed_ids(client, facility_id=remand) == set()
    assert (await timeline(client, case))["current_facility_id"] == colony

    # The transfer to the colony was a mistake: retracted, the person is back in remand.
    response = await client.post(
        f"/api/v1/cases/{case['id']}/custody-timeline/{moved['id']}/retraction",
        json={"reason": "confused with another prisoner of the same name"},
    )
    assert response.status_code == 201, response.text
    assert await listed_ids(client, facility_id=remand) == {case["id"]}
    assert await listed_ids(client, facility_id=colony) == set()
    found = await timeline(client, case)
    assert found["current_facility_id"] == remand
    assert [e["retraction"] is not None for e in found["entries"]] == [False, True]
    assert other["id"] not in await listed_ids(client, facility_id=remand)
    assert (await timeline(client, other))["current_facility_id"] is None


async def test_late_news_of_an_earlier_transfer_does_not_move_the_person(
    client: httpx.AsyncClient,
) -> None:
    remand = await create_facility(client, 1, type="pretrial_detention_centre")
    colony = await create_facility(client, 17)
    case = await create_case(client)
    await transfer(client, case, colony, "2022-04-02")
    # Heard of later, happened earlier: it goes before the colony, which stays current.
    await transfer(client, case, remand, "2021-08-12")
    assert await listed_ids(client, facility_id=colony) == {case["id"]}
    found = await timeline(client, case)
    assert [e["facility_id"] for e in found["entries"]] == [remand, colony]
    assert found["current_facility_id"] == colony


async def test_an_unconfirmed_transfer_is_a_claim_that_moves_nobody(
    client: httpx.AsyncClient,
) -> None:
    remand = await create_facility(client, 1, type="pretrial_detention_centre")
    colony = await create_facility(client, 17)
    case = await create_case(client)
    await transfer(client, case, remand, "2021-08-12")
    await transfer(client, case, colony, "2022-04-02", confidence="unconfirmed")
    assert await listed_ids(client, facility_id=remand) == {case["id"]}
    assert await listed_ids(client, facility_id=colony) == set()
    found = await timeline(client, case)
    assert found["current_facility_id"] == remand
    assert found["entries"][-1]["confidence"] == "unconfirmed"
    await record(client, case, "new_charge", "2022-05", details={"article": "BY-CC 411"})


async def test_of_two_transfers_on_one_day_the_one_recorded_last_holds(
    client: httpx.AsyncClient,
) -> None:
    """ "Moved to the colony in August" and, later, "on 1 August, to the prison": both
    start on 1 August; the later news is the current place."""
    colony = await create_facility(client, 17)
    prison = await create_facility(client, 19, type="prison")
    case = await create_case(client)
    await transfer(client, case, colony, "2022-08")
    await transfer(client, case, prison, "2022-08-01")
    assert await listed_ids(client, facility_id=prison) == {case["id"]}
    assert await listed_ids(client, facility_id=colony) == set()
    assert (await timeline(client, case))["current_facility_id"] == prison

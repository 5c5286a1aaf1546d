"""The case list's custody filters (SQL) and a timeline's own answer (Python) agree, over
random sequences of transfers, periods, ends and retractions."""

import random

import httpx

from tests.custody.custody import (
    create_facility,
    listed_ids,
    record,
    timeline,
    timeline_path,
    transfer,
)
from tests.factories import create_case


async def test_the_list_filters_and_the_timeline_agree(client: httpx.AsyncClient) -> None:
    rng = random.Random(13)
    places = [await create_facility(client, number) for number in (1, 2, 3)]
    cases = [await create_case(client) for _ in range(3)]
    entries: dict[str, list[dict[str, object]]] = {case["id"]: [] for case in cases}
    for _ in range(30):
        case = rng.choice(cases)
        # Few distinct days, so that many entries share one ("2023-02" and "2023-02-01"
        # both start on the 1st): the tie goes to the one recorded last.
        day = f"2023-0{rng.randrange(1, 4)}" + rng.choice(["", "-01", "-15"])
        confidence = rng.choice(["confirmed", "reported", "unconfirmed"])
        action = rng.choice(["transfer", "transfer", "incommunicado", "end", "retract"])
        made: dict[str, object] | None = None
        if action == "transfer":
            made = await transfer(client, case, rng.choice(places), day, confidence=confidence)
        elif action == "incommunicado":
            made = await record(client, case, "incommunicado", day, confidence=confidence)
        elif entries[case["id"]]:
            target = rng.choice(entries[case["id"]])
            path = f"{timeline_path(case)}/{target['id']}"
            if action == "end":
                body = {"effective_date": "2025-01-01", "confidence": "confirmed"}
                response = await client.post(f"{path}/end", json=body)
            else:
                response = await client.post(f"{path}/retraction", json={"reason": "check"})
            # Ending a transfer, a second end or retraction: refused, and nothing changes.
            assert response.status_code in (201, 409), response.text
        if made is not None:
            entries[case["id"]].append(made)
        expected = {case["id"]: await timeline(client, case) for case in cases}
        for place in places:
            at_place = {i for i, t in expected.items() if t["current_facility_id"] == place}
            assert await listed_ids(client, facility_id=place) == at_place
        held_apart = {i for i, t in expected.items() if t["incommunicado"]}
        assert await listed_ids(client, incommunicado="true") == held_apart
        assert await listed_ids(client, incommunicado="false") == set(expected) - held_apart

"""A property of the change feed: whatever is written, and however the partner's agreement
changes in the middle, a partner that follows the feed in pages ends with exactly what a
new partner under the final agreement receives in its snapshot."""

from contextlib import aclosing
from typing import Any

import httpx
from fastapi import FastAPI
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.factories import API, create_case, transition
from tests.sync.feed import Copy, change_case, feed_partner, follow, fresh_copy, share

SHARES_BY = {"jurisdiction": "BY", "recognised_only": False, "max_tier": "public"}
AGREEMENTS = st.fixed_dictionaries(
    {
        "jurisdiction": st.sampled_from(["BY", "LT"]),
        "recognised_only": st.just(False),
        "max_tier": st.sampled_from(["public", "restricted"]),
    }
)
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("open"), st.sampled_from(["BY", "LT"])),
        st.tuples(st.just("sentence"), st.integers(0, 5)),
        st.tuples(st.just("move"), st.integers(0, 5)),
        st.tuples(st.just("close"), st.integers(0, 5)),
        st.tuples(st.just("agreement"), AGREEMENTS),
        st.tuples(st.just("follow"), st.integers(1, 3)),
    ),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(first=AGREEMENTS, operations=OPERATIONS)
# Each way out of the agreement, at least once: closed, moved away, the agreement changed.
@example(first=SHARES_BY, operations=[("close", 0)])
@example(first=SHARES_BY, operations=[("open", "BY"), ("follow", 1), ("move", 1), ("sentence", 0)])
@example(first=SHARES_BY, operations=[("agreement", SHARES_BY | {"jurisdiction": "LT"})])
async def test_following_the_feed_ends_with_what_a_fresh_snapshot_gives(
    app: FastAPI, client: httpx.AsyncClient, first: dict[str, Any], operations: list[Any]
) -> None:
    cases = [await create_case(client, jurisdiction="BY")]
    partner, record = await feed_partner(app, first)
    agreement = first
    copy = Copy()
    async with aclosing(partner):
        # The partner holds a copy before anything changes: what leaves must be taken back.
        await follow(partner, copy)
        for operation, argument in operations:
            if operation == "open":
                cases.append(await create_case(client, jurisdiction=argument))
                continue
            if operation == "agreement":
                changed = await share(client, record.id, argument)
                assert changed.status_code == 200, changed.text
                agreement = argument
                continue
            if operation == "follow":
                # A partner that stops in the middle, in pages of two.
                await follow(partner, copy, limit=2, pages=argument)
                continue
            case = cases[argument % len(cases)]
            current = (await client.get(f"{API}/cases/{case['id']}")).json()
            if operation == "sentence":
                await transition(client, current, "sentenced", "2022-02-01")
            elif operation == "move":
                moved = "LT" if current["jurisdiction"] == "BY" else "BY"
                await change_case(client, case["id"], jurisdiction=moved)
            else:
                await change_case(client, case["id"], confidentiality="high")
        await follow(partner, copy, limit=2)
    assert copy.records == (await fresh_copy(app, agreement)).records

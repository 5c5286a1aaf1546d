"""Random sequences of transitions and retractions, through the API only."""

import itertools
from datetime import date, timedelta
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import API, create_case, event

STATUSES = ["detained", "sentenced", "released", "pardoned", "deported", "died_in_custody"]
ALLOWED = {
    "detained": {"sentenced", "released", "pardoned", "deported", "died_in_custody"},
    "sentenced": {"sentenced", "released", "pardoned", "deported", "died_in_custody"},
    "released": {"deported"},
    "pardoned": {"deported"},
    "deported": set(),
    "died_in_custody": set(),
}
START = date(2020, 1, 1)


def plain_path_is_valid(path: list[tuple[str, date]]) -> bool:
    """Day-precision restatement of the rules, independent of app.cases.statuses."""
    if not path or path[0][0] != "detained":
        return False
    for (before, before_day), (after, after_day) in itertools.pairwise(path):
        if after not in ALLOWED[before] or after_day < before_day:
            return False
    return True


operations = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.sampled_from(STATUSES), st.integers(0, 1500)),
        st.tuples(st.just("retract"), st.integers(0, 6), st.just(0)),
    ),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(operations)
async def test_random_changes_only_ever_leave_valid_paths(
    client: httpx.AsyncClient, ops: list[tuple[str, Any, int]]
) -> None:
    case = await create_case(client, history=[event("detained", START.isoformat())])
    url = f"{API}/cases/{case['id']}"
    # The model: every recorded event as (status, day, retracted).
    model: list[list[Any]] = [["detained", START, False]]
    version = 1
    for kind, argument, offset in ops:
        active = [(s, d) for s, d, retracted in model if not retracted]
        if kind == "append":
            day = START + timedelta(days=offset)
            expect_ok = plain_path_is_valid([*active, (argument, day)])
            response = await client.post(
                f"{url}/status-events",
                json=event(argument, day.isoformat()),
                headers={"If-Match": f'"{version}"'},
            )
            if expect_ok:
                model.append([argument, day, False])
        else:
            if argument >= len(model):
                continue
            target = model[argument]
            remaining = [(s, d) for i, (s, d, r) in enumerate(model) if not r and i != argument]
            expect_ok = not target[2] and plain_path_is_valid(remaining)
            history = (await client.get(f"{url}/status-events")).json()["events"]
            response = await client.post(
                f"{url}/status-events/{history[argument]['id']}/retraction",
                json={"reason": "test"},
                headers={"If-Match": f'"{version}"'},
            )
            if expect_ok:
                target[2] = True
        assert (response.status_code == 201) == expect_ok, (kind, argument, response.text)
        assert response.status_code in (201, 409), response.text
        if expect_ok:
            version += 1

        history = (await client.get(f"{url}/status-events")).json()
        api_path = [
            (e["to_status"], date.fromisoformat(e["effective_date"]))
            for e in history["events"]
            if e["retraction"] is None
        ]
        assert plain_path_is_valid(api_path)
        assert api_path == [(s, d) for s, d, r in model if not r]
        assert history["status"] == api_path[-1][0]
        current = (await client.get(url)).json()
        assert current["status"] == api_path[-1][0]
        assert current["version"] == version

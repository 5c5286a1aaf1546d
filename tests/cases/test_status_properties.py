"""Random histories through the API only: late news, claims, confirmations, rejections,
supersessions and retractions. After each step the case file's status, `in_custody` and
pending claims must equal a plain recomputation from the events, and a refused step must
be exactly one that would leave an invalid path."""

import itertools
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import API, create_case, event

STATUSES = [
    "detained", "charged", "sentenced", "released", "pardoned", "deported", "died_in_custody",
]  # fmt: skip
STARTS = {"detained", "charged"}
ENDS = {"released", "pardoned", "deported", "died_in_custody"}
ALLOWED = {
    "charged": {"detained", "sentenced", "released"},
    "detained": {"charged", "sentenced", *ENDS},
    "sentenced": {"sentenced", "detained", "charged", *ENDS},
    "released": {"deported"},
    "pardoned": {"deported"},
    "deported": set(),
    "died_in_custody": set(),
}
CUSTODIAL = {"imprisonment"}
SENTENCES = ["imprisonment", "fine", "suspended"]
START = date(2020, 1, 1)


@dataclass
class Modelled:
    """One recorded event as the test understands it, independent of app.cases."""

    id: str
    status: str
    day: date
    position: int
    confidence: str
    sentence: str | None
    withdrawn: bool = False
    settled: str | None = None  # confirmed / rejected

    @property
    def takes_effect(self) -> bool:
        if self.withdrawn:
            return False
        return self.confidence != "unconfirmed" or self.settled == "confirmed"

    @property
    def pending(self) -> bool:
        return not self.withdrawn and self.confidence == "unconfirmed" and self.settled is None


def plain_path(events: list[Modelled]) -> list[Modelled]:
    return sorted((e for e in events if e.takes_effect), key=lambda e: (e.day, e.position))


def plain_valid(events: list[Modelled]) -> bool:
    path = plain_path(events)
    if not path or path[0].status not in STARTS:
        return False
    return all(b.status in ALLOWED[a.status] for a, b in itertools.pairwise(path))


def plain_in_custody(events: list[Modelled]) -> bool:
    path = plain_path(events)
    last = path[-1]
    if last.status == "detained":
        return True
    return last.status == "sentenced" and last.sentence in CUSTODIAL


def _as(event: Modelled, **changes: Any) -> Modelled:
    return Modelled(**{**event.__dict__, **changes})


steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("append"),
            st.sampled_from(STATUSES),
            st.integers(0, 1500),
            st.sampled_from(["confirmed", "reported", "unconfirmed"]),
            st.sampled_from(SENTENCES),
        ),
        st.tuples(st.just("retract"), st.integers(0, 7)),
        st.tuples(st.just("confirm"), st.integers(0, 7)),
        st.tuples(st.just("reject"), st.integers(0, 7)),
        st.tuples(
            st.just("supersede"),
            st.integers(0, 7),
            st.sampled_from(STATUSES),
            st.integers(0, 1500),
            st.sampled_from(SENTENCES),
        ),
    ),
    min_size=1,
    max_size=8,
)


def _body(status: str, day: date, confidence: str, sentence: str) -> dict[str, Any]:
    details = {"sentence_type": sentence} if status == "sentenced" else {}
    return event(status, day.isoformat(), confidence=confidence, details=details)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps)
async def test_random_histories_derive_what_a_plain_recomputation_derives(
    client: httpx.AsyncClient, ops: list[tuple[Any, ...]]
) -> None:
    case = await create_case(client, history=[event("detained", START.isoformat())])
    url = f"{API}/cases/{case['id']}"
    first = (await client.get(f"{url}/status-events")).json()["events"][0]
    model = [Modelled(first["id"], "detained", START, 0, "confirmed", None)]
    version = 1
    for op in ops:
        headers = {"If-Match": f'"{version}"'}
        kind = op[0]
        if kind == "append":
            _, status, offset, confidence, sentence = op
            day = START + timedelta(days=offset)
            new = Modelled("", status, day, len(model), confidence, sentence)
            expected = plain_valid([*model, _as(new, settled="confirmed")])
            response = await client.post(
                f"{url}/status-events",
                json=_body(status, day, confidence, sentence),
                headers=headers,
            )
            if response.status_code == 201:
                model.append(_as(new, id=response.json()["event"]["id"]))
        else:
            index = op[1]
            if index >= len(model):
                continue
            target = model[index]
            others = [e for e in model if e is not target]
            if kind == "retract":
                expected = not target.withdrawn and plain_valid(others)
                response = await client.post(
                    f"{url}/status-events/{target.id}/retraction",
                    json={"reason": "wrong"},
                    headers=headers,
                )
                if response.status_code == 201:
                    target.withdrawn = True
            elif kind == "supersede":
                _, _, status, offset, sentence = op
                day = START + timedelta(days=offset)
                correction = Modelled("", status, day, len(model), "confirmed", sentence)
                expected = not target.withdrawn and plain_valid([*others, correction])
                response = await client.post(
                    f"{url}/status-events/{target.id}/supersession",
                    json={
                        "reason": "corrected",
                        "event": _body(status, day, "confirmed", sentence),
                    },
                    headers=headers,
                )
                if response.status_code == 201:
                    target.withdrawn = True
                    model.append(_as(correction, id=response.json()["event"]["id"]))
            else:
                settled = "confirmed" if kind == "confirm" else "rejected"
                expected = target.pending and (
                    settled == "rejected" or plain_valid([*others, _as(target, settled=settled)])
                )
                settlement = "confirmation" if kind == "confirm" else "rejection"
                response = await client.post(
                    f"{url}/status-events/{target.id}/{settlement}",
                    json={} if kind == "confirm" else {"reason": "the family denies it"},
                    headers=headers,
                )
                if response.status_code == 201:
                    target.settled = settled
        assert response.status_code in (201, 409, 422), response.text
        assert (response.status_code == 201) == expected, (op, response.text)
        if expected:
            version += 1

        current = (await client.get(url)).json()
        path = plain_path(model)
        assert current["status"] == path[-1].status
        assert current["in_custody"] == plain_in_custody(model)
        assert current["pending_claims"] == sum(1 for e in model if e.pending)
        assert current["version"] == version
        history = (await client.get(f"{url}/status-events")).json()
        in_effect = [e["id"] for e in history["events"] if e["state"] == "in_effect"]
        assert in_effect == [e.id for e in path]
        assert history["status"] == path[-1].status

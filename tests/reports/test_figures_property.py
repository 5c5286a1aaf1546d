"""Random small histories made through the API — late news, claims confirmed or rejected,
supersessions, retractions, collective events (and their retractions), recognition
decisions, builds of the path basis — each step at its own real time; then for a random
day D, period and knowledge time T (one of the moments between the steps, or the
default), every figure of the report
equals a plain Python recomputation (tests/reports/recompute.py) from the API's own
records, and asking again as known at the same time gives the same figures and hash.

Each example reports on a jurisdiction of its own, so that the records of earlier examples
(the tables are emptied once per test, not per example) stay out of its figures."""

import dataclasses
import itertools
import string
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core import clock
from tests.factories import API, RECOGNISED, WITHDRAWN, amnesty, event
from tests.reports.recompute import (
    HELD_BY_DEFAULT,
    Question,
    comparable,
    differences,
    figures,
    first_day,
    nonzero,
    read_records,
    reported,
)
from tests.reports.reporting import build_basis, case, events_of, move, on_event, person

START = date(2020, 1, 1)
SPAN = 1000  # days of history
FOREIGN = ("LT", "DE", "PL", "UA", "RU", "BY")
# A jurisdiction per example (two letters that are none of the citizenships above), so
# that an example's figures are mostly its own; should one come round again (shrinking
# runs many examples), the recomputation counts every case file made in it.
JURISDICTIONS = itertools.cycle(
    [a + b for a, b in itertools.product(string.ascii_uppercase, repeat=2) if a + b not in FOREIGN]
)
DEPRIVATIONS = ["pretrial_custody", "house_arrest", "imprisonment"]
STATUSES = [
    "detained", "charged", "sentenced", "released", "pardoned", "deported", "died_in_custody",
]  # fmt: skip
SENTENCES = ["imprisonment", "restriction_of_freedom_open_facility", "fine", "suspended"]
# Terms away from the band limits (whose side of the limit the doc does not say).
TERMS = [None, 6, 24, 48, 84, 150]
REASONS = ["sentence_served", "acquitted", "parole"]
DESTINATIONS = ["LT", "PL"]
CITIZENSHIPS = [(), ("LT",), ("DE", "PL")]  # () the jurisdiction's own

# What may follow each status (a plain copy of the state machine, to make mostly valid
# histories; the API refuses the others, which then change nothing), the likelier first.
ALLOWED = {
    "charged": ["detained", "sentenced", "released"],
    "detained": ["sentenced", "released", "died_in_custody", "pardoned", "charged", "deported"],
    "sentenced": [
        "released", "pardoned", "died_in_custody", "sentenced", "deported", "detained", "charged",
    ],
    "released": ["deported"],
    "pardoned": ["deported"],
    "deported": [],
    "died_in_custody": [],
}  # fmt: skip
BATCHES: dict[str, dict[str, Any]] = {
    "pardoned_and_expelled": {
        "kind": "pardon", "to_status": "pardoned", "details": {}, "expelled_to": "LT",
    },
    "deported": {
        "kind": "deportation", "to_status": "deported", "details": {},
        "destination_country": "PL",
    },
    "amnesty": {"kind": "amnesty", "to_status": "released"},
}  # fmt: skip

# The histories a case file is created with: steps and their days after the first.
IMPORTED: dict[str, list[tuple[str, int]]] = {
    "detained": [("detained", 0)],
    "charged": [("charged", 0)],
    "sentenced": [("detained", 0), ("sentenced", 120)],
    "released": [("detained", 0), ("sentenced", 90), ("released", 300)],
    "died": [("detained", 0), ("sentenced", 120), ("died_in_custody", 400)],
}

days = st.integers(0, SPAN)
# An event: which of the statuses that may follow; how long after the current status (or,
# late news, on a day of its own); its details.
what = st.tuples(
    st.integers(0, 6),
    st.integers(0, 300),
    st.one_of(st.none(), days),
    st.sampled_from(SENTENCES),
    st.sampled_from(TERMS),
    st.sampled_from(REASONS),
    st.sampled_from(DESTINATIONS),
)
appends = st.tuples(
    st.just("append"),
    st.integers(0, 3),
    what,
    st.sampled_from(["confirmed", "reported", "unconfirmed", "unconfirmed"]),
)
steps = st.lists(
    st.one_of(
        appends,
        appends,
        appends,
        st.tuples(st.just("retraction"), st.integers(0, 3), st.integers(0, 5)),
        st.tuples(st.just("confirmation"), st.integers(0, 3), st.integers(0, 5)),
        st.tuples(st.just("rejection"), st.integers(0, 3), st.integers(0, 5)),
        st.tuples(st.just("supersession"), st.integers(0, 3), st.integers(0, 5), what),
        st.tuples(
            st.just("collective"),
            st.sets(st.integers(0, 3), min_size=1),
            st.sampled_from(sorted(BATCHES)),
            st.integers(0, 200),
            st.sampled_from(["confirmed", "confirmed", "unconfirmed"]),
        ),
        st.tuples(st.just("collective_retraction"), st.integers(0, 3)),
        # The path basis is built (as the worker does): the reports after it read it.
        st.tuples(st.just("basis")),
        st.tuples(
            st.just("recognition"),
            st.integers(0, 2),
            days,
            st.sampled_from(["political_prisoner", "politically_persecuted", "withdrawn"]),
        ),
    ),
    min_size=4,
    max_size=16,
)
cases = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.sampled_from(DEPRIVATIONS),
        st.sampled_from(sorted(IMPORTED)),
        days,
        # How precisely the first (or the last) step's date is known: the others are days.
        # A partial last step may overlap the step before it, which it follows on the path.
        st.sampled_from(["day", "day", "month", "year", "last_month", "last_year"]),
    ),
    min_size=1,
    max_size=4,
)
# The API takes a period that ends by D, and a baseline not after D.
questions = st.tuples(
    st.integers(0, 50),  # D: which recorded day …
    st.integers(0, 90),  # … and how long after it
    st.integers(0, 60),  # how long before D the period ends
    st.integers(0, 400),  # the period's length
    st.integers(-10, 400),  # the baseline (at the latest D)
    st.one_of(st.none(), st.floats(0, 1)),  # T: which moment between steps, or the default
    st.one_of(st.none(), st.sets(st.sampled_from(DEPRIVATIONS), min_size=1)),
)


def _day(offset: int) -> str:
    return (START + timedelta(days=offset)).isoformat()


def _details(status: str, spec: tuple[Any, ...]) -> dict[str, Any]:
    sentence, term, reason, destination = spec[3:]
    if status == "sentenced":
        return {"sentence_type": sentence, **({"term_months": term} if term else {})}
    if status == "released":
        return {"release_reason": reason}
    if status == "deported":
        return {"destination_country": destination}
    if status == "charged":
        return {"situation": "travel_ban"}
    return {}


def _imported(name: str, offset: int, precision: str) -> list[dict[str, Any]]:
    plain = (0, 0, None, "imprisonment", 48, "sentence_served", "LT")
    steps = [
        event(status, _day(offset + after), details=_details(status, plain))
        for status, after in IMPORTED[name]
    ]
    which = -1 if precision.startswith("last_") else 0
    steps[which]["effective_date"] = steps[which]["effective_date"][
        : {"day": 10, "month": 7, "year": 4}[precision.removeprefix("last_")]
    ]
    return steps


async def _current(client: httpx.AsyncClient, case_id: str) -> tuple[str, int]:
    """The case file's status, and the day it was set (as an offset)."""
    read = (await client.get(f"{API}/cases/{case_id}")).json()
    return read["status"], (first_day(read["status_since"]) - START).days


async def _step(
    client: httpx.AsyncClient,
    app: FastAPI,
    op: tuple[Any, ...],
    *,
    case_ids: list[str],
    person_ids: list[str],
    collectives: list[str],
) -> int:
    """One step of a history; the API's answer (0 when there was nothing to do)."""
    kind = op[0]
    if kind == "basis":
        await build_basis(app)
        return 0
    if kind == "append":
        _, index, spec, confidence = op
        case_id = case_ids[index % len(case_ids)]
        status, since = await _current(client, case_id)
        following = ALLOWED[status] or STATUSES
        to_status = following[spec[0] % len(following)]
        offset = spec[2] if spec[2] is not None else since + spec[1]
        response = await move(
            client,
            case_id,
            to_status,
            _day(offset),
            confidence=confidence,
            details=_details(to_status, spec),
        )
    elif kind in ("retraction", "confirmation", "rejection", "supersession"):
        case_id = case_ids[op[1] % len(case_ids)]
        recorded = sorted(await events_of(client, case_id), key=lambda e: e["position"])
        states = {"in_effect", "pending_claim"}
        if kind in ("confirmation", "rejection"):
            states = {"pending_claim"}
        elif kind == "supersession":
            states = {"in_effect"}
        targets = [e for e in recorded if e["state"] in states]
        if not targets:
            return 0
        target = targets[op[2] % len(targets)]
        if kind == "supersession":
            spec = op[3]
            day = first_day(target["effective_date"]) + timedelta(days=spec[1] - 150)
            offset = max(0, (day - START).days)
            status = target["to_status"]
            body: dict[str, Any] = {
                "reason": "corrected",
                "event": event(status, _day(offset), details=_details(status, spec)),
            }
        else:
            body = {
                "retraction": {"reason": "reported by mistake"},
                "confirmation": {},
                "rejection": {"reason": "the family denies it"},
            }[kind]
        response = await on_event(client, case_id, target["id"], kind, body)
    elif kind == "collective":
        _, indices, variant, delta, confidence = op
        shape = BATCHES[variant]
        chosen, latest = [], 0
        for case_id in sorted({case_ids[i % len(case_ids)] for i in indices}):
            status, since = await _current(client, case_id)
            if shape["to_status"] in ALLOWED[status]:
                chosen.append(case_id)
                latest = max(latest, since)
        if not chosen:
            return 0
        response = await client.post(
            f"{API}/collective-events",
            json=amnesty(
                chosen,
                title=f"Batch {variant}",
                effective_date=_day(latest + delta),
                confidence=confidence,
                **shape,
            ),
        )
        if response.status_code == 201:
            collectives.append(response.json()["id"])
    elif kind == "collective_retraction":
        if not collectives:
            return 0
        response = await client.post(
            f"{API}/collective-events/{collectives[op[1] % len(collectives)]}/retraction",
            json={"reason": "reported by mistake"},
        )
    else:
        _, index, offset, status = op
        person_id = person_ids[index % len(person_ids)]
        version = (await client.get(f"{API}/persons/{person_id}/recognition")).json()["version"]
        base = WITHDRAWN if status == "withdrawn" else {**RECOGNISED, "status": status}
        response = await client.post(
            f"{API}/persons/{person_id}/recognition",
            json={**base, "decided_on": _day(offset)},
            headers={"If-Match": f'"{version}"'},
        )
    assert response.status_code in (201, 409, 422), (op, response.text)
    return response.status_code


@pytest.fixture
def made_in() -> dict[str, list[str]]:
    """The case files made in each jurisdiction during one test (all its examples)."""
    return {}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.sampled_from(CITIZENSHIPS), min_size=1, max_size=3),
    cases,
    steps,
    st.lists(questions, min_size=2, max_size=2),
)
async def test_every_figure_equals_a_plain_recomputation_from_the_records(
    client: httpx.AsyncClient,
    app: FastAPI,
    made_in: dict[str, list[str]],
    citizenships: list[tuple[str, ...]],
    case_specs: list[tuple[int, str, str, int, str]],
    ops: list[tuple[Any, ...]],
    asked: list[tuple[Any, ...]],
) -> None:
    jurisdiction = next(JURISDICTIONS)
    person_ids = [await person(client, *(held or (jurisdiction,))) for held in citizenships]
    moments: list[datetime] = [clock.utcnow()]
    case_ids: list[str] = []
    collectives: list[str] = []
    for owner, deprivation, first, offset, precision in case_specs:
        case_ids.append(
            await case(
                client,
                person_ids[owner % len(person_ids)],
                *_imported(first, offset, precision),
                jurisdiction=jurisdiction,
                deprivation_type=deprivation,
            )
        )
        moments.append(clock.utcnow())
    for op in ops:
        await _step(
            client, app, op, case_ids=case_ids, person_ids=person_ids, collectives=collectives
        )
        moments.append(clock.utcnow())

    made_in.setdefault(jurisdiction, []).extend(case_ids)
    records = await read_records(client, made_in[jurisdiction])
    # The path the report reads is the case file's own: as known now, it ends where the
    # case file's status does.
    now = clock.utcnow()
    for recorded in records.cases:
        path = recorded.path(now)
        assert (path[-1].status if path else None) == (await _current(client, recorded.id))[0]
    recorded_days = sorted({(e.day - START).days for c in records.cases for e in c.events})
    for which, after, gap, length, latest_baseline, pick, held_types in asked:
        as_of = recorded_days[-1 - which % len(recorded_days)] + after
        start, baseline = as_of - gap - length, min(latest_baseline, as_of)
        known_at = None if pick is None else moments[round(pick * (len(moments) - 1))]
        body: dict[str, Any] = {
            "kind": "status",
            "as_of": _day(as_of),
            "period": {"from": _day(start), "to": _day(start + length)},
            "as_known_at": known_at.isoformat() if known_at else None,
            "baseline": _day(baseline),
            "jurisdiction": jurisdiction,
        }
        if held_types is not None:
            body["held_deprivation_types"] = sorted(held_types)
        response = await client.post(f"{API}/reports", json=body)
        assert response.status_code == 201, (body, response.text)
        report = response.json()
        used = datetime.fromisoformat(report["parameters"]["as_known_at"].replace("Z", "+00:00"))
        if known_at is not None:
            assert used == known_at
        question = Question(
            as_of=START + timedelta(days=as_of),
            period_from=START + timedelta(days=start),
            period_to=START + timedelta(days=start + length),
            known_at=used,
            baseline=START + timedelta(days=baseline),
            jurisdiction=jurisdiction,
            held_types=tuple(held_types) if held_types is not None else HELD_BY_DEFAULT,
        )
        expected = comparable(figures(records, question))
        actual = reported(report["figures"])
        assert expected == actual, (body, differences(expected, actual))
        _check_series(report["figures"]["series"], records, question, body)
        # Asked again as known at the same time: the same figures, the same hash.
        again = await client.post(
            f"{API}/reports", json={**body, "as_known_at": report["parameters"]["as_known_at"]}
        )
        assert again.status_code == 201, again.text
        assert again.json()["figures"] == report["figures"]
        assert again.json()["content_sha256"] == report["content_sha256"]


def _check_series(
    series: dict[str, Any], records: Any, question: Question, body: dict[str, Any]
) -> None:
    """Each month of the series counts what a report on its last day (the report's day for
    the last month) counts held and recognised; a whole month's releases by mode are what
    a report of that month as its period counts."""
    for month in series["held_by_month"]:
        day = date.fromisoformat(month["month_end"])
        then = figures(records, dataclasses.replace(question, as_of=day))
        assert (month["held"], month["recognised"]) == (
            then["held.total"],
            then["held.recognised"],
        ), (body, month)
    for month, counted in zip(series["held_by_month"], series["releases_by_month"], strict=True):
        last = date.fromisoformat(month["month_end"])
        if (last + timedelta(days=1)).day != 1:
            continue  # the report's own month, cut at its day
        whole = dataclasses.replace(question, period_from=last.replace(day=1), period_to=last)
        expected = nonzero(figures(records, whole)["period.released.by_mode"])
        assert nonzero(counted["by_mode"]) == expected, (body, counted)

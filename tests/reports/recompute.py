"""A plain Python recomputation of a status report's figures (docs/reports.md, "What
counts") from the API's own records: the case files, their status histories (with when each
event, retraction and claim settlement was recorded), the persons, their recognition
decisions and the collective events. Independent of app.reports: it reads only what the
API answers, and implements the doc's definitions one by one."""

import calendar
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

import httpx

from tests.factories import API

HELD_BY_DEFAULT = ("pretrial_custody", "imprisonment", "restriction_of_freedom", "psychiatric")
CUSTODIAL_SENTENCES = {
    "imprisonment",
    "restriction_of_freedom_open_facility",
    "compulsory_treatment",
}
TAKES_EFFECT = {"confirmed", "reported"}
RELEASE_REASONS = ("sentence_served", "acquitted", "charges_dropped", "parole", "other")
RELEASE_MODES = (
    *RELEASE_REASONS,
    "pardoned",
    "pardoned_and_deported",
    "deported_without_pardon",
    "released_pending_trial",
    "non_custodial_sentence",
)
TERM_BANDS = ("under_1y", "1_3y", "3_5y", "5_10y", "10y_plus", "no_term")
OPEN_STATUSES = {"detained", "charged", "sentenced"}
# What an entry of `by_collective_event` says of its collective event, as the event's own
# read (GET /collective-events/{id}) says it.
COLLECTIVE_FIELDS = (
    "title", "kind", "effective_date", "to_status", "destination_country", "expelled_to",
)  # fmt: skip


def first_day(text: str) -> date:
    """A date known to the day, the month or the year counts from its first day."""
    parts = [int(part) for part in text.split("-")]
    return date(parts[0], parts[1] if len(parts) > 1 else 1, parts[2] if len(parts) > 2 else 1)


def last_day(text: str) -> date:
    """The last day a date known to the day, the month or the year may stand for."""
    parts = [int(part) for part in text.split("-")]
    if len(parts) == 3:
        return date(*parts)
    if len(parts) == 2:
        return date(parts[0], parts[1], calendar.monthrange(parts[0], parts[1])[1])
    return date(parts[0], 12, 31)


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def term_band(months: int | None) -> str:
    if months is None:
        return "no_term"
    for limit, band in ((12, "under_1y"), (36, "1_3y"), (60, "3_5y"), (120, "5_10y")):
        if months < limit:
            return band
    return "10y_plus"


@dataclass
class Event:
    id: str
    case_id: str
    position: int
    status: str
    day: date
    confidence: str
    details: dict[str, Any]
    recorded_at: datetime
    collective_event_id: str | None
    supersedes: str | None
    retracted_at: datetime | None
    settled: str | None
    settled_at: datetime | None
    # The place it was given in (a correction takes the place of what it superseded).
    given: int = 0
    # The last day its date may stand for (itself, for a date known to the day).
    last: date = date.min

    def on_path(self, known_at: datetime) -> bool:
        if self.recorded_at > known_at:
            return False
        if self.retracted_at is not None and self.retracted_at <= known_at:
            return False
        if self.confidence in TAKES_EFFECT:
            return True
        return (
            self.settled == "confirmed"
            and self.settled_at is not None
            and self.settled_at <= known_at
        )

    def pending(self, known_at: datetime) -> bool:
        return (
            self.recorded_at <= known_at
            and self.confidence == "unconfirmed"
            and not (self.settled_at is not None and self.settled_at <= known_at)
            and not (self.retracted_at is not None and self.retracted_at <= known_at)
        )


@dataclass
class Case:
    id: str
    person_id: str
    jurisdiction: str
    deprivation_type: str
    events: list[Event] = field(default_factory=list)

    def path(self, known_at: datetime) -> list[Event]:
        """In effective order; each event with the day it counts from: its first possible
        day, or, for a partial date whose days overlap those of an event given before it,
        that event's day if later (the case file keeps them in the order given)."""
        on = [e for e in self.events if e.on_path(known_at)]
        counted = []
        for e in on:
            day = e.day
            if e.last != e.day:
                overlapping = [
                    o.day for o in on if o.given < e.given and o.day <= e.last and e.day <= o.last
                ]
                day = max([day, *overlapping])
            counted.append(replace(e, day=day))
        return sorted(counted, key=lambda e: (e.day, e.given))


@dataclass
class Decision:
    version: int
    status: str
    decided_on: date
    recorded_at: datetime
    case_file_ids: set[str]


@dataclass
class Person:
    id: str
    citizenships: list[str]
    decisions: list[Decision]


@dataclass
class Records:
    cases: list[Case]
    persons: dict[str, Person]
    collective: dict[str, dict[str, Any]]


async def read_records(client: httpx.AsyncClient, case_ids: list[str]) -> Records:
    """Everything the recomputation needs, as the API answers it."""
    cases: list[Case] = []
    persons: dict[str, Person] = {}
    collective: dict[str, dict[str, Any]] = {}
    for case_id in case_ids:
        read = (await client.get(f"{API}/cases/{case_id}")).json()
        history = (await client.get(f"{API}/cases/{case_id}/status-events")).json()["events"]
        case = Case(case_id, read["person_id"], read["jurisdiction"], read["deprivation_type"])
        for item in history:
            retraction = item["retraction"]
            claim = item["claim"]
            case.events.append(
                Event(
                    id=item["id"],
                    case_id=case_id,
                    position=item["position"],
                    status=item["to_status"],
                    day=first_day(item["effective_date"]),
                    last=last_day(item["effective_date"]),
                    confidence=item["confidence"],
                    details=item["details"] or {},
                    recorded_at=moment(item["recorded_at"]),
                    collective_event_id=item["collective_event_id"],
                    supersedes=item["supersedes"],
                    retracted_at=moment(retraction["recorded_at"]) if retraction else None,
                    settled=claim["outcome"] if claim else None,
                    settled_at=moment(claim["recorded_at"]) if claim else None,
                )
            )
        positions = {e.id: e.position for e in case.events}
        originals = {e.id: e.supersedes for e in case.events if e.supersedes}
        for e in case.events:
            root = e.id
            while root in originals:
                root = originals[root]
            e.given = positions[root]
        cases.append(case)
        if case.person_id not in persons:
            person = (await client.get(f"{API}/persons/{case.person_id}")).json()
            recognition = (await client.get(f"{API}/persons/{case.person_id}/recognition")).json()
            persons[case.person_id] = Person(
                case.person_id,
                person["citizenships"],
                [
                    Decision(
                        d["version"],
                        d["status"],
                        date.fromisoformat(d["decided_on"]),
                        moment(d["recorded_at"]),
                        set(d["case_file_ids"]),
                    )
                    for d in recognition["history"]
                ],
            )
        for e in case.events:
            if e.collective_event_id and e.collective_event_id not in collective:
                collective[e.collective_event_id] = (
                    await client.get(f"{API}/collective-events/{e.collective_event_id}")
                ).json()
    return Records(cases, persons, collective)


@dataclass(frozen=True)
class Question:
    as_of: date
    period_from: date
    period_to: date
    known_at: datetime
    baseline: date = date(2020, 1, 1)
    jurisdiction: str | None = None
    held_types: tuple[str, ...] = HELD_BY_DEFAULT


def is_held(case: Case, state: Event | None, held_types: tuple[str, ...]) -> bool:
    if state is None or case.deprivation_type not in held_types:
        return False
    if state.status == "detained":
        return True
    return (
        state.status == "sentenced"
        and state.details.get("sentence_type") in CUSTODIAL_SENTENCES
        and not state.details.get("in_absentia")
    )


def state_on(path: list[Event], day: date) -> Event | None:
    dated = [e for e in path if e.day <= day]
    return dated[-1] if dated else None


def recognition_on(person: Person, case_id: str, day: date, known_at: datetime) -> str:
    covering = [
        d
        for d in person.decisions
        if case_id in d.case_file_ids and d.decided_on <= day and d.recorded_at <= known_at
    ]
    return max(covering, key=lambda d: d.version).status if covering else "not_assessed"


def is_foreign(person: Person, case: Case) -> bool:
    return any(c != case.jurisdiction for c in person.citizenships)


def release_mode(
    event: Event, following: Event | None, period_to: date, held_after: bool
) -> str | None:
    """How a step that took a case file from held to not held released its person."""
    if held_after or event.status == "died_in_custody":
        return None
    if event.status == "released":
        return str(event.details.get("release_reason", "other"))
    if event.status == "pardoned":
        if following is not None and following.status == "deported" and following.day <= period_to:
            return "pardoned_and_deported"
        return "pardoned"
    if event.status == "deported":
        return "deported_without_pardon"
    if event.status == "charged":
        return "released_pending_trial"
    if event.status == "sentenced":
        return "non_custodial_sentence"
    return "other"


def figures(records: Records, q: Question) -> dict[str, Any]:
    """The report's figures, by the doc's definitions."""
    cases = [c for c in records.cases if q.jurisdiction is None or c.jurisdiction == q.jurisdiction]

    def in_period(day: date) -> bool:
        return q.period_from <= day <= q.period_to

    def since_baseline(day: date) -> bool:
        return q.baseline <= day <= q.as_of

    held_cases: dict[str, list[tuple[Case, Event]]] = {}
    open_not_held: set[str] = set()
    sentences_by_type: Counter[str] = Counter()
    sentences_by_band: Counter[str] = Counter()
    deported: Counter[str] = Counter()
    claims: Counter[str] = Counter()
    collective_cases: dict[str, set[str]] = {}
    # Person-level facts: a death ends custody on every case file; a release or a detention
    # counts once per person, day (and, for a release, status) whatever the case files.
    died_on: dict[str, date] = {}
    detentions: set[tuple[str, date]] = set()
    releases: dict[tuple[str, date, str], tuple[str, str, Case]] = {}
    for case in sorted(cases, key=lambda c: c.id):
        path = case.path(q.known_at)
        previous_held = False
        for index, e in enumerate(path):
            held_after = is_held(case, e, q.held_types)
            following = path[index + 1] if index + 1 < len(path) else None
            if held_after and not previous_held:
                detentions.add((case.person_id, e.day))
            mode = release_mode(e, following, q.period_to, held_after) if previous_held else None
            if mode is not None:
                releases.setdefault((case.person_id, e.day, e.status), (case.id, mode, case))
            if e.status == "died_in_custody":
                died_on[case.person_id] = min(e.day, died_on.get(case.person_id, e.day))
            if in_period(e.day):
                if e.status == "sentenced":
                    sentences_by_type[e.details["sentence_type"]] += 1
                    sentences_by_band[term_band(e.details.get("term_months"))] += 1
                if e.status == "deported":
                    deported[e.details["destination_country"]] += 1
                if e.collective_event_id:
                    collective_cases.setdefault(e.collective_event_id, set()).add(case.id)
            previous_held = held_after
        for e in case.events:
            if e.pending(q.known_at) and in_period(e.day):
                claims[e.status] += 1
    for case in cases:
        state = state_on(case.path(q.known_at), q.as_of)
        dead = case.person_id in died_on and died_on[case.person_id] <= q.as_of
        if is_held(case, state, q.held_types) and not dead:
            assert state is not None
            held_cases.setdefault(case.person_id, []).append((case, state))
        elif (
            state is not None
            and state.status in OPEN_STATUSES
            and not is_held(case, state, q.held_types)
        ):
            open_not_held.add(case.person_id)
    new_detentions = sum(in_period(day) for _, day in detentions)
    released: Counter[str] = Counter()
    released_foreign: Counter[str] = Counter()
    cumulative = Counter[str]()
    for (person_id, day, _), (_, mode, case) in releases.items():
        cumulative["releases"] += since_baseline(day)
        if in_period(day):
            released[mode] += 1
            for citizenship in records.persons[person_id].citizenships:
                if citizenship != case.jurisdiction:
                    released_foreign[citizenship] += 1
    cumulative["detentions"] = sum(since_baseline(day) for _, day in detentions)
    cumulative["deaths"] = sum(since_baseline(day) for day in died_on.values())
    deaths = sum(in_period(day) for day in died_on.values())

    by_status: Counter[str] = Counter()
    recognised = persecuted = 0
    foreign_held: Counter[str] = Counter()
    for person_id, held in held_cases.items():
        person = records.persons[person_id]
        primary_case, primary_state = min(held, key=lambda cs: (-cs[1].day.toordinal(), cs[0].id))
        by_status[primary_state.status] += 1
        statuses = {recognition_on(person, c.id, q.as_of, q.known_at) for c, _ in held}
        recognised += "political_prisoner" in statuses
        # politically_persecuted means persecuted but not recognised (DESIGN §2): a person
        # recognised for one held case file is not also counted as persecuted for another.
        persecuted += "politically_persecuted" in statuses and "political_prisoner" not in statuses
        for citizenship in person.citizenships:
            if citizenship != primary_case.jurisdiction:
                foreign_held[citizenship] += 1

    new_recognitions = set()
    for case in cases:
        person = records.persons[case.person_id]
        for d in person.decisions:
            if (
                case.id in d.case_file_ids
                and d.status == "political_prisoner"
                and d.recorded_at <= q.known_at
                and in_period(d.decided_on)
                and recognition_on(person, case.id, d.decided_on, q.known_at)
                == "political_prisoner"
                and recognition_on(person, case.id, d.decided_on - timedelta(days=1), q.known_at)
                != "political_prisoner"
            ):
                new_recognitions.add(person.id)

    case_by_id = {c.id: c for c in cases}
    by_collective = {}
    for collective_id, ids in collective_cases.items():
        foreign = {
            case_by_id[i].person_id
            for i in ids
            if is_foreign(records.persons[case_by_id[i].person_id], case_by_id[i])
        }
        made = records.collective[collective_id]
        by_collective[collective_id] = {
            **{name: made[name] for name in COLLECTIVE_FIELDS},
            "case_files": len(ids),
            "foreign_nationals": len(foreign),
        }

    return {
        "held.total": len(held_cases),
        "held.recognised": recognised,
        "held.politically_persecuted": persecuted,
        "held.by_status": {"detained": by_status["detained"], "sentenced": by_status["sentenced"]},
        "at_liberty.prosecuted": len(open_not_held - set(held_cases)),
        "period.new_detentions": new_detentions,
        "period.new_recognitions": len(new_recognitions),
        "period.sentences.total": sum(sentences_by_type.values()),
        "period.sentences.by_type": dict(sentences_by_type),
        "period.sentences.by_term_band": {band: sentences_by_band[band] for band in TERM_BANDS},
        "period.released.total": sum(released.values()),
        "period.released.by_mode": {mode: released[mode] for mode in RELEASE_MODES},
        "period.deported.total": sum(deported.values()),
        "period.deported.by_destination": dict(deported),
        "period.released_foreign_by_citizenship": dict(released_foreign),
        "period.deaths_in_custody": deaths,
        "cumulative.deaths_in_custody_since_baseline": cumulative["deaths"],
        "cumulative.detentions_since_baseline": cumulative["detentions"],
        "cumulative.releases_since_baseline": cumulative["releases"],
        "claims.unconfirmed.count": sum(claims.values()),
        "claims.unconfirmed.by_status": dict(claims),
        "breakdowns.foreign_by_citizenship": dict(foreign_held),
        "by_collective_event": by_collective,
    }


def nonzero(values: dict[str, int]) -> dict[str, int]:
    return {key: value for key, value in values.items() if value}


def reported(report_figures: dict[str, Any]) -> dict[str, Any]:
    """The same figures as the report states them (open maps without their zeros)."""
    f = report_figures
    period = f["period"]
    return {
        "held.total": f["held"]["total"],
        "held.recognised": f["held"]["recognised"],
        "held.politically_persecuted": f["held"]["politically_persecuted"],
        "held.by_status": f["held"]["by_status"],
        "at_liberty.prosecuted": f["at_liberty"]["prosecuted"],
        "period.new_detentions": period["new_detentions"],
        "period.new_recognitions": period["new_recognitions"],
        "period.sentences.total": period["sentences"]["total"],
        "period.sentences.by_type": nonzero(period["sentences"]["by_type"]),
        "period.sentences.by_term_band": nonzero(period["sentences"]["by_term_band"]),
        "period.released.total": period["released"]["total"],
        "period.released.by_mode": nonzero(period["released"]["by_mode"]),
        "period.deported.total": period["deported"]["total"],
        "period.deported.by_destination": nonzero(period["deported"]["by_destination"]),
        "period.released_foreign_by_citizenship": nonzero(
            period["released_foreign_by_citizenship"]
        ),
        "period.deaths_in_custody": period["deaths_in_custody"],
        "cumulative.deaths_in_custody_since_baseline": f["cumulative"][
            "deaths_in_custody_since_baseline"
        ],
        "cumulative.detentions_since_baseline": f["cumulative"]["detentions_since_baseline"],
        "cumulative.releases_since_baseline": f["cumulative"]["releases_since_baseline"],
        "claims.unconfirmed.count": f["claims"]["unconfirmed"]["count"],
        "claims.unconfirmed.by_status": nonzero(f["claims"]["unconfirmed"]["by_status"]),
        "breakdowns.foreign_by_citizenship": nonzero(f["breakdowns"]["foreign_by_citizenship"]),
        "by_collective_event": {
            entry["id"]: {
                **{name: entry[name] for name in COLLECTIVE_FIELDS},
                "case_files": entry["case_files"],
                "foreign_nationals": entry["foreign_nationals"],
            }
            for entry in f["by_collective_event"]
        },
    }


def comparable(expected: dict[str, Any]) -> dict[str, Any]:
    """The recomputation with its maps without zeros, as `reported` gives the report's."""
    out = dict(expected)
    for key in (
        "period.sentences.by_type",
        "period.sentences.by_term_band",
        "period.released.by_mode",
        "period.deported.by_destination",
        "period.released_foreign_by_citizenship",
        "claims.unconfirmed.by_status",
        "breakdowns.foreign_by_citizenship",
    ):
        out[key] = nonzero(out[key])
    return out


def differences(expected: dict[str, Any], actual: dict[str, Any]) -> dict[str, Any]:
    return {
        key: {"expected": expected[key], "report": actual.get(key)}
        for key in expected
        if expected[key] != actual.get(key)
    }

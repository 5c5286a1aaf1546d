"""A deterministic, realistic synthetic data set: same persons count and seed, same data.

Status paths are walks through the real transition table (app.cases.statuses), so every
generated case file satisfies the same rules as one entered through the API.
"""

import json
import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any

from anyascii import anyascii

from app.cases.statuses import IN_CUSTODY, Status
from app.core.ids import deterministic_uuid7
from app.persons.names import skeleton, tokens
from app.recognition.criteria import CRITERIA, RecognitionStatus
from app.seed import vocabulary as words

# Fixed, so that the data set does not depend on the day it is made.
AS_OF = date(2026, 11, 1)
FIRST_DETENTION = date(2020, 8, 1)
S = Status

# How a path goes on from each status; None ends the path there. Every target must be
# allowed by TRANSITIONS (a test checks it).
NEXT_STEP_WEIGHTS: dict[Status, list[tuple[Status | None, float]]] = {
    S.detained: [
        (None, 12),
        (S.sentenced, 55),
        (S.released, 25),
        (S.pardoned, 5),
        (S.deported, 1),
        (S.died_in_custody, 0.4),
    ],
    S.sentenced: [
        (None, 50),
        (S.released, 30),
        (S.pardoned, 12),
        (S.sentenced, 4),
        (S.deported, 1),
        (S.died_in_custody, 0.5),
    ],
    S.released: [(None, 97), (S.deported, 3)],
    S.pardoned: [(None, 70), (S.deported, 30)],
    S.deported: [(None, 1)],
    S.died_in_custody: [(None, 1)],
}
GAP_DAYS: dict[Status, tuple[int, int]] = {
    S.sentenced: (60, 420),
    S.released: (30, 1500),
    S.pardoned: (60, 1200),
    S.deported: (0, 3),
    S.died_in_custody: (30, 1200),
    S.detained: (0, 0),
}

PERSON_COLUMNS = (
    "id",
    "birth_date",
    "birth_date_precision",
    "gender",
    "citizenships",
    "region",
    "occupation",
    "affiliations",
    "special_risk",
    "publish_consent",
    "health",
    "lawyer",
    "notes",
    "relatives",
    "contacts",
    "address",
    "recorded_by",
    "recognition_status",
    "version",
    "created_at",
    "updated_at",
)
NAME_COLUMNS = (
    "id",
    "person_id",
    "position",
    "value",
    "script",
    "language",
    "kind",
    "is_public",
    "search_key",
    "search_tokens",
)
SOURCE_COLUMNS = (
    "id",
    "publisher",
    "title",
    "url",
    "published_on",
    "reliability",
    "credibility",
    "is_public",
    "witness",
    "recorded_by",
    "version",
    "created_at",
)
CASE_COLUMNS = (
    "id",
    "person_id",
    "reference",
    "jurisdiction",
    "deprivation_type",
    "confidentiality",
    "assigned_caseworkers",
    "charges",
    "court_decisions",
    "detention_places",
    "status",
    "status_since",
    "status_since_precision",
    "detained_on",
    "version",
    "created_at",
    "updated_at",
)
EVENT_COLUMNS = (
    "id",
    "case_file_id",
    "position",
    "to_status",
    "effective_date",
    "effective_precision",
    "recorded_at",
    "recorded_by",
    "confidence",
    "note",
    "details",
    "source_ids",
    "collective_event_id",
)
COLLECTIVE_COLUMNS = (
    "id",
    "title",
    "kind",
    "to_status",
    "effective_date",
    "effective_precision",
    "destination_country",
    "note",
    "source_ids",
    "case_file_count",
    "recorded_at",
    "recorded_by",
)
DECISION_COLUMNS = (
    "id",
    "person_id",
    "version",
    "status",
    "criteria",
    "co_signers",
    "decided_on",
    "rationale",
    "exclusion_reason",
    "source_ids",
    "decided_by",
    "recorded_at",
)


@dataclass
class Collective:
    id: uuid.UUID
    day: date
    destination: str
    case_count: int = 0


@dataclass
class DataSet:
    persons: list[tuple[Any, ...]] = field(default_factory=list)
    names: list[tuple[Any, ...]] = field(default_factory=list)
    sources: list[tuple[Any, ...]] = field(default_factory=list)
    cases: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    collectives: list[tuple[Any, ...]] = field(default_factory=list)
    decisions: list[tuple[Any, ...]] = field(default_factory=list)
    last_reference_number: int = 0

    def tables(self) -> Iterator[tuple[str, Sequence[str], list[tuple[Any, ...]]]]:
        """In foreign-key order."""
        yield "person", PERSON_COLUMNS, self.persons
        yield "person_name", NAME_COLUMNS, self.names
        yield "source", SOURCE_COLUMNS, self.sources
        yield "collective_event", COLLECTIVE_COLUMNS, self.collectives
        yield "case_file", CASE_COLUMNS, self.cases
        yield "status_event", EVENT_COLUMNS, self.events
        yield "recognition_decision", DECISION_COLUMNS, self.decisions


@cache
def _romanised(text: str) -> str:
    return str(anyascii(text))


@cache
def _skeleton(text: str) -> str:
    return skeleton(text)


def _moment(day: date, rng: random.Random) -> datetime:
    return datetime.combine(day, time(rng.randrange(7, 22), rng.randrange(60)), UTC)


class _Generator:
    def __init__(self, persons: int, seed: int) -> None:
        self.count = persons
        self.rng = random.Random(seed)
        self.data = DataSet()
        self.source_ids: list[uuid.UUID] = []
        self.collectives: list[Collective] = []

    def new_id(self, when: datetime) -> uuid.UUID:
        return deterministic_uuid7(int(when.timestamp() * 1000), self.rng)

    def day_between(self, first: date, last: date) -> date:
        return first + timedelta(days=self.rng.randrange((last - first).days + 1))

    def run(self) -> DataSet:
        self.make_sources(max(20, self.count // 500))
        self.make_collectives(max(2, min(12, self.count // 10_000)))
        for _ in range(self.count):
            self.make_person()
        for collective in self.collectives:
            when = _moment(collective.day, self.rng)
            self.data.collectives.append(
                (
                    collective.id,
                    f"Pardon and expulsion to {collective.destination}",
                    "pardon",
                    S.deported.value,
                    collective.day,
                    "day",
                    collective.destination,
                    None,
                    [self.rng.choice(self.source_ids)],
                    collective.case_count,
                    when,
                    None,
                )
            )
        return self.data

    def make_sources(self, count: int) -> None:
        for number in range(count):
            published = self.day_between(FIRST_DETENTION, AS_OF)
            when = _moment(published, self.rng)
            source_id = self.new_id(when)
            self.source_ids.append(source_id)
            publisher = self.rng.choice(words.PUBLISHERS)
            self.data.sources.append(
                (
                    source_id,
                    publisher,
                    f"Report {number + 1}",
                    f"https://sources.example/{number + 1}",
                    published,
                    self.rng.choice("ABBCCD"),
                    self.rng.choice([1, 2, 2, 3, 3, 4]),
                    self.rng.random() < 0.8,
                    None,
                    None,
                    1,
                    when,
                )
            )

    def make_collectives(self, count: int) -> None:
        for _ in range(count):
            day = self.day_between(date(2023, 1, 1), AS_OF - timedelta(days=10))
            self.collectives.append(
                Collective(
                    self.new_id(_moment(day, self.rng)),
                    day,
                    self.rng.choice(["LT", "PL", "LT", "LV"]),
                )
            )
        self.collectives.sort(key=lambda c: c.day)

    def make_person(self) -> None:
        rng = self.rng
        female = rng.random() < 0.32
        detained_first = self.day_between(FIRST_DETENTION, AS_OF - timedelta(days=5))
        created = _moment(detained_first + timedelta(days=rng.randrange(1, 20)), rng)
        if created.date() > AS_OF:
            created = _moment(AS_OF, rng)
        person_id = self.new_id(created)
        self.make_names(person_id, female)
        foreign = rng.random() < 0.03
        citizenships = ["BY"]
        if foreign:
            other = rng.choice(words.FOREIGN_CITIZENSHIPS)
            citizenships = [other] if rng.random() < 0.7 else ["BY", other]
        birth = date(rng.randrange(1945, 2006), rng.randrange(1, 13), rng.randrange(1, 29))
        precise = rng.random() < 0.85
        risks = [
            r
            for r, p in (
                ("age_60_plus", 0.0),
                ("serious_illness", 0.03),
                ("disability", 0.02),
                ("mental_disorder", 0.01),
            )
            if rng.random() < p
        ]
        if AS_OF.year - birth.year >= 60:
            risks.append("age_60_plus")
        decisions = self.make_recognition(person_id, detained_first)
        status = decisions[-1] if decisions else RecognitionStatus.not_assessed.value
        self.data.persons.append(
            (
                person_id,
                birth if precise else birth.replace(month=1, day=1),
                "day" if precise else "year",
                "female" if female else "male",
                citizenships,
                rng.choice(words.REGIONS),
                rng.choice(words.OCCUPATIONS),
                [],
                risks,
                rng.random() < 0.95,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                status,
                1,
                created,
                created,
            )
        )
        self.make_cases(person_id, detained_first, created=created, foreign=foreign)

    def make_names(self, person_id: uuid.UUID, female: bool) -> None:
        rng = self.rng
        be_first, ru_first = rng.choice(words.FEMALE_FIRST if female else words.MALE_FIRST)
        be_stem, ru_stem = self.surname_stem()
        be_m, be_f, ru_m, ru_f = rng.choice(words.SURNAME_ENDINGS)
        legal = f"{be_first} {be_stem}{be_f if female else be_m}"
        russian = f"{ru_first} {ru_stem}{ru_f if female else ru_m}"
        names: list[tuple[str, str, str, str, bool]] = [
            (legal, "Cyrl", "be", "legal", True),
            (russian, "Cyrl", "ru", "transliteration", True),
            (_romanised(legal), "Latn", "en", "transliteration", True),
        ]
        if rng.random() < 0.4:
            names.append((_romanised(russian), "Latn", "en", "alias", True))
        if female and rng.random() < 0.1:
            other_stem, _ = self.surname_stem()
            names.append((f"{be_first} {other_stem}{be_f}", "Cyrl", "be", "former", True))
        if rng.random() < 0.02:
            names.append(
                (
                    f"{be_first} {self.surname_stem()[0]}ка",
                    "Cyrl",
                    "be",
                    "hidden",
                    False,
                )
            )
        for position, (value, script, language, kind, public) in enumerate(names):
            self.data.names.append(
                (
                    self.new_id(datetime(2020, 1, 1, tzinfo=UTC)),
                    person_id,
                    position,
                    value,
                    script,
                    language,
                    kind,
                    public,
                    _skeleton(value),
                    tokens(_skeleton(value)),
                )
            )

    def surname_stem(self) -> tuple[str, str]:
        """A (Belarusian, Russian) surname stem: one of the listed ones, more often an
        invented one, so that surnames are as varied as in life."""
        rng = self.rng
        if rng.random() < 0.2:
            return rng.choice(words.SURNAME_STEMS)
        (be_1, ru_1), (be_2, ru_2) = (
            rng.choice(words.STEM_SYLLABLES),
            rng.choice(words.STEM_SYLLABLES),
        )
        closing = rng.choice(words.STEM_CLOSINGS)
        return (be_1 + be_2 + closing).capitalize(), (ru_1 + ru_2 + closing).capitalize()

    def make_recognition(self, person_id: uuid.UUID, detained: date) -> list[str]:
        rng = self.rng
        roll = rng.random()
        if roll < 0.12:
            return []
        plan: list[tuple[RecognitionStatus, int]] = [(RecognitionStatus.under_review, 20)]
        if roll < 0.80:
            plan.append((RecognitionStatus.political_prisoner, rng.randrange(30, 200)))
            if rng.random() < 0.01:
                plan.append((RecognitionStatus.withdrawn, rng.randrange(100, 400)))
        elif roll < 0.86:
            plan.append((RecognitionStatus.politically_persecuted, rng.randrange(30, 200)))
        decided = detained
        statuses: list[str] = []
        for version, (status, after_days) in enumerate(plan, start=1):
            decided += timedelta(days=after_days)
            if decided > AS_OF:
                break
            criteria: list[str] = []
            if status in (
                RecognitionStatus.political_prisoner,
                RecognitionStatus.politically_persecuted,
            ):
                criteria = sorted(rng.sample(list(CRITERIA), rng.randrange(1, 4)))
            when = _moment(decided, rng)
            self.data.decisions.append(
                (
                    self.new_id(when),
                    person_id,
                    version,
                    status.value,
                    criteria,
                    ["Partner Human Rights Centre"] if criteria and rng.random() < 0.5 else [],
                    decided,
                    None,
                    None,
                    [],
                    None,
                    when,
                )
            )
            statuses.append(status.value)
        return statuses

    def make_cases(
        self, person_id: uuid.UUID, first_detention: date, *, created: datetime, foreign: bool
    ) -> None:
        rng = self.rng
        wanted = rng.choices([1, 2, 3], weights=[70, 22, 8])[0]
        start = first_detention
        for _ in range(wanted):
            path = self.walk(start)
            self.add_case(person_id, path, foreign)
            last_status, last_day = path[-1][0], path[-1][1]
            if last_status in IN_CUSTODY or last_status in (S.deported, S.died_in_custody):
                break
            start = last_day + timedelta(days=rng.randrange(30, 400))
            if start > AS_OF:
                break

    def walk(self, start: date) -> list[tuple[Status, date, Collective | None]]:
        rng = self.rng
        path: list[tuple[Status, date, Collective | None]] = [(S.detained, start, None)]
        while True:
            current, day, _ = path[-1]
            targets, weights = zip(*NEXT_STEP_WEIGHTS[current], strict=True)
            following = rng.choices(targets, weights=weights)[0]
            if following is None:
                break
            low, high = GAP_DAYS[following]
            next_day = day + timedelta(days=rng.randrange(low, high + 1))
            if next_day > AS_OF:
                break
            path.append((following, next_day, None))
        current, day, _ = path[-1]
        if current in IN_CUSTODY:
            for collective in self.collectives:
                if collective.day >= day and rng.random() < 0.05:
                    collective.case_count += 1
                    path.append((S.deported, collective.day, collective))
                    break
        return path

    def add_case(
        self,
        person_id: uuid.UUID,
        path: list[tuple[Status, date, Collective | None]],
        foreign: bool,
    ) -> None:
        rng = self.rng
        data = self.data
        created = _moment(path[0][1] + timedelta(days=rng.randrange(0, 15)), rng)
        case_id = self.new_id(created)
        data.last_reference_number += 1
        reference = f"HB-{path[0][1].year}-{data.last_reference_number:06d}"
        articles = rng.sample(words.ARTICLES, rng.randrange(1, 3))
        charges = [
            {
                "charge_id": str(self.new_id(created)),
                "code": "BY-CC",
                "article": a,
                "part": p,
                "charged_on": str(path[0][1]),
            }
            for a, p in articles
        ]
        court_decisions = []
        last_recorded = created
        for position, (status, day, collective) in enumerate(path):
            details: dict[str, Any] = {}
            if status is S.sentenced:
                term = rng.choice([24, 36, 48, 60, 72, 96, 120, 180])
                details = {"term_months": term}
                court_decisions.append(
                    {"court": "Regional court", "decided_on": str(day), "term_months": term}
                )
            elif status is S.released:
                details = {
                    "release_reason": rng.choice(
                        ["sentence_served", "sentence_served", "parole", "charges_dropped"]
                    )
                }
            elif status is S.deported:
                details = {
                    "destination_country": collective.destination
                    if collective
                    else rng.choice(["LT", "PL"])
                }
            recorded = _moment(min(day + timedelta(days=rng.randrange(0, 30)), AS_OF), rng)
            last_recorded = max(last_recorded, recorded)
            confidence = "confirmed"
            if position and rng.random() < 0.05:
                confidence = rng.choice(["reported", "unconfirmed"])
            sources = rng.sample(self.source_ids, rng.randrange(0, 3))
            data.events.append(
                (
                    self.new_id(recorded),
                    case_id,
                    position,
                    status.value,
                    day,
                    "day",
                    recorded,
                    None,
                    confidence,
                    None,
                    json.dumps(details),
                    sources,
                    collective.id if collective else None,
                )
            )
        last_status, last_day, _ = path[-1]
        data.cases.append(
            (
                case_id,
                person_id,
                reference,
                "RU" if foreign and rng.random() < 0.2 else "BY",
                rng.choices(
                    ["pretrial_custody", "imprisonment", "house_arrest", "administrative_arrest"],
                    weights=[60, 25, 10, 5],
                )[0],
                "high" if rng.random() < 0.02 else "normal",
                [],
                json.dumps(charges),
                json.dumps(court_decisions),
                json.dumps(
                    [{"place": rng.choice(words.DETENTION_PLACES), "since": str(path[0][1])}]
                ),
                last_status.value,
                last_day,
                "day",
                path[0][1],
                len(path),
                created,
                last_recorded,
            )
        )


def generate(persons: int, seed: int) -> DataSet:
    return _Generator(persons, seed).run()

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
from sqlalchemy.orm import configure_mappers

from app.cases.history import status_columns
from app.cases.models import ClaimOutcome, ClaimResolution, EventRecord, StatusEvent
from app.cases.models import StatusEventRetraction as Retraction
from app.cases.statuses import Confidence, SentenceType, Status
from app.core.dates import Precision
from app.core.ids import deterministic_uuid7
from app.persons.names import skeleton, tokens
from app.recognition.coverage import CLOSED, WITHDRAWABLE
from app.recognition.criteria import CRITERIA, ExclusionCode, RecognitionStatus
from app.seed import vocabulary as words

# Fixed, so that the data set does not depend on the day it is made.
AS_OF = date(2026, 11, 1)
FIRST_DETENTION = date(2020, 8, 1)
S = Status
IN_CUSTODY = frozenset({S.detained, S.sentenced})

# How a path goes on from each status; None ends the path there. Every target must be
# allowed by TRANSITIONS (a test checks it).
NEXT_STEP_WEIGHTS: dict[Status, list[tuple[Status | None, float]]] = {
    S.charged: [(None, 40), (S.detained, 25), (S.sentenced, 30), (S.released, 5)],
    S.detained: [
        (None, 12),
        (S.charged, 3),
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
        (S.detained, 1),
        (S.charged, 0.5),
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
    S.detained: (20, 300),
    S.charged: (20, 300),
}
# A few case files start at liberty (prosecuted, not held).
CHARGED_START = 0.06
SENTENCE_TYPES: list[tuple[SentenceType, float]] = [
    (SentenceType.imprisonment, 80),
    (SentenceType.restriction_of_freedom_open_facility, 8),
    (SentenceType.restriction_of_freedom_at_home, 4),
    (SentenceType.suspended, 3),
    (SentenceType.fine, 4),
    (SentenceType.compulsory_treatment, 1),
]
# Claims: an unconfirmed release still pending, confirmed later, or rejected.
CLAIM_SHARE = 0.04
# Sentences whose term was later corrected (superseded).
CORRECTED_SHARE = 0.02
# Case files whose last event was entered twice (the copy retracted).
DUPLICATE_SHARE = 0.01

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
    "merged_into",
    "version",
    "created_at",
    "updated_at",
    "facts_since",
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
    "court_decisions_unmatched",
    "detention_places",
    "status",
    "status_since",
    "status_since_precision",
    "status_confidence",
    "detained_on",
    "detained_precision",
    "in_custody",
    "sentence_type",
    "pending_claims",
    "recognition_status",
    "version",
    "created_at",
    "updated_at",
    "facts_since",
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
    "reported_by_partner",
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
    "expelled_to",
    "case_file_count",
    "recorded_at",
    "recorded_by",
    "retraction_reason",
    "retracted_at",
    "retracted_by",
)
RETRACTION_COLUMNS = (
    "id",
    "event_id",
    "case_file_id",
    "reason",
    "superseded_by",
    "recorded_at",
    "recorded_by",
)
RESOLUTION_COLUMNS = (
    "id",
    "event_id",
    "case_file_id",
    "outcome",
    "confidence",
    "reason",
    "source_ids",
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
    "exclusion_code",
    "source_ids",
    "decided_by",
    "recorded_at",
)
COVERAGE_COLUMNS = ("decision_id", "case_file_id")
# Where a case file's row holds these (filled once its person's decisions are known).
CASE_RECOGNITION = CASE_COLUMNS.index("recognition_status")
CASE_CREATED = CASE_COLUMNS.index("created_at")


@dataclass
class Collective:
    id: uuid.UUID
    day: date
    destination: str
    case_count: int = 0


@dataclass(frozen=True)
class Decision:
    id: uuid.UUID
    status: RecognitionStatus
    decided_on: date
    recorded_at: datetime


Path = list[tuple[Status, date, Collective | None]]


@dataclass
class DataSet:
    persons: list[tuple[Any, ...]] = field(default_factory=list)
    names: list[tuple[Any, ...]] = field(default_factory=list)
    sources: list[tuple[Any, ...]] = field(default_factory=list)
    cases: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    collectives: list[tuple[Any, ...]] = field(default_factory=list)
    decisions: list[tuple[Any, ...]] = field(default_factory=list)
    retractions: list[tuple[Any, ...]] = field(default_factory=list)
    resolutions: list[tuple[Any, ...]] = field(default_factory=list)
    coverage: list[tuple[Any, ...]] = field(default_factory=list)
    last_reference_number: int = 0

    def tables(self) -> Iterator[tuple[str, Sequence[str], list[tuple[Any, ...]]]]:
        """In foreign-key order."""
        yield "person", PERSON_COLUMNS, self.persons
        yield "person_name", NAME_COLUMNS, self.names
        yield "source", SOURCE_COLUMNS, self.sources
        yield "collective_event", COLLECTIVE_COLUMNS, self.collectives
        yield "case_file", CASE_COLUMNS, self.cases
        yield "status_event", EVENT_COLUMNS, self.events
        yield "status_event_retraction", RETRACTION_COLUMNS, self.retractions
        yield "status_claim_resolution", RESOLUTION_COLUMNS, self.resolutions
        yield "recognition_decision", DECISION_COLUMNS, self.decisions
        yield "recognition_coverage", COVERAGE_COLUMNS, self.coverage


@cache
def _romanised(text: str) -> str:
    return str(anyascii(text))


@cache
def _skeleton(text: str) -> str:
    return skeleton(text)


@cache
def _tokens(text: str) -> list[str]:
    return tokens(text)


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
        # The status events are built as the application builds them (and derived by its
        # own code); their attributes work only once the mappers are configured.
        configure_mappers()
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
                    S.pardoned.value,
                    collective.day,
                    "day",
                    None,
                    None,
                    [self.rng.choice(self.source_ids)],
                    collective.destination,
                    collective.case_count,
                    when,
                    None,
                    None,
                    None,
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
        status = decisions[-1].status.value if decisions else RecognitionStatus.not_assessed.value
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
                # merged into no one
                None,
                1,
                created,
                created,
                # known as they are since the person was documented
                created,
            )
        )
        first_case = len(self.data.cases)
        paths = self.make_cases(person_id, detained_first, created=created, foreign=foreign)
        self.cover(decisions, first_case, paths)

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
                    _tokens(value),
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

    def make_recognition(self, person_id: uuid.UUID, detained: date) -> list[Decision]:
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
        made: list[Decision] = []
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
            withdrawn = status is RecognitionStatus.withdrawn
            decision = Decision(self.new_id(when), status, decided, when)
            self.data.decisions.append(
                (
                    decision.id,
                    person_id,
                    version,
                    status.value,
                    criteria,
                    ["Partner Human Rights Centre"] if criteria and rng.random() < 0.5 else [],
                    decided,
                    "Synthetic withdrawal." if withdrawn else None,
                    None,
                    rng.choice(list(ExclusionCode)).value if withdrawn else None,
                    [],
                    None,
                    when,
                )
            )
            made.append(decision)
        return made

    def cover(self, decisions: list[Decision], first_case: int, paths: list[Path]) -> None:
        """What each decision covers, as the API decides it by default: the person's case
        files open on the day (and, for a withdrawal, those still recognised); each case
        file then holds the status of the latest decision covering it."""
        data = self.data
        rows = data.cases[first_case:]
        held: list[RecognitionStatus] = [RecognitionStatus.not_assessed] * len(rows)
        for decision in decisions:
            for index, (row, path) in enumerate(zip(rows, paths, strict=True)):
                steps = [status for status, day, _ in path if day <= decision.decided_on]
                if row[CASE_CREATED] > decision.recorded_at or not steps:
                    continue
                withdrawn_too = (
                    decision.status is RecognitionStatus.withdrawn and held[index] in WITHDRAWABLE
                )
                if steps[-1] not in CLOSED or withdrawn_too:
                    data.coverage.append((decision.id, row[0]))
                    held[index] = decision.status
        for index, row in enumerate(rows):
            data.cases[first_case + index] = (
                *row[:CASE_RECOGNITION],
                held[index].value,
                *row[CASE_RECOGNITION + 1 :],
            )

    def make_cases(
        self, person_id: uuid.UUID, first_detention: date, *, created: datetime, foreign: bool
    ) -> list[Path]:
        """The person's case files, and the path of each, in the order they were added."""
        rng = self.rng
        wanted = rng.choices([1, 2, 3], weights=[70, 22, 8])[0]
        start = first_detention
        paths: list[Path] = []
        for _ in range(wanted):
            path = self.walk(start)
            self.add_case(person_id, path, foreign)
            paths.append(path)
            last_status, last_day = path[-1][0], path[-1][1]
            if last_status in IN_CUSTODY or last_status in (S.deported, S.died_in_custody):
                break
            start = last_day + timedelta(days=rng.randrange(30, 400))
            if start > AS_OF:
                break
        return paths

    def walk(self, start: date) -> Path:
        rng = self.rng
        first = S.charged if rng.random() < CHARGED_START else S.detained
        path: list[tuple[Status, date, Collective | None]] = [(first, start, None)]
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
                    # Pardoned and expelled: both are recorded.
                    path.append((S.pardoned, collective.day, collective))
                    path.append((S.deported, collective.day, collective))
                    break
        return path

    def add_case(
        self,
        person_id: uuid.UUID,
        path: Path,
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
        last_recorded = created
        records: list[EventRecord] = []

        def record(
            status: Status,
            day: date,
            collective: Collective | None,
            details: dict[str, Any],
            confidence: Confidence,
            recorded: datetime,
        ) -> StatusEvent:
            event = StatusEvent.model_construct(
                id=self.new_id(recorded),
                case_file_id=case_id,
                position=len(records),
                to_status=status,
                effective_date=day,
                effective_precision=Precision.day,
                recorded_at=recorded,
                recorded_by=None,
                reported_by_partner=None,
                confidence=confidence,
                note=None,
                details=details,
                source_ids=rng.sample(self.source_ids, rng.randrange(0, 3)),
                collective_event_id=collective.id if collective else None,
            )
            records.append(EventRecord(event))
            return event

        held = False
        for position, (status, day, collective) in enumerate(path):
            details = self.details(status, collective)
            held = held or status is S.detained
            if status is S.sentenced and not held and rng.random() < 0.5:
                # Prosecuted at liberty (abroad, often) and sentenced in absentia.
                details["in_absentia"] = True
            recorded = _moment(min(day + timedelta(days=rng.randrange(0, 30)), AS_OF), rng)
            last_recorded = max(last_recorded, recorded)
            confidence = Confidence.confirmed
            if position and rng.random() < 0.05:
                confidence = Confidence.reported
            if status is not S.sentenced or rng.random() >= CORRECTED_SHARE:
                record(status, day, collective, details, confidence, recorded)
                continue
            # The term was first reported wrongly, then corrected from the verdict.
            wrong = record(
                status,
                day,
                collective,
                {**details, "term_months": int(details.get("term_months", 12)) + 12},
                confidence,
                recorded,
            )
            corrected_at = recorded + timedelta(days=rng.randrange(1, 20))
            last_recorded = max(last_recorded, corrected_at)
            correction = record(status, day, collective, details, confidence, corrected_at)
            records[-2] = EventRecord(
                wrong,
                Retraction.model_construct(
                    id=self.new_id(corrected_at),
                    event_id=wrong.id,
                    case_file_id=case_id,
                    reason="The term was misreported; corrected from the verdict.",
                    superseded_by=correction.id,
                    recorded_at=corrected_at,
                    recorded_by=None,
                ),
            )
        if rng.random() < DUPLICATE_SHARE:
            # The last event entered twice, and the copy retracted.
            copy = records[-1].event
            again = _moment(min(copy.effective_date + timedelta(days=30), AS_OF), rng)
            last_recorded = max(last_recorded, again)
            twice = record(
                copy.to_status,
                copy.effective_date,
                None,
                dict(copy.details),
                copy.confidence,
                again,
            )
            records[-1] = EventRecord(
                twice,
                Retraction.model_construct(
                    id=self.new_id(again),
                    event_id=twice.id,
                    case_file_id=case_id,
                    reason="Entered twice.",
                    superseded_by=None,
                    recorded_at=again,
                    recorded_by=None,
                ),
            )
        last_status, last_day, _ = path[-1]
        if last_status in IN_CUSTODY and rng.random() < CLAIM_SHARE:
            # "Reported among the freed, no confirmation of her release."
            day = min(last_day + timedelta(days=rng.randrange(30, 400)), AS_OF)
            recorded = _moment(day, rng)
            last_recorded = max(last_recorded, recorded)
            claim = record(
                S.released,
                day,
                None,
                {"release_reason": "other"},
                Confidence.unconfirmed,
                recorded,
            )
            settled = rng.random()
            if settled < 0.5:
                outcome = ClaimOutcome.confirmed if settled < 0.25 else ClaimOutcome.rejected
                settled_at = recorded + timedelta(days=rng.randrange(1, 30))
                last_recorded = max(last_recorded, settled_at)
                records[-1] = EventRecord(
                    claim,
                    None,
                    ClaimResolution.model_construct(
                        id=self.new_id(settled_at),
                        event_id=claim.id,
                        case_file_id=case_id,
                        outcome=outcome,
                        confidence=Confidence.reported
                        if outcome is ClaimOutcome.confirmed
                        else None,
                        reason=None
                        if outcome is ClaimOutcome.confirmed
                        else "The family says she is still held.",
                        source_ids=[],
                        recorded_at=settled_at,
                        recorded_by=None,
                    ),
                )
        for item in records:
            e = item.event
            data.events.append(
                (
                    e.id,
                    case_id,
                    e.position,
                    e.to_status.value,
                    e.effective_date,
                    e.effective_precision.value,
                    e.recorded_at,
                    None,
                    None,
                    e.confidence.value,
                    None,
                    json.dumps(e.details),
                    e.source_ids,
                    e.collective_event_id,
                )
            )
            if item.retraction is not None:
                r = item.retraction
                data.retractions.append(
                    (r.id, r.event_id, case_id, r.reason, r.superseded_by, r.recorded_at, None)
                )
            if item.resolution is not None:
                c = item.resolution
                data.resolutions.append(
                    (
                        c.id,
                        c.event_id,
                        case_id,
                        c.outcome.value,
                        c.confidence.value if c.confidence else None,
                        c.reason,
                        [],
                        c.recorded_at,
                        None,
                    )
                )
        derived = status_columns(records)
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
                json.dumps(derived["court_decisions"]),
                None,
                json.dumps(
                    [{"place": rng.choice(words.DETENTION_PLACES), "since": str(path[0][1])}]
                ),
                derived["status"].value,
                derived["status_since"],
                derived["status_since_precision"].value,
                derived["status_confidence"].value,
                derived["detained_on"],
                derived["detained_precision"].value,
                derived["in_custody"],
                derived["sentence_type"].value if derived["sentence_type"] else None,
                derived["pending_claims"],
                # replaced by cover() once the person's decisions are known
                RecognitionStatus.not_assessed.value,
                len(records),
                created,
                last_recorded,
                # known as they are since the case file was opened
                created,
            )
        )

    def details(self, status: Status, collective: Collective | None) -> dict[str, Any]:
        rng = self.rng
        if status is S.sentenced:
            types, weights = zip(*SENTENCE_TYPES, strict=True)
            sentence = rng.choices(types, weights=weights)[0]
            if sentence is SentenceType.fine:
                return {
                    "sentence_type": sentence.value,
                    "fine_amount": str(rng.choice([500, 1200, 3000])),
                    "fine_currency": "BYN",
                    "court": "Regional court",
                }
            return {
                "sentence_type": sentence.value,
                "term_months": rng.choice([24, 36, 48, 60, 72, 96, 120, 180]),
                "court": "Regional court",
            }
        if status is S.released:
            return {
                "release_reason": rng.choice(
                    ["sentence_served", "sentence_served", "parole", "charges_dropped"]
                )
            }
        if status is S.deported:
            return {
                "destination_country": collective.destination
                if collective
                else rng.choice(["LT", "PL"])
            }
        if status is S.pardoned and collective is not None:
            return {"pardon_decree": f"Decree of {collective.day.isoformat()} (synthetic)"}
        if status is S.charged:
            return {"situation": rng.choice(["travel_ban", "released_pending_trial", "wanted"])}
        return {}


def generate(persons: int, seed: int) -> DataSet:
    return _Generator(persons, seed).run()

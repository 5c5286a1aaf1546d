"""The synthetic facility register and custody timelines for the seeded case files.

Every facility is fictional (its names say "(synthetic)"). The timelines follow each case
file's generated status path: a transfer to remand when detained, to a colony after the
verdict, and now and then an incommunicado period, a hunger strike, a punishment cell, a
new charge and the expected release, all within the time the person was held.
"""

import json
import random
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from app.cases.statuses import CLOSED, Status
from app.core.ids import deterministic_uuid7
from app.custody.models import FacilityType, search_text
from app.seed.generator import AS_OF, CASE_COLUMNS, EVENT_COLUMNS, DataSet

T = FacilityType

# type, country, region, Latin name, Cyrillic name
FACILITIES: Sequence[tuple[FacilityType, str, str | None, str, str]] = (
    (
        T.temporary_detention,
        "BY",
        "BY-HM",
        "Temporary Detention Centre No. 3 (synthetic)",
        "Изолятор временного содержания № 3 (синтетический)",
    ),
    (
        T.temporary_detention,
        "BY",
        "BY-HO",
        "Offenders' Isolation Centre No. 2 (synthetic)",
        "Центр изоляции правонарушителей № 2 (синтетический)",
    ),
    (
        T.pretrial_detention_centre,
        "BY",
        "BY-HM",
        "Pre-trial Detention Centre No. 11 (synthetic)",
        "Следственный изолятор № 11 (синтетический)",
    ),
    (
        T.pretrial_detention_centre,
        "BY",
        "BY-VI",
        "Pre-trial Detention Centre No. 12 (synthetic)",
        "Следственный изолятор № 12 (синтетический)",
    ),
    (
        T.pretrial_detention_centre,
        "BY",
        "BY-BR",
        "Pre-trial Detention Centre No. 14 (synthetic)",
        "Следственный изолятор № 14 (синтетический)",
    ),
    (
        T.penal_colony,
        "BY",
        "BY-VI",
        "Penal Colony No. 17 (synthetic)",
        "Исправительная колония № 17 (синтетическая)",
    ),
    (
        T.penal_colony,
        "BY",
        "BY-MI",
        "Penal Colony No. 21 (synthetic)",
        "Исправительная колония № 21 (синтетическая)",
    ),
    (
        T.penal_colony,
        "BY",
        "BY-HO",
        "Penal Colony No. 23 (synthetic)",
        "Исправительная колония № 23 (синтетическая)",
    ),
    (
        T.penal_colony,
        "BY",
        "BY-MA",
        "Women's Penal Colony No. 24 (synthetic)",
        "Женская исправительная колония № 24 (синтетическая)",
    ),
    (T.prison, "BY", "BY-MA", "Prison No. 19 (synthetic)", "Тюрьма № 19 (синтетическая)"),
    (
        T.open_facility,
        "BY",
        "BY-BR",
        "Open-type Correctional Centre No. 31 (synthetic)",
        "Исправительное учреждение открытого типа № 31 (синтетическое)",
    ),
    (
        T.psychiatric_hospital,
        "BY",
        "BY-MI",
        "Republican Psychiatric Hospital with Strict Supervision (synthetic)",
        "Республиканская психиатрическая больница со строгим наблюдением (синтетическая)",
    ),
    (
        T.pretrial_detention_centre,
        "RU",
        "RU-SMO",
        "Pre-trial Detention Centre No. 41 (synthetic)",
        "Следственный изолятор № 41 (синтетический)",
    ),
    (
        T.penal_colony,
        "RU",
        "RU-SMO",
        "Penal Colony No. 43 (synthetic)",
        "Исправительная колония № 43 (синтетическая)",
    ),
)

FACILITY_COLUMNS = (
    "id",
    "names",
    "country",
    "region",
    "type",
    "search_text",
    "recorded_by",
    "version",
    "created_at",
    "updated_at",
)
CUSTODY_COLUMNS = (
    "id",
    "case_file_id",
    "kind",
    "effective_date",
    "effective_precision",
    "facility_id",
    "from_facility_id",
    "details",
    "confidence",
    "note",
    "source_ids",
    "recorded_at",
    "recorded_by",
)
END_COLUMNS = (
    "id",
    "event_id",
    "case_file_id",
    "effective_date",
    "effective_precision",
    "confidence",
    "note",
    "source_ids",
    "recorded_at",
    "recorded_by",
)
REGISTERED = datetime(2020, 8, 1, 9, 0, tzinfo=UTC)
COLONIES = (T.penal_colony, T.penal_colony, T.penal_colony, T.prison, T.open_facility)


@dataclass
class CustodyData:
    facilities: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    ends: list[tuple[Any, ...]] = field(default_factory=list)

    def tables(self) -> Iterator[tuple[str, Sequence[str], list[tuple[Any, ...]]]]:
        """In foreign-key order, after the case files."""
        yield "facility", FACILITY_COLUMNS, self.facilities
        yield "custody_event", CUSTODY_COLUMNS, self.events
        yield "custody_period_end", END_COLUMNS, self.ends


class _Timelines:
    def __init__(self, seed: int) -> None:
        # Its own stream: the rest of the data set is the same with or without timelines.
        self.rng = random.Random(f"custody-{seed}")
        self.data = CustodyData()
        self.by_type: dict[tuple[str, FacilityType], list[uuid.UUID]] = defaultdict(list)

    def new_id(self, when: datetime) -> uuid.UUID:
        return deterministic_uuid7(int(when.timestamp() * 1000), self.rng)

    def moment(self, day: date) -> datetime:
        later = min(day + timedelta(days=self.rng.randrange(0, 10)), AS_OF)
        return datetime.combine(later, time(self.rng.randrange(7, 22), self.rng.randrange(60)), UTC)

    def register(self) -> None:
        for kind, country, region, latin, cyrillic in FACILITIES:
            names = [
                {"value": latin, "script": "Latn", "language": "en"},
                {"value": cyrillic, "script": "Cyrl", "language": "ru"},
            ]
            facility_id = self.new_id(REGISTERED)
            self.by_type[(country, kind)].append(facility_id)
            self.data.facilities.append(
                (
                    facility_id,
                    json.dumps(names),
                    country,
                    region,
                    kind.value,
                    search_text(names),
                    None,
                    1,
                    REGISTERED,
                    REGISTERED,
                )
            )

    def facility(self, country: str, kind: FacilityType) -> uuid.UUID:
        return self.rng.choice(self.by_type.get((country, kind)) or self.by_type[("BY", kind)])

    def entry(
        self,
        case_id: uuid.UUID,
        kind: str,
        day: date,
        *,
        facility: uuid.UUID | None = None,
        origin: uuid.UUID | None = None,
        details: dict[str, Any] | None = None,
    ) -> tuple[uuid.UUID, datetime]:
        recorded = self.moment(day)
        entry_id = self.new_id(recorded)
        confidence = self.rng.choices(["confirmed", "reported", "unconfirmed"], [80, 17, 3])[0]
        self.data.events.append(
            (
                entry_id,
                case_id,
                kind,
                day,
                "day",
                facility,
                origin,
                json.dumps(details or {}),
                confidence,
                None,
                [],
                recorded,
                None,
            )
        )
        return entry_id, recorded

    def end(self, case_id: uuid.UUID, entry_id: uuid.UUID, day: date) -> None:
        recorded = self.moment(day)
        self.data.ends.append(
            (
                self.new_id(recorded),
                entry_id,
                case_id,
                day,
                "day",
                "confirmed",
                None,
                [],
                recorded,
                None,
            )
        )

    def period(
        self,
        case_id: uuid.UUID,
        kind: str,
        first: date,
        last: date,
        *,
        open_: bool,
        length: tuple[int, int],
        details: dict[str, Any] | None = None,
    ) -> None:
        start = first + timedelta(days=self.rng.randrange((last - first).days + 1))
        entry_id, _ = self.entry(case_id, kind, start, details=details)
        finish = start + timedelta(days=self.rng.randrange(*length))
        if not open_ or finish <= last:
            self.end(case_id, entry_id, min(finish, last))

    def timeline(self, case_id: uuid.UUID, country: str, path: list[tuple[str, date]]) -> None:
        """One case file's timeline, from its status path (status, effective date)."""
        rng = self.rng
        if Status(path[0][0]) is not Status.detained:
            # Prosecuted at liberty: no place of detention to begin with.
            return
        detained = path[0][1]
        released = next((day for status, day in path if Status(status) in CLOSED), None)
        held_until = released or AS_OF
        remand = self.facility(country, T.pretrial_detention_centre)
        self.entry(case_id, "transfer", detained, facility=remand)
        here = remand
        verdict = next((day for status, day in path if status == Status.sentenced), None)
        if verdict is not None:
            moved = verdict + timedelta(days=rng.randrange(20, 120))
            if moved < held_until:
                colony = self.facility(country, rng.choice(COLONIES))
                self.entry(case_id, "transfer", moved, facility=colony, origin=here)
            release_on = verdict + timedelta(days=30 * rng.randrange(12, 120))
            self.entry(
                case_id,
                "expected_release",
                verdict,
                details={"release_on": release_on.strftime("%Y-%m")},
            )
        if held_until <= detained:
            return
        still_held = released is None
        if rng.random() < 0.08:
            self.period(
                case_id, "incommunicado", detained, held_until, open_=still_held, length=(20, 400)
            )
        if rng.random() < 0.04:
            self.period(case_id, "hunger_strike", detained, held_until, open_=False, length=(3, 40))
        if rng.random() < 0.06:
            days = rng.randrange(7, 16)
            self.period(
                case_id,
                "punishment_cell",
                detained,
                held_until,
                open_=False,
                length=(days, days + 1),
                details={"days": days},
            )
        if rng.random() < 0.03:
            charged = detained + timedelta(days=rng.randrange((held_until - detained).days + 1))
            self.entry(
                case_id,
                "new_charge",
                charged,
                details={"article": "BY-CC 411", "description": "disobeying the administration"},
            )


def generate(data: DataSet, seed: int) -> CustodyData:
    """The register, and a timeline for every generated case file."""
    timelines = _Timelines(seed)
    timelines.register()
    case_at, status_at, day_at = (
        EVENT_COLUMNS.index("case_file_id"),
        EVENT_COLUMNS.index("to_status"),
        EVENT_COLUMNS.index("effective_date"),
    )
    paths: dict[uuid.UUID, list[tuple[str, date]]] = defaultdict(list)
    for event in data.events:
        paths[event[case_at]].append((event[status_at], event[day_at]))
    id_at, country_at = CASE_COLUMNS.index("id"), CASE_COLUMNS.index("jurisdiction")
    for case in data.cases:
        timelines.timeline(case[id_at], case[country_at], paths[case[id_at]])
    return timelines.data

"""What the benchmark drives: each workload is an API request and, as its baseline, the
least SQL that gives the same guarantees (DESIGN §7), run raw on asyncpg in one
transaction: the statements that read or change the data, and for a write its audit
event under the chain's lock. Whatever the API adds is its cost: HTTP, the token, the
session check (answered from memory where it can be, app/identity/live.py), the policy,
and a read's audit event (appended in batches after the read, app/audit/read_events.py)."""

import hashlib
import json
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http import HTTPStatus
from types import MappingProxyType
from typing import Any

import asyncpg

from app.audit.chain import EventDraft, append_on
from app.bench import report_sql
from app.cases import repository
from app.core.ids import new_id
from app.persons.models import Person, PersonName
from app.persons.names import name_words, skeleton, typo_variants
from app.sync import repository as sync_repository

# Column lists come from the models, so that the baseline selects what the API selects.
CASE_COLUMNS = repository.CASE_LIST
PERSON_COLUMNS = ", ".join(f"person.{c.name}" for c in Person.__table__.c)  # type: ignore[attr-defined]
NAME_COLUMNS = ", ".join(c.name for c in PersonName.__table__.c)  # type: ignore[attr-defined]

SQL_CASE_LIST = (
    f"SELECT {CASE_COLUMNS} FROM case_file WHERE person_id IN "
    "(SELECT person.id FROM person WHERE person.citizenships @> $1::varchar(2)[]) "
    "AND status = $2 ORDER BY id LIMIT $3"
)


def sql_search(words: int) -> str:
    """Name search for a query of so many words, each given as the array of its keys."""
    each_word = " AND ".join(f"search_tokens && ${3 + i}::text[]" for i in range(words))
    return (
        f"SELECT {PERSON_COLUMNS}, m.score FROM person JOIN (SELECT person_id, "
        "CAST(max(word_similarity($1, search_key)) AS float) AS score FROM person_name "
        f"WHERE {each_word} GROUP BY person_id) AS m ON m.person_id = person.id "
        "WHERE person.merged_into IS NULL ORDER BY m.score DESC, person.id LIMIT $2"
    )


SQL_NAMES = (
    f"SELECT {NAME_COLUMNS} FROM person_name WHERE person_id = ANY($1::uuid[]) "
    "ORDER BY person_id, position"
)
SQL_INSERT_COLLECTIVE = (
    "INSERT INTO collective_event (id, title, kind, to_status, effective_date, "
    "effective_precision, destination_country, note, source_ids, case_file_count, "
    "recorded_at, recorded_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
)

PAGE_SIZE = 50
# Marks every row the benchmark writes, so that clean-up removes exactly those.
MARK = "habeas-bench"
SQL_REMOVE_MARKED = f"""
WITH removed AS (
    DELETE FROM status_event WHERE note = '{MARK}' RETURNING case_file_id
), touched AS (
    SELECT DISTINCT case_file_id FROM removed
), last AS (
    SELECT DISTINCT ON (e.case_file_id) e.case_file_id, e.effective_date, e.effective_precision
    FROM status_event e JOIN touched t ON t.case_file_id = e.case_file_id
    WHERE e.note IS DISTINCT FROM '{MARK}'
      AND NOT EXISTS (SELECT 1 FROM status_event_retraction r WHERE r.event_id = e.id)
    ORDER BY e.case_file_id, e.position DESC
)
UPDATE case_file c SET status_since = last.effective_date,
       status_since_precision = last.effective_precision
FROM last WHERE last.case_file_id = c.id;
DELETE FROM collective_event WHERE note = '{MARK}';
-- Events are never deleted but here: a path basis may keep the removed ones.
DELETE FROM report_basis;
"""
FOREIGN = ["LT", "PL", "UA", "RU", "LV", "DE"]
API = "/api/v1"


@dataclass
class Request:
    method: str
    path: str
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BenchIdentity:
    """The signed-in benchmark account: its token for the API, and its ids for the
    baseline, which runs the same per-request session check the API runs."""

    token: str
    user_id: uuid.UUID
    session_id: uuid.UUID


class Workload:
    """One measured operation. Workers get disjoint shares of the prepared records, so
    concurrent writes never wait on each other's row locks."""

    name: str = ""
    concurrency: int = 16
    # A timed workload (seconds per operation, lower is better) runs a fixed number of
    # operations one after another instead of a rate over a duration.
    timed: bool = False
    identity: BenchIdentity | None = None
    # A workload of partners: each worker one, with these scopes and agreement, its token
    # in `partner_token_list` (app/bench/identity.py makes them); and how many records one
    # request carries, for the records-per-second figure.
    partner_scopes: tuple[str, ...] = ()
    partner_agreement: Mapping[str, object] | None = None
    partner_token_list: Sequence[str] = ()
    partner_ids: Sequence[uuid.UUID] = ()
    # Each partner's client id and secret, for a new token when one expires.
    partner_credentials: Sequence[tuple[str, str]] = ()
    records_per_request: int = 1
    # A timed workload that takes minutes runs at most so many times (and no warm-up).
    max_repeats: int | None = None
    # A timed workload answered as a stream of lines (NDJSON), read in pieces, each line
    # given to `on_line`, asked again until `stream_done` (app/bench/runner.py).
    streamed: bool = False
    # A workload whose one request takes seconds is measured at least this long (even in
    # a quick run), so that its rate rests on several requests (the runner goes on anyway
    # until each worker has measured one).
    min_duration: float = 0.0

    def partner_headers(self, worker: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.partner_token_list[worker]}"}

    def replace_partner_token(self, worker: int, token: str) -> None:
        self.partner_token_list = [
            token if index == worker else old for index, old in enumerate(self.partner_token_list)
        ]

    def token_expired(self, worker: int) -> bool:
        """Whether a streamed workload's last stream ended because its token expired."""
        return False

    def progress(self, worker: int) -> int:
        """How far a streamed workload has got (records), for memory read along the way."""
        return 0

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.identity.token}"} if self.identity else {}

    async def record(
        self,
        connection: asyncpg.Connection,
        action: str,
        resource_id: uuid.UUID | None,
        *,
        changes: list[dict[str, Any]] | None = None,
        related: Sequence[uuid.UUID] = (),
    ) -> None:
        """A write's audit event, appended as the API appends it (last, under the chain
        head's lock, durably): the baseline does the work the API must do."""
        await append_on(
            connection,
            EventDraft(
                actor_type="user",
                actor_id=self.identity.user_id if self.identity else None,
                actor_role="coordinator",
                action=action,
                outcome="success",
                resource_type=action.split(".", 1)[0],
                resource_id=resource_id,
                related=list(related),
                request_id=str(new_id()),
                client_address="127.0.0.1",
                user_agent="habeas-bench",
                changes=changes,
            ),
            durable=changes is not None,
        )

    async def prepare(self, connection: asyncpg.Connection) -> None:
        """Pick the records to use; called before each phase (API, then raw)."""

    def request(self, worker: int, rng: random.Random) -> Request:
        raise NotImplementedError

    def on_response(self, worker: int, status: int, body: bytes) -> None:
        """Learn what the next request needs (e.g. the case file's new version)."""

    def start_stream(self, worker: int) -> None:
        """A streamed workload's operation begins."""

    def on_line(self, worker: int, line: bytes) -> None:
        """One line of a streamed answer."""

    def stream_done(self, worker: int) -> bool:
        return True

    def stream_ok(self, worker: int) -> bool:
        return True

    @property
    def detail(self) -> dict[str, int]:
        """What a timed run reports beside its times (e.g. the records it streamed)."""
        return {}

    async def raw(self, connection: asyncpg.Connection, worker: int, rng: random.Random) -> None:
        raise NotImplementedError

    async def clean_up(self, connection: asyncpg.Connection) -> None:
        """Undo what the workload wrote, so that every run starts from the seeded data."""

    expected_status: int = 200


class CaseRead(Workload):
    name = "case_read"

    async def prepare(self, connection: asyncpg.Connection) -> None:
        rows = await connection.fetch("SELECT id FROM case_file ORDER BY random() LIMIT 5000")
        self.ids = [row["id"] for row in rows]

    def request(self, worker: int, rng: random.Random) -> Request:
        return Request("GET", f"{API}/cases/{rng.choice(self.ids)}")

    async def raw(self, connection: asyncpg.Connection, worker: int, rng: random.Random) -> None:
        case_id = rng.choice(self.ids)
        async with connection.transaction():
            await connection.fetchrow(repository.SQL_CASE, case_id)


class CaseList(Workload):
    name = "case_list_filtered"

    def request(self, worker: int, rng: random.Random) -> Request:
        return Request(
            "GET",
            f"{API}/cases",
            params={
                "status": rng.choice(["sentenced", "detained"]),
                "citizenship": rng.choice(FOREIGN),
            },
        )

    async def raw(self, connection: asyncpg.Connection, worker: int, rng: random.Random) -> None:
        async with connection.transaction():
            await connection.fetch(
                SQL_CASE_LIST,
                [rng.choice(FOREIGN)],
                rng.choice(["sentenced", "detained"]),
                PAGE_SIZE + 1,
            )


class NameSearch(Workload):
    name = "name_search"

    async def prepare(self, connection: asyncpg.Connection) -> None:
        rows = await connection.fetch(
            "SELECT value FROM person_name WHERE script = 'Latn' ORDER BY random() LIMIT 500"
        )
        self.spellings = [row["value"] for row in rows]
        self.keys = [(skeleton(value), name_words(value)) for value in self.spellings]

    def request(self, worker: int, rng: random.Random) -> Request:
        return Request("GET", f"{API}/persons", params={"q": rng.choice(self.spellings)})

    async def raw(self, connection: asyncpg.Connection, worker: int, rng: random.Random) -> None:
        key, words = rng.choice(self.keys)
        async with connection.transaction():
            found = await connection.fetch(
                sql_search(len(words)), key, PAGE_SIZE + 1, *(list(keys) for keys in words)
            )
            await connection.fetch(SQL_NAMES, [row["id"] for row in found])


def sql_match_candidates(words: int) -> str:
    """The duplicate check's candidates for a name of so many words (each given as the
    array of its keys and the recorded keys like them): names that share keys with two of
    its words (app/persons/repository.match_candidates)."""
    pairs = [
        f"(search_tokens && ${1 + i}::text[] AND search_tokens && ${1 + j}::text[])"
        for i in range(words)
        for j in range(i + 1, words)
    ] or [f"search_tokens && ${1 + i}::text[]" for i in range(words)]
    return (
        f"SELECT {PERSON_COLUMNS} FROM person JOIN (SELECT DISTINCT person_id FROM person_name "
        f"WHERE {' OR '.join(pairs)}) AS m ON m.person_id = person.id "
        "WHERE person.merged_into IS NULL ORDER BY person.id LIMIT 200"
    )


# As app/persons/repository.similar_tokens: recorded word keys a typo away.
SQL_SIMILAR_TOKENS = "SELECT variant, token FROM name_token WHERE variant = ANY($1::text[])"


class DuplicateCheck(NameSearch):
    """POST /person-matches for a would-be person named by a recorded Latin spelling."""

    name = "duplicate_check"

    def request(self, worker: int, rng: random.Random) -> Request:
        body = {"names": [{"value": rng.choice(self.spellings)}], "birth_date": "1980"}
        return Request("POST", f"{API}/person-matches", body=body)

    async def raw(self, connection: asyncpg.Connection, worker: int, rng: random.Random) -> None:
        _key, words = rng.choice(self.keys)
        async with connection.transaction():
            variants = {k: typo_variants(k) for keys in words for k in keys}
            asked = sorted({v for found in variants.values() for v in found})
            tokens: dict[str, set[str]] = {}
            for row in await connection.fetch(SQL_SIMILAR_TOKENS, asked):
                tokens.setdefault(row["variant"], set()).add(row["token"])
            widened = [
                list(
                    dict.fromkeys(
                        [*keys, *(t for k in keys for v in variants[k] for t in tokens.get(v, ()))]
                    )
                )
                for keys in words
            ]
            found = await connection.fetch(sql_match_candidates(len(words)), *widened)
            await connection.fetch(SQL_NAMES, [row["id"] for row in found])


class DuplicateCheckAlone(DuplicateCheck):
    """The duplicate check one request at a time: what a caseworker waits at intake
    (the other workloads keep 16 requests in flight, and measure throughput)."""

    name = "duplicate_check_alone"
    concurrency = 1


SENTENCE_DETAILS = '{"sentence_type": "imprisonment", "term_months": 24}'


def _derived_columns(
    cases: Sequence[Any], *, today: date, now: datetime, event_ids: Sequence[uuid.UUID]
) -> list[list[Any]]:
    """The arguments of SQL_UPDATE_STATUS for case files just sentenced (as the cases
    service derives them), one list per column."""
    decisions = [
        json.dumps(
            [
                {
                    "event_id": str(event_id),
                    "decided_on": today.isoformat(),
                    **json.loads(SENTENCE_DETAILS),
                }
            ]
        )
        for event_id in event_ids
    ]
    return [
        [case["id"] for case in cases],
        ["sentenced"] * len(cases),
        [today] * len(cases),
        ["day"] * len(cases),
        ["reported"] * len(cases),
        [case["detained_on"] for case in cases],
        [case["detained_precision"] for case in cases],
        [True] * len(cases),
        ["imprisonment"] * len(cases),
        decisions,
        [0] * len(cases),
        [case["version"] + 1 for case in cases],
        [now] * len(cases),
    ]


def _sentenced_event(
    case_id: uuid.UUID,
    position: int,
    *,
    today: date,
    now: datetime,
    details: str,
    collective_id: uuid.UUID | None = None,
) -> tuple[Any, ...]:
    """A `sentenced` status event row, marked as the benchmark's, in column order."""
    return (
        new_id(),
        case_id,
        position,
        "sentenced",
        today,
        "day",
        now,
        None,
        None,
        "reported",
        MARK,
        details,
        [],
        collective_id,
    )


def _case_change(case_id: uuid.UUID, version: int) -> dict[str, Any]:
    return {
        "type": "case",
        "id": str(case_id),
        "fields": {
            "status": {"before": "sentenced", "after": "sentenced"},
            "version": {"before": version, "after": version + 1},
        },
    }


def _event_change(event_id: uuid.UUID, case_id: uuid.UUID) -> dict[str, Any]:
    return {
        "type": "status_event",
        "id": str(event_id),
        "fields": {
            "case_file_id": {"before": None, "after": str(case_id)},
            "to_status": {"before": None, "after": "sentenced"},
            "confidence": {"before": None, "after": "reported"},
            "details": {
                "before": None,
                "after": {"sentence_type": "imprisonment", "term_months": 24},
            },
            "note": {"before": None, "after": MARK},
        },
    }


def _shares(ids: Sequence[Any], workers: int) -> list[list[Any]]:
    return [list(ids[worker::workers]) for worker in range(workers)]


class StatusTransition(Workload):
    """sentenced → sentenced (a new term) may repeat forever, so the data never runs out."""

    name = "status_transition"
    expected_status = 201

    async def prepare(self, connection: asyncpg.Connection) -> None:
        rows = await connection.fetch(
            "SELECT id, version FROM case_file WHERE status = 'sentenced' "
            "ORDER BY random() LIMIT 4000"
        )
        self.versions = {row["id"]: row["version"] for row in rows}
        self.owned = _shares(list(self.versions), self.concurrency)
        self.pending: dict[int, uuid.UUID] = {}
        self.today = date.today()

    def request(self, worker: int, rng: random.Random) -> Request:
        case_id = rng.choice(self.owned[worker])
        self.pending[worker] = case_id
        return Request(
            "POST",
            f"{API}/cases/{case_id}/status-events",
            body={
                "to_status": "sentenced",
                "effective_date": self.today.isoformat(),
                "confidence": "reported",
                "details": {"sentence_type": "imprisonment", "term_months": 24},
                "note": MARK,
            },
            headers={"If-Match": f'"{self.versions[case_id]}"'},
        )

    async def clean_up(self, connection: asyncpg.Connection) -> None:
        await connection.execute(SQL_REMOVE_MARKED)

    def on_response(self, worker: int, status: int, body: bytes) -> None:
        if status == 201:
            self.versions[self.pending[worker]] = json.loads(body)["case_version"]

    async def raw(self, connection: asyncpg.Connection, worker: int, rng: random.Random) -> None:
        case_id = rng.choice(self.owned[worker])
        now = datetime.now(UTC)
        async with connection.transaction():
            case = await connection.fetchrow(repository.SQL_CASE_LOCKED, case_id)
            events = await connection.fetch(repository.SQL_EVENTS, [case_id])
            event = _sentenced_event(
                case_id, len(events), today=self.today, now=now, details=SENTENCE_DETAILS
            )
            event_id = event[0]
            await connection.execute(repository.SQL_INSERT_EVENT, *event)
            await connection.fetch(
                repository.SQL_UPDATE_STATUS,
                *_derived_columns([case], today=self.today, now=now, event_ids=[event_id]),
            )
            await self.record(
                connection,
                "case.transition",
                case_id,
                changes=[_case_change(case_id, case["version"]), _event_change(event_id, case_id)],
            )


class CollectiveTransition(Workload):
    name = "collective_transition_500"
    concurrency = 2
    expected_status = 201
    batch = 500

    async def prepare(self, connection: asyncpg.Connection) -> None:
        rows = await connection.fetch(
            "SELECT id FROM case_file WHERE status = 'sentenced' ORDER BY random() LIMIT 6000"
        )
        ids = [row["id"] for row in rows]
        blocks = [
            ids[start : start + self.batch]
            for start in range(0, len(ids) - self.batch + 1, self.batch)
        ]
        if len(blocks) < self.concurrency:
            raise RuntimeError("not enough sentenced case files for the collective workload")
        self.blocks = _shares(blocks, self.concurrency)
        self.today = date.today()

    async def clean_up(self, connection: asyncpg.Connection) -> None:
        await connection.execute(SQL_REMOVE_MARKED)

    def request(self, worker: int, rng: random.Random) -> Request:
        block = rng.choice(self.blocks[worker])
        return Request(
            "POST",
            f"{API}/collective-events",
            body={
                "title": "Benchmark batch",
                "kind": "other",
                "effective_date": self.today.isoformat(),
                "to_status": "sentenced",
                "confidence": "reported",
                "note": MARK,
                "details": json.loads(SENTENCE_DETAILS),
                "case_file_ids": [str(case_id) for case_id in block],
            },
        )

    async def raw(self, connection: asyncpg.Connection, worker: int, rng: random.Random) -> None:
        block = rng.choice(self.blocks[worker])
        now = datetime.now(UTC)
        collective_id = new_id()
        async with connection.transaction():
            await connection.execute(
                SQL_INSERT_COLLECTIVE,
                collective_id,
                "Benchmark batch",
                "other",
                "sentenced",
                self.today,
                "day",
                None,
                MARK,
                [],
                len(block),
                now,
                None,
            )
            cases = await connection.fetch(repository.SQL_CASES_LOCKED, block)
            events = await connection.fetch(repository.SQL_EVENTS, block)
            counts: dict[uuid.UUID, int] = {}
            for event in events:
                counts[event["case_file_id"]] = counts.get(event["case_file_id"], 0) + 1
            rows = [
                _sentenced_event(
                    case["id"],
                    counts.get(case["id"], 0),
                    today=self.today,
                    now=now,
                    details=SENTENCE_DETAILS,
                    collective_id=collective_id,
                )
                for case in cases
            ]
            event_ids = [row[0] for row in rows]
            await connection.executemany(repository.SQL_INSERT_EVENT, rows)
            await connection.fetch(
                repository.SQL_UPDATE_STATUS,
                *_derived_columns(cases, today=self.today, now=now, event_ids=event_ids),
            )
            await self.record(
                connection,
                "collective.create",
                collective_id,
                changes=[_case_change(case["id"], case["version"]) for case in cases],
                related=[case["id"] for case in cases],
            )


# The report the benchmark generates: September 2025, as the example.
REPORT_AS_OF = date(2025, 9, 30)
REPORT_PERIOD = (date(2025, 9, 1), date(2025, 9, 30))
REPORT_BASELINE = date(2020, 1, 1)
# The API's default knowledge time is the generation time less this settling interval.
REPORT_SETTLE_SECONDS = 5


class StatusReport(Workload):
    """`POST /api/v1/reports` (the as-of engine, the snapshot and its audit record) against
    the figures computed by the hand-written statement of app.bench.report_sql."""

    name = "status_report"
    concurrency = 1
    timed = True
    expected_status = 201

    def request(self, worker: int, rng: random.Random) -> Request:
        return Request(
            "POST",
            f"{API}/reports",
            body={
                "kind": "status",
                "as_of": REPORT_AS_OF.isoformat(),
                "period": {
                    "from": REPORT_PERIOD[0].isoformat(),
                    "to": REPORT_PERIOD[1].isoformat(),
                },
                "as_known_at": None,
                "baseline": REPORT_BASELINE.isoformat(),
                "jurisdiction": "BY",
            },
        )

    async def raw(self, connection: asyncpg.Connection, worker: int, rng: random.Random) -> None:
        await report_sql.status_figures(
            connection,
            as_of=REPORT_AS_OF,
            period=REPORT_PERIOD,
            as_known_at=datetime.now(UTC) - timedelta(seconds=REPORT_SETTLE_SECONDS),
            baseline=REPORT_BASELINE,
            jurisdiction="BY",
        )


# Partners' sync (app/sync) ----------------------------------------------------------------

FEED_PAGE = 500
SHARES_BY: Mapping[str, object] = MappingProxyType({"jurisdiction": "BY", "recognised_only": False})
# What a partner whose agreement shares every normal case file of BY may read (as
# app/access/visibility.py puts it in SQL: each row's person checked for a
# high-confidentiality case file by an index probe, not against the set of them all).
_READABLE_CASE = (
    "c.jurisdiction = 'BY' AND c.confidentiality = 'normal' AND NOT EXISTS"
    " (SELECT 1 FROM case_file h WHERE h.person_id = c.person_id"
    " AND h.confidentiality = 'high')"
)
SQL_FEED_PERSONS = (
    f"SELECT {PERSON_COLUMNS} FROM person WHERE person.id > $1 AND person.merged_into IS NULL"
    # (as an aggregate, run per person: an EXISTS becomes a join that reads the case files
    # from the first, however deep the page)
    f" AND (SELECT bool_or({_READABLE_CASE}) FROM case_file c WHERE c.person_id = person.id)"
    " ORDER BY person.id LIMIT $2"
)
SQL_FEED_NAMES = f"SELECT {NAME_COLUMNS} FROM person_name WHERE person_id = ANY($1::uuid[])"
SQL_FEED_DECISIONS = (
    "SELECT d.*, array(SELECT v.case_file_id FROM recognition_coverage v"
    " WHERE v.decision_id = d.id ORDER BY v.case_file_id) AS covers"
    " FROM recognition_decision d WHERE d.person_id = ANY($1::uuid[])"
)
SQL_FEED_CASES = (
    f"SELECT {CASE_COLUMNS} FROM case_file c WHERE c.id > $1 AND {_READABLE_CASE}"
    " ORDER BY c.id LIMIT $2"
)
SQL_FEED_CUSTODY = (
    "SELECT e.*, r.reason AS retraction_reason, r.recorded_at AS retracted_at,"
    " x.effective_date AS ended_on, x.confidence AS end_confidence"
    " FROM custody_event e"
    " LEFT JOIN custody_event_retraction r ON r.event_id = e.id"
    " LEFT JOIN custody_period_end x ON x.event_id = e.id"
    " WHERE e.case_file_id = ANY($1::uuid[])"
)


def _digests(rows: Sequence[Any]) -> list[bytes]:
    return [hashlib.sha256(repr(tuple(row)).encode()).digest() for row in rows]


class SyncFeed(Workload):
    """Pages of 500 of a partner's change feed: each worker a partner of its own walking its
    starting snapshot (every person, then every case file its agreement shares, with their
    recognition decisions, paths and custody timelines), from the start again once caught
    up. The raw side reads the same records by the same keyset, checks the partner and
    keeps what was handed over, in one transaction per page."""

    name = "sync_feed"
    concurrency = 4
    partner_scopes = ("sync:read",)
    partner_agreement = SHARES_BY
    records_per_request = FEED_PAGE

    async def prepare(self, connection: asyncpg.Connection) -> None:
        self.cursors: dict[int, str | None] = {}
        self.positions: dict[int, tuple[str, uuid.UUID]] = {}

    def request(self, worker: int, rng: random.Random) -> Request:
        params = {"limit": str(FEED_PAGE)}
        cursor = self.cursors.get(worker)
        if cursor is not None:
            params["cursor"] = cursor
        return Request(
            "GET", f"{API}/sync/changes", params=params, headers=self.partner_headers(worker)
        )

    def on_response(self, worker: int, status: int, body: bytes) -> None:
        if status == 200:
            page = json.loads(body)
            self.cursors[worker] = None if page["caught_up"] else page["next"]

    async def raw(self, connection: asyncpg.Connection, worker: int, rng: random.Random) -> None:
        stage, after = self.positions.get(worker, ("person", uuid.UUID(int=0)))
        partner_id = self.partner_ids[worker]
        async with connection.transaction():
            await connection.fetchrow(sync_repository.SQL_HEAD)
            if stage == "person":
                rows = await connection.fetch(SQL_FEED_PERSONS, after, FEED_PAGE)
                ids = [row["id"] for row in rows]
                await connection.fetch(SQL_FEED_NAMES, ids)
                await connection.fetch(SQL_FEED_DECISIONS, ids)
            else:
                rows = await connection.fetch(SQL_FEED_CASES, after, FEED_PAGE)
                ids = [row["id"] for row in rows]
                await connection.fetch(repository.SQL_EVENTS, ids)
                await connection.fetch(SQL_FEED_CUSTODY, ids)
            kinds = [stage] * len(ids)
            # (what the partner holds is not read in a snapshot, which hands over all)
            await connection.execute(
                sync_repository.SQL_DELIVER,
                partner_id,
                kinds,
                ids,
                _digests(rows),
                [0] * len(ids),
                [True] * len(ids),
            )
        if len(ids) == FEED_PAGE:
            self.positions[worker] = (stage, ids[-1])
        else:
            following = "case" if stage == "person" else "person"
            self.positions[worker] = (following, uuid.UUID(int=0))


# How each record's line of the stream starts (FeedItem's first field).
ITEM_LINE = b'{"seq":'


class SyncCatchUp(SyncFeed):
    """A new partner's whole catch-up as one NDJSON stream (`Accept: application/x-ndjson`,
    pages of 500, reconnecting from the last position line when a stream ends before it is
    caught up), timed, with the server's memory before, at its peak and after: the catch-up
    must not grow the server. Raw: the same pages by `sync_feed`'s SQL, one transaction
    each, persons then case files."""

    name = "sync_catch_up"
    concurrency = 1
    timed = True
    streamed = True
    # A whole catch-up is minutes at 100k: one is the figure.
    max_repeats = 1

    # Stop once so many records are read (0: when caught up): `--catch-up-records`, for a
    # catch-up of 1M records out of a larger starting snapshot.
    record_limit = 0

    def start_stream(self, worker: int) -> None:
        # A timed run calls no `prepare`: each catch-up starts here, from nothing.
        self.cursors = {worker: None}
        self.records = 0
        self.problems = 0
        self.renewals = 0
        self.expired = False
        self.caught_up = False

    def request(self, worker: int, rng: random.Random) -> Request:
        request = super().request(worker, rng)
        return Request(
            request.method,
            request.path,
            params=request.params,
            headers={**request.headers, "Accept": "application/x-ndjson"},
        )

    def on_line(self, worker: int, line: bytes) -> None:
        if line.startswith(ITEM_LINE):
            # A record: kept as it came, as a partner's copy would keep it (parsing each
            # one here took the cores the server is measured on).
            self.records += 1
            return
        value = json.loads(line)
        if "problem" in value:
            # A catch-up longer than a token's ten minutes: the partner takes a new token
            # and goes on from its last position, as `habeas sync pull` does. Any other
            # problem makes the run an error, not a figure.
            if value["problem"].get("status") == HTTPStatus.UNAUTHORIZED:
                self.expired = True
                self.renewals += 1
            else:
                self.problems += 1
        else:
            self.cursors[worker] = value["next"]
            self.caught_up = bool(value["caught_up"])
            if self.caught_up or self._enough:
                self.records_caught_up = self.records

    @property
    def _enough(self) -> bool:
        return 0 < self.record_limit <= self.records

    def token_expired(self, worker: int) -> bool:
        expired, self.expired = self.expired, False
        return expired

    def progress(self, worker: int) -> int:
        return self.records

    def stream_done(self, worker: int) -> bool:
        return self.caught_up or self._enough or self.problems > 0

    def stream_ok(self, worker: int) -> bool:
        return (self.caught_up or self._enough) and self.problems == 0

    @property
    def detail(self) -> dict[str, int]:
        return {
            "records": getattr(self, "records_caught_up", 0),
            "token_renewals": getattr(self, "renewals", 0),
        }

    async def raw(self, connection: asyncpg.Connection, worker: int, rng: random.Random) -> None:
        self.positions = {}
        read = 0
        while True:
            await super().raw(connection, worker, rng)
            read += FEED_PAGE
            if self.positions[worker] == ("person", uuid.UUID(int=0)):
                return
            if 0 < self.record_limit <= read:
                return


class SyncBatch(Workload):
    """Batches of 500 operations a partner pushes (`POST /sync/batches`): a new sentence on
    each of 500 case files it shares, as of the versions it last saw, applied in one
    transaction with one audit event. The raw side does what those 500 transitions need
    in one transaction: lock each case file, read its path, insert the event, update the
    case file, then append the audit event and keep the idempotency key."""

    name = "sync_batch"
    concurrency = 2
    # A batch takes seconds (2.5–5 s each on a quiet machine, twice that beside a test
    # run): a window in which several start and finish, for a rate worth reading.
    min_duration = 15.0
    partner_scopes = ("sync:read", "sync:write")
    partner_agreement = MappingProxyType(
        {**SHARES_BY, "read_write": True, "max_tier": "restricted"}
    )
    records_per_request = FEED_PAGE

    async def prepare(self, connection: asyncpg.Connection) -> None:
        rows = await connection.fetch(
            "SELECT id, version FROM case_file c WHERE status = 'sentenced' AND "
            + _READABLE_CASE
            + f" ORDER BY random() LIMIT {FEED_PAGE * self.concurrency * 2}"
        )
        self.versions = {row["id"]: row["version"] for row in rows}
        # Each worker (a partner) its own case files, in two batches it alternates.
        self.owned = [
            [ids[:FEED_PAGE], ids[FEED_PAGE:]]
            for ids in _shares(list(self.versions), self.concurrency)
        ]
        self.sent: dict[int, list[uuid.UUID]] = {}
        self.turn = [0] * self.concurrency
        self.today = date.today()

    def _next_batch(self, worker: int) -> list[uuid.UUID]:
        self.turn[worker] ^= 1
        return self.owned[worker][self.turn[worker]]

    def request(self, worker: int, rng: random.Random) -> Request:
        case_ids = self._next_batch(worker)
        self.sent[worker] = case_ids
        operations = [
            {
                "op": "event.append",
                "case": {"id": str(case_id)},
                "version": self.versions[case_id],
                "event": {
                    "to_status": "sentenced",
                    "effective_date": self.today.isoformat(),
                    "confidence": "reported",
                    "details": {"sentence_type": "imprisonment", "term_months": 24},
                    "note": MARK,
                },
            }
            for case_id in case_ids
        ]
        return Request(
            "POST",
            f"{API}/sync/batches",
            body={"operations": operations},
            headers={**self.partner_headers(worker), "Idempotency-Key": str(new_id())},
        )

    def on_response(self, worker: int, status: int, body: bytes) -> None:
        if status == 200:
            items = json.loads(body)["items"]
            for case_id, item in zip(self.sent[worker], items, strict=True):
                self.versions[case_id] = item["version"]

    async def clean_up(self, connection: asyncpg.Connection) -> None:
        await connection.execute(SQL_REMOVE_MARKED)

    async def raw(self, connection: asyncpg.Connection, worker: int, rng: random.Random) -> None:
        case_ids = self._next_batch(worker)
        now = datetime.now(UTC)
        changes: list[dict[str, Any]] = []
        async with connection.transaction():
            await connection.execute(
                "INSERT INTO idempotency_record (id, scope, key, fingerprint, created_at)"
                " VALUES ($1, 'bench', $2, 'bench', now())",
                new_id(),
                str(new_id()),
            )
            for case_id in case_ids:
                case = await connection.fetchrow(repository.SQL_CASE_LOCKED, case_id)
                events = await connection.fetch(repository.SQL_EVENTS, [case_id])
                event = _sentenced_event(
                    case_id, len(events), today=self.today, now=now, details=SENTENCE_DETAILS
                )
                await connection.execute(repository.SQL_INSERT_EVENT, *event)
                await connection.fetch(
                    repository.SQL_UPDATE_STATUS,
                    *_derived_columns([case], today=self.today, now=now, event_ids=[event[0]]),
                )
                changes += [
                    _case_change(case_id, case["version"]),
                    _event_change(event[0], case_id),
                ]
            await self.record(connection, "sync.batch", None, changes=changes)


ALL_WORKLOADS: dict[str, type[Workload]] = {
    workload.name: workload
    for workload in (
        CaseRead,
        CaseList,
        NameSearch,
        DuplicateCheck,
        DuplicateCheckAlone,
        StatusTransition,
        CollectiveTransition,
        StatusReport,
        SyncFeed,
        SyncCatchUp,
        SyncBatch,
    )
}

"""Bulk synthetic data for the report benchmark: about ten status events a person, made
by PostgreSQL itself (`INSERT … SELECT` over `generate_series`), since the Python seed
(`habeas seed`, about two events a person) takes minutes at 1M persons.

Every case file follows one of the path templates below, each a walk allowed by the
transition table (app.cases.statuses.TRANSITIONS), cut at the data set's day; the case
file's derived columns are computed from its effective events, as the cases service
derives them; persons' and case files' facts are known from their creation
(`facts_since`), as migration 0015 sets them for existing rows. Pseudo-random choices are
hashes of the row numbers, so the same persons count gives the same data. Ids are
UUIDv7-shaped: the creation time in milliseconds, then a table code and the row number, so
they are unique without a generator.
"""

import random
import re
import time
from dataclasses import dataclass

import asyncpg

from app.core.clock import utcnow
from app.core.embedded import asyncpg_connect_kwargs
from app.core.ids import new_id
from app.persons.models import SQL_FILL_NAME_TOKENS
from app.persons.names import skeleton, tokens
from app.reports import asof
from app.seed import vocabulary as words
from app.seed.generator import AS_OF, FIRST_DETENTION

# (template, weight, steps): a step is (status, day offset, details, flag). Offsets are
# days from the case file's first event, stretched per case file by 0.7–1.3; a collective
# template's are days before the collective pardon (0 is its day). Flags: `wrong` (a
# sentence later superseded by the next step), `copy` (entered twice, the copy
# retracted), `claim` (an unconfirmed release), `reported` (lower confidence),
# `collective` (part of the collective pardon and expulsion).
Step = tuple[str, int, str, str]
TEMPLATES: list[tuple[int, list[Step]]] = [
    # Held: detained, sentenced, the appeal upholds the sentence.
    (
        14,
        [
            ("detained", 0, "{}", ""),
            ("sentenced", 120, '{"sentence_type": "imprisonment", "term_months": 60}', ""),
            ("sentenced", 300, '{"sentence_type": "imprisonment", "term_months": 60}', ""),
        ],
    ),
    # Sentence served.
    (
        12,
        [
            ("detained", 0, "{}", ""),
            ("sentenced", 150, '{"sentence_type": "imprisonment", "term_months": 24}', ""),
            ("released", 880, '{"release_reason": "sentence_served"}', ""),
        ],
    ),
    # Charges dropped.
    (6, [("detained", 0, "{}", ""), ("released", 40, '{"release_reason": "charges_dropped"}', "")]),
    # A long path: released pending trial, detained again, two sentences, parole, expelled.
    (
        8,
        [
            ("detained", 0, "{}", ""),
            ("charged", 30, '{"situation": "released_pending_trial"}', ""),
            ("detained", 200, "{}", ""),
            ("sentenced", 330, '{"sentence_type": "imprisonment", "term_months": 36}', ""),
            ("sentenced", 500, '{"sentence_type": "imprisonment", "term_months": 48}', ""),
            ("released", 1400, '{"release_reason": "parole"}', ""),
            ("deported", 1402, '{"destination_country": "LT"}', ""),
        ],
    ),
    # Pardoned.
    (
        6,
        [
            ("detained", 0, "{}", ""),
            ("sentenced", 100, '{"sentence_type": "imprisonment", "term_months": 36}', ""),
            ("pardoned", 500, "{}", "reported"),
        ],
    ),
    # Died in custody.
    (
        1,
        [
            ("detained", 0, "{}", ""),
            ("sentenced", 150, '{"sentence_type": "imprisonment", "term_months": 120}', ""),
            ("died_in_custody", 900, "{}", ""),
        ],
    ),
    # Abroad, sentenced in absentia.
    (
        5,
        [
            ("charged", 0, '{"situation": "wanted"}', ""),
            (
                "sentenced",
                200,
                '{"sentence_type": "imprisonment", "term_months": 60, "in_absentia": true}',
                "",
            ),
        ],
    ),
    # Restriction of freedom in an open facility, served.
    (
        5,
        [
            ("detained", 0, "{}", ""),
            (
                "sentenced",
                90,
                '{"sentence_type": "restriction_of_freedom_open_facility", "term_months": 36}',
                "",
            ),
            ("released", 700, '{"release_reason": "sentence_served"}', ""),
        ],
    ),
    # Deported straight from custody.
    (2, [("detained", 0, "{}", ""), ("deported", 60, '{"destination_country": "PL"}', "")]),
    # Pardoned and expelled with a collective event.
    (
        8,
        [
            ("detained", -700, "{}", ""),
            ("sentenced", -450, '{"sentence_type": "imprisonment", "term_months": 72}', ""),
            ("sentenced", -200, '{"sentence_type": "imprisonment", "term_months": 72}', ""),
            ("pardoned", 0, "{}", "collective"),
            ("deported", 0, "{}", "collective"),
        ],
    ),
    # The verdict quashed, acquitted at the retrial.
    (
        3,
        [
            ("detained", 0, "{}", ""),
            ("sentenced", 100, '{"sentence_type": "imprisonment", "term_months": 24}', ""),
            ("detained", 250, "{}", ""),
            ("released", 400, '{"release_reason": "acquitted"}', ""),
        ],
    ),
    # A suspended sentence: prosecuted at liberty.
    (
        4,
        [
            ("charged", 0, '{"situation": "travel_ban"}', ""),
            ("sentenced", 150, '{"sentence_type": "suspended", "term_months": 24}', ""),
        ],
    ),
    # A misreported term, superseded by the correction on the same day.
    (
        6,
        [
            ("detained", 0, "{}", ""),
            ("sentenced", 140, '{"sentence_type": "imprisonment", "term_months": 96}', "wrong"),
            ("sentenced", 140, '{"sentence_type": "imprisonment", "term_months": 84}', ""),
        ],
    ),
    # An unconfirmed release (a claim: pending, confirmed or rejected).
    (
        6,
        [
            ("detained", 0, "{}", ""),
            ("sentenced", 120, '{"sentence_type": "imprisonment", "term_months": 36}', ""),
            ("released", 600, '{"release_reason": "other"}', "claim"),
        ],
    ),
    # The last event entered twice, the copy retracted.
    (
        3,
        [
            ("detained", 0, "{}", ""),
            ("sentenced", 100, '{"sentence_type": "imprisonment", "term_months": 48}', ""),
            ("sentenced", 100, '{"sentence_type": "imprisonment", "term_months": 48}', "copy"),
        ],
    ),
    # Compulsory treatment.
    (
        1,
        [
            ("detained", 0, "{}", ""),
            ("sentenced", 200, '{"sentence_type": "compulsory_treatment"}', ""),
        ],
    ),
]
DESTINATIONS = ["LT", "PL", "LT", "LV", "DE", "LT"]
COLLECTIVES = 24
SOURCES = 200
NAME_POOL = 5000
# Ids carry a table code (1 source, 2 collective event, 3 person, 4 name, 5 case file,
# 6 status event, 7 retraction, 8 claim resolution, 9 recognition decision, 10 charge);
# the statements below write them as literals, with COLLECTIVES and SOURCES.
DEPRIVATIONS = ["pretrial_custody"] * 6 + ["imprisonment"] * 3 + ["house_arrest", "psychiatric"]
CUSTODIAL = ["imprisonment", "restriction_of_freedom_open_facility", "compulsory_treatment"]

FUNCTIONS = """
CREATE FUNCTION pg_temp.pick(n bigint, salt integer, m integer) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN ((hashint8extended(n, salt) & 1073741823) % m)::integer;
CREATE FUNCTION pg_temp.bulk_id(at_time timestamptz, code integer, n bigint) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN (lpad(to_hex((extract(epoch FROM at_time) * 1000)::bigint), 12, '0') || '7'
        || lpad(to_hex(code), 3, '0') || '8' || lpad(to_hex(n), 15, '0'))::uuid;
"""

SQL_STEPS = """
CREATE TEMP TABLE bulk_step (
    template integer, step integer, to_status text, offset_days integer, details jsonb,
    flag text, steps integer
) ON COMMIT DROP;
INSERT INTO bulk_step
SELECT s.template, s.step, s.to_status, s.offset_days, s.details::jsonb, s.flag,
       count(*) OVER (PARTITION BY s.template)
FROM unnest($1::integer[], $2::integer[], $3::text[], $4::integer[], $5::text[], $6::text[])
     AS s(template, step, to_status, offset_days, details, flag);
CREATE TEMP TABLE bulk_template_pick (slot integer, template integer) ON COMMIT DROP;
INSERT INTO bulk_template_pick SELECT ordinality - 1, template
FROM unnest($7::integer[]) WITH ORDINALITY AS w(template);
"""

SQL_SOURCES = """
INSERT INTO source (id, publisher, title, url, published_on, reliability, credibility,
                    is_public, version, created_at)
SELECT pg_temp.bulk_id(d::timestamptz, 1, n), 'Bench publisher ' || (n % 7),
       'Report ' || n, 'https://sources.example/bulk/' || n, d, 'B', 2, true, 1, d
FROM generate_series(1, 200) n,
     LATERAL (SELECT $1::date + pg_temp.pick(n, 1, $2) AS d) day
"""

SQL_COLLECTIVES = """
CREATE TEMP TABLE bulk_collective ON COMMIT DROP AS
SELECT n - 1 AS slot, pg_temp.bulk_id(d::timestamptz, 2, n) AS id, d AS day,
       ($3::text[])[1 + pg_temp.pick(n, 2, cardinality($3::text[]))] AS destination
FROM generate_series(1, 24) n,
     LATERAL (SELECT $1::date + ((n - 1) * $2 / 24)::integer AS d) day;
INSERT INTO collective_event (id, title, kind, to_status, effective_date,
    effective_precision, destination_country, expelled_to, source_ids, case_file_count,
    recorded_at)
SELECT id, 'Pardon and expulsion to ' || destination, 'pardon', 'pardoned', day, 'day',
       NULL, destination, '{}', 0, day + interval '12 hours'
FROM bulk_collective;
"""

# One row a person: its first detention and how many case files it has.
SQL_PERSONS = """
CREATE TEMP TABLE bulk_person ON COMMIT DROP AS
SELECT n, pg_temp.bulk_id(created, 3, n) AS id, first_day, created,
       2 + pg_temp.pick(n, 3, 5) AS case_count
FROM generate_series(1, $1::bigint) n,
     LATERAL (SELECT $2::date + pg_temp.pick(n, 4, $3 * 2 / 3) AS first_day) f,
     LATERAL (SELECT (first_day + 5)::timestamptz + interval '10 hours' AS created) c;
INSERT INTO person (id, birth_date, birth_date_precision, gender, citizenships, region,
    occupation, publish_consent, recognition_status, version, created_at, updated_at,
    facts_since)
SELECT p.id, make_date(1945 + pg_temp.pick(n, 5, 60), 1 + pg_temp.pick(n, 6, 12),
                       1 + pg_temp.pick(n, 7, 28)),
       'day', CASE WHEN pg_temp.pick(n, 8, 100) < 32 THEN 'female' ELSE 'male' END,
       CASE WHEN pg_temp.pick(n, 9, 100) >= 3 THEN ARRAY['BY']::varchar(2)[]
            WHEN pg_temp.pick(n, 10, 10) < 7
                 THEN ARRAY[($4::text[])[1 + pg_temp.pick(n, 11, cardinality($4::text[]))]]
            ELSE ARRAY['BY', ($4::text[])[1 + pg_temp.pick(n, 11, cardinality($4::text[]))]]
       END::varchar(2)[],
       ($5::text[])[1 + pg_temp.pick(n, 12, cardinality($5::text[]))],
       'engineer', pg_temp.pick(n, 13, 100) < 95, 'not_assessed', 1, created, created,
       created
FROM bulk_person p;
CREATE TEMP TABLE bulk_name ON COMMIT DROP AS
SELECT i, cyrillic, latin, cyrillic_key, latin_key, cyrillic_tokens, latin_tokens
FROM unnest($6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[])
    WITH ORDINALITY AS pool(cyrillic, latin, cyrillic_key, latin_key, cyrillic_tokens,
                            latin_tokens, i);
INSERT INTO person_name (id, person_id, position, value, script, language, kind, is_public,
                         search_key, search_tokens)
SELECT pg_temp.bulk_id(p.created, 4, p.n * 2 + k), p.id, k,
       CASE k WHEN 0 THEN pool.cyrillic ELSE pool.latin END,
       CASE k WHEN 0 THEN 'Cyrl' ELSE 'Latn' END, CASE k WHEN 0 THEN 'be' ELSE 'en' END,
       CASE k WHEN 0 THEN 'legal' ELSE 'transliteration' END, true,
       CASE k WHEN 0 THEN pool.cyrillic_key ELSE pool.latin_key END,
       string_to_array(CASE k WHEN 0 THEN pool.cyrillic_tokens ELSE pool.latin_tokens END, ' ')
FROM bulk_person p CROSS JOIN generate_series(0, 1) k
-- a join, not a subscript: subscripting a text[] walks it from the start every time
JOIN bulk_name pool ON pool.i = 1 + pg_temp.pick(p.n, 14, $12);
"""

# One row a case file: its template and the day its path is anchored on.
SQL_CASES = """
CREATE TEMP TABLE bulk_template ON COMMIT DROP AS
SELECT template, bool_or(flag = 'collective') AS collective,
       min(offset_days) FILTER (WHERE step = 0) AS first_offset
FROM bulk_step GROUP BY template;
CREATE TEMP TABLE bulk_case ON COMMIT DROP AS
SELECT c.n, pg_temp.bulk_id(c.created, 5, c.n) AS id, c.person_id, c.template, c.anchor,
       c.stretch, c.collective_id, c.destination, c.created
FROM (
    SELECT slots.n, slots.person_id, t.template, slots.stretch,
           coll.id AS collective_id, coll.destination,
           coalesce(coll.day, slots.own_day) AS anchor,
           (coalesce(coll.day, slots.own_day) + (t.first_offset * slots.stretch)::integer)
               ::timestamptz + interval '6 hours' AS created
    FROM (
        SELECT p.n * 8 + j AS n, p.id AS person_id,
               pg_temp.pick(p.n * 8 + j, 17, $2) AS slot,
               0.7 + pg_temp.pick(p.n * 8 + j, 15, 61) / 100.0 AS stretch,
               pg_temp.pick(p.n * 8 + j, 16, 24) AS collective_slot,
               p.first_day + j * (120 + pg_temp.pick(p.n * 8 + j, 18, 300)) AS own_day
        FROM bulk_person p CROSS JOIN LATERAL generate_series(0, p.case_count - 1) j
    ) slots
    JOIN bulk_template_pick pick ON pick.slot = slots.slot
    JOIN bulk_template t ON t.template = pick.template
    LEFT JOIN bulk_collective coll ON t.collective AND coll.slot = slots.collective_slot
) c
WHERE c.created::date <= $1::date;
"""

# Every event, with what decides the case file's derived columns.
SQL_EVENTS = """
CREATE TEMP TABLE bulk_event ON COMMIT DROP AS
SELECT c.n * 16 + s.step AS n, pg_temp.bulk_id(recorded, 6, c.n * 16 + s.step) AS id,
       c.id AS case_file_id, c.person_id, s.step AS position, s.to_status, day, recorded,
       CASE WHEN s.flag = 'claim' THEN 'unconfirmed'
            WHEN s.flag = 'reported' OR pg_temp.pick(c.n * 16 + s.step, 19, 100) < 5
                 THEN 'reported'
            ELSE 'confirmed' END AS confidence,
       CASE WHEN s.to_status = 'deported' AND c.destination IS NOT NULL
            THEN jsonb_build_object('destination_country', c.destination)
            ELSE s.details END AS details,
       CASE WHEN s.flag = 'collective' THEN c.collective_id END AS collective_event_id,
       s.flag, outcome.claim_outcome,
       s.flag NOT IN ('wrong', 'copy') AND (s.flag <> 'claim' OR outcome.claim_outcome = 0)
           AS effective
FROM bulk_case c
JOIN bulk_step s ON s.template = c.template,
     LATERAL (SELECT c.anchor + (s.offset_days * c.stretch)::integer AS day) d,
     LATERAL (SELECT day::timestamptz + make_interval(
                  days => pg_temp.pick(c.n * 16 + s.step, 21, 20),
                  hours => 8 + pg_temp.pick(c.n * 16 + s.step, 22, 12)) AS recorded) r,
     LATERAL (SELECT CASE WHEN s.flag = 'claim' THEN pg_temp.pick(c.n, 20, 4) END
                  AS claim_outcome) outcome
WHERE day <= $1::date;
CREATE TEMP TABLE bulk_case_state ON COMMIT DROP AS
SELECT case_file_id, count(*) AS count, max(recorded) AS last_recorded, min(day) AS first_day,
       count(*) FILTER (WHERE flag = 'claim' AND claim_outcome >= 2) AS pending
FROM bulk_event GROUP BY case_file_id;
CREATE TEMP TABLE bulk_case_last ON COMMIT DROP AS
SELECT DISTINCT ON (case_file_id) case_file_id, to_status, day, confidence, details
FROM bulk_event WHERE effective ORDER BY case_file_id, position DESC;
CREATE TEMP TABLE bulk_case_sentence ON COMMIT DROP AS
SELECT DISTINCT ON (case_file_id) case_file_id, details
FROM bulk_event WHERE effective AND to_status = 'sentenced'
ORDER BY case_file_id, position DESC;
"""

SQL_CASE_ROWS = """
INSERT INTO case_file (id, person_id, reference, jurisdiction, deprivation_type,
    confidentiality, charges, status, status_since, status_since_precision,
    status_confidence, detained_on, detained_precision, in_custody, sentence_type,
    pending_claims, recognition_status, version, created_at, updated_at, facts_since)
SELECT c.id, c.person_id, 'HB-B-' || c.n, 'BY',
       ($1::text[])[1 + pg_temp.pick(c.n, 23, cardinality($1::text[]))],
       CASE WHEN pg_temp.pick(c.n, 24, 100) < 2 THEN 'high' ELSE 'normal' END,
       jsonb_build_array(jsonb_build_object(
           'charge_id', pg_temp.bulk_id(c.created, 10, c.n)::text, 'code', 'BY-CC',
           'article', ($2::text[])[1 + pg_temp.pick(c.n, 25, cardinality($2::text[]))],
           'part', '1', 'charged_on', state.first_day::text)),
       last.to_status, last.day, 'day', last.confidence, state.first_day, 'day',
       (last.to_status = 'detained' OR (last.to_status = 'sentenced'
            AND last.details->>'sentence_type' = ANY($3::text[])
            AND NOT coalesce((last.details->>'in_absentia')::boolean, false))),
       sentence.details->>'sentence_type', state.pending, 'not_assessed',
       state.count, c.created, greatest(c.created, state.last_recorded), c.created
FROM bulk_case c
JOIN bulk_case_state state ON state.case_file_id = c.id
JOIN bulk_case_last last ON last.case_file_id = c.id
LEFT JOIN bulk_case_sentence sentence ON sentence.case_file_id = c.id;
"""

SQL_EVENT_ROWS = """
INSERT INTO status_event (id, case_file_id, position, to_status, effective_date,
    effective_precision, recorded_at, confidence, details, source_ids, collective_event_id)
SELECT id, case_file_id, position, to_status, day, 'day', recorded, confidence, details,
       '{}', collective_event_id
FROM bulk_event;
INSERT INTO status_event_retraction (id, event_id, case_file_id, reason, superseded_by,
                                     recorded_at)
SELECT pg_temp.bulk_id(e.recorded + interval '5 days', 7, e.n), e.id,
       e.case_file_id,
       CASE e.flag WHEN 'wrong' THEN 'The term was misreported; corrected from the verdict.'
                   ELSE 'Entered twice.' END,
       CASE e.flag WHEN 'wrong' THEN following.id END, e.recorded + interval '5 days'
FROM bulk_event e
LEFT JOIN bulk_event following
       ON e.flag = 'wrong' AND following.case_file_id = e.case_file_id
      AND following.position = e.position + 1
WHERE e.flag IN ('wrong', 'copy') AND (e.flag = 'copy' OR following.id IS NOT NULL);
INSERT INTO status_claim_resolution (id, event_id, case_file_id, outcome, confidence, reason,
                                     recorded_at)
SELECT pg_temp.bulk_id(e.recorded + interval '10 days', 8, e.n), e.id,
       e.case_file_id, CASE e.claim_outcome WHEN 0 THEN 'confirmed' ELSE 'rejected' END,
       CASE e.claim_outcome WHEN 0 THEN 'reported' END,
       CASE e.claim_outcome WHEN 1 THEN 'The family says she is still held.' END,
       e.recorded + interval '10 days'
FROM bulk_event e
WHERE e.flag = 'claim' AND e.claim_outcome < 2;
UPDATE collective_event k SET case_file_count = counted.count
FROM (SELECT collective_event_id, count(DISTINCT case_file_id) AS count FROM bulk_event
      WHERE collective_event_id IS NOT NULL GROUP BY collective_event_id) counted
WHERE counted.collective_event_id = k.id;
"""

# Decisions: under review, then (for most) recognised a political prisoner or politically
# persecuted; each covers the person's case files begun by its day (a later re-arrest is
# not covered).
SQL_RECOGNITION = """
CREATE TEMP TABLE bulk_decision ON COMMIT DROP AS
SELECT p.n * 4 + d.version AS n, p.id AS person_id, d.version, d.status, d.decided_on,
       pg_temp.bulk_id(d.decided_on::timestamptz + interval '15 hours', 9,
                       p.n * 4 + d.version) AS id
FROM bulk_person p
CROSS JOIN LATERAL (SELECT pg_temp.pick(p.n, 26, 100) AS roll) r
CROSS JOIN LATERAL (
    VALUES (1, 'under_review', p.first_day + 20),
           (2, CASE WHEN r.roll < 80 THEN 'political_prisoner'
                    ELSE 'politically_persecuted' END,
            p.first_day + 50 + pg_temp.pick(p.n, 27, 170))
) AS d(version, status, decided_on)
WHERE r.roll >= 12 AND (d.version = 1 OR r.roll < 86) AND d.decided_on <= $1::date;
INSERT INTO recognition_decision (id, person_id, version, status, criteria, co_signers,
    decided_on, source_ids, recorded_at)
SELECT id, person_id, version, status,
       CASE WHEN status = 'under_review' THEN '{}'::text[] ELSE ARRAY['deprivation'] END,
       '{}', decided_on, '{}', decided_on::timestamptz + interval '15 hours'
FROM bulk_decision;
INSERT INTO recognition_coverage (decision_id, case_file_id)
SELECT d.id, c.id FROM bulk_decision d
JOIN case_file c ON c.person_id = d.person_id AND c.detained_on <= d.decided_on;
UPDATE case_file c SET recognition_status = latest.status
FROM (SELECT DISTINCT ON (v.case_file_id) v.case_file_id, d.status
      FROM recognition_coverage v JOIN bulk_decision d ON d.id = v.decision_id
      ORDER BY v.case_file_id, d.version DESC) latest
WHERE latest.case_file_id = c.id;
UPDATE person p SET recognition_status = latest.status
FROM (SELECT DISTINCT ON (person_id) person_id, status FROM bulk_decision
      ORDER BY person_id, version DESC) latest
WHERE latest.person_id = p.id;
"""

TABLES = [
    "source",
    "collective_event",
    "person",
    "person_name",
    "case_file",
    "status_event",
    "status_event_retraction",
    "status_claim_resolution",
    "recognition_decision",
    "recognition_coverage",
]


@dataclass(frozen=True)
class NamePool:
    cyrillic: list[str]
    latin: list[str]
    # Each spelling's search_key and its search_tokens joined by spaces.
    cyrillic_keys: list[str]
    latin_keys: list[str]
    cyrillic_tokens: list[str]
    latin_tokens: list[str]


def _name_pool(size: int) -> NamePool:
    """Invented names, with the search keys the application computes for them."""
    rng = random.Random(7)
    pool = NamePool([], [], [], [], [], [])
    for _ in range(size):
        female = rng.random() < 0.32
        first, _russian = rng.choice(words.FEMALE_FIRST if female else words.MALE_FIRST)
        (be_1, _), (be_2, _) = rng.choice(words.STEM_SYLLABLES), rng.choice(words.STEM_SYLLABLES)
        be_m, be_f, _, _ = rng.choice(words.SURNAME_ENDINGS)
        value = f"{first} {(be_1 + be_2 + rng.choice(words.STEM_CLOSINGS)).capitalize()}"
        value += be_f if female else be_m
        latin = " ".join(word.capitalize() for word in skeleton(value).split())
        pool.cyrillic.append(value)
        pool.latin.append(latin)
        pool.cyrillic_keys.append(skeleton(value))
        pool.latin_keys.append(skeleton(latin))
        pool.cyrillic_tokens.append(" ".join(tokens(value)))
        pool.latin_tokens.append(" ".join(tokens(latin)))
    return pool


def _template_arrays() -> tuple[list[list[object]], list[int]]:
    columns: list[list[object]] = [[], [], [], [], [], []]
    picks: list[int] = []
    for template, (weight, steps) in enumerate(TEMPLATES):
        picks.extend([template] * weight)
        for step, (status, offset, details, flag) in enumerate(steps):
            for column, value in zip(
                columns, (template, step, status, offset, details, flag), strict=True
            ):
                column.append(value)
    return columns, picks


async def _build_basis(connection: asyncpg.Connection) -> float:
    """The path basis reports read, as the worker's daily job builds it
    (app/reports/basis.py); its time in seconds."""
    started = time.perf_counter()
    basis_id, now = new_id(), utcnow()  # nothing is recorded here but the seed
    async with connection.transaction():
        await connection.execute("SET LOCAL jit = off; SET LOCAL work_mem = '256MB'")
        await connection.execute(
            "INSERT INTO report_basis (id, known_at, changed_after, engine_version, built_at, "
            "seconds, events) VALUES ($1, $2, $2, $3, $2, 0, 0)",
            basis_id,
            now,
            asof.BASIS_FORMAT,
        )
        events = await asof.build_basis(connection, basis_id, now, now)
        seconds = time.perf_counter() - started
        await connection.execute(
            "UPDATE report_basis SET seconds = $2, events = $3 WHERE id = $1",
            basis_id,
            seconds,
            events,
        )
    await connection.execute("ANALYZE report_basis_path")
    return seconds


async def load(url: str, *, persons: int) -> str:
    """Seed an empty migrated database with `persons` synthetic persons; a summary."""
    started = time.perf_counter()
    names = _name_pool(NAME_POOL)
    steps, picks = _template_arrays()
    span = (AS_OF - FIRST_DETENTION).days - 5
    connection = await asyncpg.connect(**asyncpg_connect_kwargs(url))
    try:
        if await connection.fetchval("SELECT EXISTS (SELECT 1 FROM person)"):
            raise RuntimeError("The database already holds persons; seed an empty database.")
        async with connection.transaction():
            await connection.execute(
                "SET LOCAL synchronous_commit = off; SET LOCAL work_mem = '256MB'; "
                "SET LOCAL maintenance_work_mem = '1GB';" + FUNCTIONS
            )
            # The rows are consistent by construction (tests/bench/test_report_sql.py
            # checks them): skip the per-row foreign-key triggers, which cost a third of
            # the load. Needs the superuser the benchmark administers its databases with.
            await connection.execute("SET LOCAL session_replication_role = replica")
            # Building an index once after the load is far faster than updating it per row.
            indexes = await connection.fetch(
                "SELECT i.indexname, i.indexdef FROM pg_indexes i "
                "JOIN pg_class c ON c.relname = i.indexname "
                "WHERE i.schemaname = 'public' AND i.tablename = ANY($1::text[]) "
                "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = c.oid)",
                TABLES,
            )
            for index in indexes:
                await connection.execute(f'DROP INDEX "{index["indexname"]}"')
            await _run(connection, SQL_STEPS, *steps, picks)
            await _run(connection, SQL_SOURCES, FIRST_DETENTION, span)
            await _run(
                connection, SQL_COLLECTIVES, AS_OF.replace(year=2023, month=1), 1390, DESTINATIONS
            )
            await _run(
                connection,
                SQL_PERSONS,
                persons,
                FIRST_DETENTION,
                span,
                words.FOREIGN_CITIZENSHIPS,
                words.REGIONS,
                names.cyrillic,
                names.latin,
                names.cyrillic_keys,
                names.latin_keys,
                names.cyrillic_tokens,
                names.latin_tokens,
                len(names.cyrillic),
            )
            await _run(connection, SQL_CASES, AS_OF, len(picks))
            await _run(connection, SQL_EVENTS, AS_OF)
            await _run(
                connection,
                SQL_CASE_ROWS,
                DEPRIVATIONS,
                [article for article, _ in words.ARTICLES],
                CUSTODIAL,
            )
            await _run(connection, SQL_EVENT_ROWS)
            await _run(connection, SQL_RECOGNITION, AS_OF)
            await connection.execute(SQL_FILL_NAME_TOKENS)
            for index in indexes:
                await connection.execute(index["indexdef"])
            counts = {
                table: await connection.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608
                for table in ("person", "case_file", "status_event", "recognition_decision")
            }
        await connection.execute("ANALYZE")
        basis_seconds = await _build_basis(connection)
    finally:
        await connection.close()
    return (
        f"bulk-seeded {counts['person']} persons, {counts['case_file']} case files, "
        f"{counts['status_event']} status events, {counts['recognition_decision']} "
        f"recognition decisions in {time.perf_counter() - started:.1f} s "
        f"(the path basis in {basis_seconds:.1f} s of them)"
    )


async def _run(connection: asyncpg.Connection, script: str, *arguments: object) -> None:
    """A script whose statements share the arguments (asyncpg prepares one statement at a
    time, so each statement is sent on its own with the arguments it uses)."""
    for statement in (s.strip() for s in script.split(";\n")):
        if not statement:
            continue
        used = sorted({int(number) for number in _PARAMETER.findall(statement)})
        if not used:
            await connection.execute(statement)
            continue
        await connection.execute(
            _renumbered(statement, used), *(arguments[number - 1] for number in used)
        )


def _renumbered(statement: str, used: list[int]) -> str:
    """The statement with its parameters numbered from $1, in the order of `used`."""
    return _PARAMETER.sub(lambda match: f"${used.index(int(match.group(1))) + 1}", statement)


_PARAMETER = re.compile(r"\$(\d+)")

"""The as-of engine: every figure of a status report, computed by PostgreSQL in one
statement from the status events, claims, confirmations, supersessions, retractions and
recognition decisions, for a day D, a period and a knowledge time T (docs/reports.md says
what each figure counts).

Nothing is loaded into Python but the figures themselves (and the short lists of named
people), so a report's memory does not grow with the data. The statements run on the
driver connection (docs/performance.md): they are long, run once per report, and return
one JSON document.

The path of a case file "as known at T" is built here the way app/cases/history.py builds
today's: the events recorded by T, not retracted by T, recorded as confirmed or reported or
confirmed by T; ordered by effective date (a partial date counts from its first day), then
by the order given, where a correction takes the place of the event it superseded.
"""

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg
import orjson

from app.access.visibility import SQL_PUBLICLY_NAMEABLE
from app.cases.models import DeprivationType
from app.cases.statuses import CUSTODIAL_SENTENCES, SentenceType, Status
from app.persons.models import Gender

# What a report counts as held unless asked otherwise: house arrest and administrative
# arrest are deprivations of liberty, but not the custody the status reports count.
DEFAULT_HELD_DEPRIVATION_TYPES: tuple[DeprivationType, ...] = (
    DeprivationType.pretrial_custody,
    DeprivationType.imprisonment,
    DeprivationType.restriction_of_freedom,
    DeprivationType.psychiatric,
)

RELEASE_MODES = (
    "sentence_served",
    "acquitted",
    "charges_dropped",
    "parole",
    "other",
    "pardoned",
    "pardoned_and_deported",
    "deported_without_pardon",
    "released_pending_trial",
    "non_custodial_sentence",
)
TERM_BANDS = ("under_1y", "1_3y", "3_5y", "5_10y", "10y_plus", "no_term")
AGE_BANDS = ("under_18", "18_29", "30_39", "40_49", "50_59", "60_plus", "unknown")
HELD_STATUSES = (Status.detained.value, Status.sentenced.value)

# The closed sets of keys each map lists in full, zeros included.
_CLOSED_KEYS: Mapping[tuple[str, ...], Sequence[str]] = {
    ("held", "by_status"): HELD_STATUSES,
    ("held", "by_deprivation"): [t.value for t in DeprivationType],
    ("held", "by_sentence_type"): [t.value for t in SentenceType],
    ("period", "sentences", "by_type"): [t.value for t in SentenceType],
    ("period", "sentences", "by_term_band"): TERM_BANDS,
    ("period", "released", "by_mode"): RELEASE_MODES,
    ("claims", "unconfirmed", "by_status"): [s.value for s in Status],
    ("breakdowns", "by_gender"): [g.value for g in Gender],
    ("breakdowns", "by_age_band"): AGE_BANDS,
    ("breakdowns", "by_sentence_band"): TERM_BANDS,
}


@dataclass(frozen=True, slots=True)
class Question:
    """What a report asks: the day, the period, the knowledge time, and what counts."""

    as_of: date
    period_from: date
    period_to: date
    as_known_at: datetime
    baseline: date
    jurisdiction: str | None
    held_deprivation_types: Sequence[DeprivationType]
    chart_years: int

    @property
    def series_start(self) -> date:
        """The first day of the first month the charts show."""
        month = self.as_of.year * 12 + self.as_of.month - 1 - (12 * self.chart_years - 1)
        return date(month // 12, month % 12 + 1, 1)


# SQL --------------------------------------------------------------------------------------
# Each CTE below is text with named slots ({T}, {D} …) filled with positional parameters,
# so that the differences between two reports reuse the same definitions for two moments.

_CORRECTIONS = """
corrections (event_id, given) AS (
    SELECT r.superseded_by, o.position
    FROM status_event_retraction r
    JOIN status_event o ON o.id = r.event_id
    WHERE r.superseded_by IS NOT NULL{CORRECTED_ONLY}
      AND NOT EXISTS (SELECT 1 FROM status_event_retraction f
                      WHERE f.superseded_by = r.event_id)
    UNION ALL
    SELECT r.superseded_by, c.given
    FROM corrections c
    JOIN status_event_retraction r ON r.event_id = c.event_id
    WHERE r.superseded_by IS NOT NULL
)"""

# Each case file as known at T: its row, unless its counted facts were corrected after T;
# then the version that held at T (migration 0015). A case file made after T has neither.
_SCOPE = """
scope{N} AS {SCOPE_MATERIALIZED} (
    SELECT v.*, v.deprivation_type = ANY({HELD_TYPES}::text[]) AS counts_held
    FROM (
        SELECT c.id, c.person_id, c.jurisdiction, c.deprivation_type
        FROM case_file c
        WHERE c.facts_since <= {T}{ONLY:c.id}
        UNION ALL
        SELECT h.case_file_id, h.person_id, h.jurisdiction, h.deprivation_type
        FROM case_file_facts_history h
        WHERE h.valid_from <= {T} AND h.valid_until > {T}{ONLY:h.case_file_id}
    ) AS v
    WHERE {JURISDICTION}::text IS NULL OR v.jurisdiction = {JURISDICTION}::text
)"""

# A person's counted facts as known at T, in the same way (a lateral subquery), asked
# only when `WHEN` (a condition on the outer row, or `true`) holds.
_PERSON_AT = """
LATERAL (
    SELECT p.citizenships::text[] AS citizenships, p.gender::text AS gender,
           p.region::text AS region, p.birth_date
    FROM person p
    WHERE {WHEN} AND p.id = {PERSON} AND p.facts_since <= {T}
    UNION ALL
    SELECT ph.citizenships::text[], ph.gender::text, ph.region::text, ph.birth_date
    FROM person_facts_history ph
    WHERE {WHEN} AND ph.person_id = {PERSON} AND ph.valid_from <= {T}
      AND ph.valid_until > {T}
)"""

# The person of one case file as known at T, if the report counts the case file (as in
# `scope`, a lateral subquery: a lookup for each of a few rows).
_CASE_AT = """
LATERAL (
    SELECT v.person_id
    FROM (
        SELECT c.person_id, c.jurisdiction FROM case_file c
        WHERE c.id = {CASE} AND c.facts_since <= {T}
        UNION ALL
        SELECT h.person_id, h.jurisdiction FROM case_file_facts_history h
        WHERE h.case_file_id = {CASE} AND h.valid_from <= {T} AND h.valid_until > {T}
    ) AS v
    WHERE {JURISDICTION}::text IS NULL OR v.jurisdiction = {JURISDICTION}::text
)"""

# The events on the path as known at T, each with whether its state is "held".
_KNOWN = """
known{N} AS MATERIALIZED (
    SELECT e.id, e.case_file_id, e.to_status, e.effective_date AS first_day,
           e.effective_precision AS precision,
           CASE e.effective_precision
               WHEN 'day' THEN e.effective_date
               WHEN 'month' THEN (date_trunc('month', e.effective_date::timestamp)
                                  + interval '1 month' - interval '1 day')::date
               ELSE (date_trunc('year', e.effective_date::timestamp)
                     + interval '1 year' - interval '1 day')::date
           END AS last_day,
           e.details ->> 'sentence_type' AS sentence_type,
           (e.details ->> 'term_months')::int AS term_months,
           e.details ->> 'release_reason' AS release_reason,
           e.details ->> 'destination_country' AS destination_country,
           e.collective_event_id, COALESCE(k.given, e.position) AS given,
           s.person_id, s.jurisdiction, s.deprivation_type,
           s.counts_held AND (
               e.to_status = 'detained'
               OR (e.to_status = 'sentenced'
                   AND e.details ->> 'sentence_type' = ANY({CUSTODIAL}::text[])
                   AND NOT COALESCE((e.details ->> 'in_absentia')::boolean, false))
           ) AS held
    FROM status_event e
    JOIN scope{N} s ON s.id = e.case_file_id
    LEFT JOIN corrections k ON k.event_id = e.id
    WHERE e.recorded_at <= {T}
      AND NOT EXISTS (SELECT 1 FROM status_event_retraction r
                      WHERE r.event_id = e.id AND r.recorded_at <= {T})
      AND (e.confidence <> 'unconfirmed'
           OR EXISTS (SELECT 1 FROM status_claim_resolution c
                      WHERE c.event_id = e.id AND c.outcome = 'confirmed'
                        AND c.recorded_at <= {T}))
),
-- A partial date overlapping the days of an event given before it comes after that event
-- (the case file's own order, app/cases/statuses.py): it counts from that event's day.
lifted{N} AS (
    SELECT k.id, max(o.first_day) AS day
    FROM known{N} k
    JOIN known{N} o ON o.case_file_id = k.case_file_id AND o.given < k.given
         AND o.first_day <= k.last_day AND k.first_day <= o.last_day
    WHERE k.precision <> 'day'
    GROUP BY k.id
),
path{N} AS MATERIALIZED (
    SELECT k.id, k.case_file_id, k.to_status, k.sentence_type, k.term_months,
           k.release_reason, k.destination_country, k.collective_event_id, k.given,
           k.person_id, k.jurisdiction, k.deprivation_type, k.held,
           GREATEST(k.first_day, l.day) AS effective_date,
           lag(k.held, 1, false) OVER w AS was_held,
           lead(GREATEST(k.first_day, l.day)) OVER w AS until,
           lead(k.to_status) OVER w AS next_status,
           -- What the breakdowns count of the case file and the person: asked for the
           -- people held (a basis keeps them for the paths it keeps).
           false AS facts_kept, NULL::text[] AS articles, NULL::text[] AS citizenships,
           NULL::text AS gender, NULL::text AS region, NULL::date AS birth_date
    FROM known{N} k
    LEFT JOIN lifted{N} l ON l.id = k.id
    WINDOW w AS (PARTITION BY k.case_file_id ORDER BY GREATEST(k.first_day, l.day), k.given)
)"""

_TERM_BAND = """
CASE
    WHEN term_months IS NULL THEN 'no_term'
    WHEN term_months < 12 THEN 'under_1y'
    WHEN term_months < 36 THEN '1_3y'
    WHEN term_months < 60 THEN '3_5y'
    WHEN term_months < 120 THEN '5_10y'
    ELSE '10y_plus'
END"""

_RELEASE_MODE = """
CASE
    WHEN x.to_status = 'released' THEN COALESCE(x.release_reason, 'other')
    WHEN x.to_status = 'pardoned' AND x.next_status = 'deported' AND x.until <= {BY}
        THEN 'pardoned_and_deported'
    WHEN x.to_status = 'pardoned' THEN 'pardoned'
    WHEN x.to_status = 'deported' THEN 'deported_without_pardon'
    WHEN x.to_status = 'charged' THEN 'released_pending_trial'
    WHEN x.to_status = 'sentenced' THEN 'non_custodial_sentence'
    ELSE 'other'
END"""

# Merges each person's intervals [a, b) from {SOURCE} into disjoint islands, in {NAME}
# (per `key`: the jurisdiction a basis counts them for, app/reports/basis.py).
_ISLANDS = """
{NAME}_marked AS (
    SELECT key, person_id, a, b,
           CASE WHEN a <= max(b) OVER (PARTITION BY key, person_id ORDER BY a, b
                                       ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                THEN 0 ELSE 1 END AS starts
    FROM {SOURCE}
),
{NAME} AS MATERIALIZED (
    SELECT key, person_id, min(a) AS a, max(b) AS b
    FROM (SELECT key, person_id, a, b,
                 sum(starts) OVER (PARTITION BY key, person_id ORDER BY a, b) AS island
          FROM {NAME}_marked) AS numbered
    GROUP BY key, person_id, island
)"""

# The order of a case file's recognition decisions: as decided, then as given (a person's
# versions), then as recorded (two people's decisions may cover one case file).
_DECISION_ORDER = "d.decided_on, d.version, d.recorded_at, d.id"
_DECISION_ORDER_DESC = "d.decided_on DESC, d.version DESC, d.recorded_at DESC, d.id DESC"

# Each case file's recognition from the decisions recorded as {RECORDED} says: the
# decisions covering it, in their order, each until the next (the case files of
# {COVERAGE} where {CASES} holds: `recognition_coverage v`, or a few case files joined to
# it, looked up one by one).
_RECOGNITION = (
    """
{NAME} AS MATERIALIZED (
    SELECT v.case_file_id, d.status, d.decided_on AS since,
           lead(d.decided_on) OVER r AS until
    FROM {COVERAGE}
    JOIN recognition_decision d ON d.id = v.decision_id
    WHERE {RECORDED} AND {CASES}
    WINDOW r AS (PARTITION BY v.case_file_id ORDER BY """
    + _DECISION_ORDER
    + """)
)"""
)

# What the path rows of {SOURCE} (key, person, case file, status, days, held or not, as a
# report counts them) add to the figures over time, day by day, in {NAME} (key, day,
# measure, n), with {REC} their case files' recognition:
# - `held` and `recognised`: +1 on the first day of each island of a person's custody (of
#   recognised custody), −1 on the day after it ends — a month's figure is the sum up to
#   its last day. Custody ends with the person's death; a person held on two case files
#   at once is one island.
# - `detention`: the people whose custody began that day.
# - `release:<mode>`: the people leaving custody that day (once per day and mode whatever
#   the number of case files), the mode "pardoned and deported" looking at the deportation
#   by the month's end.
# Each person adds their own, so that a basis's sums (app/reports/basis.py) can have some
# people's taken out and added back as they are now.
_CONTRIBUTIONS = """
{NAME}_deaths AS (
    SELECT key, person_id, min(effective_date) AS died_on
    FROM {SOURCE} WHERE to_status = 'died_in_custody'
    GROUP BY key, person_id
),
{NAME}_stretches AS MATERIALIZED (
    SELECT x.key, x.person_id, x.case_file_id, x.effective_date AS a,
           LEAST(COALESCE(x.until, 'infinity'::date),
                 COALESCE(dd.died_on, 'infinity'::date)) AS b
    FROM {SOURCE} x
    LEFT JOIN {NAME}_deaths dd ON dd.key = x.key AND dd.person_id = x.person_id
    WHERE x.held
),
{NAME}_recognised_stretches AS (
    SELECT s.key, s.person_id, GREATEST(s.a, r.since) AS a,
           LEAST(s.b, COALESCE(r.until, 'infinity'::date)) AS b
    FROM {NAME}_stretches s
    JOIN {REC} r ON r.case_file_id = s.case_file_id AND r.status = 'political_prisoner'
    WHERE GREATEST(s.a, r.since) < LEAST(s.b, COALESCE(r.until, 'infinity'::date))
),
{HELD_ISLANDS},
{RECOGNISED_ISLANDS},
{NAME}_releases AS (
    SELECT DISTINCT ON (x.key, x.person_id, x.effective_date, x.to_status)
           x.key, x.effective_date AS day, {MONTH_MODE} AS mode
    FROM {SOURCE} x
    WHERE x.was_held AND NOT x.held AND x.to_status <> 'died_in_custody'
    ORDER BY x.key, x.person_id, x.effective_date, x.to_status, x.case_file_id
),
{NAME} AS (
    SELECT key, a AS day, 'held' AS measure, count(*) AS n
    FROM {NAME}_held_islands WHERE a < b GROUP BY 1, 2
    UNION ALL
    SELECT key, b, 'held', -count(*)
    FROM {NAME}_held_islands WHERE a < b AND b < 'infinity'::date GROUP BY 1, 2
    UNION ALL
    SELECT key, a, 'recognised', count(*)
    FROM {NAME}_recognised_islands WHERE a < b GROUP BY 1, 2
    UNION ALL
    SELECT key, b, 'recognised', -count(*)
    FROM {NAME}_recognised_islands WHERE a < b AND b < 'infinity'::date GROUP BY 1, 2
    UNION ALL
    SELECT key, effective_date, 'detention', count(DISTINCT person_id)
    FROM {SOURCE} WHERE held AND NOT was_held GROUP BY 1, 2
    UNION ALL
    SELECT key, day, 'release:' || mode, count(*) FROM {NAME}_releases GROUP BY 1, 2, 3
)"""


def _contributions(name: str, source: str, recognition: str) -> str:
    """The _CONTRIBUTIONS of `source` (a CTE of path rows with a `key`) as CTE `name`."""
    return _fill(
        _CONTRIBUTIONS,
        {
            "HELD_ISLANDS": _fill(
                _ISLANDS, {"NAME": "{NAME}_held_islands", "SOURCE": "{NAME}_stretches"}
            ),
            "RECOGNISED_ISLANDS": _fill(
                _ISLANDS,
                {"NAME": "{NAME}_recognised_islands", "SOURCE": "{NAME}_recognised_stretches"},
            ),
            "MONTH_MODE": _fill(_RELEASE_MODE, {"BY": _MONTH_END.format(day="x.effective_date")}),
            "NAME": name,
            "SOURCE": source,
            "REC": recognition,
        },
    )


_MONTH_END = "(date_trunc('month', {day}::timestamp) + interval '1 month' - interval '1 day')::date"

# With a path basis (app/reports/basis.py): the case files changed since the basis — an
# event, a retraction or a claim's resolution recorded, or a counted fact of the case file
# or its person corrected, after its `changed_after` moment — have their paths built anew
# as known at T (`path_fresh`); every other case file's path as known at T is the one the
# basis keeps, as known at its moment (nothing of it changed in between). The basis keeps
# whether a status is custody before the report's choice of deprivation types; that choice
# is applied here, as the case file's own deprivation type (one per case file) decides it
# for its whole path.
_CHANGED_SINCE_BASIS = """
changed AS MATERIALIZED (
    SELECT case_file_id FROM status_event WHERE recorded_at >= {CHANGED_AFTER}
    UNION SELECT case_file_id FROM status_event_retraction WHERE recorded_at >= {CHANGED_AFTER}
    UNION SELECT case_file_id FROM status_claim_resolution WHERE recorded_at >= {CHANGED_AFTER}
    UNION SELECT id FROM case_file WHERE facts_since >= {CHANGED_AFTER}
    UNION SELECT c.id FROM person p JOIN case_file c ON c.person_id = p.id
    WHERE p.facts_since >= {CHANGED_AFTER}
    UNION SELECT v.case_file_id FROM recognition_decision d
    JOIN recognition_coverage v ON v.decision_id = d.id
    WHERE d.recorded_at >= {CHANGED_AFTER}
)"""

_PATH_FROM_BASIS = """
path AS NOT MATERIALIZED (
    SELECT b.event_id AS id, b.case_file_id, b.to_status, b.sentence_type, b.term_months,
           b.release_reason, b.destination_country, b.collective_event_id, b.given,
           b.person_id, b.jurisdiction, b.deprivation_type,
           b.held AND b.deprivation_type = ANY({HELD_TYPES}::text[]) AS held,
           b.effective_date,
           b.was_held AND b.deprivation_type = ANY({HELD_TYPES}::text[]) AS was_held,
           b.until, b.next_status, b.facts_kept, b.articles, b.citizenships::text[],
           b.gender::text, b.region::text, b.birth_date
    FROM report_basis_path b
    WHERE b.basis_id = {BASIS}
      AND ({JURISDICTION}::text IS NULL OR b.jurisdiction = {JURISDICTION}::text)
      AND NOT EXISTS (SELECT 1 FROM changed c WHERE c.case_file_id = b.case_file_id)
    UNION ALL
    SELECT * FROM path_fresh
)"""


_FOREIGN = "EXISTS (SELECT 1 FROM unnest({CITIZENSHIPS}) AS c(code) WHERE c.code <> {HOME})"


def _fill(template: str, slots: Mapping[str, str]) -> str:
    text = template
    for name, value in slots.items():
        text = text.replace("{" + name + "}", value)
    return text


# Positional parameters of the figures statement.
_FIGURE_SLOTS = {
    "D": "$1::date",
    "PERIOD_FROM": "$2::date",
    "PERIOD_TO": "$3::date",
    "T": "$4::timestamptz",
    "BASELINE": "$5::date",
    "JURISDICTION": "$6",
    "HELD_TYPES": "$7",
    "CUSTODIAL": "$8",
    "SERIES_START": "$9::date",
    "SNAPSHOT": "$10::uuid",
    "PREVIOUS": "$11::uuid",
    "PREVIOUS_AS_OF": "$12::date",
    "N": "",
    "ONLY:c.id": "",
    "ONLY:h.case_file_id": "",
    "SCOPE_MATERIALIZED": "MATERIALIZED",
}
# … and two more with a path basis.
_BASIS_SLOTS = {
    "BASIS": "$13::uuid",
    "CHANGED_AFTER": "$14::timestamptz",
}

# A basis's path rows as the figures over time count them (with the report's choice of
# deprivation types): a build's for every key (each row once for all jurisdictions, once
# for its own), a report's for the people it counts anew.
_BASIS_SOURCE = """
{NAME} AS (
    SELECT {KEY} AS key, b.person_id, b.case_file_id, b.to_status, b.next_status, b.until,
           b.effective_date, b.release_reason,
           b.held AND b.deprivation_type = ANY({HELD_TYPES}::text[]) AS held,
           b.was_held AND b.deprivation_type = ANY({HELD_TYPES}::text[]) AS was_held
    FROM report_basis_path b{KEYS}
    WHERE b.basis_id = {BASIS} AND {WHERE}
)"""
# The people whose figures over time a report counts anew: everyone a case file changed
# since the basis has belonged to since its `changed_after` moment — as the basis has it
# (even when the move that took it away was stamped before the basis but committed after
# it), as it is now, and any in between (merges move case files).
_CHANGED_PERSONS = """
changed_persons AS MATERIALIZED (
    SELECT c.person_id FROM case_file c
    WHERE c.id IN (SELECT case_file_id FROM changed)
    UNION
    SELECT h.person_id FROM case_file_facts_history h
    WHERE h.case_file_id IN (SELECT case_file_id FROM changed)
      AND h.valid_until >= {CHANGED_AFTER}
)"""


def _recognition(name: str, recorded: str, coverage: str, cases: str = "true") -> str:
    """The _RECOGNITION CTE `name` of the decisions whose recording time `recorded` says."""
    return _fill(
        _RECOGNITION,
        {"NAME": name, "RECORDED": recorded, "COVERAGE": coverage, "CASES": cases},
    )


# The recognition decisions covering the few case files of a source.
_COVERAGE_OF = (
    "(SELECT DISTINCT case_file_id FROM {source}) AS c"
    " JOIN recognition_coverage v ON v.case_file_id = c.case_file_id"
)
# The key of the sums over all jurisdictions (a jurisdiction's own are its code).
ALL_JURISDICTIONS = "*"


def _daily_ctes(slots: Mapping[str, str], *, sums_from_basis: bool) -> str:
    """`daily`: what the path adds to the figures over time, day by day (_CONTRIBUTIONS).
    With `sums_from_basis`, the basis's sums for the report's jurisdiction, less what the
    people counted anew added as the basis has them, plus what they add now."""
    if not sums_from_basis:
        return ",\n".join(
            [
                "now_source AS (SELECT '*'::text AS key, x.* FROM path x)",
                _recognition(
                    "now_recognition",
                    f"d.recorded_at <= {slots['T']}",
                    "recognition_coverage v",
                    "v.case_file_id IN (SELECT id FROM scope)",
                ),
                _contributions("now_counted", "now_source", "now_recognition"),
                "daily AS (SELECT day, measure, n FROM now_counted)",
            ]
        )
    anew = "(SELECT person_id FROM changed_persons)"
    return ",\n".join(
        [
            _fill(
                _BASIS_SOURCE,
                {
                    **slots,
                    "NAME": "was_source",
                    "KEY": "'*'::text",
                    "KEYS": "",
                    "WHERE": f"b.person_id IN {anew} AND ({slots['JURISDICTION']}::text IS NULL"
                    f" OR b.jurisdiction = {slots['JURISDICTION']}::text)",
                },
            ),
            _recognition(
                "was_recognition",
                f"d.recorded_at < {slots['CHANGED_AFTER']}",
                _COVERAGE_OF.format(source="was_source"),
            ),
            _contributions("was_counted", "was_source", "was_recognition"),
            f"now_source AS (SELECT '*'::text AS key, x.* FROM path x WHERE x.person_id IN {anew})",
            _recognition(
                "now_recognition",
                f"d.recorded_at <= {slots['T']}",
                _COVERAGE_OF.format(source="now_source"),
            ),
            _contributions("now_counted", "now_source", "now_recognition"),
            _fill(
                """
daily AS (
    SELECT day, measure, n FROM report_basis_daily
    WHERE basis_id = {BASIS} AND key = COALESCE({JURISDICTION}::text, '*')
    UNION ALL
    SELECT day, measure, -n FROM was_counted
    UNION ALL
    SELECT day, measure, n FROM now_counted
)""",
                slots,
            ),
        ]
    )


def _path_ctes(slots: Mapping[str, str], *, with_basis: bool) -> list[str]:
    """The CTEs that end in `path`, every case file's path as known at T (and `scope`,
    the case files counted, with their facts as known at T)."""
    if not with_basis:
        return [
            _fill(_CORRECTIONS, {"CORRECTED_ONLY": ""}),
            _fill(_SCOPE, slots),
            _fill(_KNOWN, slots),
        ]
    # Only the case files changed since the basis have their paths built here (the
    # condition inside each branch, so that the planner sees how few they are).
    only = " AND {} IN (SELECT case_file_id FROM changed)"
    fresh = {
        **slots,
        "N": "_fresh",
        "ONLY:c.id": only.format("c.id"),
        "ONLY:h.case_file_id": only.format("h.case_file_id"),
    }
    return [
        _fill(_CHANGED_SINCE_BASIS, slots),
        _fill(
            _CORRECTIONS,
            {"CORRECTED_ONLY": " AND r.case_file_id IN (SELECT case_file_id FROM changed)"},
        ),
        # Every case file's scope is only looked up here (the basis has their paths).
        _fill(_SCOPE, {**slots, "SCOPE_MATERIALIZED": "NOT MATERIALIZED"}),
        _fill(_SCOPE, fresh),
        _fill(_KNOWN, fresh),
        _fill(_PATH_FROM_BASIS, slots),
    ]


# The standing on D of the people unchanged since the basis, one span each (BASIS_SPAN_SQL
# below). For a report of one jurisdiction: the spans kept for it (people with case files
# in several), and the spans for all of the people whose case files are in it alone.
_KEPT_SPANS = f"""
kept_spans AS MATERIALIZED (
    SELECT s.person_id, s.held, s.case_file_id, s.to_status, s.deprivation_type,
           s.jurisdiction, s.sentence_type, s.term_months, s.recognised, s.persecuted,
           s.gender::text, s.citizenships::text[], s.region::text, s.birth_date, s.articles
    FROM report_basis_span s
    WHERE s.basis_id = {{BASIS}} AND s.ends > {{D}} AND s.starts <= {{D}}
      AND CASE WHEN {{JURISDICTION}}::text IS NULL THEN s.key = '{ALL_JURISDICTIONS}'
               ELSE s.key = {{JURISDICTION}}::text
                    OR (s.key = '{ALL_JURISDICTIONS}'
                        AND s.only_jurisdiction = {{JURISDICTION}}::text) END
      AND s.person_id NOT IN (SELECT person_id FROM changed_persons)
)"""

_HELD_COLUMNS = (
    "person_id, case_file_id, to_status, deprivation_type, jurisdiction, sentence_type,"
    " term_months, recognised, persecuted, gender, citizenships, region, birth_date"
)
# The people held on D, those prosecuted at liberty then, and how many of them each
# article is charged against (on any case file they are held on): built here, or built
# here for the people changed since the basis and read from its spans for the others.
_HELD_WITHOUT_SPANS = f"""
held AS NOT MATERIALIZED (SELECT {_HELD_COLUMNS} FROM held_anew),
at_liberty AS (SELECT person_id FROM at_liberty_anew),
held_articles AS (SELECT article, count(*) AS n FROM articles_anew GROUP BY article)"""
_HELD_WITH_SPANS = f"""
held AS MATERIALIZED (
    SELECT {_HELD_COLUMNS} FROM kept_spans WHERE held
    UNION ALL
    SELECT {_HELD_COLUMNS} FROM held_anew
),
at_liberty AS (
    SELECT person_id FROM kept_spans WHERE NOT held
    UNION ALL
    SELECT person_id FROM at_liberty_anew
),
held_articles AS (
    SELECT article, count(*) AS n
    FROM (SELECT unnest(articles) AS article FROM kept_spans WHERE held) AS kept
    GROUP BY article
    UNION ALL
    SELECT article, count(*) FROM articles_anew GROUP BY article
)"""


def _figures_sql(*, with_basis: bool, spans: bool = False) -> str:
    """The figures statement: every path built here (no basis), or read from a basis with
    the changed case files' built anew; with `spans` (the default deprivation types), also
    the basis's sums of the figures over time and its spans of each person's standing,
    for the people unchanged since it."""
    slots = {**_FIGURE_SLOTS, **(_BASIS_SLOTS if with_basis else {})}
    daily = _daily_ctes(slots, sums_from_basis=spans)
    ctes = ",\n".join(
        [
            *_path_ctes(slots, with_basis=with_basis),
            *([_fill(_CHANGED_PERSONS, slots), _fill(_KEPT_SPANS, slots)] if spans else []),
            _fill(
                """
-- Each case file's state on D, if it is custody or a prosecution still open (the others,
-- most case files of a large data set, count in no figure of the day).
on_day AS MATERIALIZED (
    SELECT x.person_id, x.case_file_id, x.to_status, x.deprivation_type, x.jurisdiction,
           x.sentence_type, x.term_months, x.effective_date, x.held, x.facts_kept,
           x.articles, x.citizenships, x.gender, x.region, x.birth_date
    FROM path x
    WHERE x.effective_date <= {D} AND (x.until IS NULL OR x.until > {D})
      AND (x.held OR x.to_status NOT IN ('released', 'pardoned', 'deported', 'died_in_custody'))"""
                + (" AND x.person_id IN (SELECT person_id FROM changed_persons)" if spans else "")
                + """
),
-- A death in custody ends a person's custody on every case file (a death recorded on one
-- of two is not a person still held on the other).
deaths AS MATERIALIZED (
    SELECT x.person_id, min(x.effective_date) AS died_on
    FROM path x WHERE x.to_status = 'died_in_custody'
    GROUP BY x.person_id
),
-- The recognition on D of each case file in custody then, as known at T: the last decision
-- decided by D (the last given, of those decided the same day).
recognised_on_day AS MATERIALIZED (
    SELECT DISTINCT ON (v.case_file_id) v.case_file_id, d.status
    FROM on_day o
    JOIN recognition_coverage v ON v.case_file_id = o.case_file_id
    JOIN recognition_decision d ON d.id = v.decision_id
    WHERE o.held AND d.recorded_at <= {T} AND d.decided_on <= {D}
    ORDER BY v.case_file_id, """
                + _DECISION_ORDER_DESC
                + """
),
held_files AS MATERIALIZED (
    SELECT o.*, COALESCE(r.status, 'not_assessed') AS recognition
    FROM on_day o
    LEFT JOIN recognised_on_day r ON r.case_file_id = o.case_file_id
    WHERE o.held
      AND o.person_id NOT IN (SELECT person_id FROM deaths WHERE died_on <= {D})
),
held_people AS MATERIALIZED (
    SELECT DISTINCT ON (h.person_id)
           h.person_id, h.case_file_id, h.to_status, h.deprivation_type, h.jurisdiction,
           h.sentence_type, h.term_months,
           bool_or(h.recognition = 'political_prisoner') OVER p AS recognised,
           bool_or(h.recognition = 'politically_persecuted') OVER p AS persecuted,
           h.facts_kept, h.gender, h.citizenships, h.region, h.birth_date
    FROM held_files h
    -- Ordered as the choice of the case file is, so that one sort serves both.
    WINDOW p AS (PARTITION BY h.person_id ORDER BY h.effective_date DESC, h.case_file_id
                 ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
    ORDER BY h.person_id, h.effective_date DESC, h.case_file_id
),
-- Each person's facts as known at T: kept by the basis, or asked.
held_anew AS MATERIALIZED (
    SELECT h.person_id, h.case_file_id, h.to_status, h.deprivation_type, h.jurisdiction,
           h.sentence_type, h.term_months, h.recognised, h.persecuted,
           CASE WHEN h.facts_kept THEN h.gender ELSE pr.gender END AS gender,
           CASE WHEN h.facts_kept THEN h.citizenships ELSE pr.citizenships END AS citizenships,
           CASE WHEN h.facts_kept THEN h.region ELSE pr.region END AS region,
           CASE WHEN h.facts_kept THEN h.birth_date ELSE pr.birth_date END AS birth_date
    FROM held_people h
    LEFT JOIN """
                + _fill(_PERSON_AT, {"PERSON": "h.person_id", "WHEN": "NOT h.facts_kept"})
                + """ AS pr ON true
),
-- The articles each person held is charged under, on any case file they are held on.
articles_anew AS (
    SELECT DISTINCT person_id, article FROM (
        SELECT h.person_id, unnest(h.articles) AS article
        FROM held_files h WHERE h.facts_kept
        UNION ALL
        SELECT h.person_id, charge ->> 'article'
        FROM held_files h
        CROSS JOIN LATERAL (
            SELECT c.charges FROM case_file c
            WHERE c.id = h.case_file_id AND c.facts_since <= {T}
            UNION ALL
            SELECT f.charges FROM case_file_facts_history f
            WHERE f.case_file_id = h.case_file_id
              AND f.valid_from <= {T} AND f.valid_until > {T}
        ) AS known_charges
        CROSS JOIN LATERAL jsonb_array_elements(known_charges.charges) AS charge
        WHERE NOT h.facts_kept
    ) AS each_article WHERE article IS NOT NULL
),
-- The people prosecuted at liberty on D: a prosecution still open, and not held.
at_liberty_anew AS (
    SELECT DISTINCT o.person_id FROM on_day o
    WHERE NOT o.held
      AND o.to_status NOT IN ('released', 'pardoned', 'deported', 'died_in_custody')
      AND NOT EXISTS (SELECT 1 FROM held_anew h WHERE h.person_id = o.person_id)
),
"""
                + (_HELD_WITH_SPANS if spans else _HELD_WITHOUT_SPANS)
                + """,
-- A person leaving custody in the period, once per day and mode whatever the number of
-- case files (a pardon recorded on two case files is one pardon). The mode "pardoned and
-- deported" looks at the deportation by the period's end.
releases AS MATERIALIZED (
    SELECT DISTINCT ON (x.person_id, x.effective_date, x.to_status)
           x.person_id, x.jurisdiction, x.effective_date,
           """
                + _fill(_RELEASE_MODE, {"BY": "{PERIOD_TO}"})
                + """ AS mode
    FROM path x
    WHERE x.was_held AND NOT x.held AND x.to_status <> 'died_in_custody'
      AND x.effective_date BETWEEN {PERIOD_FROM} AND {PERIOD_TO}
    ORDER BY x.person_id, x.effective_date, x.to_status, x.case_file_id
),
in_period AS MATERIALIZED (
    SELECT * FROM path x WHERE x.effective_date BETWEEN {PERIOD_FROM} AND {PERIOD_TO}
),
claims AS MATERIALIZED (
    SELECT e.to_status, e.effective_date, e.effective_precision, s.person_id
    FROM status_event e
    CROSS JOIN """
                + _fill(_CASE_AT, {"CASE": "e.case_file_id"})
                + """ AS s
    WHERE e.confidence = 'unconfirmed' AND e.recorded_at <= {T}
      AND e.effective_date BETWEEN {PERIOD_FROM} AND {PERIOD_TO}
      AND NOT EXISTS (SELECT 1 FROM status_event_retraction r
                      WHERE r.event_id = e.id AND r.recorded_at <= {T})
      AND NOT EXISTS (SELECT 1 FROM status_claim_resolution c
                      WHERE c.event_id = e.id AND c.recorded_at <= {T})
),
months AS (
    SELECT LEAST((m + interval '1 month' - interval '1 day')::date, {D}) AS month_end
    FROM generate_series({SERIES_START}::timestamp, {D}::timestamp, interval '1 month') AS m
),
"""
                + daily
                + """,
-- The figures over time, summed by day.
by_day AS MATERIALIZED (
    SELECT day, measure, sum(n) AS n FROM daily GROUP BY day, measure
),
-- Who was held, kept with the snapshot (never served): the next report of the series
-- compares its own with it instead of computing this one's again.
kept AS (
    INSERT INTO report_snapshot_held (snapshot_id, person_ids)
    SELECT {SNAPSHOT}, COALESCE(array_agg(person_id), '{}') FROM held
),
previously_held AS MATERIALIZED (
    SELECT unnest(person_ids) AS person_id
    FROM report_snapshot_held WHERE snapshot_id = {PREVIOUS}
)""",
                slots,
            ),
        ]
    )
    select = _fill(
        """
SELECT jsonb_build_object(
  'held', jsonb_build_object(
    'total', (SELECT count(*) FROM held),
    'recognised', (SELECT count(*) FROM held WHERE recognised),
    'politically_persecuted', (SELECT count(*) FROM held WHERE persecuted AND NOT recognised),
    'by_status', (SELECT jsonb_object_agg(k, n) FROM
        (SELECT to_status AS k, count(*) AS n FROM held GROUP BY 1) g),
    'by_deprivation', (SELECT jsonb_object_agg(k, n) FROM
        (SELECT deprivation_type AS k, count(*) AS n FROM held GROUP BY 1) g),
    'by_sentence_type', (SELECT jsonb_object_agg(k, n) FROM
        (SELECT sentence_type AS k, count(*) AS n FROM held
         WHERE to_status = 'sentenced' GROUP BY 1) g),
    'by_jurisdiction', (SELECT jsonb_object_agg(k, n) FROM
        (SELECT jurisdiction AS k, count(*) AS n FROM held GROUP BY 1) g)
  ),
  'at_liberty', jsonb_build_object(
    'prosecuted', (SELECT count(*) FROM at_liberty)
  ),
  'period', jsonb_build_object(
    'new_detentions', (SELECT count(DISTINCT (person_id, effective_date)) FROM in_period
        WHERE held AND NOT was_held),
    'new_recognitions', (SELECT count(DISTINCT s.person_id)
        FROM recognition_decision d
        JOIN recognition_coverage v ON v.decision_id = d.id
        CROSS JOIN """
        + _fill(_CASE_AT, {"CASE": "v.case_file_id"})
        + """ AS s
        WHERE d.status = 'political_prisoner' AND d.recorded_at <= {T}
          AND d.decided_on BETWEEN {PERIOD_FROM} AND {PERIOD_TO}
          AND (SELECT p.status
               FROM recognition_coverage pv
               JOIN recognition_decision p ON p.id = pv.decision_id
               WHERE pv.case_file_id = v.case_file_id AND p.recorded_at <= {T}
                 AND (p.decided_on, p.version, p.recorded_at, p.id)
                     < (d.decided_on, d.version, d.recorded_at, d.id)
               ORDER BY """
        + _DECISION_ORDER_DESC.replace("d.", "p.")
        + """
               LIMIT 1) IS DISTINCT FROM 'political_prisoner'),
    'sentences', jsonb_build_object(
      'total', (SELECT count(*) FROM in_period WHERE to_status = 'sentenced'),
      'by_type', (SELECT jsonb_object_agg(k, n) FROM
          (SELECT sentence_type AS k, count(*) AS n FROM in_period
           WHERE to_status = 'sentenced' GROUP BY 1) g),
      'by_term_band', (SELECT jsonb_object_agg(k, n) FROM
          (SELECT """
        + _TERM_BAND
        + """ AS k, count(*) AS n
           FROM in_period WHERE to_status = 'sentenced' GROUP BY 1) g)
    ),
    'released', jsonb_build_object(
      'total', (SELECT count(*) FROM releases
          WHERE effective_date BETWEEN {PERIOD_FROM} AND {PERIOD_TO}),
      'by_mode', (SELECT jsonb_object_agg(k, n) FROM
          (SELECT mode AS k, count(*) AS n FROM releases
           WHERE effective_date BETWEEN {PERIOD_FROM} AND {PERIOD_TO} GROUP BY 1) g)
    ),
    'deported', jsonb_build_object(
      'total', (SELECT count(*) FROM in_period WHERE to_status = 'deported'),
      'by_destination', (SELECT jsonb_object_agg(k, n) FROM
          (SELECT COALESCE(destination_country, 'unknown') AS k, count(*) AS n
           FROM in_period WHERE to_status = 'deported' GROUP BY 1) g)
    ),
    'released_foreign_by_citizenship', (SELECT jsonb_object_agg(k, n) FROM
        (SELECT c.code AS k, count(*) AS n
         FROM releases x
         CROSS JOIN """
        + _fill(_PERSON_AT, {"PERSON": "x.person_id", "WHEN": "true"})
        + """ AS p
         CROSS JOIN LATERAL unnest(p.citizenships) AS c(code)
         WHERE x.effective_date BETWEEN {PERIOD_FROM} AND {PERIOD_TO}
           AND c.code <> x.jurisdiction
         GROUP BY 1) g),
    'deaths_in_custody', (SELECT count(*) FROM deaths
        WHERE died_on BETWEEN {PERIOD_FROM} AND {PERIOD_TO})
  ),
  'cumulative', jsonb_build_object(
    'deaths_in_custody_since_baseline', (SELECT count(*) FROM deaths
        WHERE died_on BETWEEN {BASELINE} AND {D}),
    'detentions_since_baseline', (SELECT COALESCE(sum(n), 0) FROM by_day
        WHERE measure = 'detention' AND day BETWEEN {BASELINE} AND {D}),
    'releases_since_baseline', (SELECT COALESCE(sum(n), 0) FROM by_day
        WHERE measure LIKE 'release:%' AND day BETWEEN {BASELINE} AND {D})
  ),
  'claims', jsonb_build_object('unconfirmed', jsonb_build_object(
    'count', (SELECT count(*) FROM claims),
    'by_status', (SELECT jsonb_object_agg(k, n) FROM
        (SELECT to_status AS k, count(*) AS n FROM claims GROUP BY 1) g),
    'people', (SELECT COALESCE(jsonb_agg(jsonb_build_object(
                  'to_status', to_status,
                  'effective_date', CASE effective_precision
                      WHEN 'year' THEN to_char(effective_date, 'YYYY')
                      WHEN 'month' THEN to_char(effective_date, 'YYYY-MM')
                      ELSE to_char(effective_date, 'YYYY-MM-DD') END,
                  'person_id', person_id)
                ORDER BY effective_date, to_status, person_id), '[]'::jsonb)
              FROM claims)
  )),
  'breakdowns', jsonb_build_object(
    'foreign_by_citizenship', (SELECT jsonb_object_agg(k, n) FROM
        (SELECT c.code AS k, count(*) AS n FROM held h
         CROSS JOIN LATERAL unnest(h.citizenships) AS c(code)
         -- (most people hold only the citizenship of their jurisdiction: not unnested)
         WHERE h.citizenships IS DISTINCT FROM ARRAY[h.jurisdiction::text]
           AND c.code <> h.jurisdiction GROUP BY 1) g),
    'by_gender', (SELECT jsonb_object_agg(k, n) FROM
        (SELECT gender AS k, count(*) AS n FROM held GROUP BY 1) g),
    'by_age_band', (SELECT jsonb_object_agg(k, n) FROM
        (SELECT CASE
            WHEN age IS NULL THEN 'unknown'
            WHEN age < 18 THEN 'under_18'
            WHEN age < 30 THEN '18_29'
            WHEN age < 40 THEN '30_39'
            WHEN age < 50 THEN '40_49'
            WHEN age < 60 THEN '50_59'
            ELSE '60_plus' END AS k, sum(n) AS n
         FROM (SELECT date_part('year', {D}) - date_part('year', birth_date) AS age,
                      count(*) AS n
               FROM held GROUP BY 1) AS by_age
         GROUP BY 1) g),
    'by_region', (SELECT jsonb_object_agg(k, n) FROM
        (SELECT COALESCE(region, 'unknown') AS k, count(*) AS n FROM held GROUP BY 1) g),
    'by_article', (SELECT jsonb_object_agg(k, n) FROM
        (SELECT article AS k, sum(n) AS n FROM held_articles GROUP BY 1) g),
    'by_sentence_band', (SELECT jsonb_object_agg(k, n) FROM
        (SELECT """
        + _TERM_BAND
        + """ AS k, count(*) AS n
         FROM held WHERE to_status = 'sentenced' GROUP BY 1) g)
  ),
  'by_collective_event', (SELECT COALESCE(jsonb_agg(jsonb_build_object(
        'id', ce.id, 'title', ce.title, 'kind', ce.kind,
        'effective_date', CASE ce.effective_precision
            WHEN 'year' THEN to_char(ce.effective_date, 'YYYY')
            WHEN 'month' THEN to_char(ce.effective_date, 'YYYY-MM')
            ELSE to_char(ce.effective_date, 'YYYY-MM-DD') END,
        'to_status', ce.to_status,
        'destination_country', ce.destination_country, 'expelled_to', ce.expelled_to,
        'case_files', g.case_files, 'foreign_nationals', g.foreign_nationals)
      ORDER BY ce.effective_date, ce.id), '[]'::jsonb)
    FROM (SELECT i.collective_event_id,
                 count(DISTINCT i.case_file_id) AS case_files,
                 count(DISTINCT i.person_id) FILTER (WHERE EXISTS (
                     SELECT 1 FROM """
        + _fill(_PERSON_AT, {"PERSON": "i.person_id", "WHEN": "true"})
        + """ AS p WHERE """
        + _fill(_FOREIGN, {"CITIZENSHIPS": "p.citizenships", "HOME": "i.jurisdiction"})
        + """)) AS foreign_nationals
          FROM in_period i WHERE i.collective_event_id IS NOT NULL GROUP BY 1) g
    JOIN collective_event ce ON ce.id = g.collective_event_id),
  'movements', CASE WHEN {PREVIOUS} IS NOT NULL THEN jsonb_build_object(
    'entered_custody', (SELECT COALESCE(jsonb_agg(person_id ORDER BY person_id), '[]'::jsonb)
        FROM held WHERE person_id NOT IN (SELECT person_id FROM previously_held)),
    'left_custody', (SELECT COALESCE(jsonb_agg(person_id ORDER BY person_id), '[]'::jsonb)
        FROM previously_held WHERE person_id NOT IN (SELECT person_id FROM held)),
    'died', (SELECT COALESCE(jsonb_agg(person_id ORDER BY person_id), '[]'::jsonb)
        FROM deaths WHERE died_on > {PREVIOUS_AS_OF} AND died_on <= {D})
  ) END,
  'series', jsonb_build_object(
    'held_by_month', (SELECT COALESCE(jsonb_agg(jsonb_build_object(
          'month_end', to_char(m.month_end, 'YYYY-MM-DD'),
          'held', (SELECT COALESCE(sum(n), 0) FROM by_day
                   WHERE measure = 'held' AND day <= m.month_end),
          'recognised', (SELECT COALESCE(sum(n), 0) FROM by_day
                         WHERE measure = 'recognised' AND day <= m.month_end))
        ORDER BY m.month_end), '[]'::jsonb)
      FROM months m),
    'releases_by_month', (SELECT COALESCE(jsonb_agg(jsonb_build_object(
          'month', to_char(m.month_end, 'YYYY-MM'), 'by_mode', COALESCE(g.by_mode, '{}'))
        ORDER BY m.month_end), '[]'::jsonb)
      FROM months m
      LEFT JOIN (
        SELECT month, jsonb_object_agg(mode, n) AS by_mode
        FROM (SELECT date_trunc('month', day::timestamp) AS month,
                     substr(measure, length('release:') + 1) AS mode, sum(n) AS n
              FROM by_day
              WHERE measure LIKE 'release:%' AND day BETWEEN {SERIES_START} AND {D}
              GROUP BY 1, 2
              HAVING sum(n) <> 0) x
        GROUP BY month
      ) g ON g.month = date_trunc('month', m.month_end::timestamp))
  )
)""",
        slots,
    )
    return "WITH RECURSIVE" + ctes + select


FIGURES_SQL = _figures_sql(with_basis=False)
FIGURES_SQL_WITH_BASIS = _figures_sql(with_basis=True)
# With the basis's sums of the figures over time and its spans of each person's standing:
# kept for the default deprivation types.
FIGURES_SQL_WITH_BASIS_SUMS = _figures_sql(with_basis=True, spans=True)


def _custodial() -> list[str]:
    return sorted(sentence.value for sentence in CUSTODIAL_SENTENCES)


def _complete(figures: dict[str, Any]) -> dict[str, Any]:
    """Every map with a closed set of keys lists them all (zeros included); every other
    map is at least empty, never null."""
    for path, keys in _CLOSED_KEYS.items():
        holder = figures
        for step in path[:-1]:
            holder = holder[step]
        found = holder.get(path[-1]) or {}
        holder[path[-1]] = {key: int(found.get(key, 0)) for key in keys}
    for section in ("held", "period", "breakdowns"):
        for name, value in figures[section].items():
            if value is None:
                figures[section][name] = {}
    for name in ("deported",):
        if figures["period"][name]["by_destination"] is None:
            figures["period"][name]["by_destination"] = {}
    return figures


@dataclass(frozen=True, slots=True)
class Earlier:
    """The previous report of the series, which a new one is compared with."""

    id: uuid.UUID
    as_of: date


@dataclass(frozen=True, slots=True)
class Basis:
    """A path basis a report reads: its id, and the moment from which anything recorded
    makes a case file count as changed since (app/reports/basis.py)."""

    id: uuid.UUID
    changed_after: datetime


# Changes whenever the path CTEs, the sums, the spans or the basis's columns change: a
# basis built otherwise is never read (app/reports/basis.py).
BASIS_FORMAT = "path-4"


@dataclass(frozen=True, slots=True)
class Counted:
    """A report's figures; the claims behind its unconfirmed count, each with the person it
    is about; and, when there is an earlier report, the ids of who entered custody, left
    it and died since. A reader sees those people named only if they may be named when
    the report is read."""

    figures: dict[str, Any]
    claims: list[dict[str, Any]]
    movements: dict[str, list[str]] | None


async def figures(
    connection: asyncpg.Connection,
    question: Question,
    *,
    snapshot_id: uuid.UUID,
    earlier: Earlier | None,
    basis: Basis | None = None,
) -> Counted:
    """Every figure of the status report for `question`, in the shape of docs/reports.md;
    the people held are kept for `snapshot_id` (whose row must be inserted in the same
    transaction: the reference is checked at commit). With a `basis` as known at the
    question's knowledge time or before (held by the transaction: app/reports/basis.py),
    the paths of the case files unchanged since are read from it; the figures are the same
    either way."""
    arguments = _figure_arguments(question, snapshot_id, earlier)
    if basis is None:
        statement = FIGURES_SQL
    else:
        # The basis's sums and spans count the default deprivation types; others are
        # counted here.
        default = set(question.held_deprivation_types) == set(DEFAULT_HELD_DEPRIVATION_TYPES)
        statement = FIGURES_SQL_WITH_BASIS_SUMS if default else FIGURES_SQL_WITH_BASIS
        arguments += [basis.id, basis.changed_after]
    document = await connection.fetchval(statement, *arguments)
    counted = _decoded(document)
    claims: list[dict[str, Any]] = counted["claims"]["unconfirmed"].pop("people")
    movements: dict[str, list[str]] | None = counted.pop("movements")
    return Counted(_complete(counted), claims, movements)


def _figure_arguments(
    question: Question, snapshot_id: uuid.UUID, earlier: Earlier | None
) -> list[Any]:
    return [
        question.as_of,
        question.period_from,
        question.period_to,
        question.as_known_at,
        question.baseline,
        question.jurisdiction,
        [kind.value for kind in question.held_deprivation_types],
        _custodial(),
        question.series_start,
        snapshot_id,
        earlier.id if earlier else None,
        earlier.as_of if earlier else None,
    ]


# Every case file's path as known at $1, kept for basis $2: the same CTEs as a report's,
# for every jurisdiction and with every deprivation type counted, so that `held` and
# `was_held` say whether the status is custody (a report then applies its own choice).
_BASIS_SLOTS_BUILD = {
    "T": "$1::timestamptz",
    "JURISDICTION": "NULL",
    "HELD_TYPES": "$3",
    "CUSTODIAL": "$4",
    "N": "",
    "ONLY:c.id": "",
    "ONLY:h.case_file_id": "",
    "SCOPE_MATERIALIZED": "MATERIALIZED",
}
BASIS_PATH_SQL = (
    """
INSERT INTO report_basis_path (
    basis_id, event_id, case_file_id, person_id, jurisdiction, deprivation_type, to_status,
    sentence_type, term_months, release_reason, destination_country, collective_event_id,
    given, effective_date, until, next_status, held, was_held,
    facts_kept, articles, citizenships, gender, region, birth_date)
WITH RECURSIVE"""
    + ",\n".join(_path_ctes(_BASIS_SLOTS_BUILD, with_basis=False))
    + """,
case_facts AS (
    SELECT c.id, c.charges FROM case_file c WHERE c.facts_since <= $1::timestamptz
    UNION ALL
    SELECT h.case_file_id, h.charges FROM case_file_facts_history h
    WHERE h.valid_from <= $1::timestamptz AND h.valid_until > $1::timestamptz
),
person_facts AS (
    SELECT p.id, p.citizenships, p.gender, p.region, p.birth_date
    FROM person p WHERE p.facts_since <= $1::timestamptz
    UNION ALL
    SELECT h.person_id, h.citizenships, h.gender, h.region, h.birth_date
    FROM person_facts_history h
    WHERE h.valid_from <= $1::timestamptz AND h.valid_until > $1::timestamptz
)
SELECT $2::uuid, x.id, x.case_file_id, x.person_id, x.jurisdiction, x.deprivation_type,
       x.to_status, x.sentence_type, x.term_months, x.release_reason, x.destination_country,
       x.collective_event_id, x.given, x.effective_date, x.until, x.next_status, x.held,
       x.was_held, x.held,
       CASE WHEN x.held THEN ARRAY(SELECT DISTINCT charge ->> 'article'
                                   FROM jsonb_array_elements(cf.charges) AS charge
                                   WHERE charge ->> 'article' IS NOT NULL) END,
       pf.citizenships, pf.gender, pf.region, pf.birth_date
FROM path x
LEFT JOIN case_facts cf ON x.held AND cf.id = x.case_file_id
LEFT JOIN person_facts pf ON x.held AND pf.id = x.person_id
-- Kept in the order of the day each state begins, so that a report's period (its
-- detentions, sentences, releases and deportations) is read together, found by the index
-- on that day. (The standing on a report's day of the people unchanged since the basis is
-- read from the spans, below.)
ORDER BY x.effective_date"""
)


# The sums of the figures over time of basis $1 (counting $3's deprivation types), for all
# jurisdictions and for each: from the paths it keeps, with the recognition decisions
# recorded before its `changed_after` moment $2 — those recorded since make their case
# files count as changed, and a decision stamped before the basis's moment may commit
# after the build: a report takes out exactly what was summed here.
_BASIS_DAILY_SLOTS = {"BASIS": "$1::uuid", "HELD_TYPES": "$3"}
BASIS_DAILY_SQL = (
    """
INSERT INTO report_basis_daily (basis_id, key, day, measure, n)
WITH """
    + ",\n".join(
        [
            _fill(
                _BASIS_SOURCE,
                {
                    **_BASIS_DAILY_SLOTS,
                    "NAME": "kept_source",
                    "KEY": "k.key",
                    "KEYS": f" CROSS JOIN LATERAL (VALUES ('{ALL_JURISDICTIONS}'::text),"
                    " (b.jurisdiction::text)) AS k(key)",
                    "WHERE": "(b.held OR b.was_held OR b.to_status = 'died_in_custody')",
                },
            ),
            _recognition(
                "kept_recognition", "d.recorded_at < $2::timestamptz", "recognition_coverage v"
            ),
            _contributions("kept_counted", "kept_source", "kept_recognition"),
        ]
    )
    + """
SELECT $1::uuid, key, day, measure, sum(n)
FROM kept_counted
GROUP BY key, day, measure
HAVING sum(n) <> 0"""
)


# Each person's standing span by span, of basis $1 (counting $3's deprivation types, with
# the recognition decisions recorded before its `changed_after` moment $2, as its sums):
# between two days on which anything of it may change (a state beginning or ending, a
# death, a recognition decision taking effect), the person is held — on the case file a
# report counts them on, chosen as `held_people` chooses it, recognised if any case file
# they are held on is — or prosecuted at liberty, or neither (no span). A report reads
# the spans on its day for the people unchanged since the basis, and builds the others'
# standing as a report without a basis does (`held_anew`).
BASIS_SPAN_SQL = (
    """
INSERT INTO report_basis_span (
    basis_id, key, only_jurisdiction, person_id, starts, ends, held, case_file_id, to_status,
    deprivation_type, jurisdiction, sentence_type, term_months, recognised, persecuted,
    articles, citizenships, gender, region, birth_date)
WITH
-- The states that may count on a day (custody, a prosecution still open) and the deaths.
source AS MATERIALIZED (
    SELECT b.person_id, b.case_file_id, b.jurisdiction, b.deprivation_type, b.to_status,
           b.sentence_type, b.term_months, b.effective_date AS a,
           COALESCE(b.until, 'infinity'::date) AS b,
           b.held AND b.deprivation_type = ANY($3::text[]) AS held,
           b.articles, b.citizenships::text[], b.gender::text, b.region::text, b.birth_date
    FROM report_basis_path b
    WHERE b.basis_id = $1::uuid
      AND (b.held OR b.to_status NOT IN ('released', 'pardoned', 'deported'))
),
-- A person whose states that may count (and deaths) are in one jurisdiction is counted
-- once, for all and for it.
person_keys AS MATERIALIZED (
    SELECT person_id,
           CASE WHEN min(jurisdiction) = max(jurisdiction) THEN min(jurisdiction) END
               AS only_jurisdiction
    FROM source GROUP BY person_id
),
keyed AS MATERIALIZED (
    SELECT '"""
    + ALL_JURISDICTIONS
    + """'::text AS key, s.*
    FROM source s
    UNION ALL
    SELECT s.jurisdiction, s.*
    FROM source s JOIN person_keys k ON k.person_id = s.person_id
    WHERE k.only_jurisdiction IS NULL
),
deaths AS MATERIALIZED (
    SELECT key, person_id, min(a) AS died_on
    FROM keyed WHERE to_status = 'died_in_custody'
    GROUP BY key, person_id
),
"""
    + _recognition("kept_recognition", "d.recorded_at < $2::timestamptz", "recognition_coverage v")
    + """,
-- The days on which anything of a person's standing may change, each until the next.
breaks AS (
    SELECT key, person_id, a AS day FROM keyed
    UNION
    SELECT key, person_id, b FROM keyed WHERE b < 'infinity'::date
    UNION
    SELECT k.key, k.person_id, x.day
    FROM keyed k
    JOIN kept_recognition r ON r.case_file_id = k.case_file_id
    CROSS JOIN LATERAL (VALUES (r.since), (r.until)) AS x(day)
    WHERE k.held AND x.day > k.a AND x.day < k.b
),
spans AS (
    SELECT key, person_id, day AS starts,
           lead(day, 1, 'infinity'::date) OVER (PARTITION BY key, person_id ORDER BY day)
               AS ends
    FROM breaks
),
-- Each span's states, as a report reads them on its first day (`on_day`, `held_files`).
covering AS MATERIALIZED (
    SELECT s.key, s.person_id, s.starts, s.ends, k.case_file_id, k.to_status,
           k.deprivation_type, k.jurisdiction, k.sentence_type, k.term_months, k.a,
           k.articles, k.citizenships, k.gender, k.region, k.birth_date,
           k.held AND (dd.died_on IS NULL OR dd.died_on > s.starts) AS held,
           NOT k.held AND k.to_status <> 'died_in_custody' AS prosecuted,
           r.status AS recognition
    FROM spans s
    JOIN keyed k ON k.key = s.key AND k.person_id = s.person_id
         AND k.a <= s.starts AND k.b > s.starts
    LEFT JOIN deaths dd ON dd.key = s.key AND dd.person_id = s.person_id
    LEFT JOIN kept_recognition r ON k.held AND r.case_file_id = k.case_file_id
         AND r.since <= s.starts AND (r.until IS NULL OR r.until > s.starts)
),
standing AS (
    SELECT key, person_id, starts, ends, bool_or(held) AS held,
           bool_or(prosecuted) AS prosecuted,
           COALESCE(bool_or(held AND recognition = 'political_prisoner'), false) AS recognised,
           COALESCE(bool_or(held AND recognition = 'politically_persecuted'), false)
               AS persecuted
    FROM covering
    GROUP BY key, person_id, starts, ends
),
chosen AS (
    SELECT DISTINCT ON (key, person_id, starts) *
    FROM covering WHERE held
    ORDER BY key, person_id, starts, a DESC, case_file_id
),
span_articles AS (
    SELECT c.key, c.person_id, c.starts, array_agg(DISTINCT article) AS articles
    FROM covering c CROSS JOIN LATERAL unnest(c.articles) AS article
    WHERE c.held
    GROUP BY c.key, c.person_id, c.starts
)
SELECT $1::uuid, s.key,
       CASE WHEN s.key = '"""
    + ALL_JURISDICTIONS
    + """' THEN k.only_jurisdiction END,
       s.person_id, s.starts, s.ends, s.held, c.case_file_id, c.to_status, c.deprivation_type,
       c.jurisdiction, c.sentence_type, c.term_months, s.recognised, s.persecuted,
       CASE WHEN s.held THEN COALESCE(a.articles, '{}') END, c.citizenships, c.gender,
       c.region, c.birth_date
FROM standing s
JOIN person_keys k ON k.person_id = s.person_id
LEFT JOIN chosen c ON s.held AND c.key = s.key AND c.person_id = s.person_id
     AND c.starts = s.starts
LEFT JOIN span_articles a ON s.held AND a.key = s.key AND a.person_id = s.person_id
     AND a.starts = s.starts
WHERE s.held OR s.prosecuted
-- In the order the spans end, then begin, so that those on a report's day (and on any
-- day since) lie together at the end of the table, found by their index on both.
ORDER BY s.ends, s.starts"""
)


async def build_basis(
    connection: asyncpg.Connection,
    basis_id: uuid.UUID,
    known_at: datetime,
    changed_after: datetime,
) -> int:
    """Keep every case file's path as known at `known_at` for basis `basis_id` (whose row
    is written in the same transaction), and the sums of the figures over time; the
    number of events kept."""
    status = await connection.execute(
        BASIS_PATH_SQL,
        known_at,
        basis_id,
        [kind.value for kind in DeprivationType],
        _custodial(),
    )
    # The sums are a large statement over what was just written: planned on its statistics.
    await connection.execute("ANALYZE report_basis_path")
    await connection.execute(
        BASIS_DAILY_SQL,
        basis_id,
        changed_after,
        [kind.value for kind in DEFAULT_HELD_DEPRIVATION_TYPES],
    )
    await connection.execute(
        BASIS_SPAN_SQL,
        basis_id,
        changed_after,
        [kind.value for kind in DEFAULT_HELD_DEPRIVATION_TYPES],
    )
    await connection.execute("ANALYZE report_basis_span")
    return int(status.rsplit(" ", 1)[-1])


# Who may be named now, with their first public spelling: the family consented and none of
# their case files is high-confidentiality. Asked when a report is read, never stored, so
# that a withdrawn consent takes effect at once, in every report.
# A person merged into another since a report was stored is named as the one they are now.
PUBLIC_NAMES_SQL = f"""
SELECT asked.id,
       (SELECT n.value FROM person_name n
        WHERE n.person_id = p.id AND n.is_public AND n.kind <> 'hidden'
        ORDER BY n.position LIMIT 1) AS name
FROM person asked
JOIN person p ON p.id = coalesce(asked.merged_into, asked.id)
WHERE asked.id = ANY($1::uuid[]) AND {SQL_PUBLICLY_NAMEABLE}
"""


async def public_names(
    connection: asyncpg.Connection, person_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """The people among `person_ids` who may be named now, and the name to show."""
    if not person_ids:
        return {}
    rows = await connection.fetch(PUBLIC_NAMES_SQL, list(person_ids))
    return {row["id"]: row["name"] for row in rows if row["name"] is not None}


def _decoded(document: Any) -> dict[str, Any]:
    decoded: dict[str, Any] = orjson.loads(document) if isinstance(document, str) else document
    return decoded


# The public list ---------------------------------------------------------------------------

_PUBLIC_SLOTS = {
    "D": "$1::date",
    "T": "$2::timestamptz",
    "JURISDICTION": "$3",
    "HELD_TYPES": "$4",
    "CUSTODIAL": "$5",
    "N": "",
    "ONLY:c.id": "",
    "ONLY:h.case_file_id": "",
    "SCOPE_MATERIALIZED": "MATERIALIZED",
}


def _public_list_sql() -> str:
    slots = _PUBLIC_SLOTS
    ctes = ",\n".join(
        [
            _fill(_CORRECTIONS, {"CORRECTED_ONLY": ""}),
            _fill(_SCOPE, slots),
            _fill(_KNOWN, slots),
            _fill(
                """
recognised_files AS MATERIALIZED (
    SELECT x.person_id, x.case_file_id, x.effective_date, x.to_status, x.sentence_type,
           x.term_months
    FROM path x
    WHERE x.held AND x.effective_date <= {D} AND (x.until IS NULL OR x.until > {D})
      AND (SELECT d.status
           FROM recognition_coverage v
           JOIN recognition_decision d ON d.id = v.decision_id
           WHERE v.case_file_id = x.case_file_id AND d.decided_on <= {D}
             AND d.recorded_at <= {T}
           ORDER BY """
                + _DECISION_ORDER_DESC
                + """
           LIMIT 1) = 'political_prisoner'
      AND x.person_id > $6::uuid
      AND x.person_id NOT IN (SELECT person_id FROM path
                              WHERE to_status = 'died_in_custody' AND effective_date <= {D})
),
consented AS MATERIALIZED (
    SELECT DISTINCT f.person_id
    FROM recognised_files f
    JOIN person p ON p.id = f.person_id
    WHERE """
                + SQL_PUBLICLY_NAMEABLE
                + """
    ORDER BY f.person_id
    LIMIT $7
)""",
                slots,
            ),
        ]
    )
    select = _fill(
        """
SELECT c.person_id,
       ARRAY(SELECT n.value FROM person_name n
             WHERE n.person_id = c.person_id AND n.is_public AND n.kind <> 'hidden'
             ORDER BY n.position) AS names,
       extract(year FROM p.birth_date)::int AS birth_year,
       p.region,
       ARRAY(SELECT DISTINCT charge ->> 'article'
             FROM recognised_files f
             JOIN case_file cf ON cf.id = f.case_file_id
             CROSS JOIN LATERAL jsonb_array_elements(cf.charges) AS charge
             WHERE f.person_id = c.person_id AND charge ->> 'article' IS NOT NULL
             ORDER BY 1) AS articles,
       primary_file.sentence_type,
       primary_file.term_months,
       (SELECT max(x.effective_date) FROM path x
        WHERE x.case_file_id = primary_file.case_file_id AND x.held AND NOT x.was_held
          AND x.effective_date <= {D}) AS held_since
FROM consented c
JOIN person p ON p.id = c.person_id
CROSS JOIN LATERAL (
    SELECT f.case_file_id,
           CASE WHEN f.to_status = 'sentenced' THEN f.sentence_type END AS sentence_type,
           CASE WHEN f.to_status = 'sentenced' THEN f.term_months END AS term_months
    FROM recognised_files f
    WHERE f.person_id = c.person_id
    ORDER BY f.effective_date DESC, f.case_file_id
    LIMIT 1
) AS primary_file
ORDER BY c.person_id""",
        slots,
    )
    return "WITH RECURSIVE" + ctes + select


PUBLIC_LIST_SQL = _public_list_sql()
# Before every person id: where the public list starts.
_BEFORE_ALL = uuid.UUID(int=0)


async def public_list(
    connection: asyncpg.Connection,
    *,
    as_of: date,
    as_known_at: datetime,
    jurisdiction: str | None,
    after: uuid.UUID | None,
    limit: int | None,
) -> list[dict[str, Any]]:
    """One page (or, without a limit, all) of the recognised political prisoners held on
    `as_of` whose families consented to publication (and none of whose case files is
    high-confidentiality), in person id order after `after`; public-tier fields only."""
    rows = await connection.fetch(
        PUBLIC_LIST_SQL,
        as_of,
        as_known_at,
        jurisdiction,
        [kind.value for kind in DEFAULT_HELD_DEPRIVATION_TYPES],
        _custodial(),
        after or _BEFORE_ALL,
        limit,
    )
    return [dict(row) for row in rows]

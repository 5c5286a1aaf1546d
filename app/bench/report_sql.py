"""The report benchmark's baseline: the status report's figures (docs/reports.md) as the
best single SQL statement we could write by hand, independently of app/reports/asof.py.
The API must stay within 1.5× of its time.

The plan: one scan of the status events known at T (with the claims pending at T), one
window pass over each case file's path (previous and next event), materialised once;
every figure is then an aggregate over that path. The monthly series use the
"islands" of each person's custody (a person with two held case files counts once) and
a running sum of their starts and ends by month, not a join of every month with every
stretch.
"""

from datetime import date, datetime
from typing import Any

import asyncpg
import orjson

CUSTODIAL = ["imprisonment", "restriction_of_freedom_open_facility", "compulsory_treatment"]
HELD_DEPRIVATION_TYPES = [
    "pretrial_custody",
    "imprisonment",
    "restriction_of_freedom",
    "psychiatric",
]

# Just-in-time compilation costs seconds on a statement this size and gains nothing on
# these aggregates; the sorts of a 1M-event path fit in memory with a larger work_mem (the
# engine's own, app/reports/knowledge.py).
SQL_SETTINGS = "SET LOCAL jit = off; SET LOCAL work_mem = '1GB'"
# $1 as_of, $2 period from, $3 period to, $4 as known at, $5 baseline, $6 jurisdiction,
# $7 held deprivation types, $8 custodial sentence types, $9 first month of the series.
SQL_STATUS_REPORT = """
WITH case_facts AS NOT MATERIALIZED (
    -- A case file's counted facts as known at T: the row, or the version it had then.
    SELECT c.id, coalesce(h.person_id, c.person_id) AS person_id,
           coalesce(h.jurisdiction, c.jurisdiction) AS jurisdiction,
           coalesce(h.deprivation_type, c.deprivation_type) AS deprivation_type,
           coalesce(h.charges, c.charges) AS charges
    FROM case_file c
    LEFT JOIN case_file_facts_history h
           ON h.case_file_id = c.id AND c.facts_since > $4::timestamptz
          AND h.valid_from <= $4::timestamptz AND h.valid_until > $4::timestamptz
),
person_facts AS NOT MATERIALIZED (
    SELECT p.id, coalesce(h.citizenships, p.citizenships) AS citizenships,
           coalesce(h.gender, p.gender) AS gender, coalesce(h.region, p.region) AS region,
           CASE WHEN h.id IS NULL THEN p.birth_date ELSE h.birth_date END AS birth_date
    FROM person p
    LEFT JOIN person_facts_history h
           ON h.person_id = p.id AND p.facts_since > $4::timestamptz
          AND h.valid_from <= $4::timestamptz AND h.valid_until > $4::timestamptz
),
superseded AS (
    SELECT r.superseded_by AS id, o.position
    FROM status_event_retraction r JOIN status_event o ON o.id = r.event_id
    WHERE r.superseded_by IS NOT NULL AND r.recorded_at <= $4::timestamptz
),
recorded AS (
    SELECT e.case_file_id, c.person_id, c.deprivation_type, c.jurisdiction, e.to_status,
           e.effective_date AS day, e.collective_event_id, e.position,
           coalesce(s.position, e.position) AS ord,
           e.details->>'sentence_type' AS sentence_type,
           (e.details->>'term_months')::integer AS term_months,
           e.details->>'release_reason' AS release_reason,
           e.details->>'destination_country' AS destination,
           (e.confidence <> 'unconfirmed' OR settled.outcome IS NOT DISTINCT FROM 'confirmed')
               AS on_path,
           (e.to_status = 'detained'
            OR (e.to_status = 'sentenced' AND e.details->>'sentence_type' = ANY($8::text[])
                AND (e.details->>'in_absentia') IS DISTINCT FROM 'true'))
           AND c.deprivation_type = ANY($7::text[]) AS held
    FROM status_event e
    JOIN case_facts c ON c.id = e.case_file_id AND c.jurisdiction = $6::text
    LEFT JOIN status_claim_resolution settled
           ON settled.event_id = e.id AND settled.recorded_at <= $4::timestamptz
    LEFT JOIN superseded s ON s.id = e.id
    WHERE e.recorded_at <= $4::timestamptz
      AND NOT EXISTS (SELECT 1 FROM status_event_retraction r
                      WHERE r.event_id = e.id AND r.recorded_at <= $4::timestamptz)
      AND (e.confidence <> 'unconfirmed' OR settled.outcome IS DISTINCT FROM 'rejected')
),
path AS MATERIALIZED (
    SELECT r.*,
           coalesce(lag(r.held) OVER w, false) AS was_held,
           lead(r.day) OVER w AS next_day,
           lead(r.to_status) OVER w AS next_status
    FROM recorded r
    -- pending claims fall in partitions of their own: never on a path
    WINDOW w AS (PARTITION BY r.case_file_id, r.on_path ORDER BY r.day, r.ord, r.position)
),
on_path AS (SELECT * FROM path WHERE on_path),
state_on_d AS MATERIALIZED (
    SELECT * FROM on_path WHERE day <= $1::date AND (next_day IS NULL OR next_day > $1::date)
),
-- A death in custody ends the person's custody on every case file, from its day.
deaths AS MATERIALIZED (
    SELECT person_id, min(day) AS died_on FROM on_path
    WHERE to_status = 'died_in_custody' GROUP BY person_id
),
held_cases AS MATERIALIZED (
    SELECT * FROM state_on_d s
    WHERE s.held AND NOT EXISTS (SELECT 1 FROM deaths d
                                 WHERE d.person_id = s.person_id AND d.died_on <= $1::date)
),
recognition_now AS MATERIALIZED (
    SELECT DISTINCT ON (v.case_file_id) v.case_file_id, d.status
    FROM recognition_coverage v JOIN recognition_decision d ON d.id = v.decision_id
    WHERE v.case_file_id IN (SELECT case_file_id FROM held_cases)
      AND d.decided_on <= $1::date AND d.recorded_at <= $4::timestamptz
    ORDER BY v.case_file_id, d.version DESC
),
held_person AS MATERIALIZED (
    SELECT main.*, flags.recognised, flags.persecuted, p.gender, p.birth_date, p.region,
           p.citizenships
    FROM (SELECT DISTINCT ON (person_id) * FROM held_cases
          ORDER BY person_id, day DESC, case_file_id) main
    JOIN (SELECT h.person_id,
                 bool_or(n.status = 'political_prisoner') AS recognised,
                 bool_or(n.status = 'politically_persecuted') AS persecuted
          FROM held_cases h LEFT JOIN recognition_now n USING (case_file_id)
          GROUP BY h.person_id) flags USING (person_id)
    JOIN person_facts p ON p.id = main.person_id
),
movements AS MATERIALIZED (
    SELECT p.*,
           p.held AND NOT p.was_held AS detention,
           p.was_held AND NOT p.held AND p.to_status <> 'died_in_custody' AS release,
           CASE
               WHEN p.to_status = 'released'
                   THEN coalesce(p.release_reason, 'other')
               WHEN p.to_status = 'pardoned' AND p.next_status = 'deported'
                    AND p.next_day <= $3::date THEN 'pardoned_and_deported'
               WHEN p.to_status = 'pardoned' THEN 'pardoned'
               WHEN p.to_status = 'deported' THEN 'deported_without_pardon'
               WHEN p.to_status = 'charged' THEN 'released_pending_trial'
               WHEN p.to_status = 'sentenced' THEN 'non_custodial_sentence'
               ELSE 'other'
           END AS mode
    FROM on_path p
    WHERE p.day BETWEEN least($2::date, $5::date, $9::date) AND greatest($3::date, $1::date)
),
in_period AS MATERIALIZED (SELECT * FROM movements WHERE day BETWEEN $2::date AND $3::date),
months AS (
    SELECT m::date AS month_start,
           least((m + interval '1 month' - interval '1 day')::date, $1::date) AS month_end
    FROM generate_series($9::date, date_trunc('month', $1::date), interval '1 month') m
),
-- Custody (and recognised custody) of each person as islands of days, within the series.
recognition_stretch AS (
    SELECT v.case_file_id, d.status, d.decided_on AS start,
           lead(d.decided_on) OVER (PARTITION BY v.case_file_id ORDER BY d.version) AS stop
    FROM recognition_coverage v JOIN recognition_decision d ON d.id = v.decision_id
    WHERE d.recorded_at <= $4::timestamptz
),
held_stretch AS MATERIALIZED (
    SELECT o.case_file_id, o.person_id, greatest(o.day, $9::date) AS start,
           least(coalesce(o.next_day, $1::date + 1), $1::date + 1,
                 coalesce(d.died_on, $1::date + 1)) AS stop
    FROM on_path o LEFT JOIN deaths d ON d.person_id = o.person_id
    WHERE o.held AND o.day <= $1::date AND (o.next_day IS NULL OR o.next_day > $9::date)
),
stretches AS (
    SELECT 'held' AS kind, person_id, start, stop FROM held_stretch WHERE start < stop
    UNION ALL
    SELECT 'recognised', h.person_id, greatest(h.start, r.start),
           least(h.stop, coalesce(r.stop, h.stop))
    FROM held_stretch h
    JOIN recognition_stretch r ON r.case_file_id = h.case_file_id
     AND r.status = 'political_prisoner' AND r.start < h.stop
     AND (r.stop IS NULL OR r.stop > h.start)
),
marked AS (
    SELECT kind, start, stop,
           CASE WHEN start <= max(stop) OVER (
                    PARTITION BY kind, person_id ORDER BY start, stop
                    ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                THEN 0 ELSE 1 END AS opens,
           person_id
    FROM stretches WHERE start < stop
),
islands AS (
    SELECT kind, min(start) AS start, max(stop) AS stop
    FROM (SELECT *, sum(opens) OVER (PARTITION BY kind, person_id ORDER BY start, stop)
                 AS island FROM marked) numbered
    GROUP BY kind, person_id, island
),
month_changes AS (
    SELECT kind, date_trunc('month', day)::date AS month_start, sum(change) AS change
    FROM (SELECT kind, start AS day, 1 AS change FROM islands
          UNION ALL SELECT kind, stop, -1 FROM islands WHERE stop <= $1::date) changes
    GROUP BY 1, 2
),
series_held AS (
    SELECT m.month_end,
           sum(coalesce(c.change, 0)) OVER (ORDER BY m.month_start) AS held,
           m.month_start
    FROM months m LEFT JOIN month_changes c ON c.month_start = m.month_start AND c.kind = 'held'
),
series_recognised AS (
    SELECT m.month_start,
           sum(coalesce(c.change, 0)) OVER (ORDER BY m.month_start) AS recognised
    FROM months m
    LEFT JOIN month_changes c ON c.month_start = m.month_start AND c.kind = 'recognised'
),
claims AS MATERIALIZED (
    SELECT p.case_file_id, p.person_id, p.to_status, p.day
    FROM path p WHERE NOT p.on_path AND p.day BETWEEN $2::date AND $3::date
),
named AS (
    SELECT person.id,
           (SELECT n.value FROM person_name n WHERE n.person_id = person.id AND n.is_public
            ORDER BY n.position LIMIT 1) AS name
    FROM person
    WHERE person.id IN (SELECT person_id FROM claims) AND person.publish_consent
      AND NOT EXISTS (SELECT 1 FROM case_file c
                      WHERE c.person_id = person.id AND c.confidentiality = 'high')
),
foreign_release AS (
    SELECT citizenship, count(DISTINCT (m.person_id, m.day, m.to_status)) AS count
    FROM in_period m JOIN person_facts p ON p.id = m.person_id,
         unnest(p.citizenships) citizenship
    WHERE m.release AND citizenship <> m.jurisdiction
    GROUP BY citizenship
),
new_recognitions AS (
    SELECT count(DISTINCT d.person_id) AS count
    FROM recognition_decision d
    JOIN recognition_coverage v ON v.decision_id = d.id
    JOIN case_facts c ON c.id = v.case_file_id AND c.jurisdiction = $6::text
    LEFT JOIN LATERAL (
        SELECT before.status FROM recognition_coverage bv
        JOIN recognition_decision before ON before.id = bv.decision_id
        WHERE bv.case_file_id = v.case_file_id AND before.version < d.version
          AND before.recorded_at <= $4::timestamptz
        ORDER BY before.version DESC LIMIT 1
    ) previous ON true
    WHERE d.status = 'political_prisoner' AND d.decided_on BETWEEN $2::date AND $3::date
      AND d.recorded_at <= $4::timestamptz AND previous.status IS DISTINCT FROM 'political_prisoner'
),
collective AS (
    SELECT k.id, k.title, k.kind, k.effective_date, k.to_status, k.destination_country,
           k.expelled_to, count(DISTINCT m.case_file_id) AS case_files,
           count(DISTINCT m.case_file_id) FILTER (
               WHERE EXISTS (SELECT 1 FROM unnest(p.citizenships) x WHERE x <> m.jurisdiction)
           ) AS foreign_nationals
    FROM in_period m
    JOIN collective_event k ON k.id = m.collective_event_id
    JOIN person_facts p ON p.id = m.person_id
    GROUP BY k.id
),
term AS (
    SELECT *, CASE
        WHEN term_months IS NULL THEN 'no_term' WHEN term_months < 12 THEN 'under_1y'
        WHEN term_months < 36 THEN '1_3y' WHEN term_months < 60 THEN '3_5y'
        WHEN term_months < 120 THEN '5_10y' ELSE '10y_plus' END AS band
    FROM in_period WHERE to_status = 'sentenced'
)
SELECT jsonb_build_object(
  'held', (SELECT jsonb_build_object(
      'total', count(*),
      'recognised', count(*) FILTER (WHERE recognised),
      'politically_persecuted', count(*) FILTER (WHERE persecuted),
      'by_status', jsonb_build_object(
          'detained', count(*) FILTER (WHERE to_status = 'detained'),
          'sentenced', count(*) FILTER (WHERE to_status = 'sentenced')))
      FROM held_person)
    || jsonb_build_object(
      'by_deprivation', (SELECT jsonb_object_agg(deprivation_type, n) FROM
          (SELECT deprivation_type, count(*) n FROM held_person GROUP BY 1) x),
      'by_sentence_type', (SELECT coalesce(jsonb_object_agg(t, n), '{}') FROM
          (SELECT sentence_type t, count(*) n FROM held_person
           WHERE to_status = 'sentenced' GROUP BY 1) x),
      'by_jurisdiction', (SELECT jsonb_object_agg(jurisdiction, n) FROM
          (SELECT jurisdiction, count(*) n FROM held_person GROUP BY 1) x)),
  'at_liberty', jsonb_build_object('prosecuted', (
      SELECT count(DISTINCT s.person_id) FROM state_on_d s
      WHERE NOT s.held AND s.to_status IN ('charged', 'sentenced', 'detained')
        AND NOT EXISTS (SELECT 1 FROM held_person h WHERE h.person_id = s.person_id))),
  'period', (SELECT jsonb_build_object(
      -- a detention once per person and day, a release once per person, day and status
      'new_detentions', count(DISTINCT (person_id, day)) FILTER (WHERE detention),
      'released', jsonb_build_object(
          'total', count(DISTINCT (person_id, day, to_status)) FILTER (WHERE release)),
      'deaths_in_custody', (SELECT count(*) FROM deaths
                            WHERE died_on BETWEEN $2::date AND $3::date))
      FROM in_period)
    || jsonb_build_object(
      'new_recognitions', (SELECT count FROM new_recognitions),
      'sentences', (SELECT jsonb_build_object('total', count(*),
          'by_type', (SELECT coalesce(jsonb_object_agg(t, n), '{}') FROM
              (SELECT sentence_type t, count(*) n FROM term GROUP BY 1) x),
          'by_term_band', (SELECT coalesce(jsonb_object_agg(band, n), '{}') FROM
              (SELECT band, count(*) n FROM term GROUP BY 1) x)) FROM term),
      'released_by_mode', (SELECT coalesce(jsonb_object_agg(mode, n), '{}') FROM
          (SELECT mode, count(DISTINCT (person_id, day, to_status)) n FROM in_period
           WHERE release GROUP BY 1) x),
      'deported', (SELECT jsonb_build_object('total', coalesce(sum(n), 0),
          'by_destination', coalesce(jsonb_object_agg(d, n), '{}')) FROM
          (SELECT destination d, count(*) n FROM in_period
           WHERE to_status = 'deported' GROUP BY 1) x),
      'released_foreign_by_citizenship', (SELECT coalesce(jsonb_object_agg(citizenship,
          count), '{}') FROM foreign_release)),
  'cumulative', (SELECT jsonb_build_object(
      'deaths_in_custody_since_baseline', (SELECT count(*) FROM deaths
                                           WHERE died_on BETWEEN $5::date AND $1::date),
      'detentions_since_baseline', count(DISTINCT (person_id, day)) FILTER (WHERE detention),
      'releases_since_baseline',
          count(DISTINCT (person_id, day, to_status)) FILTER (WHERE release))
      FROM movements WHERE day BETWEEN $5::date AND $1::date),
  'claims', (SELECT jsonb_build_object('count', count(*),
      'by_status', (SELECT coalesce(jsonb_object_agg(to_status, n), '{}') FROM
          (SELECT to_status, count(*) n FROM claims GROUP BY 1) x),
      'items', coalesce(jsonb_agg(jsonb_build_object('to_status', c.to_status,
          'effective_date', c.day, 'name', named.name) ORDER BY c.day, c.case_file_id), '[]'))
      FROM claims c LEFT JOIN named ON named.id = c.person_id),
  'breakdowns', jsonb_build_object(
      'foreign_by_citizenship', (SELECT coalesce(jsonb_object_agg(c, n), '{}') FROM
          (SELECT c, count(*) n FROM held_person, unnest(citizenships) c
           WHERE c <> jurisdiction GROUP BY 1) x),
      'by_gender', (SELECT jsonb_object_agg(gender, n) FROM
          (SELECT gender, count(*) n FROM held_person GROUP BY 1) x),
      'by_age_band', (SELECT jsonb_object_agg(band, n) FROM
          (SELECT CASE WHEN birth_date IS NULL THEN 'unknown'
                       WHEN age < 18 THEN 'under_18' WHEN age < 30 THEN '18_29'
                       WHEN age < 40 THEN '30_39' WHEN age < 50 THEN '40_49'
                       WHEN age < 60 THEN '50_59' ELSE '60_plus' END band, count(*) n
           FROM (SELECT birth_date, extract(year FROM $1::date)
                        - extract(year FROM birth_date) AS age FROM held_person) a
           GROUP BY 1) x),
      'by_region', (SELECT jsonb_object_agg(coalesce(region, 'unknown'), n) FROM
          (SELECT region, count(*) n FROM held_person GROUP BY 1) x),
      'by_article', (SELECT coalesce(jsonb_object_agg(article, n), '{}') FROM
          (SELECT charge->>'article' article, count(DISTINCT h.person_id) n
           FROM held_cases h JOIN case_facts c ON c.id = h.case_file_id,
                jsonb_array_elements(c.charges) charge GROUP BY 1) x),
      'by_sentence_band', (SELECT coalesce(jsonb_object_agg(band, n), '{}') FROM
          (SELECT CASE
               WHEN term_months IS NULL THEN 'no_term' WHEN term_months < 12 THEN 'under_1y'
               WHEN term_months < 36 THEN '1_3y' WHEN term_months < 60 THEN '3_5y'
               WHEN term_months < 120 THEN '5_10y' ELSE '10y_plus' END band, count(*) n
           FROM held_person WHERE to_status = 'sentenced' GROUP BY 1) x)),
  'by_collective_event', (SELECT coalesce(jsonb_agg(to_jsonb(collective)
      ORDER BY effective_date, id), '[]') FROM collective),
  'series', jsonb_build_object(
      'held_by_month', (SELECT jsonb_agg(jsonb_build_object('month_end', h.month_end,
          'held', h.held, 'recognised', r.recognised) ORDER BY h.month_start)
          FROM series_held h JOIN series_recognised r USING (month_start)),
      'releases_by_month', (SELECT coalesce(jsonb_agg(jsonb_build_object('month', label,
          'by_mode', by_mode) ORDER BY label), '[]') FROM
          (SELECT to_char(month_start, 'YYYY-MM') AS label, jsonb_object_agg(mode, n) AS by_mode
           FROM (SELECT month_start, month_mode AS mode,
                        count(DISTINCT (person_id, day, to_status)) n
                 FROM (SELECT *, date_trunc('month', day) AS month_start,
                              -- "pardoned and deported" looks at the month's end
                              CASE WHEN to_status <> 'pardoned' THEN mode
                                   WHEN next_status = 'deported' AND next_day <= least(
                                       (date_trunc('month', day) + interval '1 month'
                                        - interval '1 day')::date, $1::date)
                                   THEN 'pardoned_and_deported' ELSE 'pardoned' END
                                  AS month_mode
                       FROM movements
                       WHERE release AND day BETWEEN $9::date AND $1::date) r
                 GROUP BY 1, 2) x
           GROUP BY 1) y))
)
"""


async def status_figures(
    connection: asyncpg.Connection,
    *,
    as_of: date,
    period: tuple[date, date],
    as_known_at: datetime,
    baseline: date,
    jurisdiction: str,
    chart_years: int = 3,
) -> dict[str, Any]:
    """The figures of a status report, computed by the hand-written statement."""
    if as_of.month == 12:
        first_month = date(as_of.year - chart_years + 1, 1, 1)
    else:
        first_month = date(as_of.year - chart_years, as_of.month + 1, 1)
    async with connection.transaction(readonly=True):
        await connection.execute(SQL_SETTINGS)
        text = await connection.fetchval(
            SQL_STATUS_REPORT,
            as_of,
            period[0],
            period[1],
            as_known_at,
            baseline,
            jurisdiction,
            HELD_DEPRIVATION_TYPES,
            CUSTODIAL,
            first_month,
        )
    figures: dict[str, Any] = orjson.loads(text) if isinstance(text, str) else text
    return figures

"""Claims, the path in effective order, corrections, `charged`, sentence types.

- `charged` joins the statuses (a second start: prosecuted but not held).
- Unconfirmed events become claims that move nothing until confirmed or rejected
  (`status_claim_resolution`); a supersession is a retraction naming its correction
  (`status_event_retraction.superseded_by`).
- A case file carries more derived columns: status_confidence, detained_precision,
  in_custody, sentence_type, pending_claims; `court_decisions` is now derived from the
  path's `sentenced` events, whose details are the one record of a sentence.
- Collective events: `expelled_to` (pardoned and expelled) and their retraction.

Existing data is carried over: each `sentenced` event gets a sentence type (a fine
alone: fine; otherwise imprisonment) and the court, term, regime and fine of the court
decision of its date (the same written date, else one whose partial date may be that
day); what was added is said in its details' `carried_over` (the one time this project
writes to recorded events: the sentence had no other home). Decisions matching no
sentenced event are kept, and shown, as `court_decisions_unmatched`. A case file whose path
would rest only on unconfirmed events (or become invalid without them) keeps its status:
those claims are confirmed by this migration as of their recording, with a reason that
says so. Then every case file's derived columns are recomputed from its path in
effective order; a path valid in recording order but not in effective order is named in
the migration's log.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 23:00:00
"""

import json
import logging
from collections.abc import Sequence
from datetime import date
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from app.core.ids import new_id

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES_BEFORE = [
    "detained", "sentenced", "released", "pardoned", "deported", "died_in_custody",
]  # fmt: skip
STATUSES = [*STATUSES_BEFORE[:1], "charged", *STATUSES_BEFORE[1:]]
CONFIDENCES = ["confirmed", "reported", "unconfirmed"]
PRECISIONS = ["day", "month", "year"]
SENTENCE_TYPES = [
    "imprisonment", "restriction_of_freedom_open_facility", "restriction_of_freedom_at_home",
    "suspended", "fine", "compulsory_treatment",
]  # fmt: skip
CUSTODIAL = {"imprisonment", "restriction_of_freedom_open_facility", "compulsory_treatment"}
# The transition table as of this revision (app/cases/statuses.py may move on).
_ENDS = {"released", "pardoned", "deported", "died_in_custody"}
TRANSITIONS: dict[str | None, set[str]] = {
    None: {"detained", "charged"},
    "charged": {"detained", "sentenced", "released"},
    "detained": {"charged", "sentenced", *_ENDS},
    "sentenced": {"sentenced", "detained", "charged", *_ENDS},
    "released": {"deported"},
    "pardoned": {"deported"},
    "deported": set(),
    "died_in_custody": set(),
}
log = logging.getLogger("alembic.runtime.migration")
CARRIED_OVER = (
    "Confirmed by migration 0009: this unconfirmed event already set the case file's status "
    "before claims stopped moving it."
)


def _in(values: list[str]) -> str:
    return ", ".join(f"'{value}'" for value in values)


def _replace_check(table: str, name: str, column: str, values: list[str]) -> None:
    op.drop_constraint(op.f(f"ck_{table}_{name}"), table, type_="check")
    op.create_check_constraint(op.f(f"ck_{table}_{name}"), table, f"{column} IN ({_in(values)})")


def upgrade() -> None:
    for table, column in (
        ("case_file", "status"),
        ("status_event", "to_status"),
        ("collective_event", "to_status"),
    ):
        _replace_check(table, f"{column}_allowed", column, STATUSES)
    op.add_column("case_file", sa.Column("status_confidence", sa.String(12), nullable=True))
    op.add_column("case_file", sa.Column("detained_precision", sa.String(5), nullable=True))
    op.add_column("case_file", sa.Column("in_custody", sa.Boolean(), nullable=True))
    op.add_column("case_file", sa.Column("sentence_type", sa.String(40), nullable=True))
    op.add_column(
        "case_file",
        sa.Column("pending_claims", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column(
        "case_file",
        sa.Column("court_decisions_unmatched", postgresql.JSONB(), nullable=True),
    )
    op.add_column(
        "status_event_retraction",
        sa.Column(
            "superseded_by",
            sa.Uuid(),
            sa.ForeignKey(
                "status_event.id", name="fk_status_event_retraction_superseded_by_status_event"
            ),
            nullable=True,
        ),
    )
    op.create_table(
        "status_claim_resolution",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("event_id", sa.Uuid(), sa.ForeignKey("status_event.id"), nullable=False),
        sa.Column("case_file_id", sa.Uuid(), sa.ForeignKey("case_file.id"), nullable=False),
        sa.Column("outcome", sa.String(10), nullable=False),
        sa.Column("confidence", sa.String(12), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("source_ids", postgresql.ARRAY(sa.Uuid()), nullable=False, server_default="{}"),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.Uuid(), nullable=True),
        sa.CheckConstraint("outcome IN ('confirmed', 'rejected')", name="outcome_allowed"),
        sa.CheckConstraint(f"confidence IN ({_in(CONFIDENCES)})", name="confidence_allowed"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_index(
        "ix_status_claim_resolution_case_file_id", "status_claim_resolution", ["case_file_id"]
    )
    op.add_column("collective_event", sa.Column("expelled_to", sa.String(2), nullable=True))
    op.add_column("collective_event", sa.Column("retraction_reason", sa.Text(), nullable=True))
    op.add_column(
        "collective_event",
        sa.Column("retracted_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column("collective_event", sa.Column("retracted_by", sa.Uuid(), nullable=True))

    _carry_over(op.get_bind())

    for column in ("status_confidence", "detained_precision", "in_custody"):
        op.alter_column("case_file", column, nullable=False)
    op.create_check_constraint(
        op.f("ck_case_file_status_confidence_allowed"),
        "case_file",
        f"status_confidence IN ({_in(CONFIDENCES)})",
    )
    op.create_check_constraint(
        op.f("ck_case_file_detained_precision_allowed"),
        "case_file",
        f"detained_precision IN ({_in(PRECISIONS)})",
    )
    op.create_check_constraint(
        op.f("ck_case_file_sentence_type_allowed"),
        "case_file",
        f"sentence_type IN ({_in(SENTENCE_TYPES)})",
    )


def _valid(path: list[dict[str, Any]]) -> bool:
    previous: str | None = None
    for event in path:
        if event["to_status"] not in TRANSITIONS[previous]:
            return False
        previous = event["to_status"]
    return bool(path)


def _sentence(details: dict[str, Any], decision: dict[str, Any] | None) -> dict[str, Any]:
    """The sentenced event's details with the sentence completed; what was added is said
    in `carried_over`, so that no reader takes an inferred type for a recorded one."""
    merged = dict(details)
    copied = []
    for key in ("court", "term_months", "regime", "fine_amount", "fine_currency"):
        if decision is not None and decision.get(key) is not None and key not in merged:
            merged[key] = decision[key]
            copied.append(key)
    notes = []
    if copied:
        notes.append(f"{', '.join(copied)} copied from the case file's court decision")
    if "sentence_type" not in merged:
        fine_only = merged.get("fine_amount") is not None and not merged.get("term_months")
        merged["sentence_type"] = "fine" if fine_only else "imprisonment"
        notes.append("sentence_type inferred (a fine alone: fine; otherwise imprisonment)")
    if notes:
        merged["carried_over"] = "migration 0009: " + "; ".join(notes)
    return merged


def _interval(day: date, precision: str) -> tuple[date, date]:
    if precision == "day":
        return day, day
    if precision == "month":
        following = date(day.year + day.month // 12, day.month % 12 + 1, 1)
        return day, date.fromordinal(following.toordinal() - 1)
    return day, date(day.year, 12, 31)


def _decision_interval(text: str) -> tuple[date, date] | None:
    parts = text.split("-")
    try:
        if len(parts) == 3:
            return _interval(date(int(parts[0]), int(parts[1]), int(parts[2])), "day")
        if len(parts) == 2:
            return _interval(date(int(parts[0]), int(parts[1]), 1), "month")
        return _interval(date(int(parts[0]), 1, 1), "year")
    except ValueError:
        return None


def _matching_decision(
    event: dict[str, Any], decisions: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The court decision of the sentenced event's date: the same date as written, else
    the first whose (partial) date may be that day."""
    written = _partial(event["effective_date"], event["effective_precision"])
    exact = next((d for d in decisions if d.get("decided_on") == written), None)
    if exact is not None:
        return exact
    start, end = _interval(event["effective_date"], event["effective_precision"])
    for decision in decisions:
        interval = _decision_interval(str(decision.get("decided_on", "")))
        if interval is not None and interval[0] <= end and start <= interval[1]:
            return decision
    return None


def _in_effective_order(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """As app/cases/statuses.effective_sequence at this revision: an event comes before
    another when its last possible day is before the other's first; otherwise as given."""
    remaining = sorted(events, key=lambda e: e["position"])
    ordered: list[dict[str, Any]] = []
    while remaining:
        for index, candidate in enumerate(remaining):
            first = _interval(candidate["effective_date"], candidate["effective_precision"])[0]
            if not any(
                _interval(other["effective_date"], other["effective_precision"])[1] < first
                for other in remaining
                if other is not candidate
            ):
                ordered.append(remaining.pop(index))
                break
    return ordered


def _carry_over(bind: sa.Connection) -> None:
    cases = bind.execute(sa.text("SELECT id, court_decisions FROM case_file")).mappings().all()
    for case in cases:
        _carry_over_case(bind, case["id"], list(case["court_decisions"] or []))


def _carry_over_case(bind: sa.Connection, case_id: Any, decisions: list[dict[str, Any]]) -> None:
    rows = bind.execute(
        sa.text(
            "SELECT e.id, e.position, e.to_status, e.effective_date, e.effective_precision,"
            " e.confidence, e.details, e.recorded_at, r.id IS NOT NULL AS retracted"
            " FROM status_event e LEFT JOIN status_event_retraction r ON r.event_id = e.id"
            " WHERE e.case_file_id = :case_id ORDER BY e.position"
        ),
        {"case_id": case_id},
    ).mappings()
    events = _in_effective_order([dict(row) for row in rows])
    unmatched = list(decisions)
    for event in events:
        if event["to_status"] != "sentenced":
            continue
        decision = _matching_decision(event, unmatched)
        if decision is not None:
            unmatched.remove(decision)
        event["details"] = _sentence(dict(event["details"] or {}), decision)
        bind.execute(
            sa.text("UPDATE status_event SET details = CAST(:details AS jsonb) WHERE id = :id"),
            {"id": event["id"], "details": json.dumps(event["details"])},
        )
    live = [e for e in events if not e["retracted"]]
    path = _in_effective_order([e for e in live if e["confidence"] != "unconfirmed"])
    confirmed_by_migration: set[Any] = set()
    if not _valid(path):
        # The status rested on these claims: keep it, and say why they now count.
        for event in live:
            if event["confidence"] == "unconfirmed":
                confirmed_by_migration.add(event["id"])
                bind.execute(
                    sa.text(
                        "INSERT INTO status_claim_resolution (id, event_id, case_file_id,"
                        " outcome, confidence, reason, source_ids, recorded_at)"
                        " VALUES (:id, :event_id, :case_id, 'confirmed', NULL, :reason, '{}',"
                        " :recorded_at)"
                    ),
                    {
                        "id": new_id(),
                        "event_id": event["id"],
                        "case_id": case_id,
                        "reason": CARRIED_OVER,
                        # It took effect when it was recorded: "as known at" sees it so.
                        "recorded_at": event["recorded_at"],
                    },
                )
        path = _in_effective_order(live)
        if not _valid(path):
            # Valid in recording order once, not in effective order: kept as it is, its
            # status derived from its last step, and named so that someone corrects it.
            log.warning("case file %s: its status path is not valid in effective order", case_id)
    pending = sum(
        1
        for e in live
        if e["confidence"] == "unconfirmed" and e["id"] not in confirmed_by_migration
    )
    if not path:
        return
    first, last = path[0], path[-1]
    sentences = [e for e in path if e["to_status"] == "sentenced"]
    sentence_type = sentences[-1]["details"]["sentence_type"] if sentences else None
    held = last["to_status"] == "detained" or (
        last["to_status"] == "sentenced" and sentence_type in CUSTODIAL
    )
    court_decisions = [
        {
            "event_id": str(e["id"]),
            "decided_on": _partial(e["effective_date"], e["effective_precision"]),
            **e["details"],
        }
        for e in sentences
    ]
    bind.execute(
        sa.text(
            "UPDATE case_file SET status = :status, status_since = :since,"
            " status_since_precision = :since_precision, status_confidence = :confidence,"
            " detained_on = :detained_on, detained_precision = :detained_precision,"
            " in_custody = :held, sentence_type = :sentence_type,"
            " court_decisions = CAST(:court_decisions AS jsonb),"
            " court_decisions_unmatched = CAST(:unmatched AS jsonb),"
            " pending_claims = :pending WHERE id = :id"
        ),
        {
            "id": case_id,
            "status": last["to_status"],
            "since": last["effective_date"],
            "since_precision": last["effective_precision"],
            "confidence": last["confidence"],
            "detained_on": first["effective_date"],
            "detained_precision": first["effective_precision"],
            "held": held,
            "sentence_type": sentence_type,
            "court_decisions": json.dumps(court_decisions),
            "unmatched": json.dumps(unmatched) if unmatched else None,
            "pending": pending,
        },
    )


def _partial(day: date, precision: str) -> str:
    if precision == "day":
        return day.isoformat()
    if precision == "month":
        return day.strftime("%Y-%m")
    return f"{day.year:04d}"


def downgrade() -> None:
    op.drop_constraint(op.f("ck_case_file_sentence_type_allowed"), "case_file", type_="check")
    op.drop_constraint(op.f("ck_case_file_detained_precision_allowed"), "case_file", type_="check")
    op.drop_constraint(op.f("ck_case_file_status_confidence_allowed"), "case_file", type_="check")
    for column in ("retracted_by", "retracted_at", "retraction_reason", "expelled_to"):
        op.drop_column("collective_event", column)
    op.drop_index("ix_status_claim_resolution_case_file_id", "status_claim_resolution")
    op.drop_table("status_claim_resolution")
    op.drop_column("status_event_retraction", "superseded_by")
    for column in (
        "court_decisions_unmatched",
        "pending_claims",
        "sentence_type",
        "in_custody",
        "detained_precision",
        "status_confidence",
    ):
        op.drop_column("case_file", column)
    # `charged` cannot be told in the older model: such rows must go before the check.
    for table, column in (
        ("case_file", "status"),
        ("status_event", "to_status"),
        ("collective_event", "to_status"),
    ):
        _replace_check(table, f"{column}_allowed", column, STATUSES_BEFORE)

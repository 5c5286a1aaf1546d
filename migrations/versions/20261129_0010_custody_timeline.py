"""The custody timeline: the facility register, timeline entries, their retractions and
the ends of periods (DESIGN §2, "Custody timeline").

New tables only; nothing existing changes. A case file's free-text `detention_places`
stays as it is (they name no register entry to carry over).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 22:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CONFIDENCES = "'confirmed', 'reported', 'unconfirmed'"
PRECISIONS = "'day', 'month', 'year'"
FACILITY_TYPES = (
    "'temporary_detention', 'pretrial_detention_centre', 'prison', 'penal_colony',"
    " 'open_facility', 'psychiatric_hospital', 'other'"
)
KINDS = (
    "'transfer', 'incommunicado', 'hunger_strike', 'punishment_cell', 'new_charge',"
    " 'expected_release'"
)


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def _moment(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def _sources() -> sa.Column[object]:
    return sa.Column("source_ids", sa.ARRAY(sa.Uuid()), server_default="{}", nullable=False)


def upgrade() -> None:
    op.create_table(
        "facility",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("names", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("country", _text(2), nullable=False),
        sa.Column("region", _text(6), nullable=True),
        sa.Column("type", _text(30), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("recorded_by", sa.Uuid(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        _moment("created_at"),
        _moment("updated_at"),
        sa.CheckConstraint(f"type IN ({FACILITY_TYPES})", name=op.f("ck_facility_type_allowed")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_facility")),
    )
    op.create_index(op.f("ix_facility_country"), "facility", ["country"], unique=False)
    op.create_table(
        "custody_event",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_file_id", sa.Uuid(), nullable=False),
        sa.Column("kind", _text(20), nullable=False),
        sa.Column("effective_date", sa.Date(), nullable=False),
        sa.Column("effective_precision", _text(5), nullable=False),
        sa.Column("facility_id", sa.Uuid(), nullable=True),
        sa.Column("from_facility_id", sa.Uuid(), nullable=True),
        sa.Column(
            "details", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("confidence", _text(12), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        _sources(),
        _moment("recorded_at"),
        sa.Column("recorded_by", sa.Uuid(), nullable=True),
        sa.CheckConstraint(
            "(kind = 'transfer') = (facility_id IS NOT NULL)",
            name=op.f("ck_custody_event_transfer_has_facility"),
        ),
        sa.CheckConstraint(
            "kind = 'transfer' OR from_facility_id IS NULL",
            name=op.f("ck_custody_event_only_transfer_has_origin"),
        ),
        sa.CheckConstraint(f"kind IN ({KINDS})", name=op.f("ck_custody_event_kind_allowed")),
        sa.CheckConstraint(
            f"confidence IN ({CONFIDENCES})", name=op.f("ck_custody_event_confidence_allowed")
        ),
        sa.CheckConstraint(
            f"effective_precision IN ({PRECISIONS})",
            name=op.f("ck_custody_event_effective_precision_allowed"),
        ),
        sa.ForeignKeyConstraint(
            ["case_file_id"], ["case_file.id"], name=op.f("fk_custody_event_case_file_id_case_file")
        ),
        sa.ForeignKeyConstraint(
            ["facility_id"], ["facility.id"], name=op.f("fk_custody_event_facility_id_facility")
        ),
        sa.ForeignKeyConstraint(
            ["from_facility_id"],
            ["facility.id"],
            name=op.f("fk_custody_event_from_facility_id_facility"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custody_event")),
    )
    op.create_index("ix_custody_event_case_file_id_kind", "custody_event", ["case_file_id", "kind"])
    op.create_index(op.f("ix_custody_event_facility_id"), "custody_event", ["facility_id"])
    op.create_table(
        "custody_event_retraction",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("case_file_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        _moment("recorded_at"),
        sa.Column("recorded_by", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_file_id"],
            ["case_file.id"],
            name=op.f("fk_custody_event_retraction_case_file_id_case_file"),
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["custody_event.id"],
            name=op.f("fk_custody_event_retraction_event_id_custody_event"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custody_event_retraction")),
        sa.UniqueConstraint("event_id", name=op.f("uq_custody_event_retraction_event_id")),
    )
    op.create_index(
        op.f("ix_custody_event_retraction_case_file_id"),
        "custody_event_retraction",
        ["case_file_id"],
    )
    op.create_table(
        "custody_period_end",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("case_file_id", sa.Uuid(), nullable=False),
        sa.Column("effective_date", sa.Date(), nullable=False),
        sa.Column("effective_precision", _text(5), nullable=False),
        sa.Column("confidence", _text(12), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        _sources(),
        _moment("recorded_at"),
        sa.Column("recorded_by", sa.Uuid(), nullable=True),
        sa.CheckConstraint(
            f"confidence IN ({CONFIDENCES})", name=op.f("ck_custody_period_end_confidence_allowed")
        ),
        sa.CheckConstraint(
            f"effective_precision IN ({PRECISIONS})",
            name=op.f("ck_custody_period_end_effective_precision_allowed"),
        ),
        sa.ForeignKeyConstraint(
            ["case_file_id"],
            ["case_file.id"],
            name=op.f("fk_custody_period_end_case_file_id_case_file"),
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["custody_event.id"],
            name=op.f("fk_custody_period_end_event_id_custody_event"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custody_period_end")),
        sa.UniqueConstraint("event_id", name=op.f("uq_custody_period_end_event_id")),
    )
    op.create_index(
        op.f("ix_custody_period_end_case_file_id"), "custody_period_end", ["case_file_id"]
    )


def downgrade() -> None:
    op.drop_table("custody_period_end")
    op.drop_table("custody_event_retraction")
    op.drop_table("custody_event")
    op.drop_table("facility")

"""The path basis of status reports (docs/reports.md, "The path basis").

A report builds the path of every case file as known at its knowledge time; at a million
persons that is most of its cost. A basis keeps every path as known at one moment, so that
a report as known at that moment or later reads it, and builds anew only the case files
changed since: those with an event, a retraction, a claim's resolution or a counted fact
of the case file or its person recorded after it (found by the indexes added here). It is a cache: `habeas report basis`
and the worker rebuild it, and a report with no usable basis builds every path as before.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RECORDED_AT = {
    "status_event": "recorded_at",
    "status_event_retraction": "recorded_at",
    "status_claim_resolution": "recorded_at",
    "case_file": "facts_since",
    "person": "facts_since",
}


def upgrade() -> None:
    for table, column in RECORDED_AT.items():
        op.create_index(f"ix_{table}_{column}", table, [column], unique=False)
    op.create_table(
        "report_basis",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("known_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("engine_version", sa.Text(), nullable=False),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_basis")),
    )
    op.create_table(
        "report_basis_path",
        sa.Column("basis_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("case_file_id", sa.Uuid(), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("jurisdiction", sa.String(length=2), nullable=False),
        sa.Column("deprivation_type", sa.String(length=30), nullable=False),
        sa.Column("to_status", sa.String(length=20), nullable=False),
        sa.Column("sentence_type", sa.Text(), nullable=True),
        sa.Column("term_months", sa.Integer(), nullable=True),
        sa.Column("release_reason", sa.Text(), nullable=True),
        sa.Column("destination_country", sa.Text(), nullable=True),
        sa.Column("collective_event_id", sa.Uuid(), nullable=True),
        sa.Column("given", sa.Integer(), nullable=False),
        sa.Column("effective_date", sa.Date(), nullable=False),
        sa.Column("until", sa.Date(), nullable=True),
        sa.Column("next_status", sa.String(length=20), nullable=True),
        sa.Column("held", sa.Boolean(), nullable=False),
        sa.Column("was_held", sa.Boolean(), nullable=False),
        sa.Column("facts_kept", sa.Boolean(), nullable=False),
        sa.Column("articles", ARRAY(sa.Text()), nullable=True),
        sa.Column("citizenships", ARRAY(sa.String(length=2)), nullable=True),
        sa.Column("gender", sa.String(length=10), nullable=True),
        sa.Column("region", sa.String(length=6), nullable=True),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["basis_id"],
            ["report_basis.id"],
            name=op.f("fk_report_basis_path_basis_id_report_basis"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("basis_id", "event_id", name=op.f("pk_report_basis_path")),
    )
    op.create_index(
        "ix_report_basis_path_deaths",
        "report_basis_path",
        ["basis_id", "person_id"],
        unique=False,
        postgresql_where=sa.text("to_status = 'died_in_custody'"),
    )
    # The claims of a period (unconfirmed events by day), without a scan of every event.
    op.create_index(
        "ix_status_event_unconfirmed_effective_date",
        "status_event",
        ["effective_date"],
        unique=False,
        postgresql_where=sa.text("confidence = 'unconfirmed'"),
    )


def downgrade() -> None:
    op.drop_index("ix_status_event_unconfirmed_effective_date", table_name="status_event")
    op.drop_table("report_basis_path")
    op.drop_table("report_basis")
    for table, column in RECORDED_AT.items():
        op.drop_index(f"ix_{table}_{column}", table_name=table)

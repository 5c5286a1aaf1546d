"""The path basis keeps each person's standing span by span (docs/reports.md, "The path
basis"): held, with the case file a report counts them on and what it counts of it and of
them, or prosecuted at liberty, between two days on which nothing of it changes. A report
reads the spans on its day for the people unchanged since the basis (one row each) instead
of choosing, among every case file's state on that day, each person's own.

Bases of the earlier format are never read (app/reports/asof.py, BASIS_FORMAT): the next
build replaces them.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-01 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "report_basis_span",
        sa.Column("basis_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=2), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("starts", sa.Date(), nullable=False),
        sa.Column("ends", sa.Date(), nullable=False),
        sa.Column("only_jurisdiction", sa.String(length=2), nullable=True),
        sa.Column("held", sa.Boolean(), nullable=False),
        sa.Column("case_file_id", sa.Uuid(), nullable=True),
        sa.Column("to_status", sa.String(length=20), nullable=True),
        sa.Column("deprivation_type", sa.String(length=30), nullable=True),
        sa.Column("jurisdiction", sa.String(length=2), nullable=True),
        sa.Column("sentence_type", sa.Text(), nullable=True),
        sa.Column("term_months", sa.Integer(), nullable=True),
        sa.Column("recognised", sa.Boolean(), nullable=False),
        sa.Column("persecuted", sa.Boolean(), nullable=False),
        sa.Column("articles", ARRAY(sa.Text()), nullable=True),
        sa.Column("citizenships", ARRAY(sa.String(length=2)), nullable=True),
        sa.Column("gender", sa.String(length=10), nullable=True),
        sa.Column("region", sa.String(length=6), nullable=True),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["basis_id"],
            ["report_basis.id"],
            name=op.f("fk_report_basis_span_basis_id_report_basis"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "basis_id", "key", "person_id", "starts", name=op.f("pk_report_basis_span")
        ),
    )
    op.create_index(
        "ix_report_basis_span_ends", "report_basis_span", ["basis_id", "ends", "starts"]
    )


def downgrade() -> None:
    op.drop_index("ix_report_basis_span_ends", table_name="report_basis_span")
    op.drop_table("report_basis_span")

"""The path basis keeps the sums of the figures over time (docs/reports.md, "The path
basis"): what its paths add each day to the monthly series of people held and recognised,
to the detentions and to the releases by mode, for all jurisdictions and for each. A
report adds to them what the people changed since add now, less what they added then, so
that it no longer reads every path of every case file. Indexes find a report's period, its
day's states (kept together, in the order they end) and those people in the basis, and a
period's recognition decisions and those recorded since a basis.

Bases of the earlier format are never read (app/reports/asof.py, BASIS_FORMAT): the next
build replaces them.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-01 12:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "report_basis_daily",
        sa.Column("basis_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=2), nullable=False),
        sa.Column("measure", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["basis_id"],
            ["report_basis.id"],
            name=op.f("fk_report_basis_daily_basis_id_report_basis"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "basis_id", "key", "measure", "day", name=op.f("pk_report_basis_daily")
        ),
    )
    op.create_index(
        "ix_report_basis_path_effective_date",
        "report_basis_path",
        ["basis_id", "effective_date"],
    )
    op.create_index(
        "ix_report_basis_path_person_id", "report_basis_path", ["basis_id", "person_id"]
    )
    op.create_index("ix_report_basis_path_until", "report_basis_path", ["basis_id", "until"])
    op.create_index(
        op.f("ix_recognition_decision_decided_on"), "recognition_decision", ["decided_on"]
    )
    # A decision recorded since a basis makes its case files count as changed.
    op.create_index("ix_recognition_decision_recorded_at", "recognition_decision", ["recorded_at"])


def downgrade() -> None:
    op.drop_index("ix_recognition_decision_recorded_at", table_name="recognition_decision")
    op.drop_index(op.f("ix_recognition_decision_decided_on"), table_name="recognition_decision")
    op.drop_index("ix_report_basis_path_until", table_name="report_basis_path")
    op.drop_index("ix_report_basis_path_person_id", table_name="report_basis_path")
    op.drop_index("ix_report_basis_path_effective_date", table_name="report_basis_path")
    op.drop_table("report_basis_daily")

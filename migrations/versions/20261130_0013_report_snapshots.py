"""Report snapshots (issue 14): each generated status report, stored once and never
changed, and the people it counted as held (for the next report's differences). The triggers that keep the audit trail append-only (audit_refuse_change, 0004)
refuse UPDATE, DELETE and TRUNCATE here too, and the application role loses those
privileges on it (`habeas db grant`).

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "report_snapshot"
# The people each snapshot counted as held (never served; compared by the next report).
HELD = "report_snapshot_held"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("series", sa.Text(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("as_known_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("generator_version", sa.Text(), nullable=False),
        sa.Column("parameters", JSONB(), nullable=False),
        sa.Column("figures", JSONB(), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("previous_id", sa.Uuid(), nullable=True),
        sa.Column("differences", JSONB(), nullable=False),
        sa.Column("people", JSONB(), nullable=False),
        sa.Column("generated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("generated_by", sa.Uuid(), nullable=True),
        sa.CheckConstraint("kind IN ('status')", name=op.f("ck_report_snapshot_kind_allowed")),
        sa.ForeignKeyConstraint(
            ["previous_id"],
            [f"{TABLE}.id"],
            name=op.f("fk_report_snapshot_previous_id_report_snapshot"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_snapshot")),
    )
    op.create_index(
        "ix_report_snapshot_series", TABLE, ["series", "as_of", "generated_at"], unique=False
    )
    op.create_table(
        HELD,
        sa.Column("snapshot_id", sa.Uuid(), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            [f"{TABLE}.id"],
            name=op.f("fk_report_snapshot_held_snapshot_id_report_snapshot"),
            deferrable=True,
            initially="DEFERRED",
        ),
        sa.PrimaryKeyConstraint("snapshot_id", "person_id", name=op.f("pk_report_snapshot_held")),
    )
    for table in (TABLE, HELD):
        op.execute(
            f"CREATE TRIGGER {table}_no_update_or_delete BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
        )


def downgrade() -> None:
    op.drop_table(HELD)
    op.drop_table(TABLE)

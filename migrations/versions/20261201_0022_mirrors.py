"""Mirrors: another Habeas whose change feed this instance follows (`habeas sync pull`).

`mirror_upstream` keeps each upstream's address, the partner client it is read as and the
cursor of its feed, moved in the transaction of the page it follows. `mirror_record` keeps
its records as its feed handed them (kept apart from our own case files), our id for each
(the mapping of its ids to ours, kept when a record stops being shared, so that it keeps
its id if it is shared again), and where each state came from.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-01 02:36:06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mirror_upstream",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("base_url", sa.Text(), nullable=False),
        sa.Column("client_id", sa.String(length=200), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column("phase", sa.String(length=20), nullable=True),
        sa.Column("caught_up", sa.Boolean(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("pages", sa.BigInteger(), nullable=False),
        sa.Column("items", sa.BigInteger(), nullable=False),
        sa.Column("resets", sa.Integer(), nullable=False),
        sa.Column("last_pulled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "phase IS NULL OR phase IN ('snapshot', 'changes')", name="phase_allowed"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ux_mirror_upstream_address", "mirror_upstream", ["base_url", "client_id"], unique=True
    )
    op.create_table(
        "mirror_record",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("upstream_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("upstream_record_id", sa.Uuid(), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("body", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("content_hash", sa.LargeBinary(), nullable=True),
        sa.Column("merged_into", sa.Uuid(), nullable=True),
        sa.Column("upstream_seq", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(state = 'live') = (body IS NOT NULL AND content_hash IS NOT NULL)",
            name="body_only_while_live",
        ),
        sa.CheckConstraint(
            "(state = 'redirect') = (merged_into IS NOT NULL)", name="merged_into_for_redirects"
        ),
        sa.CheckConstraint("kind IN ('person', 'case')", name="kind_allowed"),
        sa.CheckConstraint("state IN ('live', 'redirect', 'gone')", name="state_allowed"),
        sa.ForeignKeyConstraint(
            ["upstream_id"],
            ["mirror_upstream.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_mirror_record_list", "mirror_record", ["upstream_id", "kind", "id"], unique=False
    )
    op.create_index(
        "ux_mirror_record_upstream_id",
        "mirror_record",
        ["upstream_id", "kind", "upstream_record_id"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("ux_mirror_record_upstream_id", table_name="mirror_record")
    op.drop_index("ix_mirror_record_list", table_name="mirror_record")
    op.drop_table("mirror_record")
    op.drop_index("ux_mirror_upstream_address", table_name="mirror_upstream")
    op.drop_table("mirror_upstream")

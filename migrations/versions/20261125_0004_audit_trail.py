"""The audit trail: hash-chained events, the chain head, signed checkpoints.

Events and checkpoints are append-only. Triggers refuse UPDATE and DELETE of any row and
TRUNCATE of the table, whoever asks; the application's role is, in addition, granted
neither (`habeas db grant`). The table owner can still drop the triggers: that is what
signed checkpoints, kept outside the database, are for.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = ("audit_event", "audit_checkpoint")


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_type", sa.Text(), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("actor_role", sa.Text(), nullable=True),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("resource_type", sa.Text(), nullable=True),
        sa.Column("resource_id", sa.Uuid(), nullable=True),
        sa.Column(
            "related",
            postgresql.ARRAY(sa.Uuid()),
            server_default="{}",
            nullable=False,
        ),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("request_id", sa.Text(), nullable=True),
        sa.Column("client_address", sa.Text(), nullable=True),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.Column("changes", postgresql.JSONB(), nullable=True),
        sa.Column("detail", postgresql.JSONB(), nullable=True),
        sa.Column("prev_hash", sa.LargeBinary(), nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint(
            "actor_type IN ('user', 'partner', 'system', 'anonymous')",
            name=op.f("ck_audit_event_actor_type_allowed"),
        ),
        sa.CheckConstraint(
            "outcome IN ('success', 'denied')", name=op.f("ck_audit_event_outcome_allowed")
        ),
        sa.CheckConstraint("seq > 0", name=op.f("ck_audit_event_seq_positive")),
        sa.CheckConstraint(
            "octet_length(hash) = 32 AND octet_length(prev_hash) = 32",
            name=op.f("ck_audit_event_hashes"),
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_event")),
    )
    op.create_index("ix_audit_event_occurred_at", "audit_event", ["occurred_at"])
    op.create_index("ix_audit_event_actor", "audit_event", ["actor_id", "seq"])
    op.create_index("ix_audit_event_resource", "audit_event", ["resource_id", "seq"])
    op.create_index("ix_audit_event_action", "audit_event", ["action", "seq"])
    op.create_index("ix_audit_event_related", "audit_event", ["related"], postgresql_using="gin")

    op.create_table(
        "audit_head",
        sa.Column("singleton", sa.Boolean(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("singleton", name=op.f("ck_audit_head_singleton")),
        sa.PrimaryKeyConstraint("singleton", name=op.f("pk_audit_head")),
    )
    # The chain starts empty: the first event links to 32 zero bytes.
    op.execute(
        "INSERT INTO audit_head (singleton, seq, hash) "
        "VALUES (true, 0, decode(repeat('00', 32), 'hex'))"
    )

    op.create_table(
        "audit_checkpoint",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("head_hash", sa.LargeBinary(), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("seq", "key_id", name=op.f("pk_audit_checkpoint")),
    )

    op.execute(
        """
        CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END
        $$
        """
    )
    for table in APPEND_ONLY:
        op.execute(
            f"CREATE TRIGGER {table}_no_update_or_delete BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
        )


def downgrade() -> None:
    op.drop_table("audit_checkpoint")
    op.drop_table("audit_head")
    op.drop_table("audit_event")
    op.execute("DROP FUNCTION audit_refuse_change()")

"""Merging duplicate persons, and undoing it.

A merged person keeps their row, pointing at the person they were merged into
(`person.merged_into`); `person_merge` records each merge with what moved and what it
overwrote, so that an unmerge restores the merged person exactly (app/merges);
`person_merge_event`, append-only, numbers each merge and unmerge for partners' sync.
`person_duplicate_scan` and `person_duplicate_candidate` keep the latest scan of the
whole database for persons recorded twice (`habeas persons duplicates`). `name_token`
is the lexicon of word keys, under their typo variants, that the duplicate check looks a
mistyped word up in.

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-30 12:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("person", sa.Column("merged_into", sa.Uuid(), nullable=True))
    op.create_foreign_key(
        op.f("fk_person_merged_into_person"), "person", "person", ["merged_into"], ["id"]
    )
    op.create_table(
        "person_merge",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("merged_person_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("merged_by", sa.Uuid(), nullable=True),
        sa.Column("merged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("moved", JSONB(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=True),
        sa.Column("resolutions", JSONB(), nullable=False),
        sa.Column("unmerged_by", sa.Uuid(), nullable=True),
        sa.Column("unmerged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stayed", JSONB(), nullable=True),
        sa.CheckConstraint(
            "person_id <> merged_person_id", name=op.f("ck_person_merge_two_persons")
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["person.id"], name=op.f("fk_person_merge_person_id_person")
        ),
        sa.ForeignKeyConstraint(
            ["merged_person_id"],
            ["person.id"],
            name=op.f("fk_person_merge_merged_person_id_person"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_person_merge")),
    )
    op.create_index("ix_person_merge_person_id", "person_merge", ["person_id"])
    op.create_index(
        "ix_person_merge_merged_person_id_in_effect",
        "person_merge",
        ["merged_person_id"],
        unique=True,
        postgresql_where=sa.text("unmerged_at IS NULL"),
    )

    op.create_table(
        "person_merge_event",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("merge_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("merged_person_id", sa.Uuid(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('merged', 'unmerged')", name=op.f("ck_person_merge_event_kind")
        ),
        sa.ForeignKeyConstraint(
            ["merge_id"],
            ["person_merge.id"],
            name=op.f("fk_person_merge_event_merge_id_person_merge"),
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_person_merge_event")),
    )
    op.create_index(op.f("ix_person_merge_event_merge_id"), "person_merge_event", ["merge_id"])
    # Append-only, as the audit trail (audit_refuse_change, revision 0004).
    op.execute(
        "CREATE TRIGGER person_merge_event_no_update_or_delete BEFORE UPDATE OR DELETE ON "
        "person_merge_event FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER person_merge_event_no_truncate BEFORE TRUNCATE ON person_merge_event "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
    )

    op.create_table(
        "person_duplicate_scan",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("persons", sa.Integer(), nullable=False),
        sa.Column("blocks", sa.Integer(), nullable=False),
        sa.Column("blocks_skipped", sa.Integer(), nullable=False),
        sa.Column("pairs_compared", sa.Integer(), nullable=False),
        sa.Column("candidates", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_person_duplicate_scan")),
    )
    op.create_table(
        "person_duplicate_candidate",
        sa.Column("scan_id", sa.Uuid(), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("other_person_id", sa.Uuid(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.CheckConstraint(
            "person_id < other_person_id", name=op.f("ck_person_duplicate_candidate_ordered_pair")
        ),
        sa.ForeignKeyConstraint(
            ["scan_id"],
            ["person_duplicate_scan.id"],
            name=op.f("fk_person_duplicate_candidate_scan_id_person_duplicate_scan"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["person.id"],
            name=op.f("fk_person_duplicate_candidate_person_id_person"),
        ),
        sa.ForeignKeyConstraint(
            ["other_person_id"],
            ["person.id"],
            name=op.f("fk_person_duplicate_candidate_other_person_id_person"),
        ),
        sa.PrimaryKeyConstraint(
            "scan_id", "person_id", "other_person_id", name=op.f("pk_person_duplicate_candidate")
        ),
    )
    op.create_index(
        "ix_person_duplicate_candidate_rank",
        "person_duplicate_candidate",
        ["scan_id", "score", "person_id"],
    )

    op.create_table(
        "name_token",
        sa.Column("variant", sa.Text(), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("variant", "token", name=op.f("pk_name_token")),
    )
    # The same as app/persons/models.SQL_FILL_NAME_TOKENS (kept here as it was).
    op.execute(
        """
        INSERT INTO name_token (variant, token)
        SELECT DISTINCT variant, token
        FROM (SELECT DISTINCT token FROM person_name, unnest(search_tokens) AS token
              WHERE token NOT LIKE '=%' AND length(token) >= 4) AS tokens,
             LATERAL (SELECT token AS variant
                      UNION ALL
                      SELECT left(token, i - 1) || substr(token, i + 1)
                      FROM generate_series(1, length(token)) AS i) AS variants
        """
    )


def downgrade() -> None:
    op.drop_table("name_token")
    op.drop_table("person_duplicate_candidate")
    op.drop_table("person_duplicate_scan")
    op.drop_table("person_merge_event")
    op.drop_index("ix_person_merge_merged_person_id_in_effect", table_name="person_merge")
    op.drop_index("ix_person_merge_person_id", table_name="person_merge")
    op.drop_table("person_merge")
    op.drop_constraint(op.f("fk_person_merged_into_person"), "person", type_="foreignkey")
    op.drop_column("person", "merged_into")

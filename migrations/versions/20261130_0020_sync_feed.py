"""The partners' change feed: where each shared kind of record last changed.

`sync_position` holds, for each person, case file and source, the audit sequence number
of the last write that touched it (a person's position moves with any change to their
case files, status events, custody timeline or recognition decisions, and so do their
case files' and the positions of persons merged into them: whether a case file is shared
can depend on its person's other case files, a redirect on the person it points to).
It is kept by a trigger on `audit_event`, so it is written in the same transaction as
the event and while the chain's head is locked: positions are assigned in commit order
and a snapshot that sees one sees every lower one (app/sync). `sync_delivered` remembers
what the feed last handed each partner of each record (a hash of it, and where): a record
leaving a partner's agreement reaches that partner as a tombstone, once, and no other
partner learns of it; a record whose shared part did not change is not sent again.

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-30 15:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SYNC_POSITION_CHANGES = """
CREATE FUNCTION sync_position_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH changed AS (
        SELECT c->>'type' AS type, (c->>'id')::uuid AS id
        FROM jsonb_array_elements(NEW.changes) AS c
        WHERE c->>'type' IN ('person', 'case', 'status_event', 'custody_event',
                             'recognition_decision', 'source')
    ), touched AS (
        SELECT id AS person_id FROM changed WHERE type = 'person'
        UNION
        SELECT f.person_id FROM changed JOIN case_file f ON f.id = changed.id
        WHERE changed.type = 'case'
        UNION
        SELECT f.person_id FROM changed
        JOIN status_event e ON e.id = changed.id JOIN case_file f ON f.id = e.case_file_id
        WHERE changed.type = 'status_event'
        UNION
        SELECT f.person_id FROM changed
        JOIN custody_event e ON e.id = changed.id JOIN case_file f ON f.id = e.case_file_id
        WHERE changed.type = 'custody_event'
        UNION
        SELECT d.person_id FROM changed JOIN recognition_decision d ON d.id = changed.id
        WHERE changed.type = 'recognition_decision'
    ), persons AS (
        -- and the persons merged into them: what a partner holds of those (a redirect)
        -- follows what it may read of the person they point to
        SELECT person_id FROM touched
        UNION
        SELECT p.id FROM person p JOIN touched t ON p.merged_into = t.person_id
    ), records AS (
        SELECT 'person'::text AS record_type, person_id AS record_id FROM persons
        UNION
        SELECT 'case', f.id FROM case_file f JOIN persons USING (person_id)
        UNION
        SELECT 'source', id FROM changed WHERE type = 'source'
    )
    INSERT INTO sync_position (record_type, record_id, seq)
    SELECT record_type, record_id, NEW.seq FROM records
    ON CONFLICT (record_type, record_id) DO UPDATE SET seq = EXCLUDED.seq;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "sync_position",
        sa.Column("record_type", sa.String(length=20), nullable=False),
        sa.Column("record_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("record_type", "record_id", name=op.f("pk_sync_position")),
        sa.CheckConstraint(
            "record_type IN ('person', 'case', 'source')",
            name=op.f("ck_sync_position_record_type_allowed"),
        ),
    )
    op.create_index(
        op.f("ix_sync_position_seq"), "sync_position", ["seq", "record_type", "record_id"]
    )
    op.create_table(
        "sync_delivered",
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("record_type", sa.String(length=20), nullable=False),
        sa.Column("record_id", sa.Uuid(), nullable=False),
        sa.Column("content_hash", sa.LargeBinary(), nullable=False),
        sa.Column("delivered_seq", sa.BigInteger(), nullable=False),
        sa.Column("in_snapshot", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partner.id"], name=op.f("fk_sync_delivered_partner_id_partner")
        ),
        sa.PrimaryKeyConstraint(
            "partner_id", "record_type", "record_id", name=op.f("pk_sync_delivered")
        ),
    )
    op.create_index(
        op.f("ix_person_merged_into"),
        "person",
        ["merged_into"],
        postgresql_where=sa.text("merged_into IS NOT NULL"),
    )
    op.execute(SYNC_POSITION_CHANGES)
    # Writes only: reads and refusals carry no changes.
    op.execute(
        "CREATE TRIGGER sync_position_changes AFTER INSERT ON audit_event FOR EACH ROW "
        "WHEN (NEW.changes IS NOT NULL AND NEW.outcome = 'success') "
        "EXECUTE FUNCTION sync_position_changes()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER sync_position_changes ON audit_event")
    op.execute("DROP FUNCTION sync_position_changes()")
    op.drop_index(op.f("ix_person_merged_into"), table_name="person")
    op.drop_table("sync_delivered")
    op.drop_index(op.f("ix_sync_position_seq"), table_name="sync_position")
    op.drop_table("sync_position")

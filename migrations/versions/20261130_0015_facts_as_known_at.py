"""What a status report counts of a person or a case file, as it was known at any moment
(docs/reports.md, "As known at").

A report asked again "as known at" its first knowledge time must give the same figures
even after a person's citizenships or a case file's deprivation type, jurisdiction, charges
or person were corrected. Each row keeps `facts_since`, when its counted facts last
changed; a trigger keeps each earlier version in a history table with the interval it
held, whatever write path changed it. The as-of engine reads the row when `facts_since` is
not after the knowledge time (nearly always) and the history otherwise.

Rows existing before this revision are known as they are from their creation.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 02:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table → the columns a report counts (besides the id), and their SQL types for the history.
TRACKED = {
    "case_file": ("person_id", "jurisdiction", "deprivation_type", "charges"),
    "person": ("citizenships", "gender", "region", "birth_date"),
}
KEY = {"case_file": "case_file_id", "person": "person_id"}


def _history_columns(table: str) -> list[sa.Column[object]]:
    if table == "case_file":
        return [
            sa.Column("person_id", sa.Uuid(), nullable=False),
            sa.Column("jurisdiction", sa.String(length=2), nullable=False),
            sa.Column("deprivation_type", sa.String(length=30), nullable=False),
            sa.Column("charges", JSONB(), nullable=False),
        ]
    return [
        sa.Column("citizenships", ARRAY(sa.String(length=2)), nullable=False),
        sa.Column("gender", sa.String(length=10), nullable=False),
        sa.Column("region", sa.String(length=6), nullable=True),
        sa.Column("birth_date", sa.Date(), nullable=True),
    ]


def upgrade() -> None:
    for table, columns in TRACKED.items():
        history = f"{table}_facts_history"
        key = KEY[table]
        op.add_column(
            table,
            sa.Column(
                "facts_since",
                sa.DateTime(timezone=True),
                server_default=sa.text("now()"),
                nullable=False,
            ),
        )
        op.execute(f"UPDATE {table} SET facts_since = created_at")
        op.create_table(
            history,
            sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
            sa.Column(key, sa.Uuid(), nullable=False),
            sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
            sa.Column("valid_until", sa.DateTime(timezone=True), nullable=False),
            *_history_columns(table),
            sa.ForeignKeyConstraint(
                [key], [f"{table}.id"], name=op.f(f"fk_{history}_{key}_{table}")
            ),
            sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{history}")),
        )
        op.create_index(f"ix_{history}_{key}", history, [key], unique=False)
        changed = " OR ".join(f"OLD.{column} IS DISTINCT FROM NEW.{column}" for column in columns)
        old_values = ", ".join(f"OLD.{column}" for column in columns)
        op.execute(
            f"""
            CREATE FUNCTION {table}_keep_facts() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF {changed} THEN
                    NEW.facts_since := greatest(clock_timestamp(), OLD.facts_since);
                    INSERT INTO {history} ({key}, valid_from, valid_until, {", ".join(columns)})
                    VALUES (OLD.id, OLD.facts_since, NEW.facts_since, {old_values});
                ELSE
                    NEW.facts_since := OLD.facts_since;
                END IF;
                RETURN NEW;
            END
            $$
            """
        )
        op.execute(
            f"CREATE TRIGGER {table}_keeps_facts BEFORE UPDATE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {table}_keep_facts()"
        )


def downgrade() -> None:
    for table in TRACKED:
        op.execute(f"DROP TRIGGER {table}_keeps_facts ON {table}")
        op.execute(f"DROP FUNCTION {table}_keep_facts()")
        op.drop_table(f"{table}_facts_history")
        op.drop_column(table, "facts_since")

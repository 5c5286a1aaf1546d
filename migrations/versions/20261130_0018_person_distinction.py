"""Statements that two persons whose names look alike are different people.

Intake refuses a person who looks like one already recorded unless the caller states that
they are different (`confirmed_distinct_from`); the statement is kept here, shown with
both persons, and the pair is not proposed as a duplicate again.

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-30 10:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "person_distinction",
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("other_person_id", sa.Uuid(), nullable=False),
        sa.Column("stated_by", sa.Uuid(), nullable=True),
        sa.Column("stated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "person_id < other_person_id", name=op.f("ck_person_distinction_ordered_pair")
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["person.id"], name=op.f("fk_person_distinction_person_id_person")
        ),
        sa.ForeignKeyConstraint(
            ["other_person_id"],
            ["person.id"],
            name=op.f("fk_person_distinction_other_person_id_person"),
        ),
        sa.PrimaryKeyConstraint("person_id", "other_person_id", name=op.f("pk_person_distinction")),
    )
    op.create_index(
        "ix_person_distinction_other_person_id", "person_distinction", ["other_person_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_person_distinction_other_person_id", table_name="person_distinction")
    op.drop_table("person_distinction")

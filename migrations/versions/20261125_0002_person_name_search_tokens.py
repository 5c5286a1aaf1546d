"""Index the words of each name skeleton, so that name search stays fast at scale.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 03:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("person_name", sa.Column("search_tokens", postgresql.ARRAY(sa.Text())))
    # Skeletons are single-spaced lower-case words, so splitting them gives the tokens
    # (app.persons.names.tokens also drops repeated words, which containment ignores).
    op.execute("UPDATE person_name SET search_tokens = string_to_array(search_key, ' ')")
    op.alter_column("person_name", "search_tokens", nullable=False)
    op.create_index(
        "ix_person_name_search_tokens",
        "person_name",
        ["search_tokens"],
        unique=False,
        postgresql_using="gin",
    )


def downgrade() -> None:
    op.drop_index("ix_person_name_search_tokens", table_name="person_name", postgresql_using="gin")
    op.drop_column("person_name", "search_tokens")

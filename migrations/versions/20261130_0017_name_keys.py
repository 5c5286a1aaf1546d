"""Name keys that find every common spelling (app/persons/names.py).

Name search matched one skeleton a name; the skeleton split words at the soft sign, read
"ch" only as ч and г only as g, and did not fold яканне, Polish and German spellings or
Lithuanian endings. The keys are now computed anew for every stored name: a main key
(search_key) and every key of every reading of each word (search_tokens). Keys are
derived data, so the downgrade leaves the new ones in place.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.persons.names import skeleton, tokens

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 5000


def upgrade() -> None:
    connection = op.get_bind()
    after = None
    while True:
        rows = connection.execute(
            sa.text(
                "SELECT id, value FROM person_name "
                + ("WHERE id > :after " if after is not None else "")
                + "ORDER BY id LIMIT :batch"
            ),
            {"after": after, "batch": BATCH},
        ).all()
        if not rows:
            return
        connection.execute(
            sa.text(
                "UPDATE person_name SET search_key = k.search_key, "
                "search_tokens = string_to_array(k.search_tokens, ' ') "
                "FROM unnest(CAST(:ids AS uuid[]), CAST(:keys AS text[]), "
                "CAST(:tokens AS text[])) AS k(id, search_key, search_tokens) "
                "WHERE person_name.id = k.id"
            ),
            {
                "ids": [row.id for row in rows],
                "keys": [skeleton(row.value) for row in rows],
                "tokens": [" ".join(tokens(row.value)) for row in rows],
            },
        )
        after = rows[-1].id


def downgrade() -> None:
    pass

"""Every charge of a case file has a `charge_id`, so that a verdict can name the charges it
decided.

Charges are JSON objects in `case_file.charges`; those stored before this revision have
none, and get a UUIDv7 each (made here in Python: PostgreSQL 15 has no `uuidv7()`). The
charges are otherwise left as they are, and so is the case file's version: the ETag a client
holds stays valid, and sending the charges back as read keeps their ids.

Downgrading takes the ids off again (the older schema refuses them in input).

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29 23:00:00
"""

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from app.core.ids import new_id

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000
# A charge without an id (every stored value is an array of objects).
WITHOUT_ID = "jsonb_path_exists(charges, '$[*] ? (!exists(@.charge_id))')"


def _with_ids(charges: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**charge, "charge_id": charge.get("charge_id") or str(new_id())} for charge in charges]


def upgrade() -> None:
    connection = op.get_bind()
    select = (
        sa.text(
            f"SELECT id, charges FROM case_file WHERE id > :after AND {WITHOUT_ID}"
            " ORDER BY id LIMIT :batch"
        )
        .bindparams(sa.bindparam("after", type_=sa.Uuid()))
        .columns(sa.column("id", sa.Uuid()), sa.column("charges", JSONB()))
    )
    update = sa.text("UPDATE case_file SET charges = :charges WHERE id = :id").bindparams(
        sa.bindparam("charges", type_=JSONB()), sa.bindparam("id", type_=sa.Uuid())
    )
    after = uuid.UUID(int=0)
    while True:
        rows = connection.execute(select, {"after": after, "batch": BATCH}).all()
        if not rows:
            return
        connection.execute(
            update, [{"id": row.id, "charges": _with_ids(row.charges)} for row in rows]
        )
        after = rows[-1].id


def downgrade() -> None:
    op.execute(
        "UPDATE case_file SET charges = (SELECT jsonb_agg(charge - 'charge_id' ORDER BY n)"
        " FROM jsonb_array_elements(charges) WITH ORDINALITY AS t(charge, n))"
        " WHERE jsonb_path_exists(charges, '$[*].charge_id')"
    )

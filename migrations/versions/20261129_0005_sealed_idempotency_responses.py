"""Idempotency records keep the response they replay sealed, not in plain text; the audit
trail records requests for records that do not exist (outcome "not_found").

A create's stored response can hold confidential values (a person's address, relatives,
contacts and private names; a source's witness). It is now an AES-GCM envelope under the
data key ring, bound to its row (app/core/crypto.py), and key rotation re-seals it. Existing
responses are sealed here, in the same transaction that drops the plain column. As after
migration 0003, the old row versions keep the plain text on disk until the table is
rewritten: on a database that held real data, run `VACUUM FULL idempotency_record`.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 13:20:00
"""

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

if TYPE_CHECKING:
    from app.core.crypto import DataKeyRing

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "idempotency_record"
SEALED = "response_sealed"


def _ring() -> "DataKeyRing":
    from app.core.config import get_settings
    from app.core.crypto import data_key_ring

    return data_key_ring(get_settings())


OUTCOME_CHECK = "ck_audit_event_outcome_allowed"


def upgrade() -> None:
    op.drop_constraint(op.f(OUTCOME_CHECK), "audit_event", type_="check")
    op.create_check_constraint(
        op.f(OUTCOME_CHECK), "audit_event", "outcome IN ('success', 'denied', 'not_found')"
    )
    op.add_column(TABLE, sa.Column(SEALED, sa.LargeBinary(), nullable=True))
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(f"SELECT id, response_body FROM {TABLE} WHERE response_body IS NOT NULL")
    ).all()
    ring = _ring() if rows else None
    for row_id, body in rows:
        assert ring is not None
        bind.execute(
            sa.text(f"UPDATE {TABLE} SET {SEALED} = :sealed WHERE id = :id"),
            {"sealed": ring.seal_json(TABLE, SEALED, row_id, value=body), "id": row_id},
        )
    op.drop_column(TABLE, "response_body")


def downgrade() -> None:
    # The trail is append-only: events already recorded as not found stay, so the older
    # check is put back without validating them.
    op.drop_constraint(op.f(OUTCOME_CHECK), "audit_event", type_="check")
    op.execute(
        f"ALTER TABLE audit_event ADD CONSTRAINT {OUTCOME_CHECK}"
        " CHECK (outcome IN ('success', 'denied')) NOT VALID"
    )
    op.add_column(
        TABLE,
        sa.Column("response_body", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(f"SELECT id, {SEALED} FROM {TABLE} WHERE {SEALED} IS NOT NULL")
    ).all()
    ring = _ring() if rows else None
    for row_id, sealed in rows:
        assert ring is not None
        bind.execute(
            sa.text(f"UPDATE {TABLE} SET response_body = CAST(:body AS jsonb) WHERE id = :id"),
            {
                "body": json.dumps(ring.open_json(TABLE, SEALED, row_id, envelope=sealed)),
                "id": row_id,
            },
        )
    op.drop_column(TABLE, SEALED)

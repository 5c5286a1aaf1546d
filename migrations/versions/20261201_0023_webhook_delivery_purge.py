"""The log of webhook deliveries is purged after HABEAS_WEBHOOK_DELIVERY_RETENTION_DAYS
(app/jobs/housekeeping.py): an index on when each was attempted, so that the purge finds
the old ones without reading the whole log.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-01 10:05:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_sync_webhook_delivery_attempted_at"), "sync_webhook_delivery", ["attempted_at"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_sync_webhook_delivery_attempted_at"), table_name="sync_webhook_delivery")

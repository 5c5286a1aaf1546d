"""A partner's sharing agreement is honoured only once a coordinator has approved it.

What a partner may see is a data-sharing decision, a coordinator's, not the admin's who
creates the partner and holds its credentials (DESIGN §4). `agreement_approved_by` and
`agreement_approved_at` record the approval; a change of the partner's credentials clears
them again. Existing agreements were set by an admin alone, so they start unapproved: the
partners see nothing until a coordinator confirms each one (PUT
/api/v1/partners/{id}/agreement).

Downgrading cannot hold an agreement back: unapproved agreements are emptied (no
jurisdiction, no listed case files, public tier, read only), so that the older schema does
not honour what no coordinator approved.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("partner", sa.Column("agreement_approved_by", sa.Uuid(), nullable=True))
    op.add_column(
        "partner",
        sa.Column("agreement_approved_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.execute(
        "UPDATE partner SET share_jurisdiction = NULL, share_case_file_ids = '{}',"
        " share_recognised_only = true, max_tier = 'public', read_write = false"
        " WHERE agreement_approved_at IS NULL"
    )
    op.drop_column("partner", "agreement_approved_at")
    op.drop_column("partner", "agreement_approved_by")

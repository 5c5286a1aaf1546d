"""A recognition decision covers case files; a withdrawal gives an exclusion code.

`recognition_coverage` links each decision to the case files it covers, and
`case_file.recognition_status` keeps, per case file, the status of the latest decision
covering it (not_assessed when none does), so that lists and partners' agreements judge a
case file by its own recognition, not by whatever was decided about its person's other
prosecutions. `recognition_decision.exclusion_code` says why a recognition was withdrawn.

Existing decisions cover the case files their person had when the decision was recorded
(`case_file.created_at <= recognition_decision.recorded_at`): what the decision could have
been about. A case file opened after the person's latest decision becomes not_assessed,
which is the point of this change (a new arrest needs its own decision). Existing
withdrawals keep no exclusion code (null): none was asked for then, and none is invented.

Downgrading drops the coverage, the per-case-file status and the exclusion codes; the
person's own recognition status, which this revision leaves alone, is what the older
schema judges by.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RECOGNITION_STATUSES = (
    "'not_assessed', 'under_review', 'political_prisoner', 'politically_persecuted', 'withdrawn'"
)
EXCLUSION_CODES = (
    "'advocated_violence', 'committed_violent_offence', 'terrorism_lawfully_prosecuted', "
    "'new_information', 'other'"
)


def upgrade() -> None:
    op.add_column(
        "recognition_decision",
        sa.Column("exclusion_code", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    )
    op.create_check_constraint(
        op.f("ck_recognition_decision_exclusion_code_allowed"),
        "recognition_decision",
        f"exclusion_code IN ({EXCLUSION_CODES})",
    )
    op.add_column(
        "case_file",
        sa.Column(
            "recognition_status",
            sqlmodel.sql.sqltypes.AutoString(length=30),
            server_default="not_assessed",
            nullable=False,
        ),
    )
    op.create_check_constraint(
        op.f("ck_case_file_recognition_status_allowed"),
        "case_file",
        f"recognition_status IN ({RECOGNITION_STATUSES})",
    )
    op.create_index("ix_case_file_recognition_status_id", "case_file", ["recognition_status", "id"])
    op.create_table(
        "recognition_coverage",
        sa.Column("decision_id", sa.Uuid(), nullable=False),
        sa.Column("case_file_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_file_id"],
            ["case_file.id"],
            name=op.f("fk_recognition_coverage_case_file_id_case_file"),
        ),
        sa.ForeignKeyConstraint(
            ["decision_id"],
            ["recognition_decision.id"],
            name=op.f("fk_recognition_coverage_decision_id_recognition_decision"),
        ),
        sa.PrimaryKeyConstraint(
            "decision_id", "case_file_id", name=op.f("pk_recognition_coverage")
        ),
    )
    op.create_index(
        op.f("ix_recognition_coverage_case_file_id"),
        "recognition_coverage",
        ["case_file_id"],
        unique=False,
    )
    op.execute(
        """
        INSERT INTO recognition_coverage (decision_id, case_file_id)
        SELECT d.id, c.id
        FROM recognition_decision d
        JOIN case_file c ON c.person_id = d.person_id AND c.created_at <= d.recorded_at
        """
    )
    op.execute(
        """
        UPDATE case_file c
        SET recognition_status = latest.status
        FROM (
            SELECT DISTINCT ON (v.case_file_id) v.case_file_id, d.status
            FROM recognition_coverage v
            JOIN recognition_decision d ON d.id = v.decision_id
            ORDER BY v.case_file_id, d.version DESC
        ) AS latest
        WHERE c.id = latest.case_file_id
        """
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_recognition_coverage_case_file_id"), table_name="recognition_coverage")
    op.drop_table("recognition_coverage")
    op.drop_index("ix_case_file_recognition_status_id", table_name="case_file")
    op.drop_constraint(op.f("ck_case_file_recognition_status_allowed"), "case_file", type_="check")
    op.drop_column("case_file", "recognition_status")
    op.drop_constraint(
        op.f("ck_recognition_decision_exclusion_code_allowed"),
        "recognition_decision",
        type_="check",
    )
    op.drop_column("recognition_decision", "exclusion_code")

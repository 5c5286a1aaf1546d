"""Report schedules (weekly and monthly status reports made by `habeas worker`) and the
record of each period's run: its status, attempts, last error and the snapshot it made.

`report_schedule_run.snapshot_id` names the `report_snapshot` a succeeded run made.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 01:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CADENCES = "'weekly', 'monthly'"
ORIGINS = "'api', 'configuration'"
STATUSES = "'running', 'succeeded', 'failed'"
DEPRIVATION_TYPES = (
    "'pretrial_custody', 'house_arrest', 'administrative_arrest', 'imprisonment',"
    " 'restriction_of_freedom', 'psychiatric'"
)


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def _moment(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "report_schedule",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", _text(300), nullable=False),
        sa.Column("cadence", _text(10), nullable=False),
        sa.Column("origin", _text(20), nullable=False),
        sa.Column("jurisdiction", _text(2), nullable=True),
        sa.Column("baseline", sa.Date(), nullable=False),
        sa.Column("held_deprivation_types", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        _moment("created_at"),
        _moment("updated_at"),
        sa.CheckConstraint(
            f"cadence IN ({CADENCES})", name=op.f("ck_report_schedule_cadence_allowed")
        ),
        sa.CheckConstraint(
            f"origin IN ({ORIGINS})", name=op.f("ck_report_schedule_origin_allowed")
        ),
        sa.CheckConstraint(
            f"held_deprivation_types <@ ARRAY[{DEPRIVATION_TYPES}]::text[]",
            name=op.f("ck_report_schedule_held_deprivation_types_allowed"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_schedule")),
        sa.UniqueConstraint("name", name=op.f("uq_report_schedule_name")),
    )
    op.create_table(
        "report_schedule_run",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("schedule_id", sa.Uuid(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("period_from", sa.Date(), nullable=False),
        sa.Column("period_to", sa.Date(), nullable=False),
        sa.Column("status", _text(10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("snapshot_id", sa.Uuid(), nullable=True),
        _moment("started_at"),
        _moment("finished_at", nullable=True),
        sa.CheckConstraint(
            f"status IN ({STATUSES})", name=op.f("ck_report_schedule_run_status_allowed")
        ),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["report_schedule.id"],
            name=op.f("fk_report_schedule_run_schedule_id_report_schedule"),
        ),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["report_snapshot.id"],
            name=op.f("fk_report_schedule_run_snapshot_id_report_snapshot"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_schedule_run")),
        sa.UniqueConstraint(
            "schedule_id", "as_of", name=op.f("uq_report_schedule_run_schedule_id_as_of")
        ),
    )
    op.create_index(
        "ix_report_schedule_run_status", "report_schedule_run", ["status"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_report_schedule_run_status", table_name="report_schedule_run")
    op.drop_table("report_schedule_run")
    op.drop_table("report_schedule")

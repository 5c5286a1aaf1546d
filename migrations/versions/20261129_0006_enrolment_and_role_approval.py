"""Enrolment codes and approval of roles (separation of duties, DESIGN §4).

An account is created, or reset, with a one-time enrolment code (stored as its SHA-256)
instead of a password and TOTP secret; both stay empty until the person redeems the code.
A role that needs a second person's approval waits in `role_request`, and until then the
account holds no role (or keeps its old one); `enrolled_at`, `enrolled_from_address` and
`enrolled_user_agent` say when and from where the current enrolment was confirmed, for the
approver to check with the person (unknown, so empty, for existing accounts). Existing
accounts keep their credentials and roles.

`known_sign_in_address` remembers where each account signed in from: the account-wide
sign-in throttle does not hold those addresses back.

Downgrading cannot express an account without a role or an unconfirmed enrolment: such
accounts are disabled, with the auditor role (the one without case content), and role
requests are dropped. It refuses while an account has no credentials at all (a TOTP secret
cannot be made here): finish those enrolments, or delete the accounts, first.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column("app_user", "password_hash", existing_type=sa.Text(), nullable=True)
    op.alter_column("app_user", "totp_secret", existing_type=sa.LargeBinary(), nullable=True)
    op.alter_column(
        "app_user",
        "role",
        existing_type=sqlmodel.sql.sqltypes.AutoString(length=20),
        nullable=True,
    )
    op.add_column("app_user", sa.Column("enrolment_code_hash", sa.LargeBinary(), nullable=True))
    op.add_column(
        "app_user",
        sa.Column("enrolment_expires_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_unique_constraint(
        op.f("uq_app_user_enrolment_code_hash"), "app_user", ["enrolment_code_hash"]
    )
    op.add_column("app_user", sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "app_user",
        sa.Column(
            "enrolled_from_address", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True
        ),
    )
    op.add_column(
        "app_user",
        sa.Column(
            "enrolled_user_agent", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True
        ),
    )
    op.create_table(
        "known_sign_in_address",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("address", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("last_signed_in_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["app_user.id"], name=op.f("fk_known_sign_in_address_user_id_app_user")
        ),
        sa.PrimaryKeyConstraint("user_id", "address", name=op.f("pk_known_sign_in_address")),
    )
    op.create_table(
        "role_request",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("requested_by", sa.Uuid(), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.Uuid(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "role IN ('admin', 'coordinator', 'caseworker', 'analyst', 'auditor')",
            name=op.f("ck_role_request_role_allowed"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'rejected', 'withdrawn')",
            name=op.f("ck_role_request_status_allowed"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["app_user.id"], name=op.f("fk_role_request_user_id_app_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_role_request")),
    )
    op.create_index(op.f("ix_role_request_user_id"), "role_request", ["user_id"], unique=False)
    op.create_index(
        "uq_role_request_pending_user",
        "role_request",
        ["user_id"],
        unique=True,
        postgresql_where=sa.text("status = 'pending'"),
    )


def downgrade() -> None:
    uncredentialed = op.get_bind().scalar(
        sa.text("SELECT count(*) FROM app_user WHERE password_hash IS NULL OR totp_secret IS NULL")
    )
    if uncredentialed:
        raise RuntimeError(
            f"{uncredentialed} account(s) have no password or TOTP secret yet; the schema"
            " before 0006 cannot hold them. Finish their enrolment or delete them first."
        )
    op.drop_index(
        "uq_role_request_pending_user",
        table_name="role_request",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_index(op.f("ix_role_request_user_id"), table_name="role_request")
    op.drop_table("role_request")
    op.drop_table("known_sign_in_address")
    op.execute(
        "UPDATE app_user SET disabled = true, role = coalesce(role, 'auditor')"
        " WHERE role IS NULL OR enrolment_code_hash IS NOT NULL"
    )
    op.drop_column("app_user", "enrolled_user_agent")
    op.drop_column("app_user", "enrolled_from_address")
    op.drop_column("app_user", "enrolled_at")
    op.drop_constraint(op.f("uq_app_user_enrolment_code_hash"), "app_user", type_="unique")
    op.drop_column("app_user", "enrolment_expires_at")
    op.drop_column("app_user", "enrolment_code_hash")
    op.alter_column(
        "app_user",
        "role",
        existing_type=sqlmodel.sql.sqltypes.AutoString(length=20),
        nullable=False,
    )
    op.alter_column("app_user", "totp_secret", existing_type=sa.LargeBinary(), nullable=False)
    op.alter_column("app_user", "password_hash", existing_type=sa.Text(), nullable=False)

"""Users, sessions, refresh tokens, sign-in throttling and partner clients; confidential
columns become AES-GCM envelopes.

Existing confidential values are sealed here with the configured data key ring (see
app/core/crypto.py), so the plain text leaves the table in the same transaction. The old
row versions still hold it on disk until the table is rewritten: on a database that held
real confidential data, run `VACUUM FULL person, source` after this migration (and treat
older WAL archives and backups as holding plain text).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 04:57:47.672076
"""

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op
from sqlalchemy.dialects import postgresql

if TYPE_CHECKING:
    from app.core.crypto import DataKeyRing

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "app_user",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("username", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("totp_secret", sa.LargeBinary(), nullable=False),
        sa.Column("totp_last_step", sa.Integer(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "role IN ('admin', 'coordinator', 'caseworker', 'analyst', 'auditor')",
            name=op.f("ck_app_user_role_allowed"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_user")),
        sa.UniqueConstraint("username", name=op.f("uq_app_user_username")),
    )
    op.create_table(
        "partner",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("auth_method", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("secret_hash", sa.Text(), nullable=True),
        sa.Column("public_jwks", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("scopes", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("share_jurisdiction", sa.String(length=2), nullable=True),
        sa.Column("share_recognised_only", sa.Boolean(), nullable=False),
        sa.Column(
            "share_case_file_ids", postgresql.ARRAY(sa.Uuid()), server_default="{}", nullable=False
        ),
        sa.Column("max_tier", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("read_write", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "auth_method IN ('private_key_jwt', 'client_secret')",
            name=op.f("ck_partner_auth_method_allowed"),
        ),
        sa.CheckConstraint(
            "max_tier IN ('public', 'restricted')", name=op.f("ck_partner_max_tier_allowed")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partner")),
        sa.UniqueConstraint("client_id", name=op.f("uq_partner_client_id")),
        sa.UniqueConstraint("name", name=op.f("uq_partner_name")),
    )
    op.create_table(
        "sign_in_throttle",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_sign_in_throttle")),
    )
    op.create_table(
        "client_assertion_use",
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("jti", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partner.id"], name=op.f("fk_client_assertion_use_partner_id_partner")
        ),
        sa.PrimaryKeyConstraint("partner_id", "jti", name=op.f("pk_client_assertion_use")),
    )
    op.create_table(
        "user_session",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["app_user.id"], name=op.f("fk_user_session_user_id_app_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_session")),
    )
    op.create_index(op.f("ix_user_session_user_id"), "user_session", ["user_id"], unique=False)
    op.create_table(
        "refresh_token",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["user_session.id"],
            name=op.f("fk_refresh_token_session_id_user_session"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refresh_token")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_refresh_token_token_hash")),
    )
    op.create_index(
        op.f("ix_refresh_token_session_id"), "refresh_token", ["session_id"], unique=False
    )
    op.add_column("person", sa.Column("recorded_by", sa.Uuid(), nullable=True))
    op.add_column("source", sa.Column("recorded_by", sa.Uuid(), nullable=True))
    _seal_columns()


def downgrade() -> None:
    _unseal_columns()
    op.drop_column("source", "recorded_by")
    op.drop_column("person", "recorded_by")
    op.drop_index(op.f("ix_refresh_token_session_id"), table_name="refresh_token")
    op.drop_table("refresh_token")
    op.drop_index(op.f("ix_user_session_user_id"), table_name="user_session")
    op.drop_table("user_session")
    op.drop_table("client_assertion_use")
    op.drop_table("sign_in_throttle")
    op.drop_table("partner")
    op.drop_table("app_user")


# (table, column, plain type). Person values are sealed as JSON (what the persons service
# does), the witness as its text (what the sources service does).
CONFIDENTIAL: tuple[tuple[str, str, str], ...] = (
    ("person", "relatives", "jsonb"),
    ("person", "contacts", "jsonb"),
    ("person", "address", "text"),
    ("source", "witness", "text"),
)


def _ring() -> "DataKeyRing":
    from app.core.config import get_settings
    from app.core.crypto import data_key_ring

    return data_key_ring(get_settings())


def _seal_columns() -> None:
    bind = op.get_bind()
    ring: DataKeyRing | None = None
    for table, column, _ in CONFIDENTIAL:
        op.alter_column(table, column, new_column_name=f"{column}_plain")
        op.add_column(table, sa.Column(column, sa.LargeBinary(), nullable=True))
        rows = bind.execute(
            sa.text(f"SELECT id, {column}_plain FROM {table} WHERE {column}_plain IS NOT NULL")
        ).all()
        for row_id, plain in rows:
            ring = ring or _ring()
            sealed = (
                ring.seal(table, column, row_id, plaintext=plain.encode())
                if table == "source"
                else ring.seal_json(table, column, row_id, value=plain)
            )
            bind.execute(
                sa.text(f"UPDATE {table} SET {column} = :sealed WHERE id = :id"),
                {"sealed": sealed, "id": row_id},
            )
        op.drop_column(table, f"{column}_plain")


def _unseal_columns() -> None:
    bind = op.get_bind()
    ring: DataKeyRing | None = None
    for table, column, plain_type in CONFIDENTIAL:
        column_type = postgresql.JSONB() if plain_type == "jsonb" else sa.Text()
        op.add_column(table, sa.Column(f"{column}_plain", column_type, nullable=True))
        rows = bind.execute(
            sa.text(f"SELECT id, {column} FROM {table} WHERE {column} IS NOT NULL")
        ).all()
        for row_id, sealed in rows:
            ring = ring or _ring()
            if table == "source":
                plain: Any = ring.open(table, column, row_id, envelope=sealed).decode()
            else:
                plain = ring.open_json(table, column, row_id, envelope=sealed)
            if plain_type == "jsonb":
                plain = json.dumps(plain)
            bind.execute(
                sa.text(
                    f"UPDATE {table} SET {column}_plain = "
                    + ("CAST(:plain AS jsonb)" if plain_type == "jsonb" else ":plain")
                    + " WHERE id = :id"
                ),
                {"plain": plain, "id": row_id},
            )
        op.drop_column(table, column)
        op.alter_column(table, f"{column}_plain", new_column_name=column)

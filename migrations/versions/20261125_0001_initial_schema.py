"""Initial schema: persons, case files, status history, collective events, recognition,
sources and idempotency records.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 02:48:29.121284
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Name search matches trigram skeletons (app/persons/names.py).
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    # Human case references HB-YYYY-NNNNNN take their number from here.
    op.execute("CREATE SEQUENCE case_reference_seq")
    op.create_table(
        "collective_event",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("to_status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("effective_date", sa.Date(), nullable=False),
        sa.Column(
            "effective_precision", sqlmodel.sql.sqltypes.AutoString(length=5), nullable=False
        ),
        sa.Column("destination_country", sqlmodel.sql.sqltypes.AutoString(length=2), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("source_ids", sa.ARRAY(sa.Uuid()), server_default="{}", nullable=False),
        sa.Column("case_file_count", sa.Integer(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.Uuid(), nullable=True),
        sa.CheckConstraint(
            "effective_precision IN ('day', 'month', 'year')",
            name=op.f("ck_collective_event_effective_precision_allowed"),
        ),
        sa.CheckConstraint(
            "kind IN ('pardon', 'amnesty', 'exchange', 'deportation', 'other')",
            name=op.f("ck_collective_event_kind_allowed"),
        ),
        sa.CheckConstraint(
            "to_status IN ('detained', 'sentenced', 'released', 'pardoned', 'deported', 'died_in_custody')",
            name=op.f("ck_collective_event_to_status_allowed"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collective_event")),
    )
    op.create_table(
        "idempotency_record",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("fingerprint", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response_body", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("response_headers", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_record")),
        sa.UniqueConstraint("scope", "key", name=op.f("uq_idempotency_record_scope_key")),
    )
    op.create_index(
        op.f("ix_idempotency_record_created_at"), "idempotency_record", ["created_at"], unique=False
    )
    op.create_table(
        "person",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column(
            "birth_date_precision", sqlmodel.sql.sqltypes.AutoString(length=5), nullable=True
        ),
        sa.Column("gender", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column(
            "citizenships", sa.ARRAY(sa.String(length=2)), server_default="{}", nullable=False
        ),
        sa.Column("region", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=True),
        sa.Column("occupation", sa.Text(), nullable=True),
        sa.Column("affiliations", sa.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("special_risk", sa.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("publish_consent", sa.Boolean(), nullable=False),
        sa.Column("health", sa.Text(), nullable=True),
        sa.Column("lawyer", sa.Text(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("relatives", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("contacts", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column(
            "recognition_status", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "birth_date_precision IN ('day', 'month', 'year')",
            name=op.f("ck_person_birth_date_precision_allowed"),
        ),
        sa.CheckConstraint(
            "gender IN ('female', 'male', 'other', 'unknown')",
            name=op.f("ck_person_gender_allowed"),
        ),
        sa.CheckConstraint(
            "recognition_status IN ('not_assessed', 'under_review', 'political_prisoner', 'politically_persecuted', 'withdrawn')",
            name=op.f("ck_person_recognition_status_allowed"),
        ),
        sa.CheckConstraint(
            "special_risk <@ ARRAY['disability', 'serious_illness', 'age_60_plus', 'mental_disorder']::text[]",
            name=op.f("ck_person_special_risk_allowed"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_person")),
    )
    op.create_index(
        "ix_person_citizenships", "person", ["citizenships"], unique=False, postgresql_using="gin"
    )
    op.create_index(
        op.f("ix_person_recognition_status"), "person", ["recognition_status"], unique=False
    )
    op.create_table(
        "source",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("publisher", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("published_on", sa.Date(), nullable=True),
        sa.Column("reliability", sqlmodel.sql.sqltypes.AutoString(length=1), nullable=False),
        sa.Column("credibility", sa.Integer(), nullable=False),
        sa.Column("is_public", sa.Boolean(), nullable=False),
        sa.Column("witness", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "reliability IN ('A', 'B', 'C', 'D', 'E', 'F')",
            name=op.f("ck_source_reliability_allowed"),
        ),
        sa.CheckConstraint("credibility BETWEEN 1 AND 6", name=op.f("ck_source_credibility_range")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source")),
    )
    op.create_table(
        "case_file",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("reference", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("jurisdiction", sqlmodel.sql.sqltypes.AutoString(length=2), nullable=False),
        sa.Column("deprivation_type", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
        sa.Column("confidentiality", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("assigned_caseworkers", sa.ARRAY(sa.Uuid()), server_default="{}", nullable=False),
        sa.Column(
            "charges", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False
        ),
        sa.Column(
            "court_decisions",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="[]",
            nullable=False,
        ),
        sa.Column(
            "detention_places",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="[]",
            nullable=False,
        ),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("status_since", sa.Date(), nullable=False),
        sa.Column(
            "status_since_precision", sqlmodel.sql.sqltypes.AutoString(length=5), nullable=False
        ),
        sa.Column("detained_on", sa.Date(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "confidentiality IN ('normal', 'high')",
            name=op.f("ck_case_file_confidentiality_allowed"),
        ),
        sa.CheckConstraint(
            "deprivation_type IN ('pretrial_custody', 'house_arrest', 'administrative_arrest', 'imprisonment', 'restriction_of_freedom', 'psychiatric')",
            name=op.f("ck_case_file_deprivation_type_allowed"),
        ),
        sa.CheckConstraint(
            "status IN ('detained', 'sentenced', 'released', 'pardoned', 'deported', 'died_in_custody')",
            name=op.f("ck_case_file_status_allowed"),
        ),
        sa.CheckConstraint(
            "status_since_precision IN ('day', 'month', 'year')",
            name=op.f("ck_case_file_status_since_precision_allowed"),
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["person.id"], name=op.f("fk_case_file_person_id_person")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_file")),
        sa.UniqueConstraint("reference", name=op.f("uq_case_file_reference")),
    )
    op.create_index(
        "ix_case_file_charges",
        "case_file",
        ["charges"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"charges": "jsonb_path_ops"},
    )
    op.create_index(op.f("ix_case_file_detained_on"), "case_file", ["detained_on"], unique=False)
    op.create_index(op.f("ix_case_file_jurisdiction"), "case_file", ["jurisdiction"], unique=False)
    op.create_index(op.f("ix_case_file_person_id"), "case_file", ["person_id"], unique=False)
    op.create_index("ix_case_file_status_id", "case_file", ["status", "id"], unique=False)
    op.create_table(
        "person_name",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("script", sqlmodel.sql.sqltypes.AutoString(length=4), nullable=False),
        sa.Column("language", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=True),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("is_public", sa.Boolean(), nullable=False),
        sa.Column("search_key", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('legal', 'transliteration', 'alias', 'former', 'hidden')",
            name=op.f("ck_person_name_kind_allowed"),
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["person.id"], name=op.f("fk_person_name_person_id_person")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_person_name")),
    )
    op.create_index(op.f("ix_person_name_person_id"), "person_name", ["person_id"], unique=False)
    op.create_index(
        "ix_person_name_search_key_trgm",
        "person_name",
        ["search_key"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"search_key": "gin_trgm_ops"},
    )
    op.create_table(
        "recognition_decision",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
        sa.Column("criteria", sa.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("co_signers", sa.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("decided_on", sa.Date(), nullable=False),
        sa.Column("rationale", sa.Text(), nullable=True),
        sa.Column("exclusion_reason", sa.Text(), nullable=True),
        sa.Column("source_ids", sa.ARRAY(sa.Uuid()), server_default="{}", nullable=False),
        sa.Column("decided_by", sa.Uuid(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('not_assessed', 'under_review', 'political_prisoner', 'politically_persecuted', 'withdrawn')",
            name=op.f("ck_recognition_decision_status_allowed"),
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["person.id"], name=op.f("fk_recognition_decision_person_id_person")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recognition_decision")),
        sa.UniqueConstraint(
            "person_id", "version", name=op.f("uq_recognition_decision_person_id_version")
        ),
    )
    op.create_table(
        "status_event",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_file_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("to_status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("effective_date", sa.Date(), nullable=False),
        sa.Column(
            "effective_precision", sqlmodel.sql.sqltypes.AutoString(length=5), nullable=False
        ),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.Uuid(), nullable=True),
        sa.Column("confidence", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column(
            "details", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("source_ids", sa.ARRAY(sa.Uuid()), server_default="{}", nullable=False),
        sa.Column("collective_event_id", sa.Uuid(), nullable=True),
        sa.CheckConstraint(
            "confidence IN ('confirmed', 'reported', 'unconfirmed')",
            name=op.f("ck_status_event_confidence_allowed"),
        ),
        sa.CheckConstraint(
            "effective_precision IN ('day', 'month', 'year')",
            name=op.f("ck_status_event_effective_precision_allowed"),
        ),
        sa.CheckConstraint(
            "to_status IN ('detained', 'sentenced', 'released', 'pardoned', 'deported', 'died_in_custody')",
            name=op.f("ck_status_event_to_status_allowed"),
        ),
        sa.ForeignKeyConstraint(
            ["case_file_id"], ["case_file.id"], name=op.f("fk_status_event_case_file_id_case_file")
        ),
        sa.ForeignKeyConstraint(
            ["collective_event_id"],
            ["collective_event.id"],
            name=op.f("fk_status_event_collective_event_id_collective_event"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_event")),
        sa.UniqueConstraint(
            "case_file_id", "position", name=op.f("uq_status_event_case_file_id_position")
        ),
    )
    op.create_index(
        op.f("ix_status_event_collective_event_id"),
        "status_event",
        ["collective_event_id"],
        unique=False,
    )
    op.create_table(
        "status_event_retraction",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("case_file_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_file_id"],
            ["case_file.id"],
            name=op.f("fk_status_event_retraction_case_file_id_case_file"),
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["status_event.id"],
            name=op.f("fk_status_event_retraction_event_id_status_event"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_event_retraction")),
        sa.UniqueConstraint("event_id", name=op.f("uq_status_event_retraction_event_id")),
    )
    op.create_index(
        op.f("ix_status_event_retraction_case_file_id"),
        "status_event_retraction",
        ["case_file_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_status_event_retraction_case_file_id"), table_name="status_event_retraction"
    )
    op.drop_table("status_event_retraction")
    op.drop_index(op.f("ix_status_event_collective_event_id"), table_name="status_event")
    op.drop_table("status_event")
    op.drop_table("recognition_decision")
    op.drop_index(
        "ix_person_name_search_key_trgm",
        table_name="person_name",
        postgresql_using="gin",
        postgresql_ops={"search_key": "gin_trgm_ops"},
    )
    op.drop_index(op.f("ix_person_name_person_id"), table_name="person_name")
    op.drop_table("person_name")
    op.drop_index("ix_case_file_status_id", table_name="case_file")
    op.drop_index(op.f("ix_case_file_person_id"), table_name="case_file")
    op.drop_index(op.f("ix_case_file_jurisdiction"), table_name="case_file")
    op.drop_index(op.f("ix_case_file_detained_on"), table_name="case_file")
    op.drop_index(
        "ix_case_file_charges",
        table_name="case_file",
        postgresql_using="gin",
        postgresql_ops={"charges": "jsonb_path_ops"},
    )
    op.drop_table("case_file")
    op.drop_table("source")
    op.drop_index(op.f("ix_person_recognition_status"), table_name="person")
    op.drop_index("ix_person_citizenships", table_name="person", postgresql_using="gin")
    op.drop_table("person")
    op.drop_index(op.f("ix_idempotency_record_created_at"), table_name="idempotency_record")
    op.drop_table("idempotency_record")
    op.drop_table("collective_event")
    op.execute("DROP SEQUENCE case_reference_seq")

"""Partners' batches and webhooks: their own ids for our records, who sent an event,
recognition proposals, whether an agreement trusts a partner's confirmations; endpoints
for change notifications and their deliveries.

`sync_external_id` maps each partner's ids for persons, case files and status events to
ours (one each way, per partner). `status_event.reported_by_partner` names the partner
whose batch recorded the event. `recognition_proposal` keeps what partners propose; only
a coordinator's decision recognises anyone. `partner.trusted_as_confirmed`: what the
partner pushes as confirmed is recorded as confirmed, otherwise as reported.
`sync_webhook` keeps partners' endpoints (secrets sealed), `sync_webhook_delivery` each
attempt; the trigger `sync_webhooks_wake` queues the notifying job (pgqueuer's table) in
the transaction of every write that moves a feed position, while an endpoint is enabled.
`ix_case_file_high_person_id`: the persons a high-confidentiality case file closes, asked
by every partner's and analyst's page.

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-30 19:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RECOGNITION_STATUSES = (
    "'not_assessed', 'under_review', 'political_prisoner', 'politically_persecuted', 'withdrawn'"
)


SYNC_WEBHOOKS_WAKE = """
CREATE FUNCTION sync_webhooks_wake() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Only a statement that moved a position (an upsert fires both statement triggers,
    -- one of them with no rows), and only while an endpoint is enabled.
    IF NOT EXISTS (SELECT 1 FROM moved) OR NOT EXISTS
       (SELECT 1 FROM sync_webhook WHERE disabled_at IS NULL) THEN
        RETURN NULL;
    END IF;
    -- One waiting run is enough: it tells every endpoint all that is new when it runs.
    -- Held until this write commits (a worker claims jobs FOR UPDATE SKIP LOCKED), so
    -- that the run it counts on cannot start before the write is there to be seen.
    PERFORM 1 FROM pgqueuer
    WHERE entrypoint = 'sync_webhooks' AND status = 'queued' AND execute_after <= now()
    LIMIT 1 FOR SHARE;
    IF NOT FOUND THEN
        INSERT INTO pgqueuer (priority, entrypoint, status, execute_after)
        VALUES (0, 'sync_webhooks', 'queued', now());
    END IF;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "sync_external_id",
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("record_type", sa.String(length=20), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("record_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "record_type IN ('person', 'case', 'status_event')",
            name=op.f("ck_sync_external_id_record_type_allowed"),
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partner.id"], name=op.f("fk_sync_external_id_partner_id_partner")
        ),
        sa.PrimaryKeyConstraint(
            "partner_id", "record_type", "external_id", name=op.f("pk_sync_external_id")
        ),
        sa.UniqueConstraint(
            "partner_id",
            "record_type",
            "record_id",
            name=op.f("uq_sync_external_id_partner_id_record_type_record_id"),
        ),
    )
    op.create_table(
        "recognition_proposal",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("case_file_ids", sa.ARRAY(sa.Uuid()), server_default="{}", nullable=False),
        sa.Column("criteria", sa.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("rationale", sa.Text(), nullable=True),
        sa.Column("proposed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            f"status IN ({RECOGNITION_STATUSES})",
            name=op.f("ck_recognition_proposal_status_allowed"),
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partner.id"], name=op.f("fk_recognition_proposal_partner_id_partner")
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["person.id"], name=op.f("fk_recognition_proposal_person_id_person")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recognition_proposal")),
    )
    op.create_index(
        op.f("ix_recognition_proposal_person_id"), "recognition_proposal", ["person_id"]
    )
    op.add_column(
        "partner",
        sa.Column("trusted_as_confirmed", sa.Boolean(), server_default="false", nullable=False),
    )
    op.create_table(
        "sync_webhook",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("previous_secret_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("previous_secret_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notified_seq", sa.BigInteger(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partner.id"], name=op.f("fk_sync_webhook_partner_id_partner")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_webhook")),
    )
    op.create_index(op.f("ix_sync_webhook_partner_id"), "sync_webhook", ["partner_id"])
    op.create_table(
        "sync_webhook_delivery",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("webhook_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(length=12), nullable=False),
        sa.Column("milliseconds", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "outcome IN ('delivered', 'failed', 'disabled')",
            name=op.f("ck_sync_webhook_delivery_outcome_allowed"),
        ),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["sync_webhook.id"],
            name=op.f("fk_sync_webhook_delivery_webhook_id_sync_webhook"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_webhook_delivery")),
    )
    op.create_index(
        op.f("ix_sync_webhook_delivery_webhook_id"), "sync_webhook_delivery", ["webhook_id"]
    )
    op.execute(SYNC_WEBHOOKS_WAKE)
    for event in ("INSERT", "UPDATE"):
        op.execute(
            f"CREATE TRIGGER sync_webhooks_wake_{event.lower()} AFTER {event} ON sync_position "
            "REFERENCING NEW TABLE AS moved "
            "FOR EACH STATEMENT EXECUTE FUNCTION sync_webhooks_wake()"
        )
    op.add_column("status_event", sa.Column("reported_by_partner", sa.Uuid(), nullable=True))
    # The persons a high-confidentiality case file closes, for every partner's and
    # analyst's list and feed page (a scan of every case file before).
    op.create_index(
        op.f("ix_case_file_high_person_id"),
        "case_file",
        ["person_id"],
        postgresql_where=sa.text("confidentiality = 'high'"),
    )
    op.create_foreign_key(
        op.f("fk_status_event_reported_by_partner_partner"),
        "status_event",
        "partner",
        ["reported_by_partner"],
        ["id"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_case_file_high_person_id"), table_name="case_file")
    op.execute("DROP TRIGGER sync_webhooks_wake_insert ON sync_position")
    op.execute("DROP TRIGGER sync_webhooks_wake_update ON sync_position")
    op.execute("DROP FUNCTION sync_webhooks_wake()")
    op.drop_index(op.f("ix_sync_webhook_delivery_webhook_id"), table_name="sync_webhook_delivery")
    op.drop_table("sync_webhook_delivery")
    op.drop_index(op.f("ix_sync_webhook_partner_id"), table_name="sync_webhook")
    op.drop_table("sync_webhook")
    op.drop_constraint(
        op.f("fk_status_event_reported_by_partner_partner"), "status_event", type_="foreignkey"
    )
    op.drop_column("status_event", "reported_by_partner")
    op.drop_column("partner", "trusted_as_confirmed")
    op.drop_index(op.f("ix_recognition_proposal_person_id"), table_name="recognition_proposal")
    op.drop_table("recognition_proposal")
    op.drop_table("sync_external_id")

"""Changes that can end a caller's access are announced on the channel `identity_changed`.

Every API process keeps the sessions and partners it has checked in memory while it
hears this channel (app/identity/live.py), and forgets them all when anything is
announced: a session revoked, shortened or deleted; a user's role changed or the user
disabled; a partner changed or deleted; any of their tables emptied. The triggers
announce it in the transaction that makes the change, so that the notice leaves at its
commit, whoever commits it (the API, the command line, an operator's SQL; not a session
that switched triggers off with `session_replication_role`, which only a superuser can).

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-01 22:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "identity_changed"

ANNOUNCE = f"""
CREATE FUNCTION identity_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- One notice per table and transaction: PostgreSQL folds notices alike.
    PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME);
    RETURN NULL;
END
$$
"""

# (trigger, table, events, condition)
TRIGGERS = (
    (
        "user_session_changed",
        "user_session",
        "UPDATE",
        "OLD.revoked_at IS DISTINCT FROM NEW.revoked_at"
        " OR OLD.expires_at IS DISTINCT FROM NEW.expires_at"
        " OR OLD.user_id IS DISTINCT FROM NEW.user_id",
    ),
    ("user_session_deleted", "user_session", "DELETE", None),
    (
        "app_user_changed",
        "app_user",
        "UPDATE",
        "OLD.role IS DISTINCT FROM NEW.role OR OLD.disabled IS DISTINCT FROM NEW.disabled",
    ),
    ("app_user_deleted", "app_user", "DELETE", None),
    ("partner_changed", "partner", "UPDATE OR DELETE", None),
)


# Row triggers do not fire for TRUNCATE (an operator emptying a table in an emergency).
TRUNCATED = ("user_session", "app_user", "partner")


def upgrade() -> None:
    op.execute(ANNOUNCE)
    for name, table, events, condition in TRIGGERS:
        when = f" WHEN ({condition})" if condition else ""
        op.execute(
            f"CREATE TRIGGER {name} AFTER {events} ON {table} FOR EACH ROW{when}"
            " EXECUTE FUNCTION identity_changed()"
        )
    for table in TRUNCATED:
        op.execute(
            f"CREATE TRIGGER {table}_truncated AFTER TRUNCATE ON {table}"
            " FOR EACH STATEMENT EXECUTE FUNCTION identity_changed()"
        )


def downgrade() -> None:
    for table in TRUNCATED:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_truncated ON {table}")
    for name, table, _, _ in TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON {table}")
    op.execute("DROP FUNCTION identity_changed()")

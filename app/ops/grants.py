"""The application's database role: everything it needs, and nothing that could rewrite
the audit trail.

Migrations run as the owner of the tables. The API and workers connect as a separate
role (`habeas db grant ROLE`), which may read and write the working tables but may only
read and append to the audit trail: no UPDATE, DELETE or TRUNCATE there, on top of the
triggers that refuse them to everyone. `habeas serve` on the embedded server does the
same for development, with a role it creates.
"""

from collections.abc import Awaitable, Callable

import asyncpg
import structlog
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core import embedded
from app.core.config import Settings

log = structlog.get_logger(__name__)

# Append-only for the application: rows are added, never changed (the audit trail, and
# the report snapshots that were published, the merges as partners' sync follows them).
APPEND_ONLY_TABLES = (
    "audit_event",
    "audit_checkpoint",
    "report_snapshot",
    "report_snapshot_held",
    "person_merge_event",
)
# The chain head the application locks and advances with every event.
AUDIT_HEAD = "audit_head"


async def grant_application_role(connection: asyncpg.Connection, role: str) -> list[str]:
    """Grant `role` what the application needs (idempotent); returns the statements run."""
    quoted = await connection.fetchval("SELECT quote_ident($1)", role)
    exists = await connection.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
    if not exists:
        raise LookupError(f"no database role {role!r}; create it first (CREATE ROLE … LOGIN)")
    append_only = ", ".join(APPEND_ONLY_TABLES)
    statements = [
        f"GRANT USAGE ON SCHEMA public TO {quoted}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {quoted}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {quoted}",
        f"REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON {append_only} FROM {quoted}",
        f"REVOKE INSERT, DELETE, TRUNCATE ON {AUDIT_HEAD} FROM {quoted}",
        f"REVOKE ALL ON alembic_version FROM {quoted}",
        f"GRANT SELECT ON alembic_version TO {quoted}",
    ]
    async with connection.transaction():
        for statement in statements:
            await connection.execute(statement)
    return statements


# A role that can log in and do nothing else to the cluster.
PLAIN_LOGIN = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"


async def provision_application_role(connection: asyncpg.Connection, role: str) -> None:
    """Create `role` as a plain login role, or take back any power it was given since, and
    grant it what the application needs. For the embedded server, which trusts connections
    on its private socket, so the role needs no password."""
    quoted = await connection.fetchval("SELECT quote_ident($1)", role)
    exists = await connection.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
    await connection.execute(f"{'ALTER' if exists else 'CREATE'} ROLE {quoted} {PLAIN_LOGIN}")
    await grant_application_role(connection, role)


async def application_database_url(settings: Settings, owner_url: str) -> str:
    """The URL the API connects with, its role granted (see Settings.app_database_url).
    `owner_url` is the owner's, which migrates and grants."""
    if settings.app_database_url is not None:
        role = make_url(settings.app_database_url).username
        if not role:
            raise LookupError("HABEAS_APP_DATABASE_URL names no user")
        await _as_owner(owner_url, grant_application_role, role)
        return settings.app_database_url
    if settings.database_url is not None:
        return settings.database_url
    await _as_owner(owner_url, provision_application_role, settings.app_database_role)
    return embedded.with_user(owner_url, settings.app_database_role)


async def _as_owner(
    owner_url: str, work: Callable[[asyncpg.Connection, str], Awaitable[object]], role: str
) -> None:
    connection = await asyncpg.connect(**embedded.asyncpg_connect_kwargs(owner_url))
    try:
        await work(connection, role)
    finally:
        await connection.close()


class UnsafeDatabaseRole(RuntimeError):
    """The API would connect as a role that can rewrite the audit trail."""


async def refuse_unsafe_role(engine: AsyncEngine, *, production: bool) -> None:
    """The API's role must not be a superuser, nor the owner of the audit trail (or a
    member of the owner's role): either could switch its triggers off. In production that
    stops the start; elsewhere (a developer's own server, the tests) it is a warning."""
    async with engine.connect() as connection:
        unsafe = (
            await connection.execute(
                text(
                    "SELECT r.rolsuper OR pg_has_role(current_user, c.relowner, 'MEMBER')"
                    " FROM pg_roles r, pg_class c"
                    " WHERE r.rolname = current_user AND c.oid = 'audit_event'::regclass"
                )
            )
        ).scalar_one()
        user = (await connection.execute(text("SELECT current_user"))).scalar_one()
    if not unsafe:
        return
    message = (
        f"the API connects to the database as {user!r}, which can switch the audit trail's"
        " triggers off; connect as a role granted by `habeas db grant ROLE`"
        " (see HABEAS_APP_DATABASE_URL)"
    )
    if production:
        raise UnsafeDatabaseRole(f"Refusing to start: {message}.")
    log.warning("unsafe_database_role", detail=message)

"""The application's database role: everything it needs, and nothing that could rewrite
the audit trail.

Migrations run as the owner of the tables. The API and workers connect as a separate
role (`habeas db grant ROLE`), which may read and write the working tables but may only
read and append to the audit trail: no UPDATE, DELETE or TRUNCATE there, on top of the
triggers that refuse them to everyone.
"""

import asyncpg

# Append-only for the application: rows are added, never changed.
APPEND_ONLY_TABLES = ("audit_event", "audit_checkpoint")
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

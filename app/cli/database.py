"""`habeas db`: the embedded PostgreSQL server, and the application role's grants."""

import asyncio
import json

import asyncpg
import typer

from app.cli.common import database_url
from app.core import embedded
from app.core.config import get_settings

commands = typer.Typer(no_args_is_help=True, help="The embedded PostgreSQL server.")


@commands.command("start")
def db_start() -> None:
    """Start the embedded server and leave it running; print its URL."""
    settings = get_settings()
    pgdata = embedded.embedded_pgdata(settings.data_dir)
    server = embedded.leave_running(pgdata)
    asyncio.run(embedded.ensure_database(server.get_uri("postgres"), settings.database_name))
    typer.echo(embedded.with_database(server.get_uri("postgres"), settings.database_name))


@commands.command("stop")
def db_stop() -> None:
    """Stop the embedded server if it is running."""
    settings = get_settings()
    stopped = embedded.stop(embedded.embedded_pgdata(settings.data_dir))
    typer.echo("stopped" if stopped else "not running")


@commands.command("grant")
def db_grant(role: str) -> None:
    """Grant the application's database role what it needs, and no UPDATE, DELETE or
    TRUNCATE on the audit trail. Run as the owner of the tables, after `habeas migrate`."""
    from app.ops.grants import grant_application_role

    settings = get_settings()
    url = database_url(settings)

    async def run() -> list[str]:
        connection = await asyncpg.connect(**embedded.asyncpg_connect_kwargs(url))
        try:
            return await grant_application_role(connection, role)
        finally:
            await connection.close()

    try:
        statements = asyncio.run(run())
    except LookupError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps({"role": role, "statements": statements}))

"""The `habeas` command: one module per group of commands, put together here."""

import signal
from types import FrameType

import typer

from app.cli import (
    accounts,
    audit,
    backup,
    database,
    development,
    keys,
    persons,
    reports,
    server,
    sync,
)

cli = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Habeas: case files of political prisoners."
)
cli.add_typer(database.commands, name="db")
cli.add_typer(accounts.users, name="users")
cli.add_typer(accounts.partners, name="partners")
cli.add_typer(keys.commands, name="keys")
cli.add_typer(audit.commands, name="audit")
cli.add_typer(backup.commands, name="backup")
cli.add_typer(reports.commands, name="report")
cli.add_typer(persons.commands, name="persons")
cli.add_typer(sync.commands, name="sync")
for command in (
    server.migrate,
    server.purge,
    server.worker,
    server.serve,
    development.seed,
    development.bench,
):
    cli.command()(command)


# Signals that end a command; their default action kills the process on the spot.
TERMINATING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _end_like_ctrl_c(signum: int, frame: FrameType | None) -> None:
    """Unwind by an exception, as Ctrl-C does, so that an embedded PostgreSQL the command
    started is stopped on the way out (by its exit handler) instead of left running.
    `serve` first shuts uvicorn down gracefully: uvicorn handles SIGTERM itself and raises
    it again once done, and a hang-up (a closed terminal) is turned into the same."""
    if signum != signal.SIGTERM:
        signal.raise_signal(signal.SIGTERM)
        return
    # A second signal must not interrupt the stopping of the database.
    for ignored in TERMINATING_SIGNALS:
        signal.signal(ignored, signal.SIG_IGN)
    raise SystemExit(128 + signum)


def main() -> None:
    for terminating in TERMINATING_SIGNALS:
        signal.signal(terminating, _end_like_ctrl_c)
    cli()

"""`habeas sync`: mirror another Habeas's change feed into this instance."""

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli.common import database_url, require_migrated, security_or_exit
from app.core.config import get_settings

if TYPE_CHECKING:
    from app.mirrors.pull import Progress

commands = typer.Typer(no_args_is_help=True, help="Mirror another Habeas as its partner.")


@commands.command("pull")
def pull(
    from_url: Annotated[
        str, typer.Option("--from", help="The upstream's address, e.g. https://habeas.example.org")
    ],
    client_id: Annotated[str, typer.Option(help="This instance's partner client id there.")],
    key_file: Annotated[
        Path,
        typer.Option(
            help="The client's private key (JWK or PEM); its public half is registered there."
        ),
    ],
    follow: Annotated[
        float | None,
        typer.Option(
            min=1, help="After catching up, ask again every so many seconds (until stopped)."
        ),
    ] = None,
    allow_http: Annotated[
        bool, typer.Option(help="Allow plain http to another machine (a private network).")
    ] = False,
    page_size: Annotated[
        int, typer.Option(min=1, max=500, help="Records per page of the feed (one transaction).")
    ] = 500,
    max_failures: Annotated[
        int, typer.Option(min=1, help="Failures in a row (retried with waits) before giving up.")
    ] = 8,
) -> None:
    """Follow the upstream's change feed into this database until caught up: its records
    as it shares them with this instance (kept apart from our own case files, read at
    /api/v1/mirrors), each page applied with the cursor that follows it, so that a pull
    stopped anywhere resumes where it stopped. Prints what it did as JSON."""
    import httpx

    from app.core.db import create_engine
    from app.core.errors import DomainError
    from app.core.logging import configure_logging
    from app.mirrors.pull import PullRefused
    from app.mirrors.pull import pull as run_pull
    from app.mirrors.upstream import (
        KeyFileError,
        UpstreamFeed,
        load_key,
        readable_by_others,
        upstream_url,
    )

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    kit = security_or_exit(settings)
    try:
        base_url = upstream_url(from_url, allow_http=allow_http)
        key = load_key(key_file)
        if readable_by_others(key_file):
            typer.echo(
                f"Warning: {key_file} can be read by other accounts; chmod 600 it.", err=True
            )
    except (KeyFileError, ValueError, OSError) as error:
        typer.echo(f"Not pulled: {error}", err=True)
        raise typer.Exit(2) from None
    url = database_url(settings)
    show = _display()

    async def work() -> "Progress":
        engine = create_engine(url, settings)
        try:
            await require_migrated(engine)
            timeout = httpx.Timeout(30.0, read=120.0)
            async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as http:
                upstream = UpstreamFeed(base_url, client_id, key, http, page_size)
                return await run_pull(
                    engine,
                    url,
                    kit.audit_keys,
                    upstream,
                    follow_every=follow,
                    max_failures=max_failures,
                    on_page=show,
                )
        finally:
            await engine.dispose()

    try:
        progress = asyncio.run(work())
    except (PullRefused, DomainError) as error:
        # What was committed stays: the next pull goes on from there.
        typer.echo(f"\nNot pulled to the end: {error}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("\nStopped; the next pull goes on from the last page applied.", err=True)
        raise typer.Exit(130) from None
    if sys.stderr.isatty():
        typer.echo("", err=True)
    typer.echo(json.dumps(_summary(progress)))


@commands.command("key")
def key(
    out: Annotated[Path, typer.Option(help="Where to write the private key (a JWK, mode 0600).")],
) -> None:
    """A new key pair for this instance to pull as a partner: the private key goes to
    OUT; the public key set printed is what the upstream's admin registers."""
    from app.mirrors.upstream import new_key

    made = new_key()
    descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(made.as_dict(private=True), file)
    typer.echo(json.dumps({"keys": [made.as_dict(private=False)]}))


def _summary(progress: "Progress") -> dict[str, Any]:
    return {
        "pages": progress.pages,
        "items": progress.items,
        "upserted": progress.upserted,
        "gone": progress.gone,
        "redirected": progress.redirected,
        "unchanged": progress.unchanged,
        "resets": progress.resets,
        "retries": progress.retries,
        "position": progress.position,
        "phase": progress.phase,
        "caught_up": progress.caught_up,
    }


def _display() -> Any:
    """Progress on standard error: one line rewritten in place on a terminal, a line per
    page otherwise (a log)."""
    on_terminal = sys.stderr.isatty()

    def show(progress: "Progress") -> None:
        line = (
            f"page {progress.pages}: {progress.items} items, {progress.upserted} new or changed,"
            f" {progress.gone} gone, {progress.redirected} redirected; position"
            f" {progress.position} ({progress.phase}{', caught up' if progress.caught_up else ''})"
        )
        if on_terminal:
            sys.stderr.write("\r\x1b[2K" + line)
            sys.stderr.flush()
        else:
            typer.echo(line, err=True)

    return show

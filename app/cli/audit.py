"""`habeas audit`: verifying the hash-chained trail and signing checkpoints of it."""

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from app.cli.common import database_url, in_session, security_or_exit
from app.core.config import get_settings

if TYPE_CHECKING:
    from sqlmodel.ext.asyncio.session import AsyncSession

    from app.audit.verification import Checkpoint, Report

commands = typer.Typer(no_args_is_help=True, help="The hash-chained audit trail.")


@commands.command("verify")
def audit_verify(
    checkpoint: Annotated[
        list[Path] | None,
        typer.Option(help="A saved checkpoint (JSON) to verify against; may be repeated."),
    ] = None,
    public_key: Annotated[
        list[str] | None,
        typer.Option(
            help="KID=BASE64 Ed25519 key to trust for checkpoints instead of the key file; "
            "may be repeated."
        ),
    ] = None,
) -> None:
    """Verify the whole chain (contiguity, links, hashes, time order) against the stored
    checkpoints and any saved ones. Prints a report; exits 1 at the first bad event."""
    from app.audit import service
    from app.audit.verification import Checkpoint
    from app.core.crypto import KeyConfigurationError, public_key_from_text
    from app.core.db import create_engine, session_factory

    settings = get_settings()
    url = database_url(settings)
    try:
        saved = [Checkpoint.from_json(json.loads(path.read_text())) for path in checkpoint or []]
        if public_key:
            keys = {
                kid: public_key_from_text(text)
                for kid, _, text in (item.partition("=") for item in public_key)
            }
        else:
            keys = security_or_exit(settings).audit_keys.public_keys()
    except (ValueError, OSError, KeyConfigurationError) as error:
        typer.echo(f"Cannot verify: {error}", err=True)
        raise typer.Exit(2) from None

    async def run() -> "Report":
        # Reads only; no journal, no commit. Needs no private key: a verifier elsewhere
        # holds just the public ones (--public-key).
        engine = create_engine(url, settings)
        try:
            async with session_factory(engine)() as session:
                return await service.verify_chain(session, keys, saved)
        finally:
            await engine.dispose()

    report = asyncio.run(run())
    typer.echo(json.dumps(report.__dict__))
    if not report.ok:
        raise typer.Exit(1)


@commands.command("checkpoint")
def audit_checkpoint(
    out: Annotated[Path | None, typer.Option(help="Also write the checkpoint here.")] = None,
) -> None:
    """Sign the chain's head with the audit key (after verifying what was appended since
    the last checkpoint), store it, and print it. Keep a copy outside this system."""
    from app.audit import service
    from app.core.errors import Conflict

    settings = get_settings()
    kit = security_or_exit(settings)

    async def work(session: "AsyncSession") -> "Checkpoint":
        return await service.checkpoint(session, kit.audit_keys)

    try:
        made = asyncio.run(in_session(settings, database_url(settings), kit=kit, work=work))
    except Conflict as error:
        typer.echo(f"No checkpoint: {error.detail} {error.extensions or ''}", err=True)
        raise typer.Exit(1) from None
    text = json.dumps(service.checkpoint_document(made, kit.audit_keys), indent=2)
    if out is not None:
        out.write_text(text + "\n")
    typer.echo(text)


@commands.command("public-keys")
def audit_public_keys() -> None:
    """The Ed25519 keys that verify checkpoints (give them to whoever keeps checkpoints)."""
    from app.core.crypto import public_key_text

    kit = security_or_exit(get_settings())
    keys = kit.audit_keys.public_keys()
    typer.echo(json.dumps({kid: public_key_text(key) for kid, key in keys.items()}))

"""`habeas keys`: rotating and retiring the encryption, signing and audit keys."""

import asyncio
import json
from typing import Annotated

import typer

from app.cli.common import database_url, record_operation, rotate_key_file, security_or_exit
from app.core.config import get_settings

commands = typer.Typer(no_args_is_help=True, help="Encryption and token-signing keys.")


@commands.command("rotate")
def keys_rotate(
    signing: Annotated[
        bool, typer.Option("--signing", help="Rotate the token-signing key instead.")
    ] = False,
    audit: Annotated[
        bool, typer.Option("--audit", help="Rotate the audit checkpoint and fingerprint key.")
    ] = False,
) -> None:
    """Add a new key and make it active. For data keys, seal every confidential value again
    under it, in small batches, while the servers keep running."""
    from app.core.crypto import (
        data_key_ring,
        rotate_audit_key_file,
        rotate_data_key_file,
        rotate_signing_key_file,
    )
    from app.ops.keys import reseal_all

    settings = get_settings()
    kit = security_or_exit(settings)
    if signing:
        path = settings.jwt_key_file or settings.keys_dir / "jwt.json"
        kid = rotate_key_file(
            settings,
            kit,
            ring="jwt",
            given_inline=settings.jwt_keys is not None,
            path=path,
            rotate=rotate_signing_key_file,
        )
        typer.echo(json.dumps({"signing_key": kid, "file": str(path)}))
        return
    if audit:
        path = settings.audit_key_file or settings.keys_dir / "audit.json"
        kid = rotate_key_file(
            settings,
            kit,
            ring="audit",
            given_inline=settings.audit_keys is not None,
            path=path,
            rotate=rotate_audit_key_file,
        )
        typer.echo(json.dumps({"audit_key": kid, "file": str(path)}))
        return
    if settings.data_keys is not None:
        typer.echo("Data keys come from HABEAS_DATA_KEYS; rotation needs a key file.", err=True)
        raise typer.Exit(2)
    path = settings.data_key_file or settings.keys_dir / "data.json"
    kid = rotate_data_key_file(path)
    ring = data_key_ring(settings)
    url = database_url(settings)
    report = asyncio.run(reseal_all(url, ring))
    record_operation(
        settings,
        url,
        kit=kit,
        action="keys.rotate",
        detail={
            "ring": "data",
            "key": kid,
            "resealed": report.resealed,
            "remaining_under_old_keys": report.remaining_under_old_keys,
        },
    )
    typer.echo(
        json.dumps(
            {
                "active_key": kid,
                "resealed": report.resealed,
                "remaining_under_old_keys": report.remaining_under_old_keys,
            }
        )
    )


@commands.command("retire")
def keys_retire() -> None:
    """Drop data keys that no stored value is sealed with. Run it a few minutes after
    `keys rotate`: servers re-read the key file within seconds, but a transaction that
    began before might still seal a value under the old key; the scan then keeps it."""
    from app.core.crypto import data_key_ring, retire_data_keys
    from app.ops.keys import key_ids_in_use, reseal_all

    settings = get_settings()
    kit = security_or_exit(settings)
    if settings.data_keys is not None:
        typer.echo("Data keys come from HABEAS_DATA_KEYS; retire them there.", err=True)
        raise typer.Exit(2)
    path = settings.data_key_file or settings.keys_dir / "data.json"
    url = database_url(settings)
    # Re-seal stragglers first, then keep every key still in use at the moment of writing.
    asyncio.run(reseal_all(url, data_key_ring(settings)))
    retired = retire_data_keys(path, frozenset(asyncio.run(key_ids_in_use(url))))
    record_operation(
        settings, url, kit=kit, action="keys.retire", detail={"ring": "data", "retired": retired}
    )
    typer.echo(json.dumps({"retired_keys": retired}))

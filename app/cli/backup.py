"""`habeas backup`: encrypted, verified database backups and their key."""

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import asyncpg
import typer

from app.cli.common import (
    database_url,
    in_session,
    rotate_key_file,
    security_or_exit,
)
from app.core.config import Settings, get_settings

if TYPE_CHECKING:
    from sqlmodel.ext.asyncio.session import AsyncSession

    from app.core.crypto import BackupKeyRing

commands = typer.Typer(no_args_is_help=True, help="Encrypted, verified database backups.")


def backup_keys_or_exit(settings: Settings) -> "BackupKeyRing":
    from app.core.crypto import KeyConfigurationError, backup_key_ring

    try:
        return backup_key_ring(settings)
    except KeyConfigurationError as error:
        typer.echo(f"Refusing: {error}", err=True)
        raise typer.Exit(2) from None


@commands.command("create")
def backup_create(
    out: Annotated[Path, typer.Option("--out", help="The backup file to write (a new file).")],
) -> None:
    """Dump the database (pg_dump of the server's version, custom format) encrypted under
    the backup key, with an authenticated manifest: schema revision, audit head, the key
    ids a restore needs, row counts, the dump's SHA-256. Keys are never in it. The backup
    is recorded in the audit trail."""
    from app.audit.journal import journal_of
    from app.ops.backup import BackupError, create

    settings = get_settings()
    kit = security_or_exit(settings)
    keys = backup_keys_or_exit(settings)
    url = database_url(settings)
    try:
        manifest = asyncio.run(
            create(
                database_url=url,
                out=out,
                keys=keys,
                audit_key_ids=kit.audit_keys.public_keys(),
            )
        )
    except BackupError as error:
        typer.echo(f"No backup: {error}", err=True)
        raise typer.Exit(1) from None
    except (OSError, asyncpg.PostgresError) as error:
        typer.echo(f"No backup: {type(error).__name__}: {error}", err=True)
        raise typer.Exit(1) from None
    summary = {
        "file": str(out),
        "file_bytes": out.stat().st_size,
        "backup_id": manifest["backup_id"],
        "backup_key_id": manifest["backup_key_id"],
        "dump_bytes": manifest["dump"]["bytes"],
        "dump_sha256": manifest["dump"]["sha256"],
        "dump_seconds": manifest["dump"]["seconds"],
        "audit_head": manifest["audit_head"],
        "data_key_ids": manifest["data_key_ids"],
    }

    async def work(session: "AsyncSession") -> None:
        journal_of(session).changed("backup.create", "database", None, changes=[], detail=summary)

    asyncio.run(in_session(settings, url, kit=kit, work=work))
    typer.echo(json.dumps(summary))


@commands.command("restore")
def backup_restore(
    file: Path,
    database: Annotated[
        str | None,
        typer.Option(help="Create this new database on the server and restore into it."),
    ] = None,
) -> None:
    """Restore a backup into the configured database, which must be empty, or into a new
    one (--database). The whole file is authenticated first; after pg_restore, the audit
    chain is verified, its head and the row counts compared with the manifest, and every
    sealed value opened with the configured data keys. Prints a report; exits 1 when
    anything does not hold, 2 when nothing was restored."""
    from app.ops.backup import BackupError, RestoreKeys, key_places, restore

    settings = get_settings()
    kit = security_or_exit(settings)
    keys = RestoreKeys(
        backup=backup_keys_or_exit(settings),
        data=kit.data_keys,
        audit=kit.audit_keys.public_keys(),
        places=key_places(settings),
    )
    try:
        report = asyncio.run(
            restore(
                source=file,
                database_url=database_url(settings),
                new_database=database,
                keys=keys,
                settings=settings,
            )
        )
    except BackupError as error:
        typer.echo(f"Not restored: {error}", err=True)
        raise typer.Exit(2) from None
    except (OSError, asyncpg.PostgresError) as error:
        typer.echo(f"Not restored: {type(error).__name__}: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(report.__dict__))
    if not report.ok:
        typer.echo(
            f"The restored database {report.database} does not verify; do not serve it"
            f" (it is kept for inspection): {'; '.join(report.problems)}",
            err=True,
        )
        raise typer.Exit(1)


@commands.command("show")
def backup_show(file: Path) -> None:
    """Print a backup's manifest, once it is authenticated with the backup key."""
    from app.ops.backup import BackupError, key_places, open_backup, read_manifest

    settings = get_settings()
    keys = backup_keys_or_exit(settings)
    try:
        manifest = read_manifest(open_backup(file), keys, key_places(settings)["backup"])
    except BackupError as error:
        typer.echo(f"Cannot read: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(manifest, indent=2))


@commands.command("rotate-key")
def backup_rotate_key() -> None:
    """Add a new backup key and make it the one new backups are made with. The old keys
    stay in the file: they open the backups made before; remove one only when no backup
    you keep names it (`habeas backup show`)."""
    from app.core.crypto import rotate_backup_key_file

    settings = get_settings()
    kit = security_or_exit(settings)
    if settings.backup_keys is None:
        # The key file must exist and open before a key is added to it.
        backup_keys_or_exit(settings)
    path = settings.backup_key_file or settings.keys_dir / "backup.json"
    kid = rotate_key_file(
        settings,
        kit,
        ring="backup",
        given_inline=settings.backup_keys is not None,
        path=path,
        rotate=rotate_backup_key_file,
    )
    typer.echo(json.dumps({"backup_key": kid, "file": str(path)}))

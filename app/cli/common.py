"""What the commands share: the keys, a database session with its audit event, the
database's URL, and refusals that name the problem without quoting secrets."""

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from app.core import embedded
from app.core.config import Settings

if TYPE_CHECKING:
    from pydantic import ValidationError
    from sqlalchemy.ext.asyncio import AsyncEngine
    from sqlmodel.ext.asyncio.session import AsyncSession

    from app.identity.kit import SecurityKit

T = TypeVar("T")


def security_or_exit(settings: Settings) -> "SecurityKit":
    """The keys and hashing the server would use; refuses (exit 2) when they are missing
    or malformed, and in production never falls back to generated development keys."""
    from app.core.config import InvalidSetting
    from app.core.crypto import KeyConfigurationError
    from app.main import security_kit

    try:
        return security_kit(settings)
    except (KeyConfigurationError, InvalidSetting) as error:
        typer.echo(f"Refusing to start: {error}", err=True)
        raise typer.Exit(2) from None


async def in_session(
    settings: Settings,
    url: str,
    *,
    kit: "SecurityKit",
    work: Callable[["AsyncSession"], Awaitable[T]],
) -> T:
    """Run `work(session)` in one transaction on the database, and commit it with its
    audit event (the actor is the system; the origin, this command)."""
    from app.audit.journal import as_system
    from app.core.db import commit, create_engine, session_factory

    engine = create_engine(url, settings)
    try:
        await require_migrated(engine)
        async with session_factory(engine)() as session:
            as_system(session, kit.audit_keys)
            result = await work(session)
            await commit(session)
            return result
    finally:
        await engine.dispose()


async def require_migrated(engine: "AsyncEngine") -> None:
    """Commands that work on records need the current schema: say how to get it, rather
    than fail on a missing table."""
    from sqlalchemy.exc import DBAPIError

    from app.core.database_errors import UNAVAILABLE_KINDS, classify
    from app.core.migrations import current_revision, head_revision

    try:
        revision = await current_revision(engine)
    except Exception as error:
        kind = classify(error)
        if kind in UNAVAILABLE_KINDS:
            # A worker restarted while the database is still away says so, and its
            # supervisor (compose's restart policy) tries again.
            typer.echo(
                f"The database cannot be reached ({kind}, {type(error).__name__}): start it,"
                " or check DATABASE_URL.",
                err=True,
            )
            raise typer.Exit(3) from None
        if not isinstance(error, DBAPIError) or "alembic_version" not in str(error.orig):
            raise
        revision = None
    if revision != head_revision():
        found = f"it is at {revision}" if revision else "it has no schema yet"
        typer.echo(
            f"The database is not migrated ({found}; this version needs {head_revision()}):"
            " run `habeas migrate` first.",
            err=True,
        )
        raise typer.Exit(2)


def record_operation(
    settings: Settings, url: str, *, kit: "SecurityKit", action: str, detail: dict[str, Any]
) -> None:
    """An audit event for an operation outside the database (a key rotation)."""
    from app.audit.journal import journal_of

    async def work(session: "AsyncSession") -> None:
        journal_of(session).changed(action, "key_ring", None, changes=[], detail=detail)

    asyncio.run(in_session(settings, url, kit=kit, work=work))


def database_url(settings: Settings) -> str:
    return asyncio.run(
        embedded.resolve_database_url(
            settings.database_url, settings.data_dir, settings.database_name
        )
    )


def application_url_or_exit(settings: Settings, owner_url: str) -> str:
    from app.ops.grants import application_database_url

    try:
        return asyncio.run(application_database_url(settings, owner_url))
    except LookupError as error:
        typer.echo(f"Refusing to start: {error}", err=True)
        raise typer.Exit(2) from None


def policies_or_exit() -> None:
    from app.access.policy import PolicyEngine, PolicyError

    try:
        PolicyEngine()
    except PolicyError as error:
        typer.echo(f"Refusing to start: the policies are broken: {error}", err=True)
        raise typer.Exit(2) from None


def validation_problems(error: "ValidationError") -> str:
    """A pydantic ValidationError as "field: reason" lines. Never its own text: that quotes
    the input back, and input can be a secret."""
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or 'input'}: {item['msg']}"
        for item in error.errors(include_input=False, include_url=False, include_context=False)
    )


def rotate_key_file(
    settings: Settings,
    kit: "SecurityKit",
    *,
    ring: str,
    given_inline: bool,
    path: Path,
    rotate: Callable[[Path], str],
) -> str:
    """Add a new key to a ring kept in a file and make it the active one, and record it in
    the audit trail; a ring given in the environment is rotated where it is set (exit 2).
    Returns the new key's id."""
    if given_inline:
        typer.echo(
            f"{RING_NAMES[ring]} keys come from HABEAS_{ring.upper()}_KEYS; rotate them there.",
            err=True,
        )
        raise typer.Exit(2)
    kid = rotate(path)
    record_operation(
        settings,
        database_url(settings),
        kit=kit,
        action="keys.rotate",
        detail={"ring": ring, "key": kid},
    )
    return kid


RING_NAMES = {"jwt": "Signing", "audit": "Audit", "backup": "Backup"}

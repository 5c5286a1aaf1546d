"""Running the service: migrate, serve, the scheduled-jobs worker, purging expired records."""

import asyncio
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from app.cli.common import (
    application_url_or_exit,
    database_url,
    in_session,
    policies_or_exit,
    require_migrated,
    security_or_exit,
)
from app.core.config import Environment, Settings, get_settings
from app.core.migrations import upgrade

if TYPE_CHECKING:
    from app.identity.kit import SecurityKit


def migrate() -> None:
    """Bring the database schema to the latest migration."""
    settings = get_settings()
    upgrade(database_url(settings))
    typer.echo("database at the latest migration")


def purge() -> None:
    """Delete expired records now (servers also do it every few minutes)."""
    from app.core.db import create_engine, session_factory
    from app.jobs.housekeeping import purge_expired

    settings = get_settings()
    url = database_url(settings)

    async def run() -> dict[str, int]:
        engine = create_engine(url, settings)
        try:
            return await purge_expired(session_factory(engine), settings)
        finally:
            await engine.dispose()

    typer.echo(json.dumps(asyncio.run(run())))


def worker() -> None:
    """Run the scheduled jobs until SIGTERM or Ctrl-C: every HABEAS_INTEGRITY_SCHEDULE,
    verify the audit chain, sign a checkpoint and write it to HABEAS_CHECKPOINT_EXPORT_DIR;
    every HABEAS_PURGE_SCHEDULE, purge expired records. Any number of workers may run; each
    run happens once. Needs the audit key, and a migrated database (`habeas migrate`)."""
    from app.core.crypto import KeyConfigurationError, audit_key_ring, data_key_ring
    from app.core.db import create_engine
    from app.core.logging import configure_logging
    from app.jobs.worker import run_until_signalled, schedules
    from app.ops.grants import UnsafeDatabaseRole, refuse_unsafe_role

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    try:
        audit_keys = audit_key_ring(settings)
        schedules(settings)
    except (KeyConfigurationError, ValueError) as error:
        typer.echo(f"Refusing to start: {error}", err=True)
        raise typer.Exit(2) from None
    owner_url = database_url(settings)

    async def check(url: str) -> None:
        engine = create_engine(url, settings)
        try:
            await require_migrated(engine)
            await refuse_unsafe_role(engine, production=settings.env is Environment.production)
        finally:
            await engine.dispose()

    url = application_url_or_exit(settings, owner_url)
    try:
        asyncio.run(check(url))
    except UnsafeDatabaseRole as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(2) from None
    try:
        # The partners' webhook secrets are sealed with the data key.
        data_keys = data_key_ring(settings)
    except KeyConfigurationError as error:
        typer.echo(f"No data key, no webhooks notified: {error}", err=True)
        data_keys = None
    asyncio.run(run_until_signalled(url, settings, audit_keys, data_keys))


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    migrate_first: Annotated[bool, typer.Option("--migrate/--no-migrate")] = True,
) -> None:
    """Serve the API. Without DATABASE_URL, on the embedded PostgreSQL under .data/."""
    import structlog
    import uvicorn

    from app.core.logging import configure_logging
    from app.core.server import BoundedHttpToolsProtocol

    settings = get_settings()
    # This process too logs (uvicorn's supervisor of the worker processes).
    configure_logging(settings.log_level, settings.log_json)
    kit = security_or_exit(settings)
    policies_or_exit()
    metrics_dir = _metrics_across_workers(settings, workers)
    url = database_url(settings)
    if migrate_first:
        upgrade(url)
    if settings.env is Environment.development:
        first_admin(settings, url, kit)
    # Worker processes read the URL from the environment, not from this process: the
    # application role's, never the owner's (app/ops/grants.py).
    os.environ["DATABASE_URL"] = application_url_or_exit(settings, url)
    get_settings.cache_clear()
    if settings.log_json:  # a log collector reads every line as JSON
        structlog.get_logger(__name__).info("serving", host=host, port=port, workers=workers)
    else:
        typer.echo(f"Habeas on http://{host}:{port} (docs at /docs); Ctrl-C stops it.")
    try:
        uvicorn.run(
            "app.main:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=settings.log_level.lower(),
            # uvicorn's records go to the root logger, rendered as ours (JSON lines with
            # HABEAS_LOG_JSON), not through uvicorn's own plain-text handlers.
            log_config=None,
            access_log=False,
            server_header=False,
            http=BoundedHttpToolsProtocol,
            timeout_keep_alive=settings.keep_alive_seconds,
            # The client address (sign-in throttling) comes from X-Forwarded-For only when
            # the request arrives from a configured proxy.
            proxy_headers=bool(settings.trusted_proxies),
            forwarded_allow_ips=settings.trusted_proxies or None,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _metrics_across_workers(settings: Settings, workers: int) -> Path | None:
    """Refuse (exit 2) a metrics token file that cannot serve. With several workers, each
    keeps its metrics in files under PROMETHEUS_MULTIPROC_DIR and a scrape, whichever
    worker answers it, adds them all up: the directory is the operator's if they set it
    (emptied of a previous run's files), else a temporary one this returns, to remove at
    the end."""
    from app.core.config import InvalidSetting
    from app.core.metrics import MULTIPROCESS_DIR_VARIABLE, prepare_multiprocess_dir, read_token

    try:
        token = read_token(settings.metrics_token_file)
    except InvalidSetting as error:
        typer.echo(f"Refusing to start: {error}", err=True)
        raise typer.Exit(2) from None
    given = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
    if token is None or (workers == 1 and not given):
        return None
    directory = Path(given) if given else Path(tempfile.mkdtemp(prefix="habeas-metrics-"))
    prepare_multiprocess_dir(directory)
    # Worker processes read it from the environment when they import prometheus_client.
    os.environ[MULTIPROCESS_DIR_VARIABLE] = str(directory)
    return None if given else directory


def first_admin(settings: Settings, url: str, kit: "SecurityKit") -> None:
    """Development only: with no account yet, make an admin and show its secrets once."""
    from app.identity import service

    created = asyncio.run(
        in_session(settings, url, kit=kit, work=lambda s: service.create_first_admin(s, kit))
    )
    if created is not None:
        typer.echo(
            "First start (development): an admin account was created. It is shown only now.\n"
            f"  username: {created.username}\n  password: {created.password}\n"
            f"  TOTP secret: {created.totp_secret}\n  TOTP URI: {created.totp_uri}"
        )

"""The `habeas` command."""

import asyncio
import json
import os
import shutil
import signal
import tempfile
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import asyncpg
import typer

from app.core import embedded
from app.core.config import Environment, Settings, get_settings
from app.core.migrations import upgrade

cli = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Habeas: case files of political prisoners."
)
db_cli = typer.Typer(no_args_is_help=True, help="The embedded PostgreSQL server.")
cli.add_typer(db_cli, name="db")
users_cli = typer.Typer(no_args_is_help=True, help="Staff accounts.")
cli.add_typer(users_cli, name="users")
partners_cli = typer.Typer(no_args_is_help=True, help="Partner organisations' API clients.")
cli.add_typer(partners_cli, name="partners")
keys_cli = typer.Typer(no_args_is_help=True, help="Encryption and token-signing keys.")
cli.add_typer(keys_cli, name="keys")
audit_cli = typer.Typer(no_args_is_help=True, help="The hash-chained audit trail.")
cli.add_typer(audit_cli, name="audit")
backup_cli = typer.Typer(no_args_is_help=True, help="Encrypted, verified database backups.")
cli.add_typer(backup_cli, name="backup")


def _security(settings: Settings) -> Any:
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


async def _in_session(settings: Settings, url: str, kit: Any, work: Any) -> Any:
    """Run `work(session)` in one transaction on the database, and commit it with its
    audit event (the actor is the system; the origin, this command)."""
    from app.audit.journal import as_system
    from app.core.db import commit, create_engine, session_factory

    engine = create_engine(url, settings)
    try:
        await _require_migrated(engine)
        async with session_factory(engine)() as session:
            as_system(session, kit.audit_keys)
            result = await work(session)
            await commit(session)
            return result
    finally:
        await engine.dispose()


async def _require_migrated(engine: Any) -> None:
    """Commands that work on records need the current schema: say how to get it, rather
    than fail on a missing table."""
    from sqlalchemy.exc import DBAPIError

    from app.core.database_errors import UNAVAILABLE_KINDS, classify
    from app.core.migrations import head_revision
    from app.ops import repository

    try:
        revision = await repository.current_revision(engine)
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


def _record(settings: Settings, url: str, kit: Any, action: str, detail: dict[str, Any]) -> None:
    """An audit event for an operation outside the database (a key rotation)."""
    from app.audit.journal import journal_of

    async def work(session: Any) -> None:
        journal_of(session).changed(action, "key_ring", None, [], detail=detail)

    asyncio.run(_in_session(settings, url, kit, work))


def _database_url(settings: Settings) -> str:
    return asyncio.run(
        embedded.resolve_database_url(
            settings.database_url, settings.data_dir, settings.database_name
        )
    )


@cli.command()
def migrate() -> None:
    """Bring the database schema to the latest migration."""
    settings = get_settings()
    upgrade(_database_url(settings))
    typer.echo("database at the latest migration")


@cli.command()
def purge() -> None:
    """Delete expired records now (servers also do it every few minutes)."""
    from app.core.db import create_engine, session_factory
    from app.ops.housekeeping import purge_expired

    settings = get_settings()
    url = _database_url(settings)

    async def run() -> dict[str, int]:
        engine = create_engine(url, settings)
        try:
            return await purge_expired(session_factory(engine), settings)
        finally:
            await engine.dispose()

    typer.echo(json.dumps(asyncio.run(run())))


@cli.command()
def worker() -> None:
    """Run the scheduled jobs until SIGTERM or Ctrl-C: every HABEAS_INTEGRITY_SCHEDULE,
    verify the audit chain, sign a checkpoint and write it to HABEAS_CHECKPOINT_EXPORT_DIR;
    every HABEAS_PURGE_SCHEDULE, purge expired records. Any number of workers may run; each
    run happens once. Needs the audit key, and a migrated database (`habeas migrate`)."""
    from app.core.crypto import KeyConfigurationError, audit_key_ring
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
    owner_url = _database_url(settings)

    async def check(url: str) -> None:
        engine = create_engine(url, settings)
        try:
            await _require_migrated(engine)
            await refuse_unsafe_role(engine, production=settings.env is Environment.production)
        finally:
            await engine.dispose()

    url = _application_url_or_exit(settings, owner_url)
    try:
        asyncio.run(check(url))
    except UnsafeDatabaseRole as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(2) from None
    asyncio.run(run_until_signalled(url, settings, audit_keys))


@cli.command()
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
    from app.core.server import BoundedH11Protocol

    settings = get_settings()
    # This process too logs (uvicorn's supervisor of the worker processes).
    configure_logging(settings.log_level, settings.log_json)
    kit = _security(settings)
    _policies_or_exit()
    metrics_dir = _metrics_across_workers(settings, workers)
    url = _database_url(settings)
    if migrate_first:
        upgrade(url)
    if settings.env is Environment.development:
        _first_admin(settings, url, kit)
    # Worker processes read the URL from the environment, not from this process: the
    # application role's, never the owner's (app/ops/grants.py).
    os.environ["DATABASE_URL"] = _application_url_or_exit(settings, url)
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
            http=BoundedH11Protocol,
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


def _application_url_or_exit(settings: Settings, owner_url: str) -> str:
    from app.ops.grants import application_database_url

    try:
        return asyncio.run(application_database_url(settings, owner_url))
    except LookupError as error:
        typer.echo(f"Refusing to start: {error}", err=True)
        raise typer.Exit(2) from None


@cli.command()
def seed(
    persons: Annotated[int, typer.Option(min=1, help="How many persons to make.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed, the same data.")] = 1,
) -> None:
    """Load a deterministic synthetic data set (never real people) with COPY."""
    from app.seed.loader import load

    settings = get_settings()
    url = _database_url(settings)
    upgrade(url)
    summary = asyncio.run(load(url, persons=persons, seed=seed))
    typer.echo(summary)


@cli.command()
def bench(
    scale: Annotated[str, typer.Option(help="10k, 100k or 1m persons.")] = "100k",
    workload: Annotated[list[str] | None, typer.Option(help="Only these (repeatable).")] = None,
    duration: Annotated[float, typer.Option(help="Seconds measured per workload.")] = 10.0,
    warmup: Annotated[float, typer.Option(help="Seconds of warm-up per workload.")] = 3.0,
    scale_compare: Annotated[
        str | None,
        typer.Option(help="Two scales, e.g. 10k,1m: case read and name search latency growth."),
    ] = None,
    quick: Annotated[bool, typer.Option(help="Every workload briefly at 10k.")] = False,
    json_file: Annotated[Path | None, typer.Option("--json", help="Write results here.")] = None,
    verify_events: Annotated[
        int,
        typer.Option(help="Only measure audit verification over a chain of this many events."),
    ] = 0,
) -> None:
    """Measure the API against the same SQL run raw on asyncpg (see docs/performance.md)."""
    from app.bench import harness
    from app.bench.database import SCALES
    from app.bench.workloads import ALL_WORKLOADS

    if verify_events:
        from app.bench.audit import verification_rate

        settings = get_settings()
        rate = asyncio.run(
            verification_rate(
                settings.data_dir, os.environ.get("BENCH_DATABASE_URL"), verify_events
            )
        )
        typer.echo(json.dumps(rate))
        if json_file is not None:
            json_file.write_text(json.dumps(rate, indent=2) + "\n")
        return
    if quick:
        scale, duration, warmup = "10k", 3.0, 1.0
    compare = scale_compare.split(",") if scale_compare else None
    for name in [scale, *(compare or [])]:
        if name not in SCALES:
            raise typer.BadParameter(f"unknown scale {name!r}; use one of {', '.join(SCALES)}")
    if compare is not None and len(compare) != 2:
        raise typer.BadParameter("--scale-compare takes two scales, e.g. 10k,1m")
    chosen = workload or list(ALL_WORKLOADS)
    unknown = set(chosen) - set(ALL_WORKLOADS)
    if unknown:
        raise typer.BadParameter(f"unknown workloads {sorted(unknown)}; use {list(ALL_WORKLOADS)}")
    settings = get_settings()
    plan = harness.Plan(
        scale=scale,
        workloads=chosen,
        warmup=warmup,
        duration=duration,
        scale_compare=compare,
        data_dir=settings.data_dir,
        server_url=os.environ.get("BENCH_DATABASE_URL"),
    )
    report = asyncio.run(harness.run(plan))
    typer.echo(harness.table(report))
    if json_file is not None:
        harness.write_json(report, json_file)


@db_cli.command("start")
def db_start() -> None:
    """Start the embedded server and leave it running; print its URL."""
    settings = get_settings()
    pgdata = embedded.embedded_pgdata(settings.data_dir)
    server = embedded.leave_running(pgdata)
    asyncio.run(embedded.ensure_database(server.get_uri("postgres"), settings.database_name))
    typer.echo(embedded.with_database(server.get_uri("postgres"), settings.database_name))


@db_cli.command("stop")
def db_stop() -> None:
    """Stop the embedded server if it is running."""
    settings = get_settings()
    stopped = embedded.stop(embedded.embedded_pgdata(settings.data_dir))
    typer.echo("stopped" if stopped else "not running")


@db_cli.command("grant")
def db_grant(role: str) -> None:
    """Grant the application's database role what it needs, and no UPDATE, DELETE or
    TRUNCATE on the audit trail. Run as the owner of the tables, after `habeas migrate`."""
    from app.ops.grants import grant_application_role

    settings = get_settings()
    url = _database_url(settings)

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


def _policies_or_exit() -> None:
    from app.access.policy import PolicyEngine, PolicyError

    try:
        PolicyEngine()
    except PolicyError as error:
        typer.echo(f"Refusing to start: the policies are broken: {error}", err=True)
        raise typer.Exit(2) from None


def _first_admin(settings: Settings, url: str, kit: Any) -> None:
    """Development only: with no account yet, make an admin and show its secrets once."""
    from app.identity import service

    created = asyncio.run(
        _in_session(settings, url, kit, lambda s: service.create_first_admin(s, kit))
    )
    if created is not None:
        typer.echo(
            "First start (development): an admin account was created. It is shown only now.\n"
            f"  username: {created.username}\n  password: {created.password}\n"
            f"  TOTP secret: {created.totp_secret}\n  TOTP URI: {created.totp_uri}"
        )


def _invalid(error: Any) -> str:
    """A pydantic ValidationError as "field: reason" lines. Never its own text: that quotes
    the input back, and input can be a secret."""
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or 'input'}: {item['msg']}"
        for item in error.errors(include_input=False, include_url=False, include_context=False)
    )


@users_cli.command("add")
def users_add(
    username: str,
    role: Annotated[str, typer.Option(help="admin, coordinator, caseworker, analyst or auditor")],
) -> None:
    """Create an account; prints its one-time enrolment code (never a password) for the
    person, who redeems it at POST /api/v1/auth/enrolment. A role that needs approval
    (HABEAS_ROLES_NEEDING_APPROVAL) waits for a second person's approval (`habeas users
    approve`), except an admin made while no enabled admin exists: there would be nobody
    to approve it."""
    from pydantic import ValidationError

    from app.identity import service
    from app.identity.schemas import UserCreate

    settings = get_settings()
    kit = _security(settings)
    try:
        data = UserCreate(username=username, role=role)
    except ValidationError as error:
        typer.echo(f"Not created: {_invalid(error)}", err=True)
        raise typer.Exit(2) from None

    async def work(session: Any) -> Any:
        user, code = await service.create_user(
            session, kit, data, requested_by=None, bootstrap=True
        )
        pending = await service.pending_roles(session, [user])
        return {
            "id": str(user.id),
            "username": user.username,
            "role": user.role,
            "pending_role": pending.get(user.id),
            "enrolment_code": code.value,
            "enrolment_expires_at": code.expires_at.isoformat(),
        }

    typer.echo(json.dumps(asyncio.run(_in_session(settings, _database_url(settings), kit, work))))


@users_cli.command("approve")
def users_approve(username: str) -> None:
    """Approve the role a user waits for, as the system: for an operator with the server's
    keys and database (who could change anything anyway), e.g. when no second admin or
    coordinator is there to approve. Only once the person has enrolled (confirm with them
    that it was them). Recorded in the audit trail like any approval."""
    from app.core.errors import DomainError
    from app.identity import service

    settings = get_settings()
    kit = _security(settings)

    async def work(session: Any) -> Any:
        request = await service.pending_role_request_of(session, username)
        decided, user = await service.decide_role_request(
            session, request.id, request.version, approve=True, decider=None
        )
        return {"username": user.username, "role": user.role, "request": str(decided.id)}

    try:
        done = asyncio.run(_in_session(settings, _database_url(settings), kit, work))
    except DomainError as error:
        typer.echo(f"Not approved: {error.detail}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(done))


@partners_cli.command("add")
def partners_add(
    name: str,
    scopes: Annotated[str, typer.Option(help='Space-separated, e.g. "sync:read reports:read"')],
    jwks: Annotated[
        Path | None, typer.Option(help="Public JWKS file: authenticate by private-key JWT.")
    ] = None,
    jurisdiction: Annotated[
        str | None, typer.Option(help="Share this jurisdiction's case files.")
    ] = None,
    all_case_files: Annotated[
        bool, typer.Option(help="Share every case file of the jurisdiction, not only recognised.")
    ] = False,
    max_tier: Annotated[str, typer.Option(help="public or restricted")] = "public",
    read_write: Annotated[bool, typer.Option(help="May push changes (sync).")] = False,
) -> None:
    """Register a partner system with its sharing agreement, approved by the system (the
    operator holds the database and the keys; through the API only a coordinator approves
    an agreement); prints its client id (and client secret, once)."""
    from pydantic import ValidationError

    from app.identity import partners
    from app.identity.schemas import AgreementInput, PartnerCreate

    settings = get_settings()
    kit = _security(settings)
    try:
        data = PartnerCreate.model_validate(
            {
                "name": name,
                "scopes": scopes.split(),
                "auth_method": "private_key_jwt" if jwks else "client_secret",
                "public_jwks": json.loads(jwks.read_text()) if jwks else None,
            }
        )
        agreement = AgreementInput.model_validate(
            {
                "jurisdiction": jurisdiction,
                "recognised_only": not all_case_files,
                "max_tier": max_tier,
                "read_write": read_write,
            }
        )
    except ValidationError as error:
        typer.echo(f"Not created: {_invalid(error)}", err=True)
        raise typer.Exit(2) from None
    except (ValueError, OSError) as error:
        typer.echo(f"Not created: {error}", err=True)
        raise typer.Exit(2) from None

    async def work(session: Any) -> Any:
        partner, secret = await partners.create_partner(
            session, kit, data, system_agreement=agreement
        )
        return {
            "id": str(partner.id),
            "name": partner.name,
            "client_id": partner.client_id,
            "client_secret": secret,
            "scopes": partner.scopes,
        }

    typer.echo(json.dumps(asyncio.run(_in_session(settings, _database_url(settings), kit, work))))


@keys_cli.command("rotate")
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
    kit = _security(settings)
    if signing:
        if settings.jwt_keys is not None:
            typer.echo("Signing keys come from HABEAS_JWT_KEYS; rotate them there.", err=True)
            raise typer.Exit(2)
        path = settings.jwt_key_file or settings.keys_dir / "jwt.json"
        kid = rotate_signing_key_file(path)
        _record(settings, _database_url(settings), kit, "keys.rotate", {"ring": "jwt", "key": kid})
        typer.echo(json.dumps({"signing_key": kid, "file": str(path)}))
        return
    if audit:
        if settings.audit_keys is not None:
            typer.echo("Audit keys come from HABEAS_AUDIT_KEYS; rotate them there.", err=True)
            raise typer.Exit(2)
        path = settings.audit_key_file or settings.keys_dir / "audit.json"
        kid = rotate_audit_key_file(path)
        _record(
            settings, _database_url(settings), kit, "keys.rotate", {"ring": "audit", "key": kid}
        )
        typer.echo(json.dumps({"audit_key": kid, "file": str(path)}))
        return
    if settings.data_keys is not None:
        typer.echo("Data keys come from HABEAS_DATA_KEYS; rotation needs a key file.", err=True)
        raise typer.Exit(2)
    path = settings.data_key_file or settings.keys_dir / "data.json"
    kid = rotate_data_key_file(path)
    ring = data_key_ring(settings)
    url = _database_url(settings)
    report = asyncio.run(reseal_all(url, ring))
    _record(
        settings,
        url,
        kit,
        "keys.rotate",
        {
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


@keys_cli.command("retire")
def keys_retire() -> None:
    """Drop data keys that no stored value is sealed with. Run it a few minutes after
    `keys rotate`: servers re-read the key file within seconds, but a transaction that
    began before might still seal a value under the old key; the scan then keeps it."""
    from app.core.crypto import data_key_ring, retire_data_keys
    from app.ops.keys import key_ids_in_use, reseal_all

    settings = get_settings()
    kit = _security(settings)
    if settings.data_keys is not None:
        typer.echo("Data keys come from HABEAS_DATA_KEYS; retire them there.", err=True)
        raise typer.Exit(2)
    path = settings.data_key_file or settings.keys_dir / "data.json"
    url = _database_url(settings)
    # Re-seal stragglers first, then keep every key still in use at the moment of writing.
    asyncio.run(reseal_all(url, data_key_ring(settings)))
    retired = retire_data_keys(path, frozenset(asyncio.run(key_ids_in_use(url))))
    _record(settings, url, kit, "keys.retire", {"ring": "data", "retired": retired})
    typer.echo(json.dumps({"retired_keys": retired}))


@audit_cli.command("verify")
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
    url = _database_url(settings)
    try:
        saved = [Checkpoint.from_json(json.loads(path.read_text())) for path in checkpoint or []]
        if public_key:
            keys = {
                kid: public_key_from_text(text)
                for kid, _, text in (item.partition("=") for item in public_key)
            }
        else:
            keys = _security(settings).audit_keys.public_keys()
    except (ValueError, OSError, KeyConfigurationError) as error:
        typer.echo(f"Cannot verify: {error}", err=True)
        raise typer.Exit(2) from None

    async def run() -> Any:
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


@audit_cli.command("checkpoint")
def audit_checkpoint(
    out: Annotated[Path | None, typer.Option(help="Also write the checkpoint here.")] = None,
) -> None:
    """Sign the chain's head with the audit key (after verifying what was appended since
    the last checkpoint), store it, and print it. Keep a copy outside this system."""
    from app.audit import service
    from app.core.errors import Conflict

    settings = get_settings()
    kit = _security(settings)

    async def work(session: Any) -> Any:
        return await service.checkpoint(session, kit.audit_keys)

    try:
        made = asyncio.run(_in_session(settings, _database_url(settings), kit, work))
    except Conflict as error:
        typer.echo(f"No checkpoint: {error.detail} {error.extensions or ''}", err=True)
        raise typer.Exit(1) from None
    text = json.dumps(service.checkpoint_document(made, kit.audit_keys), indent=2)
    if out is not None:
        out.write_text(text + "\n")
    typer.echo(text)


@audit_cli.command("public-keys")
def audit_public_keys() -> None:
    """The Ed25519 keys that verify checkpoints (give them to whoever keeps checkpoints)."""
    from app.core.crypto import public_key_text

    kit = _security(get_settings())
    keys = kit.audit_keys.public_keys()
    typer.echo(json.dumps({kid: public_key_text(key) for kid, key in keys.items()}))


def _backup_keys_or_exit(settings: Settings) -> Any:
    from app.core.crypto import KeyConfigurationError, backup_key_ring

    try:
        return backup_key_ring(settings)
    except KeyConfigurationError as error:
        typer.echo(f"Refusing: {error}", err=True)
        raise typer.Exit(2) from None


@backup_cli.command("create")
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
    kit = _security(settings)
    keys = _backup_keys_or_exit(settings)
    url = _database_url(settings)
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

    async def work(session: Any) -> None:
        journal_of(session).changed("backup.create", "database", None, [], detail=summary)

    asyncio.run(_in_session(settings, url, kit, work))
    typer.echo(json.dumps(summary))


@backup_cli.command("restore")
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
    kit = _security(settings)
    keys = RestoreKeys(
        backup=_backup_keys_or_exit(settings),
        data=kit.data_keys,
        audit=kit.audit_keys.public_keys(),
        places=key_places(settings),
    )
    try:
        report = asyncio.run(
            restore(
                source=file,
                database_url=_database_url(settings),
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


@backup_cli.command("show")
def backup_show(file: Path) -> None:
    """Print a backup's manifest, once it is authenticated with the backup key."""
    from app.ops.backup import BackupError, key_places, open_backup, read_manifest

    settings = get_settings()
    keys = _backup_keys_or_exit(settings)
    try:
        manifest = read_manifest(open_backup(file), keys, key_places(settings)["backup"])
    except BackupError as error:
        typer.echo(f"Cannot read: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(manifest, indent=2))


@backup_cli.command("rotate-key")
def backup_rotate_key() -> None:
    """Add a new backup key and make it the one new backups are made with. The old keys
    stay in the file: they open the backups made before; remove one only when no backup
    you keep names it (`habeas backup show`)."""
    from app.core.crypto import rotate_backup_key_file

    settings = get_settings()
    kit = _security(settings)
    if settings.backup_keys is not None:
        typer.echo("Backup keys come from HABEAS_BACKUP_KEYS; rotate them there.", err=True)
        raise typer.Exit(2)
    _backup_keys_or_exit(settings)
    path = settings.backup_key_file or settings.keys_dir / "backup.json"
    kid = rotate_backup_key_file(path)
    _record(settings, _database_url(settings), kit, "keys.rotate", {"ring": "backup", "key": kid})
    typer.echo(json.dumps({"backup_key": kid, "file": str(path)}))


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


if __name__ == "__main__":
    main()

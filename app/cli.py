"""The `habeas` command."""

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer

from app.core import embedded
from app.core.config import Settings, get_settings
from app.core.migrations import upgrade

cli = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Habeas: case files of political prisoners."
)
db_cli = typer.Typer(no_args_is_help=True, help="The embedded PostgreSQL server.")
cli.add_typer(db_cli, name="db")


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
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    migrate_first: Annotated[bool, typer.Option("--migrate/--no-migrate")] = True,
) -> None:
    """Serve the API. Without DATABASE_URL, on the embedded PostgreSQL under .data/."""
    import uvicorn

    settings = get_settings()
    url = _database_url(settings)
    if migrate_first:
        upgrade(url)
    # Worker processes read the URL from the environment, not from this process.
    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    typer.echo(f"Habeas on http://{host}:{port} (docs at /docs); Ctrl-C stops it.")
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level.lower(),
        access_log=False,
        server_header=False,
        proxy_headers=False,
    )


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
) -> None:
    """Measure the API against the same SQL run raw on asyncpg (see docs/performance.md)."""
    from app.bench import harness
    from app.bench.database import SCALES
    from app.bench.workloads import ALL_WORKLOADS

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


def main() -> None:
    cli()


if __name__ == "__main__":
    main()

"""Synthetic data and the benchmark, for working on Habeas (never on real data)."""

import asyncio
import json
import os
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import database_url
from app.core.config import get_settings
from app.core.migrations import upgrade


def seed(
    persons: Annotated[int, typer.Option(min=1, help="How many persons to make.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed, the same data.")] = 1,
) -> None:
    """Load a deterministic synthetic data set (never real people) with COPY."""
    from app.seed.loader import load

    settings = get_settings()
    url = database_url(settings)
    upgrade(url)
    summary = asyncio.run(load(url, persons=persons, seed=seed))
    typer.echo(summary)


def bench(
    scale: Annotated[str, typer.Option(help="10k, 100k or 1m persons.")] = "100k",
    workload: Annotated[list[str] | None, typer.Option(help="Only these (repeatable).")] = None,
    duration: Annotated[float, typer.Option(help="Seconds measured per workload.")] = 10.0,
    warmup: Annotated[float, typer.Option(help="Seconds of warm-up per workload.")] = 3.0,
    scale_compare: Annotated[
        str | None,
        typer.Option(
            help="Two scales, e.g. 10k,1m: latency growth of case read, name search, dup. check."
        ),
    ] = None,
    quick: Annotated[bool, typer.Option(help="Every workload briefly at 10k.")] = False,
    json_file: Annotated[Path | None, typer.Option("--json", help="Write results here.")] = None,
    verify_events: Annotated[
        int,
        typer.Option(help="Only measure audit verification over a chain of this many events."),
    ] = 0,
    bulk: Annotated[
        bool,
        typer.Option(help="Use the bulk-seeded databases (about ten status events a person)."),
    ] = False,
    report_scales: Annotated[
        str | None,
        typer.Option(
            help="Scales, e.g. 10k,100k,1m: the status report's time and server memory at "
            "each, on bulk-seeded data (runs only these unless --workload is given)."
        ),
    ] = None,
    report_repeats: Annotated[
        int, typer.Option(help="Status reports timed (after the warm-up ones), API and raw.")
    ] = 3,
    report_warmup: Annotated[
        int, typer.Option(help="Status reports generated before the timed ones.")
    ] = 1,
    catch_up_records: Annotated[
        int,
        typer.Option(
            help="sync_catch_up: stop after so many records (0: when caught up), e.g. 1M "
            "records of the 1m scale's starting snapshot."
        ),
    ] = 0,
    audit_cost: Annotated[
        bool,
        typer.Option(
            help="Also measure the read workloads on a server that does not record reads."
        ),
    ] = False,
    writers: Annotated[
        str | None,
        typer.Option(help="Also measure transitions with so many API processes, e.g. 1,2,4."),
    ] = None,
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
    report_scale_list = report_scales.split(",") if report_scales else None
    for name in [scale, *(compare or []), *(report_scale_list or [])]:
        if name not in SCALES:
            raise typer.BadParameter(f"unknown scale {name!r}; use one of {', '.join(SCALES)}")
    if compare is not None and len(compare) != 2:
        raise typer.BadParameter("--scale-compare takes two scales, e.g. 10k,1m")
    chosen = workload or ([] if report_scale_list else list(ALL_WORKLOADS))
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
        bulk=bulk,
        report_repeats=report_repeats,
        report_warmup=0 if quick else report_warmup,
        report_scales=report_scale_list,
        catch_up_records=catch_up_records,
        audit_cost=audit_cost,
        writers=[int(count) for count in writers.split(",")] if writers else None,
    )
    report = asyncio.run(harness.run(plan))
    typer.echo(harness.table(report))
    if json_file is not None:
        harness.write_json(report, json_file)

"""`habeas report`: generate a status report from the command line (stored as a snapshot,
like one generated through the API) and write it in a format."""

import asyncio
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from app.cli.common import database_url, in_session, security_or_exit
from app.core.config import get_settings

if TYPE_CHECKING:
    from sqlmodel.ext.asyncio.session import AsyncSession

    from app.reports.models import ReportBasis
    from app.reports.schemas import ReportRead

commands = typer.Typer(no_args_is_help=True, help="Status reports (docs/reports.md).")

DAY = ["%Y-%m-%d"]


@commands.command("generate")
def report_generate(
    as_of: Annotated[datetime, typer.Option(formats=DAY, help="The day the held figures describe")],
    from_: Annotated[datetime, typer.Option("--from", formats=DAY, help="The period's first day")],
    to: Annotated[datetime, typer.Option(formats=DAY, help="The period's last day")],
    out: Annotated[Path, typer.Option(help="Write the report here")],
    report_format: Annotated[
        str, typer.Option("--format", help="json, csv, xlsx, pdf or png")
    ] = "json",
    as_known_at: Annotated[
        str | None,
        typer.Option(help="Count what had been recorded by this moment (ISO 8601, with offset)"),
    ] = None,
    baseline: Annotated[
        datetime, typer.Option(formats=DAY, help="Cumulative figures count from this day")
    ] = datetime(2020, 1, 1),
    jurisdiction: Annotated[str | None, typer.Option(help="Only this country's case files")] = None,
) -> None:
    """Generate a status report, store it as a snapshot and write it to --out."""
    from pydantic import ValidationError

    from app.core.errors import DomainError
    from app.reports import service
    from app.reports.render import ReportFormat, render
    from app.reports.schemas import ReportCreate

    settings = get_settings()
    try:
        fmt = ReportFormat(report_format)
        request = ReportCreate.model_validate(
            {
                "as_of": as_of.date().isoformat(),
                "period": {"from": from_.date().isoformat(), "to": to.date().isoformat()},
                "as_known_at": as_known_at,
                "baseline": baseline.date().isoformat(),
                "jurisdiction": jurisdiction,
            }
        )
    except (ValueError, ValidationError) as error:
        typer.echo(f"Cannot generate: {error}", err=True)
        raise typer.Exit(2) from None
    kit = security_or_exit(settings)

    async def work(session: "AsyncSession") -> "ReportRead":
        snapshot = await service.generate(
            session,
            data=request,
            generated_by=None,
            settle_seconds=settings.report_settle_seconds,
        )
        return await service.report_read(session, snapshot)

    try:
        read = asyncio.run(in_session(settings, database_url(settings), kit=kit, work=work))
    except DomainError as refused:
        typer.echo(f"Cannot generate: {refused.detail}", err=True)
        raise typer.Exit(1) from None
    if fmt is ReportFormat.json:
        out.write_text(read.model_dump_json(indent=2) + "\n")
    else:
        out.write_bytes(render(read.model_dump(mode="json"), fmt))
    typer.echo(f"report {read.id} ({read.content_sha256}) written to {out}")


@commands.command("basis")
def report_basis() -> None:
    """Build the path basis reports read (docs/reports.md, "The path basis"): every case
    file's path as known now, so that the next reports build only what changed since."""
    from app.reports import basis

    settings = get_settings()
    kit = security_or_exit(settings)

    async def work(session: "AsyncSession") -> "ReportBasis | None":
        return await basis.build(
            session,
            settle_seconds=settings.report_settle_seconds,
            margin_seconds=settings.report_basis_margin_seconds,
        )

    built = asyncio.run(in_session(settings, database_url(settings), kit=kit, work=work))
    if built is None:
        typer.echo("Another build of the basis is under way; nothing done.", err=True)
        raise typer.Exit(1)
    typer.echo(
        f"basis {built.id} as known at {built.known_at.isoformat()}: "
        f"{built.events} events in {built.seconds:.1f} s"
    )

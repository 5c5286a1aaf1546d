"""`habeas persons`: work on the person records as a whole."""

import asyncio
import csv
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli.common import database_url, in_session, security_or_exit
from app.core.config import get_settings

if TYPE_CHECKING:
    from sqlmodel.ext.asyncio.session import AsyncSession

commands = typer.Typer(no_args_is_help=True, help="Person records (docs/persons.md).")

OUT_COLUMNS = ("person_id", "other_person_id", "score", "reasons")


# Pairs below this are not worth a coordinator's reading (the duplicate check shows no
# candidate below 0.6 either), and would be kept by the million.
LOWEST_THRESHOLD = 0.6


@commands.command("duplicates")
def persons_duplicates(
    threshold: Annotated[
        float | None,
        typer.Option(
            min=LOWEST_THRESHOLD, max=1.0, help="List pairs scoring at least this (default: 0.85)"
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Also write the pairs here (CSV: ids, score, reasons; no names)"),
    ] = None,
) -> None:
    """Scan every person for others who may be the same (blocked on name words, never
    all pairs) and keep the pairs for coordinators (GET /api/v1/person-duplicates), in
    place of the last scan's. Prints what it compared and found."""
    from app.audit.journal import journal_of
    from app.persons import duplicates, matching

    settings = get_settings()
    kit = security_or_exit(settings)
    chosen = matching.DUPLICATE_THRESHOLD if threshold is None else threshold
    # Pairs go to a file beside --out as they are found (readable by its owner only: ids
    # of persons whose case files may be high-confidentiality), renamed to --out once the
    # scan is kept; removed if it is not.
    partial = out.with_name(f".{out.name}.partial") if out is not None else None
    handle = None
    if partial is not None:
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        handle = open(descriptor, "w", newline="", encoding="utf-8")  # noqa: SIM115
    writer = csv.writer(handle) if handle is not None else None
    if writer is not None:
        writer.writerow(OUT_COLUMNS)

    def found(candidate: duplicates.Candidate) -> None:
        if writer is not None:
            reasons = ";".join(f"{r.kind.value}:{r.verdict.value}" for r in candidate.reasons)
            writer.writerow(
                (candidate.person_id, candidate.other_person_id, f"{candidate.score:.3f}", reasons)
            )

    async def work(session: "AsyncSession") -> dict[str, Any]:
        result = await duplicates.scan(session, threshold=chosen, found=found)
        summary = duplicates.summary(result)
        journal_of(session).changed(
            "person.duplicate_scan", "person_duplicate_scan", result.id, changes=[], detail=summary
        )
        return summary

    try:
        summary = asyncio.run(in_session(settings, database_url(settings), kit=kit, work=work))
    except BaseException as failed:
        if handle is not None and partial is not None:
            handle.close()
            partial.unlink(missing_ok=True)
        if isinstance(failed, duplicates.ScanRunning):
            typer.echo(str(failed), err=True)
            raise typer.Exit(1) from None
        raise
    if handle is not None and partial is not None and out is not None:
        handle.close()
        os.replace(partial, out)
    typer.echo(json.dumps(summary))

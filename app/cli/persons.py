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


# Pairs below this are not worth a coordinator's reading, and would be kept by the
# million: the scan's memory is bounded by the pairs it keeps.
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
    found: list[duplicates.Candidate] = []

    async def work(session: "AsyncSession") -> dict[str, Any]:
        result = await duplicates.scan(session, threshold=chosen, found=found.append)
        summary = duplicates.summary(result)
        journal_of(session).changed(
            "person.duplicate_scan", "person_duplicate_scan", result.id, changes=[], detail=summary
        )
        return summary

    try:
        summary = asyncio.run(in_session(settings, database_url(settings), kit=kit, work=work))
    except duplicates.ScanRunning as running:
        typer.echo(str(running), err=True)
        raise typer.Exit(1) from None
    if out is not None:
        # Written once the scan is kept, readable by its owner only: ids of persons whose
        # case files may be high-confidentiality.
        descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(descriptor, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(OUT_COLUMNS)
            for candidate in found:
                reasons = ";".join(f"{r.kind.value}:{r.verdict.value}" for r in candidate.reasons)
                writer.writerow(
                    (
                        candidate.person_id,
                        candidate.other_person_id,
                        f"{candidate.score:.3f}",
                        reasons,
                    )
                )
    typer.echo(json.dumps(summary))

"""`habeas persons`: work on the person records as a whole."""

import asyncio
import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli.common import database_url, in_session, security_or_exit
from app.core.config import get_settings

if TYPE_CHECKING:
    from sqlmodel.ext.asyncio.session import AsyncSession

commands = typer.Typer(no_args_is_help=True, help="Person records (docs/persons.md).")

OUT_COLUMNS = ("person_id", "other_person_id", "score", "reasons")


@commands.command("duplicates")
def persons_duplicates(
    threshold: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="List pairs scoring at least this (default: 0.85)"),
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
    handle = out.open("w", newline="", encoding="utf-8") if out is not None else None
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
        summary = {
            "threshold": result.threshold,
            "persons": result.persons,
            "blocks": result.blocks,
            "blocks_skipped": result.blocks_skipped,
            "pairs_compared": result.pairs_compared,
            "candidates": result.candidates,
            "seconds": round((result.finished_at - result.started_at).total_seconds(), 1),
        }
        journal_of(session).changed(
            "person.duplicate_scan", "person_duplicate_scan", result.id, changes=[], detail=summary
        )
        return summary

    try:
        summary = asyncio.run(in_session(settings, database_url(settings), kit=kit, work=work))
    finally:
        if handle is not None:
            handle.close()
    typer.echo(json.dumps(summary))

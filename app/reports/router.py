import csv
import io
import uuid
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import AfterValidator
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.concurrency import run_in_threadpool

from app.access.caller import Caller
from app.core.dates import DayFrom1900
from app.core.db import SessionDep
from app.core.http import LOCATION_HEADER, documented_headers, model_response, settings_of
from app.core.pagination import Page, PageRequest, next_link, page_request
from app.core.types import CountryCode
from app.idempotency.http import IdempotentCreateDep
from app.idempotency.service import StoredResponse
from app.identity.http import requires
from app.reports import service
from app.reports.charts import Chart
from app.reports.models import ReportKind, ReportSnapshot
from app.reports.render import MEDIA_TYPES, ReportFormat, inert_for_spreadsheets, render
from app.reports.schemas import (
    PublicListEntry,
    ReportCreate,
    ReportParameters,
    ReportRead,
    ReportSummary,
    day_not_to_come,
)

router = APIRouter(prefix="/reports", tags=["reports"])

_BINARY = {"schema": {"type": "string", "format": "binary"}}
_DOWNLOAD_HEADER = {
    "Content-Disposition": {
        "description": "A document (not JSON) comes as an attachment with a file name",
        "schema": {"type": "string"},
    }
}
_DOCUMENT_CONTENT: dict[str, Any] = {
    MEDIA_TYPES[fmt]: _BINARY for fmt in ReportFormat if fmt is not ReportFormat.json
}
CSV_MEDIA_TYPE = MEDIA_TYPES[ReportFormat.csv]


async def _created(
    session: AsyncSession, request: Request, snapshot: ReportSnapshot
) -> StoredResponse:
    return StoredResponse(
        201,
        (await service.report_read(session, snapshot)).model_dump(mode="json"),
        {"Location": request.url_for("read_report", report_id=snapshot.id).path},
    )


@router.post(
    "",
    status_code=201,
    response_model=ReportRead,
    responses=documented_headers(201, LOCATION_HEADER),
)
async def generate_report(
    body: ReportCreate,
    session: SessionDep,
    request: Request,
    once: IdempotentCreateDep,
    caller: Annotated[Caller, requires("report.generate")],
) -> Response:
    """Generate a report and store it as an immutable snapshot: the figures as of `as_of`,
    for the period, counting what had been recorded by `as_known_at` (docs/reports.md).
    Asking again with the `as_known_at` a snapshot used gives the same figures and hash."""
    settle = settings_of(request).report_settle_seconds

    async def produce() -> StoredResponse:
        return await _created(
            session,
            request,
            await service.generate_for(session, caller, body, settle_seconds=settle),
        )

    async def replay(stored: StoredResponse) -> StoredResponse:
        return await _created(
            session, request, await service.get(session, uuid.UUID(stored.body["id"]))
        )

    return await once.run(body.model_dump(mode="json", by_alias=True), produce, replay)


@router.get("", response_model=Page[ReportSummary])
async def list_reports(
    session: SessionDep,
    request: Request,
    paging: Annotated[PageRequest, Depends(page_request)],
    caller: Annotated[Caller, requires("report.read")],
    kind: ReportKind | None = None,
) -> Response:
    """The snapshots, newest first."""
    found = await service.list_snapshots(
        session, kind=kind, cursor=paging.cursor, limit=paging.limit
    )
    return model_response(
        Page[ReportSummary](
            items=[
                ReportSummary(
                    id=snapshot.id,
                    kind=snapshot.kind,
                    generated_at=snapshot.generated_at,
                    generated_by=snapshot.generated_by,
                    parameters=ReportParameters.model_validate(snapshot.parameters),
                    content_sha256=snapshot.content_sha256,
                )
                for snapshot in found.items
            ],
            next=next_link(request, found.next_cursor),
        )
    )


class ListFormat(StrEnum):
    json = "json"
    csv = "csv"


_PUBLIC_LIST_COLUMNS = (
    "names",
    "birth_year",
    "region",
    "articles",
    "sentence_type",
    "term_months",
    "held_since",
)


@router.get(
    "/public-list",
    response_model=Page[PublicListEntry],
    responses={200: {"content": {CSV_MEDIA_TYPE: _BINARY}, "headers": _DOWNLOAD_HEADER}},
)
async def read_public_list(
    session: SessionDep,
    request: Request,
    paging: Annotated[PageRequest, Depends(page_request)],
    caller: Annotated[Caller, requires("report.read")],
    as_of: Annotated[
        DayFrom1900,
        AfterValidator(day_not_to_come),
        Query(description="The day the list describes (not after today)"),
    ],
    jurisdiction: CountryCode | None = None,
    format: Annotated[
        ListFormat, Query(description="json (paged) or csv (the whole list in one document)")
    ] = ListFormat.json,
) -> Response:
    """The recognised political prisoners held on `as_of` (as known now) whose families
    consented to publication, with public-tier fields only. Nobody without consent, and
    nobody with a high-confidentiality case file, is ever listed."""
    if format is ListFormat.csv:
        rows = await service.public_entries(session, as_of=as_of, jurisdiction=jurisdiction)
        return Response(
            _public_csv(rows),
            media_type=CSV_MEDIA_TYPE,
            headers={"Content-Disposition": f'attachment; filename="public-list-{as_of}.csv"'},
        )
    page = await service.public_page(
        session, as_of=as_of, jurisdiction=jurisdiction, cursor=paging.cursor, limit=paging.limit
    )
    return model_response(
        Page[PublicListEntry](
            items=[PublicListEntry.model_validate(entry) for entry in page.items],
            next=next_link(request, page.next_cursor),
        )
    )


def _public_csv(rows: list[dict[str, Any]]) -> bytes:
    """UTF-8 with a byte-order mark, so that spreadsheets show Cyrillic; several names or
    articles in one cell, separated by "; "."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(_PUBLIC_LIST_COLUMNS)
    for row in rows:
        writer.writerow(
            [
                inert_for_spreadsheets("; ".join(value) if isinstance(value, list) else value)
                for value in (row[column] for column in _PUBLIC_LIST_COLUMNS)
            ]
        )
    return ("\ufeff" + buffer.getvalue()).encode()


def _wanted_format(asked: ReportFormat | None, accept: str | None) -> ReportFormat:
    """`format` wins; else the most preferred of our media types the Accept header names
    (a `q` of 0 refuses one); else JSON, the resource's own form."""
    if asked is not None:
        return asked
    wanted: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept or "").split(",")):
        media_type, *parameters = (piece.strip().lower() for piece in part.split(";"))
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            wanted.append((-quality, index, media_type))
    served = {media_type: fmt for fmt, media_type in MEDIA_TYPES.items()}
    for _, _, media_type in sorted(wanted):
        if media_type in served:
            return served[media_type]
    return ReportFormat.json


@router.get(
    "/{report_id}",
    response_model=ReportRead,
    responses={200: {"content": _DOCUMENT_CONTENT, "headers": _DOWNLOAD_HEADER}},
)
async def read_report(
    report_id: uuid.UUID,
    session: SessionDep,
    caller: Annotated[Caller, requires("report.read")],
    format: Annotated[
        ReportFormat | None,
        Query(description="json, csv, xlsx, pdf or png; or send the matching Accept type"),
    ] = None,
    chart: Annotated[Chart, Query(description="Which chart a PNG shows")] = Chart.held,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """A snapshot, as JSON or as a document: CSV (UTF-8 with a byte-order mark), XLSX, PDF
    (key figures, tables, a chart; a footer with the parameters, knowledge time and hash)
    or a PNG chart (1200 × 600)."""
    snapshot = await service.get(session, report_id)
    read = await service.report_read(session, snapshot)
    fmt = _wanted_format(format, accept)
    if fmt is ReportFormat.json:
        return model_response(read)
    # Rendering a PDF or a chart takes a while: off the event loop.
    document = await run_in_threadpool(render, read.model_dump(mode="json"), fmt, chart=chart)
    extension = fmt.value
    return Response(
        document,
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="report-{snapshot.id}.{extension}"'},
    )

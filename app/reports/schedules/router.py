"""Report schedules: `/api/v1/reports/schedules`. Mounted before the reports' own router,
whose `/reports/{report_id}` would otherwise take `/reports/schedules`."""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from app.access.caller import Caller
from app.core.db import SessionDep
from app.core.http import (
    ETAG_HEADER,
    LOCATION_HEADER,
    IfMatch,
    documented_headers,
    etag,
    model_response,
    required_version,
)
from app.core.pagination import Page, PageRequest, next_link, page_request
from app.idempotency.http import IdempotentCreateDep
from app.idempotency.service import StoredResponse
from app.identity.http import requires
from app.reports.schedules import service
from app.reports.schedules.models import ReportSchedule
from app.reports.schedules.schemas import (
    ReportScheduleCreate,
    ReportScheduleRead,
    ReportScheduleRunRead,
    ReportScheduleUpdate,
)

router = APIRouter(prefix="/reports/schedules", tags=["report schedules"])

_NAME_TAKEN: dict[int | str, Any] = {409: {"description": "Another report schedule has this name"}}


def _schedule_response(schedule: ReportSchedule) -> Response:
    return model_response(service.schedule_read(schedule), headers={"ETag": etag(schedule.version)})


@router.post(
    "",
    status_code=201,
    response_model=ReportScheduleRead,
    responses={**documented_headers(201, ETAG_HEADER, LOCATION_HEADER), **_NAME_TAKEN},
)
async def create_report_schedule(
    body: ReportScheduleCreate,
    session: SessionDep,
    request: Request,
    once: IdempotentCreateDep,
    caller: Annotated[Caller, requires(service.MANAGE)],
) -> Response:
    """Make a weekly or monthly status report on a schedule (coordinators). `habeas
    worker` generates it for every whole period from the last one before today."""

    def created(schedule: ReportSchedule) -> StoredResponse:
        location = request.url_for("read_report_schedule", schedule_id=schedule.id).path
        return StoredResponse(
            201,
            service.schedule_read(schedule).model_dump(mode="json"),
            {"Location": location, "ETag": etag(schedule.version)},
        )

    async def produce() -> StoredResponse:
        return created(await service.create_schedule(session, caller, body))

    async def replay(stored: StoredResponse) -> StoredResponse:
        # The schedule as it is now, never the stored copy.
        return created(await service.get_schedule(session, caller, uuid.UUID(stored.body["id"])))

    return await once.run(body.model_dump(mode="json"), produce, replay)


@router.get("", response_model=Page[ReportScheduleRead])
async def list_report_schedules(
    session: SessionDep,
    request: Request,
    paging: Annotated[PageRequest, Depends(page_request)],
    caller: Annotated[Caller, requires(service.READ)],
) -> Response:
    """Every schedule, those of the configuration included (coordinators, analysts,
    admins)."""
    found = await service.list_schedules(session, caller, cursor=paging.cursor, limit=paging.limit)
    return model_response(
        Page[ReportScheduleRead](items=found.items, next=next_link(request, found.next_cursor))
    )


@router.get(
    "/{schedule_id}",
    response_model=ReportScheduleRead,
    responses=documented_headers(200, ETAG_HEADER),
)
async def read_report_schedule(
    schedule_id: uuid.UUID,
    session: SessionDep,
    caller: Annotated[Caller, requires(service.READ)],
) -> Response:
    return _schedule_response(await service.get_schedule(session, caller, schedule_id))


@router.patch(
    "/{schedule_id}",
    response_model=ReportScheduleRead,
    responses={
        **documented_headers(200, ETAG_HEADER),
        409: {
            "description": "Another report schedule has this name, or the schedule is set "
            "in the configuration (HABEAS_REPORT_SCHEDULES) and is changed there"
        },
    },
)
async def update_report_schedule(
    schedule_id: uuid.UUID,
    body: ReportScheduleUpdate,
    session: SessionDep,
    caller: Annotated[Caller, requires(service.MANAGE)],
    if_match: IfMatch = None,
) -> Response:
    """Rename, pause (`enabled: false`) or change what a schedule's reports count
    (coordinators). Reports already made keep their parameters."""
    schedule = await service.update_schedule(
        session, caller, schedule_id, expected_version=required_version(if_match), data=body
    )
    return _schedule_response(schedule)


@router.get("/{schedule_id}/runs", response_model=Page[ReportScheduleRunRead])
async def list_report_schedule_runs(
    schedule_id: uuid.UUID,
    session: SessionDep,
    request: Request,
    paging: Annotated[PageRequest, Depends(page_request)],
    caller: Annotated[Caller, requires(service.READ)],
) -> Response:
    """One run per period: running, succeeded (with the snapshot made) or failed (with
    its attempts and last error; the next run of the job tries again)."""
    found = await service.list_runs(
        session, caller, schedule_id, cursor=paging.cursor, limit=paging.limit
    )
    return model_response(
        Page[ReportScheduleRunRead](items=found.items, next=next_link(request, found.next_cursor))
    )

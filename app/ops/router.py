"""Liveness and readiness. Open by design: they reveal nothing about any record."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from app.core.migrations import head_revision
from app.ops import repository

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Database unreachable or not migrated"}})
async def readyz(request: Request) -> JSONResponse:
    expected = head_revision()
    try:
        current = await repository.current_revision(request.app.state.engine)
    except (SQLAlchemyError, OSError):
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    if current != expected:
        return JSONResponse(
            {
                "status": "unavailable",
                "database": "not migrated",
                "revision": current,
                "expected": expected,
            },
            status_code=503,
        )
    return JSONResponse({"status": "ready", "revision": current})

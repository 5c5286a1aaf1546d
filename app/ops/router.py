"""Liveness and readiness, open by design: they reveal nothing about any record. And
/metrics, for the operator's Prometheus only."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from app.core.errors import Unauthenticated
from app.core.migrations import current_revision, head_revision
from app.ops.metrics import scrape, token_matches

router = APIRouter(tags=["operations"])
# Included only when HABEAS_METRICS_TOKEN_FILE is set (app/main.py); otherwise /metrics
# is a 404 like any unknown path.
metrics_router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Database unreachable or not migrated"}})
async def readyz(request: Request) -> JSONResponse:
    expected = head_revision()
    try:
        current = await current_revision(request.app.state.engine)
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


# An operator's endpoint, outside the API's published contract (docs/reliability.md says
# what it answers): 200 text for Prometheus, 401 problem+json without the right token.
@metrics_router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request) -> Response:
    state = request.app.state
    if not token_matches(request.headers.get("authorization"), state.metrics_token):
        raise Unauthenticated("Present the metrics token as a bearer token.")
    body, content_type = await scrape(
        state.engine, state.scrape_hooks, request.headers.get("accept")
    )
    return Response(body, media_type=content_type)

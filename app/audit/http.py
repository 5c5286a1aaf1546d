"""The audit trail over HTTP: the journal of a request (where it came from, filled in
before any dependency), and a record's field-level history for the routers that show it."""

import uuid
import weakref
from typing import Any

from fastapi import Request, Response

from app.audit import service
from app.audit.journal import MAX_USER_AGENT, Journal, Origin
from app.audit.schemas import RecordHistory, history_entry
from app.core.db import SessionDep
from app.core.http import audit_keys_of, model_response
from app.core.pagination import PageRequest, next_link


def open_journal(request: Request) -> Journal:
    journal = Journal(
        audit_keys_of(request),
        origin_of(request),
        read_events=request.app.state.read_events,
        record_reads=request.app.state.settings.audit_reads,
    )
    journal.attempted = _declared_action(request.scope.get("route"))
    return journal


async def own_reads_appended(request: Request) -> None:
    """Before the trail is searched: the reads this process served moments ago, still
    waiting for their batch (app/audit/read_events.py), are appended."""
    read_events = request.app.state.read_events
    if read_events is not None:
        await read_events.flush()


_ACTIONS: "weakref.WeakKeyDictionary[object, str | None]" = weakref.WeakKeyDictionary()


def _declared_action(route: object) -> str | None:
    """The action the route declares with `requires(...)`, known before authentication
    (so that a 401 names what was attempted)."""
    endpoint = getattr(route, "endpoint", None)
    if endpoint is None:
        return None
    # Keyed by the endpoint function (routes are not hashable); its signature holds the
    # `requires(...)`.
    if endpoint not in _ACTIONS:
        _ACTIONS[endpoint] = _find_action(getattr(route, "dependant", None))
    return _ACTIONS[endpoint]


def _find_action(dependant: Any) -> str | None:
    if dependant is None:
        return None
    action = getattr(dependant.call, "action", None)
    if isinstance(action, str):
        return action
    for child in dependant.dependencies:
        found = _find_action(child)
        if found is not None:
            return found
    return None


def origin_of(request: Request) -> Origin:
    agent = request.headers.get("user-agent")
    route = request.scope.get("route")
    return Origin(
        request_id=getattr(request.state, "request_id", None),
        # Behind a trusted proxy, uvicorn has already put the client's own address here.
        client_address=request.client.host if request.client else None,
        user_agent=agent[:MAX_USER_AGENT] if agent else None,
        route=_route_template(request, route.path) if route is not None else None,
        path_record=_first_id(request),
    )


def _route_template(request: Request, template: str) -> str:
    """The template of the path as served: routers included lazily keep their own path
    without the prefixes above them, which are taken back from the requested path."""
    served = request.url.path.rstrip("/").split("/")
    own = template.rstrip("/").split("/")
    # Both start with the empty segment before the first slash.
    prefix = "/".join(served[: max(1, len(served) - len(own) + 1)])
    return f"{request.method} {prefix}{template}"


def _first_id(request: Request) -> uuid.UUID | None:
    """The record a route's path names first (`/cases/{case_id}/…` names the case file)."""
    for value in request.path_params.values():
        try:
            return uuid.UUID(str(value))
        except ValueError:
            continue
    return None


async def record_history(
    session: SessionDep,
    request: Request,
    record_id: uuid.UUID,
    *,
    paging: PageRequest,
) -> Response:
    """The field-level history of a record (for the cases and persons routers)."""
    found = await service.changes_to(session, record_id, cursor=paging.cursor, limit=paging.limit)
    return model_response(
        RecordHistory(
            record_id=record_id,
            entries=[
                history_entry(event, service.entries_about(event, record_id))
                for event in found.items
            ],
            next=next_link(request, found.next_cursor),
        )
    )

"""The status-path use cases (app/cases/transitions.py) called directly, as a service: what
each one writes, what it refuses, and that a refusal leaves nothing behind. The HTTP side
of the same rules is in test_router.py and tests/collective."""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlmodel.ext.asyncio.session import AsyncSession

from app.access.caller import Caller
from app.access.principal import Principal, PrincipalKind, Role
from app.audit.journal import as_system
from app.cases import transitions
from app.cases.schemas import StatusEventFields, status_event_input
from app.cases.statuses import Status
from app.collective import service as collective_service
from app.collective.schemas import CollectiveEventCreate
from app.core.db import commit
from app.core.errors import (
    CollectiveTransitionRejected,
    Conflict,
    Forbidden,
    InvalidTransition,
    NotFound,
    PreconditionFailed,
)
from tests.factories import amnesty, create_case, event

UseCase = Callable[[AsyncSession], Awaitable[Any]]


def _caller(app: FastAPI, role: Role, user_id: uuid.UUID | None = None) -> Caller:
    principal = Principal(PrincipalKind.user, user_id or uuid.uuid4(), role)
    return Caller(principal, app.state.policy)


@asynccontextmanager
async def _unit_of_work(app: FastAPI) -> AsyncIterator[AsyncSession]:
    async with app.state.session_factory() as session:
        as_system(session, app.state.security.audit_keys)
        yield session


async def _run(app: FastAPI, use_case: UseCase) -> Any:
    """Run a use case in its own unit of work, committed as a request would be."""
    async with _unit_of_work(app) as session:
        result = await use_case(session)
        await commit(session)
        return result


def _released(effective_date: str = "2022-03-01") -> StatusEventFields:
    return status_event_input(event("released", effective_date))


def _sentenced() -> StatusEventFields:
    return status_event_input(event("sentenced", "2021-12-01"))


async def _state(db: asyncpg.Connection, case_id: str) -> tuple[str, int, int]:
    row = await db.fetchrow(
        "SELECT status, version, (SELECT count(*) FROM status_event WHERE case_file_id = $1)"
        " FROM case_file WHERE id = $1",
        uuid.UUID(case_id),
    )
    assert row is not None
    return row[0], row[1], row[2]


async def test_append_moves_the_status_and_the_version(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    case = await create_case(client)
    coordinator = _caller(app, Role.coordinator)
    change = await _run(
        app,
        lambda session: transitions.append(
            session, coordinator, uuid.UUID(case["id"]), expected_version=1, data=_sentenced()
        ),
    )
    assert change.entry.from_status is Status.detained
    assert change.case.status is Status.sentenced
    assert change.case.version == 2
    assert await _state(db, case["id"]) == ("sentenced", 2, 2)


@pytest.mark.parametrize(
    ("version", "data", "refusal"),
    [
        (0, _sentenced(), PreconditionFailed),  # a stale version
        (1, status_event_input(event("detained", "2021-09-01")), InvalidTransition),
        (1, _released("2021-01-01"), InvalidTransition),  # released before being detained
    ],
)
async def test_append_refuses_and_writes_nothing(
    app: FastAPI,
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    version: int,
    data: StatusEventFields,
    refusal: type[Exception],
) -> None:
    case = await create_case(client)
    coordinator = _caller(app, Role.coordinator)
    with pytest.raises(refusal):
        await _run(
            app,
            lambda session: transitions.append(
                session, coordinator, uuid.UUID(case["id"]), expected_version=version, data=data
            ),
        )
    assert await _state(db, case["id"]) == ("detained", 1, 1)


async def test_retract_restores_the_previous_status_once(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    case = await create_case(
        client, history=[event("detained", "2021-08-10"), event("sentenced", "2021-12-01")]
    )
    event_id = uuid.UUID(
        (await client.get(f"/api/v1/cases/{case['id']}/status-events")).json()["events"][1]["id"]
    )
    coordinator = _caller(app, Role.coordinator)

    def retract(version: int) -> UseCase:
        return lambda session: transitions.retract(
            session,
            coordinator,
            uuid.UUID(case["id"]),
            event_id=event_id,
            expected_version=version,
            reason="The court's verdict was misreported.",
        )

    change = await _run(app, retract(1))
    assert change.case.status is Status.detained
    assert change.entry.record.retraction is not None
    assert await _state(db, case["id"]) == ("detained", 2, 2)
    with pytest.raises(Conflict):
        await _run(app, retract(2))
    assert await _state(db, case["id"]) == ("detained", 2, 2)


async def test_retracting_the_first_event_would_leave_no_path(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    case = await create_case(client)
    first = (await client.get(f"/api/v1/cases/{case['id']}/status-events")).json()["events"][0]
    coordinator = _caller(app, Role.coordinator)
    with pytest.raises(InvalidTransition):
        await _run(
            app,
            lambda session: transitions.retract(
                session,
                coordinator,
                uuid.UUID(case["id"]),
                event_id=uuid.UUID(first["id"]),
                expected_version=1,
                reason="Entered twice.",
            ),
        )
    assert await _state(db, case["id"]) == ("detained", 1, 1)


async def test_a_collective_transition_applies_to_all_or_to_none(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    held = [await create_case(client) for _ in range(2)]
    already_released = await create_case(
        client,
        history=[
            event("detained", "2021-08-10"),
            event("released", "2021-10-01", details={"release_reason": "parole"}),
        ],
    )
    coordinator = _caller(app, Role.coordinator)
    collective_id = uuid.uuid4()

    def release(case_ids: list[str]) -> UseCase:
        return lambda session: transitions.apply_collective(
            session,
            coordinator,
            [uuid.UUID(i) for i in case_ids],
            steps=[_released()],
            collective_event_id=collective_id,
        )

    with pytest.raises(CollectiveTransitionRejected) as refused:
        await _run(app, release([held[0]["id"], already_released["id"], held[1]["id"]]))
    outcomes = [result["outcome"] for result in refused.value.extensions["results"]]
    assert outcomes == ["would_apply", "rejected", "would_apply"]
    for case in held:
        assert await _state(db, case["id"]) == ("detained", 1, 1)

    # Without the case file that could not move, the others move together, in one event.
    created = await _run(
        app,
        lambda session: collective_service.create(
            session,
            coordinator,
            CollectiveEventCreate.model_validate(amnesty([case["id"] for case in held])),
        ),
    )
    assert [result.outcome for result in created.results] == ["applied", "applied"]
    for case in held:
        assert await _state(db, case["id"]) == ("released", 2, 2)


async def test_who_may_not_transition_is_refused_before_anything_is_read(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    normal = await create_case(client)
    closed = await create_case(client, confidentiality="high")
    analyst = _caller(app, Role.analyst)
    caseworker = _caller(app, Role.caseworker)

    async def may_transition(caller: Caller, case: dict[str, Any]) -> None:
        await _run(
            app, lambda session: transitions.may_transition(session, caller, uuid.UUID(case["id"]))
        )

    await may_transition(_caller(app, Role.coordinator), closed)
    with pytest.raises(Forbidden):  # sees the case file, may not change it
        await may_transition(analyst, normal)
    with pytest.raises(NotFound):  # may not even see it
        await may_transition(caseworker, closed)
    with pytest.raises(NotFound):
        await may_transition(analyst, {"id": str(uuid.uuid4())})

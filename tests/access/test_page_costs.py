"""What a page costs the database does not grow with the page: the facts the policies need
for every record on it come from one query (app/access/visibility.py), not one per record.

Every statement a request sends is counted, whichever way it goes: through SQLAlchemy, or
straight on the asyncpg connection (the hot paths, docs/performance.md).
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event as sqlalchemy_event

from app.access.principal import Role
from tests.auth import SignedIn, api_client, create_partner, partner_token
from tests.factories import API, RECOGNISED, amnesty, batch, case_body, create_person, decide, event

PERSONS = 40
CASE_FILES_EACH = 5
FULL_PAGE = PERSONS * CASE_FILES_EACH  # the largest page a client may ask for


class StatementCounter:
    def __init__(self) -> None:
        self.count = 0

    def seen(self, *_: Any) -> None:
        self.count += 1

    async def during(
        self, send: Callable[[], Awaitable[httpx.Response]], *, status: int = 200
    ) -> int:
        self.count = 0
        response = await send()
        assert response.status_code == status, response.text
        # asyncpg calls its query loggers on the next turn of the event loop.
        await asyncio.sleep(0.05)
        return self.count


@pytest.fixture
async def statements(app: FastAPI) -> AsyncIterator[StatementCounter]:
    counter = StatementCounter()
    engine = app.state.engine.sync_engine

    def on_checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        record.driver_connection.add_query_logger(counter.seen)

    def on_checkin(dbapi_connection: Any, record: Any) -> None:
        if record.driver_connection is not None:
            record.driver_connection.remove_query_logger(counter.seen)

    sqlalchemy_event.listen(engine, "before_cursor_execute", counter.seen)
    sqlalchemy_event.listen(engine.pool, "checkout", on_checkout)
    sqlalchemy_event.listen(engine.pool, "checkin", on_checkin)
    yield counter
    sqlalchemy_event.remove(engine, "before_cursor_execute", counter.seen)
    sqlalchemy_event.remove(engine.pool, "checkout", on_checkout)
    sqlalchemy_event.remove(engine.pool, "checkin", on_checkin)


async def _recognised_prisoners_with_case_files(coordinator: httpx.AsyncClient) -> list[str]:
    case_ids = []
    for _ in range(PERSONS):
        person = await create_person(coordinator)
        for _ in range(CASE_FILES_EACH):
            created = await coordinator.post(
                f"{API}/cases",
                json=case_body(person["id"], [event("detained", "2021-08-10")], jurisdiction="BY"),
            )
            assert created.status_code == 201, created.text
            case_ids.append(created.json()["id"])
        # The decision covers the person's open case files: all of them.
        decided = await decide(coordinator, person["id"], RECOGNISED, version=0)
        assert decided.status_code == 201, decided.text
    return case_ids


async def _partner_for_recognised_prisoners(app: FastAPI) -> httpx.AsyncClient:
    partner, secret = await create_partner(
        app,
        scopes=["sync:read"],
        agreement={"jurisdiction": "BY", "recognised_only": True, "max_tier": "restricted"},
    )
    client = api_client(app)
    token = await partner_token(client, partner.client_id, str(secret))
    client.headers["Authorization"] = f"Bearer {token}"
    return client


async def _page(client: httpx.AsyncClient, path: str, size: int) -> httpx.Response:
    response = await client.get(f"{path}?limit={size}")
    assert response.status_code == 200, response.text
    assert len(response.json()["items"]) == size
    return response


async def test_a_page_costs_the_same_statements_for_5_records_as_for_200(
    app: FastAPI,
    statements: StatementCounter,
    sign_in_as: Callable[..., Awaitable[SignedIn]],
) -> None:
    coordinator = (await sign_in_as(Role.coordinator)).client
    case_ids = await _recognised_prisoners_with_case_files(coordinator)
    partner = await _partner_for_recognised_prisoners(app)
    analyst = (await sign_in_as(Role.analyst)).client

    # Each caller's session (or partner) is then known to the process (app/identity/live.py):
    # what is counted below is the pages' own statements.
    await _page(partner, f"{API}/cases", 1)
    await _page(analyst, f"{API}/cases", 1)
    # A partner limited to recognised prisoners: the policy facts of every case file on the
    # page (its own recognition, whether its person is closed) are one query.
    for client, path, everything in [
        (partner, f"{API}/cases", FULL_PAGE),
        (partner, f"{API}/persons", PERSONS),
        (analyst, f"{API}/cases", FULL_PAGE),
        (analyst, f"{API}/persons", PERSONS),
    ]:
        few = await statements.during(lambda c=client, p=path: _page(c, p, 5))
        all_of_them = await statements.during(lambda c=client, p=path, n=everything: _page(c, p, n))
        assert all_of_them == few, (path, few, all_of_them)
        assert few <= 15, (path, few)

    # A collective event's results show each case file the caller may read.
    released = await coordinator.post(
        f"{API}/collective-events",
        json=amnesty(case_ids[:FULL_PAGE]),
    )
    assert released.status_code == 201, released.text
    few_cases = case_ids[:5]
    assert (await coordinator.get(f"{API}/cases/{few_cases[0]}")).json()["status"] == "released"
    # Five of them, released, are then expelled together.
    small = await coordinator.post(f"{API}/collective-events", json=batch(few_cases))
    assert small.status_code == 201, small.text

    async def results(event_id: str, size: int) -> httpx.Response:
        response = await analyst.get(f"{API}/collective-events/{event_id}")
        assert response.status_code == 200, response.text
        assert len(response.json()["results"]) == size
        return response

    large_read = await statements.during(lambda: results(released.json()["id"], FULL_PAGE))
    small_read = await statements.during(lambda: results(small.json()["id"], 5))
    assert large_read == small_read, (small_read, large_read)


async def test_a_hidden_record_costs_what_a_missing_one_does(
    statements: StatementCounter, sign_in_as: Callable[..., Awaitable[SignedIn]]
) -> None:
    """A record the caller may not see is a 404 like a missing one, and sends the same
    statements: how long the answer takes does not tell them apart."""
    coordinator = (await sign_in_as(Role.coordinator)).client
    analyst = (await sign_in_as(Role.analyst)).client
    person = await create_person(coordinator)
    closed = await coordinator.post(
        f"{API}/cases",
        json=case_body(person["id"], [event("detained", "2021-08-10")], confidentiality="high"),
    )
    assert closed.status_code == 201, closed.text
    # The analyst's session is then known to the process (app/identity/live.py).
    assert (await analyst.get(f"{API}/persons")).status_code == 200

    for kind, hidden_id in [("cases", closed.json()["id"]), ("persons", person["id"])]:
        hidden = await statements.during(
            lambda k=kind, i=hidden_id: analyst.get(f"{API}/{k}/{i}"), status=404
        )
        missing = await statements.during(
            lambda k=kind: analyst.get(f"{API}/{k}/{uuid.uuid4()}"), status=404
        )
        assert hidden == missing, (kind, hidden, missing)

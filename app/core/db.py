"""Engine, per-request session and the shared table metadata."""

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import suppress
from typing import Annotated, Any, Protocol, TypeVar

import asyncpg
import structlog
from fastapi import Depends, Request
from sqlalchemy import MetaData, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import instrumentation
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core import metrics
from app.core.config import Settings
from app.core.database_errors import (
    CONNECTION_ERRORS,
    UNAVAILABLE_KINDS,
    DatabaseErrorKind,
    classify,
    report,
)
from app.core.errors import CommitOutcomeUnknown, DatabaseBusy, DatabaseUnavailable, DomainError

log = structlog.get_logger(__name__)

# Constraint names must be stable so that migrations can refer to them.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata


def async_url(url: str) -> str:
    """Accept any PostgreSQL URL (libpq form, `postgres://`, asyncpg) and use asyncpg."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def create_engine(url: str, settings: Settings) -> AsyncEngine:
    engine = create_async_engine(
        async_url(url),
        pool_size=settings.pool_size,
        max_overflow=settings.pool_max_overflow,
        # No ping round trip per request: `_discard_closed` notices a dead connection
        # for free (below).
        pool_pre_ping=False,
        pool_timeout=settings.pool_timeout_seconds,
        poolclass=MeasuredPool,
        # A statement's parameters can hold names: never in an error's text, so never in
        # a logged traceback either.
        hide_parameters=True,
        connect_args={
            "server_settings": {"application_name": "habeas", "timezone": "UTC"},
            "timeout": settings.connect_timeout_seconds,
        },
    )
    event.listen(engine.sync_engine.pool, "checkout", _discard_closed)
    return engine


class MeasuredPool(AsyncAdaptedQueuePool):
    """An async engine's usual pool that times the checkouts finding it exhausted, and
    publishes its figures (app/core/metrics.py) when asked: at a scrape and every second
    (`publish_pool_figures`). Publishing at every checkout and check-in cost a sixth of
    a case read's throughput (scripts/bench)."""

    def __init__(self, creator: Any, *, max_overflow: int = 10, **kwargs: Any) -> None:
        super().__init__(creator, max_overflow=max_overflow, **kwargs)
        self._allowed_overflow = max_overflow
        self.publish()

    def exhausted(self) -> bool:
        """Whether a checkout now would wait for a connection someone else holds."""
        return self.checkedin() == 0 and self.overflow() >= self._allowed_overflow

    def _do_get(self) -> ConnectionPoolEntry:
        if not self.exhausted():
            return super()._do_get()
        metrics.POOL_WAITING.inc()
        started = time.perf_counter()
        try:
            return super()._do_get()
        except PoolTimeout:
            metrics.POOL_TIMEOUTS.inc()
            raise
        finally:
            metrics.POOL_WAITING.dec()
            metrics.POOL_WAIT.observe(time.perf_counter() - started)

    def publish(self) -> None:
        metrics.publish_pool(
            size=self.size(),
            max_overflow=self._allowed_overflow,
            in_use=self.checkedout(),
            idle=self.checkedin(),
            overflow=self.overflow(),
        )


def publish_pool_figures(engine: AsyncEngine) -> None:
    pool = engine.pool
    if isinstance(pool, MeasuredPool):
        pool.publish()


async def publish_pool_figures_periodically(engine: AsyncEngine, seconds: float = 1.0) -> None:
    """Every worker's pool figures, for scrapes that another worker answers."""
    while True:
        publish_pool_figures(engine)
        await asyncio.sleep(seconds)


def pool_exhausted(engine: AsyncEngine) -> bool:
    """Whether taking a connection from the engine's pool now would mean waiting in line
    with the requests."""
    pool = engine.pool
    return isinstance(pool, MeasuredPool) and pool.exhausted()


def _discard_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """A pooled connection whose server side went away (terminated backend, restarted or
    failed-over server) is replaced before any request uses it.

    The driver learns that its socket closed as soon as the event loop reads the server's
    goodbye, so asking costs no round trip. Raising DisconnectionError makes the pool drop
    the connection and check out another (a new one, if the pool holds no live one).
    Connections broken in the middle of a request are closed too, and so are dropped at
    their next checkout, in every worker process, with no help from outside.
    """
    driver: asyncpg.Connection = dbapi_connection.driver_connection
    if driver.is_closed():
        raise DisconnectionError("the database connection was closed")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


# Where a session keeps its unit of work's audit journal (app/audit/journal.py).
JOURNAL = "audit_journal"


class UnitJournal(Protocol):
    """What the unit of work needs of its audit journal."""

    def refused(self, refusal: DomainError) -> None: ...

    async def before_commit(self, session: AsyncSession) -> None: ...

    async def after_commit(self) -> None: ...


async def commit(session: AsyncSession) -> None:
    """Commit the unit of work, its audit event appended last (it holds the chain's lock
    until the commit)."""
    journal: UnitJournal | None = session.info.get(JOURNAL)
    if journal is not None:
        await journal.before_commit(session)
    try:
        await session.commit()
    except Exception as error:
        if is_unavailable(error):
            # The COMMIT was sent, or may have been: whether it took effect is unknown.
            report(error, DatabaseErrorKind.commit_outcome_unknown)
            raise CommitOutcomeUnknown() from error
        raise
    if journal is not None:
        await journal.after_commit()


def is_unavailable(error: BaseException) -> bool:
    """Whether an error means the database could not be reached or dropped the
    connection (as opposed to refusing a statement): the request may succeed later."""
    return classify(error) in UNAVAILABLE_KINDS


async def _request_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's one unit of work: committed when the endpoint returns, else rolled back.

    Services only flush; nothing else commits. With `scope="function"` the commit happens
    before the response is sent, so a client never sees success for a write that failed.
    A refusal of access is still recorded in the audit trail, after the rollback.
    """
    factory: async_sessionmaker[AsyncSession] = request.app.state.session_factory
    async with factory() as session:
        journal: UnitJournal = request.app.state.open_journal(request)
        session.info[JOURNAL] = journal
        try:
            yield session
        except DomainError as refusal:
            if not refusal.keeps_writes:
                await _rollback_quietly(session)
            journal.refused(refusal)
            await _commit_or_unavailable(session)
            raise
        except Exception as error:
            kind = classify(error)
            if kind in UNAVAILABLE_KINDS:
                await _abandon(session, error, kind)
                report(error, kind)
                raise DatabaseUnavailable() from error
            try:
                await session.rollback()
            except Exception as rollback_error:
                rollback_kind = classify(rollback_error)
                if rollback_kind not in UNAVAILABLE_KINDS:
                    raise
                # The failure broke the connection too: the request can be tried again.
                await _abandon(session, rollback_error, rollback_kind)
                report(rollback_error, rollback_kind)
                raise DatabaseUnavailable() from error
            if kind is not None:
                # Undone by the database (a deadlock, a timeout …): nothing was saved.
                report(error, kind)
                raise DatabaseBusy() from error
            raise
        except BaseException:
            await session.rollback()
            raise
        await _commit_or_unavailable(session)


async def _commit_or_unavailable(session: AsyncSession) -> None:
    try:
        await commit(session)
    except CommitOutcomeUnknown:
        raise
    except Exception as error:
        kind = classify(error)
        if kind is None:
            raise
        if kind in UNAVAILABLE_KINDS:
            await _abandon(session, error, kind)
            report(error, kind)
            raise DatabaseUnavailable() from error
        # The database answered, so nothing was committed (a serialization failure or a
        # deadlock found at COMMIT, a lock timeout in the audit append before it).
        await _rollback_quietly(session)
        report(error, kind)
        raise DatabaseBusy() from error


async def _rollback_quietly(session: AsyncSession) -> None:
    """Roll back; on a connection that is already gone there is nothing to roll back (the
    server did), and the pool drops the connection at its next checkout."""
    try:
        await session.rollback()
    except Exception as error:
        if not is_unavailable(error):
            raise


async def _abandon(session: AsyncSession, error: BaseException, kind: DatabaseErrorKind) -> None:
    """End a unit of work that met an unavailable database."""
    if kind is DatabaseErrorKind.connection_lost:
        await _discard_connection(session, error)
    else:
        # No connection was had (none came free in time, or none could be made): asking
        # the session for one to discard would wait for it all over again.
        await _rollback_quietly(session)


async def _discard_connection(session: AsyncSession, error: BaseException) -> None:
    """A connection that failed this way is never given to another request: it may be
    closed, or open with the driver in the middle of an interrupted operation."""
    # A session that can no longer hand out its connection (it awaits a rollback) leaves
    # it to the pool, which invalidates a connection whose reset fails.
    with suppress(SQLAlchemyError, *CONNECTION_ERRORS):
        if session.in_transaction():
            await (await session.connection()).invalidate(error)
    await _rollback_quietly(session)


SessionDep = Annotated[AsyncSession, Depends(_request_session, scope="function")]


async def driver_connection(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under the session, inside the session's transaction.

    For the few hot statements where SQLAlchemy's per-statement work costs more than the
    statement itself (see docs/performance.md). JSONB parameters go in as JSON text
    (SQLAlchemy's codec on this connection) and come out decoded.
    """
    connection = await session.connection()
    pooled = await connection.get_raw_connection()
    adapted: Any = pooled.dbapi_connection
    # SQLAlchemy's asyncpg adapter sends BEGIN lazily, just before its own next statement;
    # statements sent straight to the driver before that would run in autocommit (no row
    # locks held, nothing rolled back). Open the transaction the way the adapter does.
    if adapted._transaction is None:
        async with adapted._execute_mutex:
            if adapted._transaction is None:
                try:
                    await adapted._start_transaction()
                except Exception as error:
                    # Only a broken connection fails a BEGIN. The adapter would have
                    # invalidated it; this bypassed the adapter, so it is done here.
                    await connection.invalidate(error)
                    raise DisconnectionError("the connection failed to begin") from error
    driver: asyncpg.Connection = pooled.driver_connection
    if not driver.is_in_transaction():
        raise RuntimeError("the request's transaction is not open on its connection")
    return driver


Entity = TypeVar("Entity", bound=SQLModel)


def loaded(model: type[Entity], values: Mapping[str, Any]) -> Entity:
    """An entity of a row read straight from the driver, made as the ORM's own loading
    makes one: its state set up and its values put in place, not set one by one through
    SQLModel's constructor, pydantic and the ORM's attribute events (a case file cost
    64 µs that way, 10 µs this way). Every column must be in `values`; a change to the
    entity afterwards is tracked as usual."""
    instance: Entity = instrumentation.manager_of_class(model).new_instance()
    instance.__dict__.update(values)
    return instance

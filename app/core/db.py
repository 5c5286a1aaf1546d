"""Engine, per-request session and the shared table metadata."""

from collections.abc import AsyncIterator, Iterable
from typing import Annotated, Any, Protocol

import asyncpg
from fastapi import Depends, Request
from sqlalchemy import CheckConstraint, MetaData
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.config import Settings
from app.core.errors import DomainError

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
    return create_async_engine(
        async_url(url),
        pool_size=settings.pool_size,
        max_overflow=settings.pool_max_overflow,
        pool_pre_ping=False,
        connect_args={"server_settings": {"application_name": "habeas", "timezone": "UTC"}},
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


# Where a session keeps its unit of work's audit journal (app/audit/journal.py).
JOURNAL = "audit_journal"


class UnitJournal(Protocol):
    """What the unit of work needs of its audit journal."""

    def refused(self, refusal: DomainError) -> None: ...

    async def before_commit(self, session: AsyncSession) -> None: ...


async def commit(session: AsyncSession) -> None:
    """Commit the unit of work, its audit event appended last (it holds the chain's lock
    until the commit)."""
    journal: UnitJournal | None = session.info.get(JOURNAL)
    if journal is not None:
        await journal.before_commit(session)
    await session.commit()


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
                await session.rollback()
            journal.refused(refusal)
            await commit(session)
            raise
        except BaseException:
            await session.rollback()
            raise
        await commit(session)


SessionDep = Annotated[AsyncSession, Depends(_request_session, scope="function")]


def one_of(column: str, values: Iterable[str], name: str | None = None) -> CheckConstraint:
    """A CHECK that keeps a text column within an enumeration (easier to evolve than ENUM)."""
    allowed = ", ".join(f"'{value}'" for value in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=name or f"{column}_allowed")


def all_of(column: str, values: Iterable[str], name: str | None = None) -> CheckConstraint:
    """A CHECK that keeps every element of a text[] column within an enumeration."""
    allowed = ", ".join(f"'{value}'" for value in values)
    return CheckConstraint(
        f"{column} <@ ARRAY[{allowed}]::text[]", name=name or f"{column}_allowed"
    )


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
                await adapted._start_transaction()
    driver: asyncpg.Connection = pooled.driver_connection
    if not driver.is_in_transaction():
        raise RuntimeError("the request's transaction is not open on its connection")
    return driver

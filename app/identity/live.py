"""Sessions and partners checked from memory, forgotten the moment the database says
that something changed.

Every request checked its caller's session (or partner) against the database: a round
trip that cost a case read a tenth of its time. Here each API process keeps what it has
checked, and a connection of its own LISTENs on `identity_changed`, which the database
announces in the transaction of every change that can end access (migration 0027: a
session revoked or deleted, a user's role changed or the user disabled, a partner changed
or deleted). On any notice the process forgets everything it keeps; the next request asks
the database again. Notices arrive within milliseconds of the commit, in every process.

It never fails open:
- While the listening connection is not connected (starting, lost, reconnecting), nothing
  is kept or answered from memory: every request asks the database, as before.
- When it connects again, everything kept before is forgotten (notices sent meanwhile
  were missed).
- An answer read from the database is kept only if no notice came while it was read
  (`generation`), so that a change committed during the read cannot be hidden by it.
- The connection is asked for a reply every half second; one that does not answer in
  half a second counts as lost, so a silent network failure leaves answers from memory
  for at most about a second.
- A session's expiry is checked on every request from what is kept.
"""

import asyncio
import itertools
import uuid
import weakref
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import structlog
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from app.core.embedded import asyncpg_connect_kwargs

log = structlog.get_logger(__name__)

CHANNEL = "identity_changed"
# How often the listening connection must answer, and how long it has to: a connection
# that fails silently is dropped within about a second.
CHECK_SECONDS = 0.5
# After a failed connection, the next try waits this long, doubling up to the last.
RECONNECT_SECONDS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
# Beyond this many, everything kept is forgotten and kept again as it is asked.
MOST_KEPT = 50_000


@dataclass(frozen=True)
class LiveSession:
    user_id: uuid.UUID
    role: str
    expires_at: datetime


# The tables whose changes can end access (migration 0027 announces them).
IDENTITY_TABLES = frozenset({"app_user", "user_session", "partner"})
# Where a unit of work notes that it changed one of them.
_CHANGED = "identity_changed"
# Every memory of this process (the apps of a test share one).
_IN_THIS_PROCESS: "weakref.WeakSet[LiveIdentities]" = weakref.WeakSet()


class LiveIdentities:
    """One process's memory of live sessions and partners, and its listener."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        _IN_THIS_PROCESS.add(self)
        self._connect = connect
        self._sessions: dict[uuid.UUID, LiveSession] = {}
        self._partners: dict[uuid.UUID, dict[str, Any]] = {}
        # Moved on by every notice and by every (re)connection.
        self.generation = 0
        self.listening = False
        self._task: asyncio.Task[None] | None = None
        # Set once the first connection listens (what tests and start-up may wait for).
        self.connected = asyncio.Event()

    @classmethod
    def for_database(cls, database_url: str, connect_timeout: float) -> "LiveIdentities":
        kwargs = asyncpg_connect_kwargs(database_url)

        def connect() -> Any:
            return asyncpg.connect(
                **kwargs,
                timeout=connect_timeout,
                server_settings={"application_name": "habeas-listener"},
            )

        return cls(connect)

    # What requests ask ---------------------------------------------------------------

    def session(self, session_id: uuid.UUID) -> LiveSession | None:
        return self._sessions.get(session_id) if self.listening else None

    def partner(self, partner_id: uuid.UUID) -> dict[str, Any] | None:
        return self._partners.get(partner_id) if self.listening else None

    def keep_session(self, generation: int, session_id: uuid.UUID, state: LiveSession) -> None:
        """Keep what a request read from the database, if nothing changed meanwhile."""
        if self._may_keep(generation):
            self._sessions[session_id] = state

    def keep_partner(self, generation: int, partner_id: uuid.UUID, row: dict[str, Any]) -> None:
        if self._may_keep(generation):
            self._partners[partner_id] = row

    def _may_keep(self, generation: int) -> bool:
        if not self.listening or generation != self.generation:
            return False
        if len(self._sessions) + len(self._partners) >= MOST_KEPT:
            self._forget()
        return True

    def _forget(self) -> None:
        self.generation += 1
        self._sessions.clear()
        self._partners.clear()

    def _heard(self, *_: object) -> None:
        self._forget()

    # The listener --------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="identity-listener")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    async def _listen(self) -> None:
        failures = 0
        while True:
            try:
                connection: asyncpg.Connection = await self._connect()
            except Exception as error:
                # Whatever it is, the process keeps asking the database and tries again.
                if failures == 0:
                    log.warning("identity_listener_unavailable", error=type(error).__name__)
                await asyncio.sleep(RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)])
                failures += 1
                continue
            failures = 0
            try:
                await self._while_connected(connection)
            except Exception as error:
                log.warning("identity_listener_lost", error=type(error).__name__)
            finally:
                self.listening = False
                self._forget()
                connection.terminate()

    async def _while_connected(self, connection: asyncpg.Connection) -> None:
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _: lost.set())
        # Looked up at each notice (so that a test can delay what it hears).
        await connection.add_listener(CHANNEL, lambda *notice: self._heard(*notice))
        # Listening from here on: whatever was kept before may have missed a notice.
        self._forget()
        self.listening = True
        self.connected.set()
        while not lost.is_set():
            with suppress(TimeoutError):
                async with asyncio.timeout(CHECK_SECONDS):
                    await lost.wait()
            if lost.is_set():
                return
            async with asyncio.timeout(CHECK_SECONDS):
                await connection.fetchval("SELECT 1")


# The process that makes a change forgets at its commit, before it answers: its notice
# reaches this process's listener only a few milliseconds later, and the very next
# request (a logout's client trying its token again) must already be refused.


@event.listens_for(Session, "before_flush")
def _note_changed_rows(session: Session, _flush: UOWTransaction, _instances: object) -> None:
    for instance in itertools.chain(session.dirty, session.deleted):
        table = getattr(instance, "__tablename__", None)
        if table in IDENTITY_TABLES:
            session.info[_CHANGED] = True
            return


@event.listens_for(Session, "do_orm_execute")
def _note_changing_statements(state: ORMExecuteState) -> None:
    if state.is_update or state.is_delete:
        table = getattr(state.statement, "table", None)
        if getattr(table, "name", None) in IDENTITY_TABLES:
            state.session.info[_CHANGED] = True


@event.listens_for(Session, "after_commit")
def _forget_what_was_changed(session: Session) -> None:
    if session.info.pop(_CHANGED, False):
        for memory in list(_IN_THIS_PROCESS):
            memory._forget()


@event.listens_for(Session, "after_rollback")
def _nothing_was_changed(session: Session) -> None:
    session.info.pop(_CHANGED, None)

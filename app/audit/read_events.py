"""Reads' audit events, appended in batches off the request's path.

A read that shows more than the public tier is recorded (app/audit/journal.py). Appended
in the read's own transaction, every read became a write that took the chain's one lock:
all reads of all processes queued behind it, and recording a case read cost more than
reading it. Here a read's event waits in its process for at most `audit_read_batch_ms`;
then the events waiting are appended together, in the order they came, under one lock of
the head, in one insert and one commit (`chain.append_all`).

What the trail promises stays:
- The chain is the same chain: contiguous numbers in commit order, each event hashed
  with the one before; the sync feed, which reads writes' numbers, sees no gap (a batch
  holds the head's lock until it commits, exactly as one append does).
- A read is recorded before it can be forgotten: an event is queued only once its
  request's transaction has committed, and the response is sent after that. A batch
  commits durably, so what a crash can lose is the last batch's wait (at most 50 ms of a
  process's reads), where appending each read without waiting for the disk could lose
  the last fraction of a second of every process's reads.
- No read is served unrecorded: when the queue is full (the database slow or away), a
  read waits for room, and is answered 503 if none comes in time. A batch that fails is
  tried again, its events kept in their order.
- Writes, refusals and reads that must be durable (the sync feed's deliveries) are
  appended in their own transaction, as before.
"""

import asyncio
import itertools
import os
import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime

import asyncpg
import structlog
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from app.audit.chain import EventDraft, append_all, was_appended
from app.core.config import Settings
from app.core.database_errors import classify
from app.core.db import driver_connection
from app.core.errors import DatabaseUnavailable
from app.core.metrics import AuditAppendTimer

log = structlog.get_logger(__name__)

# After a batch failed, the next try waits this long, growing to the last: reads may be
# waiting for their own event, so a database that is back is tried within half a second.
RETRY_SECONDS = (0.05, 0.1, 0.25, 0.5)
# A batch holds at most so many events (after an outage the queue can hold thousands:
# one batch of them would hold the chain's head, and hash in the event loop, for long).
MOST_IN_A_BATCH = 500


class ReadEvents:
    """The queue of one process's reads' events and the task that appends them."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        batch_seconds: float,
        limit: int,
        room_timeout_seconds: float,
    ) -> None:
        self._sessions = sessions
        self._batch_seconds = batch_seconds
        self._limit = limit
        self._room_timeout = room_timeout_seconds
        self._waiting: deque[EventDraft] = deque()
        self._arrived = asyncio.Event()
        # Set by a flush: the batch waiting goes now.
        self._hurry = asyncio.Event()
        # Notified after every batch appended: room in the queue, and progress.
        self._appended_batch = asyncio.Condition()
        # Counted since start: the events queued and those appended.
        self._queued = 0
        self._appended = 0
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        # A batch whose commit failed may have committed all the same: how many events
        # it held, and the number and hash of its last.
        self._uncertain: tuple[int, int, bytes] | None = None
        # Set while batches fail: reads then wait until their own event is in the chain.
        self._failing = False

    # The requests' side -----------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done() and not self._closing

    async def record(self, draft: EventDraft) -> None:
        """Queue a committed read's event, before its response is sent.

        While batches go through, the event waits at most a batch's time. While they fail
        (the database slow or away), or when the queue is full, the read waits until its
        own event is in the chain, and is answered 503 if that does not happen within
        `room_timeout_seconds`: what is answered while appending fails is never only in
        memory. With the appender stopped (the process closing), the event is appended
        on its own."""
        if not self.running:
            await self._append_alone(draft)
            return
        if len(self._waiting) >= self._limit:
            await self._wait_until(lambda: len(self._waiting) < self._limit)
        # The real clock, whatever a test makes of the application's.
        draft.read_at = datetime.now(UTC)
        self._waiting.append(draft)
        self._queued += 1
        position = self._queued
        self._arrived.set()
        if self._failing:
            await self._wait_until(lambda: self._appended >= position)

    async def _wait_until(self, condition: Callable[[], bool]) -> None:
        try:
            async with asyncio.timeout(self._room_timeout):
                async with self._appended_batch:
                    await self._appended_batch.wait_for(lambda: condition() or not self.running)
        except TimeoutError:
            log.warning("audit_read_events_waiting", waiting=len(self._waiting))
            raise DatabaseUnavailable() from None

    async def _append_alone(self, draft: EventDraft) -> None:
        try:
            await self._append([draft])
        except Exception as error:
            if classify(error) is None:
                raise
            raise DatabaseUnavailable() from error

    async def flush(self) -> None:
        """Return once every event queued before the call has been appended (what a
        reader of the trail in this process waits for, so that it sees its own reads)."""
        target = self._queued
        if not self.running or self._appended >= target:
            return
        self._hurry.set()
        async with self._appended_batch:
            await self._appended_batch.wait_for(
                lambda: self._appended >= target or not self.running
            )

    # The appending side ------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-read-events")

    async def close(self) -> None:
        """Append what is waiting (trying for a few seconds if the database is away), then
        stop."""
        self._closing = True
        if self._task is None:
            return
        self._arrived.set()
        try:
            async with asyncio.timeout(10):
                await self._task
        except TimeoutError:
            log.error("audit_read_events_lost_at_shutdown", count=len(self._waiting))
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        failures = 0
        while True:
            if not self._waiting:
                if self._closing:
                    return
                self._arrived.clear()
                await self._arrived.wait()
                # The first event of a batch waits the batch's time for others to join.
                if not self._closing:
                    with suppress(TimeoutError):
                        async with asyncio.timeout(self._batch_seconds):
                            await self._hurry.wait()
                self._hurry.clear()
                if not self._waiting:
                    continue
            try:
                if self._uncertain is not None:
                    await self._settle_uncertain()
                    continue
                batch = list(itertools.islice(self._waiting, MOST_IN_A_BATCH))
                await self._append(batch)
            except Exception as error:
                self._failing = True
                # Reads waiting for their own event see that it is not coming yet.
                async with self._appended_batch:
                    self._appended_batch.notify_all()
                if classify(error) is None and not isinstance(error, asyncpg.PostgresError):
                    log.exception("audit_read_batch_failed", count=len(self._waiting))
                else:
                    log.warning(
                        "audit_read_batch_failed",
                        count=len(self._waiting),
                        error=type(error).__name__,
                    )
                await asyncio.sleep(RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)])
                failures += 1
                continue
            failures = 0
            self._failing = False
            await self._done(len(batch))

    async def _done(self, count: int) -> None:
        for _ in range(count):
            self._waiting.popleft()
        self._appended += count
        async with self._appended_batch:
            self._appended_batch.notify_all()

    async def _append(self, batch: list[EventDraft]) -> None:
        started = time.perf_counter()
        async with self._sessions() as session:
            connection = await driver_connection(session)
            with AuditAppendTimer("read_batch"):
                last_seq, last_hash = await append_all(connection, batch)
                self._uncertain = (len(batch), last_seq, last_hash)
                await session.commit()
                self._uncertain = None
        log.debug("audit_read_batch", count=len(batch), ms=(time.perf_counter() - started) * 1e3)

    async def _settle_uncertain(self) -> None:
        """After a failed commit: if the batch is in the chain, it is done; else it is
        tried again. Never appended twice."""
        assert self._uncertain is not None
        count, last_seq, last_hash = self._uncertain
        async with self._sessions() as session:
            connection = await driver_connection(session)
            # The head's lock first: a commit still under way has then ended.
            await connection.fetchval("SELECT seq FROM audit_head FOR UPDATE")
            committed = await was_appended(connection, last_seq, last_hash)
        self._uncertain = None
        if committed:
            log.info("audit_read_batch_committed_after_all", count=count)
            await self._done(count)


def read_events_of(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> ReadEvents | None:
    """The process's queue of reads' events, or none where each read appends its own."""
    if not settings.audit_read_batch_ms or not settings.audit_reads:
        return None
    return ReadEvents(
        sessions,
        batch_seconds=settings.audit_read_batch_ms / 1000,
        limit=settings.audit_read_queue_limit,
        room_timeout_seconds=settings.pool_timeout_seconds,
    )


async def say_reads_unrecorded(sessions: async_sessionmaker[AsyncSession]) -> None:
    """A process started with reads unrecorded says so in the trail, so that a gap in
    what reads it shows is never silent. A database not reachable yet hears it nowhere:
    the process logs it instead."""
    log.warning("audit_reads_unrecorded")
    draft = EventDraft(
        actor_type="system",
        actor_id=None,
        actor_role="system",
        action="audit.reads_unrecorded",
        outcome="success",
        detail={"setting": "HABEAS_AUDIT_READS=false", "pid": os.getpid()},
    )
    try:
        async with sessions() as session:
            await append_all(await driver_connection(session), [draft])
            await session.commit()
    except Exception as error:
        if classify(error) is None:
            raise

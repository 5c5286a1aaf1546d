"""`habeas sync pull`: follow another Habeas's change feed into this database.

Each page is applied in one transaction together with the cursor that follows it, so a
pull stopped anywhere (killed, the network or either database gone) resumes from the last
page it committed: a page not committed is read again and applied once, a page committed
is never read again. One pull of an upstream at a time (a session lock on a connection of
its own, let go when the process ends however it ends)."""

import asyncio
import random
import uuid
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass, field

import asyncpg
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from app.audit.journal import as_system
from app.core import embedded
from app.core.clock import utcnow
from app.core.crypto import AuditKeyRing
from app.core.db import commit, is_unavailable, session_factory
from app.core.errors import DatabaseUnavailable
from app.mirrors import repository, service
from app.mirrors.service import Applied
from app.mirrors.upstream import UpstreamError, UpstreamFeed

log = structlog.get_logger(__name__)

RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 60.0


class PullRefused(Exception):
    """The pull cannot go on (the upstream refuses it, another pull holds the upstream,
    or failures went on for longer than allowed)."""


@dataclass
class Progress:
    pages: int = 0
    items: int = 0
    upserted: int = 0
    gone: int = 0
    redirected: int = 0
    unchanged: int = 0
    resets: int = 0
    retries: int = 0
    position: int = 0
    phase: str | None = None
    caught_up: bool = False
    last_error: str | None = field(default=None, repr=False)

    def add(self, applied: Applied, items: int, reset: bool) -> None:
        self.pages += 1
        self.items += items
        self.upserted += applied.upserted
        self.gone += applied.gone + applied.forgotten
        self.redirected += applied.redirected
        self.unchanged += applied.unchanged
        self.resets += int(reset)
        self.position = applied.position
        self.phase = applied.phase
        self.caught_up = applied.caught_up


def retry_wait(failures: int) -> float:
    """Full jitter: a random wait up to 1 s × 2^(failures − 1), capped at a minute."""
    ceiling = min(RETRY_MAX_SECONDS, RETRY_FIRST_SECONDS * 2 ** (failures - 1))
    return random.uniform(RETRY_FIRST_SECONDS / 2, max(ceiling, RETRY_FIRST_SECONDS))


async def pull(
    engine: AsyncEngine,
    owner_url: str,
    audit_keys: AuditKeyRing,
    upstream: UpstreamFeed,
    *,
    follow_every: float | None = None,
    max_failures: int = 8,
    on_page: Callable[[Progress], None] = lambda progress: None,
) -> Progress:
    """Pull until the upstream's feed is caught up (with `follow_every`: then keep asking
    every so many seconds, until cancelled). Failures that may pass (the network, either
    side unavailable, a stream cut off) are retried from the last committed page, after
    jittered waits; `max_failures` in a row end the pull."""
    factory = session_factory(engine)
    progress = Progress()
    async with factory() as session:
        as_system(session, audit_keys)
        held = await service.upstream_for(session, upstream.base_url, upstream.client_id, utcnow())
        await commit(session)
    holder = _Holder(owner_url, held.id)
    try:
        failures = 0
        while True:
            pages_before = progress.pages
            try:
                # Held again if its connection was lost (the database restarted).
                await holder.ensure()
                caught_up = await _one_stream(
                    factory, audit_keys, upstream, held.id, progress, on_page
                )
                failures = 0
            except UpstreamError as error:
                if not error.retry:
                    raise PullRefused(str(error)) from None
                if progress.pages > pages_before:
                    # It was getting on: a stream cut off after pages (its token expired
                    # after minutes of catch-up) is no failure in a row.
                    failures = 0
                if error.token_refused and progress.pages > pages_before:
                    continue
                failures = await _wait_after(failures, max_failures, str(error), progress)
                continue
            except Exception as error:
                # A commit whose outcome is unknown is safe to go on from: the cursor
                # committed with the page says where the next stream starts.
                if not (isinstance(error, DatabaseUnavailable) or is_unavailable(error)):
                    raise
                if progress.pages > pages_before:
                    failures = 0
                failures = await _wait_after(
                    failures, max_failures, "the database is unavailable", progress
                )
                continue
            if not caught_up:
                continue
            if follow_every is None:
                return progress
            await asyncio.sleep(follow_every)
    finally:
        await holder.close()


class _Holder:
    """The session lock that makes this the only pull of its upstream, on a connection of
    its own; taken again on a new connection if that one is lost."""

    def __init__(self, owner_url: str, upstream_id: uuid.UUID) -> None:
        self._url = owner_url
        self._upstream_id = upstream_id
        self._connection: asyncpg.Connection | None = None

    async def ensure(self) -> None:
        if self._connection is not None and not self._connection.is_closed():
            try:
                await self._connection.fetchval("SELECT 1")
                return
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await self.close()
        self._connection = await asyncpg.connect(**embedded.asyncpg_connect_kwargs(self._url))
        if not await repository.hold(self._connection, self._upstream_id):
            await self.close()
            raise PullRefused("another pull of this upstream is running")

    async def close(self) -> None:
        if self._connection is not None:
            self._connection.terminate() if self._connection.is_closed() else await (
                self._connection.close()
            )
            self._connection = None


async def _wait_after(failures: int, max_failures: int, reason: str, progress: Progress) -> int:
    failures += 1
    progress.retries += 1
    progress.last_error = reason
    if failures >= max_failures:
        raise PullRefused(f"{failures} failures in a row, the last: {reason}")
    wait = retry_wait(failures)
    log.warning("mirror_pull_retry", reason=reason, failures=failures, wait_seconds=round(wait, 1))
    await asyncio.sleep(wait)
    return failures


async def _one_stream(
    factory: async_sessionmaker[AsyncSession],
    audit_keys: AuditKeyRing,
    upstream: UpstreamFeed,
    upstream_id: uuid.UUID,
    progress: Progress,
    on_page: Callable[[Progress], None],
) -> bool:
    """One stream of the feed from the cursor committed here; whether it ended caught up."""
    async with factory() as session:
        held = await repository.upstream(session, upstream_id)
        await session.rollback()
    assert held is not None
    # The cursor each page is read from: a page applies only while the upstream's cursor
    # is still there.
    read_from = held.cursor
    caught_up = False
    async with aclosing(upstream.pages(read_from)) as pages:
        async for page in pages:
            async with factory() as session:
                as_system(session, audit_keys)
                current = await repository.upstream(session, held.id)
                assert current is not None
                applied = await service.apply_page(
                    session, current, page, utcnow(), read_from=read_from
                )
                await commit(session)
            read_from = applied.cursor
            progress.add(applied, len(page.get("items", [])), bool(page.get("reset")))
            on_page(progress)
            caught_up = applied.caught_up
    return caught_up

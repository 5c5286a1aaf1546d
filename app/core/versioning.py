"""Optimistic concurrency: every versioned record is changed only at the version the
client read (If-Match), and each change moves the version on by one."""

from datetime import datetime
from typing import Protocol

from app.core.clock import utcnow
from app.core.errors import PreconditionFailed


class Versioned(Protocol):
    version: int
    updated_at: datetime


def check_version(current: int, expected: int, *, what: str) -> None:
    """Refuse a change made against another version than the current one (412)."""
    if current != expected:
        raise PreconditionFailed(f"The {what} is at version {current}.", current_version=current)


def bump(record: Versioned, *, at: datetime | None = None) -> None:
    """Record one more change: the next version, changed now (or at the request's time)."""
    record.version += 1
    record.updated_at = at if at is not None else utcnow()

"""The one place that reads the time, so that tests and reports agree on what "now" is."""

from datetime import UTC, date, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def today() -> date:
    return utcnow().date()

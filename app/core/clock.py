"""The one place that reads the time, so that tests and reports agree on what "now" is."""

from datetime import UTC, date, datetime, timedelta, timezone


def utcnow() -> datetime:
    return datetime.now(UTC)


def today() -> date:
    return utcnow().date()


# UTC+14 (Kiribati's Line Islands) is the earliest time zone on Earth: a date that has
# begun anywhere may have begun where the event happened.
_EARLIEST_ZONE = timezone(timedelta(hours=14))


def latest_today() -> date:
    """The latest date that is "today" somewhere on Earth: an event dated today in Minsk
    at 01:00 (22:00 UTC the day before) is not in the future."""
    return utcnow().astimezone(_EARLIEST_ZONE).date()

"""Which period a scheduled report covers: pure date arithmetic, no clock and no database.

A weekly report covers an ISO week (Monday to Sunday) and describes its Sunday; a monthly
one covers a calendar month and describes its last day. A period is due once it is over:
a run on any day reports the last whole period before that day.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

WEEK = timedelta(days=7)
DAY = timedelta(days=1)


class Cadence(StrEnum):
    weekly = "weekly"
    monthly = "monthly"


@dataclass(frozen=True, order=True)
class Period:
    """The days a report covers, both included; `as_of` is the day its "held" figures
    describe: the period's last day."""

    period_from: date
    period_to: date

    @property
    def as_of(self) -> date:
        return self.period_to


def period_ending(cadence: Cadence, day: date) -> Period:
    """The period of `cadence` that contains `day`."""
    if cadence is Cadence.weekly:
        monday = day - timedelta(days=day.weekday())
        return Period(monday, monday + WEEK - DAY)
    first = day.replace(day=1)
    next_first = (first + timedelta(days=31)).replace(day=1)
    return Period(first, next_first - DAY)


def last_complete_period(cadence: Cadence, run_date: date) -> Period:
    """What a run on `run_date` reports: weekly, the ISO week before the run date's week;
    monthly, the calendar month before the run date's month."""
    current = period_ending(cadence, run_date)
    return period_ending(cadence, current.period_from - DAY)


def following(cadence: Cadence, period: Period) -> Period:
    return period_ending(cadence, period.period_to + DAY)


def periods_between(cadence: Cadence, first: Period, last: Period) -> Iterator[Period]:
    """Every period from `first` to `last`, both included, oldest first."""
    period = first
    while period <= last:
        yield period
        period = following(cadence, period)

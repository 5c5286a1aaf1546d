"""Partial dates: "2024", "2024-03" or "2024-03-15", each an interval of possible days.

Sources often give only a month or a year ("detained in spring 2021"); the precision is
kept with the date instead of inventing a day.
"""

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from functools import lru_cache
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field

_PATTERN = re.compile(r"^([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?$")
EARLIEST_YEAR = 1900
# The error type of a date after today: whether one is depends on the day it is asked.
DATE_IN_FUTURE = "date_in_future"


class Precision(StrEnum):
    day = "day"
    month = "month"
    year = "year"


@dataclass(frozen=True, slots=True)
class PartialDate:
    start: date
    precision: Precision

    @classmethod
    def parse(cls, text: str) -> "PartialDate":
        return _parsed(text)

    @classmethod
    def _parse(cls, text: str) -> "PartialDate":
        match = _PATTERN.match(text)
        if match is None:
            raise ValueError("use YYYY, YYYY-MM or YYYY-MM-DD")
        year, month, day = match.groups()
        if int(year) < EARLIEST_YEAR:
            raise ValueError(f"dates before {EARLIEST_YEAR} are not accepted")
        if day is not None:
            return cls(date(int(year), int(month), int(day)), Precision.day)
        if month is not None:
            return cls(date(int(year), int(month), 1), Precision.month)
        return cls(date(int(year), 1, 1), Precision.year)

    @property
    def end(self) -> date:
        """The last day this date may stand for."""
        if self.precision is Precision.day:
            return self.start
        if self.precision is Precision.month:
            last = calendar.monthrange(self.start.year, self.start.month)[1]
            return self.start.replace(day=last)
        return self.start.replace(month=12, day=31)

    def __str__(self) -> str:
        if self.precision is Precision.day:
            return self.start.isoformat()
        if self.precision is Precision.month:
            return self.start.strftime("%Y-%m")
        return f"{self.start.year:04d}"


@lru_cache(maxsize=65_536)
def _parsed(text: str) -> PartialDate:
    # Parsed once per distinct text: the same few thousand dates come back on every page
    # of case files (a PartialDate is immutable). A refusal is not cached; it raises.
    return PartialDate._parse(text)


def _valid_partial_date(text: str) -> str:
    PartialDate.parse(text)
    return text


# Years from 1900; days that exist, 29 February in leap years only. (Whether a date is in
# the future depends on the day asked, which no pattern can say.)
_YEAR = r"(?:19[0-9]{2}|[2-9][0-9]{3})"
_DIVISIBLE_BY_4 = r"(?:0[48]|[2468][048]|[13579][26])"
_LEAP_YEAR = rf"(?:19{_DIVISIBLE_BY_4}|[2-9][0-9]{_DIVISIBLE_BY_4}|(?:[2468][048]|[3579][26])00)"
_MONTH_DAY = (
    r"(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
    r"|(?:0[13-9]|1[0-2])-(?:29|30)"
    r"|(?:0[13578]|1[02])-31)"
)
DAY_PATTERN = rf"(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)"
# The same from 1990 (recognition decisions: the centre's practice began then).
_YEAR_FROM_1990 = r"(?:199[0-9]|[2-9][0-9]{3})"
_LEAP_YEAR_FROM_1990 = rf"(?:199[26]|[2-9][0-9]{_DIVISIBLE_BY_4}|(?:[2468][048]|[3579][26])00)"
DAY_FROM_1990_PATTERN = rf"^(?:{_YEAR_FROM_1990}-{_MONTH_DAY}|{_LEAP_YEAR_FROM_1990}-02-29)$"
PARTIAL_DATE_PATTERN = rf"^(?:{DAY_PATTERN}|{_YEAR}-(?:0[1-9]|1[0-2])|{_YEAR})$"

PartialDateText = Annotated[
    str,
    Field(pattern=PARTIAL_DATE_PATTERN, examples=["2021-08-15", "2021-08", "2021"]),
    AfterValidator(_valid_partial_date),
]

_ISO_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_ISO_MOMENT = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}")


def _iso_8601_only(form: re.Pattern[str], expected: str) -> Callable[[object], object]:
    """pydantic reads a number (or a text of digits) as seconds since 1970: `?date=0`
    would mean 1 January 1970. Only ISO 8601 is a date or a moment here."""

    def check(value: object) -> object:
        if isinstance(value, int | float) or (isinstance(value, str) and not form.match(value)):
            raise ValueError(f"use ISO 8601: {expected}")
        return value

    return check


_iso_day_only = _iso_8601_only(_ISO_DAY, "a date, YYYY-MM-DD")
_iso_moment_only = _iso_8601_only(_ISO_MOMENT, "a date and time with a zone, 2026-01-01T00:00Z")


IsoDate = Annotated[date, BeforeValidator(_iso_day_only)]


def _not_before(first: date) -> Callable[[date], date]:
    def check(value: date) -> date:
        if value < first:
            raise ValueError(f"dates before {first.isoformat()} are not accepted")
        return value

    return check


# Whole days from a first year on, their range published as a pattern.
DayFrom1900 = Annotated[
    IsoDate,
    AfterValidator(_not_before(date(EARLIEST_YEAR, 1, 1))),
    Field(json_schema_extra={"pattern": f"^{DAY_PATTERN}$"}),
]
DayFrom1990 = Annotated[
    IsoDate,
    AfterValidator(_not_before(date(1990, 1, 1))),
    Field(json_schema_extra={"pattern": DAY_FROM_1990_PATTERN}),
]
# With a time zone: a moment without one is ambiguous by hours.
IsoMoment = Annotated[AwareDatetime, BeforeValidator(_iso_moment_only)]

"""Partial dates: "2024", "2024-03" or "2024-03-15", each an interval of possible days.

Sources often give only a month or a year ("detained in spring 2021"); the precision is
kept with the date instead of inventing a day.
"""

import calendar
import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, Field

_PATTERN = re.compile(r"^([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?$")
EARLIEST_YEAR = 1900


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


def _valid_partial_date(text: str) -> str:
    PartialDate.parse(text)
    return text


PartialDateText = Annotated[
    str,
    Field(
        pattern=r"^[0-9]{4}(-[0-9]{2}(-[0-9]{2})?)?$", examples=["2021-08-15", "2021-08", "2021"]
    ),
    AfterValidator(_valid_partial_date),
]

"""Columns and constraints the feature tables share."""

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, Column, DateTime, Dialect, String, TypeDecorator, text


def moment_column(*, nullable: bool = False, index: bool = False) -> Column[datetime]:
    """A moment (`timestamptz`): every time the application stores is an aware datetime,
    and PostgreSQL keeps it as UTC whatever the session's time zone."""
    return Column(DateTime(timezone=True), nullable=nullable, index=index)


def facts_since_column() -> Column[datetime]:
    """A row's `facts_since` (migration 0015): set by a trigger; `now()` for rows written
    without it (bulk loads)."""
    return Column(DateTime(timezone=True), nullable=False, server_default=text("now()"))


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


class TextEnum(TypeDecorator[Any]):
    """A StrEnum kept as text (its values held by a `one_of` CHECK) and read back as the
    enum, so that a loaded row's fields have the types the model declares."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[StrEnum], length: int) -> None:
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: Any, dialect: Dialect) -> StrEnum | None:
        return None if value is None else self.enum(value)

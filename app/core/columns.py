"""Column types the feature tables share."""

from datetime import datetime

from sqlalchemy import Column, DateTime


def moment_column(*, nullable: bool = False, index: bool = False) -> Column[datetime]:
    """A moment (`timestamptz`): every time the application stores is an aware datetime,
    and PostgreSQL keeps it as UTC whatever the session's time zone."""
    return Column(DateTime(timezone=True), nullable=nullable, index=index)

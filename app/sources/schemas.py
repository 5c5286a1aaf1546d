import uuid
from datetime import date, datetime
from typing import Annotated, Self

from pydantic import BaseModel, Field, StrictBool, model_validator
from pydantic_core import PydanticCustomError

from app.core.clock import latest_today
from app.core.dates import DATE_IN_FUTURE, DayFrom1900
from app.core.types import INPUT, NOT_TEXT, OUTPUT, HttpUrl, Label, Text
from app.sources.models import Reliability

# The sources a record cites (each must be on record).
SourceIds = Annotated[list[uuid.UUID], Field(max_length=50)]


class SourceCreate(BaseModel):
    model_config = INPUT

    publisher: Label
    title: Label
    url: HttpUrl | None = None
    published_on: DayFrom1900 | None = None
    reliability: Reliability
    credibility: Annotated[int, Field(ge=1, le=6), NOT_TEXT]
    is_public: StrictBool
    witness: Text | None = None

    @model_validator(mode="after")
    def _published_in_the_past(self) -> Self:
        if self.published_on is not None and self.published_on > latest_today():
            raise PydanticCustomError(DATE_IN_FUTURE, "published_on is in the future")
        return self


class SourceRead(BaseModel):
    model_config = OUTPUT

    id: uuid.UUID
    publisher: str
    title: str
    url: str | None
    published_on: date | None
    reliability: Reliability
    credibility: int
    is_public: bool
    created_at: datetime
    # confidential / restricted: absent below that clearance
    witness: str | None = None
    recorded_by: uuid.UUID | None = None

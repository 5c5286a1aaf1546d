"""What our staff read of the instances this one mirrors and of their records."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.core.types import OUTPUT
from app.sync.schemas import ChangeKind, FeedPhase


class MirrorRead(BaseModel):
    model_config = ConfigDict(**OUTPUT)

    id: uuid.UUID
    base_url: str = Field(description="The upstream instance's address.")
    client_id: str = Field(description="The partner client this instance reads it as.")
    phase: str | None = Field(
        description="Where its feed is: `snapshot` (the starting copy) or `changes`; "
        "none before the first page."
    )
    caught_up: bool = Field(description="The last page read had everything committed there.")
    position: int = Field(description="The upstream's audit number of the last item applied.")
    pages: int = Field(description="Pages applied so far.")
    items: int = Field(description="Items received so far.")
    resets: int = Field(description="Times the upstream's feed started again from nothing.")
    persons: int = Field(description="Persons it shares now.")
    cases: int = Field(description="Case files it shares now.")
    last_pulled_at: datetime | None
    created_at: datetime


class MirrorList(BaseModel):
    model_config = ConfigDict(**OUTPUT)

    items: list[MirrorRead]


class MirroredKind(StrEnum):
    person = "person"
    case = "case"


class MirroredState(StrEnum):
    live = "live"
    redirect = "redirect"
    gone = "gone"


class MirroredRecord(BaseModel):
    model_config = ConfigDict(**OUTPUT)

    id: uuid.UUID = Field(description="Our id for the record (kept if it is shared again).")
    kind: MirroredKind
    upstream_id: uuid.UUID = Field(description="The upstream's id for the record.")
    state: MirroredState = Field(
        description="`live`: shared, as `record`; `redirect`: merged upstream into "
        "`merged_into`; `gone`: no longer shared (its content is deleted here)."
    )
    record: dict[str, Any] | None = Field(
        description="The record as the upstream's feed handed it, at its agreement's tier: "
        "for a person its fields and `recognition`; for a case file its fields, "
        "`status_events` and `custody`; for both, at the restricted tier, the `sources` "
        "they cite."
    )
    merged_into: uuid.UUID | None = Field(description="A redirect's target, the upstream's id.")
    merged_into_here: uuid.UUID | None = Field(
        description="A redirect's target, our id (none if it was never shared with us)."
    )
    upstream_seq: int = Field(description="The upstream's audit number this state follows.")
    received_at: datetime


class MirroredPage(BaseModel):
    model_config = ConfigDict(**OUTPUT)

    items: list[MirroredRecord]
    next: str | None = None


# What a pull relies on in an upstream's feed (app/sync/schemas.py says what it holds): the
# envelope of each item is checked; the record itself is kept as handed, not re-serialised.


class UpstreamItem(BaseModel):
    model_config = ConfigDict(extra="allow")

    seq: int
    kind: MirroredKind
    id: uuid.UUID
    change: ChangeKind
    merged_into: uuid.UUID | None = None


class UpstreamPage(BaseModel):
    model_config = ConfigDict(extra="allow")

    items: list[UpstreamItem]
    next: str
    phase: FeedPhase
    caught_up: bool
    reset: bool

"""What the change feed answers."""

import uuid
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.cases.schemas import CaseRead, StatusEventRead
from app.custody.schemas import CustodyTimeline
from app.persons.schemas import PersonRead
from app.recognition.schemas import DecisionRead


class ChangeKind(StrEnum):
    # The record as the partner may see it now: create it or replace its copy.
    upsert = "upsert"
    # The record left the partner's agreement (or was merged into one the partner may
    # not see): delete its copy.
    tombstone = "tombstone"
    # A person merged into another: their copy becomes a pointer to `merged_into`.
    redirect = "redirect"


class FeedItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seq: int = Field(
        description="The audit trail's number of the write this state follows (for items of "
        "the starting snapshot: the number the snapshot was taken at)."
    )
    kind: Literal["person", "case"]
    id: uuid.UUID
    change: ChangeKind
    person: PersonRead | None = Field(
        default=None, description="An upserted person, fields up to the agreement's tier."
    )
    case: CaseRead | None = Field(
        default=None, description="An upserted case file, fields up to the agreement's tier."
    )
    status_events: list[StatusEventRead] | None = Field(
        default=None,
        description="An upserted case file's path: every status event and claim in effective "
        "order, with its state (retracted, superseded, confirmed, rejected).",
    )
    recognition: list[DecisionRead] | None = Field(
        default=None,
        description="An upserted person's recognition decisions, newest first, each with the "
        "shared case files it covers.",
    )
    custody: CustodyTimeline | None = Field(
        default=None,
        description="An upserted case file's custody timeline (transfers, incommunicado, "
        "hunger strikes …), the entries the agreement's tier shows.",
    )
    merged_into: uuid.UUID | None = Field(
        default=None, description="For a redirect: the person this one was merged into."
    )


class FeedPhase(StrEnum):
    snapshot = "snapshot"
    changes = "changes"


class FeedPage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[FeedItem]
    next: str = Field(
        description="Where to continue: follow it to read on; keep it to resume later (it is "
        "never empty: a caught-up feed answers with its own position)."
    )
    phase: FeedPhase = Field(
        description="`snapshot` while the starting copy of everything shared is handed over "
        "(a new partner, or after its agreement changed), then `changes`."
    )
    caught_up: bool = Field(
        description="Every change committed when this page was read has been handed over."
    )
    reset: bool = Field(
        description="Drop your copy: the feed starts again with a snapshot, as the database "
        "no longer holds the position of your cursor (it was restored from a backup)."
    )

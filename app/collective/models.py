import uuid
from collections.abc import Mapping
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import ARRAY, Column, Text, Uuid
from sqlmodel import Field, SQLModel

from app.cases.statuses import Status
from app.core.clock import utcnow
from app.core.columns import TextEnum, moment_column, one_of
from app.core.dates import Precision
from app.core.ids import new_id


class CollectiveKind(StrEnum):
    pardon = "pardon"
    amnesty = "amnesty"
    exchange = "exchange"
    deportation = "deportation"
    other = "other"


# Which transitions each kind of collective event may apply (a pardon pardons; an
# exchange or an amnesty releases, pardons or deports).
KIND_FITS: Mapping[CollectiveKind, frozenset[Status]] = {
    CollectiveKind.pardon: frozenset({Status.pardoned}),
    CollectiveKind.amnesty: frozenset({Status.released, Status.pardoned}),
    CollectiveKind.exchange: frozenset({Status.released, Status.pardoned, Status.deported}),
    CollectiveKind.deportation: frozenset({Status.deported}),
    CollectiveKind.other: frozenset(Status),
}


class CollectiveEvent(SQLModel, table=True):
    """A batch ("52 pardoned and expelled to Lithuania"): one transition for many case files,
    applied all or nothing. The status events it made point back to it."""

    __tablename__ = "collective_event"
    __table_args__ = (
        one_of("kind", list(CollectiveKind)),
        one_of("to_status", list(Status)),
        one_of("effective_precision", list(Precision)),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    title: str = Field(sa_type=Text)
    kind: CollectiveKind = Field(sa_type=TextEnum(CollectiveKind, 20))
    to_status: Status = Field(sa_type=TextEnum(Status, 20))
    effective_date: date
    effective_precision: Precision = Field(sa_type=TextEnum(Precision, 5))
    destination_country: str | None = Field(default=None, max_length=2)
    note: str | None = Field(default=None, sa_type=Text)
    source_ids: list[uuid.UUID] = Field(
        default_factory=list, sa_column=Column(ARRAY(Uuid), nullable=False, server_default="{}")
    )
    # "Pardoned and expelled": after the transition, each person was deported there.
    expelled_to: str | None = Field(default=None, max_length=2)
    case_file_count: int
    recorded_at: datetime = Field(default_factory=utcnow, sa_column=moment_column())
    recorded_by: uuid.UUID | None = None
    # Set once, when every event it made was retracted (the events keep the reason).
    retraction_reason: str | None = Field(default=None, sa_type=Text)
    retracted_at: datetime | None = Field(default=None, sa_column=moment_column(nullable=True))
    retracted_by: uuid.UUID | None = None

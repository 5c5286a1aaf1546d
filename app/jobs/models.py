"""The record of each scheduled audit integrity check: when it ran, what it found, which
checkpoint it signed and exported. The job health figures (and the metrics built on them)
read the latest; the history shows since when a problem has been seen."""

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Column, Index
from sqlalchemy import Text as SqlText
from sqlmodel import Field, SQLModel

from app.core.columns import moment_column
from app.core.ids import new_id


class IntegrityCheck(SQLModel, table=True):
    __tablename__ = "integrity_check"
    __table_args__ = (Index("ix_integrity_check_finished_at", "finished_at"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    started_at: datetime = Field(sa_column=moment_column())
    finished_at: datetime = Field(sa_column=moment_column())
    # The chain verified: every event, link, hash, time and signed checkpoint.
    ok: bool
    events_checked: int = Field(sa_column=Column(BigInteger, nullable=False))
    head_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    first_bad_seq: int | None = Field(default=None, sa_column=Column(BigInteger))
    # What the verifier found wrong (it names events and checkpoints, never their content).
    problem: str | None = Field(default=None, sa_type=SqlText)
    checkpoint_seq: int | None = Field(default=None, sa_column=Column(BigInteger))
    checkpoint_file: str | None = Field(default=None, sa_type=SqlText)
    # The run could not finish (no checkpoint signed or exported), though the chain may
    # have verified: e.g. the export directory was not writable.
    error: str | None = Field(default=None, sa_type=SqlText)

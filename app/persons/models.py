"""Person tables. Tiers (DESIGN §4) are noted per column; the access feature enforces them."""

import uuid
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Field, SQLModel

from app.core.clock import utcnow
from app.core.columns import TextEnum, all_of, facts_since_column, moment_column, one_of
from app.core.dates import Precision
from app.core.ids import new_id
from app.recognition.criteria import RecognitionStatus


class Gender(StrEnum):
    female = "female"
    male = "male"
    other = "other"
    unknown = "unknown"


class NameKind(StrEnum):
    legal = "legal"
    transliteration = "transliteration"
    alias = "alias"
    former = "former"
    hidden = "hidden"


class SpecialRisk(StrEnum):
    disability = "disability"
    serious_illness = "serious_illness"
    age_60_plus = "age_60_plus"
    mental_disorder = "mental_disorder"


class Person(SQLModel, table=True):
    __tablename__ = "person"
    __table_args__ = (
        one_of("gender", list(Gender)),
        one_of("birth_date_precision", list(Precision)),
        one_of("recognition_status", list(RecognitionStatus)),
        all_of("special_risk", list(SpecialRisk)),
        Index("ix_person_citizenships", "citizenships", postgresql_using="gin"),
        # Whose counted facts changed after a moment (app/reports/basis.py).
        Index("ix_person_facts_since", "facts_since"),
        # The persons merged into one (the change feed moves their redirects with it).
        Index(
            "ix_person_merged_into",
            "merged_into",
            postgresql_where=text("merged_into IS NOT NULL"),
        ),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    # public: year; restricted: the full date
    birth_date: date | None = None
    birth_date_precision: Precision | None = Field(default=None, sa_type=TextEnum(Precision, 5))
    gender: Gender = Field(default=Gender.unknown, sa_type=TextEnum(Gender, 10))
    citizenships: list[str] = Field(
        default_factory=list,
        sa_column=Column(ARRAY(String(2)), nullable=False, server_default="{}"),
    )
    region: str | None = Field(default=None, max_length=6)
    occupation: str | None = Field(default=None, sa_type=Text)
    affiliations: list[str] = Field(
        default_factory=list, sa_column=Column(ARRAY(Text), nullable=False, server_default="{}")
    )
    # restricted
    special_risk: list[str] = Field(
        default_factory=list, sa_column=Column(ARRAY(Text), nullable=False, server_default="{}")
    )
    publish_consent: bool
    health: str | None = Field(default=None, sa_type=Text)
    lawyer: str | None = Field(default=None, sa_type=Text)
    notes: str | None = Field(default=None, sa_type=Text)
    # confidential: AES-GCM envelopes (app/core/crypto.py) bound to table, column and row
    relatives: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    contacts: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    address: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    # The staff member who documented the person; they keep access to what they wrote.
    recorded_by: uuid.UUID | None = None
    # A projection of the latest recognition decision, kept by the recognition feature.
    recognition_status: RecognitionStatus = Field(
        default=RecognitionStatus.not_assessed,
        sa_type=TextEnum(RecognitionStatus, 30),
        index=True,
    )
    # Set while the person is merged into another (app/merges): the record is kept as it
    # was, holds nothing, and is read only as a redirect to that one.
    merged_into: uuid.UUID | None = Field(default=None, foreign_key="person.id")
    version: int = Field(default=1)
    created_at: datetime = Field(default_factory=utcnow, sa_column=moment_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=moment_column())
    # When the facts a status report counts last changed; kept by a trigger, which keeps
    # the earlier versions for reports "as known at" a moment before (migration 0015).
    facts_since: datetime = Field(default_factory=utcnow, sa_column=facts_since_column())


class PersonName(SQLModel, table=True):
    __tablename__ = "person_name"
    __table_args__ = (
        one_of("kind", list(NameKind)),
        Index(
            "ix_person_name_search_key_trgm",
            "search_key",
            postgresql_using="gin",
            postgresql_ops={"search_key": "gin_trgm_ops"},
        ),
        Index("ix_person_name_search_tokens", "search_tokens", postgresql_using="gin"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    person_id: uuid.UUID = Field(foreign_key="person.id", index=True)
    position: int
    value: str = Field(sa_type=Text)
    script: str = Field(max_length=4)
    language: str | None = Field(default=None, max_length=3)
    kind: NameKind = Field(sa_type=TextEnum(NameKind, 20))
    # public flag: a name the family asked to keep out of public lists is false
    is_public: bool
    # The romanised skeleton that name search matches against (see app/persons/names.py).
    search_key: str = Field(sa_type=Text)
    # The skeleton's words: a query whose words are all among them is found by an index
    # lookup that stays fast at any population size.
    search_tokens: list[str] = Field(
        default_factory=list, sa_column=Column(ARRAY(Text), nullable=False)
    )


class NameToken(SQLModel, table=True):
    """Every word key any name has had (app/persons/names.py), under each of its typo
    variants (names.typo_variants): the duplicate check finds a recorded word a letter
    away from a given one by looking the given word's variants up here, some hundred
    thousand words rather than millions of names. A key no name holds any more is taken
    out when a person's names are replaced."""

    __tablename__ = "name_token"

    variant: str = Field(sa_column=Column(Text, primary_key=True))
    token: str = Field(sa_column=Column(Text, primary_key=True))


# The lexicon filled from the names themselves (a migration, loads that write names by
# COPY); the same variants as names.typo_variants.
SQL_FILL_NAME_TOKENS = """
INSERT INTO name_token (variant, token)
SELECT DISTINCT variant, token
FROM (SELECT DISTINCT token FROM person_name, unnest(search_tokens) AS token
      WHERE token NOT LIKE '=%' AND length(token) >= 4) AS tokens,
     LATERAL (SELECT token AS variant
              UNION ALL
              SELECT left(token, i - 1) || substr(token, i + 1)
              FROM generate_series(1, length(token)) AS i) AS variants
ON CONFLICT DO NOTHING
"""


class PersonDistinction(SQLModel, table=True):
    """A caller's statement that two persons whose names look alike are different people
    (made at intake, `confirmed_distinct_from`): kept, shown with both, and the pair is
    not proposed as a duplicate again. Stored once a pair, the lower id first."""

    __tablename__ = "person_distinction"
    __table_args__ = (
        CheckConstraint("person_id < other_person_id", name="ordered_pair"),
        Index("ix_person_distinction_other_person_id", "other_person_id"),
    )

    person_id: uuid.UUID = Field(foreign_key="person.id", primary_key=True)
    other_person_id: uuid.UUID = Field(foreign_key="person.id", primary_key=True)
    stated_by: uuid.UUID | None = None
    stated_at: datetime = Field(default_factory=utcnow, sa_column=moment_column())


class PersonDuplicateScan(SQLModel, table=True):
    """One scan of the whole database for persons recorded twice (app/persons/duplicates.py):
    what it compared, how long it took; the latest one's candidates are kept."""

    __tablename__ = "person_duplicate_scan"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    started_at: datetime = Field(sa_column=moment_column())
    finished_at: datetime = Field(sa_column=moment_column())
    threshold: float
    persons: int
    # blocks: groups of persons whose names share two words in some reading
    blocks: int
    # blocks too large to compare even by birth year (their pairs were not compared)
    blocks_skipped: int
    pairs_compared: int
    candidates: int


class PersonDuplicateCandidate(SQLModel, table=True):
    """A pair of persons the latest scan scored at or above its threshold (lower id first);
    read back scored again with what they hold now."""

    __tablename__ = "person_duplicate_candidate"
    __table_args__ = (
        CheckConstraint("person_id < other_person_id", name="ordered_pair"),
        Index("ix_person_duplicate_candidate_rank", "scan_id", "score", "person_id"),
    )

    scan_id: uuid.UUID = Field(
        sa_column=Column(
            Uuid, ForeignKey("person_duplicate_scan.id", ondelete="CASCADE"), primary_key=True
        )
    )
    person_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("person.id"), primary_key=True))
    other_person_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("person.id"), primary_key=True)
    )
    score: float

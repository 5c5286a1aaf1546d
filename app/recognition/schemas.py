import uuid
from datetime import date, datetime
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from app.core.clock import latest_today
from app.core.dates import DATE_IN_FUTURE, DayFrom1990
from app.core.types import INPUT, OUTPUT, UNIQUE_ITEMS, Label, Text
from app.recognition.criteria import (
    ALLOWS_EXCLUSION,
    CRITERIA,
    REQUIRES_CRITERIA,
    REQUIRES_EXCLUSION,
    ExclusionCode,
    RecognitionStatus,
    Wording,
)
from app.sources.schemas import SourceIds

CriterionCode = Annotated[
    str,
    Field(max_length=10, examples=["G3.1a", "PACE-a"], json_schema_extra={"enum": list(CRITERIA)}),
]


def _decision_schema(schema: dict[str, Any]) -> None:
    """Publish the rules between status and the other fields: some decisions must cite a
    criterion; a withdrawal states its reason (rationale and exclusion code); only some
    decisions may give an exclusion code."""
    schema["allOf"] = [
        {
            "if": {
                "properties": {"status": {"enum": sorted(REQUIRES_CRITERIA)}},
                "required": ["status"],
            },
            "then": {"properties": {"criteria": {"minItems": 1}}, "required": ["criteria"]},
        },
        {
            "if": {
                "properties": {"status": {"enum": sorted(REQUIRES_EXCLUSION)}},
                "required": ["status"],
            },
            "then": {
                "properties": {
                    "rationale": {"type": "string", "pattern": "\\S"},
                    "exclusion_code": {"enum": list(ExclusionCode)},
                },
                "required": ["rationale", "exclusion_code"],
            },
        },
        {
            "if": {
                "properties": {"status": {"not": {"enum": sorted(ALLOWS_EXCLUSION)}}},
                "required": ["status"],
            },
            "then": {"not": {"required": ["exclusion_code"]}},
        },
    ]


class DecisionCreate(BaseModel):
    model_config = ConfigDict(**INPUT, json_schema_extra=_decision_schema)

    status: RecognitionStatus
    criteria: Annotated[list[CriterionCode], Field(max_length=len(CRITERIA)), UNIQUE_ITEMS] = []
    co_signers: Annotated[list[Label], Field(max_length=30)] = []
    # From 1990 (the centre's practice began then), and not after today.
    decided_on: DayFrom1990
    rationale: Text | None = None
    exclusion_reason: Text | None = None
    exclusion_code: Annotated[
        ExclusionCode | None,
        Field(
            description="Why a recognition is withdrawn (required then), or why someone"
            " persecuted is not recognised"
        ),
    ] = None
    source_ids: SourceIds = []
    case_file_ids: Annotated[
        list[uuid.UUID] | None,
        Field(
            max_length=100,
            description="The case files of the person this decision covers. Left out: the"
            " person's open case files (not released, pardoned, deported or dead in custody),"
            " and for a withdrawal also those whose current recognition is political_prisoner"
            " or politically_persecuted. Each must be a case file of this person.",
        ),
        UNIQUE_ITEMS,
    ] = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        unknown = [code for code in self.criteria if code not in CRITERIA]
        if unknown:
            raise ValueError(
                f"unknown criteria: {', '.join(unknown)}; known: {', '.join(CRITERIA)}"
            )
        if len(set(self.criteria)) != len(self.criteria):
            raise ValueError("criteria lists a code twice")
        if self.status in REQUIRES_CRITERIA and not self.criteria:
            raise ValueError(f"a '{self.status}' decision must cite at least one criterion")
        if self.decided_on > latest_today():
            raise PydanticCustomError(DATE_IN_FUTURE, "decided_on is in the future")
        if self.status in REQUIRES_EXCLUSION:
            if self.rationale is None or not self.rationale.strip():
                raise ValueError(f"a '{self.status}' decision must state its rationale")
            if self.exclusion_code is None:
                raise ValueError(
                    f"a '{self.status}' decision must give an exclusion_code; known: "
                    + ", ".join(ExclusionCode)
                )
        elif "exclusion_code" in self.model_fields_set and self.status not in ALLOWS_EXCLUSION:
            raise ValueError(f"a '{self.status}' decision has no exclusion_code")
        if self.case_file_ids is not None and len(set(self.case_file_ids)) != len(
            self.case_file_ids
        ):
            raise ValueError("case_file_ids lists a case file twice")
        return self


class DecisionRead(BaseModel):
    model_config = OUTPUT

    id: uuid.UUID
    person_id: uuid.UUID
    version: int
    status: RecognitionStatus
    criteria: list[str]
    decided_on: date
    recorded_at: datetime
    case_file_ids: list[uuid.UUID] = Field(
        description="The case files this decision covers, of those the caller may see"
    )
    # restricted: absent below that clearance
    co_signers: list[str] | None = None
    rationale: str | None = None
    exclusion_reason: str | None = None
    exclusion_code: ExclusionCode | None = None
    source_ids: list[uuid.UUID] | None = None
    decided_by: uuid.UUID | None = None


class RecognitionRead(BaseModel):
    """A person's recognition: the current decision and every decision, newest first."""

    model_config = OUTPUT

    person_id: uuid.UUID
    status: RecognitionStatus
    version: int
    current: DecisionRead | None
    history: list[DecisionRead]


class CriteriaSourceRead(BaseModel):
    model_config = OUTPUT

    id: str
    title: str
    part: str
    url: str
    note: str


class CriterionRead(BaseModel):
    model_config = OUTPUT

    code: str
    source: str = Field(description="The id of one of the sources")
    text: str
    wording: Wording = Field(
        description="official: the source's own words; paraphrase: ours, to be checked"
    )
    note: str | None


class ExclusionCodeRead(BaseModel):
    model_config = OUTPUT

    code: ExclusionCode
    text: str


class CriteriaRead(BaseModel):
    """The criteria a recognition decision may cite, with their version and sources, and
    the exclusion codes a withdrawal gives."""

    model_config = OUTPUT

    version: str
    sources: list[CriteriaSourceRead]
    criteria: list[CriterionRead]
    exclusion_codes: list[ExclusionCodeRead]


def decision_read(decision: Any, case_file_ids: list[uuid.UUID]) -> DecisionRead:
    """A stored decision (a RecognitionDecision row) with the case files it covers."""
    return DecisionRead.model_validate(
        {
            **{
                name: getattr(decision, name)
                for name in DecisionRead.model_fields
                if name != "case_file_ids"
            },
            "case_file_ids": case_file_ids,
        }
    )


class ProposalRead(BaseModel):
    """A partner's proposal about a person: not a decision, which only a coordinator takes."""

    model_config = OUTPUT

    id: uuid.UUID
    person_id: uuid.UUID
    partner_id: uuid.UUID = Field(description="The partner organisation that proposed it")
    status: RecognitionStatus
    case_file_ids: list[uuid.UUID]
    criteria: list[str]
    rationale: str | None
    proposed_at: datetime


class ProposalsRead(BaseModel):
    model_config = OUTPUT

    person_id: uuid.UUID
    proposals: list[ProposalRead] = Field(description="Newest first")

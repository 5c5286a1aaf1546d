import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    model_validator,
)
from pydantic_core import PydanticCustomError

from app.access.principal import Tier
from app.access.tiers import shows_name
from app.core.clock import latest_today
from app.core.dates import DATE_IN_FUTURE, PartialDate, PartialDateText, Precision
from app.core.types import (
    INPUT,
    NAME_SEARCH_FORMAT,
    OUTPUT,
    UNIQUE_ITEMS,
    CountryCode,
    Label,
    LanguageCode,
    RegionCode,
    ScriptCode,
    Text,
    not_nullable,
)
from app.persons.models import Gender, NameKind, Person, PersonName, SpecialRisk
from app.recognition.criteria import RecognitionStatus

# A name searched for is cleaned and normalised as a stored name is, so that both meet.
MIN_SEARCH_LETTERS = 3
_LETTER = re.compile(r"[^\W\d_]")


def _enough_letters(value: str) -> str:
    if len(_LETTER.findall(value)) < MIN_SEARCH_LETTERS:
        raise ValueError(f"give at least {MIN_SEARCH_LETTERS} letters of a name")
    return value


def _name_search_schema(schema: dict[str, Any]) -> None:
    # A format of the API's own rather than a pattern: no regular expression means "a
    # letter of any script" alike in JSON Schema's dialect and in Python's.
    schema["format"] = NAME_SEARCH_FORMAT


NameSearch = Annotated[
    Label,
    StringConstraints(min_length=MIN_SEARCH_LETTERS, max_length=200),
    AfterValidator(_enough_letters),
    Field(json_schema_extra=_name_search_schema),
]


@dataclass(frozen=True)
class PersonFilters:
    citizenship: str | None = None
    recognition_status: str | None = None


class NameInput(BaseModel):
    # Published as well: a hidden name has is_public false.
    model_config = ConfigDict(
        **INPUT,
        json_schema_extra={
            "if": {"properties": {"kind": {"const": "hidden"}}, "required": ["kind"]},
            "then": {"properties": {"is_public": {"const": False}}, "required": ["is_public"]},
        },
    )

    value: Label
    script: ScriptCode
    language: LanguageCode | None = None
    kind: NameKind
    is_public: StrictBool = True

    @model_validator(mode="after")
    def _hidden_names_are_never_public(self) -> Self:
        if self.kind is NameKind.hidden and self.is_public:
            raise ValueError("a hidden name cannot be public")
        return self


class Relative(BaseModel):
    model_config = INPUT

    name: Label
    relation: Label
    contact: Label | None = None


class Contact(BaseModel):
    model_config = INPUT

    kind: Literal["phone", "email", "messenger", "post", "other"]
    value: Label
    note: Text | None = None


def _not_in_future(value: str | None) -> None:
    if value is not None and PartialDate.parse(value).start > latest_today():
        raise PydanticCustomError(DATE_IN_FUTURE, "birth_date is in the future")


class PersonFields(BaseModel):
    """Fields a client may write; absent on update means unchanged."""

    model_config = INPUT

    birth_date: PartialDateText | None = None
    gender: Gender = Gender.unknown
    citizenships: Annotated[list[CountryCode], Field(max_length=5), UNIQUE_ITEMS] = []
    region: RegionCode | None = None
    occupation: Label | None = None
    affiliations: Annotated[list[Label], Field(max_length=20)] = []
    special_risk: Annotated[list[SpecialRisk], Field(max_length=4), UNIQUE_ITEMS] = []
    health: Text | None = None
    lawyer: Label | None = None
    notes: Text | None = None
    relatives: Annotated[list[Relative], Field(max_length=50)] | None = None
    contacts: Annotated[list[Contact], Field(max_length=50)] | None = None
    address: Text | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _not_in_future(self.birth_date)
        for name, values in (
            ("citizenships", self.citizenships),
            ("special_risk", self.special_risk),
        ):
            if values is not None and len(set(values)) != len(values):
                raise ValueError(f"{name} lists a value twice")
        return self


class PersonCreate(PersonFields):
    names: Annotated[list[NameInput], Field(min_length=1, max_length=30)]
    # Families may ask that a person is not listed publicly; the caseworker must say.
    publish_consent: StrictBool
    confirmed_distinct_from: Annotated[
        list[uuid.UUID],
        Field(
            max_length=100,
            description=(
                "Persons the duplicate check proposed who are someone else: the caller "
                "states it, the statement is kept and shown with both, and the pair is not "
                "proposed again. Without it, a person whose best candidate scores at or "
                "above the threshold is refused with 409."
            ),
        ),
        UNIQUE_ITEMS,
    ] = []

    @model_validator(mode="after")
    def _distinct_from_each_once(self) -> Self:
        if len(set(self.confirmed_distinct_from)) != len(self.confirmed_distinct_from):
            raise ValueError("confirmed_distinct_from lists a person twice")
        return self


class MatchName(BaseModel):
    model_config = INPUT

    value: Label


class PersonMatchQuery(BaseModel):
    """A would-be person: what intake knows of them."""

    model_config = INPUT

    names: Annotated[list[MatchName], Field(min_length=1, max_length=30)]
    birth_date: PartialDateText | None = None
    gender: Gender = Gender.unknown
    citizenships: Annotated[list[CountryCode], Field(max_length=5), UNIQUE_ITEMS] = []
    region: RegionCode | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _not_in_future(self.birth_date)
        if len(set(self.citizenships)) != len(self.citizenships):
            raise ValueError("citizenships lists a value twice")
        return self


class MatchReasonRead(BaseModel):
    model_config = OUTPUT

    kind: Literal["name", "birth_date", "gender", "citizenship", "region"]
    verdict: Literal["same_spelling", "similar", "agrees", "near", "conflicts"]
    effect: float = Field(
        description="For a name, the likeness of the two names (0–1); for a fact, what it "
        "added to the score or took from it."
    )
    given: str | None = Field(default=None, description="The name given, for a name")
    recorded: str | None = Field(
        default=None, description="The recorded name it was compared with, for a name"
    )


# What a person always has: a PATCH may leave these out but not clear them.
NOT_CLEARABLE = (
    "names",
    "publish_consent",
    "gender",
    "citizenships",
    "affiliations",
    "special_risk",
)


class PersonUpdate(PersonFields):
    names: Annotated[list[NameInput], Field(min_length=1, max_length=30)] | None = None
    confirmed_distinct_from: Annotated[
        list[uuid.UUID],
        Field(
            max_length=100,
            description=(
                "With new names: persons the duplicate check proposed who are someone else "
                "(as at creation). Without it, a rename whose best candidate scores at or "
                "above the threshold is refused with 409."
            ),
        ),
        UNIQUE_ITEMS,
    ] = []
    publish_consent: StrictBool | None = None
    gender: Gender | None = None  # type: ignore[assignment]
    citizenships: Annotated[list[CountryCode], Field(max_length=5), UNIQUE_ITEMS] | None = None  # type: ignore[assignment]
    affiliations: Annotated[list[Label], Field(max_length=20)] | None = None  # type: ignore[assignment]
    special_risk: Annotated[list[SpecialRisk], Field(max_length=4), UNIQUE_ITEMS] | None = None  # type: ignore[assignment]

    model_config = ConfigDict(
        **INPUT, json_schema_extra=lambda schema: not_nullable(schema, NOT_CLEARABLE)
    )

    @model_validator(mode="after")
    def _distinct_from_each_once(self) -> Self:
        if len(set(self.confirmed_distinct_from)) != len(self.confirmed_distinct_from):
            raise ValueError("confirmed_distinct_from lists a person twice")
        return self

    @model_validator(mode="after")
    def _required_fields_not_cleared(self) -> Self:
        for name in NOT_CLEARABLE:
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class NameRead(BaseModel):
    model_config = OUTPUT

    value: str
    script: str
    language: str | None
    kind: NameKind
    is_public: bool


class PersonRead(BaseModel):
    model_config = OUTPUT

    id: uuid.UUID
    names: list[NameRead]
    gender: Gender
    citizenships: list[str]
    region: str | None
    occupation: str | None
    affiliations: list[str]
    recognition_status: RecognitionStatus
    version: int
    created_at: datetime
    updated_at: datetime
    # Fields above the public tier are absent unless the caller's clearance allows them.
    birth_date: str | None = None
    special_risk: list[SpecialRisk] | None = None
    publish_consent: bool | None = None
    health: str | None = None
    lawyer: str | None = None
    notes: str | None = None
    relatives: list[Relative] | None = None
    contacts: list[Contact] | None = None
    address: str | None = None
    confirmed_distinct_from: list[uuid.UUID] | None = None


class PersonMatch(BaseModel):
    model_config = OUTPUT

    person: PersonRead
    score: float = Field(ge=0, le=1)
    likely_duplicate: bool = Field(description="The score is at or above the threshold")
    reasons: list[MatchReasonRead]


class PersonMatches(BaseModel):
    model_config = OUTPUT

    threshold: float = Field(
        description="At or above it, intake refuses the would-be person unless the caller "
        "states they are someone else (`confirmed_distinct_from`)"
    )
    candidates: list[PersonMatch]


SEALED_FIELDS = ("relatives", "contacts", "address")


def person_read(
    person: Person,
    names: Sequence[PersonName],
    clearance: Tier,
    *,
    confidential: Mapping[str, Any],
    distinct_from: Sequence[uuid.UUID] = (),
) -> PersonRead:
    """The person as the caller may see them. Names the family asked to keep private are
    confidential: left out below that tier. Sealed values come opened in `confidential`."""
    birth = (
        str(PartialDate(person.birth_date, Precision(person.birth_date_precision)))
        if person.birth_date is not None and person.birth_date_precision
        else None
    )
    return PersonRead.model_validate(
        {
            **{name: getattr(person, name) for name in _AS_STORED},
            **{name: confidential.get(name) for name in SEALED_FIELDS},
            "birth_date": birth,
            "confirmed_distinct_from": list(distinct_from),
            # (the rows themselves: NameRead is read from their attributes in the same pass)
            "names": [
                name for name in names if shows_name(is_public=name.is_public, clearance=clearance)
            ],
        }
    )


# The fields of PersonRead read as the person's row holds them.
_AS_STORED = tuple(
    name
    for name in PersonRead.model_fields
    if name not in ("names", "birth_date", "confirmed_distinct_from", *SEALED_FIELDS)
)


class DuplicateScanRead(BaseModel):
    model_config = OUTPUT

    id: uuid.UUID
    started_at: datetime
    finished_at: datetime
    threshold: float
    persons: int
    blocks: int
    blocks_skipped: int = Field(
        description="Blocks too large to compare even by birth year: their pairs were not"
    )
    pairs_compared: int
    candidates: int


class PersonDuplicate(BaseModel):
    """A pair the latest scan found, scored again with what both hold now."""

    model_config = OUTPUT

    person: PersonRead
    other_person: PersonRead
    score: float = Field(ge=0, le=1, description="The score now")
    scanned_score: float = Field(ge=0, le=1, description="The score when the scan found it")
    likely_duplicate: bool
    reasons: list[MatchReasonRead]


class PersonDuplicates(BaseModel):
    model_config = OUTPUT

    scan: DuplicateScanRead | None = Field(
        description="The scan the pairs come from; none before the first"
    )
    items: list[PersonDuplicate]
    next: str | None = None

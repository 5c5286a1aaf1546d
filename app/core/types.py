"""Constrained input types shared by the schemas. Every free text has a length limit and
no control characters (PostgreSQL refuses NUL, and control characters hide content)."""

import re
from typing import Annotated, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTROL_OR_NEWLINE = re.compile(r"[\x00-\x1f\x7f]")


def _single_line(value: str) -> str:
    if _CONTROL_OR_NEWLINE.search(value):
        raise ValueError("control characters and line breaks are not allowed")
    return value


def _multi_line(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("control characters are not allowed")
    return value


Label = Annotated[
    str, StringConstraints(min_length=1, max_length=300), AfterValidator(_single_line)
]
Text = Annotated[str, StringConstraints(max_length=20_000), AfterValidator(_multi_line)]
CountryCode = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z]{2}$"),
    Field(description="ISO 3166-1 alpha-2", examples=["BY"]),
]
RegionCode = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z]{2}-[A-Z0-9]{1,3}$"),
    Field(description="ISO 3166-2", examples=["BY-HM"]),
]
LanguageCode = Annotated[
    str, StringConstraints(pattern=r"^[a-z]{2,3}$"), Field(description="ISO 639", examples=["be"])
]
ScriptCode = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z][a-z]{3}$"),
    Field(description="ISO 15924", examples=["Cyrl"]),
]
HttpUrl = Annotated[
    str,
    StringConstraints(max_length=2000, pattern=r"^https?://[^\s]+$"),
    AfterValidator(_single_line),
]

INPUT = ConfigDict(extra="forbid", str_strip_whitespace=False)
OUTPUT = ConfigDict(extra="forbid", from_attributes=True)


class PartialUpdate(BaseModel):
    """Input of a PATCH: an absent field stays as it is; sending null is refused, because
    none of these fields may be cleared."""

    model_config = INPUT

    @model_validator(mode="after")
    def _no_nulls(self) -> Self:
        cleared = [name for name in self.model_fields_set if getattr(self, name) is None]
        if cleared:
            raise ValueError(f"cannot be null: {', '.join(sorted(cleared))}")
        return self

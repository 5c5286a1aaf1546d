"""Constrained input types shared by the schemas. Every text has a length limit, is stored
in Unicode normal form C (so that "é" composed and decomposed are one name), and holds no
character that hides content or makes one record look like another."""

import re
import unicodedata
from collections.abc import Collection, Mapping
from decimal import Decimal
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

# Refused in every text, by Unicode general category: controls (C0 and C1; PostgreSQL
# refuses NUL), format characters (bidirectional overrides and isolates, zero-width space,
# joiners, soft hyphen, byte order mark…), line and paragraph separators, private-use and
# unassigned code points (as of the Unicode version of Python's unicodedata), and lone
# surrogates (which no database encoding can store). The zero-width (non-)joiners that
# Persian and Indic scripts use inside words are refused as well: the names kept here are
# Cyrillic and Latin, and in a name a joiner only makes two records look alike.
REFUSED_CATEGORIES: Mapping[str, str] = {
    "Cc": "a control character",
    "Cf": "an invisible or direction-changing character",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
    "Co": "a private-use character",
    "Cn": "an unassigned code point",
    "Cs": "a lone surrogate",
}
# The line breaks and tab that free text keeps (they are controls, category Cc).
LINE_BREAKS = frozenset("\n\r\t")
# Refused in names and labels too: characters that display as nothing although their
# category is not Cf (Default_Ignorable_Code_Point in Unicode's DerivedCoreProperties):
# the combining grapheme joiner, Hangul fillers, Khmer inherent vowels and the variation
# selectors. Free text keeps them (an emoji's variation selector, say).
INVISIBLE_IN_NAMES = frozenset(
    {0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x3164, 0xFFA0}
    | set(range(0x180B, 0x1810))
    | set(range(0xFE00, 0xFE10))
    | set(range(0xE0100, 0xE01F0))
)


def _refusal(character: str, *, keeps: Collection[str], invisible: Collection[int]) -> str | None:
    if character in keeps:
        return None
    reason = REFUSED_CATEGORIES.get(unicodedata.category(character))
    if reason is None and ord(character) in invisible:
        reason = "an invisible character"
    if reason is None:
        return None
    name = unicodedata.name(character, "")
    shown = f"U+{ord(character):04X}" + (f" ({name})" if name else "")
    return f"contains {shown}, {reason}, which is not allowed here"


def _clean_text(value: str, *, keeps: Collection[str], invisible: Collection[int]) -> str:
    for character in value:
        refusal = _refusal(character, keeps=keeps, invisible=invisible)
        if refusal is not None:
            raise ValueError(refusal)
    return unicodedata.normalize("NFC", value)


def _clean_label(value: str) -> str:
    """A name or label: one line, nothing invisible or direction-changing, in NFC."""
    return _clean_text(value, keeps=(), invisible=INVISIBLE_IN_NAMES)


def _clean_label_if_text(value: object) -> object:
    return _clean_label(value) if isinstance(value, str) else value


def _clean_free_text(value: str) -> str:
    """Free text: as a label, but line breaks and tabs are kept and so are variation
    selectors."""
    return _clean_text(value, keeps=LINE_BREAKS, invisible=())


# The formats of text the API accepts, published in the OpenAPI document (JSON Schema
# lets an API name its own formats). A pattern could state the same rule only as a class
# of some 700 ranges of code points: too heavy for every client and fuzzer that reads it.
LABEL_FORMAT = "habeas-label"
TEXT_FORMAT = "habeas-text"
NAME_SEARCH_FORMAT = "habeas-name-search"
CHARGE_ITEM_FORMAT = "habeas-charge-item"
TEXT_FORMATS = {
    LABEL_FORMAT: "One line of text in Unicode NFC, with no control, format (invisible or"
    " direction-changing), private-use or unassigned character, line or paragraph"
    " separator, variation selector or other character that displays as nothing.",
    TEXT_FORMAT: "Text in Unicode NFC with no control character but line breaks and tabs,"
    " and no format (invisible or direction-changing), private-use or unassigned"
    " character, line or paragraph separator.",
    NAME_SEARCH_FORMAT: f"A {LABEL_FORMAT} with at least three letters, of any script.",
    CHARGE_ITEM_FORMAT: "An item of a criminal-code reference: one or two letters of any"
    " script (d, г) or a number of one to three digits (1), without quotes.",
}


def _label_schema(schema: dict[str, Any]) -> None:
    schema["format"] = LABEL_FORMAT


def _text_schema(schema: dict[str, Any]) -> None:
    schema["format"] = TEXT_FORMAT


# The character rules are enforced by the validators, whose messages name the character.
Label = Annotated[
    str,
    StringConstraints(min_length=1, max_length=300),
    AfterValidator(_clean_label),
    Field(json_schema_extra=_label_schema),
]
Text = Annotated[
    str,
    StringConstraints(max_length=20_000),
    AfterValidator(_clean_free_text),
    Field(json_schema_extra=_text_schema),
]
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
# An address as it travels: visible ASCII (a name in another script is sent
# percent-encoded, a host in punycode), so that it looks like what it is.
HttpUrl = Annotated[
    str,
    StringConstraints(max_length=2000, pattern=r"^https?://[!-~]+$"),
    # Before the pattern, so that a refused character is named rather than a mismatch.
    BeforeValidator(_clean_label_if_text),
]

# An amount of money, as text so that no float rounds it: up to 999,999,999,999.99.
MONEY_PATTERN = r"^(?:0|[1-9][0-9]{0,11})(?:\.[0-9]{1,2})?$"
_MONEY = re.compile(MONEY_PATTERN)


def _money_text(value: object) -> object:
    if not isinstance(value, str) or not _MONEY.fullmatch(value):
        raise ValueError('give the amount as text, e.g. "1500.00"')
    return value


Money = Annotated[
    Decimal,
    BeforeValidator(_money_text),
    WithJsonSchema({"type": "string", "pattern": MONEY_PATTERN, "examples": ["1500.00"]}),
]


def _number_not_text(value: object) -> object:
    # JSON's 12 and 12.0 are one integer (as in JSON Schema); "12" and true are not.
    if isinstance(value, str | bool):
        raise ValueError("give a number, not text or true/false")
    return value


# After the bounds in an Annotated integer (`Annotated[int, Field(ge=0), NOT_TEXT]`), so
# that the bounds stay in its JSON schema.
NOT_TEXT = BeforeValidator(_number_not_text)
# For lists whose items must differ (published as uniqueItems; each model checks it).
UNIQUE_ITEMS = Field(json_schema_extra={"uniqueItems": True})

INPUT = ConfigDict(extra="forbid", str_strip_whitespace=False)
OUTPUT = ConfigDict(extra="forbid", from_attributes=True)


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A model's JSON schema with its own definitions put in place, to nest it in another
    model's schema (whose definitions it cannot reach)."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(definitions[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def details_rule(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema that a `details` object of this model must meet, as the `then` of a
    rule on a kind or status: its schema, and present when the model has a required field."""
    rule: dict[str, Any] = {"properties": {"details": inline_schema(model)}}
    if any(field.is_required() for field in model.model_fields.values()):
        rule["required"] = ["details"]
    return rule


def not_nullable(schema: dict[str, Any], names: Collection[str]) -> None:
    """Publish `names` as properties that may be left out but not sent as null (their
    Python type says `| None` only so that "absent" has a value)."""
    for name in names:
        prop = schema.get("properties", {}).get(name)
        if prop is None or "anyOf" not in prop:
            continue
        kept = [option for option in prop["anyOf"] if option.get("type") != "null"]
        del prop["anyOf"]
        if len(kept) == 1:
            prop.update(kept[0])
        else:
            prop["anyOf"] = kept
        if prop.get("default", ...) is None:
            del prop["default"]


def _no_property_nullable(schema: dict[str, Any]) -> None:
    not_nullable(schema, list(schema.get("properties", {})))


class PartialUpdate(BaseModel):
    """Input of a PATCH: an absent field stays as it is; sending null is refused, because
    none of these fields may be cleared."""

    model_config = ConfigDict(**INPUT, json_schema_extra=_no_property_nullable)

    @model_validator(mode="after")
    def _no_nulls(self) -> Self:
        cleared = [name for name in self.model_fields_set if getattr(self, name) is None]
        if cleared:
            raise ValueError(f"cannot be null: {', '.join(sorted(cleared))}")
        return self

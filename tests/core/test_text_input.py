"""Names and free text (issue 10): stored in Unicode normal form C, and never holding a
character that hides content or makes one record look like another. Every class of such
characters is refused on the fields of every kind of record, with a 422 that names the
field and the character, and nothing written."""

import json
import unicodedata
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import TypeAdapter, ValidationError

from app.access.principal import Role
from app.core.types import Label, Text
from app.identity.schemas import Username
from tests.auth import SignedIn
from tests.conftest import row_counts
from tests.factories import API, SOURCE, case_body, create_case, create_person, event, person_body

# One example of each class, by what it is.
REFUSED_EVERYWHERE = {
    "C0 control (escape)": "\x1b",
    "C1 control (next line)": "\x85",
    "C1 control (control sequence introducer)": "\x9b",
    "right-to-left override": "\u202e",
    "left-to-right embedding": "\u202a",
    "first strong isolate": "\u2068",
    "Arabic letter mark": "\u061c",
    "right-to-left mark": "\u200f",
    "zero-width space": "\u200b",
    "zero-width non-joiner": "\u200c",
    "zero-width joiner": "\u200d",
    "word joiner": "\u2060",
    "byte order mark": "\ufeff",
    "soft hyphen": "\u00ad",
    "line separator": "\u2028",
    "paragraph separator": "\u2029",
    "private use": "\ue000",
    "unassigned": "\u0378",
    "lone surrogate": "\ud800",
}
# Invisible, yet not format characters: refused in names and labels, kept in free text.
INVISIBLE_IN_NAMES = {
    "Hangul filler": "\u3164",
    "variation selector 16": "\ufe0f",
    "combining grapheme joiner": "\u034f",
}
LINE_BREAKS = ("\n", "\r", "\t")
DECOMPOSED = "Jose\u0301 Mu\u0308ller"
COMPOSED = "José Müller"


def code_point(character: str) -> str:
    return f"U+{ord(character):04X}"


@dataclass
class Target:
    """A text field of an input, and how to send a value in it."""

    name: str
    method: str
    url: str
    body: Callable[[str], dict[str, Any]]
    loc: list[Any]
    free_text: bool = False
    headers: dict[str, str] = field(default_factory=dict)


def targets(person: dict[str, Any], case: dict[str, Any]) -> list[Target]:
    person_url = f"{API}/persons/{person['id']}"
    some_case_ids = [str(uuid.uuid4())]
    return [
        Target(
            "person name",
            "POST",
            f"{API}/persons",
            lambda text: person_body(
                names=[{"value": f"Ганна{text}Сініца", "script": "Cyrl", "kind": "legal"}]
            ),
            ["body", "names", 0, "value"],
        ),
        Target(
            "person occupation",
            "POST",
            f"{API}/persons",
            lambda text: person_body(occupation=f"teach{text}er"),
            ["body", "occupation"],
        ),
        Target(
            "relative's name",
            "POST",
            f"{API}/persons",
            lambda text: person_body(relatives=[{"name": f"Ян{text}ка", "relation": "son"}]),
            ["body", "relatives", 0, "name"],
        ),
        Target(
            "person notes",
            "POST",
            f"{API}/persons",
            lambda text: person_body(notes=f"Seen in court{text} on Monday."),
            ["body", "notes"],
            free_text=True,
        ),
        Target(
            "person occupation, changed",
            "PATCH",
            person_url,
            lambda text: {"occupation": f"teach{text}er"},
            ["body", "occupation"],
            headers={"If-Match": f'"{person["version"]}"'},
        ),
        Target(
            "charge description",
            "POST",
            f"{API}/cases",
            lambda text: case_body(
                person["id"],
                charges=[{"code": "BY-CC", "article": "342", "description": f"riot{text}"}],
            ),
            ["body", "charges", 0, "description"],
        ),
        Target(
            "court",
            "POST",
            f"{API}/cases",
            lambda text: case_body(
                person["id"],
                [
                    event("detained", "2021-01-01"),
                    event("sentenced", "2021-06", details={"court": f"Minsk{text}"}),
                ],
            ),
            ["body", "status_history", 1, "sentenced", "details", "court"],
        ),
        Target(
            "detention place note",
            "POST",
            f"{API}/cases",
            lambda text: case_body(
                person["id"], detention_places=[{"place": "SIZO-1", "note": f"cell{text} 4"}]
            ),
            ["body", "detention_places", 0, "note"],
            free_text=True,
        ),
        Target(
            "status event note",
            "POST",
            f"{API}/cases/{case['id']}/status-events",
            lambda text: event("sentenced", "2022-01-01", note=f"verdict{text} read"),
            # The status names the schema the event was read with (a discriminated union).
            ["body", "sentenced", "note"],
            free_text=True,
            headers={"If-Match": f'"{case["version"]}"'},
        ),
        Target(
            "source publisher",
            "POST",
            f"{API}/sources",
            lambda text: {**SOURCE, "publisher": f"Monitor{text}"},
            ["body", "publisher"],
        ),
        Target(
            "source address",
            "POST",
            f"{API}/sources",
            lambda text: {**SOURCE, "url": f"https://monitor.example/{text}12"},
            ["body", "url"],
        ),
        Target(
            "source witness",
            "POST",
            f"{API}/sources",
            lambda text: {**SOURCE, "witness": f"Neighbour{text} saw it"},
            ["body", "witness"],
            free_text=True,
        ),
        Target(
            "collective event title",
            "POST",
            f"{API}/collective-events",
            lambda text: collective_body(some_case_ids, title=f"Pardon{text} of 3"),
            ["body", "title"],
        ),
        Target(
            "collective event note",
            "POST",
            f"{API}/collective-events",
            lambda text: collective_body(some_case_ids, note=f"decree{text} 12"),
            ["body", "note"],
            free_text=True,
        ),
        Target(
            "recognition co-signer",
            "POST",
            f"{person_url}/recognition",
            lambda text: {**RECOGNITION, "co_signers": [f"Partner{text} Centre"]},
            ["body", "co_signers", 0],
            headers={"If-Match": '"0"'},
        ),
        Target(
            "recognition rationale",
            "POST",
            f"{person_url}/recognition",
            lambda text: {**RECOGNITION, "rationale": f"peaceful{text} protest"},
            ["body", "rationale"],
            free_text=True,
            headers={"If-Match": '"0"'},
        ),
    ]


RECOGNITION = {
    "status": "political_prisoner",
    "criteria": ["G3.1a"],
    "decided_on": "2022-03-01",
}


def collective_body(case_ids: list[str], **overrides: Any) -> dict[str, Any]:
    return {
        "title": "Expulsion",
        "kind": "deportation",
        "effective_date": "2025-09-11",
        "to_status": "deported",
        "destination_country": "LT",
        "confidence": "confirmed",
        "case_file_ids": case_ids,
        **overrides,
    }


async def send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """JSON with every non-ASCII character escaped, so that a lone surrogate (which no
    UTF-8 encoder takes) reaches the server as a client could send it."""
    return await client.request(
        method,
        url,
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def assert_refused(response: httpx.Response, loc: list[Any], character: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    errors = response.json()["errors"]
    named = [error for error in errors if error["loc"] == loc]
    assert named, errors
    if unicodedata.category(character) == "Cs":
        # Refused by pydantic's own string check before ours, which cannot show it.
        assert named[0]["type"] in ("string_unicode", "value_error"), named[0]
    else:
        assert code_point(character) in named[0]["msg"], named[0]


@pytest.mark.parametrize(
    "character", list(REFUSED_EVERYWHERE.values()), ids=list(REFUSED_EVERYWHERE)
)
async def test_every_text_field_refuses_the_character(
    client: httpx.AsyncClient, db: asyncpg.Connection, character: str
) -> None:
    person = await create_person(client)
    case = await create_case(client, person["id"])
    before = await row_counts(db)
    for target in targets(person, case):
        response = await send(
            client, target.method, target.url, target.body(character), target.headers
        )
        assert_refused(response, target.loc, character)
    assert await row_counts(db) == before


@pytest.mark.parametrize(
    "character", list(INVISIBLE_IN_NAMES.values()), ids=list(INVISIBLE_IN_NAMES)
)
async def test_names_refuse_invisible_characters_that_free_text_keeps(
    client: httpx.AsyncClient, db: asyncpg.Connection, character: str
) -> None:
    person = await create_person(client)
    case = await create_case(client, person["id"])
    for target in targets(person, case):
        if target.free_text:
            continue
        before = await row_counts(db)
        response = await send(
            client, target.method, target.url, target.body(character), target.headers
        )
        assert_refused(response, target.loc, character)
        assert await row_counts(db) == before
    notes = f"Got the letter {character}, thanks"
    kept = await create_person(client, notes=notes)
    assert kept["notes"] == notes


@pytest.mark.parametrize(
    "character",
    [c for name, c in REFUSED_EVERYWHERE.items() if name != "lone surrogate"],
    ids=[name for name in REFUSED_EVERYWHERE if name != "lone surrogate"],
)
async def test_a_name_searched_for_is_held_to_the_same_rules(
    client: httpx.AsyncClient, character: str
) -> None:
    response = await client.get(f"{API}/persons", params={"q": f"Labano{character}vich"})
    assert_refused(response, ["query", "q"], character)


async def test_partner_names_refuse_the_same_characters(
    sign_in_as: Callable[..., Awaitable[SignedIn]], db: asyncpg.Connection
) -> None:
    admin = await sign_in_as(Role.admin)
    before = await row_counts(db)
    for character in [*REFUSED_EVERYWHERE.values(), *INVISIBLE_IN_NAMES.values()]:
        body = {
            "name": f"Memo{character}rial",
            "scopes": ["sync:read"],
            "auth_method": "client_secret",
        }
        response = await send(admin.client, "POST", f"{API}/partners", body)
        assert_refused(response, ["body", "name"], character)
    assert await row_counts(db) == before


async def test_free_text_keeps_its_line_breaks_and_tabs(client: httpx.AsyncClient) -> None:
    notes = "First visit.\nSecond visit:\r\n\tlawyer admitted."
    person = await create_person(client, notes=notes)
    assert person["notes"] == notes
    read = (await client.get(f"{API}/persons/{person['id']}")).json()
    assert read["notes"] == notes
    for character in LINE_BREAKS:
        body = person_body(occupation=f"teach{character}er")
        response = await client.post(f"{API}/persons", json=body)
        assert_refused(response, ["body", "occupation"], character)


async def test_text_is_stored_composed_so_that_both_spellings_are_one_name(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    assert DECOMPOSED != COMPOSED
    assert unicodedata.normalize("NFC", DECOMPOSED) == COMPOSED
    names = [{"value": DECOMPOSED, "script": "Latn", "kind": "legal"}]
    person = await create_person(
        client, names=names, occupation=DECOMPOSED, notes=f"{DECOMPOSED}\nvisited"
    )
    read = (await client.get(f"{API}/persons/{person['id']}")).json()
    assert [name["value"] for name in read["names"]] == [COMPOSED]
    assert read["occupation"] == COMPOSED
    assert read["notes"] == f"{COMPOSED}\nvisited"
    stored = await db.fetchval(
        "SELECT value FROM person_name WHERE person_id = $1", uuid.UUID(person["id"])
    )
    assert stored == COMPOSED

    for spelling in (DECOMPOSED, COMPOSED):
        found = (await client.get(f"{API}/persons", params={"q": spelling})).json()
        assert [item["id"] for item in found["items"]] == [person["id"]], spelling

    source = await client.post(f"{API}/sources", json={**SOURCE, "publisher": DECOMPOSED})
    assert source.status_code == 201, source.text
    assert source.json()["publisher"] == COMPOSED
    assert (
        await db.fetchval(
            "SELECT publisher FROM source WHERE id = $1", uuid.UUID(source.json()["id"])
        )
        == COMPOSED
    )


# The shared types themselves, and the account names (whose creation has its own tests).


@pytest.mark.parametrize(
    "character",
    [*REFUSED_EVERYWHERE.values(), *INVISIBLE_IN_NAMES.values()],
    ids=[*REFUSED_EVERYWHERE, *INVISIBLE_IN_NAMES],
)
def test_labels_and_account_names_refuse_the_character(character: str) -> None:
    # Sign-in takes any name and fails it like a wrong password instead (tests/identity).
    for kind in (Label, Username):
        with pytest.raises(ValidationError):
            TypeAdapter(kind).validate_python(f"iv{character}an")


def test_the_refusal_names_the_character() -> None:
    with pytest.raises(ValidationError) as refused:
        TypeAdapter(Label).validate_python("Ivan\u202eovich")
    assert "U+202E (RIGHT-TO-LEFT OVERRIDE)" in str(refused.value)


def test_free_text_refuses_all_but_line_breaks_tabs_and_visible_characters() -> None:
    free_text = TypeAdapter(Text)
    for character in REFUSED_EVERYWHERE.values():
        with pytest.raises(ValidationError):
            free_text.validate_python(f"a{character}b")
    for character in [*INVISIBLE_IN_NAMES.values(), *LINE_BREAKS]:
        assert free_text.validate_python(f"a{character}b") == f"a{character}b"
    assert free_text.validate_python(DECOMPOSED) == COMPOSED

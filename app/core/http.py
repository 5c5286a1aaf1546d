"""HTTP conventions shared by the routers: ETags, If-Match and Idempotency-Key, and what
the application holds for every request (settings, key rings) with its type."""

import re
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response
from pydantic import BaseModel

from app.core.config import Settings
from app.core.crypto import AuditKeyRing, DataKeyRing
from app.core.errors import PreconditionRequired, UnprocessableInput, UnusableIfMatch

# What create_app() puts on the application's state, read back with its type. Dependencies
# are `async def` although they do not wait: FastAPI runs plain `def` dependencies in a
# thread pool, which costs more than reading an attribute.


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def audit_keys_of(request: Request) -> AuditKeyRing:
    keys: AuditKeyRing = request.app.state.audit_keys
    return keys


def data_keys_of(request: Request) -> DataKeyRing:
    keys: DataKeyRing = request.app.state.data_keys
    return keys


async def _audit_keys(request: Request) -> AuditKeyRing:
    return audit_keys_of(request)


async def _data_keys(request: Request) -> DataKeyRing:
    return data_keys_of(request)


# The ring that signs the audit trail and its checkpoints.
AuditKeys = Annotated[AuditKeyRing, Depends(_audit_keys)]
# The ring that seals and opens confidential values, for the services that handle them.
DataKeys = Annotated[DataKeyRing, Depends(_data_keys)]

# A version as a strong ETag: what records answer with and If-Match carries back.
ETAG_PATTERN = r'^"([0-9]{1,9})"$'
_STRONG_VERSION_ETAG = re.compile(ETAG_PATTERN)
_WEAK_VERSION_ETAG = re.compile(r'^W/"([0-9]{1,9})"$')


def etag(version: int) -> str:
    return f'"{version}"'


def required_version(if_match: str | None) -> int:
    """The version the caller last read, from a strong `If-Match` ETag.

    `*` is refused: it would let a client overwrite changes it never saw. A weak ETag
    never matches (If-Match compares strongly, RFC 9110 §13.1.1): it is refused with a
    refusal that says so, and names the strong tag it stands for.
    """
    if if_match is None or not if_match.strip():
        raise PreconditionRequired("Send If-Match with the ETag of the version you read.")
    given = if_match.strip()
    match = _STRONG_VERSION_ETAG.fullmatch(given)
    if match is not None:
        return int(match.group(1))
    weak = _WEAK_VERSION_ETAG.fullmatch(given)
    if weak is not None:
        raise UnusableIfMatch(
            f"If-Match compares ETags strongly, so a weak ETag ({weak.group(0)}) never "
            f'matches. Send the strong ETag the record was read with: "{weak.group(1)}" '
            "(a proxy on the way may have weakened it)."
        )
    if given == "*":
        raise UnusableIfMatch(
            "If-Match: * would change the record whatever its version: send the ETag of the"
            ' version you read, such as "3".'
        )
    raise UnusableIfMatch('If-Match must be one strong ETag, such as "3".')


IfMatch = Annotated[str | None, Header(alias="If-Match", description="ETag of the version read")]


# Visible ASCII, spaces only inside (HTTP drops them at either end), at most 255.
IDEMPOTENCY_KEY_PATTERN = r"^[!-~](?:[ -~]{0,253}[!-~])?$"
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


async def required_idempotency_key(
    key: Annotated[
        str,
        Header(
            alias="Idempotency-Key",
            description="Required: the same key with the same body is applied once and answered "
            "the same way (kept 24 h); e.g. a UUID made for the request.",
            json_schema_extra={"pattern": IDEMPOTENCY_KEY_PATTERN, "maxLength": 255},
        ),
    ],
) -> str:
    """An Idempotency-Key that the operation cannot do without."""
    checked = await idempotency_key(key)
    assert checked is not None
    return checked


async def idempotency_key(
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Repeat a write safely (kept 24 h): e.g. a UUID made for the request.",
            json_schema_extra={"pattern": IDEMPOTENCY_KEY_PATTERN, "maxLength": 255},
        ),
    ] = None,
) -> str | None:
    # Checked here rather than by the header's declared pattern so that the refusal
    # says what a key may be.
    if key is None:
        return None
    if not _IDEMPOTENCY_KEY.fullmatch(key):
        raise UnprocessableInput(
            "Idempotency-Key must be 1 to 255 visible ASCII characters (spaces only inside)."
        )
    return key


def model_response(
    model: BaseModel,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    exclude: Any = None,
) -> Response:
    """Serialise an already valid response model once.

    FastAPI would validate a returned model against `response_model` all over again; the
    route still declares `response_model` for the OpenAPI schema. `exclude` leaves out the
    fields above the caller's clearance (app/access/tiers.py).
    """
    return Response(
        model.model_dump_json(exclude=exclude),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )


# For the OpenAPI document: the headers a route's answer carries.
ETAG_HEADER: dict[str, Any] = {
    "ETag": {
        "description": "The record's version: send it back as If-Match to change it",
        "schema": {"type": "string", "pattern": ETAG_PATTERN},
    }
}
LOCATION_HEADER: dict[str, Any] = {
    "Location": {
        "description": "The path of the record made",
        "schema": {"type": "string"},
    }
}


def documented_headers(status: int, *headers: dict[str, Any]) -> dict[int | str, Any]:
    """`responses=` for a route whose `status` answer carries these headers."""
    merged: dict[str, Any] = {}
    for header in headers:
        merged |= header
    return {status: {"headers": merged}}

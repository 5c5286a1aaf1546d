"""HTTP conventions shared by the routers: ETags, If-Match and Idempotency-Key."""

from typing import Annotated

from fastapi import Header

from app.core.errors import PreconditionFailed, PreconditionRequired, UnprocessableInput


def etag(version: int) -> str:
    return f'"{version}"'


def required_version(if_match: str | None) -> int:
    """The version the caller last read, from a strong `If-Match` ETag.

    `*` is refused: it would let a client overwrite changes it never saw.
    """
    if if_match is None or not if_match.strip():
        raise PreconditionRequired("Send If-Match with the ETag of the version you read.")
    value = if_match.strip()
    if value.startswith("W/") or not (value.startswith('"') and value.endswith('"')):
        raise PreconditionFailed('If-Match must be one strong ETag such as "3".')
    try:
        return int(value[1:-1])
    except ValueError as exc:
        raise PreconditionFailed("If-Match does not name a version of this resource.") from exc


IfMatch = Annotated[str | None, Header(alias="If-Match", description="ETag of the version read")]


def idempotency_key(
    key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", description="Repeat a create safely (kept 24 h)."),
    ] = None,
) -> str | None:
    if key is None:
        return None
    if not 1 <= len(key) <= 255 or not key.isprintable():
        raise UnprocessableInput("Idempotency-Key must be 1 to 255 printable characters.")
    return key

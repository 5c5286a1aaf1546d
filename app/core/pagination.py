"""Opaque keyset cursors and the list envelope shared by every collection endpoint."""

import base64
import binascii
import hashlib
import json
import math
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, Generic, Protocol, TypeVar

from fastapi import Query, Request
from pydantic import BaseModel, BeforeValidator, ConfigDict

from app.core.errors import InvalidCursor, UnprocessableInput
from app.core.http import settings_of

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    model_config = ConfigDict(extra="forbid")

    items: list[T]
    next: str | None = None


class PageRequest(BaseModel):
    limit: int
    cursor: str | None


def digits_only(value: object) -> object:
    """A page size is written in digits: "9 " or "+9" is not one (pydantic would read
    them as 9, where the contract says integer)."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("limit is a whole number written in digits")
    return value


async def page_request(
    request: Request,
    limit: Annotated[
        int | None,
        Query(ge=1, description="Page size; the maximum is fixed."),
        BeforeValidator(digits_only),
    ] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> PageRequest:
    settings = settings_of(request)
    if limit is not None and limit > settings.max_page_size:
        raise UnprocessableInput(
            f"limit may be at most {settings.max_page_size}.", max_page_size=settings.max_page_size
        )
    return PageRequest(limit=limit or settings.default_page_size, cursor=cursor)


def query_fingerprint(filters: dict[str, Any]) -> str:
    """A short hash of a query's filters: a cursor only continues the query that made it."""
    canonical = json.dumps(filters, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def encode_cursor(position: Sequence[Any], fingerprint: str) -> str:
    raw = json.dumps({"p": list(position), "q": fingerprint}, default=str, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, fingerprint: str, arity: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursor("The cursor is not one this server issued.") from exc
    if (
        not isinstance(payload, dict)
        or payload.get("q") != fingerprint
        or not isinstance(payload.get("p"), list)
        or len(payload["p"]) != arity
    ):
        raise InvalidCursor("The cursor belongs to another query or is damaged.")
    return list(payload["p"])


def next_link(request: Request, cursor: str | None) -> str | None:
    if cursor is None:
        return None
    # Relative, so that no Host header the client sent ends up in the link.
    following = request.url.include_query_params(cursor=cursor)
    return f"{following.path}?{following.query}"


def cursor_uuid(value: Any) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise InvalidCursor("The cursor is damaged.") from exc


def cursor_int(value: Any) -> int:
    """A positive integer position (a sequence number)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidCursor("The cursor is damaged.")
    return value


def cursor_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, float | int):
        raise InvalidCursor("The cursor is damaged.")
    try:
        number = float(value)
    except OverflowError as exc:
        raise InvalidCursor("The cursor is damaged.") from exc
    if not math.isfinite(number):
        raise InvalidCursor("The cursor is damaged.")
    return number


class _HasId(Protocol):
    id: uuid.UUID


Row = TypeVar("Row", bound=_HasId)


Item = TypeVar("Item")


def id_position(row: _HasId) -> list[str]:
    """What a cursor remembers of a list ordered by id."""
    return [str(row.id)]


def trim_page(
    rows: list[Item],
    *,
    limit: int,
    fingerprint: str,
    position: Callable[[Item], Sequence[Any]],
) -> tuple[list[Item], str | None]:
    """A page from up to `limit + 1` fetched rows: the first `limit`, and a cursor after the
    last of them when there were more (`position` says what the cursor remembers)."""
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(position(rows[-1]), fingerprint) if more else None


async def id_keyset_page(
    fetch: Callable[[uuid.UUID | None, int], Awaitable[list[Row]]],
    query: dict[str, Any],
    *,
    cursor: str | None,
    limit: int,
) -> tuple[list[Row], str | None]:
    """One page of rows ordered by id: `fetch(after_id, n)` returns up to n rows after the
    id; the cursor is bound to `query`, so it cannot be replayed against another one."""
    fingerprint = query_fingerprint(query)
    after = cursor_uuid(decode_cursor(cursor, fingerprint, 1)[0]) if cursor else None
    rows = await fetch(after, limit + 1)
    return trim_page(rows, limit=limit, fingerprint=fingerprint, position=id_position)

"""Schemathesis hooks for the contract run: the API's own string formats
(app/core/types.py), generated as the API defines them."""

import re
import uuid

import schemathesis
from hypothesis import strategies as st

from app.core.http import IDEMPOTENCY_KEY_PATTERN
from app.core.types import (
    INVISIBLE_IN_NAMES,
    LABEL_FORMAT,
    LINE_BREAKS,
    REFUSED_CATEGORIES,
    TEXT_FORMAT,
)

_REFUSED = list(REFUSED_CATEGORIES)
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)

schemathesis.openapi.format(
    LABEL_FORMAT,
    st.text(
        st.characters(
            exclude_categories=_REFUSED,  # type: ignore[arg-type]
            exclude_characters="".join(chr(point) for point in INVISIBLE_IN_NAMES),
        ),
        min_size=1,
        max_size=60,
    ),
)
schemathesis.openapi.format(
    TEXT_FORMAT,
    st.text(
        st.characters(
            exclude_categories=_REFUSED,  # type: ignore[arg-type]
            include_characters="".join(LINE_BREAKS),
        ),
        max_size=200,
    ),
)


@schemathesis.hook
def map_headers(
    context: schemathesis.HookContext, headers: dict[str, str] | None
) -> dict[str, str] | None:
    """A client makes a new Idempotency-Key for each request it means (and sends it again
    only with the same request). A generated key that is well formed is replaced by a new
    one, so that two different generated requests never share a key; a malformed one is
    kept, to be refused."""
    if headers and _IDEMPOTENCY_KEY.match(str(headers.get("Idempotency-Key", ""))):
        headers["Idempotency-Key"] = str(uuid.uuid4())
    return headers

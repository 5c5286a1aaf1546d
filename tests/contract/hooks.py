"""Schemathesis hooks for the contract run: the API's own string formats
(app/core/types.py), generated as the API defines them; a fresh Idempotency-Key for each
request, as a client makes one; and the refusals of schema-valid input that only the
server can judge, recognised by their machine-readable type, never by status alone."""

import re
import uuid
from typing import Any

import schemathesis
from hypothesis import strategies as st
from schemathesis.core.failures import Failure
from schemathesis.core.transport import Response

from app.core.dates import DATE_IN_FUTURE
from app.core.errors import (
    PROBLEM_TYPE_BASE,
    InvalidKeySet,
    MergedReference,
    SelfMerge,
    UnknownReference,
)
from app.core.http import IDEMPOTENCY_KEY_PATTERN
from app.core.types import (
    CHARGE_ITEM_FORMAT,
    INVISIBLE_IN_NAMES,
    LABEL_FORMAT,
    LINE_BREAKS,
    NAME_SEARCH_FORMAT,
    REFUSED_CATEGORIES,
    TEXT_FORMAT,
)
from app.custody.schemas import END_BEFORE_START, REGION_OUTSIDE_COUNTRY
from app.persons.schemas import MIN_SEARCH_LETTERS
from app.reports.schemas import DATES_OUT_OF_ORDER

_REFUSED = list(REFUSED_CATEGORIES)
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)

_LABEL_CHARACTERS = st.characters(
    exclude_categories=_REFUSED,  # type: ignore[arg-type]
    exclude_characters="".join(chr(point) for point in INVISIBLE_IN_NAMES),
)
_LETTER = re.compile(r"[^\W\d_]")

schemathesis.openapi.format(LABEL_FORMAT, st.text(_LABEL_CHARACTERS, min_size=1, max_size=60))
schemathesis.openapi.format(
    NAME_SEARCH_FORMAT,
    st.text(_LABEL_CHARACTERS, min_size=MIN_SEARCH_LETTERS, max_size=60).filter(
        lambda text: len(_LETTER.findall(text)) >= MIN_SEARCH_LETTERS
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

# A letter of any script (one or two), or a number.
schemathesis.openapi.format(
    CHARGE_ITEM_FORMAT,
    st.one_of(
        st.from_regex(r"\A[0-9]{1,3}\Z"),
        st.text(st.characters(categories=["Lu", "Ll", "Lt", "Lm", "Lo"]), min_size=1, max_size=2),
    ),
)


@schemathesis.hook
def before_call(
    context: schemathesis.HookContext, case: schemathesis.Case, kwargs: dict[str, Any]
) -> None:
    """A client makes a new Idempotency-Key for each request it means (and sends it again
    only with the same request). A generated key that is well formed is replaced by a new
    one just before it is sent, in every phase, so that two different generated requests
    never share one; a malformed one is kept, to be refused."""
    headers = case.headers or {}
    if _IDEMPOTENCY_KEY.fullmatch(str(headers.get("Idempotency-Key", ""))):
        case.headers = {**headers, "Idempotency-Key": str(uuid.uuid4())}


# Problem types that refuse schema-valid input for what only the server knows: a record
# named that does not exist (or is hidden), keys that are not usable keys.
_SERVER_JUDGED_TYPES = {
    PROBLEM_TYPE_BASE + UnknownReference.slug,
    PROBLEM_TYPE_BASE + InvalidKeySet.slug,
    # the path's person named again in the body: no schema compares the two
    PROBLEM_TYPE_BASE + SelfMerge.slug,
    # a person merged into another named in a body (the server knows which are)
    PROBLEM_TYPE_BASE + MergedReference.slug,
}
# Input errors of the same nature: a date after today, a password the server finds weak,
# an end before its start, a region outside its country, a report's dates out of order (no
# schema compares two values).
_SERVER_JUDGED_ERRORS = re.compile(
    rf"^({DATE_IN_FUTURE}|{END_BEFORE_START}|{REGION_OUTSIDE_COUNTRY}|{DATES_OUT_OF_ORDER}"
    r"|password_\w+)$"
)


@schemathesis.hook
def filter_failure(
    context: schemathesis.HookContext,
    failure: Failure,
    case: schemathesis.Case,
    response: Response,
) -> bool:
    """Keep every failure but a 422 for valid input whose reason the schema cannot hold."""
    if failure.code != "ST202" or response.status_code != 422:
        return True
    try:
        problem = response.json()
    except ValueError:
        return True
    if problem.get("type") in _SERVER_JUDGED_TYPES:
        return False
    if problem.get("violation") == DATE_IN_FUTURE:  # a status event's effective date
        return False
    kinds = [error.get("type", "") for error in problem.get("errors", [])]
    return not (kinds and all(_SERVER_JUDGED_ERRORS.match(kind) for kind in kinds))

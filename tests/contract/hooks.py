"""Schemathesis hooks for the contract run: the API's own string formats
(app/core/types.py), generated as the API defines them."""

import schemathesis
from hypothesis import strategies as st

from app.core.types import (
    INVISIBLE_IN_NAMES,
    LABEL_FORMAT,
    LINE_BREAKS,
    REFUSED_CATEGORIES,
    TEXT_FORMAT,
)

_REFUSED = list(REFUSED_CATEGORIES)

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

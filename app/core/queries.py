"""Query strings as the routes declare them.

A parameter that an operation does not take is refused (400), never ignored: a typo such
as `?stauts=detained` would otherwise answer with every record, and the client would take
the list for the filtered one. So is a parameter that takes one value given twice
(`?status=detained&status=released`): which one wins would be a guess. A parameter that
takes a list is repeated to give its values.

What an operation takes is read from the route's declaration (its dependant, with every
sub-dependency such as pagination), once per route.
"""

import types
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel

from app.core.errors import RepeatedQueryParameter, UnknownQueryParameter

# Shown in a refusal: enough to recognise the typo, never a whole hostile query string.
_SHOWN_NAMES = 10
_SHOWN_LENGTH = 40
_SEQUENCES = (list, tuple, set, frozenset)


@dataclass(frozen=True, slots=True)
class DeclaredQuery:
    names: frozenset[str]
    # The parameters that take a list, and so may be repeated.
    repeatable: frozenset[str]


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):
        options = [option for option in get_args(annotation) if option is not type(None)]
        if len(options) == 1:
            return _without_none(options[0])
    return annotation


def _takes_a_list(annotation: Any) -> bool:
    annotation = _without_none(annotation)
    origin = get_origin(annotation) or annotation
    return isinstance(origin, type) and issubclass(origin, _SEQUENCES)


def _parameters(dependant: Dependant) -> Iterator[tuple[str, Any]]:
    """(name in the query, type) of every query parameter the route and its
    dependencies declare; a parameter model gives its fields."""
    for field in dependant.query_params:
        annotation = _without_none(field.field_info.annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for name, model_field in annotation.model_fields.items():
                yield model_field.alias or name, model_field.annotation
        else:
            yield field.alias, field.field_info.annotation
    for dependency in dependant.dependencies:
        yield from _parameters(dependency)


def declared_query(route: APIRoute) -> DeclaredQuery:
    parameters = list(_parameters(route.dependant))
    return DeclaredQuery(
        names=frozenset(name for name, _ in parameters),
        repeatable=frozenset(name for name, kind in parameters if _takes_a_list(kind)),
    )


def _declared(request: Request, route: APIRoute) -> DeclaredQuery:
    """Read once per route and kept with the application (routes live as long as it)."""
    known: dict[int, DeclaredQuery] | None = getattr(request.app.state, "declared_queries", None)
    if known is None:
        known = request.app.state.declared_queries = {}
    declared = known.get(id(route))
    if declared is None:
        declared = known[id(route)] = declared_query(route)
    return declared


def _shown(names: list[str]) -> list[str]:
    return [name[:_SHOWN_LENGTH] for name in names[:_SHOWN_NAMES]]


def _errors(names: list[str], *, msg: str, kind: str) -> list[dict[str, Any]]:
    return [{"loc": ["query", name], "msg": msg, "type": kind} for name in _shown(names)]


async def refuse_unknown_query_parameters(request: Request) -> None:
    """An application-wide dependency: the query holds only what the operation takes, each
    single-valued parameter at most once."""
    if not request.scope.get("query_string"):
        return
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    declared = _declared(request, route)
    given = Counter(name for name, _ in request.query_params.multi_items())
    unknown = [name for name in given if name not in declared.names]
    if unknown:
        takes = ", ".join(sorted(declared.names)) or "no query parameters"
        raise UnknownQueryParameter(
            f"Unknown query parameter: {', '.join(_shown(unknown))}. This operation takes: "
            f"{takes}.",
            errors=_errors(
                unknown, msg="not a parameter of this operation", kind="unknown_parameter"
            ),
        )
    repeated = [
        name for name, count in given.items() if count > 1 and name not in declared.repeatable
    ]
    if repeated:
        raise RepeatedQueryParameter(
            f"Given more than once: {', '.join(_shown(repeated))}. Each takes one value.",
            errors=_errors(repeated, msg="takes one value", kind="repeated_parameter"),
        )

"""The published contract: FastAPI's OpenAPI document, completed with what the routes do
not declare one by one.

Every refusal is an RFC 9457 problem document (app/core/errors.py), and which refusals an
operation can meet follows from what it takes: a bearer token (401, 403), a record in its
path (404), a body (400 malformed, 408 slow, 413 too large, 415 not JSON, 422 invalid),
If-Match (412 stale or unusable, 428 missing), an Idempotency-Key (409 while the first is
in flight), a cursor (400), an authenticated write (409, a state that refuses it), and
every operation a query string (400 for a parameter it does not take) and the database
(503). Those rules are data (`REFUSALS_BY_INPUT`, `CAUSES`); a route declares only what is
its own (409 for a transition the history does not allow, 429 for throttled sign-in …),
with a description that replaces the generic one, while the causes that follow from its
inputs are still listed.
"""

import copy
import re
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.core.errors import (
    PROBLEM_JSON,
    Conflict,
    IdempotencyInFlight,
    InvalidCursor,
    MalformedJson,
    PreconditionFailed,
    RepeatedQueryParameter,
    UnknownQueryParameter,
    UnusableIfMatch,
)
from app.core.http import ETAG_PATTERN
from app.core.types import TEXT_FORMATS

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": (
        "RFC 9457 problem details. `type` is a URN naming the refusal "
        "(`urn:habeas:problem:<slug>`); some refusals add members of their own "
        "(`errors` for invalid input, `max_page_size`, …)."
    ),
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "examples": ["urn:habeas:problem:invalid-input"]},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "The path of the request"},
        "errors": {
            "type": "array",
            "description": "For invalid input: where and why, never the value sent.",
            "items": {"$ref": "#/components/schemas/InputError"},
        },
    },
    "additionalProperties": True,
}

INPUT_ERROR_SCHEMA: dict[str, Any] = {
    "title": "InputError",
    "type": "object",
    "required": ["loc", "msg", "type"],
    "properties": {
        "loc": {
            "type": "array",
            "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "description": 'Where: e.g. ["body", "names", 0, "value"] or ["query", "limit"]',
        },
        "msg": {"type": "string"},
        "type": {"type": "string", "description": "A machine-readable reason"},
    },
    "additionalProperties": False,
}

RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before sending the request again",
        "schema": {"type": "integer", "minimum": 0},
    }
}

# What each refusal means when a route says nothing more specific.
MEANINGS: dict[int, str] = {
    401: "No valid access token",
    403: "The caller's role may not do this",
    404: "No such record, or one the caller may not see",
    408: "The request body arrived too slowly",
    413: "The request body is too large",
    415: "The request body is not application/json",
    422: "The input is not valid: `errors` says where and why",
    428: "If-Match is missing: send the ETag of the version read",
    429: "Too many attempts: wait the Retry-After seconds",
    503: "The database is unavailable or the server is busy: nothing was saved (unless the"
    " type is `commit-outcome-unknown`: then retry with the same Idempotency-Key)",
}


@dataclass(frozen=True)
class Cause:
    """One reason for a refusal that has several, given by what the operation takes."""

    taken: str
    text: str
    # A route's own description of the status says this better, and replaces it.
    the_routes_own: bool = False


# The refusals with several causes, each named with its problem type, in this order.
CAUSES: dict[int, tuple[Cause, ...]] = {
    400: (
        Cause("body", f"the body is not well-formed JSON (`{MalformedJson.slug}`)"),
        Cause("cursor", f"the cursor is not one this query issued (`{InvalidCursor.slug}`)"),
        Cause(
            "anything",
            "the query names a parameter this operation does not take"
            f" (`{UnknownQueryParameter.slug}`), or gives one that takes one value more than"
            f" once (`{RepeatedQueryParameter.slug}`)",
        ),
        Cause(
            "If-Match",
            "If-Match is weak (W/), `*`, several tags or no ETag, which match no version"
            f' (`{UnusableIfMatch.slug}`): send the strong ETag read, e.g. "3"',
        ),
    ),
    409: (
        Cause(
            "authenticated write",
            f"the change conflicts with the record's present state (`{Conflict.slug}`)",
            the_routes_own=True,
        ),
        Cause(
            "Idempotency-Key",
            "a request with this Idempotency-Key is still in progress"
            f" (`{IdempotencyInFlight.slug}`)",
        ),
    ),
    412: (
        Cause(
            "If-Match",
            f"the record changed since it was read (`{PreconditionFailed.slug}`): read it again",
            the_routes_own=True,
        ),
    ),
}

HEADERS_BY_STATUS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "Bearer",
            "schema": {"type": "string"},
        }
    },
    429: RETRY_AFTER,
    503: RETRY_AFTER,
}

# An operation that takes … can answer these.
REFUSALS_BY_INPUT: dict[str, tuple[int, ...]] = {
    # A query string with a parameter the operation does not take (app/core/queries.py).
    "anything": (400, 503),
    "bearer token": (401, 403),
    "path parameter": (404, 422),
    "query parameter": (422,),
    "cursor": (400,),
    "body": (400, 408, 413, 415, 422),
    "If-Match": (400, 412, 428),
    "Idempotency-Key": (409, 422),
    # A change that the record's present state refuses (a name taken, a request decided
    # already, a credential of the other kind): whatever the route says besides.
    "authenticated write": (409,),
}
WRITE_METHODS = frozenset({"post", "put", "patch", "delete"})

IF_MATCH_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": ETAG_PATTERN,
    "description": 'The ETag of the version read, e.g. "3"',
    "examples": ['"1"'],
}


def _inputs(method: str, operation: dict[str, Any]) -> list[str]:
    taken = ["anything"]
    if operation.get("security"):
        taken.append("bearer token")
        if method in WRITE_METHODS:
            taken.append("authenticated write")
    for parameter in operation.get("parameters", []):
        where, name = parameter["in"], parameter["name"]
        if where == "path":
            taken.append("path parameter")
        elif where == "query":
            taken.append("query parameter")
            if name == "cursor":
                taken.append("cursor")
        elif where == "header" and name in REFUSALS_BY_INPUT:
            taken.append(name)
    if "requestBody" in operation:
        taken.append("body")
    return taken


def _description(status: int, own: str | None, taken: list[str]) -> str:
    """The route's own words, or the generic meaning, with every cause of the status that
    what the operation takes adds."""
    causes = [
        cause.text
        for cause in CAUSES.get(status, ())
        if cause.taken in taken and not (own and cause.the_routes_own)
    ]
    parts = ([own] if own else []) + causes
    if not parts:
        return MEANINGS.get(status, "Refused")
    text = "; or ".join(parts)
    return text[0].upper() + text[1:]


def _problem_response(
    status: int, declared: dict[str, Any] | None, taken: list[str]
) -> dict[str, Any]:
    response = dict(declared or {})
    own = response.get("description")
    if own == "Validation Error":
        own = None
    response["description"] = _description(status, own, taken)
    content = response.get("content") or {}
    # A route may answer in another documented format (the token endpoint's OAuth
    # errors); FastAPI's own validation schema is replaced by the problem document.
    if not content or ("application/json" in content and _is_fastapi_validation(content)):
        response["content"] = {PROBLEM_JSON: {"schema": PROBLEM_REF}}
    elif PROBLEM_JSON in content and not content[PROBLEM_JSON].get("schema"):
        content[PROBLEM_JSON] = {"schema": PROBLEM_REF}
    headers = {**HEADERS_BY_STATUS.get(status, {}), **response.get("headers", {})}
    if headers:
        response["headers"] = headers
    return response


def _is_fastapi_validation(content: dict[str, Any]) -> bool:
    ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
    return bool(ref.endswith("/HTTPValidationError"))


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query or header parameter is absent or has a value: it cannot be null."""
    options = schema.get("anyOf")
    if not options:
        return schema
    kept = [option for option in options if option.get("type") != "null"]
    rest = {key: value for key, value in schema.items() if key != "anyOf"}
    if len(kept) == 1:
        return {**kept[0], **rest}
    return {**rest, "anyOf": kept}


def _complete_operation(method: str, operation: dict[str, Any], max_page_size: int) -> None:
    for parameter in operation.get("parameters", []):
        parameter["schema"] = _without_null(parameter["schema"])
        if parameter["in"] == "header" and parameter["name"] == "If-Match":
            parameter["required"] = True
            parameter["schema"] = {**IF_MATCH_SCHEMA}
            parameter["description"] = IF_MATCH_SCHEMA["description"]
        if parameter["in"] == "query" and parameter["name"] == "limit":
            parameter["schema"]["maximum"] = max_page_size
    responses = operation.setdefault("responses", {})
    inputs = _inputs(method, operation)
    statuses = {status for taken in inputs for status in REFUSALS_BY_INPUT[taken]}
    statuses |= {int(code) for code in responses if code.isdigit() and int(code) >= 400}
    for status in sorted(statuses):
        responses[str(status)] = _problem_response(status, responses.get(str(status)), inputs)


# Links the rule below cannot see: a status event made, and its retraction; a person made,
# and a case file for them; a case file made, and a collective event over it.
EXTRA_LINKS: list[dict[str, Any]] = [
    {
        "from": ("/api/v1/cases/{case_id}/status-events", "post", "201"),
        "to": ("/api/v1/cases/{case_id}/status-events/{event_id}/retraction", "post"),
        "parameters": {
            "case_id": "$request.path.case_id",
            "event_id": "$response.body#/event/id",
            "header.If-Match": "$response.header.ETag",
        },
    },
    {
        "from": ("/api/v1/persons", "post", "201"),
        "to": ("/api/v1/cases", "post"),
        "requestBody": {"person_id": "$response.body#/id"},
    },
    {
        "from": ("/api/v1/cases", "post", "201"),
        "to": ("/api/v1/collective-events", "post"),
        "requestBody": {"case_file_ids": ["$response.body#/id"]},
    },
]


def _takes_if_match(operation: dict[str, Any]) -> bool:
    return any(
        parameter["in"] == "header" and parameter["name"] == "If-Match"
        for parameter in operation.get("parameters", [])
    )


def _gives_etag(operations: dict[str, Any]) -> bool:
    read = operations.get("get")
    return read is not None and "ETag" in read["responses"].get("200", {}).get("headers", {})


def _link(
    source: dict[str, Any],
    status: str,
    *,
    target: dict[str, Any],
    parameters: dict[str, str] | None = None,
    request_body: Any = None,
) -> None:
    link: dict[str, Any] = {"operationId": target["operationId"]}
    if parameters:
        link["parameters"] = parameters
    if request_body is not None:
        link["requestBody"] = request_body
    source["responses"][status].setdefault("links", {})[target["operationId"]] = link


def _add_links(document: dict[str, Any]) -> None:
    """OpenAPI links, so that a client (and a stateful fuzzer) knows where a record's id
    and version go next: a record made at a collection (201 with its id and ETag) is
    read, changed and acted on at the paths below it; a record read (200 with its ETag)
    is changed with that ETag as If-Match."""
    paths: dict[str, dict[str, Any]] = document["paths"]
    for collection, item in paths.items():
        create = item.get("post")
        if create is None or "201" not in create["responses"]:
            continue
        gives_version = "ETag" in create["responses"]["201"].get("headers", {})
        below = re.compile(re.escape(collection) + r"/\{(\w+)\}(/.*)?$")
        for path, operations in paths.items():
            match = below.match(path)
            if match is None:
                continue
            record_id = match.group(1)
            if len(re.findall(r"\{\w+\}", path)) > 1:
                continue  # needs an id the record made does not give (EXTRA_LINKS)
            # A sub-resource read with its own ETag (a recognition) has its own version.
            own_version = path != f"{collection}/{{{record_id}}}" and _gives_etag(operations)
            for target in operations.values():
                parameters = {record_id: "$response.body#/id"}
                if _takes_if_match(target):
                    if own_version or not gives_version:
                        continue
                    parameters["header.If-Match"] = "$response.header.ETag"
                _link(create, "201", target=target, parameters=parameters)
    for path, operations in paths.items():
        if not _gives_etag(operations):
            continue
        read = operations["get"]
        names = re.findall(r"\{(\w+)\}", path)
        for method, target in operations.items():
            if method != "get" and _takes_if_match(target):
                parameters = {name: f"$request.path.{name}" for name in names}
                parameters["header.If-Match"] = "$response.header.ETag"
                _link(read, "200", target=target, parameters=parameters)
    for extra in EXTRA_LINKS:
        source_path, source_method, status = extra["from"]
        target_path, target_method = extra["to"]
        _link(
            paths[source_path][source_method],
            status,
            target=paths[target_path][target_method],
            parameters=extra.get("parameters"),
            request_body=extra.get("requestBody"),
        )


def build_contract(app: FastAPI, max_page_size: int) -> dict[str, Any]:
    document = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    for path_item in document.get("paths", {}).values():
        for method, operation in path_item.items():
            _complete_operation(method, operation, max_page_size)
    _add_links(document)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas["Problem"] = copy.deepcopy(PROBLEM_SCHEMA)
    schemas["InputError"] = copy.deepcopy(INPUT_ERROR_SCHEMA)
    document["info"]["description"] = _formats_described(document["info"].get("description"))
    return document


def _formats_described(description: str | None) -> str:
    formats = "\n".join(f"- `{name}`: {meaning}" for name, meaning in TEXT_FORMATS.items())
    return f"{description or ''}\n\nString formats of this API:\n\n{formats}".strip()


def install_contract(app: FastAPI, max_page_size: int) -> None:
    """Serve the completed document at /openapi.json, built once on first request."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_contract(app, max_page_size)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

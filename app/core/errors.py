"""Typed domain errors and their single rendering as RFC 9457 problem+json."""

import re
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.database_errors import UNAVAILABLE_KINDS, classify, report

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "urn:habeas:problem:"

log = structlog.get_logger(__name__)


class DomainError(Exception):
    """A refusal the caller can act on. Subclasses fix the status, slug and title."""

    status_code: int = 400
    slug: str = "bad-request"
    title: str = "Bad request"
    # Most refusals undo the request's writes; a few must keep them (a failed sign-in
    # counts towards throttling, a reused refresh token revokes its family).
    keeps_writes: bool = False
    # Refusals of access (401, 403, a hidden record's 404) are written to the audit trail.
    is_denial: bool = False
    # So is asking for a record that does not exist (outcome "not_found"): probing is
    # worth knowing of, and a missing record must take as long to answer as a hidden one.
    records_absence: bool = False
    # A refusal that shows records (a likely duplicate's candidates) keeps the reading of
    # them that the request recorded.
    keeps_reading: bool = False

    def __init__(
        self, detail: str, *, headers: Mapping[str, str] | None = None, **extensions: Any
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = dict(headers or {})
        self.extensions = extensions

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        return problem_body(
            self.status_code,
            self.slug,
            self.title,
            detail=self.detail,
            instance=instance,
            extensions=self.extensions,
        )


class MalformedJson(DomainError):
    slug = "malformed-json"
    title = "The request body could not be parsed"


class InvalidCursor(DomainError):
    slug = "invalid-cursor"
    title = "The pagination cursor is not valid for this query"


class UnknownQueryParameter(DomainError):
    slug = "unknown-query-parameter"
    title = "The query names a parameter this operation does not take"


class RepeatedQueryParameter(DomainError):
    slug = "repeated-query-parameter"
    title = "A query parameter that takes one value was given more than once"


class NotFound(DomainError):
    status_code = 404
    slug = "not-found"
    title = "Not found"
    records_absence = True


class HiddenRecord(NotFound):
    """A record that exists but that the caller may not see: answered exactly like a
    missing one, and recorded as a denial."""

    is_denial = True


class Unauthenticated(DomainError):
    status_code = 401
    slug = "unauthenticated"
    title = "A valid access token is required"
    is_denial = True

    def __init__(self, detail: str = "Sign in again.", **extensions: Any) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"}, **extensions)


class SignInFailed(DomainError):
    """One answer for an unknown user, a wrong password and a wrong or reused code."""

    status_code = 401
    slug = "sign-in-failed"
    title = "Sign-in failed"
    keeps_writes = True
    is_denial = True


class EnrolmentFailed(DomainError):
    """One answer for a wrong, expired or used enrolment code. It counts towards throttling,
    and is recorded as a denial."""

    status_code = 400
    slug = "enrolment-failed"
    title = "Enrolment failed"
    keeps_writes = True
    is_denial = True


class SessionRevoked(Unauthenticated):
    slug = "session-revoked"
    keeps_writes = True


class TooManyAttempts(DomainError):
    status_code = 429
    slug = "too-many-attempts"
    title = "Too many failed attempts; wait before trying again"
    is_denial = True
    keeps_writes = True

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(
            f"Try again in {retry_after_seconds} seconds.",
            headers={"Retry-After": str(retry_after_seconds)},
        )


class Forbidden(DomainError):
    status_code = 403
    slug = "forbidden"
    title = "You may not do this"
    is_denial = True


class Conflict(DomainError):
    status_code = 409
    slug = "conflict"
    title = "Conflict with the current state"


class PossibleDuplicate(Conflict):
    slug = "possible-duplicate"
    title = "The person may be recorded already"
    keeps_reading = True


class PersonMerged(DomainError):
    """The person was merged into another (`merged_into`): a redirect to the one that holds
    the record now (308, with Location), never the merged one's old content."""

    status_code = 308
    slug = "person-merged"
    title = "The person was merged into another record"


class MergedRecord(NotFound):
    """A person merged into another, asked for by any route but the person's own read:
    nothing is done to the merged record; `merged_into` names the one to use."""

    slug = "person-merged"
    title = "The person was merged into another record"
    records_absence = False


class MergeRefused(Conflict):
    """A merge or unmerge the records' state does not allow (merged already, a conflicting
    value left undecided, overlapping custody, persons stated to be different)."""

    slug = "merge-refused"
    title = "The persons cannot be merged (or separated) as asked"


class InvalidTransition(Conflict):
    slug = "invalid-transition"
    title = "The status change is not allowed from the current status history"


class CollectiveTransitionRejected(Conflict):
    slug = "collective-transition-rejected"
    title = "At least one case file cannot make this transition; nothing was changed"


class BatchConflict(Conflict):
    """A partner's batch names records that changed since the versions it last saw:
    nothing applied; `items` lists each with our current version and values."""

    slug = "batch-conflict"
    title = "Records in the batch changed since the versions it names"


class IdempotencyInFlight(Conflict):
    slug = "idempotency-key-in-flight"
    title = "A request with this Idempotency-Key is still being processed"


class PreconditionFailed(DomainError):
    status_code = 412
    slug = "stale-version"
    title = "The resource changed since you read it"


class UnusableIfMatch(DomainError):
    """If-Match that can match no version: weak, `*`, several tags or not an ETag. A weak
    tag never matches (If-Match compares strongly, RFC 9110 §13.1.1); the contract declares
    If-Match as one strong ETag, so any other form is a bad request (400), never a 412 that
    would send the client to read the record again: the header is what must change."""

    status_code = 400
    slug = "if-match-unusable"
    title = "If-Match must be the one strong ETag of the version read"


class PreconditionRequired(DomainError):
    status_code = 428
    slug = "if-match-required"
    title = "An If-Match header with the version you read is required"


class PayloadTooLarge(DomainError):
    status_code = 413
    slug = "payload-too-large"
    title = "The request body is too large"


class UnsupportedMediaType(DomainError):
    status_code = 415
    slug = "unsupported-media-type"
    title = "The request body has the wrong media type"


class UnprocessableInput(DomainError):
    status_code = 422
    slug = "invalid-input"
    title = "The input is not valid"


class RequestTimeout(DomainError):
    status_code = 408
    slug = "request-timeout"
    title = "The request body arrived too slowly"


class Overloaded(DomainError):
    """More requests in progress than the process takes at once."""

    status_code = 503
    slug = "overloaded"
    title = "The server is busy"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail, headers={"Retry-After": "1"}, **extensions)


class DatabaseUnavailable(DomainError):
    """The database cannot be reached, or dropped the connection before anything was
    committed: nothing was saved, and the same request may be sent again."""

    status_code = 503
    slug = "database-unavailable"
    title = "The database is unavailable"
    retry_after_seconds = 2

    def __init__(
        self, detail: str = "Nothing was saved. Try again in a moment.", **extensions: Any
    ) -> None:
        super().__init__(
            detail, headers={"Retry-After": str(self.retry_after_seconds)}, **extensions
        )


class CommitOutcomeUnknown(DatabaseUnavailable):
    """The connection was lost while the database committed: the change may or may not
    have been saved, and only a retry with the same Idempotency-Key can tell."""

    slug = "commit-outcome-unknown"
    title = "Whether the change was saved is unknown"

    def __init__(
        self,
        detail: str = (
            "The connection to the database was lost while it saved the change, which may "
            "or may not have been saved. Send the same request again with the same "
            "Idempotency-Key: it is applied once, or its first answer is replayed. "
            "An update with If-Match answers 412 if it was saved."
        ),
        **extensions: Any,
    ) -> None:
        super().__init__(detail, **extensions)


class DatabaseBusy(DatabaseUnavailable):
    """The database undid the request's transaction because of a concurrent one (a
    serialization failure, a deadlock), or could not finish it in time (a lock or statement
    timeout, resources exhausted): nothing was saved, and the same request may be sent
    again."""

    slug = "database-busy"
    title = "The database could not complete the request now"


class UnknownReference(UnprocessableInput):
    """The input names a record that does not exist (recorded, like a missing record)."""

    slug = "unknown-reference"
    title = "The input names a record that does not exist"
    records_absence = True


class HiddenReference(UnknownReference):
    """The input names a record the caller may not see: answered exactly like an unknown
    one, and recorded as a denial."""

    is_denial = True


class MergedReference(UnprocessableInput):
    """The input names a person merged into another: the request must name that one
    (`merged_into`)."""

    slug = "person-merged"
    title = "The input names a person merged into another record"


class SelfMerge(UnprocessableInput):
    """A merge that names the kept person as the one to merge (the schema cannot compare
    the path with the body)."""

    slug = "merge-into-itself"
    title = "A person cannot be merged into themselves"


class InvalidKeySet(UnprocessableInput):
    slug = "invalid-key-set"
    title = "The keys are not usable public keys"


class BatchRejected(UnprocessableInput):
    """Operations of a partner's batch that cannot apply: nothing applied; `items` lists
    each with its own problem."""

    slug = "batch-rejected"
    title = "Operations in the batch cannot be applied"


class OutsideAgreement(UnprocessableInput):
    """A partner's batch would make a record that its sharing agreement does not share."""

    slug = "outside-agreement"
    title = "The partner's sharing agreement does not cover this record"


class IdempotencyKeyReused(UnprocessableInput):
    slug = "idempotency-key-reused"
    title = "This Idempotency-Key was already used with a different request"


def problem_body(
    status: int,
    slug: str,
    title: str,
    *,
    detail: str | None,
    instance: str | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"type": PROBLEM_TYPE_BASE + slug, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    if extensions:
        body.update(extensions)
    return body


def problem_response(
    body: dict[str, Any], headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        body, status_code=body["status"], media_type=PROBLEM_JSON, headers=dict(headers or {})
    )


def _validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    # Echoing the offending input back could copy personal data into logs and caches,
    # so only the location, the reason and its machine code are returned.
    return [
        {
            "loc": list(error.get("loc", ())),
            "msg": error.get("msg", ""),
            "type": error.get("type", ""),
        }
        for error in errors
    ]


async def _on_domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return problem_response(exc.to_problem(request.url.path), exc.headers)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(error.get("type") == "json_invalid" for error in errors):
        error: DomainError = MalformedJson("The body could not be parsed as JSON.")
    else:
        error = UnprocessableInput(
            "Some fields are missing, unknown or of the wrong form.",
            errors=_validation_errors(errors),
        )
    return problem_response(error.to_problem(request.url.path))


def _allowed_methods(request: Request) -> str:
    """Every method the published contract serves at this path (Starlette's own 405
    names only the first matching route's, while GET and PATCH of one record are separate
    routes), with HEAD beside GET and OPTIONS, which every path answers."""
    table: list[tuple[re.Pattern[str], frozenset[str]]] | None = getattr(
        request.app.state, "methods_by_path", None
    )
    if table is None:
        by_path: dict[str, set[str]] = {}
        for path, operations in request.app.openapi().get("paths", {}).items():
            by_path.setdefault(path, set()).update(method.upper() for method in operations)
        # The operator's and the documentation's routes, outside the contract.
        for route in request.app.router.routes:
            if isinstance(route, Route) and route.methods:
                by_path.setdefault(route.path, set()).update(route.methods)
        table = [
            (
                re.compile("^" + re.sub(r"\\{[^/}]+\\}", "[^/]+", re.escape(path)) + "$"),
                frozenset(methods),
            )
            for path, methods in by_path.items()
        ]
        request.app.state.methods_by_path = table
    allowed = {"OPTIONS"}
    for pattern, methods in table:
        if pattern.match(request.url.path):
            allowed |= methods | ({"HEAD"} if "GET" in methods else set())
    return ", ".join(sorted(allowed))


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=headers)
    titles = {404: "Not found", 405: "Method not allowed", 401: "Unauthorized"}
    body = problem_body(
        exc.status_code,
        f"http-{exc.status_code}",
        titles.get(exc.status_code, "HTTP error"),
        detail=str(exc.detail),
        instance=request.url.path,
    )
    return problem_response(body, headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _on_domain_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)


class UnexpectedErrorMiddleware:
    """Turn an unexpected exception into a generic 500 problem; a database error that
    escaped the request's unit of work is logged as what it is and answered 503.

    It sits inside the other middleware, so the answer still gets the security headers
    and the request id (Starlette's own handler runs outside them all).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as error:
            kind = classify(error)
            if kind is None:
                log.exception("unhandled_error", path=scope.get("path"))
            else:
                report(error, kind, path=scope.get("path"))
            if started:
                raise
            if kind is None:
                body = problem_body(
                    500,
                    "internal-error",
                    "Internal error",
                    detail="The request failed; nothing was saved.",
                    instance=scope.get("path"),
                )
                await problem_response(body)(scope, receive, send)
                return
            refusal = DatabaseUnavailable() if kind in UNAVAILABLE_KINDS else DatabaseBusy()
            await problem_response(refusal.to_problem(scope.get("path")), refusal.headers)(
                scope, receive, send
            )

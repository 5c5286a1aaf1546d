"""Authentication and authorization as FastAPI dependencies.

Every route under /api/v1 declares its action with `requires("case.read")` (a test fails
for a route without one). The dependency authenticates the bearer token, and for actions
on an area (create, list, administration) decides at once; for actions on one record the
service decides once it has loaded the record, so a record the caller may not see is a 404.

`authenticate` and `Requires` run on every request: they read the application's state
through `security_of` and `policy_of` rather than through dependencies of their own, which
FastAPI would resolve on every request as well.
"""

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.access.caller import Caller
from app.access.policy import PolicyEngine, area
from app.access.principal import Principal
from app.audit.journal import journal_of
from app.core.db import SessionDep
from app.core.errors import Forbidden, Unauthenticated
from app.identity import principals
from app.identity.kit import SecurityKit

_bearer = HTTPBearer(auto_error=False, description="An access token from /api/v1/auth")

# Actions decided on an area rather than on one record: action -> area name.
AREA_ACTIONS: dict[str, str] = {
    "case.create": "cases",
    "case.list": "cases",
    "person.create": "persons",
    "person.list": "persons",
    "person.merge": "persons",
    "source.create": "sources",
    "source.list": "sources",
    "collective.create": "collective",
    "collective.list": "collective",
    "collective.retract": "collective",
    "facility.create": "facilities",
    "facility.list": "facilities",
    "recognition.criteria": "recognition",
    "user.manage": "users",
    "user.approve_role": "users",
    "partner.manage": "partners",
    "partner.read": "partners",
    "partner.share": "partners",
    "session.end": "session",
    "audit.read": "audit",
    "audit.verify": "audit",
    "report.generate": "reports",
    "report.read": "reports",
    "sync.read": "sync",
    "sync.write": "sync",
    "sync.webhook_manage": "sync",
    "sync.webhook_list": "sync",
    "mirror.list": "mirrors",
    "mirror.read": "mirrors",
}


def security_of(request: Request) -> SecurityKit:
    security: SecurityKit = request.app.state.security
    return security


def policy_of(request: Request) -> PolicyEngine:
    policy: PolicyEngine = request.app.state.policy
    return policy


async def _security(request: Request) -> SecurityKit:
    return security_of(request)


# The keys and verifiers built at start-up, for the routes of sign-in, accounts and partners.
Security = Annotated[SecurityKit, Depends(_security)]


async def authenticate(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("Send an access token: Authorization: Bearer <token>.")
    principal = await principals.authenticate(
        session, security_of(request), credentials.credentials, request.app.state.live_identities
    )
    request.state.principal = principal
    journal_of(session).identify(principal)
    return principal


class Requires:
    """The dependency of a route: authenticate, then check the route's action.

    Dependencies here are `async def` although they do not wait: FastAPI runs plain `def`
    dependencies in a thread pool, which costs more than the check itself."""

    def __init__(self, action: str) -> None:
        self.action = action

    async def __call__(
        self, request: Request, principal: Annotated[Principal, Depends(authenticate)]
    ) -> Caller:
        caller = Caller(principal, policy_of(request))
        area_name = AREA_ACTIONS.get(self.action)
        if area_name is not None and not caller.may(self.action, area(area_name)):
            raise Forbidden("You may not do this.")
        return caller


def requires(action: str) -> Any:
    return Depends(Requires(action))


async def open_route() -> None:
    """Marks a route that is deliberately reachable without a token (sign-in, tokens)."""
    return None

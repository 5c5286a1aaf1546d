"""The authenticated caller as the services see it: who, and the policies that decide
what it may do. Free of HTTP, so services depend on it and not on the routers' glue."""

from dataclasses import dataclass

from app.access.policy import PolicyEngine, Resource
from app.access.principal import Principal, Tier
from app.core.errors import Forbidden, HiddenRecord


@dataclass(frozen=True)
class Caller:
    """The authenticated principal and the policies that decide what it may do."""

    principal: Principal
    policy: PolicyEngine

    def may(self, action: str, resource: Resource) -> bool:
        return self.policy.is_allowed(self.principal, action, resource)

    def clearance(self, kind: str, resource: Resource) -> Tier:
        """The caller's clearance on a record it must be able to see (else 404)."""
        tier = self.tier_on(kind, resource)
        if tier is None:
            raise HiddenRecord(f"No such {_NOUN.get(kind, kind)}.")
        return tier

    def tier_on(self, kind: str, resource: Resource) -> Tier | None:
        """The caller's clearance on a record; None where it may not see it at all."""
        return self.policy.clearance(self.principal, kind, resource)

    def require(self, action: str, resource: Resource) -> None:
        """For a record the caller can see: refuse an action it may not take on it."""
        if not self.may(action, resource):
            raise Forbidden("You may not do this to this record.")


_NOUN = {"case": "case file", "person": "person", "source": "source"}

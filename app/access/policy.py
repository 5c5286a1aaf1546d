"""The bridge to the Cedar policies in `policies/`: load and validate them at start-up, and
answer "may this principal do this to this record?".

Requests are built from facts (see policies/README.md): the caller is `User::"caller"` or
`Partner::"caller"` and a record is `<Type>::"resource"`, with set attributes that contain
the caller when the fact holds. A decision therefore depends only on the facts, and is
memoised by them; the Cedar engine still makes every distinct decision.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cedarpy

from app.access.principal import Principal, Tier

NAMESPACE = "Habeas"
CALLER = "caller"
RESOURCE = "resource"
POLICY_DIRECTORY = Path(__file__).resolve().parents[2] / "policies"
SCHEMA_FILE = "habeas.cedarschema"
MEMO_LIMIT = 50_000


class PolicyError(RuntimeError):
    """The policy files are missing, do not parse or do not fit the schema."""


@dataclass(frozen=True)
class Resource:
    """What the policies may know about a record (or an area, for create/list/admin)."""

    type: str
    area: str | None = None
    confidentiality: str = "normal"
    assigned_to_caller: bool = False
    shared_with_caller: bool = False
    recorded_by_caller: bool = False


def area(name: str) -> Resource:
    return Resource("Area", area=name)


def _uid(entity_type: str, entity_id: str) -> dict[str, str]:
    return {"type": f"{NAMESPACE}::{entity_type}", "id": entity_id}


def _ref(entity_type: str, entity_id: str) -> str:
    return f'{NAMESPACE}::{entity_type}::"{entity_id}"'


_PrincipalFacts = tuple[str, str | None, frozenset[str], str | None, bool]


def _principal_facts(principal: Principal) -> _PrincipalFacts:
    agreement = principal.agreement
    return (
        principal.kind.value,
        principal.role.value if principal.role else None,
        principal.scopes,
        agreement.max_tier.name if agreement else None,
        agreement.read_write if agreement else False,
    )


class PolicyEngine:
    def __init__(self, directory: Path = POLICY_DIRECTORY) -> None:
        schema_path = directory / SCHEMA_FILE
        policy_files = sorted(directory.glob("*.cedar"))
        if not schema_path.exists() or not policy_files:
            raise PolicyError(f"No Cedar schema or policies in {directory}.")
        schema_text = schema_path.read_text()
        self.policy_text = "\n".join(path.read_text() for path in policy_files)
        try:
            self._schema = cedarpy.Schema.from_str(schema_text)
        except ValueError as error:
            raise PolicyError(f"{schema_path}: {error}") from None
        for path in policy_files:
            result = cedarpy.validate_policies(path.read_text(), self._schema)
            if not result.validation_passed:
                problems = "; ".join(str(error.error) for error in result.errors)
                raise PolicyError(f"{path.name}: {problems}")
        try:
            self._policies = cedarpy.PolicySet.from_str(self.policy_text)
        except ValueError as error:
            raise PolicyError(f"policies: {error}") from None
        self._memo: dict[tuple[_PrincipalFacts, str, Resource], bool] = {}

    def is_allowed(self, principal: Principal, action: str, resource: Resource) -> bool:
        key = (_principal_facts(principal), action, resource)
        decision = self._memo.get(key)
        if decision is None:
            decision = self._decide(key[0], action, resource)
            if len(self._memo) >= MEMO_LIMIT:
                self._memo.clear()
            self._memo[key] = decision
        return decision

    def clearance(self, principal: Principal, kind: str, resource: Resource) -> Tier | None:
        """The highest tier the principal may read on the record, or None if not even that."""
        if not self.is_allowed(principal, f"{kind}.read", resource):
            return None
        if not self.is_allowed(principal, f"{kind}.read_restricted", resource):
            return Tier.public
        if not self.is_allowed(principal, f"{kind}.read_confidential", resource):
            return Tier.restricted
        return Tier.confidential

    def _decide(self, facts: _PrincipalFacts, action: str, resource: Resource) -> bool:
        kind, role, scopes, max_tier, read_write = facts
        if kind == "partner":
            caller = {
                "uid": _uid("Partner", CALLER),
                "attrs": {
                    "scopes": sorted(scopes),
                    "max_tier": max_tier or "public",
                    "read_write": read_write,
                },
                "parents": [],
            }
            caller_type = "Partner"
        else:
            caller = {
                "uid": _uid("User", CALLER),
                "attrs": {},
                "parents": [_uid("Role", role)] if role else [],
            }
            caller_type = "User"
        entities: list[dict[str, Any]] = [caller]
        if role:
            entities.append({"uid": _uid("Role", role), "attrs": {}, "parents": []})
        caller_ref = {"__entity": _uid(caller_type, CALLER)}
        members = {
            "assigned": resource.assigned_to_caller and caller_type == "User",
            "shared_with": resource.shared_with_caller and caller_type == "Partner",
            "recorded_by": resource.recorded_by_caller and caller_type == "User",
        }
        attributes: dict[str, Any] = {}
        if resource.type == "CaseFile" or resource.type == "Person":
            attributes = {
                "confidentiality": resource.confidentiality,
                "assigned": [caller_ref] if members["assigned"] else [],
                "shared_with": [caller_ref] if members["shared_with"] else [],
            }
        elif resource.type == "Source":
            attributes = {
                "recorded_by": [caller_ref] if members["recorded_by"] else [],
                "shared_with": [caller_ref] if members["shared_with"] else [],
            }
        resource_id = resource.area if resource.type == "Area" and resource.area else RESOURCE
        entities.append(
            {"uid": _uid(resource.type, resource_id), "attrs": attributes, "parents": []}
        )
        request = {
            "principal": _ref(caller_type, CALLER),
            "action": _ref("Action", action),
            "resource": _ref(resource.type, resource_id),
            "context": {},
        }
        result = cedarpy.is_authorized(request, self._policies, entities, self._schema)
        return bool(result.allowed)

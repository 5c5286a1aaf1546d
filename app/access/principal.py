"""Who is calling: a staff user (local or from the external identity provider) or a
partner organisation's system, with what its role or sharing agreement allows."""

import uuid
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum


class Role(StrEnum):
    admin = "admin"
    coordinator = "coordinator"
    caseworker = "caseworker"
    analyst = "analyst"
    auditor = "auditor"


class Tier(IntEnum):
    """How sensitive a field is; a caller receives the fields up to its clearance."""

    public = 1
    restricted = 2
    confidential = 3


class PrincipalKind(StrEnum):
    user = "user"
    partner = "partner"


@dataclass(frozen=True)
class SharingAgreement:
    """Which case files a partner receives, up to which tier, and whether it may write.

    A case file is shared when it is listed, or when it is in the jurisdiction (and, with
    `recognised_only`, a recognition decision covering it recognises a political prisoner).
    High-confidentiality case files are never shared.
    """

    jurisdiction: str | None = None
    recognised_only: bool = True
    case_file_ids: frozenset[uuid.UUID] = frozenset()
    max_tier: Tier = Tier.public
    read_write: bool = False
    # Events it pushes as confirmed are recorded as confirmed (else as reported).
    trusted_as_confirmed: bool = False


@dataclass(frozen=True)
class Principal:
    kind: PrincipalKind
    id: uuid.UUID
    # Staff only
    role: Role | None = None
    session_id: uuid.UUID | None = None
    # Partners only
    scopes: frozenset[str] = frozenset()
    agreement: SharingAgreement | None = None
    # Set for identities from the external OpenID Connect provider: `iss` + `sub`.
    external_subject: str | None = field(default=None)

    @property
    def is_partner(self) -> bool:
        return self.kind is PrincipalKind.partner

    @property
    def staff_id(self) -> uuid.UUID | None:
        """Who a record says recorded it: a staff member (a partner's system is not one)."""
        return None if self.is_partner else self.id

    @property
    def partner_id(self) -> uuid.UUID | None:
        """Which partner's system sent a record (a staff member's request: none)."""
        return self.id if self.is_partner else None

    @property
    def audit_name(self) -> str:
        return f"{self.kind.value}:{self.id}"

"""Which role changes wait for a second person's approval: pure and table-driven.

An admin sees the enrolment code of every account they make or reset and could redeem it,
so a role that reads case content, or administers, is held only once someone else has
approved it (DESIGN §4). A change that grants nothing the current role lacks (reading no
more case content, administering only if it did) takes effect at once.
"""

from dataclasses import dataclass

from app.access.principal import Role
from app.core.config import InvalidSetting


@dataclass(frozen=True)
class Powers:
    # How much case content the role reads: each level reads what the ones below it do.
    reads: int
    # Makes accounts and partners (and so could make an account for themselves).
    administers: bool = False


POWERS: dict[Role, Powers] = {
    Role.coordinator: Powers(reads=3),
    Role.caseworker: Powers(reads=2),
    Role.analyst: Powers(reads=1),
    Role.auditor: Powers(reads=0),
    Role.admin: Powers(reads=0, administers=True),
}

# Every role that reads case content, and admin: always approved by a second person,
# whatever the setting says (it can only add roles, e.g. auditor).
ALWAYS_NEEDING_APPROVAL = frozenset(
    role for role, powers in POWERS.items() if powers.reads > 0 or powers.administers
)


def roles_needing_approval(setting: str) -> frozenset[Role]:
    """The roles held only after approval: the comma-separated `setting` (the roles it
    adds) and the ones that always are."""
    added = set()
    for name in (part.strip().lower() for part in setting.split(",")):
        if not name:
            continue
        if name not in Role.__members__:
            known = ", ".join(Role)
            raise InvalidSetting(
                f"HABEAS_ROLES_NEEDING_APPROVAL: {name!r} is not a role (one of {known})."
            )
        added.add(Role(name))
    return ALWAYS_NEEDING_APPROVAL | added


def grants_more(new: Role, current: Role | None) -> bool:
    """Whether `new` gives something `current` (None: no role) does not."""
    if current is None:
        return True
    now, then = POWERS[current], POWERS[new]
    return then.reads > now.reads or (then.administers and not now.administers)


def needs_approval(new: Role, current: Role | None, needing: frozenset[Role]) -> bool:
    """Whether changing from `current` to `new` waits for a second person."""
    return new in needing and grants_more(new, current)

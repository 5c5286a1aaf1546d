"""Use cases of accounts: users, their enrolment with a one-time code, and the approval of
the roles they ask for. Sign-in, bearer tokens and partner clients have modules of their
own (signin.py, principals.py, partners.py)."""

import asyncio
import secrets
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlmodel.ext.asyncio.session import AsyncSession

from app.access.principal import Principal, Role
from app.audit.journal import Actor, change, journal_of
from app.core import metrics
from app.core.clock import utcnow
from app.core.errors import Conflict, EnrolmentFailed, Forbidden, NotFound, TooManyAttempts
from app.core.pagination import id_keyset_page
from app.core.versioning import bump, check_version
from app.identity import repository
from app.identity.credentials import (
    enrolment_code_digest,
    matching_totp_step,
    new_enrolment_code,
    new_totp_secret,
    totp_uri,
)
from app.identity.kit import CHANGED, SecurityKit, add_unique
from app.identity.models import AppUser, RoleRequest, RoleRequestStatus
from app.identity.passwords import check_new_password
from app.identity.roles import needs_approval
from app.identity.schemas import UserCreate, UserUpdate
from app.identity.throttling import ADDRESS_CHARS, ENROLMENT_FLOW, address_group

log = structlog.get_logger(__name__)

# Separation of duties (DESIGN §4): an admin manages accounts but never learns a password
# or a TOTP secret. A new account, or a reset, gets a one-time enrolment code that the
# person redeems to choose their own password and receive their own TOTP secret. The admin
# sees that code and could redeem it, so the roles that need approval (every role that
# reads case content, and admin; app/identity/roles.py) are held only once a second person
# has approved them, and only once the account is enrolled: the approval vouches for
# whoever enrolled, which the approver confirms with the person. A new code (a reset)
# withdraws any request and files it again, so that no approval outlives the enrolment it
# was given for.

ENROLMENT_FAILED = (
    "The enrolment code is wrong, has expired or was already used; ask an administrator "
    "for a new one."
)


def _user_snapshot(user: AppUser) -> dict[str, Any]:
    # Never the password hash, the TOTP secret or the enrolment code; that they changed is
    # recorded apart, as CHANGED.
    return {
        "username": user.username,
        "role": user.role,
        "disabled": user.disabled,
        "enrolled": user.enrolled,
        "version": user.version,
    }


def _request_snapshot(request: RoleRequest) -> dict[str, Any]:
    return {
        "user_id": str(request.user_id),
        "role": request.role,
        "status": request.status,
        "requested_by": str(request.requested_by) if request.requested_by else None,
        "decided_by": str(request.decided_by) if request.decided_by else None,
        "version": request.version,
    }


@dataclass(frozen=True)
class EnrolmentCode:
    """Shown once, to be handed to the person; only its hash is kept."""

    value: str
    expires_at: datetime


def _issue_enrolment_code(kit: SecurityKit, user: AppUser, now: datetime) -> EnrolmentCode:
    """A new code for the account; any older one stops working."""
    code = new_enrolment_code()
    expires_at = now + timedelta(hours=kit.settings.enrolment_code_hours)
    user.enrolment_code_hash, user.enrolment_expires_at = code.digest, expires_at
    return EnrolmentCode(code.value, expires_at)


async def create_user(
    session: AsyncSession,
    kit: SecurityKit,
    data: UserCreate,
    *,
    requested_by: uuid.UUID | None,
    bootstrap: bool = False,
) -> tuple[AppUser, EnrolmentCode]:
    """An account without credentials, and its enrolment code. A role that needs approval
    is asked for (`requested_by`; None: the system), not granted; with `bootstrap` (the
    command line) the admin role is granted at once while no enabled admin exists, since
    there would be nobody to approve it."""
    if await repository.user_by_username(session, data.username) is not None:
        raise Conflict("That username is taken.")
    first_admin = (
        bootstrap and data.role is Role.admin and not await repository.enabled_admin_exists(session)
    )
    waits = needs_approval(data.role, None, kit.roles_needing_approval) and not first_admin
    now = utcnow()
    user = AppUser(username=data.username, role=None if waits else data.role)
    code = _issue_enrolment_code(kit, user, now)
    await add_unique(session, user, "That username is taken.")
    changes = [
        change(
            "user", user.id, before=None, after={**_user_snapshot(user), "enrolment_code": CHANGED}
        )
    ]
    if waits:
        changes.append(
            await _ask_for_role(session, user.id, role=data.role, by=requested_by, now=now)
        )
    journal_of(session).changed(
        "user.create",
        "user",
        user.id,
        changes=changes,
        detail={"bootstrap": True} if first_admin else None,
    )
    return user, code


def enrolment_uri(user: AppUser, secret: str) -> str:
    return totp_uri(secret, user.username)


FIRST_ADMIN = "admin"


@dataclass(frozen=True)
class FirstAdmin:
    username: str
    password: str
    totp_secret: str
    totp_uri: str


async def create_first_admin(session: AsyncSession, kit: SecurityKit) -> FirstAdmin | None:
    """An admin with a generated password and TOTP secret, if there is no account at all yet
    (the development server's first start); None otherwise. The one account that is not
    enrolled by its person: there is nobody yet to hand a code over."""
    if await repository.users_page(session, None, 1):
        return None
    password, secret = secrets.token_urlsafe(18), new_totp_secret()
    user = AppUser(
        username=FIRST_ADMIN,
        role=Role.admin,
        password_hash=await kit.hash_secret(password),
        enrolled_at=utcnow(),
    )
    user.totp_secret = kit.seal_totp(user.id, secret)
    await add_unique(session, user, "That username is taken.")
    created = {**_user_snapshot(user), "password": CHANGED, "totp": CHANGED}
    journal_of(session).changed(
        "user.create",
        "user",
        user.id,
        changes=[change("user", user.id, before=None, after=created)],
        detail={"first_admin": True},
    )
    return FirstAdmin(user.username, password, secret, enrolment_uri(user, secret))


async def get_user(
    session: AsyncSession, user_id: uuid.UUID, *, for_update: bool = False
) -> AppUser:
    user = await repository.user(session, user_id, for_update=for_update)
    if user is None:
        raise NotFound("No such user.")
    return user


async def list_users(
    session: AsyncSession, cursor: str | None, limit: int
) -> tuple[list[AppUser], str | None]:
    return await id_keyset_page(
        lambda after, n: repository.users_page(session, after, n),
        {"users": True},
        cursor=cursor,
        limit=limit,
    )


async def pending_roles(session: AsyncSession, users: list[AppUser]) -> dict[uuid.UUID, Role]:
    """The role each user waits to have approved, if any."""
    found = await repository.pending_roles(session, [user.id for user in users])
    return {user_id: Role(role) for user_id, role in found.items()}


async def update_user(
    session: AsyncSession,
    kit: SecurityKit,
    user_id: uuid.UUID,
    *,
    expected_version: int,
    data: UserUpdate,
    actor: Principal,
) -> AppUser:
    """Change the role or disable. A role that needs approval and grants more than the
    current one is asked for, and the user keeps the old one until it is approved; any
    other role change (e.g. one that reads less case content) withdraws an open request and
    takes effect at once."""
    user = await get_user(session, user_id, for_update=True)
    check_version(user.version, expected_version, what="user")
    before = _user_snapshot(user)
    if user.id == actor.id and (data.disabled or (data.role and data.role != Role.admin)):
        raise Conflict("Admins cannot disable themselves or give up their own role.")
    now = utcnow()
    ends_sessions = False
    requests: list[dict[str, Any] | None] = []
    if data.role is not None:
        requests.append(await _withdraw_role_request(session, user.id, by=actor.id, now=now))
        held = Role(user.role) if user.role is not None else None
        if data.role != held and needs_approval(data.role, held, kit.roles_needing_approval):
            requests.append(
                await _ask_for_role(session, user.id, role=data.role, by=actor.id, now=now)
            )
        elif data.role != held:
            user.role = data.role
            ends_sessions = True
    if data.disabled is not None and data.disabled != user.disabled:
        user.disabled = data.disabled
        ends_sessions = ends_sessions or data.disabled
    bump(user, at=now)
    await repository.save(session, user)
    if ends_sessions:
        await repository.revoke_sessions(session, user.id, now=now, reason="account_changed")
    journal_of(session).changed(
        "user.update",
        "user",
        user.id,
        changes=[change("user", user.id, before=before, after=_user_snapshot(user)), *requests],
    )
    return user


async def reset_user(
    session: AsyncSession,
    kit: SecurityKit,
    user_id: uuid.UUID,
    *,
    expected_version: int,
    actor: Principal,
) -> tuple[AppUser, EnrolmentCode]:
    """A lost password or phone: the password and TOTP secret are cleared, every session
    ends at once, and a new enrolment code (replacing any older one) lets the person enrol
    again. Whoever redeems that code gets the account, so a role that needs approval is
    suspended, and a role request is withdrawn and filed again (for the role it asked for,
    else the suspended one): a second person approves it once the account is enrolled
    again, never with an approval given before."""
    user = await get_user(session, user_id, for_update=True)
    check_version(user.version, expected_version, what="user")
    if user.id == actor.id:
        raise Conflict("Admins cannot reset their own account; another admin can.")
    credentials = ("password", "totp", "enrolment_code")
    before = {**_user_snapshot(user), **dict.fromkeys(credentials)}
    now = utcnow()
    held = Role(user.role) if user.role is not None else None
    suspended = held is not None and held in kit.roles_needing_approval
    open_request = await repository.pending_role_request(session, user.id, for_update=True)
    asked = held if suspended else None
    if open_request is not None:
        asked = Role(open_request.role)
    requests: list[dict[str, Any] | None] = []
    if asked is not None:
        requests.append(await _withdraw_role_request(session, user.id, by=actor.id, now=now))
        requests.append(await _ask_for_role(session, user.id, role=asked, by=actor.id, now=now))
    if suspended:
        user.role = None
    user.password_hash, user.totp_secret, user.totp_last_step = None, None, 0
    user.enrolled_at, user.enrolled_from_address, user.enrolled_user_agent = None, None, None
    code = _issue_enrolment_code(kit, user, now)
    bump(user, at=now)
    await repository.save(session, user)
    await repository.revoke_sessions(session, user.id, now=now, reason="reset")
    after = {**_user_snapshot(user), **dict.fromkeys(credentials, CHANGED)}
    journal_of(session).changed(
        "user.reset",
        "user",
        user.id,
        changes=[change("user", user.id, before=before, after=after), *requests],
    )
    return user, code


# Enrolment: two steps, both with the enrolment code. The first sets the password and
# answers with a new TOTP secret; the second proves the authenticator works with its first
# code, and only then is the code used up and the account usable. A mistyped secret is
# fixed by doing the first step again, without a new code.


def _enrolment_throttle_key(address: str) -> str:
    return f"enrolment-address:{address_group(address)}"


async def _redeemable(
    session: AsyncSession, kit: SecurityKit, code: str, *, address: str, now: datetime
) -> AppUser:
    """The account an open enrolment code belongs to; a wrong, expired or used code (or a
    disabled account's) gets one answer, and counts towards the address's throttle."""
    key = _enrolment_throttle_key(address)
    blocked = await repository.blocked_until(session, [key])
    if blocked is not None and blocked > now:
        metrics.sign_in_throttled(ENROLMENT_FLOW)
        raise TooManyAttempts(max(1, int((blocked - now).total_seconds()) + 1))
    user = await repository.user_by_enrolment_code(session, enrolment_code_digest(code))
    expires_at = user.enrolment_expires_at if user is not None else None
    if user is None or user.disabled or expires_at is None or expires_at <= now:
        await _count_enrolment_failure(session, kit, address=address, now=now)
        raise EnrolmentFailed(ENROLMENT_FAILED)
    journal_of(session).subject = ("user", user.id)
    return user


async def _count_enrolment_failure(
    session: AsyncSession, kit: SecurityKit, *, address: str, now: datetime
) -> None:
    settings = kit.settings
    log.warning("enrolment_failed", address=address)
    metrics.sign_in_failed(ENROLMENT_FLOW)
    await repository.record_failure(
        session,
        _enrolment_throttle_key(address),
        now=now,
        window_start=now - timedelta(seconds=settings.login_failure_window_seconds),
        limit=settings.login_max_failures_per_address,
        blocked_until=now + timedelta(seconds=settings.login_block_seconds),
    )


async def start_enrolment(
    session: AsyncSession, kit: SecurityKit, code: str, *, password: str, address: str
) -> tuple[AppUser, str]:
    """Step one: the person's own password (checked by the password rules) and a new TOTP
    secret, returned to them only."""
    now = utcnow()
    journal = journal_of(session)
    journal.attempted = "user.enrol"
    user = await _redeemable(session, kit, code, address=address, now=now)
    await asyncio.to_thread(check_new_password, password, user.username)
    before = {**_user_snapshot(user), "password": None, "totp": None}
    secret = new_totp_secret()
    user.password_hash = await kit.hash_secret(password)
    user.totp_secret = kit.seal_totp(user.id, secret)
    user.totp_last_step = 0
    bump(user, at=now)
    await repository.save(session, user)
    after = {**_user_snapshot(user), "password": CHANGED, "totp": CHANGED}
    journal.acting_as(Actor("user", user.id, user.role))
    journal.changed(
        "user.enrol", "user", user.id, changes=[change("user", user.id, before=before, after=after)]
    )
    return user, secret


# Kept with the enrolment for approvers to check with the person, not as evidence: a
# client sets its own user agent. The address is cut as throttling cuts it (ADDRESS_CHARS).
USER_AGENT_CHARS = 300


async def confirm_enrolment(
    session: AsyncSession,
    kit: SecurityKit,
    code: str,
    *,
    one_time_code: str,
    address: str,
    user_agent: str | None,
) -> AppUser:
    """Step two: the authenticator's current code. The enrolment code is used up (it
    cannot be redeemed again) and the account can sign in, once it holds a role. When and
    from where this happened is kept for whoever approves the account's role."""
    now = utcnow()
    journal = journal_of(session)
    journal.attempted = "user.confirm_enrolment"
    user = await _redeemable(session, kit, code, address=address, now=now)
    step = None
    if user.password_hash is not None:
        step = matching_totp_step(kit.open_totp(user), one_time_code, user.totp_last_step)
    if step is None:
        await _count_enrolment_failure(session, kit, address=address, now=now)
        raise EnrolmentFailed(
            "The one-time code does not match the new authenticator entry (or no password "
            "was set with this enrolment code yet)."
        )
    before = _user_snapshot(user)
    # The confirming code counts as used: it cannot also sign in.
    user.totp_last_step = step
    user.enrolment_code_hash, user.enrolment_expires_at = None, None
    user.enrolled_at = now
    user.enrolled_from_address = address[:ADDRESS_CHARS]
    user.enrolled_user_agent = user_agent[:USER_AGENT_CHARS] if user_agent else None
    bump(user, at=now)
    await repository.save(session, user)
    journal.acting_as(Actor("user", user.id, user.role))
    journal.changed(
        "user.confirm_enrolment",
        "user",
        user.id,
        changes=[change("user", user.id, before=before, after=_user_snapshot(user))],
    )
    return user


# Role requests ---------------------------------------------------------------------------


async def _ask_for_role(
    session: AsyncSession, user_id: uuid.UUID, *, role: Role, by: uuid.UUID | None, now: datetime
) -> dict[str, Any] | None:
    request = RoleRequest(user_id=user_id, role=role, requested_by=by, requested_at=now)
    await repository.add(session, request)
    return change("role_request", request.id, before=None, after=_request_snapshot(request))


async def _withdraw_role_request(
    session: AsyncSession, user_id: uuid.UUID, *, by: uuid.UUID | None, now: datetime
) -> dict[str, Any] | None:
    """End the user's open request, if any (a later role change replaces it)."""
    request = await repository.pending_role_request(session, user_id, for_update=True)
    if request is None:
        return None
    before = _request_snapshot(request)
    request.status = RoleRequestStatus.withdrawn
    request.decided_by, request.decided_at = by, now
    request.version += 1
    await repository.save(session, request)
    return change("role_request", request.id, before=before, after=_request_snapshot(request))


async def list_role_requests(
    session: AsyncSession, cursor: str | None, limit: int
) -> tuple[list[RoleRequest], dict[uuid.UUID, AppUser], str | None]:
    """Open requests, oldest first, with the accounts they are for."""
    requests, next_cursor = await id_keyset_page(
        lambda after, n: repository.pending_role_requests_page(session, after, n),
        {"role_requests": "pending"},
        cursor=cursor,
        limit=limit,
    )
    users = await repository.users_by_id(session, [request.user_id for request in requests])
    return requests, users, next_cursor


async def get_role_request(
    session: AsyncSession, request_id: uuid.UUID, *, for_update: bool = False
) -> RoleRequest:
    request = await repository.role_request(session, request_id, for_update=for_update)
    if request is None:
        raise NotFound("No such role request.")
    return request


async def pending_role_request_of(session: AsyncSession, username: str) -> RoleRequest:
    user = await repository.user_by_username(session, username.lower())
    request = await repository.pending_role_request(session, user.id) if user else None
    if request is None:
        raise NotFound("That user has no role request waiting for approval.")
    return request


NOT_ENROLLED = (
    "The account has not enrolled yet (or was reset and has not enrolled again): a role is "
    "approved only once the person has enrolled, and after confirming with them, out of "
    "band, that it was them (see enrolled_at, enrolled_from_address and enrolled_user_agent)."
)


async def decide_role_request(
    session: AsyncSession,
    request_id: uuid.UUID,
    expected_version: int,
    *,
    approve: bool,
    decider: Principal | None,
) -> tuple[RoleRequest, AppUser]:
    """Approve (the user holds the role from now on; their sessions end, so that the next
    ones carry it) or reject. Approval needs a second person: neither the one who asked nor
    the one it is for; and an enrolled account: an approval vouches for the person who
    enrolled, so it is never given ahead to whoever will redeem a code. `decider` None is
    the system (the command line, run by an operator who holds the database's keys
    anyway)."""
    # The user's row is locked before the request's, in the order role changes lock them.
    subject = (await get_role_request(session, request_id)).user_id
    user = await get_user(session, subject, for_update=True)
    request = await get_role_request(session, request_id, for_update=True)
    check_version(request.version, expected_version, what="role request")
    if request.status != RoleRequestStatus.pending:
        raise Conflict(f"This role request was already {request.status}.")
    if approve and decider is not None and decider.id in (request.requested_by, request.user_id):
        raise Forbidden(
            "A role needs a second person's approval: not the one who asked for it, and not "
            "the one who would hold it."
        )
    if approve and not user.enrolled:
        raise Conflict(NOT_ENROLLED)
    before_request, before_user = _request_snapshot(request), _user_snapshot(user)
    now = utcnow()
    request.status = RoleRequestStatus.approved if approve else RoleRequestStatus.rejected
    request.decided_by, request.decided_at = (decider.id if decider else None), now
    request.version += 1
    if approve:
        user.role = request.role
    bump(user, at=now)
    await repository.save(session, request)
    await repository.save(session, user)
    if approve:
        await repository.revoke_sessions(session, user.id, now=now, reason="account_changed")
    journal_of(session).changed(
        "user.approve_role" if approve else "user.reject_role",
        "role_request",
        request.id,
        changes=[
            change(
                "role_request", request.id, before=before_request, after=_request_snapshot(request)
            ),
            change("user", user.id, before=before_user, after=_user_snapshot(user)),
        ],
        related=[user.id],
    )
    return request, user


async def inactive_or_not_caseworkers(
    session: AsyncSession, user_ids: Collection[uuid.UUID]
) -> list[uuid.UUID]:
    """The ids that do not name an active caseworker account (who may not be assigned to a
    case file), in the order given."""
    active = await repository.active_user_ids(session, user_ids, Role.caseworker)
    return [user_id for user_id in user_ids if user_id not in active]

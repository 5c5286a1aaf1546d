"""Use cases of identity: accounts, sign-in with password and one-time code, sessions with
rotating refresh tokens, partner clients, and turning a bearer token into a Principal."""

import asyncio
import hashlib
import ipaddress
import re
import secrets
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from app.access.principal import Principal, PrincipalKind, Role, SharingAgreement, Tier
from app.audit.journal import Actor, change, journal_of
from app.core import metrics
from app.core.clock import utcnow
from app.core.config import Settings
from app.core.crypto import AuditKeyRing, DataKeyRing
from app.core.errors import (
    Conflict,
    EnrolmentFailed,
    Forbidden,
    InvalidKeySet,
    NotFound,
    PreconditionFailed,
    SessionRevoked,
    SignInFailed,
    TooManyAttempts,
    Unauthenticated,
)
from app.core.pagination import id_keyset_page
from app.identity import repository
from app.identity.credentials import (
    Passwords,
    digest_of,
    enrolment_code_digest,
    matching_totp_step,
    new_enrolment_code,
    new_opaque_token,
    new_totp_secret,
    totp_uri,
)
from app.identity.models import (
    AppUser,
    Partner,
    RefreshToken,
    RoleRequest,
    RoleRequestStatus,
    UserSession,
)
from app.identity.oidc import OidcVerifier
from app.identity.passwords import check_new_password
from app.identity.roles import needs_approval
from app.identity.schemas import (
    USERNAME_PATTERN,
    AgreementInput,
    Jwks,
    PartnerCreate,
    PartnerUpdate,
    TokenPair,
    UserCreate,
    UserUpdate,
)
from app.identity.tokens import AccessTokens, unverified_parts

log = structlog.get_logger(__name__)

USER_CLIENT_ID = "habeas"
# Client public keys must be asymmetric; a shared-secret JWK would let anyone holding the
# agreement data sign assertions.
ASYMMETRIC_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})
# Derived ids for identities from the external provider: stable per issuer + subject.
EXTERNAL_NAMESPACE = uuid.UUID("5d1c8a36-5f4a-4c55-9d0e-2f9a4d0b7e11")


@dataclass
class SecurityKit:
    """What authentication needs, built once at start-up."""

    settings: Settings
    passwords: Passwords
    tokens: AccessTokens
    data_keys: DataKeyRing
    audit_keys: AuditKeyRing
    oidc: OidcVerifier | None
    # Checked at start-up from the setting (app/identity/roles.py).
    roles_needing_approval: frozenset[Role]


# What the trail records for a credential that was replaced (never the credential).
CHANGED = "changed"


async def _hash(kit: SecurityKit, secret: str) -> str:
    # argon2id is deliberately slow (tens of ms): off the event loop, so one sign-in does
    # not stall every other request of the worker.
    return await asyncio.to_thread(kit.passwords.hash, secret)


async def _add_unique(session: AsyncSession, row: object, taken: str) -> None:
    """Insert; a concurrent insert of the same unique name is a 409, not a 500."""
    try:
        await repository.add(session, row)
    except IntegrityError:
        raise Conflict(taken) from None


# Accounts -------------------------------------------------------------------------------
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


def _seal_totp(kit: SecurityKit, user_id: uuid.UUID, secret: str) -> bytes:
    return kit.data_keys.seal("app_user", "totp_secret", user_id, secret.encode())


def _open_totp(kit: SecurityKit, user: AppUser) -> str:
    if user.totp_secret is None:
        # Only asked for an account whose password was set, which sets the secret too.
        raise RuntimeError("this account has no TOTP secret")
    return kit.data_keys.open("app_user", "totp_secret", user.id, user.totp_secret).decode()


def _may_sign_in(user: AppUser) -> bool:
    """Enabled, enrolled (a password and a confirmed authenticator) and holding a role."""
    return not user.disabled and user.enrolled and user.role is not None


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
    await _add_unique(session, user, "That username is taken.")
    changes = [change("user", user.id, None, {**_user_snapshot(user), "enrolment_code": CHANGED})]
    if waits:
        changes.append(
            await _ask_for_role(session, user.id, role=data.role, by=requested_by, now=now)
        )
    journal_of(session).changed(
        "user.create",
        "user",
        user.id,
        changes,
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
        password_hash=await _hash(kit, password),
        enrolled_at=utcnow(),
    )
    user.totp_secret = _seal_totp(kit, user.id, secret)
    await _add_unique(session, user, "That username is taken.")
    created = {**_user_snapshot(user), "password": CHANGED, "totp": CHANGED}
    journal_of(session).changed(
        "user.create",
        "user",
        user.id,
        [change("user", user.id, None, created)],
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
        lambda after, n: repository.users_page(session, after, n), {"users": True}, cursor, limit
    )


async def pending_roles(session: AsyncSession, users: list[AppUser]) -> dict[uuid.UUID, Role]:
    """The role each user waits to have approved, if any."""
    found = await repository.pending_roles(session, [user.id for user in users])
    return {user_id: Role(role) for user_id, role in found.items()}


def _check_version(version: int, expected: int, what: str) -> None:
    if version != expected:
        raise PreconditionFailed(f"The {what} is at version {version}.", current_version=version)


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
    _check_version(user.version, expected_version, "user")
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
    user.version += 1
    user.updated_at = now
    await repository.save(session, user)
    if ends_sessions:
        await repository.revoke_sessions(session, user.id, now, "account_changed")
    journal_of(session).changed(
        "user.update",
        "user",
        user.id,
        [change("user", user.id, before, _user_snapshot(user)), *requests],
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
    _check_version(user.version, expected_version, "user")
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
    user.version += 1
    user.updated_at = now
    await repository.save(session, user)
    await repository.revoke_sessions(session, user.id, now, "reset")
    after = {**_user_snapshot(user), **dict.fromkeys(credentials, CHANGED)}
    journal_of(session).changed(
        "user.reset", "user", user.id, [change("user", user.id, before, after), *requests]
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
    user.password_hash = await _hash(kit, password)
    user.totp_secret = _seal_totp(kit, user.id, secret)
    user.totp_last_step = 0
    user.version += 1
    user.updated_at = now
    await repository.save(session, user)
    after = {**_user_snapshot(user), "password": CHANGED, "totp": CHANGED}
    journal.acting_as(Actor("user", user.id, user.role))
    journal.changed("user.enrol", "user", user.id, [change("user", user.id, before, after)])
    return user, secret


# Kept with the enrolment for approvers to check with the person, not as evidence: a
# client sets its own user agent.
ADDRESS_CHARS, USER_AGENT_CHARS = 64, 300


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
        step = matching_totp_step(_open_totp(kit, user), one_time_code, user.totp_last_step)
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
    user.version += 1
    user.updated_at = now
    await repository.save(session, user)
    journal.acting_as(Actor("user", user.id, user.role))
    journal.changed(
        "user.confirm_enrolment",
        "user",
        user.id,
        [change("user", user.id, before, _user_snapshot(user))],
    )
    return user


# Role requests ---------------------------------------------------------------------------


async def _ask_for_role(
    session: AsyncSession, user_id: uuid.UUID, *, role: Role, by: uuid.UUID | None, now: datetime
) -> dict[str, Any] | None:
    request = RoleRequest(user_id=user_id, role=role, requested_by=by, requested_at=now)
    await repository.add(session, request)
    return change("role_request", request.id, None, _request_snapshot(request))


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
    return change("role_request", request.id, before, _request_snapshot(request))


async def list_role_requests(
    session: AsyncSession, cursor: str | None, limit: int
) -> tuple[list[RoleRequest], dict[uuid.UUID, AppUser], str | None]:
    """Open requests, oldest first, with the accounts they are for."""
    requests, next_cursor = await id_keyset_page(
        lambda after, n: repository.pending_role_requests_page(session, after, n),
        {"role_requests": "pending"},
        cursor,
        limit,
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
    _check_version(request.version, expected_version, "role request")
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
    user.version += 1
    user.updated_at = now
    await repository.save(session, request)
    await repository.save(session, user)
    if approve:
        await repository.revoke_sessions(session, user.id, now, "account_changed")
    journal_of(session).changed(
        "user.approve_role" if approve else "user.reject_role",
        "role_request",
        request.id,
        [
            change("role_request", request.id, before_request, _request_snapshot(request)),
            change("user", user.id, before_user, _user_snapshot(user)),
        ],
        related=[user.id],
    )
    return request, user


# Throttling of failed authentication ------------------------------------------------------
# What the settings describe (app/core/config.py): per identity and address, per address,
# and per identity from everywhere (not holding back addresses the account signed in from
# lately); sign-in and the partner token endpoint share it.

# One host commonly holds a whole IPv6 /64, so its addresses count as one.
IPV6_HOST_PREFIX = 64


def address_group(address: str) -> str:
    """What throttling counts a client address as: an IPv4 address itself (also written
    IPv4-mapped), an IPv6 address its /64, anything else (no address) as given."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:ADDRESS_CHARS]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        host_bits = 128 - IPV6_HOST_PREFIX
        network = ipaddress.IPv6Network((int(parsed) >> host_bits << host_bits, IPV6_HOST_PREFIX))
        return str(network)
    return str(parsed)


# The ways in that failures are counted for (labels of the sign-in metrics: never a name
# or an address).
USER_FLOW, PARTNER_FLOW, ENROLMENT_FLOW = "user", "partner", "enrolment"


@dataclass(frozen=True)
class Limit:
    """Failures counted under `key` within the window; the `max_failures`-th, and each one
    after it in the window, blocks the key for `block_seconds`."""

    key: str
    max_failures: int
    block_seconds: int


@dataclass(frozen=True)
class Throttle:
    """The counters one authentication attempt is judged by and, if it fails, counts to."""

    # Which way in this is, for the metrics: USER_FLOW or PARTNER_FLOW.
    flow: str
    address: Limit
    # The identity (account or client id) from this address: a success clears it, so the
    # owner's own typos are forgiven; others' failures elsewhere are not.
    pair: Limit
    # The identity from every address, if it has such a limit.
    identity: Limit | None = None
    # The identity's block does not hold back this address (the owner's lately); its
    # failures still count.
    identity_block_waived: bool = False

    @property
    def serial_key(self) -> str:
        """The row locked for the rest of the attempt: concurrent attempts on one identity
        are judged one after another, so none slips past a block."""
        return (self.identity or self.pair).key

    @property
    def identity_limits(self) -> list[Limit]:
        return [limit for limit in (self.pair, self.identity) if limit is not None]

    @property
    def blocking_limits(self) -> list[Limit]:
        """The identity's limits whose blocks refuse this attempt."""
        if self.identity_block_waived:
            return [self.pair]
        return self.identity_limits


def _account_key(username: str) -> str:
    """The account a sign-in names, as throttling counts it: a name that cannot be a
    username (a forbidden character, too long) is counted by its digest, like any unknown
    name, but keeps no such characters in the table."""
    account = username.lower()
    if re.fullmatch(USERNAME_PATTERN, account):
        return account
    digest = hashlib.sha256(username.encode()).hexdigest()
    return f"~{digest[:32]}"


def _sign_in_throttle(
    settings: Settings, account: str, address: str, *, address_known: bool
) -> Throttle:
    """`address`: as grouped by `address_group`."""
    return Throttle(
        flow=USER_FLOW,
        address=Limit(
            f"address:{address}",
            settings.login_max_failures_per_address,
            settings.login_block_seconds,
        ),
        pair=Limit(
            f"account|address:{account}|{address}",
            settings.login_max_failures_per_account_and_address,
            settings.login_block_seconds,
        ),
        identity=Limit(
            f"account:{account}",
            settings.login_max_failures_per_account,
            settings.login_account_block_seconds,
        ),
        identity_block_waived=address_known,
    )


def partner_throttle(settings: Settings, client_id: str, address: str) -> Throttle:
    """The token endpoint's counters; the address's are apart from sign-in's."""
    address = address_group(address)
    return Throttle(
        flow=PARTNER_FLOW,
        address=Limit(
            f"token-address:{address}",
            settings.login_max_failures_per_address,
            settings.login_block_seconds,
        ),
        pair=Limit(
            f"token-client|address:{client_id}|{address}",
            settings.login_max_failures_per_account_and_address,
            settings.login_block_seconds,
        ),
    )


async def enter_throttle(session: AsyncSession, throttle: Throttle, now: datetime) -> None:
    """Refuse an attempt a block holds back (429); else hold the identity's row until the
    attempt is judged."""
    # A blocked address is refused before anything is written for the identity it names,
    # so that a flood of invented names leaves no rows behind.
    address_blocked = await repository.blocked_until(session, [throttle.address.key])
    _refuse_if_blocked(throttle, address_blocked, now)
    await repository.lock_throttle(session, throttle.serial_key, now)
    keys = [limit.key for limit in throttle.blocking_limits]
    _refuse_if_blocked(throttle, await repository.blocked_until(session, keys), now)


async def count_failure(
    session: AsyncSession, settings: Settings, throttle: Throttle, now: datetime
) -> None:
    metrics.sign_in_failed(throttle.flow)
    window_start = now - timedelta(seconds=settings.login_failure_window_seconds)
    for limit in [throttle.address, *throttle.identity_limits]:
        await repository.record_failure(
            session,
            limit.key,
            now=now,
            window_start=window_start,
            limit=limit.max_failures,
            blocked_until=now + timedelta(seconds=limit.block_seconds),
        )


async def forget_failures(session: AsyncSession, throttle: Throttle, now: datetime) -> None:
    await repository.clear_failures(session, throttle.pair.key, now)


def _refuse_if_blocked(throttle: Throttle, blocked: datetime | None, now: datetime) -> None:
    if blocked is not None and blocked > now:
        log.warning("authentication_throttled", attempt=throttle.pair.key[:200])
        metrics.sign_in_throttled(throttle.flow)
        raise TooManyAttempts(max(1, int((blocked - now).total_seconds()) + 1))


async def purge_expired(session: AsyncSession, settings: Settings) -> dict[str, int]:
    """Delete what throttling and replay protection no longer need (the counters' keys
    hold names people typed); how many rows of each kind went."""
    now = utcnow()
    window_start = now - timedelta(seconds=settings.login_failure_window_seconds)
    known_since = now - timedelta(days=settings.login_known_address_days)
    return {
        "sign_in_throttles": await repository.purge_throttles(
            session, window_start=window_start, now=now
        ),
        "known_sign_in_addresses": await repository.purge_known_addresses(session, known_since),
        "client_assertion_uses": await repository.purge_assertion_uses(session, now),
    }


# Sign-in and sessions --------------------------------------------------------------------


async def sign_in(
    session: AsyncSession,
    kit: SecurityKit,
    username: str,
    password: str,
    code: str,
    address: str,
) -> TokenPair:
    settings = kit.settings
    now = utcnow()
    journal = journal_of(session)
    journal.attempted = "auth.sign_in"
    account, group = _account_key(username), address_group(address)
    since = now - timedelta(days=settings.login_known_address_days)
    known = await repository.is_known_address(session, account, group, since)
    throttle = _sign_in_throttle(settings, account, group, address_known=known)
    await enter_throttle(session, throttle, now)

    user = await repository.user_by_username(session, account)
    if user is not None:
        journal.subject = ("user", user.id)
    # Every path verifies one argon2 hash, so an unknown user costs what a known one does.
    password_ok = await asyncio.to_thread(
        kit.passwords.verify, user.password_hash if user else None, password
    )
    step = None
    if user is not None and password_ok and _may_sign_in(user):
        step = matching_totp_step(_open_totp(kit, user), code, user.totp_last_step)
    if user is None or step is None:
        await count_failure(session, settings, throttle, now)
        log.warning("sign_in_failed", account=account, address=address)
        raise SignInFailed("The username, password or code is not right.")

    user.totp_last_step = step
    if kit.passwords.needs_rehash(user.password_hash):
        user.password_hash = await _hash(kit, password)
    await repository.save(session, user)
    await forget_failures(session, throttle, now)
    await repository.remember_address(session, user.id, group, now)
    user_session = UserSession(
        user_id=user.id, expires_at=now + timedelta(days=settings.session_max_days)
    )
    await repository.add(session, user_session)
    log.info("signed_in", user=str(user.id), session=str(user_session.id))
    journal.acting_as(Actor("user", user.id, user.role))
    journal.changed("auth.sign_in", "user_session", user_session.id, [], related=[user.id])
    return await _token_pair(session, kit, user, user_session, now)


async def _token_pair(
    session: AsyncSession, kit: SecurityKit, user: AppUser, user_session: UserSession, now: datetime
) -> TokenPair:
    settings = kit.settings
    refresh = new_opaque_token()
    refresh_expires = min(
        now + timedelta(days=settings.refresh_token_days), user_session.expires_at
    )
    await repository.add(
        session,
        RefreshToken(
            session_id=user_session.id, token_hash=refresh.digest, expires_at=refresh_expires
        ),
    )
    access = kit.tokens.issue(
        user.id,
        settings.access_token_minutes * 60,
        client_id=USER_CLIENT_ID,
        role=user.role,
        sid=str(user_session.id),
    )
    return TokenPair(
        access_token=access.token,
        expires_in=access.expires_in,
        refresh_token=refresh.value,
        refresh_expires_in=int((refresh_expires - now).total_seconds()),
    )


async def refresh(session: AsyncSession, kit: SecurityKit, token: str) -> TokenPair:
    now = utcnow()
    found = await repository.refresh_token(session, digest_of(token))
    if found is None:
        raise Unauthenticated("The refresh token is not valid.")
    stored, user_session, user = found
    journal = journal_of(session)
    journal.attempted = "auth.refresh"
    journal.subject = ("user_session", user_session.id)
    if stored.used_at is not None:
        # A refresh token is good once. Seeing it again means two parties hold it, so the
        # whole session ends for both (OAuth 2.0 Security BCP §4.14).
        await repository.revoke_session(session, user_session.id, now, "refresh_token_reuse")
        log.warning("refresh_token_reused", user=str(user.id), session=str(user_session.id))
        raise SessionRevoked("This refresh token was already used; the session is ended.")
    if (
        user_session.revoked_at is not None
        or user_session.expires_at <= now
        or stored.expires_at <= now
        or user.disabled
    ):
        raise Unauthenticated("The session has ended; sign in again.")
    stored.used_at = now
    await repository.save(session, stored)
    journal.acting_as(Actor("user", user.id, user.role))
    journal.changed("auth.refresh", "user_session", user_session.id, [], related=[user.id])
    return await _token_pair(session, kit, user, user_session, now)


async def end_session(session: AsyncSession, principal: Principal) -> None:
    if principal.session_id is not None:
        now = utcnow()
        await repository.revoke_session(session, principal.session_id, now, "signed_out")
        journal_of(session).changed(
            "auth.sign_out",
            "user_session",
            principal.session_id,
            [
                change(
                    "user_session",
                    principal.session_id,
                    {"revoked_reason": None},
                    {"revoked_reason": "signed_out"},
                )
            ],
        )


# Bearer tokens -> principals ---------------------------------------------------------------


def _agreement(row: dict[str, Any]) -> SharingAgreement | None:
    """The partner's sharing agreement, if a coordinator (or the system) approved it; an
    agreement not approved shares nothing."""
    if row["agreement_approved_at"] is None:
        return None
    return SharingAgreement(
        jurisdiction=row["share_jurisdiction"],
        recognised_only=row["share_recognised_only"],
        case_file_ids=frozenset(row["share_case_file_ids"]),
        max_tier=Tier[row["max_tier"]],
        read_write=row["read_write"],
    )


def _uuid_claim(claims: dict[str, Any], name: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(claims[name]))
    except (KeyError, ValueError):
        raise Unauthenticated("The access token is not valid.") from None


async def authenticate(session: AsyncSession, kit: SecurityKit, token: str) -> Principal:
    _, unverified = unverified_parts(token)
    issuer = unverified.get("iss")
    if issuer == kit.settings.token_issuer:
        return await _local_principal(session, kit, token)
    if kit.oidc is not None and issuer == kit.settings.oidc_issuer:
        identity = await kit.oidc.verify(token)
        return Principal(
            kind=PrincipalKind.user,
            id=uuid.uuid5(EXTERNAL_NAMESPACE, f"{identity.issuer}|{identity.subject}"),
            role=identity.role,
            external_subject=f"{identity.issuer}|{identity.subject}",
        )
    raise Unauthenticated("The access token is not from an accepted issuer.")


async def _local_principal(session: AsyncSession, kit: SecurityKit, token: str) -> Principal:
    claims = kit.tokens.verify(token)
    subject = _uuid_claim(claims, "sub")
    if claims.get("client_id") == USER_CLIENT_ID:
        session_id = _uuid_claim(claims, "sid")
        role = await repository.live_session_role(session, session_id, subject, utcnow())
        if role is None:
            raise Unauthenticated("The session has ended; sign in again.")
        return Principal(
            kind=PrincipalKind.user, id=subject, role=Role(role), session_id=session_id
        )
    row = await repository.live_partner(session, subject)
    if row is None:
        raise Unauthenticated("The client is disabled or unknown.")
    granted = frozenset(str(claims.get("scope", "")).split()) & frozenset(row["scopes"])
    return Principal(
        kind=PrincipalKind.partner, id=subject, scopes=granted, agreement=_agreement(row)
    )


# Partners ---------------------------------------------------------------------------------


def _checked_jwks(jwks: Jwks) -> dict[str, Any]:
    try:
        key_set = KeySet.import_key_set({"keys": jwks.keys})
    except (JoseError, ValueError, TypeError, KeyError) as error:
        raise InvalidKeySet(f"public_jwks is not a valid key set: {error}") from None
    for key in key_set.keys:
        if key.key_type not in ASYMMETRIC_KEY_TYPES or key.is_private:
            raise InvalidKeySet("public_jwks must hold public RSA, EC or OKP keys only.")
    return {"keys": [key.as_dict(private=False) for key in key_set.keys]}


# What a partner sees is a data-sharing decision: a coordinator's (`partner.share`), never
# the admin's alone, who creates the partner and handles its credentials (DESIGN §4). An
# agreement is honoured only while approved, and a change of credentials by an admin
# suspends the approval: the admin then holds a secret (or chose keys) that the agreement
# would otherwise honour.


def _approve_agreement(
    partner: Partner, agreement: AgreementInput, *, approved_by: uuid.UUID | None, now: datetime
) -> None:
    partner.share_jurisdiction = agreement.jurisdiction
    partner.share_recognised_only = agreement.recognised_only
    partner.share_case_file_ids = sorted(set(agreement.case_file_ids))
    partner.max_tier = agreement.max_tier
    partner.read_write = agreement.read_write
    partner.agreement_approved_by, partner.agreement_approved_at = approved_by, now


def _suspend_agreement(partner: Partner) -> None:
    partner.agreement_approved_by, partner.agreement_approved_at = None, None


async def create_partner(
    session: AsyncSession,
    kit: SecurityKit,
    data: PartnerCreate,
    *,
    system_agreement: AgreementInput | None = None,
) -> tuple[Partner, str | None]:
    """A partner client that sees nothing until a coordinator approves its agreement. The
    command line, run by an operator who holds the database and the keys anyway, may give
    the agreement at once (`system_agreement`), approved by the system."""
    partner = Partner(
        name=data.name,
        client_id="hbp_" + secrets.token_hex(12),
        auth_method=data.auth_method,
        scopes=sorted(set(data.scopes)),
    )
    if system_agreement is not None:
        _approve_agreement(partner, system_agreement, approved_by=None, now=utcnow())
    secret = None
    if data.public_jwks is not None:
        partner.public_jwks = _checked_jwks(data.public_jwks)
    else:
        secret = secrets.token_urlsafe(32)
        partner.secret_hash = await _hash(kit, secret)
    if await repository.partner_name_taken(session, data.name):
        raise Conflict("A partner with that name exists.")
    await _add_unique(session, partner, "A partner with that name exists.")
    journal_of(session).changed(
        "partner.create",
        "partner",
        partner.id,
        [change("partner", partner.id, None, _partner_snapshot(partner))],
    )
    return partner, secret


def _partner_snapshot(partner: Partner) -> dict[str, Any]:
    # Never the secret's hash (public keys are not secret).
    return {
        "name": partner.name,
        "client_id": partner.client_id,
        "auth_method": partner.auth_method,
        "scopes": list(partner.scopes),
        "disabled": partner.disabled,
        "share_jurisdiction": partner.share_jurisdiction,
        "share_recognised_only": partner.share_recognised_only,
        "share_case_file_ids": [str(i) for i in partner.share_case_file_ids],
        "max_tier": partner.max_tier,
        "read_write": partner.read_write,
        "agreement_approved": partner.agreement_approved,
        "agreement_approved_by": (
            str(partner.agreement_approved_by) if partner.agreement_approved_by else None
        ),
        "public_jwks": partner.public_jwks,
        "version": partner.version,
    }


def key_thumbprints(partner: Partner) -> list[str]:
    """The RFC 7638 SHA-256 thumbprints of the partner's public keys: what a coordinator
    confirms with the partner, out of band, before approving its agreement."""
    jwks: Any = partner.public_jwks
    if not jwks:
        return []
    return [key.thumbprint() for key in KeySet.import_key_set(jwks).keys]


async def get_partner(
    session: AsyncSession, partner_id: uuid.UUID, *, for_update: bool = False
) -> Partner:
    partner = await repository.partner(session, partner_id, for_update=for_update)
    if partner is None:
        raise NotFound("No such partner.")
    return partner


async def list_partners(
    session: AsyncSession, cursor: str | None, limit: int
) -> tuple[list[Partner], str | None]:
    return await id_keyset_page(
        lambda after, n: repository.partners_page(session, after, n),
        {"partners": True},
        cursor,
        limit,
    )


async def update_partner(
    session: AsyncSession, partner_id: uuid.UUID, expected_version: int, data: PartnerUpdate
) -> Partner:
    """Scopes, keys, disabling. New keys suspend the sharing agreement."""
    partner = await get_partner(session, partner_id, for_update=True)
    _check_version(partner.version, expected_version, "partner")
    before = _partner_snapshot(partner)
    if data.scopes is not None:
        partner.scopes = sorted(set(data.scopes))
    if data.disabled is not None:
        partner.disabled = data.disabled
    if data.public_jwks is not None:
        if partner.auth_method != "private_key_jwt":
            raise Conflict("This partner authenticates with a client secret.")
        keys = _checked_jwks(data.public_jwks)
        if keys != partner.public_jwks:
            partner.public_jwks = keys
            _suspend_agreement(partner)
    partner.version += 1
    partner.updated_at = utcnow()
    await repository.save(session, partner)
    journal_of(session).changed(
        "partner.update",
        "partner",
        partner.id,
        [change("partner", partner.id, before, _partner_snapshot(partner))],
    )
    return partner


async def new_partner_secret(
    session: AsyncSession, kit: SecurityKit, partner_id: uuid.UUID, expected_version: int
) -> str:
    partner = await get_partner(session, partner_id, for_update=True)
    _check_version(partner.version, expected_version, "partner")
    if partner.auth_method != "client_secret":
        raise Conflict("This partner authenticates with a private-key JWT.")
    before = {**_partner_snapshot(partner), "secret": None}
    secret = secrets.token_urlsafe(32)
    partner.secret_hash = await _hash(kit, secret)
    _suspend_agreement(partner)
    partner.version += 1
    partner.updated_at = utcnow()
    await repository.save(session, partner)
    after = {**_partner_snapshot(partner), "secret": CHANGED}
    journal_of(session).changed(
        "partner.new_secret", "partner", partner.id, [change("partner", partner.id, before, after)]
    )
    return secret


async def share_with_partner(
    session: AsyncSession,
    partner_id: uuid.UUID,
    *,
    expected_version: int,
    agreement: AgreementInput,
    approved_by: uuid.UUID,
) -> Partner:
    """A coordinator sets the partner's whole sharing agreement, and so approves it (again,
    after a change of credentials). The version binds the approval to the credentials the
    coordinator saw: a change since then is a 412."""
    partner = await get_partner(session, partner_id, for_update=True)
    _check_version(partner.version, expected_version, "partner")
    before = _partner_snapshot(partner)
    now = utcnow()
    _approve_agreement(partner, agreement, approved_by=approved_by, now=now)
    partner.version += 1
    partner.updated_at = now
    await repository.save(session, partner)
    journal_of(session).changed(
        "partner.share",
        "partner",
        partner.id,
        [change("partner", partner.id, before, _partner_snapshot(partner))],
    )
    return partner


async def partner_for_client(session: AsyncSession, client_id: str) -> Partner | None:
    return await repository.partner_by_client_id(session, client_id)


async def claim_assertion(
    session: AsyncSession, partner_id: uuid.UUID, jti: str, expires_at: datetime
) -> bool:
    return await repository.claim_assertion(session, partner_id, jti, expires_at, utcnow())


async def inactive_or_not_caseworkers(
    session: AsyncSession, user_ids: Collection[uuid.UUID]
) -> list[uuid.UUID]:
    """The ids that do not name an active caseworker account (who may not be assigned to a
    case file), in the order given."""
    active = await repository.active_user_ids(session, user_ids, Role.caseworker)
    return [user_id for user_id in user_ids if user_id not in active]

"""Use cases of identity: accounts, sign-in with password and one-time code, sessions with
rotating refresh tokens, partner clients, and turning a bearer token into a Principal."""

import asyncio
import secrets
import uuid
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
from app.core.clock import utcnow
from app.core.config import Settings
from app.core.crypto import AuditKeyRing, DataKeyRing
from app.core.errors import (
    Conflict,
    NotFound,
    PreconditionFailed,
    SessionRevoked,
    SignInFailed,
    TooManyAttempts,
    Unauthenticated,
    UnprocessableInput,
)
from app.core.pagination import id_keyset_page
from app.identity import repository
from app.identity.credentials import (
    Passwords,
    digest_of,
    matching_totp_step,
    new_opaque_token,
    new_totp_secret,
    totp_uri,
)
from app.identity.models import AppUser, Partner, RefreshToken, UserSession
from app.identity.oidc import OidcVerifier
from app.identity.schemas import (
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


def _seal_totp(kit: SecurityKit, user_id: uuid.UUID, secret: str) -> bytes:
    return kit.data_keys.seal("app_user", "totp_secret", user_id, secret.encode())


def _open_totp(kit: SecurityKit, user: AppUser) -> str:
    return kit.data_keys.open("app_user", "totp_secret", user.id, user.totp_secret).decode()


async def create_user(
    session: AsyncSession, kit: SecurityKit, data: UserCreate
) -> tuple[AppUser, str]:
    if await repository.user_by_username(session, data.username) is not None:
        raise Conflict("That username is taken.")
    secret = new_totp_secret()
    user = AppUser(
        username=data.username,
        password_hash=await _hash(kit, data.password),
        role=data.role,
        totp_secret=b"",
    )
    user.totp_secret = _seal_totp(kit, user.id, secret)
    await _add_unique(session, user, "That username is taken.")
    journal_of(session).changed(
        "user.create", "user", user.id, [change("user", user.id, None, _user_snapshot(user))]
    )
    return user, secret


def _user_snapshot(user: AppUser) -> dict[str, Any]:
    # Never the password hash or the TOTP secret; that they changed is recorded apart.
    return {
        "username": user.username,
        "role": user.role,
        "disabled": user.disabled,
        "version": user.version,
    }


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
    """An admin with a generated password, if there is no account at all yet (the
    development server's first start); None otherwise."""
    if await repository.users_page(session, None, 1):
        return None
    password = secrets.token_urlsafe(18)
    data = UserCreate(username=FIRST_ADMIN, role=Role.admin, password=password)
    user, secret = await create_user(session, kit, data)
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


def _check_version(version: int, expected: int, what: str) -> None:
    if version != expected:
        raise PreconditionFailed(f"The {what} is at version {version}.", current_version=version)


async def update_user(
    session: AsyncSession,
    kit: SecurityKit,
    user_id: uuid.UUID,
    expected_version: int,
    data: UserUpdate,
    actor: Principal,
) -> AppUser:
    user = await get_user(session, user_id, for_update=True)
    _check_version(user.version, expected_version, "user")
    before = _user_snapshot(user)
    if user.id == actor.id and (data.disabled or (data.role and data.role != Role.admin)):
        raise Conflict("Admins cannot disable themselves or give up their own role.")
    ends_sessions = False
    if data.role is not None and data.role != user.role:
        user.role = data.role
        ends_sessions = True
    if data.disabled is not None and data.disabled != user.disabled:
        user.disabled = data.disabled
        ends_sessions = ends_sessions or data.disabled
    if data.password is not None:
        user.password_hash = await _hash(kit, data.password)
        ends_sessions = True
    now = utcnow()
    user.version += 1
    user.updated_at = now
    await repository.save(session, user)
    if ends_sessions:
        await repository.revoke_sessions(session, user.id, now, "account_changed")
    after = _user_snapshot(user)
    if data.password is not None:
        before["password"], after["password"] = None, CHANGED
    journal_of(session).changed(
        "user.update", "user", user.id, [change("user", user.id, before, after)]
    )
    return user


async def reset_totp(
    session: AsyncSession, kit: SecurityKit, user_id: uuid.UUID, expected_version: int
) -> tuple[AppUser, str]:
    user = await get_user(session, user_id, for_update=True)
    _check_version(user.version, expected_version, "user")
    before = {**_user_snapshot(user), "totp": None}
    secret = new_totp_secret()
    now = utcnow()
    user.totp_secret = _seal_totp(kit, user.id, secret)
    user.totp_last_step = 0
    user.version += 1
    user.updated_at = now
    await repository.save(session, user)
    await repository.revoke_sessions(session, user.id, now, "totp_reset")
    after = {**_user_snapshot(user), "totp": CHANGED}
    journal_of(session).changed(
        "user.reset_totp", "user", user.id, [change("user", user.id, before, after)]
    )
    return user, secret


# Sign-in and sessions --------------------------------------------------------------------


def _throttle_keys(username: str, address: str) -> tuple[str, str]:
    return f"account:{username.lower()}", f"address:{address}"


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
    account_key, address_key = _throttle_keys(username, address)
    # A blocked address is refused before anything is written for the account it names,
    # so that a flood of invented usernames leaves no rows behind.
    _refuse_if_blocked(await repository.blocked_until(session, [address_key]), now, username)
    await repository.lock_throttle(session, account_key, now)
    _refuse_if_blocked(await repository.blocked_until(session, [account_key]), now, username)

    user = await repository.user_by_username(session, username.lower())
    if user is not None:
        journal.subject = ("user", user.id)
    # Every path verifies one argon2 hash, so an unknown user costs what a known one does.
    password_ok = await asyncio.to_thread(
        kit.passwords.verify, user.password_hash if user else None, password
    )
    step = None
    if user is not None and password_ok and not user.disabled:
        step = matching_totp_step(_open_totp(kit, user), code, user.totp_last_step)
    if user is None or step is None:
        window_start = now - timedelta(seconds=settings.login_failure_window_seconds)
        until = now + timedelta(seconds=settings.login_block_seconds)
        limits = {
            account_key: settings.login_max_failures,
            # Many staff may share one office address; it gets more room than an account.
            address_key: settings.login_max_failures * 4,
        }
        for key, limit in limits.items():
            await repository.record_failure(session, key, now, window_start, limit, until)
        log.warning("sign_in_failed", account=username[:64], address=address)
        raise SignInFailed("The username, password or code is not right.")

    user.totp_last_step = step
    if kit.passwords.needs_rehash(user.password_hash):
        user.password_hash = await _hash(kit, password)
    await repository.save(session, user)
    await repository.clear_failures(session, account_key)
    user_session = UserSession(
        user_id=user.id, expires_at=now + timedelta(days=settings.session_max_days)
    )
    await repository.add(session, user_session)
    log.info("signed_in", user=str(user.id), session=str(user_session.id))
    journal.acting_as(Actor("user", user.id, user.role))
    journal.changed("auth.sign_in", "user_session", user_session.id, [], related=[user.id])
    return await _token_pair(session, kit, user, user_session, now)


def _refuse_if_blocked(blocked: datetime | None, now: datetime, username: str) -> None:
    if blocked is not None and blocked > now:
        log.warning("sign_in_throttled", account=username[:64])
        raise TooManyAttempts(max(1, int((blocked - now).total_seconds()) + 1))


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


def _agreement(row: dict[str, Any]) -> SharingAgreement:
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
        raise UnprocessableInput(f"public_jwks is not a valid key set: {error}") from None
    for key in key_set.keys:
        if key.key_type not in ASYMMETRIC_KEY_TYPES or key.is_private:
            raise UnprocessableInput("public_jwks must hold public RSA, EC or OKP keys only.")
    return {"keys": [key.as_dict(private=False) for key in key_set.keys]}


def _apply_agreement(partner: Partner, agreement: AgreementInput) -> None:
    partner.share_jurisdiction = agreement.jurisdiction
    partner.share_recognised_only = agreement.recognised_only
    partner.share_case_file_ids = sorted(set(agreement.case_file_ids))
    partner.max_tier = agreement.max_tier
    partner.read_write = agreement.read_write


async def create_partner(
    session: AsyncSession, kit: SecurityKit, data: PartnerCreate
) -> tuple[Partner, str | None]:
    partner = Partner(
        name=data.name,
        client_id="hbp_" + secrets.token_hex(12),
        auth_method=data.auth_method,
        scopes=sorted(set(data.scopes)),
    )
    _apply_agreement(partner, data.agreement)
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
        "public_jwks": partner.public_jwks,
        "version": partner.version,
    }


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
    partner = await get_partner(session, partner_id, for_update=True)
    _check_version(partner.version, expected_version, "partner")
    before = _partner_snapshot(partner)
    if data.scopes is not None:
        partner.scopes = sorted(set(data.scopes))
    if data.disabled is not None:
        partner.disabled = data.disabled
    if data.public_jwks is not None:
        if partner.auth_method != "private_key_jwt":
            raise UnprocessableInput("This partner authenticates with a client secret.")
        partner.public_jwks = _checked_jwks(data.public_jwks)
    if data.agreement is not None:
        _apply_agreement(partner, data.agreement)
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
        raise UnprocessableInput("This partner authenticates with a private-key JWT.")
    before = {**_partner_snapshot(partner), "secret": None}
    secret = secrets.token_urlsafe(32)
    partner.secret_hash = await _hash(kit, secret)
    partner.version += 1
    partner.updated_at = utcnow()
    await repository.save(session, partner)
    after = {**_partner_snapshot(partner), "secret": CHANGED}
    journal_of(session).changed(
        "partner.new_secret", "partner", partner.id, [change("partner", partner.id, before, after)]
    )
    return secret


async def partner_for_client(session: AsyncSession, client_id: str) -> Partner | None:
    return await repository.partner_by_client_id(session, client_id)


async def claim_assertion(
    session: AsyncSession, partner_id: uuid.UUID, jti: str, expires_at: datetime
) -> bool:
    return await repository.claim_assertion(session, partner_id, jti, expires_at, utcnow())

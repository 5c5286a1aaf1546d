"""Signing in with password and one-time code, and the sessions that follow: rotating
refresh tokens, signing out."""

import asyncio
from datetime import datetime, timedelta

import structlog
from sqlmodel.ext.asyncio.session import AsyncSession

from app.access.principal import Principal
from app.audit.journal import Actor, change, journal_of
from app.core.clock import utcnow
from app.core.errors import SessionRevoked, SignInFailed, Unauthenticated
from app.identity import repository
from app.identity.credentials import digest_of, matching_totp_step, new_opaque_token
from app.identity.kit import SecurityKit
from app.identity.models import AppUser, RefreshToken, UserSession
from app.identity.schemas import TokenPair
from app.identity.throttling import (
    account_key,
    address_group,
    count_failure,
    enter_throttle,
    forget_failures,
    sign_in_throttle,
)
from app.identity.tokens import USER_CLIENT_ID

log = structlog.get_logger(__name__)


def _may_sign_in(user: AppUser) -> bool:
    """Enabled, enrolled (a password and a confirmed authenticator) and holding a role."""
    return not user.disabled and user.enrolled and user.role is not None


async def sign_in(
    session: AsyncSession,
    kit: SecurityKit,
    *,
    username: str,
    password: str,
    code: str,
    address: str,
) -> TokenPair:
    settings = kit.settings
    now = utcnow()
    journal = journal_of(session)
    journal.attempted = "auth.sign_in"
    account, group = account_key(username), address_group(address)
    since = now - timedelta(days=settings.login_known_address_days)
    known = await repository.is_known_address(session, account, address=group, since=since)
    throttle = sign_in_throttle(settings, account, group, address_known=known)
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
        step = matching_totp_step(kit.open_totp(user), code, user.totp_last_step)
    if user is None or step is None:
        await count_failure(session, settings, throttle, now=now)
        log.warning("sign_in_failed", account=account, address=address)
        raise SignInFailed("The username, password or code is not right.")

    user.totp_last_step = step
    if kit.passwords.needs_rehash(user.password_hash):
        user.password_hash = await kit.hash_secret(password)
    await repository.save(session, user)
    await forget_failures(session, throttle, now)
    await repository.remember_address(session, user.id, address=group, now=now)
    user_session = UserSession(
        user_id=user.id, expires_at=now + timedelta(days=settings.session_max_days)
    )
    await repository.add(session, user_session)
    log.info("signed_in", user=str(user.id), session=str(user_session.id))
    journal.acting_as(Actor("user", user.id, user.role))
    journal.changed("auth.sign_in", "user_session", user_session.id, changes=[], related=[user.id])
    return await _token_pair(session, kit, user=user, user_session=user_session, now=now)


async def _token_pair(
    session: AsyncSession,
    kit: SecurityKit,
    *,
    user: AppUser,
    user_session: UserSession,
    now: datetime,
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
        await repository.revoke_session(
            session, user_session.id, now=now, reason="refresh_token_reuse"
        )
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
    journal.changed("auth.refresh", "user_session", user_session.id, changes=[], related=[user.id])
    return await _token_pair(session, kit, user=user, user_session=user_session, now=now)


async def end_session(session: AsyncSession, principal: Principal) -> None:
    if principal.session_id is not None:
        now = utcnow()
        await repository.revoke_session(session, principal.session_id, now=now, reason="signed_out")
        journal_of(session).changed(
            "auth.sign_out",
            "user_session",
            principal.session_id,
            changes=[
                change(
                    "user_session",
                    principal.session_id,
                    before={"revoked_reason": None},
                    after={"revoked_reason": "signed_out"},
                )
            ],
        )

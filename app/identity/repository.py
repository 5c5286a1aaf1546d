"""Every SQL query of the identity feature."""

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Integer, bindparam, delete, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.db import driver_connection
from app.identity.models import (
    AppUser,
    ClientAssertionUse,
    KnownSignInAddress,
    Partner,
    RefreshToken,
    RoleRequest,
    RoleRequestStatus,
    SignInThrottle,
    UserSession,
)

# Checked on every request: the session is live and its user enabled (so ending a session
# or disabling a user takes effect at once, not when the access token expires).
SQL_LIVE_SESSION = """
SELECT u.role, s.expires_at FROM user_session s JOIN app_user u ON u.id = s.user_id
WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND s.expires_at > $3
  AND NOT u.disabled
"""
SQL_LIVE_PARTNER = """
SELECT scopes, share_jurisdiction, share_recognised_only, share_case_file_ids, max_tier,
       read_write, trusted_as_confirmed, agreement_approved_at
FROM partner WHERE id = $1 AND NOT disabled
"""


async def live_session(
    session: AsyncSession, session_id: uuid.UUID, *, user_id: uuid.UUID, now: datetime
) -> tuple[str, datetime] | None:
    """The role of a live session's user, and when the session expires."""
    driver = await driver_connection(session)
    row = await driver.fetchrow(SQL_LIVE_SESSION, session_id, user_id, now)
    return None if row is None else (row["role"], row["expires_at"])


async def live_partner(session: AsyncSession, partner_id: uuid.UUID) -> dict[str, Any] | None:
    driver = await driver_connection(session)
    row = await driver.fetchrow(SQL_LIVE_PARTNER, partner_id)
    return dict(row) if row is not None else None


# Users ----------------------------------------------------------------------------------


async def add(session: AsyncSession, row: object) -> None:
    session.add(row)
    await session.flush()


async def user_by_username(session: AsyncSession, username: str) -> AppUser | None:
    found = await session.exec(
        select(AppUser).where(col(AppUser.username) == username).with_for_update()
    )
    return found.first()


async def user(
    session: AsyncSession, user_id: uuid.UUID, *, for_update: bool = False
) -> AppUser | None:
    query = select(AppUser).where(col(AppUser.id) == user_id)
    if for_update:
        query = query.with_for_update()
    return (await session.exec(query)).first()


async def users_page(session: AsyncSession, after: uuid.UUID | None, limit: int) -> list[AppUser]:
    query = select(AppUser).order_by(col(AppUser.id)).limit(limit)
    if after is not None:
        query = query.where(col(AppUser.id) > after)
    return list((await session.exec(query)).all())


async def save(session: AsyncSession, row: object) -> None:
    session.add(row)
    await session.flush()


async def revoke_sessions(
    session: AsyncSession, user_id: uuid.UUID, *, now: datetime, reason: str
) -> None:
    await session.exec(
        update(UserSession)
        .where(col(UserSession.user_id) == user_id, col(UserSession.revoked_at).is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )


async def revoke_session(
    session: AsyncSession, session_id: uuid.UUID, *, now: datetime, reason: str
) -> None:
    await session.exec(
        update(UserSession)
        .where(col(UserSession.id) == session_id, col(UserSession.revoked_at).is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )


async def refresh_token(
    session: AsyncSession, digest: bytes
) -> tuple[RefreshToken, UserSession, AppUser] | None:
    found = await session.exec(
        select(RefreshToken, UserSession, AppUser)
        .join(UserSession, col(UserSession.id) == col(RefreshToken.session_id))
        .join(AppUser, col(AppUser.id) == col(UserSession.user_id))
        .where(col(RefreshToken.token_hash) == digest)
        .with_for_update()
    )
    row = found.first()
    return (row[0], row[1], row[2]) if row is not None else None


# Enrolment and role requests --------------------------------------------------------------


async def user_by_enrolment_code(session: AsyncSession, digest: bytes) -> AppUser | None:
    found = await session.exec(
        select(AppUser).where(col(AppUser.enrolment_code_hash) == digest).with_for_update()
    )
    return found.first()


async def enabled_admin_exists(session: AsyncSession) -> bool:
    found = await session.exec(
        select(AppUser.id).where(col(AppUser.role) == "admin", col(AppUser.disabled).is_(False))
    )
    return found.first() is not None


async def users_by_id(session: AsyncSession, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, AppUser]:
    found = await session.exec(select(AppUser).where(col(AppUser.id).in_(user_ids)))
    return {user.id: user for user in found.all()}


async def pending_role_request(
    session: AsyncSession, user_id: uuid.UUID, *, for_update: bool = False
) -> RoleRequest | None:
    query = select(RoleRequest).where(
        col(RoleRequest.user_id) == user_id,
        col(RoleRequest.status) == RoleRequestStatus.pending,
    )
    if for_update:
        query = query.with_for_update()
    return (await session.exec(query)).first()


async def pending_roles(session: AsyncSession, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    found = await session.exec(
        select(RoleRequest.user_id, RoleRequest.role).where(
            col(RoleRequest.user_id).in_(user_ids),
            col(RoleRequest.status) == RoleRequestStatus.pending,
        )
    )
    return dict(found.all())


async def role_request(
    session: AsyncSession, request_id: uuid.UUID, *, for_update: bool = False
) -> RoleRequest | None:
    query = select(RoleRequest).where(col(RoleRequest.id) == request_id)
    if for_update:
        query = query.with_for_update()
    return (await session.exec(query)).first()


async def pending_role_requests_page(
    session: AsyncSession, after: uuid.UUID | None, limit: int
) -> list[RoleRequest]:
    query = (
        select(RoleRequest)
        .where(col(RoleRequest.status) == RoleRequestStatus.pending)
        .order_by(col(RoleRequest.id))
        .limit(limit)
    )
    if after is not None:
        query = query.where(col(RoleRequest.id) > after)
    return list((await session.exec(query)).all())


# Throttling -----------------------------------------------------------------------------

_SQL_FAILURE = text("""
INSERT INTO sign_in_throttle AS t (key, failures, window_started_at, blocked_until)
VALUES (:key, 1, :now, CASE WHEN 1 >= :limit THEN :blocked_until END)
ON CONFLICT (key) DO UPDATE SET
  failures = CASE WHEN t.window_started_at < :window_start THEN 1 ELSE t.failures + 1 END,
  window_started_at = CASE WHEN t.window_started_at < :window_start THEN :now
                           ELSE t.window_started_at END,
  blocked_until = CASE
    WHEN (CASE WHEN t.window_started_at < :window_start THEN 1 ELSE t.failures + 1 END)
         >= :limit THEN :blocked_until
    ELSE t.blocked_until END
""").bindparams(
    bindparam("now", type_=DateTime(timezone=True)),
    bindparam("window_start", type_=DateTime(timezone=True)),
    bindparam("blocked_until", type_=DateTime(timezone=True)),
    bindparam("limit", type_=Integer),
)


async def lock_throttle(session: AsyncSession, key: str, now: datetime) -> None:
    """Take a throttle row for the rest of the attempt, so that concurrent attempts on one
    identity are judged one after another (none slips past a block)."""
    connection = await session.connection()
    await connection.execute(
        text(
            "INSERT INTO sign_in_throttle (key, failures, window_started_at)"
            " VALUES (:key, 0, :now) ON CONFLICT (key) DO NOTHING"
        ).bindparams(bindparam("now", type_=DateTime(timezone=True))),
        {"key": key, "now": now},
    )
    await connection.execute(
        text("SELECT 1 FROM sign_in_throttle WHERE key = :key FOR UPDATE"), {"key": key}
    )


async def blocked_until(session: AsyncSession, keys: list[str]) -> datetime | None:
    found = await session.exec(
        select(SignInThrottle.blocked_until).where(col(SignInThrottle.key).in_(keys))
    )
    times = [value for value in found.all() if value is not None]
    return max(times) if times else None


async def record_failure(
    session: AsyncSession,
    key: str,
    *,
    now: datetime,
    window_start: datetime,
    limit: int,
    blocked_until: datetime,
) -> None:
    connection = await session.connection()
    await connection.execute(
        _SQL_FAILURE,
        {
            "key": key,
            "now": now,
            "window_start": window_start,
            "limit": limit,
            "blocked_until": blocked_until,
        },
    )


async def clear_failures(session: AsyncSession, key: str, now: datetime) -> None:
    # Reset, not deleted: the row may be the one concurrent attempts are waiting to lock,
    # and a deleted row would let them through unlocked.
    connection = await session.connection()
    await connection.execute(
        text(
            "UPDATE sign_in_throttle SET failures = 0, window_started_at = :now,"
            " blocked_until = NULL WHERE key = :key"
        ).bindparams(bindparam("now", type_=DateTime(timezone=True))),
        {"key": key, "now": now},
    )


async def is_known_address(
    session: AsyncSession, username: str, *, address: str, since: datetime
) -> bool:
    """Whether the account of that name signed in from the address since then."""
    found = await session.exec(
        select(KnownSignInAddress.user_id)
        .join(AppUser, col(AppUser.id) == col(KnownSignInAddress.user_id))
        .where(
            col(AppUser.username) == username,
            col(KnownSignInAddress.address) == address,
            col(KnownSignInAddress.last_signed_in_at) > since,
        )
    )
    return found.first() is not None


async def remember_address(
    session: AsyncSession, user_id: uuid.UUID, *, address: str, now: datetime
) -> None:
    statement = insert(KnownSignInAddress).values(
        user_id=user_id, address=address, last_signed_in_at=now
    )
    await session.exec(
        statement.on_conflict_do_update(
            index_elements=["user_id", "address"], set_={"last_signed_in_at": now}
        )
    )


async def purge_throttles(session: AsyncSession, *, window_start: datetime, now: datetime) -> int:
    """Delete the counters whose window has passed and that block nothing; rows a running
    attempt holds (lock_throttle) are left for the next purge."""
    connection = await session.connection()
    deleted = await connection.execute(
        text(
            "DELETE FROM sign_in_throttle WHERE key IN (SELECT key FROM sign_in_throttle"
            " WHERE window_started_at < :window_start"
            " AND (blocked_until IS NULL OR blocked_until <= :now)"
            " FOR UPDATE SKIP LOCKED)"
        ).bindparams(
            bindparam("window_start", type_=DateTime(timezone=True)),
            bindparam("now", type_=DateTime(timezone=True)),
        ),
        {"window_start": window_start, "now": now},
    )
    return deleted.rowcount


async def purge_known_addresses(session: AsyncSession, before: datetime) -> int:
    deleted = await session.exec(
        delete(KnownSignInAddress).where(col(KnownSignInAddress.last_signed_in_at) <= before)
    )
    return deleted.rowcount


async def purge_assertion_uses(session: AsyncSession, now: datetime) -> int:
    deleted = await session.exec(
        delete(ClientAssertionUse).where(col(ClientAssertionUse.expires_at) < now)
    )
    return deleted.rowcount


# Partners -------------------------------------------------------------------------------


async def partner(
    session: AsyncSession, partner_id: uuid.UUID, *, for_update: bool = False
) -> Partner | None:
    query = select(Partner).where(col(Partner.id) == partner_id)
    if for_update:
        query = query.with_for_update()
    return (await session.exec(query)).first()


async def partner_name_taken(session: AsyncSession, name: str) -> bool:
    found = await session.exec(select(Partner.id).where(col(Partner.name) == name))
    return found.first() is not None


async def partner_by_client_id(session: AsyncSession, client_id: str) -> Partner | None:
    return (await session.exec(select(Partner).where(col(Partner.client_id) == client_id))).first()


async def partners_page(
    session: AsyncSession, after: uuid.UUID | None, limit: int
) -> list[Partner]:
    query = select(Partner).order_by(col(Partner.id)).limit(limit)
    if after is not None:
        query = query.where(col(Partner.id) > after)
    return list((await session.exec(query)).all())


async def claim_assertion(
    session: AsyncSession, partner_id: uuid.UUID, *, jti: str, expires_at: datetime, now: datetime
) -> bool:
    """Record a client assertion's `jti`; False when it was already used (a replay)."""
    connection = await session.connection()
    await connection.execute(
        text("DELETE FROM client_assertion_use WHERE expires_at < :now"), {"now": now}
    )
    inserted = await connection.execute(
        text(
            "INSERT INTO client_assertion_use (partner_id, jti, expires_at)"
            " VALUES (:partner_id, :jti, :expires_at) ON CONFLICT DO NOTHING RETURNING jti"
        ),
        {"partner_id": partner_id, "jti": jti, "expires_at": expires_at},
    )
    return inserted.first() is not None


async def active_user_ids(
    session: AsyncSession, user_ids: Collection[uuid.UUID], role: str
) -> set[uuid.UUID]:
    """Which of these ids are accounts of this role that are not disabled."""
    stmt = select(AppUser.id).where(
        col(AppUser.id).in_(list(user_ids)), col(AppUser.role) == role, ~col(AppUser.disabled)
    )
    return set(await session.exec(stmt))

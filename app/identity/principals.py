"""Turning a bearer token into a Principal: our own access tokens (a user's session, a
partner client) and the external provider's."""

import uuid
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from app.access.principal import Principal, PrincipalKind, Role, SharingAgreement, Tier
from app.core.clock import utcnow
from app.core.errors import Unauthenticated
from app.identity import repository
from app.identity.kit import SecurityKit
from app.identity.live import LiveIdentities, LiveSession
from app.identity.tokens import USER_CLIENT_ID, unverified_parts

# Derived ids for identities from the external provider: stable per issuer + subject.
EXTERNAL_NAMESPACE = uuid.UUID("5d1c8a36-5f4a-4c55-9d0e-2f9a4d0b7e11")


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
        trusted_as_confirmed=row["trusted_as_confirmed"],
    )


def _uuid_claim(claims: dict[str, Any], name: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(claims[name]))
    except (KeyError, ValueError):
        raise Unauthenticated("The access token is not valid.") from None


async def authenticate(
    session: AsyncSession, kit: SecurityKit, token: str, live: LiveIdentities | None = None
) -> Principal:
    """The caller a token names, its session or partner checked live: from memory where
    the process keeps it (`live`, app/identity/live.py), else in the database."""
    _, unverified = unverified_parts(token)
    issuer = unverified.get("iss")
    if issuer == kit.settings.token_issuer:
        return await _local_principal(session, kit, token, live)
    if kit.oidc is not None and issuer == kit.settings.oidc_issuer:
        identity = await kit.oidc.verify(token)
        return Principal(
            kind=PrincipalKind.user,
            id=uuid.uuid5(EXTERNAL_NAMESPACE, f"{identity.issuer}|{identity.subject}"),
            role=identity.role,
            external_subject=f"{identity.issuer}|{identity.subject}",
        )
    raise Unauthenticated("The access token is not from an accepted issuer.")


async def _local_principal(
    session: AsyncSession, kit: SecurityKit, token: str, live: LiveIdentities | None
) -> Principal:
    claims = kit.tokens.verify(token)
    subject = _uuid_claim(claims, "sub")
    if claims.get("client_id") == USER_CLIENT_ID:
        session_id = _uuid_claim(claims, "sid")
        role = await _session_role(session, live, session_id, subject)
        if role is None:
            raise Unauthenticated("The session has ended; sign in again.")
        return Principal(
            kind=PrincipalKind.user, id=subject, role=Role(role), session_id=session_id
        )
    row = await _live_partner(session, live, subject)
    if row is None:
        raise Unauthenticated("The client is disabled or unknown.")
    granted = frozenset(str(claims.get("scope", "")).split()) & frozenset(row["scopes"])
    return Principal(
        kind=PrincipalKind.partner, id=subject, scopes=granted, agreement=_agreement(row)
    )


async def _session_role(
    session: AsyncSession,
    live: LiveIdentities | None,
    session_id: uuid.UUID,
    user_id: uuid.UUID,
) -> str | None:
    """The role of the session's user while the session is live and the user enabled."""
    now = utcnow()
    generation = 0
    if live is not None:
        kept = live.session(session_id)
        if kept is not None:
            live_now = kept.user_id == user_id and kept.expires_at > now
            return kept.role if live_now else None
        generation = live.generation
    found = await repository.live_session(session, session_id, user_id=user_id, now=now)
    if found is None:
        return None
    role, expires_at = found
    if live is not None:
        live.keep_session(generation, session_id, LiveSession(user_id, role, expires_at))
    return role


async def _live_partner(
    session: AsyncSession, live: LiveIdentities | None, partner_id: uuid.UUID
) -> dict[str, Any] | None:
    generation = 0
    if live is not None:
        kept = live.partner(partner_id)
        if kept is not None:
            return kept
        generation = live.generation
    row = await repository.live_partner(session, partner_id)
    if row is not None and live is not None:
        live.keep_partner(generation, partner_id, row)
    return row


async def partner_principal(session: AsyncSession, partner_id: uuid.UUID) -> Principal | None:
    """A partner as its systems act now, with every scope it holds (for work done on its
    behalf without a token: notifying its endpoints); None when disabled or unknown."""
    row = await repository.live_partner(session, partner_id)
    if row is None:
        return None
    return Principal(
        kind=PrincipalKind.partner,
        id=partner_id,
        scopes=frozenset(row["scopes"]),
        agreement=_agreement(row),
    )

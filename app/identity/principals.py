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
        role = await repository.live_session_role(
            session, session_id, user_id=subject, now=utcnow()
        )
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

"""Partner clients: their credentials (a client secret or public keys), their scopes, and
the sharing agreement that says what they see."""

import secrets
import uuid
from datetime import datetime
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlmodel.ext.asyncio.session import AsyncSession

from app.audit.journal import change, journal_of
from app.core.clock import utcnow
from app.core.errors import Conflict, InvalidKeySet, NotFound
from app.core.pagination import id_keyset_page
from app.core.versioning import bump, check_version
from app.identity import repository
from app.identity.kit import CHANGED, SecurityKit, add_unique
from app.identity.models import Partner
from app.identity.schemas import AgreementInput, Jwks, PartnerCreate, PartnerUpdate

# Client public keys must be asymmetric; a shared-secret JWK would let anyone holding the
# agreement data sign assertions.
ASYMMETRIC_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})


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
    partner.trusted_as_confirmed = agreement.trusted_as_confirmed
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
        partner.secret_hash = await kit.hash_secret(secret)
    if await repository.partner_name_taken(session, data.name):
        raise Conflict("A partner with that name exists.")
    await add_unique(session, partner, "A partner with that name exists.")
    journal_of(session).changed(
        "partner.create",
        "partner",
        partner.id,
        changes=[change("partner", partner.id, before=None, after=_partner_snapshot(partner))],
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
        "trusted_as_confirmed": partner.trusted_as_confirmed,
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
        cursor=cursor,
        limit=limit,
    )


async def update_partner(
    session: AsyncSession, partner_id: uuid.UUID, *, expected_version: int, data: PartnerUpdate
) -> Partner:
    """Scopes, keys, disabling. New keys suspend the sharing agreement."""
    partner = await get_partner(session, partner_id, for_update=True)
    check_version(partner.version, expected_version, what="partner")
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
    bump(partner)
    await repository.save(session, partner)
    journal_of(session).changed(
        "partner.update",
        "partner",
        partner.id,
        changes=[change("partner", partner.id, before=before, after=_partner_snapshot(partner))],
    )
    return partner


async def new_partner_secret(
    session: AsyncSession, kit: SecurityKit, partner_id: uuid.UUID, *, expected_version: int
) -> str:
    partner = await get_partner(session, partner_id, for_update=True)
    check_version(partner.version, expected_version, what="partner")
    if partner.auth_method != "client_secret":
        raise Conflict("This partner authenticates with a private-key JWT.")
    before = {**_partner_snapshot(partner), "secret": None}
    secret = secrets.token_urlsafe(32)
    partner.secret_hash = await kit.hash_secret(secret)
    _suspend_agreement(partner)
    bump(partner)
    await repository.save(session, partner)
    after = {**_partner_snapshot(partner), "secret": CHANGED}
    journal_of(session).changed(
        "partner.new_secret",
        "partner",
        partner.id,
        changes=[change("partner", partner.id, before=before, after=after)],
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
    check_version(partner.version, expected_version, what="partner")
    before = _partner_snapshot(partner)
    now = utcnow()
    _approve_agreement(partner, agreement, approved_by=approved_by, now=now)
    bump(partner, at=now)
    await repository.save(session, partner)
    journal_of(session).changed(
        "partner.share",
        "partner",
        partner.id,
        changes=[change("partner", partner.id, before=before, after=_partner_snapshot(partner))],
    )
    return partner


async def partner_for_client(session: AsyncSession, client_id: str) -> Partner | None:
    return await repository.partner_by_client_id(session, client_id)


async def claim_assertion(
    session: AsyncSession, partner_id: uuid.UUID, *, jti: str, expires_at: datetime
) -> bool:
    return await repository.claim_assertion(
        session, partner_id, jti=jti, expires_at=expires_at, now=utcnow()
    )

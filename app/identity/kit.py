"""What the identity use cases share: the keys and verifiers built once at start-up, and how
a credential is hashed, sealed and recorded."""

import asyncio
import uuid
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from app.access.principal import Role
from app.core.config import Settings
from app.core.crypto import AuditKeyRing, DataKeyRing
from app.core.errors import Conflict
from app.identity import repository
from app.identity.credentials import Passwords
from app.identity.models import AppUser
from app.identity.oidc import OidcVerifier
from app.identity.tokens import AccessTokens

# What the trail records for a credential that was replaced (never the credential).
CHANGED = "changed"


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

    async def hash_secret(self, secret: str) -> str:
        # argon2id is deliberately slow (tens of ms): off the event loop, so one sign-in does
        # not stall every other request of the worker.
        return await asyncio.to_thread(self.passwords.hash, secret)

    def seal_totp(self, user_id: uuid.UUID, secret: str) -> bytes:
        return self.data_keys.seal("app_user", "totp_secret", user_id, plaintext=secret.encode())

    def open_totp(self, user: AppUser) -> str:
        if user.totp_secret is None:
            # Only asked for an account whose password was set, which sets the secret too.
            raise RuntimeError("this account has no TOTP secret")
        return self.data_keys.open(
            "app_user", "totp_secret", user.id, envelope=user.totp_secret
        ).decode()


async def add_unique(session: AsyncSession, row: object, taken: str) -> None:
    """Insert; a concurrent insert of the same unique name is a 409, not a 500."""
    try:
        await repository.add(session, row)
    except IntegrityError:
        raise Conflict(taken) from None

"""Users, their sign-in sessions and refresh tokens, sign-in throttling, and partner
organisations' API clients with their sharing agreements."""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel

from app.access.principal import Role, Tier
from app.core.clock import utcnow
from app.core.columns import moment_column, one_of
from app.core.ids import new_id


class RoleRequestStatus(StrEnum):
    pending = "pending"
    approved = "approved"
    rejected = "rejected"
    # Replaced by a later role change or request, or ended by a reset.
    withdrawn = "withdrawn"


class AppUser(SQLModel, table=True):
    __tablename__ = "app_user"
    __table_args__ = (one_of("role", list(Role)),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    # Stored as given; uniqueness and sign-in compare it lower-cased.
    username: str = Field(max_length=64, unique=True)
    # None until the person sets it with their enrolment code, and again after a reset.
    password_hash: str | None = Field(default=None, sa_type=Text)
    # The role held; None while the only role asked for waits for approval (RoleRequest).
    role: str | None = Field(default=None, max_length=20)
    # confidential: sealed with the data key ring (table app_user, column totp_secret).
    # None until enrolment, like the password.
    totp_secret: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    # The last TOTP time step accepted: a code is good once, and never an older one.
    totp_last_step: int = Field(default=0)
    # The SHA-256 of the one open enrolment code (a new one replaces it) and when it
    # lapses; both None once the person has confirmed their enrolment.
    enrolment_code_hash: bytes | None = Field(
        default=None, sa_column=Column(LargeBinary, unique=True)
    )
    enrolment_expires_at: datetime | None = Field(
        default=None, sa_column=moment_column(nullable=True)
    )
    # When, and from which client address and user agent, the current enrolment was
    # confirmed; None until then and after a reset (and for accounts enrolled before this
    # was recorded). An approver checks them with the person before approving a role.
    enrolled_at: datetime | None = Field(default=None, sa_column=moment_column(nullable=True))
    enrolled_from_address: str | None = Field(default=None, max_length=64)
    enrolled_user_agent: str | None = Field(default=None, max_length=300)
    disabled: bool = Field(default=False)
    version: int = Field(default=1)
    created_at: datetime = Field(default_factory=utcnow, sa_column=moment_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=moment_column())

    @property
    def enrolled(self) -> bool:
        """The person has set a password and proved their authenticator works."""
        return self.password_hash is not None and self.enrolment_code_hash is None


class RoleRequest(SQLModel, table=True):
    """A role that needs a second person's approval before the user holds it. Who asked and
    who decided are principals' ids, not foreign keys: staff of the external identity
    provider have no account row."""

    __tablename__ = "role_request"
    __table_args__ = (
        one_of("role", list(Role)),
        one_of("status", list(RoleRequestStatus)),
        # At most one open request per user: a new one withdraws the old.
        Index(
            "uq_role_request_pending_user",
            "user_id",
            unique=True,
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    user_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("app_user.id"), nullable=False, index=True)
    )
    role: str = Field(max_length=20)
    status: str = Field(default=RoleRequestStatus.pending, max_length=12)
    # None: asked by the system (the command line).
    requested_by: uuid.UUID | None = Field(default=None, sa_column=Column(Uuid))
    requested_at: datetime = Field(default_factory=utcnow, sa_column=moment_column())
    decided_by: uuid.UUID | None = Field(default=None, sa_column=Column(Uuid))
    decided_at: datetime | None = Field(default=None, sa_column=moment_column(nullable=True))
    version: int = Field(default=1)


class UserSession(SQLModel, table=True):
    """One sign-in. Access tokens name it (`sid`), so ending it ends them at once."""

    __tablename__ = "user_session"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    user_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("app_user.id"), nullable=False, index=True)
    )
    created_at: datetime = Field(default_factory=utcnow, sa_column=moment_column())
    expires_at: datetime = Field(sa_column=moment_column())
    revoked_at: datetime | None = Field(default=None, sa_column=moment_column(nullable=True))
    revoked_reason: str | None = Field(default=None, max_length=40)


class RefreshToken(SQLModel, table=True):
    """An opaque refresh token, stored as its SHA-256. Each is good for one use; presenting
    a used one again means it was stolen, and its whole session (family) is revoked."""

    __tablename__ = "refresh_token"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    session_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("user_session.id"), nullable=False, index=True)
    )
    token_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False, unique=True))
    issued_at: datetime = Field(default_factory=utcnow, sa_column=moment_column())
    expires_at: datetime = Field(sa_column=moment_column())
    used_at: datetime | None = Field(default=None, sa_column=moment_column(nullable=True))


class SignInThrottle(SQLModel, table=True):
    """Failed authentications counted under a key: an account or partner client id with a
    client address, an address, or an account (app/identity/throttling.py `Throttle`)."""

    __tablename__ = "sign_in_throttle"

    key: str = Field(primary_key=True, max_length=300)
    failures: int = Field(default=0)
    window_started_at: datetime = Field(sa_column=moment_column())
    blocked_until: datetime | None = Field(default=None, sa_column=moment_column(nullable=True))


class KnownSignInAddress(SQLModel, table=True):
    """An address (an IPv6 address's /64) an account signed in from, and when it last did:
    the account-wide throttle does not hold it back for `login_known_address_days`."""

    __tablename__ = "known_sign_in_address"

    user_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("app_user.id"), primary_key=True))
    address: str = Field(primary_key=True, max_length=64)
    last_signed_in_at: datetime = Field(sa_column=moment_column())


class Partner(SQLModel, table=True):
    __tablename__ = "partner"
    __table_args__ = (
        one_of("max_tier", [Tier.public.name, Tier.restricted.name]),
        one_of("auth_method", ["private_key_jwt", "client_secret"]),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    client_id: str = Field(max_length=64, unique=True)
    auth_method: str = Field(max_length=20)
    # argon2id of the client secret, shown once when created
    secret_hash: str | None = Field(default=None, sa_type=Text)
    # the partner's public keys for private-key JWT client authentication (RFC 7523)
    public_jwks: dict[str, object] | None = Field(default=None, sa_column=Column(JSONB))
    scopes: list[str] = Field(
        default_factory=list, sa_column=Column(ARRAY(Text), nullable=False, server_default="{}")
    )
    disabled: bool = Field(default=False)
    # The sharing agreement (see app/access/principal.py SharingAgreement).
    share_jurisdiction: str | None = Field(default=None, sa_column=Column(String(2)))
    share_recognised_only: bool = Field(default=True)
    share_case_file_ids: list[uuid.UUID] = Field(
        default_factory=list, sa_column=Column(ARRAY(Uuid), nullable=False, server_default="{}")
    )
    max_tier: str = Field(default=Tier.public.name, max_length=12)
    read_write: bool = Field(default=False)
    # What the partner pushes enters as `reported` (or `unconfirmed`, a claim) unless the
    # agreement trusts its confirmations.
    trusted_as_confirmed: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default="false")
    )
    # What a partner sees is a coordinator's decision, not the admin's who holds its
    # credentials: the agreement is honoured only while approved. Who approved it (a
    # principal's id, as for role requests; None with a time: the system, on the command
    # line) and when; both None until a coordinator approves, and again once a change of
    # credentials suspends the approval.
    agreement_approved_by: uuid.UUID | None = Field(default=None, sa_column=Column(Uuid))
    agreement_approved_at: datetime | None = Field(
        default=None, sa_column=moment_column(nullable=True)
    )
    version: int = Field(default=1)
    created_at: datetime = Field(default_factory=utcnow, sa_column=moment_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=moment_column())

    @property
    def agreement_approved(self) -> bool:
        return self.agreement_approved_at is not None


class ClientAssertionUse(SQLModel, table=True):
    """The `jti` of every accepted client assertion until it expires: replay protection."""

    __tablename__ = "client_assertion_use"

    partner_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("partner.id"), primary_key=True)
    )
    jti: str = Field(primary_key=True, max_length=200)
    expires_at: datetime = Field(sa_column=moment_column())

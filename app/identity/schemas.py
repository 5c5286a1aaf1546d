import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, model_validator

from app.access.principal import Role
from app.core.types import INPUT, OUTPUT, CountryCode, Label, PartialUpdate

USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{2,63}$"
Username = Annotated[
    str,
    StringConstraints(pattern=USERNAME_PATTERN),
    Field(description="3–64 lower-case letters, digits, dots, dashes or underscores"),
]
# Sign-in takes any string: one that cannot be a username (a forbidden character, too
# long) fails like a wrong password (401, the same answer), never a 422 that would answer
# differently. The bound only keeps the request small.
LoginUsername = Annotated[str, StringConstraints(max_length=1024)]
Password = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
NewPassword = Annotated[
    str,
    StringConstraints(min_length=12, max_length=1024),
    Field(
        description="At least 12 characters; not the username, a repetition, a sequence, "
        "or a common or breached password"
    ),
]
OneTimeCode = Annotated[str, StringConstraints(min_length=1, max_length=10)]
Scope = Literal["sync:read", "sync:write", "reports:read"]
PARTNER_SCOPES: tuple[str, ...] = ("sync:read", "sync:write", "reports:read")


class LoginInput(BaseModel):
    model_config = INPUT

    username: LoginUsername
    password: Password
    code: OneTimeCode = Field(description="The current code of the authenticator app")


class RefreshInput(BaseModel):
    model_config = INPUT

    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class TokenPair(BaseModel):
    model_config = OUTPUT

    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105
    expires_in: int
    refresh_token: str
    refresh_expires_in: int


class UserCreate(BaseModel):
    """A new account gets no password: the answer holds an enrolment code for the person."""

    model_config = INPUT

    username: Username
    role: Role


class UserUpdate(PartialUpdate):
    """Disabling or changing the role ends the user's sessions. A role that needs a second
    person's approval (admin and every role that reads case content) is asked for, not
    given, when it grants more than the current one: the user keeps the old one until it
    is approved. A role that reads no more case content (and administers only if the old
    one did) takes effect at once. Passwords are never set here: a reset (POST …/reset)
    issues an enrolment code, and the person chooses their own."""

    role: Role | None = None
    disabled: StrictBool | None = None


class UserRead(BaseModel):
    model_config = OUTPUT

    id: uuid.UUID
    username: str
    role: Role | None = Field(description="The role held; null while it awaits approval")
    pending_role: Role | None = Field(description="A role asked for, awaiting approval")
    enrolled: bool = Field(description="The person has set a password and confirmed a TOTP")
    disabled: bool
    version: int
    created_at: datetime
    updated_at: datetime


class UserEnrolment(UserRead):
    """Shown once, to the admin who created or reset the account: the code to hand to the
    person (never a password or TOTP secret). Only its hash is kept."""

    enrolment_code: str
    enrolment_expires_at: datetime


EnrolmentCode = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class EnrolmentInput(BaseModel):
    model_config = INPUT

    enrolment_code: EnrolmentCode
    password: NewPassword


class EnrolmentConfirmation(BaseModel):
    model_config = INPUT

    enrolment_code: EnrolmentCode
    code: OneTimeCode = Field(description="The current code of the authenticator app")


class TotpEnrolment(BaseModel):
    """Shown once, to the person enrolling: the secret for their authenticator app."""

    model_config = OUTPUT

    username: str
    totp_secret: str
    totp_uri: str


class RoleRequestRead(BaseModel):
    model_config = OUTPUT

    id: uuid.UUID
    user_id: uuid.UUID
    username: str
    role: Role
    status: Literal["pending", "approved", "rejected", "withdrawn"]
    requested_by: uuid.UUID | None = Field(description="null: the system (command line)")
    requested_at: datetime
    decided_by: uuid.UUID | None
    decided_at: datetime | None
    # What an approver checks with the person, out of band, before approving: that it was
    # them who enrolled, then and from there.
    enrolled_at: datetime | None = Field(
        description="When the account's current enrolment was confirmed; null: not enrolled"
        " (a role is approved only once it is), or enrolled before this was recorded"
    )
    enrolled_from_address: str | None = Field(
        description="The client address the enrolment was confirmed from"
    )
    enrolled_user_agent: str | None = Field(
        description="The user agent the enrolment was confirmed with"
    )
    version: int


class AgreementInput(BaseModel):
    """A partner's whole sharing agreement, set (and so approved) by a coordinator. What is
    left out shares the least: no jurisdiction, recognised political prisoners only, the
    public tier, read only."""

    model_config = INPUT

    jurisdiction: CountryCode | None = None
    recognised_only: StrictBool = Field(
        default=True,
        description="Share only the jurisdiction's case files that a recognition decision"
        " covers as a political prisoner's (each case file by its own recognition)",
    )
    case_file_ids: Annotated[list[uuid.UUID], Field(max_length=10_000)] = []
    max_tier: Literal["public", "restricted"] = "public"
    read_write: StrictBool = False
    trusted_as_confirmed: StrictBool = Field(
        default=False,
        description="Events the partner pushes as confirmed are recorded as confirmed;"
        " otherwise as reported (a claim stays unconfirmed either way)",
    )


class AgreementRead(BaseModel):
    model_config = OUTPUT

    jurisdiction: str | None
    recognised_only: bool
    case_file_ids: list[uuid.UUID]
    max_tier: Literal["public", "restricted"]
    read_write: bool
    trusted_as_confirmed: bool
    approved: bool = Field(
        description="Honoured only when approved: until a coordinator approves it, and again"
        " after a change of the partner's credentials, the partner sees nothing"
    )
    approved_by: uuid.UUID | None = Field(
        description="The coordinator who approved it; null when approved by the system"
        " (command line) or not approved"
    )
    approved_at: datetime | None


class Jwks(BaseModel):
    model_config = INPUT

    # Public JSON Web Keys (RFC 7517); whether each is a usable key only the server says.
    keys: Annotated[
        list[dict[str, Any]],
        Field(
            min_length=1,
            max_length=5,
            json_schema_extra={
                "items": {
                    "type": "object",
                    "required": ["kty"],
                    "properties": {"kty": {"type": "string", "examples": ["EC", "RSA", "OKP"]}},
                }
            },
        ),
    ]


def _keys_by_method_schema(schema: dict[str, Any]) -> None:
    """Publish the rule of `_keys_fit_the_method`."""
    schema["if"] = {
        "properties": {"auth_method": {"const": "client_secret"}},
        "required": ["auth_method"],
    }
    schema["then"] = {"properties": {"public_jwks": {"type": "null"}}}
    schema["else"] = {
        "required": ["public_jwks"],
        "properties": {"public_jwks": {"$ref": "#/components/schemas/Jwks"}},
    }


class PartnerCreate(BaseModel):
    """A partner client, without a sharing agreement: it sees nothing until a coordinator
    sets one (PUT /partners/{id}/agreement)."""

    model_config = ConfigDict(**INPUT, json_schema_extra=_keys_by_method_schema)

    name: Annotated[Label, StringConstraints(max_length=200)]
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=3)]
    auth_method: Literal["private_key_jwt", "client_secret"] = "private_key_jwt"
    public_jwks: Jwks | None = None

    @model_validator(mode="after")
    def _keys_fit_the_method(self) -> Self:
        if (self.auth_method == "private_key_jwt") != (self.public_jwks is not None):
            raise ValueError("public_jwks is required for private_key_jwt, and only for it")
        return self


class PartnerUpdate(PartialUpdate):
    """The client's administration. New public keys suspend the sharing agreement until a
    coordinator approves it again; the agreement itself is not changed here."""

    scopes: Annotated[list[Scope], Field(min_length=1, max_length=3)] | None = None
    disabled: StrictBool | None = None
    public_jwks: Jwks | None = None


class PartnerRead(BaseModel):
    model_config = OUTPUT

    id: uuid.UUID
    name: str
    client_id: str
    auth_method: Literal["private_key_jwt", "client_secret"]
    scopes: list[str]
    disabled: bool
    key_thumbprints: list[str] = Field(
        description="The SHA-256 JWK thumbprints (RFC 7638) of the public keys of a"
        " private_key_jwt partner: to confirm with the partner before approving its agreement"
    )
    agreement: AgreementRead
    version: int
    created_at: datetime
    updated_at: datetime


class PartnerCreated(PartnerRead):
    # Shown once, for client_secret partners; only its hash is kept.
    client_secret: str | None


class ClientSecret(BaseModel):
    model_config = OUTPUT

    client_secret: str

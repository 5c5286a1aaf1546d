"""The OAuth 2.0 client-credentials grant for partner systems, on authlib.

authlib's authorization server is synchronous and expects to look clients up itself. The
partner is therefore loaded asynchronously first (by the client id the request names),
authlib then runs the grant in a worker thread (client authentication hashes and verifies
signatures), and the assertion's `jti` it saw is claimed in the database afterwards, in
the same transaction: a replayed assertion gets `invalid_client` and no token.

Failed client authentication is throttled like sign-in (per client id and address, per
address; app/identity/throttling.py), and every client that fails to authenticate
gets one answer, which costs the same argon2 verification whether the client exists or not.
"""

import asyncio
import base64
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import structlog
from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    ClientMixin,
    InvalidClientError,
    InvalidScopeError,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlmodel.ext.asyncio.session import AsyncSession

from app.audit.journal import Actor, Journal, journal_of
from app.core.clock import utcnow
from app.identity import partners, throttling
from app.identity.kit import SecurityKit
from app.identity.models import Partner
from app.identity.schemas import PARTNER_SCOPES

log = structlog.get_logger(__name__)

ASSERTION_METHOD = JWTBearerClientAssertion.CLIENT_AUTH_METHOD
SECRET_METHODS = ("client_secret_basic", "client_secret_post")
# Only asymmetric signatures: with HS* anyone who knows the stored key material could sign.
ASSERTION_ALGORITHMS = ["ES256", "ES384", "RS256", "PS256", "EdDSA"]
MAX_ASSERTION_LIFETIME_SECONDS = 600
MAX_FORM_VALUE = 8192
MAX_JTI_CHARS = 200
# What `partners.create_partner` issues; anything else is looked up nowhere.
CLIENT_ID = re.compile(r"hbp_[0-9a-f]{1,60}")
# Where the failures of requests that name no possible client id are counted (per address).
UNNAMED_CLIENT = "-"
# The one refusal of client authentication: unknown client, wrong secret, bad or replayed
# assertion, disabled partner. Telling them apart would tell an attacker which ids exist.
CLIENT_REFUSED = {"error": "invalid_client", "error_description": "Client authentication failed."}


@dataclass
class PartnerClient(ClientMixin):  # type: ignore[misc]
    partner: Partner
    passwords_verify: Any

    def get_client_id(self) -> str:
        return self.partner.client_id

    def check_client_secret(self, client_secret: str) -> bool:
        return bool(self.passwords_verify(self.partner.secret_hash, client_secret))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.partner.disabled or endpoint != "token":
            return False
        if self.partner.auth_method == "private_key_jwt":
            return bool(method == ASSERTION_METHOD)
        return method in SECRET_METHODS

    def check_grant_type(self, grant_type: str) -> bool:
        return bool(grant_type == ClientCredentialsGrant.GRANT_TYPE)

    def get_allowed_scope(self, scope: str | None) -> str:
        requested = set((scope or "").split()) or set(self.partner.scopes)
        return " ".join(sorted(requested & set(self.partner.scopes)))


@dataclass
class _UnknownClient(ClientMixin):  # type: ignore[misc]
    """Stands in for a client id that names no partner, and never authenticates. Its secret
    is still verified, against the decoy hash, so an unknown id costs what a wrong secret
    does."""

    passwords_verify: Any

    def check_client_secret(self, client_secret: str) -> bool:
        self.passwords_verify(None, client_secret)
        return False

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return False


class _Assertion(JWTBearerClientAssertion):  # type: ignore[misc]
    def __init__(self, audiences: list[str], seen: list[tuple[str, int]]) -> None:
        super().__init__(leeway=30)
        self._audiences = audiences
        self._seen = seen

    def get_audiences(self) -> list[str]:
        return self._audiences

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=ASSERTION_ALGORITHMS)
        except (JoseError, ValueError, TypeError) as error:
            raise InvalidClientError(description="The client assertion is not valid.") from error
        self.verify_claims(token.claims)
        return token.claims

    def validate_jti(self, claims: Mapping[str, Any], jti: str) -> bool:
        expires = claims.get("exp")
        if not isinstance(expires, int) or expires - time.time() > MAX_ASSERTION_LIFETIME_SECONDS:
            return False
        if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_CHARS:
            return False
        # Recorded after the grant succeeds, in the request's transaction, and kept until
        # the assertion cannot be accepted any more (its expiry plus the clock leeway).
        self._seen.append((jti, expires + self.leeway))
        return True

    def resolve_client_public_key(self, client: PartnerClient | _UnknownClient) -> KeySet:
        if not isinstance(client, PartnerClient) or not client.partner.public_jwks:
            raise InvalidClientError(description="This client authenticates with a secret.")
        jwks: Any = client.partner.public_jwks
        return KeySet.import_key_set(jwks)


class _Grant(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [*SECRET_METHODS, ASSERTION_METHOD]

    def validate_token_request(self) -> None:
        super().validate_token_request()
        requested = set((self.request.payload.scope or "").split())
        if not requested <= set(self.request.client.partner.scopes):
            raise InvalidScopeError(description="A requested scope is not granted to this client.")


class _FormRequest(OAuth2Request):  # type: ignore[misc]
    """The token request as authlib reads it: headers and the parsed form."""

    def __init__(self, uri: str, headers: Mapping[str, str], form: Mapping[str, str]) -> None:
        # `headers` stays case-insensitive (Starlette's Headers): authlib reads "Authorization".
        super().__init__("POST", uri, headers=headers)
        self._form = dict(form)
        self.payload = BasicOAuth2Payload(self._form)

    @property
    def form(self) -> dict[str, str]:
        return self._form

    @property
    def args(self) -> dict[str, str]:
        return {}


@dataclass
class _Outcome:
    status: int
    body: dict[str, Any]
    headers: list[tuple[str, str]] = field(default_factory=list)


class _Server(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, client: PartnerClient | None, kit: SecurityKit, token_url: str) -> None:
        super().__init__(scopes_supported=list(PARTNER_SCOPES))
        self._client = client
        self._unknown = _UnknownClient(kit.passwords.verify)
        self.seen_assertions: list[tuple[str, int]] = []
        self.register_grant(_Grant)
        self.register_client_auth_method(
            ASSERTION_METHOD,
            _Assertion([token_url, kit.settings.token_issuer], self.seen_assertions),
        )
        self.register_token_generator(ClientCredentialsGrant.GRANT_TYPE, self._token(kit))

    def query_client(self, client_id: str) -> PartnerClient | _UnknownClient:
        if self._client is not None and self._client.get_client_id() == client_id:
            return self._client
        return self._unknown

    def save_token(self, token: Any, request: Any) -> None:
        # Self-contained JWTs: nothing to store; they are short and the partner's state
        # is checked on every request.
        return None

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def create_oauth2_request(self, request: Any) -> Any:
        return request

    def handle_response(self, status: int, body: Any, headers: Any) -> _Outcome:
        return _Outcome(status, dict(body), list(headers))

    @staticmethod
    def _token(kit: SecurityKit) -> Any:
        def generate(
            grant_type: str,
            client: PartnerClient,
            user: Any = None,
            scope: str | None = None,
            expires_in: int | None = None,
            include_refresh_token: bool = False,
        ) -> dict[str, Any]:
            granted = client.get_allowed_scope(scope)
            lifetime = kit.settings.partner_token_minutes * 60
            issued = kit.tokens.issue(
                client.partner.id, lifetime, client_id=client.partner.client_id, scope=granted
            )
            return {
                "access_token": issued.token,
                "token_type": "Bearer",
                "expires_in": lifetime,
                "scope": granted,
            }

        return generate


def _named_client_id(form: Mapping[str, str], headers: Mapping[str, str]) -> str | None:
    """The client id the request claims, before anything is verified (to load the client);
    None for anything that cannot be one of ours."""
    named = _claimed_client_id(form, headers)
    return named if named is not None and CLIENT_ID.fullmatch(named) else None


def _claimed_client_id(form: Mapping[str, str], headers: Mapping[str, str]) -> str | None:
    assertion = form.get("client_assertion")
    if assertion:
        try:
            payload = assertion.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            subject = claims.get("sub") if isinstance(claims, dict) else None
            return subject if isinstance(subject, str) else None
        except (ValueError, IndexError, TypeError, RecursionError):
            return None
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(authorization[6:], validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        return decoded.split(":", 1)[0] or None
    return form.get("client_id")


async def token_response(
    session: AsyncSession,
    kit: SecurityKit,
    *,
    form: Mapping[str, str],
    headers: Mapping[str, str],
    token_url: str,
    address: str,
) -> _Outcome:
    """The token endpoint's answer; raises TooManyAttempts while a block holds."""
    if any(len(value) > MAX_FORM_VALUE for value in form.values()):
        return _Outcome(400, {"error": "invalid_request", "error_description": "Too long."})
    journal = journal_of(session)
    journal.attempted = "auth.token"
    client_id = _named_client_id(form, headers)
    throttle = throttling.partner_throttle(kit.settings, client_id or UNNAMED_CLIENT, address)
    now = utcnow()
    await throttling.enter_throttle(session, throttle, now)
    partner = await partners.partner_for_client(session, client_id) if client_id else None
    outcome = await _issue(
        session, kit, form=form, headers=headers, token_url=token_url, partner=partner
    )
    if outcome.body.get("error") == "invalid_client":
        log.warning(
            "partner_token_refused",
            client=client_id,
            address=address,
            reason=str(outcome.body.get("error_description"))[:200],
        )
        await throttling.count_failure(session, kit.settings, throttle, now=now)
        outcome = _Outcome(401, dict(CLIENT_REFUSED))
    elif outcome.status == 200:
        await throttling.forget_failures(session, throttle, now)
    _record(journal, outcome, partner)
    return outcome


async def _issue(
    session: AsyncSession,
    kit: SecurityKit,
    *,
    form: Mapping[str, str],
    headers: Mapping[str, str],
    token_url: str,
    partner: Partner | None,
) -> _Outcome:
    client = PartnerClient(partner, kit.passwords.verify) if partner is not None else None
    server = _Server(client, kit, token_url)
    request = _FormRequest(token_url, headers, form)
    try:
        outcome: _Outcome = await asyncio.to_thread(server.create_token_response, request)
    except (JoseError, ValueError, TypeError, KeyError, RecursionError):
        # A malformed assertion that authlib's own parsing does not turn into an OAuth error.
        return _Outcome(
            401, {"error": "invalid_client", "error_description": "The client is not valid."}
        )
    if outcome.status == 200 and partner is not None:
        for jti, expires in server.seen_assertions:
            fresh = await partners.claim_assertion(
                session, partner.id, jti=jti, expires_at=datetime.fromtimestamp(expires, UTC)
            )
            if not fresh:
                return _Outcome(
                    401,
                    {"error": "invalid_client", "error_description": "The assertion was replayed."},
                )
    return outcome


def _record(journal: Journal, outcome: _Outcome, partner: Partner | None) -> None:
    """A token issued is recorded as the partner's; a client refused, as a denial."""
    if partner is not None:
        journal.subject = ("partner", partner.id)
    if outcome.status == 200 and partner is not None:
        journal.acting_as(Actor("partner", partner.id, "partner"))
        journal.changed("auth.token", "partner", partner.id, changes=[])
    elif outcome.status == 401:
        journal.deny(401, str(outcome.body.get("error", "invalid_client")))

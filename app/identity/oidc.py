"""Access tokens from an external OpenID Connect provider, verified against its published keys.

The provider is found by discovery (`{issuer}/.well-known/openid-configuration`) and its
signing keys by the JWKS it names; both are fetched on first use and cached. A token whose key
id is unknown makes us refetch the keys (the provider may have rotated them), but never more
often than `oidc_jwks_min_refresh_seconds`, so tokens with made-up key ids cannot turn us into
a load generator against the provider.

Nothing in a token's header is trusted beyond `alg`, `kid` and `typ`: the algorithm must be on
the asymmetric allow-list, keys come only from the provider's JWKS, and headers that name or
carry a key (`jwk`, `jku`, `x5u`, `x5c`) are refused. ID tokens are refused: they prove a
sign-in to a client, not a grant to call this API.

Every refusal, including a provider that cannot be reached, is `Unauthenticated`.
"""

import asyncio
import base64
import binascii
import json
import math
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx
import structlog
from joserfc import jwt
from joserfc.errors import InvalidClaimError, JoseError
from joserfc.jwk import ECKey, Key, KeySet, OKPKey, RSAKey
from joserfc.jws import JWSRegistry
from joserfc.jwt import JWTClaimsRegistry

from app.access.principal import Role
from app.core.config import Settings
from app.core.errors import Unauthenticated

log = structlog.get_logger(__name__)

CLOCK_LEEWAY_SECONDS = 30
ISSUED_AT_LEEWAY_SECONDS = 60
HTTP_TIMEOUT_SECONDS = 5.0
# Far above any real access token or provider document; bounds the work done (and memory
# used) before anything has been verified.
MAX_TOKEN_CHARS = 16_384
MAX_DOCUMENT_BYTES = 1_048_576

ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
# When the provider does not type its access tokens, a generic JWT type (or none) is all we
# can expect; any other explicit type (ID token, logout token, DPoP proof...) is not one.
UNTYPED_TOKEN_TYPES = frozenset({"jwt", "application/jwt"})
KEY_BEARING_HEADERS = frozenset({"jwk", "jku", "x5u", "x5c"})
ID_TOKEN_CLAIMS = frozenset({"nonce", "at_hash", "c_hash"})
SIGNATURE_KEY_CLASSES: dict[str, type[RSAKey | ECKey | OKPKey]] = {
    key_class.key_type: key_class for key_class in (RSAKey, ECKey, OKPKey)
}

_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class ExternalIdentity:
    issuer: str
    subject: str
    role: Role


class _ProviderUnavailable(Exception):
    """Discovery or the JWKS could not be fetched or understood."""


class _AccessTokenClaims(JWTClaimsRegistry):
    """The standard checks, with a wider allowance for `iat` than for `exp`/`nbf`: a token
    issued "in the future" only shows clock skew, which `exp` and `nbf` already bound."""

    def validate_iat(self, value: object) -> None:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise InvalidClaimError("iat", "Claim 'iat' must be a NumericDate value")
        if value > self.now + ISSUED_AT_LEEWAY_SECONDS:
            raise InvalidClaimError("iat", "The token was issued in the future")


def _allowed_algorithms(configured: Iterable[str]) -> list[str]:
    """The configured algorithms that verify with a public key.

    `none` and the HMAC algorithms are dropped even when configured: with them, anyone who
    knows the provider's public key (everyone) could forge tokens.
    """
    allowed = []
    for name in configured:
        model = JWSRegistry.algorithms.get(name)
        if model is None:
            raise ValueError(f"oidc_algorithms: unknown signature algorithm {name!r}")
        if name == "none" or name.upper().startswith("HS") or model.key_type == "oct":
            continue
        allowed.append(name)
    if not allowed:
        raise ValueError("oidc_algorithms allows no public-key signature algorithm")
    return allowed


def _role_map(configured: dict[str, str]) -> dict[str, Role]:
    try:
        return {provider_role: Role(role) for provider_role, role in configured.items()}
    except ValueError:
        raise ValueError(
            f"oidc_role_map maps to an unknown role; Habeas roles are {', '.join(Role)}"
        ) from None


def _unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header, parsed but not trusted: it only selects the key and algorithm."""
    if len(token) > MAX_TOKEN_CHARS:
        raise Unauthenticated("The access token is too long.")
    parts = token.split(".")
    if len(parts) != 3 or not all(_BASE64URL.fullmatch(part) for part in parts):
        raise Unauthenticated("The access token is malformed.")
    header_b64 = parts[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(header_b64 + "=" * (-len(header_b64) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        raise Unauthenticated("The access token is malformed.") from None
    if not isinstance(header, dict):
        raise Unauthenticated("The access token is malformed.")
    return header


def _role_claim(claims: dict[str, Any], path: str) -> object:
    """The claim at `path`: a top-level claim of that exact name (namespaced claims such as
    `https://example.org/roles` contain dots), else a dotted path into nested objects."""
    if path in claims:
        return claims[path]
    value: object = claims
    for segment in path.split("."):
        if not isinstance(value, dict) or segment not in value:
            return None
        value = value[segment]
    return value


class OidcVerifier:
    def __init__(
        self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        if not settings.oidc_issuer:
            raise ValueError("OidcVerifier needs oidc_issuer")
        self.issuer = settings.oidc_issuer
        self.audience = settings.oidc_audience or settings.token_audience
        self.require_at_jwt = settings.oidc_require_at_jwt
        self.role_claim = settings.oidc_role_claim
        self.role_map = _role_map(settings.oidc_role_map)
        self.min_refresh_seconds = settings.oidc_jwks_min_refresh_seconds
        self.algorithms = _allowed_algorithms(settings.oidc_algorithms)
        # One registry per algorithm, each allowing only that one, so the algorithm that was
        # checked against the allow-list is the one the signature is verified with. Header
        # parameters we do not know are ignored (RFC 7515 §4), except those marked `crit`.
        self._registries = {
            alg: JWSRegistry(algorithms=[alg], strict_check_header=False) for alg in self.algorithms
        }
        self._claims = _AccessTokenClaims(
            leeway=CLOCK_LEEWAY_SECONDS,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.audience},
            sub={"essential": True},
            exp={"essential": True},
        )
        self._client = httpx.AsyncClient(
            transport=transport,
            timeout=HTTP_TIMEOUT_SECONDS,
            follow_redirects=False,
            headers={"Accept": "application/json"},
        )
        self._lock = asyncio.Lock()
        self._jwks_uri: str | None = None
        self._keys: KeySet | None = None
        # Monotonic time before which the provider is not asked again. The first fetch is
        # free; each refetch and each failed attempt pushes this out.
        self._next_fetch_at = 0.0

    async def aclose(self) -> None:
        await self._client.aclose()

    async def verify(self, token: str) -> ExternalIdentity:
        try:
            return await self._verify(token)
        except Unauthenticated:
            raise
        except Exception:
            # A token is attacker-controlled input: whatever it trips over is a refusal,
            # never a 500. Logged, because reaching this is a bug to fix.
            log.exception("oidc_token_verification_error")
            raise Unauthenticated("The access token could not be verified.") from None

    async def _verify(self, token: str) -> ExternalIdentity:
        header = _unverified_header(token)
        alg, kid = self._check_header(header)
        keys = await self._keys_with(kid)
        try:
            decoded = jwt.decode(token, keys, registry=self._registries[alg])
        except (JoseError, ValueError, TypeError):
            raise Unauthenticated("The access token's signature is not valid.") from None
        claims = dict(decoded.claims)
        try:
            self._claims.validate(claims)
        except JoseError:
            raise Unauthenticated(
                "The access token is expired, not yet valid, or not for this service."
            ) from None
        if ID_TOKEN_CLAIMS & claims.keys():
            raise Unauthenticated("ID tokens are not accepted; present an access token.")
        return ExternalIdentity(issuer=self.issuer, subject=claims["sub"], role=self._role(claims))

    def _check_header(self, header: dict[str, Any]) -> tuple[str, str]:
        if KEY_BEARING_HEADERS & header.keys():
            raise Unauthenticated("Keys named in a token are never used.")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._registries:
            raise Unauthenticated("The access token's algorithm is not accepted.")
        typ = header.get("typ")
        if typ is not None and not isinstance(typ, str):
            raise Unauthenticated("The access token is malformed.")
        if typ is None:
            is_access_token_type = not self.require_at_jwt
        elif self.require_at_jwt:
            is_access_token_type = typ.lower() in ACCESS_TOKEN_TYPES
        else:
            is_access_token_type = typ.lower() in ACCESS_TOKEN_TYPES | UNTYPED_TOKEN_TYPES
        if not is_access_token_type:
            raise Unauthenticated("Only access tokens are accepted.")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated("The access token names no key.")
        return alg, kid

    def _role(self, claims: dict[str, Any]) -> Role:
        value = _role_claim(claims, self.role_claim)
        if isinstance(value, str):
            provider_roles = [value]
        elif isinstance(value, list) and all(isinstance(item, str) for item in value):
            provider_roles = value
        elif value is None:
            raise Unauthenticated("The access token carries no role.")
        else:
            raise Unauthenticated("The access token's role claim is malformed.")
        # The map is authoritative: a provider role that happens to be spelled like a Habeas
        # role grants nothing unless it is mapped.
        roles = {self.role_map[name] for name in provider_roles if name in self.role_map}
        if not roles:
            raise Unauthenticated("None of the access token's roles is granted access to Habeas.")
        if len(roles) > 1:
            raise Unauthenticated(
                "The access token's roles map to several Habeas roles "
                f"({', '.join(sorted(roles))}); an account must have exactly one."
            )
        return roles.pop()

    @staticmethod
    def _has_kid(keys: KeySet, kid: str) -> bool:
        return any(key.kid == kid for key in keys)

    async def _keys_with(self, kid: str) -> KeySet:
        """The provider's keys, refetched once if they do not include `kid` yet."""
        keys = self._keys
        if keys is not None and self._has_kid(keys, kid):
            return keys
        async with self._lock:
            # Whoever held the lock before us may have fetched the key we need.
            keys = self._keys
            if keys is not None and self._has_kid(keys, kid):
                return keys
            now = time.monotonic()
            if now < self._next_fetch_at:
                if self._keys is None:
                    raise Unauthenticated("The identity provider is unavailable.")
                raise Unauthenticated("The access token is signed with an unknown key.")
            if self._keys is not None:
                self._next_fetch_at = now + self.min_refresh_seconds
            try:
                self._keys = await self._fetch_keys()
            except _ProviderUnavailable as error:
                # Failures are spaced too, so an unreachable provider does not make every
                # request wait for a timeout.
                self._next_fetch_at = now + self.min_refresh_seconds
                log.warning("oidc_provider_unavailable", issuer=self.issuer, error=str(error))
                raise Unauthenticated("The identity provider is unavailable.") from None
            if not self._has_kid(self._keys, kid):
                raise Unauthenticated("The access token is signed with an unknown key.")
            return self._keys

    async def _fetch_keys(self) -> KeySet:
        if self._jwks_uri is None:
            self._jwks_uri = await self._discover()
        try:
            document = await self._get_json(self._jwks_uri)
        except _ProviderUnavailable:
            # The provider may have moved its keys; look again next time.
            self._jwks_uri = None
            raise
        raw_keys = document.get("keys")
        if not isinstance(raw_keys, list):
            raise _ProviderUnavailable("the JWKS has no key list")
        keys: list[Key] = []
        for raw_key in raw_keys:
            key = self._signature_key(raw_key)
            if key is not None:
                keys.append(key)
        return KeySet(keys)

    @staticmethod
    def _signature_key(raw_key: object) -> Key | None:
        """A public signature key from the JWKS, or None for one we must not or cannot use.

        Symmetric (`oct`) keys are skipped: a public document cannot hold a secret.
        """
        if not isinstance(raw_key, dict) or raw_key.get("use", "sig") != "sig":
            return None
        key_class = SIGNATURE_KEY_CLASSES.get(str(raw_key.get("kty")))
        if key_class is None:
            return None
        try:
            return key_class.import_key(raw_key)
        except (JoseError, ValueError, TypeError):
            log.warning("oidc_jwks_key_ignored", kid=str(raw_key.get("kid"))[:64])
            return None

    async def _discover(self) -> str:
        # OpenID Connect Discovery 1.0 §4: a trailing slash is removed before the suffix.
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = await self._get_json(url)
        if document.get("issuer") != self.issuer:
            # A mismatch means the document is not about the issuer we trust (RFC 8414 §3.3).
            raise _ProviderUnavailable("the discovery document names another issuer")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise _ProviderUnavailable("the discovery document names no jwks_uri")
        try:
            scheme = httpx.URL(jwks_uri).scheme
        except httpx.InvalidURL:
            raise _ProviderUnavailable("the discovery document's jwks_uri is not a URL") from None
        # The keys are what every token is checked against: never fetch them over plain HTTP
        # from a provider that is itself served over HTTPS.
        if scheme not in ("http", "https") or (
            scheme == "http" and self.issuer.startswith("https:")
        ):
            raise _ProviderUnavailable("the discovery document's jwks_uri is not an https URL")
        return jwks_uri

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with self._client.stream("GET", url) as response:
                if response.status_code != httpx.codes.OK:
                    raise _ProviderUnavailable(f"GET {url} answered {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_DOCUMENT_BYTES:
                        raise _ProviderUnavailable(f"GET {url} answered too much")
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            raise _ProviderUnavailable(f"GET {url} failed: {error!r}") from None
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            raise _ProviderUnavailable(f"GET {url} answered no JSON") from None
        if not isinstance(document, dict):
            raise _ProviderUnavailable(f"GET {url} answered no JSON object")
        return document

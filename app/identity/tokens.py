"""Habeas's own access tokens: ES256 JWTs of type `at+jwt` (RFC 9068), minutes long.

Verification trusts nothing in the token's header but the key id: the algorithm is fixed,
keys come only from the configured ring, and `jwk`/`jku`/`x5u`/`x5c` headers are refused.
Signature checks are cached per token (claims are still re-checked on every use), because
the same token is presented on every request of a session.
"""

import base64
import json
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwt import JWTClaimsRegistry

from app.core.config import Settings
from app.core.crypto import SIGNING_ALGORITHM, SigningKeyRing
from app.core.errors import Unauthenticated

ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 (a media type)
# The client id of the tokens issued to users who sign in (partners have their own).
USER_CLIENT_ID = "habeas"
FORBIDDEN_HEADERS = frozenset({"jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256", "crit"})
CLOCK_LEEWAY_SECONDS = 30
VERIFIED_CACHE_SIZE = 10_000
MAX_TOKEN_CHARS = 16_384


def unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of a compact JWS, for routing only (never for decisions)."""
    if len(token) > MAX_TOKEN_CHARS:
        raise Unauthenticated("The access token is too long.")
    try:
        header_b64, payload_b64, _ = token.split(".")
        header = json.loads(base64.urlsafe_b64decode(header_b64 + "=" * (-len(header_b64) % 4)))
        payload = json.loads(base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4)))
    except (ValueError, TypeError, RecursionError):
        raise Unauthenticated("The access token is malformed.") from None
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise Unauthenticated("The access token is malformed.")
    return header, payload


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int
    jti: str


def seconds_now() -> int:
    """The moment tokens are issued and checked at: the real time, apart from the
    calendar a test may set (app/core/clock.py) for what it records; a test moves this
    one to let a token expire."""
    return int(time.time())


class AccessTokens:
    def __init__(self, settings: Settings, keys: SigningKeyRing) -> None:
        self.issuer = settings.token_issuer
        self.audience = settings.token_audience
        self.keys = keys
        self._claims_registry = JWTClaimsRegistry(
            # Looked up at each check, as when issuing (seconds_now).
            now=lambda: seconds_now(),
            leeway=CLOCK_LEEWAY_SECONDS,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.audience},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            jti={"essential": True},
            client_id={"essential": True},
        )
        # token -> (its claims, the key id that verified it)
        self._verified: OrderedDict[str, tuple[dict[str, Any], str]] = OrderedDict()

    def issue(self, subject: uuid.UUID, lifetime_seconds: int, **claims: Any) -> IssuedToken:
        now = seconds_now()
        jti = uuid.uuid4().hex
        key = self.keys.signing_key()
        header = {"alg": SIGNING_ALGORITHM, "typ": ACCESS_TOKEN_TYPE, "kid": key.kid}
        payload = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(subject),
            "iat": now,
            "nbf": now,
            "exp": now + lifetime_seconds,
            "jti": jti,
            **claims,
        }
        token = jwt.encode(header, payload, key, algorithms=[SIGNING_ALGORITHM])
        return IssuedToken(token, lifetime_seconds, jti)

    def verify(self, token: str) -> dict[str, Any]:
        cached = self._verified.get(token)
        if cached is not None and not self.keys.still_holds(cached[1]):
            # Its key was withdrawn from the ring: the token is no longer trusted.
            del self._verified[token]
            cached = None
        if cached is None:
            cached = self._verify_signature(token)
            self._verified[token] = cached
            if len(self._verified) > VERIFIED_CACHE_SIZE:
                self._verified.popitem(last=False)
        claims = cached[0]
        try:
            self._claims_registry.validate(claims)
        except JoseError:
            raise Unauthenticated("The access token is expired or not for this service.") from None
        return claims

    def _verify_signature(self, token: str) -> tuple[dict[str, Any], str]:
        header, _ = unverified_parts(token)
        if header.get("alg") != SIGNING_ALGORITHM:
            raise Unauthenticated("The access token's algorithm is not accepted.")
        if str(header.get("typ", "")).lower() not in (ACCESS_TOKEN_TYPE, "application/at+jwt"):
            raise Unauthenticated("Only access tokens are accepted.")
        if FORBIDDEN_HEADERS & header.keys():
            raise Unauthenticated("Keys named in a token are never used.")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise Unauthenticated("The access token names no key.")
        self.keys.refresh_if_unknown(kid)
        try:
            decoded = jwt.decode(token, self.keys.verification_keys, algorithms=[SIGNING_ALGORITHM])
        except (JoseError, ValueError, TypeError):
            raise Unauthenticated("The access token's signature is not valid.") from None
        return dict(decoded.claims), kid

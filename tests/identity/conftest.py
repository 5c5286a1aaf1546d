"""The local OpenID Connect provider, for every test module here: an aiohttp app on
127.0.0.1 serving discovery and a JWKS from mutable state, so a test can rotate keys, break
the discovery document and count fetches."""

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

REALM_PATH = "/realms/habeas"
AUDIENCE = "habeas-api"
ROLE_MAP = {
    "habeas-admins": "admin",
    "habeas-caseworkers": "caseworker",
    "case-handlers": "caseworker",
    "habeas-auditors": "auditor",
}

# Key generation is the slow part; every test shares these.
SIGNING_KEY = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})
ROTATED_KEY = RSAKey.generate_key(2048, parameters={"kid": "rsa-2"})
EC_KEY = ECKey.generate_key("P-256", parameters={"kid": "ec-1"})
ATTACKER_KEY = RSAKey.generate_key(2048, parameters={"kid": "attacker"})


@dataclass
class Provider:
    """What the local identity provider serves; tests change it between requests."""

    issuer: str = ""
    discovery_issuer: str | None = None  # None: the provider's real issuer
    keys: list[RSAKey | ECKey] = field(default_factory=lambda: [SIGNING_KEY, EC_KEY])
    jwks_status: int = 200
    discovery_fetches: int = 0
    jwks_fetches: int = 0

    async def discovery(self, request: web.Request) -> web.Response:
        self.discovery_fetches += 1
        issuer = self.issuer if self.discovery_issuer is None else self.discovery_issuer
        return web.json_response(
            {
                "issuer": issuer,
                "jwks_uri": f"{self.issuer}/protocol/openid-connect/certs",
                "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            }
        )

    async def jwks(self, request: web.Request) -> web.Response:
        self.jwks_fetches += 1
        if self.jwks_status != 200:
            return web.json_response({"error": "unavailable"}, status=self.jwks_status)
        return web.json_response({"keys": [key.as_dict(private=False) for key in self.keys]})

    def token(
        self,
        key: RSAKey | ECKey = SIGNING_KEY,
        *,
        alg: str | None = None,
        header: dict[str, Any] | None = None,
        drop_header: tuple[str, ...] = (),
        claims: dict[str, Any] | None = None,
        drop_claims: tuple[str, ...] = (),
    ) -> str:
        """A token that verifies, unless the arguments say otherwise."""
        alg = alg or ("ES256" if isinstance(key, ECKey) else "RS256")
        now = int(time.time())
        full_header: dict[str, Any] = {"alg": alg, "typ": "at+jwt", "kid": key.kid}
        full_header.update(header or {})
        full_claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": "f2a1c3e4-subject",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": "token-1",
            "roles": ["habeas-caseworkers", "offline_access"],
        }
        full_claims.update(claims or {})
        for name in drop_header:
            full_header.pop(name)
        for name in drop_claims:
            full_claims.pop(name)
        return jwt.encode(full_header, full_claims, key, algorithms=[alg], default_type=None)


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    state = Provider()
    application = web.Application()
    application.router.add_get(f"{REALM_PATH}/.well-known/openid-configuration", state.discovery)
    application.router.add_get(f"{REALM_PATH}/protocol/openid-connect/certs", state.jwks)
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.issuer = f"http://127.0.0.1:{port}{REALM_PATH}"
    yield state
    await runner.cleanup()

"""Access tokens presented to the API: hand-made tokens copy the claims of a real one, so
that in each attack exactly one property is wrong, and every one is refused."""

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import ECKey

from app.access.principal import Role
from tests.auth import (
    PROBE,
    SignInAs,
    assert_problem,
    bearer,
    probe,
    unverified,
)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: object) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    signing_input = f"{b64json(header)}.{b64json(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


@dataclass
class RealToken:
    """A working coordinator token, taken apart, and the server's signing key."""

    token: str
    header: dict[str, Any]
    claims: dict[str, Any]
    key: ECKey
    audience: str

    def signed(
        self,
        header: dict[str, Any] | None = None,
        claims: dict[str, Any] | None = None,
        key: ECKey | None = None,
    ) -> str:
        """The real header and claims with changes (None removes a member), signed ES256
        by the real key unless another is given."""
        return jwt.encode(
            _without_nones({**self.header, **(header or {})}),
            _without_nones({**self.claims, **(claims or {})}),
            key or self.key,
            algorithms=["ES256"],
            default_type=None,
        )


def _without_nones(members: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in members.items() if value is not None}


ATTACKER = ECKey.generate_key("P-256", private=True, parameters={"kid": "attacker"})


@pytest.fixture
async def real(app: FastAPI, sign_in_as: SignInAs) -> RealToken:
    signed = await sign_in_as(Role.coordinator)
    token = signed.tokens["access_token"]
    header, claims = unverified(token)
    key = app.state.security.tokens.keys.signing_key()
    assert key.kid == header["kid"]
    real = RealToken(token, header, claims, key, app.state.settings.token_audience)
    # The untampered token works, so each 401 below is the attack's doing; and a token
    # re-signed from the same parts works too, so the forging helper itself is sound.
    assert await probe(signed.client, token) == 200
    assert await probe(signed.client, real.signed(claims={"jti": uuid.uuid4().hex})) == 200
    return real


def _now() -> int:
    return int(time.time())


def _tamper_payload(real: RealToken) -> str:
    header, _, signature = real.token.split(".")
    return f"{header}.{b64json({**real.claims, 'role': 'admin'})}.{signature}"


def _flip_signature(real: RealToken) -> str:
    head, _, signature = real.token.rpartition(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return f"{head}.{flipped}"


FORGERIES: dict[str, Callable[[RealToken], str]] = {
    "alg none": lambda r: f"{b64json({'alg': 'none', 'typ': 'at+jwt'})}.{b64json(r.claims)}.",
    "alg none with kid": lambda r: f"{b64json({**r.header, 'alg': 'none'})}.{b64json(r.claims)}.",
    "HS256 keyed with the public PEM": lambda r: hs256(
        {**r.header, "alg": "HS256"}, r.claims, r.key.as_pem(private=False)
    ),
    "HS256 keyed with the public JWK": lambda r: hs256(
        {**r.header, "alg": "HS256"},
        r.claims,
        json.dumps(r.key.as_dict(private=False)).encode(),
    ),
    "wrong issuer": lambda r: r.signed(claims={"iss": "https://evil.example"}),
    "wrong audience": lambda r: r.signed(claims={"aud": "another-api"}),
    "expired": lambda r: r.signed(
        claims={"iat": _now() - 4000, "nbf": _now() - 4000, "exp": _now() - 3600}
    ),
    "not yet valid": lambda r: r.signed(claims={"nbf": _now() + 3600}),
    "without exp": lambda r: r.signed(claims={"exp": None}),
    "attacker key in a jwk header": lambda r: r.signed(
        header={"kid": ATTACKER.kid, "jwk": ATTACKER.as_dict(private=False)}, key=ATTACKER
    ),
    "attacker key at a jku url": lambda r: r.signed(
        header={"kid": ATTACKER.kid, "jku": "https://evil.example/jwks.json"}, key=ATTACKER
    ),
    "jku header on a real signature": lambda r: r.signed(
        header={"jku": "https://evil.example/jwks.json"}
    ),
    "attacker key under the real kid": lambda r: r.signed(key=ATTACKER),
    "unknown kid": lambda r: r.signed(header={"kid": "no-such-key"}, key=ATTACKER),
    "typ JWT": lambda r: r.signed(header={"typ": "JWT"}),
    "no typ": lambda r: r.signed(header={"typ": None}),
    "an ID token": lambda r: r.signed(
        header={"typ": "JWT"}, claims={"aud": "habeas", "nonce": "n-0S6_WzA2Mj", "azp": "habeas"}
    ),
    "someone else's sid": lambda r: r.signed(claims={"sid": str(uuid.uuid4())}),
    "sub not a uuid": lambda r: r.signed(claims={"sub": "admin"}),
    "payload changed after signing": _tamper_payload,
    "signature altered": _flip_signature,
    "signature stripped": lambda r: r.token.rpartition(".")[0] + ".",
    "garbage": lambda r: "garbage",
    "two parts": lambda r: "a.b",
    "three empty parts": lambda r: "..",
    "not base64": lambda r: "!!!.@@@.###",
    "header is a JSON list": lambda r: f"{b64json([1])}.{b64json(r.claims)}.sig",
    "header not JSON": lambda r: f"{b64url(b'not json')}.{b64json(r.claims)}.sig",
    "header not UTF-8": lambda r: f"{b64url(bytes([0xFF, 0xFE]))}.{b64json(r.claims)}.sig",
}


@pytest.mark.parametrize("forge", FORGERIES.values(), ids=FORGERIES.keys())
async def test_a_forged_or_malformed_token_is_refused(
    real: RealToken, anonymous: httpx.AsyncClient, forge: Callable[[RealToken], str]
) -> None:
    token = forge(real)
    response = await anonymous.get(PROBE, headers=bearer(token))
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_deeply_nested_token_header_is_a_401_not_a_500(
    anonymous: httpx.AsyncClient,
) -> None:
    # ~6.7 kB: well within what HTTP servers accept in one header.
    token = f"{b64url(b'[' * 5000)}.{b64json({})}.sig"
    response = await anonymous.get(PROBE, headers=bearer(token))
    assert response.status_code == 401


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Basic {token}", "Token {token}", "{token}", "Bearer  x y"],
    ids=["missing", "empty", "scheme only", "scheme and space", "basic", "token", "bare", "junk"],
)
async def test_the_token_must_come_as_a_bearer_credential(
    real: RealToken, anonymous: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {}
    if authorization is not None:
        headers["Authorization"] = authorization.format(token=real.token)
    response = await anonymous.get(PROBE, headers=headers)
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"

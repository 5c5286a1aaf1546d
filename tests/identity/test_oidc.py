"""The external OpenID Connect verifier, against a real (local) provider over HTTP.

The provider (tests/identity/conftest.py) is an aiohttp app on 127.0.0.1 serving discovery
and a JWKS from mutable state, so a test can rotate keys, break the discovery document and
count fetches. No database.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from joserfc import jwt

from app.access.principal import Role
from app.core.config import Settings
from app.core.errors import Unauthenticated
from app.identity.oidc import ExternalIdentity, OidcVerifier
from tests.identity.conftest import (
    ATTACKER_KEY,
    AUDIENCE,
    EC_KEY,
    REALM_PATH,
    ROLE_MAP,
    ROTATED_KEY,
    SIGNING_KEY,
    Provider,
)

MakeVerifier = Callable[..., OidcVerifier]


@pytest.fixture
async def make_verifier(provider: Provider) -> AsyncIterator[MakeVerifier]:
    verifiers: list[OidcVerifier] = []

    def make(**overrides: Any) -> OidcVerifier:
        values: dict[str, Any] = {"oidc_issuer": provider.issuer, "oidc_role_map": ROLE_MAP}
        values.update(overrides)
        verifier = OidcVerifier(Settings(_env_file=None, **values))
        verifiers.append(verifier)
        return verifier

    yield make
    for verifier in verifiers:
        await verifier.aclose()


@pytest.fixture
def verifier(make_verifier: MakeVerifier) -> OidcVerifier:
    return make_verifier()


async def refused(verifier: OidcVerifier, token: str) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as caught:
        await verifier.verify(token)
    return caught.value


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def json_part(value: object) -> str:
    return b64url(json.dumps(value).encode())


def hand_made(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64url(signature)}"


def valid_claims(provider: Provider) -> dict[str, Any]:
    return dict(jwt.decode(provider.token(), SIGNING_KEY).claims)


# --- the accepted token --------------------------------------------------------------------


async def test_valid_token_gives_the_mapped_identity(
    provider: Provider, verifier: OidcVerifier
) -> None:
    identity = await verifier.verify(provider.token())

    assert identity == ExternalIdentity(
        issuer=provider.issuer, subject="f2a1c3e4-subject", role=Role.caseworker
    )
    assert (provider.discovery_fetches, provider.jwks_fetches) == (1, 1)


async def test_discovery_and_keys_are_cached(provider: Provider, verifier: OidcVerifier) -> None:
    for _ in range(3):
        await verifier.verify(provider.token())
    await verifier.verify(provider.token(EC_KEY))

    assert (provider.discovery_fetches, provider.jwks_fetches) == (1, 1)


async def test_concurrent_first_verifications_fetch_once(
    provider: Provider, verifier: OidcVerifier
) -> None:
    identities = await asyncio.gather(*(verifier.verify(provider.token()) for _ in range(20)))

    assert {identity.role for identity in identities} == {Role.caseworker}
    assert (provider.discovery_fetches, provider.jwks_fetches) == (1, 1)


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt"])
async def test_access_token_types_are_accepted(
    provider: Provider, verifier: OidcVerifier, typ: str
) -> None:
    identity = await verifier.verify(provider.token(header={"typ": typ}))

    assert identity.role is Role.caseworker


async def test_audience_may_be_a_list(provider: Provider, verifier: OidcVerifier) -> None:
    token = provider.token(claims={"aud": ["account", AUDIENCE]})

    assert (await verifier.verify(token)).subject == "f2a1c3e4-subject"


async def test_configured_audience_takes_precedence(
    provider: Provider, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(oidc_audience="habeas-external")

    await refused(verifier, provider.token())
    identity = await verifier.verify(provider.token(claims={"aud": "habeas-external"}))
    assert identity.role is Role.caseworker


# --- discovery and keys --------------------------------------------------------------------


async def test_discovery_naming_another_issuer_is_refused(
    provider: Provider, verifier: OidcVerifier
) -> None:
    provider.discovery_issuer = provider.issuer + "/"

    await refused(verifier, provider.token())

    # The document is not trusted, so neither is the key set it points to.
    assert provider.jwks_fetches == 0


async def test_rotated_key_is_fetched_once_then_further_unknown_kids_wait(
    provider: Provider, verifier: OidcVerifier
) -> None:
    await verifier.verify(provider.token())
    provider.keys = [ROTATED_KEY]

    identity = await verifier.verify(provider.token(ROTATED_KEY))
    assert identity.role is Role.caseworker
    assert provider.jwks_fetches == 2

    # Within the minimum refresh interval: refused without asking the provider again.
    await refused(verifier, provider.token(header={"kid": "made-up"}))
    assert provider.jwks_fetches == 2
    # The refetched set replaced the old one: the withdrawn key no longer verifies.
    await refused(verifier, provider.token(SIGNING_KEY))
    assert provider.jwks_fetches == 2
    # The cached new key keeps working without fetches.
    await verifier.verify(provider.token(ROTATED_KEY))
    assert (provider.discovery_fetches, provider.jwks_fetches) == (1, 2)


async def test_without_a_refresh_interval_every_unknown_kid_refetches(
    provider: Provider, make_verifier: MakeVerifier
) -> None:
    # The counterpart of the test above: the fetch count there is held by the interval.
    verifier = make_verifier(oidc_jwks_min_refresh_seconds=0)
    await verifier.verify(provider.token())

    await refused(verifier, provider.token(header={"kid": "made-up-1"}))
    await refused(verifier, provider.token(header={"kid": "made-up-2"}))

    assert provider.jwks_fetches == 3


async def test_concurrent_unknown_kids_trigger_one_refetch(
    provider: Provider, verifier: OidcVerifier
) -> None:
    await verifier.verify(provider.token())
    provider.keys = [ROTATED_KEY]

    identities = await asyncio.gather(
        *(verifier.verify(provider.token(ROTATED_KEY)) for _ in range(10))
    )

    assert len(identities) == 10
    assert provider.jwks_fetches == 2


async def test_token_without_kid_is_refused_without_a_refetch(
    provider: Provider, make_verifier: MakeVerifier
) -> None:
    provider.keys = [SIGNING_KEY]  # a lone key is what a lenient key lookup would fall back to
    verifier = make_verifier(oidc_jwks_min_refresh_seconds=0)
    await verifier.verify(provider.token())

    await refused(verifier, provider.token(drop_header=("kid",)))
    await refused(verifier, provider.token(header={"kid": ""}))

    assert provider.jwks_fetches == 1


async def test_provider_down_is_unauthenticated() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port any more: the connection is refused.
    issuer = f"http://127.0.0.1:{port}{REALM_PATH}"
    verifier = OidcVerifier(Settings(_env_file=None, oidc_issuer=issuer, oidc_role_map=ROLE_MAP))
    try:
        error = await refused(verifier, Provider(issuer=issuer).token())
    finally:
        await verifier.aclose()

    assert error.status_code == 401


async def test_jwks_error_is_unauthenticated_and_not_retried_at_once(
    provider: Provider, verifier: OidcVerifier
) -> None:
    provider.jwks_status = 503

    await refused(verifier, provider.token())
    await refused(verifier, provider.token())

    assert provider.jwks_fetches == 1


# --- algorithms and headers ----------------------------------------------------------------


@pytest.mark.parametrize("signature", [b"", b"junk"])
@pytest.mark.parametrize("algorithms", [None, ["RS256", "none"]])
async def test_alg_none_is_refused(
    provider: Provider,
    make_verifier: MakeVerifier,
    signature: bytes,
    algorithms: list[str] | None,
) -> None:
    verifier = make_verifier(**({"oidc_algorithms": algorithms} if algorithms else {}))
    header = {"alg": "none", "typ": "at+jwt", "kid": SIGNING_KEY.kid}

    await refused(verifier, hand_made(header, valid_claims(provider), signature))


@pytest.mark.parametrize("algorithms", [None, ["RS256", "HS256"]])
async def test_hs256_signed_with_the_public_key_is_refused(
    provider: Provider, make_verifier: MakeVerifier, algorithms: list[str] | None
) -> None:
    verifier = make_verifier(**({"oidc_algorithms": algorithms} if algorithms else {}))
    public_pem = SIGNING_KEY.as_pem(private=False)
    header = {"alg": "HS256", "typ": "at+jwt", "kid": SIGNING_KEY.kid}
    unsigned = hand_made(header, valid_claims(provider)).rstrip(".")
    signature = hmac.new(public_pem, unsigned.encode(), hashlib.sha256).digest()

    await refused(verifier, f"{unsigned}.{b64url(signature)}")


def test_only_symmetric_algorithms_configured_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="oidc_algorithms"):
        OidcVerifier(
            Settings(_env_file=None, oidc_issuer="http://idp.test", oidc_algorithms=["HS256"])
        )


async def test_algorithm_outside_the_allow_list_is_refused(
    provider: Provider, make_verifier: MakeVerifier
) -> None:
    token = provider.token(EC_KEY)

    await refused(make_verifier(oidc_algorithms=["RS256"]), token)
    # The same token with ES256 allowed: it was the allow-list that refused it.
    assert (await make_verifier().verify(token)).role is Role.caseworker


async def test_alg_not_matching_the_key_type_is_refused(
    provider: Provider, verifier: OidcVerifier
) -> None:
    # Signed by the EC key, but naming the RSA key: joserfc refuses ES256 with an RSA key.
    token = provider.token(EC_KEY, header={"kid": SIGNING_KEY.kid})

    await refused(verifier, token)


async def test_jwk_header_with_the_attackers_own_key_is_refused(
    provider: Provider, verifier: OidcVerifier
) -> None:
    attacker_jwk = ATTACKER_KEY.as_dict(private=False)

    await refused(verifier, provider.token(ATTACKER_KEY, header={"jwk": attacker_jwk}))
    # Even on a token the provider signed, a key-bearing header is not tolerated.
    await refused(verifier, provider.token(header={"jwk": attacker_jwk}))


async def test_jku_header_is_refused(provider: Provider, verifier: OidcVerifier) -> None:
    token = provider.token(header={"jku": "https://attacker.test/jwks.json"})

    await refused(verifier, token)


async def test_x5u_and_x5c_headers_are_refused(provider: Provider, verifier: OidcVerifier) -> None:
    await refused(verifier, provider.token(header={"x5u": "https://attacker.test/cert.pem"}))
    await refused(verifier, provider.token(header={"x5c": ["MIIB"]}))


# --- claims --------------------------------------------------------------------------------


async def test_wrong_issuer_is_refused(provider: Provider, verifier: OidcVerifier) -> None:
    await refused(verifier, provider.token(claims={"iss": "http://127.0.0.1/realms/other"}))


async def test_wrong_audience_is_refused(provider: Provider, verifier: OidcVerifier) -> None:
    await refused(verifier, provider.token(claims={"aud": "another-api"}))
    await refused(verifier, provider.token(claims={"aud": ["another-api", "account"]}))
    await refused(verifier, provider.token(drop_claims=("aud",)))


async def test_expired_token_is_refused(provider: Provider, verifier: OidcVerifier) -> None:
    now = int(time.time())

    await refused(verifier, provider.token(claims={"exp": now - 120, "iat": now - 600}))
    await refused(verifier, provider.token(drop_claims=("exp",)))


async def test_expiry_allows_thirty_seconds_of_clock_skew(
    provider: Provider, verifier: OidcVerifier
) -> None:
    now = int(time.time())

    await verifier.verify(provider.token(claims={"exp": now - 10}))
    await refused(verifier, provider.token(claims={"exp": now - 45}))


async def test_not_before_in_the_future_is_refused(
    provider: Provider, verifier: OidcVerifier
) -> None:
    now = int(time.time())

    await refused(verifier, provider.token(claims={"nbf": now + 600}))
    await verifier.verify(provider.token(claims={"nbf": now + 10}))


async def test_issued_in_the_future_beyond_a_minute_is_refused(
    provider: Provider, verifier: OidcVerifier
) -> None:
    now = int(time.time())

    await refused(verifier, provider.token(claims={"iat": now + 300}, drop_claims=("nbf",)))
    await verifier.verify(provider.token(claims={"iat": now + 45}, drop_claims=("nbf",)))


@pytest.mark.parametrize("sub", [None, "", 42])
async def test_missing_or_empty_subject_is_refused(
    provider: Provider, verifier: OidcVerifier, sub: object
) -> None:
    token = (
        provider.token(drop_claims=("sub",)) if sub is None else provider.token(claims={"sub": sub})
    )

    await refused(verifier, token)


# --- ID tokens and token types -------------------------------------------------------------


@pytest.mark.parametrize(
    "claims", [{"nonce": "n-0S6_WzA2Mj"}, {"at_hash": "77QmUPtjPfzWtF2AnpK9RQ"}, {"c_hash": "LDkt"}]
)
async def test_id_token_claims_are_refused(
    provider: Provider, verifier: OidcVerifier, claims: dict[str, str]
) -> None:
    await refused(verifier, provider.token(claims=claims))


@pytest.mark.parametrize("typ", ["JWT", "id_token", "dpop+jwt"])
async def test_other_token_types_are_refused_when_at_jwt_is_required(
    provider: Provider, verifier: OidcVerifier, typ: str
) -> None:
    await refused(verifier, provider.token(header={"typ": typ}))


async def test_id_token_for_the_client_is_refused(
    provider: Provider, make_verifier: MakeVerifier
) -> None:
    # What a provider issues as an ID token: typ JWT, aud = the client, a nonce.
    verifier = make_verifier(oidc_require_at_jwt=False)
    token = provider.token(
        header={"typ": "JWT"}, claims={"aud": "habeas-web", "azp": "habeas-web", "nonce": "n-1"}
    )

    await refused(verifier, token)
    # Each trait alone is enough.
    await refused(verifier, provider.token(header={"typ": "JWT"}, claims={"aud": "habeas-web"}))
    await refused(verifier, provider.token(header={"typ": "JWT"}, claims={"nonce": "n-1"}))


async def test_missing_typ_is_refused_only_when_at_jwt_is_required(
    provider: Provider, make_verifier: MakeVerifier
) -> None:
    untyped = provider.token(drop_header=("typ",))

    await refused(make_verifier(), untyped)
    relaxed = make_verifier(oidc_require_at_jwt=False)
    assert (await relaxed.verify(untyped)).role is Role.caseworker
    assert (await relaxed.verify(provider.token(header={"typ": "JWT"}))).role is Role.caseworker
    # Relaxed typing never lets an ID token through.
    await refused(relaxed, provider.token(drop_header=("typ",), claims={"nonce": "n-1"}))
    await refused(relaxed, provider.token(header={"typ": "id_token"}))


# --- roles ---------------------------------------------------------------------------------


async def test_missing_role_claim_is_refused(provider: Provider, verifier: OidcVerifier) -> None:
    await refused(verifier, provider.token(drop_claims=("roles",)))


async def test_unmapped_role_is_refused(provider: Provider, verifier: OidcVerifier) -> None:
    await refused(verifier, provider.token(claims={"roles": ["offline_access"]}))
    # Spelled like a Habeas role, but the map is authoritative and does not list it.
    await refused(verifier, provider.token(claims={"roles": ["admin"]}))
    await refused(verifier, provider.token(claims={"roles": []}))


async def test_malformed_role_claim_is_refused(provider: Provider, verifier: OidcVerifier) -> None:
    await refused(verifier, provider.token(claims={"roles": {"habeas-admins": True}}))
    await refused(verifier, provider.token(claims={"roles": ["habeas-admins", 7]}))


async def test_conflicting_roles_are_refused(provider: Provider, verifier: OidcVerifier) -> None:
    error = await refused(
        verifier, provider.token(claims={"roles": ["habeas-caseworkers", "habeas-admins"]})
    )

    assert "several Habeas roles" in error.detail


async def test_provider_roles_mapping_to_the_same_role_agree(
    provider: Provider, verifier: OidcVerifier
) -> None:
    token = provider.token(claims={"roles": ["habeas-caseworkers", "case-handlers"]})

    assert (await verifier.verify(token)).role is Role.caseworker


async def test_single_string_role_claim(provider: Provider, verifier: OidcVerifier) -> None:
    token = provider.token(claims={"roles": "habeas-auditors"})

    assert (await verifier.verify(token)).role is Role.auditor


async def test_dotted_role_claim_path(provider: Provider, make_verifier: MakeVerifier) -> None:
    verifier = make_verifier(oidc_role_claim="realm_access.roles")
    token = provider.token(
        claims={"realm_access": {"roles": ["default-roles-habeas", "habeas-admins"]}},
        drop_claims=("roles",),
    )

    assert (await verifier.verify(token)).role is Role.admin
    await refused(verifier, provider.token())  # top-level `roles` is not the configured claim


async def test_namespaced_role_claim_name_with_dots(
    provider: Provider, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(oidc_role_claim="https://habeas.example.org/roles")
    token = provider.token(claims={"https://habeas.example.org/roles": ["habeas-auditors"]})

    assert (await verifier.verify(token)).role is Role.auditor


def test_role_map_to_an_unknown_role_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="oidc_role_map"):
        OidcVerifier(
            Settings(_env_file=None, oidc_issuer="http://idp.test", oidc_role_map={"x": "root"})
        )


# --- malformed input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b.c",
        "a.b",
        "a.b.c.d.e",
        "!!!.@@@.###",
        "eyJhbGciOiJSUzI1NiJ9.@@@.c2ln",
        f"{b64url(b'[1, 2]')}.e30.c2ln",
        f"{b64url(b'not json')}.e30.c2ln",
        f"{b64url(b'{')}.e30.c2ln",
        f"{b64url(b'[' * 5_000)}.e30.c2ln",
        f"{json_part({'alg': 'RS256'})}.e30.c2ln",
        f"{json_part({'alg': 'RS256', 'typ': 'at+jwt', 'kid': 5})}.e30.c2ln",
        f"{json_part({'alg': ['RS256'], 'typ': 'at+jwt', 'kid': 'rsa-1'})}.e30.c2ln",
        f"{json_part({'alg': 'RS256', 'typ': 7, 'kid': 'rsa-1'})}.e30.c2ln",
        f"{json_part({'alg': 'RS256', 'typ': 'at+jwt', 'kid': 'rsa-1'})}.e30.c2ln",
        "x" * 100_000,
        "é.é.é",
    ],
)
async def test_malformed_tokens_are_unauthenticated(verifier: OidcVerifier, token: str) -> None:
    await refused(verifier, token)


async def test_garbage_payload_under_a_valid_header_is_unauthenticated(
    provider: Provider, verifier: OidcVerifier
) -> None:
    header, _, signature = provider.token().split(".")

    await refused(verifier, f"{header}.{b64url(b'[[[[')}.{signature}")
    await refused(verifier, f"{header}.{b64url(b'{}')}.{signature}")

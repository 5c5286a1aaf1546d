"""The external identity provider, end to end: the app accepts its access tokens with the
mapped role and the same policies, and refuses its ID tokens."""

from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI

from app.main import create_app
from tests.auth import api_client
from tests.conftest import settings_for
from tests.factories import API
from tests.identity.conftest import AUDIENCE, ROLE_MAP, Provider


@pytest.fixture
async def oidc_app(
    provider: Provider, database_url: str, clean_tables: None
) -> AsyncIterator[FastAPI]:
    application = create_app(
        settings_for(
            database_url,
            oidc_issuer=provider.issuer,
            oidc_audience=AUDIENCE,
            oidc_role_map=ROLE_MAP,
        )
    )
    async with application.router.lifespan_context(application):
        yield application


async def test_an_external_access_token_signs_in_with_the_mapped_role(
    oidc_app: FastAPI, provider: Provider
) -> None:
    async with api_client(oidc_app) as client:
        client.headers["Authorization"] = f"Bearer {provider.token()}"
        # Mapped to caseworker: may list persons, may not manage accounts.
        assert (await client.get(f"{API}/persons")).status_code == 200
        assert (await client.get(f"{API}/users")).status_code == 403


@pytest.mark.parametrize(
    "claims",
    [
        {"nonce": "n-1", "aud": "habeas-web-client"},  # an ID token
        {"roles": ["some-unmapped-role"]},
        {"iss": "http://127.0.0.1:1/realms/elsewhere"},
    ],
)
async def test_external_tokens_that_are_not_good_access_tokens_are_refused(
    oidc_app: FastAPI, provider: Provider, claims: dict[str, object]
) -> None:
    async with api_client(oidc_app) as client:
        client.headers["Authorization"] = f"Bearer {provider.token(claims=claims)}"
        response = await client.get(f"{API}/persons")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


async def test_an_id_token_by_its_type_is_refused(oidc_app: FastAPI, provider: Provider) -> None:
    async with api_client(oidc_app) as client:
        token = provider.token(header={"typ": "JWT"})
        client.headers["Authorization"] = f"Bearer {token}"
        assert (await client.get(f"{API}/persons")).status_code == 401

"""An error nobody foresaw is a generic 500 that tells the caller nothing of it."""

import httpx
import pytest

from app.sources import service as sources_service
from tests.factories import API


async def test_an_unexpected_error_is_a_generic_500_with_the_usual_headers(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object) -> None:
        raise RuntimeError("secret detail that must not leak")

    monkeypatch.setattr(sources_service, "get", broken)
    response = await client.get(f"{API}/sources/01a2109f-13cc-7416-b07f-aafbffcc8609")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-request-id"]
    assert "secret detail" not in response.text

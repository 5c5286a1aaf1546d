"""Conventions every endpoint shares: errors, limits, headers, docs, operations."""

import re
from collections.abc import AsyncIterator

import asyncpg
import httpx

from app.main import create_app
from tests.conftest import row_counts, settings_for
from tests.factories import API, person_body

SECURITY_HEADERS = {
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


class TestProblemResponses:
    async def test_malformed_json_is_a_400_problem(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            f"{API}/persons", content=b'{"names": [', headers={"content-type": "application/json"}
        )
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == "urn:habeas:problem:malformed-json"

    async def test_validation_errors_do_not_echo_the_input(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            f"{API}/persons", json=person_body(region="Secret Street 5, flat 12")
        )
        assert response.status_code == 422
        assert "Secret Street" not in response.text

    async def test_a_body_over_the_limit_is_413_and_writes_nothing(
        self, client: httpx.AsyncClient, db: asyncpg.Connection
    ) -> None:
        before = await row_counts(db)
        huge = person_body(notes="x" * 1_100_000)
        response = await client.post(f"{API}/persons", json=huge)
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/problem+json"
        assert await row_counts(db) == before

    async def test_a_streamed_body_over_the_limit_is_413(self, client: httpx.AsyncClient) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"notes": "'
            for _ in range(20):
                yield b"x" * 100_000

        response = await client.post(
            f"{API}/persons", content=chunks(), headers={"content-type": "application/json"}
        )
        assert "content-length" not in response.request.headers
        assert response.status_code == 413

    async def test_unknown_routes_and_methods_are_problems(self, client: httpx.AsyncClient) -> None:
        missing = await client.get(f"{API}/prisoners")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        wrong_method = await client.delete(f"{API}/persons")
        assert wrong_method.status_code == 405
        assert wrong_method.headers["content-type"] == "application/problem+json"


class TestHeaders:
    async def test_every_response_carries_security_headers_and_a_request_id(
        self, client: httpx.AsyncClient
    ) -> None:
        for response in (
            await client.get("/healthz"),
            await client.get(f"{API}/persons"),
            await client.get(f"{API}/persons/nope"),
            await client.post(f"{API}/persons", json={}),
        ):
            for name, value in SECURITY_HEADERS.items():
                assert response.headers[name] == value, (response.url, name)
            assert "default-src 'none'" in response.headers["content-security-policy"]
            assert response.headers["x-request-id"]


class TestDocs:
    async def test_docs_name_no_outside_host_and_their_assets_are_served(
        self, client: httpx.AsyncClient
    ) -> None:
        page = await client.get("/docs")
        assert page.status_code == 200
        urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", page.text)
        assert urls, page.text
        assert not [u for u in urls if "//" in u], urls
        assert "cdn" not in page.text.lower()
        for asset in re.findall(r"""['"](/docs-assets/[^'"]+)['"]""", page.text):
            assert (await client.get(asset)).status_code == 200, asset

    async def test_the_openapi_schema_lists_every_resource(self, client: httpx.AsyncClient) -> None:
        paths = (await client.get("/openapi.json")).json()["paths"]
        for path in (
            "/api/v1/persons",
            "/api/v1/cases/{case_id}/status-events",
            "/api/v1/collective-events",
            "/api/v1/persons/{person_id}/recognition",
            "/api/v1/sources",
        ):
            assert path in paths


class TestOperations:
    async def test_healthz_and_readyz(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["status"] == "ready"

    async def test_readyz_is_503_on_an_unmigrated_database(self, admin_url: str) -> None:
        from app.core import embedded

        name = "habeas_test_unmigrated"
        await embedded.ensure_database(admin_url, name)
        try:
            app = create_app(settings_for(embedded.with_database(admin_url, name)))
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                    response = await c.get("/readyz")
            assert response.status_code == 503
        finally:
            await embedded.drop_database(admin_url, name)


class TestHostileInput:
    async def test_deeply_nested_json_is_refused_without_a_server_error(
        self, client: httpx.AsyncClient
    ) -> None:
        nested = "[" * 100_000 + "]" * 100_000
        response = await client.post(
            f"{API}/sources", content=nested.encode(), headers={"content-type": "application/json"}
        )
        assert 400 <= response.status_code < 500

    async def test_nul_bytes_in_queries_and_headers_are_refused_or_harmless(
        self, client: httpx.AsyncClient
    ) -> None:
        for url in (
            f"{API}/persons?q=ab%00cdef",
            f"{API}/sources?publisher=a%00b",
            f"{API}/persons?cursor=%00",
            f"{API}/cases?article=%00",
        ):
            response = await client.get(url)
            assert response.status_code in (200, 400, 422), (url, response.text)
        response = await client.post(
            f"{API}/persons", json=person_body(), headers={"Idempotency-Key": "a\x01b"}
        )
        assert response.status_code == 422

    async def test_a_body_that_is_not_an_object_is_refused(self, client: httpx.AsyncClient) -> None:
        for body in ([], "text", 3, None):
            response = await client.post(f"{API}/persons", json=body)
            assert response.status_code == 422, body

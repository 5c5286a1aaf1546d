"""A query parameter an operation does not take is refused, never ignored: a caseworker who
types `?stauts=released` must not get every case file back and take it for the released
ones (app/core/queries.py)."""

import uuid
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Query

from app.access.principal import Role
from app.core.errors import install_error_handlers
from app.core.queries import refuse_unknown_query_parameters
from tests.auth import assert_problem
from tests.factories import API, create_case, create_person, transition


def _unknown(response: httpx.Response, *names: str) -> dict[str, Any]:
    assert_problem(response, 400, "unknown-query-parameter")
    problem: dict[str, Any] = response.json()
    assert problem["errors"] == [
        {
            "loc": ["query", name],
            "msg": "not a parameter of this operation",
            "type": "unknown_parameter",
        }
        for name in names
    ]
    return problem


class TestATypoIsRefused:
    async def test_a_misspelt_filter_is_a_400_that_names_it_and_lists_the_right_ones(
        self, client: httpx.AsyncClient
    ) -> None:
        held = await create_case(client)
        freed = await create_case(client)
        assert (await transition(client, freed, "released", "2022-03-01")).status_code == 201

        typo = await client.get(f"{API}/cases", params={"stauts": "released"})
        problem = _unknown(typo, "stauts")
        assert "stauts" in problem["detail"]
        # The refusal says what the operation does take, so the typo can be mended.
        assert "status" in problem["detail"] and "limit" in problem["detail"]

        mended = await client.get(f"{API}/cases", params={"status": "released"})
        assert mended.status_code == 200
        assert [item["id"] for item in mended.json()["items"]] == [freed["id"]]
        everyone = await client.get(f"{API}/cases")
        assert {item["id"] for item in everyone.json()["items"]} == {held["id"], freed["id"]}

    @pytest.mark.parametrize(
        ("path", "typo"),
        [
            ("/persons", {"citizenshp": "BY"}),
            ("/cases", {"jurisdicton": "BY"}),
            ("/sources", {"publsher": "Monitor"}),
            ("/collective-events", {"knd": "pardon"}),
            ("/audit/events", {"actor": "x"}),
            ("/cases", {"limt": "1"}),
        ],
    )
    async def test_on_every_list(
        self, client: httpx.AsyncClient, path: str, typo: dict[str, str]
    ) -> None:
        _unknown(await client.get(f"{API}{path}", params=typo), *typo)

    async def test_on_a_record_and_on_a_write(self, client: httpx.AsyncClient) -> None:
        case = await create_case(client)
        url = f"{API}/cases/{case['id']}"
        _unknown(await client.get(url, params={"fields": "status"}), "fields")
        refused = await client.patch(
            url, params={"dry_run": "1"}, json={"jurisdiction": "LT"}, headers={"If-Match": '"1"'}
        )
        _unknown(refused, "dry_run")
        # Nothing was changed by the refused write.
        assert (await client.get(url)).json()["jurisdiction"] == "BY"

    async def test_every_unknown_name_is_listed_once(self, client: httpx.AsyncClient) -> None:
        response = await client.get(f"{API}/persons?a=1&b=2&a=3&status=detained")
        _unknown(response, "a", "b", "status")

    async def test_a_name_without_a_value_is_a_parameter_too(
        self, client: httpx.AsyncClient
    ) -> None:
        _unknown(await client.get(f"{API}/cases?released"), "released")


class TestWhatIsDeclaredStillWorks:
    async def test_filters_and_paging_together_and_the_next_link_is_accepted(
        self, client: httpx.AsyncClient
    ) -> None:
        person = await create_person(client)
        made = {(await create_case(client, person["id"]))["id"] for _ in range(3)}
        seen: set[str] = set()
        url: str | None = f"{API}/cases?person_id={person['id']}&status=detained&limit=2"
        while url is not None:
            page = await client.get(url)
            assert page.status_code == 200, page.text
            seen |= {item["id"] for item in page.json()["items"]}
            url = page.json()["next"]
        assert seen == made

    async def test_every_documented_query_parameter_is_taken(
        self, client: httpx.AsyncClient, anonymous: httpx.AsyncClient
    ) -> None:
        """What the contract promises and what the check accepts are one list: each query
        parameter of each operation in the OpenAPI document gets past it."""
        document = (await anonymous.get("/openapi.json")).json()
        checked = 0
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
                if method != "get" or not names:
                    continue
                url = path
                for parameter in (p for p in operation["parameters"] if p["in"] == "path"):
                    url = url.replace("{" + parameter["name"] + "}", str(uuid.uuid4()))
                response = await client.get(url, params=dict.fromkeys(names, "x"))
                problem = response.json() if response.status_code >= 400 else {}
                assert problem.get("type", "").split(":")[-1] not in (
                    "unknown-query-parameter",
                    "repeated-query-parameter",
                ), (path, response.text)
                checked += 1
        assert checked >= 8


class TestRepeatedParameters:
    async def test_a_filter_that_takes_one_value_given_twice_is_a_400(
        self, client: httpx.AsyncClient
    ) -> None:
        """Which of two statuses would apply is a guess: neither is, and the client is told."""
        await create_case(client)
        response = await client.get(f"{API}/cases?status=detained&status=released")
        assert_problem(response, 400, "repeated-query-parameter")
        assert response.json()["errors"] == [
            {"loc": ["query", "status"], "msg": "takes one value", "type": "repeated_parameter"}
        ]
        twice = await client.get(f"{API}/cases?limit=5&limit=5")
        assert_problem(twice, 400, "repeated-query-parameter")

    async def test_a_parameter_that_takes_a_list_may_be_repeated(self) -> None:
        """No route of the API takes a list yet; the rule is that one that does may repeat
        it (and still refuses names it does not take)."""
        app = FastAPI(dependencies=[Depends(refuse_unknown_query_parameters)])
        install_error_handlers(app)

        @app.get("/tags")
        async def tags(
            tag: Annotated[list[str] | None, Query()] = None, limit: int = 10
        ) -> dict[str, Any]:
            return {"tag": tag, "limit": limit}

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as local:
            listed = await local.get("/tags?tag=a&tag=b")
            assert listed.status_code == 200
            assert listed.json() == {"tag": ["a", "b"], "limit": 10}
            assert_problem(
                await local.get("/tags?limit=1&limit=2"), 400, "repeated-query-parameter"
            )
            _unknown(await local.get("/tags?tags=a"), "tags")


class TestWhoIsRefused:
    async def test_the_refusal_tells_nothing_about_records_and_a_token_is_still_needed(
        self, anonymous: httpx.AsyncClient, sign_in_as: Any
    ) -> None:
        """A malformed query is refused before the caller is known, like a malformed body:
        it names only the parameter sent. Without the typo, the anonymous caller still gets
        401 and an auditor (no case content) 403."""
        _unknown(await anonymous.get(f"{API}/cases", params={"stauts": "detained"}), "stauts")
        assert (
            await anonymous.get(f"{API}/cases", params={"status": "detained"})
        ).status_code == 401
        auditor = (await sign_in_as(Role.auditor)).client
        assert (await auditor.get(f"{API}/cases", params={"status": "detained"})).status_code == 403


class TestTheContract:
    async def test_every_operation_documents_the_400(self, anonymous: httpx.AsyncClient) -> None:
        document = (await anonymous.get("/openapi.json")).json()
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                refusal = operation["responses"].get("400")
                assert refusal is not None, (method, path)
                assert "unknown-query-parameter" in refusal["description"], (method, path)
                assert refusal["content"]["application/problem+json"]["schema"] == {
                    "$ref": "#/components/schemas/Problem"
                }

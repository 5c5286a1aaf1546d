"""The rules of the published contract, each told as a client meets it: what the OpenAPI
document promises, and what the API then answers. (The Schemathesis run in
test_contract.py explores the same promises with generated input; these pin each one.)"""

import re
from collections.abc import Iterator
from typing import Any

import httpx
from fastapi import FastAPI

from app.access.principal import Role
from tests.factories import (
    API,
    case_body,
    create_case,
    create_person,
    event,
    if_match,
    person_body,
    transition,
)

PROBLEM = "application/problem+json"


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            yield path, method, operation


async def _contract(anonymous: httpx.AsyncClient) -> dict[str, Any]:
    response = await anonymous.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


class TestTheDocument:
    async def test_every_refusal_is_a_problem_document(self, anonymous: httpx.AsyncClient) -> None:
        document = await _contract(anonymous)
        assert "HTTPValidationError" not in document["components"]["schemas"]
        problem = document["components"]["schemas"]["Problem"]
        assert problem["required"] == ["type", "title", "status"]
        for path, method, operation in _operations(document):
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                content = response["content"]
                if path == "/api/v1/auth/token":
                    # OAuth's own error format (RFC 6749 §5.2), beside problem documents.
                    assert set(content) <= {"application/json", PROBLEM}
                    continue
                assert list(content) == [PROBLEM], (method, path, status)
                schema = content[PROBLEM]["schema"]
                # A refusal with members of its own (a likely duplicate's candidates)
                # is a problem document with more.
                if "allOf" in schema:
                    schema = schema["allOf"][0]
                assert schema == {"$ref": "#/components/schemas/Problem"}, (method, path)

    async def test_refusals_follow_from_what_an_operation_takes(
        self, anonymous: httpx.AsyncClient
    ) -> None:
        document = await _contract(anonymous)
        for path, method, operation in _operations(document):
            statuses = {int(status) for status in operation["responses"]}
            names = {parameter["name"] for parameter in operation.get("parameters", [])}
            assert 503 in statuses, (method, path)
            assert "Retry-After" in operation["responses"]["503"]["headers"]
            if operation.get("security"):
                assert {401, 403} <= statuses, (method, path)
                assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]
            if "{" in path:
                assert 404 in statuses, (method, path)
            if "requestBody" in operation:
                assert {400, 408, 413, 415, 422} <= statuses, (method, path)
            if "cursor" in names:
                assert 400 in statuses, (method, path)
            if "Idempotency-Key" in names or (operation.get("security") and method != "get"):
                assert 409 in statuses, (method, path)

    async def test_if_match_is_required_and_shaped(self, anonymous: httpx.AsyncClient) -> None:
        document = await _contract(anonymous)
        seen = 0
        for path, method, operation in _operations(document):
            for parameter in operation.get("parameters", []):
                if parameter["name"] != "If-Match":
                    continue
                seen += 1
                assert parameter["required"] is True, (method, path)
                assert re.fullmatch(parameter["schema"]["pattern"], '"12"')
                assert not re.fullmatch(parameter["schema"]["pattern"], "12")
                assert {412, 428} <= {int(status) for status in operation["responses"]}
        assert seen >= 10

    async def test_every_route_that_takes_if_match_documents_412_and_428(
        self, anonymous: httpx.AsyncClient
    ) -> None:
        """A stale version (412 `stale-version`), an If-Match that can match no version,
        such as a weak ETag (400 `if-match-unusable`), and a missing one (428)."""
        document = await _contract(anonymous)
        seen = 0
        for path, method, operation in _operations(document):
            if not any(p["name"] == "If-Match" for p in operation.get("parameters", [])):
                continue
            seen += 1
            responses = operation["responses"]
            for status in ("412", "428"):
                assert status in responses, (method, path, status)
                schema = responses[status]["content"][PROBLEM]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problem"}, (method, path)
            assert "`if-match-unusable`" in responses["400"]["description"], (method, path)
            assert "weak" in responses["400"]["description"], (method, path)
        assert seen >= 10

    # The routes whose own state can refuse a change, with the problem types their 409
    # names where the route describes it in its own words.
    CONFLICTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
        ("/api/v1/cases", "post", ("invalid-transition",)),
        ("/api/v1/cases/{case_id}/status-events", "post", ("invalid-transition",)),
        (
            "/api/v1/cases/{case_id}/status-events/{event_id}/retraction",
            "post",
            ("conflict", "invalid-transition"),
        ),
        ("/api/v1/collective-events", "post", ()),
        ("/api/v1/persons/{person_id}/recognition", "post", ()),
        ("/api/v1/persons/{person_id}/merges", "post", ("merge-refused",)),
        ("/api/v1/persons/{person_id}/merges/{merge_id}/unmerge", "post", ("merge-refused",)),
        ("/api/v1/users", "post", ()),
        ("/api/v1/partners", "post", ()),
        ("/api/v1/audit/checkpoints/latest", "get", ()),
    )

    async def test_every_route_that_can_conflict_documents_its_409(
        self, anonymous: httpx.AsyncClient
    ) -> None:
        paths = (await _contract(anonymous))["paths"]
        for path, method, slugs in self.CONFLICTS:
            conflict = paths[path][method]["responses"].get("409")
            assert conflict is not None, (method, path)
            assert conflict["content"][PROBLEM]["schema"] == {
                "$ref": "#/components/schemas/Problem"
            }
            for slug in slugs:
                assert f"`{slug}`" in conflict["description"], (method, path, slug)
        # A route's own words replace the generic conflict, not the in-flight retry.
        transition = paths["/api/v1/cases/{case_id}/status-events"]["post"]["responses"]["409"]
        assert "`idempotency-key-in-flight`" in transition["description"]
        assert "present state" not in transition["description"]

    async def test_parameters_are_never_null_and_limit_has_its_maximum(
        self, app: FastAPI, anonymous: httpx.AsyncClient
    ) -> None:
        document = await _contract(anonymous)
        limits = 0
        for _path, _method, operation in _operations(document):
            for parameter in operation.get("parameters", []):
                assert '"null"' not in str(parameter["schema"]).replace("'", '"')
                if parameter["name"] == "limit":
                    limits += 1
                    assert parameter["schema"]["maximum"] == app.state.settings.max_page_size
        assert limits >= 8

    async def test_patch_fields_may_be_left_out_but_are_not_nullable(
        self, anonymous: httpx.AsyncClient
    ) -> None:
        schemas = (await _contract(anonymous))["components"]["schemas"]
        for name in ("CaseUpdate", "UserUpdate", "PartnerUpdate"):
            for field, schema in schemas[name]["properties"].items():
                assert "null" not in str(schema), (name, field)
        # A person's optional facts may be cleared; what a person always has may not.
        person = schemas["PersonUpdate"]["properties"]
        for field in ("names", "gender", "citizenships", "publish_consent"):
            assert "null" not in str(person[field]), field
        assert "null" in str(person["notes"])

    async def test_writes_name_their_headers_and_links(self, anonymous: httpx.AsyncClient) -> None:
        paths = (await _contract(anonymous))["paths"]
        created = paths["/api/v1/cases"]["post"]["responses"]["201"]
        assert {"ETag", "Location"} <= set(created["headers"])
        transition = paths["/api/v1/cases/{case_id}/status-events"]["post"]["responses"]["201"]
        assert "ETag" in transition["headers"]
        follow_ups = {link["operationId"]: link for link in created["links"].values()}
        patch = next(link for key, link in follow_ups.items() if key.startswith("update_case"))
        assert patch["parameters"] == {
            "case_id": "$response.body#/id",
            "header.If-Match": "$response.header.ETag",
        }


def _sentence(**details: Any) -> list[dict[str, Any]]:
    """A history that ends in a sentence (by a court, known to the month)."""
    return [
        event("detained", "2021-09-01"),
        event("sentenced", "2022-03", details={"court": "Minsk City Court", **details}),
    ]


class TestWhatTheApiAnswers:
    async def test_a_unix_timestamp_is_not_a_date(self, client: httpx.AsyncClient) -> None:
        for query in ("detained_to=0", "detained_from=1700000000", "detained_to=2021-13-01"):
            response = await client.get(f"{API}/cases?{query}")
            assert response.status_code == 422, query
            assert response.headers["content-type"] == PROBLEM
        assert (await client.get(f"{API}/cases?detained_to=2021-08-10")).status_code == 200

    async def test_a_moment_needs_iso_8601_with_a_zone(self, sign_in_as: Any) -> None:
        auditor = (await sign_in_as(Role.auditor)).client
        for since in ("0.5", "0", "2026-01-01T00:00"):
            response = await auditor.get(f"{API}/audit/events", params={"since": since})
            assert response.status_code == 422, since
        ok = await auditor.get(f"{API}/audit/events", params={"since": "2026-01-01T00:00Z"})
        assert ok.status_code == 200

    async def test_options_and_405_list_every_method_of_the_path(
        self, client: httpx.AsyncClient, anonymous: httpx.AsyncClient
    ) -> None:
        case = await create_case(client)
        path = f"{API}/cases/{case['id']}"
        options = await anonymous.options(path)
        assert options.status_code == 204
        assert options.headers["allow"] == "GET, HEAD, OPTIONS, PATCH"
        refused = await client.delete(path)
        assert refused.status_code == 405
        assert refused.headers["allow"] == "GET, HEAD, OPTIONS, PATCH"
        assert refused.headers["content-type"] == PROBLEM
        events = await anonymous.options(f"{path}/status-events")
        assert events.headers["allow"] == "GET, HEAD, OPTIONS, POST"
        # Routes outside the contract too.
        document = await anonymous.post("/openapi.json")
        assert document.status_code == 405
        assert document.headers["allow"] == "GET, HEAD, OPTIONS"

    async def test_a_transition_answers_with_the_case_files_new_etag(
        self, client: httpx.AsyncClient
    ) -> None:
        case = await create_case(client)
        response = await transition(client, case, "released", "2022-01-03")
        assert response.status_code == 201, response.text
        assert response.headers["etag"] == f'"{response.json()["case_version"]}"' == '"2"'
        # The ETag is the one to change the case file with next.
        patched = await client.patch(
            f"{API}/cases/{case['id']}",
            json={"jurisdiction": "LT"},
            headers={"If-Match": response.headers["etag"]},
        )
        assert patched.status_code == 200

    async def test_the_conflicts_and_preconditions_a_case_file_meets_are_documented(
        self, client: httpx.AsyncClient, anonymous: httpx.AsyncClient
    ) -> None:
        """Each 409, 412 and 428 a client meets on a case file is one its operation lists,
        as a problem document."""
        paths = (await _contract(anonymous))["paths"]
        case = await create_case(client)
        url = f"{API}/cases/{case['id']}"
        released = await transition(client, case, "released", "2022-01-03")
        event_id = released.json()["event"]["id"]
        retraction = f"{url}/status-events/{event_id}/retraction"
        met = [
            (
                "/cases/{case_id}",
                "patch",
                428,
                await client.patch(url, json={"jurisdiction": "LT"}),
            ),
            (
                "/cases/{case_id}",
                "patch",
                412,
                await client.patch(url, json={"jurisdiction": "LT"}, headers=if_match(1)),
            ),
            (
                "/cases/{case_id}/status-events",
                "post",
                409,
                await transition(client, case, "sentenced", "2022-02-01", version=2),
            ),
            (
                "/cases/{case_id}/status-events",
                "post",
                412,
                await transition(client, case, "deported", "2022-02-01", version=1),
            ),
            (
                "/cases/{case_id}/status-events/{event_id}/retraction",
                "post",
                428,
                await client.post(retraction, json={"reason": "wrong case file"}),
            ),
            (
                "/cases",
                "post",
                409,
                await client.post(
                    f"{API}/cases",
                    json=case_body(
                        case["person_id"],
                        [event("detained", "2021-08-10"), event("detained", "2021-09")],
                    ),
                ),
            ),
        ]
        for path, method, status, response in met:
            assert response.status_code == status, (path, response.text)
            assert response.headers["content-type"] == PROBLEM
            assert str(status) in paths[f"{API}{path}"][method]["responses"], (method, path)

    async def test_yes_and_no_are_booleans_and_amounts_are_text(
        self, client: httpx.AsyncClient
    ) -> None:
        refused = await client.post(f"{API}/persons", json=person_body(publish_consent=0))
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["loc"] == ["body", "publish_consent"]
        person = await create_person(client)
        for amount, status in (("1500.50", 201), (1500, 422), ("1500.505", 422), ("-1", 422)):
            response = await client.post(
                f"{API}/cases",
                json=case_body(person["id"], _sentence(sentence_type="fine", fine_amount=amount)),
            )
            assert response.status_code == status, (amount, response.text)

    async def test_counts_are_numbers_and_whole_floats_count(
        self, client: httpx.AsyncClient
    ) -> None:
        """JSON Schema's integer: 12 and 12.0 are one; "12" and true are not numbers."""
        person = await create_person(client)
        for months, status in ((12, 201), (12.0, 201), ("12", 422), (True, 422), (12.5, 422)):
            response = await client.post(
                f"{API}/cases", json=case_body(person["id"], _sentence(term_months=months))
            )
            assert response.status_code == status, (months, response.text)

    async def test_court_decisions_are_read_not_written(self, client: httpx.AsyncClient) -> None:
        """The sentence lives on its `sentenced` event; the case file only derives it."""
        person = await create_person(client)
        decision = {"court": "Minsk City Court", "decided_on": "2022-03", "term_months": 12}
        refused = await client.post(
            f"{API}/cases", json=case_body(person["id"], court_decisions=[decision])
        )
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["loc"] == ["body", "court_decisions"]
        made = await client.post(
            f"{API}/cases", json=case_body(person["id"], _sentence(term_months=12))
        )
        assert [(d["term_months"], d["decided_on"]) for d in made.json()["court_decisions"]] == [
            (12, "2022-03")
        ]

    async def test_a_deportations_country_is_given_once(self, client: httpx.AsyncClient) -> None:
        case = await create_case(client)
        body = {
            "title": "Expulsion",
            "kind": "deportation",
            "effective_date": "2025-09-11",
            "to_status": "deported",
            "confidence": "confirmed",
            "case_file_ids": [case["id"]],
        }
        twice = {**body, "destination_country": "LT", "details": {"destination_country": "LT"}}
        assert (await client.post(f"{API}/collective-events", json=twice)).status_code == 422
        once = {**body, "details": {"destination_country": "LT"}}
        made = await client.post(f"{API}/collective-events", json=once)
        assert made.status_code == 201, made.text

    async def test_an_idempotency_key_is_visible_ascii(self, client: httpx.AsyncClient) -> None:
        for key, status in (("ключ-1", 422), ("a" * 256, 422), ("req 1", 201), ("a" * 255, 201)):
            response = await client.post(
                f"{API}/persons",
                json=person_body(),
                headers={"Idempotency-Key": key.encode()},
            )
            assert response.status_code == status, key

    async def test_a_name_search_needs_three_letters(self, client: httpx.AsyncClient) -> None:
        await create_person(client)
        assert (await client.get(f"{API}/persons", params={"q": "ab"})).status_code == 422
        assert (await client.get(f"{API}/persons", params={"q": "a1 2b"})).status_code == 422
        # Three letters that spell fewer in the Latin matching key: nothing can match.
        few = await client.get(f"{API}/persons", params={"q": "ʰʰʰ"})
        assert few.status_code == 200, few.text
        assert few.json()["items"] == []


async def test_every_reference_in_the_document_resolves(anonymous: httpx.AsyncClient) -> None:
    """A `$ref` to a schema the document does not hold breaks every generated client."""
    document = await _contract(anonymous)

    def references(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref" and isinstance(value, str):
                    yield value
                else:
                    yield from references(value)
        elif isinstance(node, list):
            for value in node:
                yield from references(value)

    schemas = document["components"]["schemas"]
    missing = {
        ref
        for ref in references(document)
        if ref.startswith("#/components/schemas/")
        and ref.removeprefix("#/components/schemas/") not in schemas
    }
    assert missing == set()


async def test_a_batchs_refusals_are_documented_with_their_items(
    anonymous: httpx.AsyncClient,
) -> None:
    """POST /sync/batches answers 409 and 422 with `items`, each operation's index, op and
    problem; other refusals of those statuses are plain problem documents."""
    push = (await _contract(anonymous))["paths"]["/api/v1/sync/batches"]["post"]
    for status in ("409", "422"):
        schema = push["responses"][status]["content"][PROBLEM]["schema"]
        assert schema["allOf"][0] == {"$ref": "#/components/schemas/Problem"}
        extra = schema["allOf"][1]
        assert "required" not in extra
        item = extra["properties"]["items"]["items"]
        assert set(item["required"]) == {"index", "op", "problem"}
    assert push["parameters"][0]["name"] == "Idempotency-Key"
    assert push["parameters"][0]["required"] is True


async def test_a_merged_persons_redirect_is_documented(anonymous: httpx.AsyncClient) -> None:
    """GET /persons/{id} answers 308 for a merged person: documented with its Location
    and a problem document naming `merged_into`."""
    read = (await _contract(anonymous))["paths"]["/api/v1/persons/{person_id}"]["get"]
    moved = read["responses"]["308"]
    assert "Location" in moved["headers"]
    schema = moved["content"][PROBLEM]["schema"]
    assert schema["allOf"][0] == {"$ref": "#/components/schemas/Problem"}
    assert schema["allOf"][1]["required"] == ["merged_into"]

import asyncio
import uuid

import asyncpg
import httpx

from tests.conftest import row_counts
from tests.factories import API, create_person, person_body


class TestCreatePerson:
    async def test_creates_a_person_with_every_name_variant(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(f"{API}/persons", json=person_body())
        assert response.status_code == 201
        person = response.json()
        assert [n["value"] for n in person["names"]] == [
            "Міхась Лабановіч",
            "Михаил Лобанович",
            "Mikhas Labanovich",
        ]
        assert person["birth_date"] == "1979-03"
        assert person["recognition_status"] == "not_assessed"
        assert response.headers["etag"] == '"1"'
        assert response.headers["location"].endswith(f"/persons/{person['id']}")
        assert uuid.UUID(person["id"]).version == 7

    async def test_a_hidden_name_can_never_be_public(
        self, client: httpx.AsyncClient, db: asyncpg.Connection
    ) -> None:
        names = [{"value": "Ганна Сініца", "script": "Cyrl", "kind": "hidden", "is_public": True}]
        response = await client.post(f"{API}/persons", json=person_body(names=names))
        assert response.status_code == 422
        assert await db.fetchval("SELECT count(*) FROM person") == 0

    async def test_publish_consent_must_be_stated(self, client: httpx.AsyncClient) -> None:
        body = person_body()
        del body["publish_consent"]
        response = await client.post(f"{API}/persons", json=body)
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert ["body", "publish_consent"] in [e["loc"] for e in response.json()["errors"]]

    async def test_refuses_unknown_fields_wrong_types_and_bad_codes(
        self, client: httpx.AsyncClient, db: asyncpg.Connection
    ) -> None:
        before = await row_counts(db)
        for bad in (
            person_body(is_admin=True),
            person_body(citizenships="BY"),
            person_body(citizenships=["Belarus"]),
            person_body(citizenships=["BY", "BY"]),
            person_body(birth_date="1990-02-30"),
            person_body(birth_date="2999"),
            person_body(birth_date="1850"),
            person_body(region="Minsk"),
            person_body(names=[]),
            person_body(special_risk=["vip"]),
            person_body(occupation="x" * 301),
            person_body(occupation="line\x00break"),
            person_body(names=[{"value": "A", "script": "Cyrl", "kind": "legal", "extra": 1}]),
        ):
            response = await client.post(f"{API}/persons", json=bad)
            assert response.status_code == 422, (bad, response.text)
            assert response.json()["type"] == "urn:habeas:problem:invalid-input"
        assert await row_counts(db) == before

    async def test_idempotency_key_replays_the_first_response(
        self, client: httpx.AsyncClient, db: asyncpg.Connection
    ) -> None:
        headers = {"Idempotency-Key": "create-person-1"}
        body = person_body()
        first = await client.post(f"{API}/persons", json=body, headers=headers)
        again = await client.post(f"{API}/persons", json=body, headers=headers)
        assert first.status_code == again.status_code == 201
        assert again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        assert await db.fetchval("SELECT count(*) FROM person") == 1

    async def test_idempotency_key_reused_with_another_body_is_refused(
        self, client: httpx.AsyncClient, db: asyncpg.Connection
    ) -> None:
        headers = {"Idempotency-Key": "create-person-2"}
        await client.post(f"{API}/persons", json=person_body(), headers=headers)
        other = await client.post(
            f"{API}/persons", json=person_body(gender="female"), headers=headers
        )
        assert other.status_code == 422
        assert other.json()["type"] == "urn:habeas:problem:idempotency-key-reused"
        assert await db.fetchval("SELECT count(*) FROM person") == 1

    async def test_a_failed_create_does_not_use_up_its_idempotency_key(
        self, client: httpx.AsyncClient
    ) -> None:
        headers = {"Idempotency-Key": "create-person-3"}
        bad = await client.post(
            f"{API}/persons", json=person_body(birth_date="2999"), headers=headers
        )
        assert bad.status_code == 422
        good = await client.post(f"{API}/persons", json=person_body(), headers=headers)
        assert good.status_code == 201


class TestReadPerson:
    async def test_reads_a_person_with_its_etag(self, client: httpx.AsyncClient) -> None:
        person = await create_person(client)
        response = await client.get(f"{API}/persons/{person['id']}")
        assert response.status_code == 200
        assert response.json() == person
        assert response.headers["etag"] == '"1"'
        assert response.headers["cache-control"] == "no-store"

    async def test_an_unknown_id_is_404_and_a_malformed_one_422(
        self, client: httpx.AsyncClient
    ) -> None:
        missing = await client.get(f"{API}/persons/{uuid.uuid4()}")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        malformed = await client.get(f"{API}/persons/not-a-uuid")
        assert malformed.status_code == 422


class TestUpdatePerson:
    async def test_updates_with_the_current_version(self, client: httpx.AsyncClient) -> None:
        person = await create_person(client)
        response = await client.patch(
            f"{API}/persons/{person['id']}",
            headers={"If-Match": '"1"'},
            json={
                "occupation": "journalist",
                "names": [{"value": "Mikhas Labanovich", "script": "Latn", "kind": "legal"}],
            },
        )
        assert response.status_code == 200, response.text
        updated = response.json()
        assert updated["occupation"] == "journalist"
        assert updated["version"] == 2
        assert response.headers["etag"] == '"2"'
        assert [n["value"] for n in updated["names"]] == ["Mikhas Labanovich"]
        assert updated["citizenships"] == person["citizenships"]

    async def test_without_if_match_is_428_and_stale_is_412(
        self, client: httpx.AsyncClient, db: asyncpg.Connection
    ) -> None:
        person = await create_person(client)
        url = f"{API}/persons/{person['id']}"
        missing = await client.patch(url, json={"occupation": "x"})
        assert missing.status_code == 428
        await client.patch(url, json={"occupation": "first"}, headers={"If-Match": '"1"'})
        stale = await client.patch(url, json={"occupation": "second"}, headers={"If-Match": '"1"'})
        assert stale.status_code == 412
        assert stale.json()["current_version"] == 2
        # `*` would overwrite whatever version: the header must change (400).
        wildcard = await client.patch(url, json={"occupation": "third"}, headers={"If-Match": "*"})
        assert wildcard.status_code == 400
        assert wildcard.json()["type"].endswith("if-match-unusable")
        assert await db.fetchval("SELECT occupation FROM person") == "first"

    async def test_required_fields_cannot_be_cleared(self, client: httpx.AsyncClient) -> None:
        person = await create_person(client)
        response = await client.patch(
            f"{API}/persons/{person['id']}",
            json={"publish_consent": None},
            headers={"If-Match": '"1"'},
        )
        assert response.status_code == 422

    async def test_derived_fields_cannot_be_written(self, client: httpx.AsyncClient) -> None:
        person = await create_person(client)
        for field, value in (
            ("recognition_status", "political_prisoner"),
            ("version", 9),
            ("id", str(uuid.uuid4())),
        ):
            response = await client.patch(
                f"{API}/persons/{person['id']}", json={field: value}, headers={"If-Match": '"1"'}
            )
            assert response.status_code == 422, field

    async def test_updating_an_unknown_person_is_404(self, client: httpx.AsyncClient) -> None:
        response = await client.patch(
            f"{API}/persons/{uuid.uuid4()}", json={"occupation": "x"}, headers={"If-Match": '"1"'}
        )
        assert response.status_code == 404


class TestListPersons:
    async def test_pages_through_everyone_without_repeats(self, client: httpx.AsyncClient) -> None:
        created = {(await create_person(client))["id"] for _ in range(5)}
        seen: list[str] = []
        url: str | None = f"{API}/persons?limit=2"
        while url:
            page = (await client.get(url)).json()
            seen.extend(p["id"] for p in page["items"])
            url = page["next"]
        assert sorted(seen) == sorted(created)

    async def test_filters_by_citizenship(self, client: httpx.AsyncClient) -> None:
        await create_person(client)
        foreign = await create_person(client, citizenships=["LT", "BY"])
        page = (await client.get(f"{API}/persons?citizenship=LT")).json()
        assert [p["id"] for p in page["items"]] == [foreign["id"]]

    async def test_finds_a_person_by_any_spelling_in_any_script(
        self, client: httpx.AsyncClient
    ) -> None:
        wanted = await create_person(client)
        await create_person(
            client,
            names=[{"value": "Ганна Сініца", "script": "Cyrl", "language": "be", "kind": "legal"}],
        )
        for spelling in (
            "Лабановіч",
            "ЛОБАНОВИЧ",
            "labanovich",
            "Łabanowicz",
            "Lobanovich",
            "Mikhas Labanovitch",
        ):
            page = (await client.get(f"{API}/persons", params={"q": spelling})).json()
            assert [p["id"] for p in page["items"]] == [wanted["id"]], spelling

    async def test_finds_a_person_by_surname_alone_or_words_in_any_order(
        self, client: httpx.AsyncClient
    ) -> None:
        wanted = await create_person(client)
        await create_person(
            client,
            names=[
                {"value": "Міхась Каваленка", "script": "Cyrl", "language": "be", "kind": "legal"}
            ],
        )
        for query in ("Лабановіч Міхась", "LABANOVICH", "Lobanovich Mikhail"):
            page = (await client.get(f"{API}/persons", params={"q": query})).json()
            assert [p["id"] for p in page["items"]] == [wanted["id"]], query

    async def test_search_results_page_by_relevance(self, client: httpx.AsyncClient) -> None:
        ids = set()
        for first in ("Ігар", "Павел", "Сяргей"):
            person = await create_person(
                client, names=[{"value": f"{first} Лабановіч", "script": "Cyrl", "kind": "legal"}]
            )
            ids.add(person["id"])
        first_page = (
            await client.get(f"{API}/persons", params={"q": "Labanovich", "limit": 2})
        ).json()
        assert len(first_page["items"]) == 2
        assert first_page["next"]
        second_page = (await client.get(first_page["next"])).json()
        found = {p["id"] for p in first_page["items"] + second_page["items"]}
        assert found == ids
        assert second_page["next"] is None

    async def test_refuses_a_too_short_query_a_huge_page_and_a_bad_cursor(
        self, client: httpx.AsyncClient
    ) -> None:
        assert (await client.get(f"{API}/persons?q=ab")).status_code == 422
        assert (await client.get(f"{API}/persons?limit=201")).status_code == 422
        assert (await client.get(f"{API}/persons?limit=0")).status_code == 422
        bad = await client.get(f"{API}/persons?cursor=not-a-cursor")
        assert bad.status_code == 400
        assert bad.json()["type"] == "urn:habeas:problem:invalid-cursor"

    async def test_a_cursor_only_continues_its_own_query(self, client: httpx.AsyncClient) -> None:
        for _ in range(3):
            await create_person(client)
        page = (await client.get(f"{API}/persons?limit=1")).json()
        cursor = page["next"].split("cursor=")[1]
        other = await client.get(f"{API}/persons", params={"cursor": cursor, "citizenship": "LT"})
        assert other.status_code == 400


async def test_concurrent_creates_with_one_idempotency_key_make_one_person(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    headers = {"Idempotency-Key": "burst"}
    body = person_body()
    responses = await asyncio.gather(
        *(client.post(f"{API}/persons", json=body, headers=headers) for _ in range(8))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert await db.fetchval("SELECT count(*) FROM person") == 1

"""Charges as the codes write them, each with an id that verdicts can refer to.

A case file in Russia cites the code of administrative offences ("article 20.3.3, part 1"),
one in Azerbaijan the criminal code's dotted numbering ("206.3.2"), one in Belarus a part
and an item ("article 130, part 3, item «г»"): each is kept and returned exactly as given.
"""

from typing import Any

import httpx
import pytest

from app.access.principal import Role
from tests.factories import API, case_body, create_case, create_person

RU_ADMINISTRATIVE = {"code": "RU-CAO", "article": "20.3.3", "part": "1", "charged_on": "2022-03"}
AZ_CRIMINAL = {"code": "AZ-CC", "article": "206.3.2", "charged_on": "2023-11-20"}
BY_WITH_ITEM = {"code": "BY-CC", "article": "130", "part": "3", "item": "г", "charged_on": "2021"}
WITH_LATIN_ITEM = {"code": "RU-CC", "article": "207.3", "part": "2", "item": "d"}
WITH_NUMBERED_ITEM = {"code": "BY-CC", "article": "361-1", "part": "1.1", "item": "1"}
REFERENCES = [RU_ADMINISTRATIVE, AZ_CRIMINAL, BY_WITH_ITEM, WITH_LATIN_ITEM, WITH_NUMBERED_ITEM]


def _as_given(charges: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The charges without their ids, and without the fields that were not given."""
    return [
        {key: value for key, value in charge.items() if key != "charge_id" and value is not None}
        for charge in charges
    ]


async def _create(client: httpx.AsyncClient, charges: list[dict[str, Any]]) -> httpx.Response:
    person = await create_person(client)
    return await client.post(f"{API}/cases", json=case_body(person["id"], charges=charges))


class TestReferences:
    async def test_each_code_is_kept_as_it_writes_its_articles(
        self, client: httpx.AsyncClient
    ) -> None:
        made = await _create(client, REFERENCES)
        assert made.status_code == 201, made.text
        assert _as_given(made.json()["charges"]) == REFERENCES
        read = (await client.get(f"{API}/cases/{made.json()['id']}")).json()
        assert read["charges"] == made.json()["charges"]

    async def test_partial_dates_of_charges_stay_partial(self, client: httpx.AsyncClient) -> None:
        charges = [
            {"code": "BY-CC", "article": "342", "charged_on": "2021-08"},
            {"code": "BY-CC", "article": "293", "charged_on": "2021"},
            {"code": "BY-CC", "article": "361-1", "charged_on": "2021-08-15"},
        ]
        case = await create_case(client, charges=charges)
        read = (await client.get(f"{API}/cases/{case['id']}")).json()
        assert [charge["charged_on"] for charge in read["charges"]] == [
            "2021-08",
            "2021",
            "2021-08-15",
        ]

    @pytest.mark.parametrize(
        ("charge", "field"),
        [
            ({"code": "RU-CAO", "article": "20..3"}, "article"),
            ({"code": "RU-CAO", "article": "20.3.3."}, "article"),
            ({"code": "RU-CAO", "article": "20.3.3.3.3"}, "article"),
            ({"code": "BY-CC", "article": "ст. 342"}, "article"),
            ({"code": "BY-CC", "article": "342", "part": "two"}, "part"),
            ({"code": "BY-CC", "article": "342", "item": "«г»"}, "item"),
            ({"code": "BY-CC", "article": "342", "item": "d1"}, "item"),
            ({"code": "BY-CC", "article": "342", "item": "1234"}, "item"),
            ({"code": "BY-CC", "article": "342", "item": ""}, "item"),
            ({"code": "ru-cao", "article": "20.3.3"}, "code"),
            ({"code": "BY-CC", "article": "342", "charged_on": "2021-13"}, "charged_on"),
            ({"code": "BY-CC", "article": "342", "charge_id": "c-1"}, "charge_id"),
        ],
    )
    async def test_a_malformed_reference_is_refused_at_its_field(
        self, client: httpx.AsyncClient, charge: dict[str, Any], field: str
    ) -> None:
        refused = await _create(client, [AZ_CRIMINAL, charge])
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert [error["loc"] for error in refused.json()["errors"]] == [
            ["body", "charges", 1, field]
        ]

    async def test_the_article_filter_finds_dotted_articles(
        self, client: httpx.AsyncClient
    ) -> None:
        russian = await create_case(client, charges=[RU_ADMINISTRATIVE])
        azeri = await create_case(client, charges=[AZ_CRIMINAL])
        await create_case(client, charges=[{"code": "BY-CC", "article": "342"}])
        for article, expected in (("20.3.3", russian), ("206.3.2", azeri)):
            found = await client.get(f"{API}/cases", params={"article": article})
            assert found.status_code == 200, found.text
            assert [item["id"] for item in found.json()["items"]] == [expected["id"]]
        # Article 20.3 is another article than 20.3.3.
        assert (await client.get(f"{API}/cases", params={"article": "20.3"})).json()["items"] == []
        refused = await client.get(f"{API}/cases", params={"article": "20..3"})
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["loc"] == ["query", "article"]


class TestChargeIds:
    async def test_each_charge_gets_an_id_that_survives_changes_to_the_list(
        self, client: httpx.AsyncClient
    ) -> None:
        """The id is what a verdict will name: sending the charges back as read keeps it;
        a charge added without one gets its own; a charge taken out takes its id along."""
        case = await create_case(client, charges=[RU_ADMINISTRATIVE, AZ_CRIMINAL])
        first, second = case["charges"]
        assert first["charge_id"] != second["charge_id"]
        added = {"code": "RU-CAO", "article": "19.34", "part": "1"}
        patched = await client.patch(
            f"{API}/cases/{case['id']}",
            json={"charges": [second, added]},
            headers={"If-Match": '"1"'},
        )
        assert patched.status_code == 200, patched.text
        kept, new = patched.json()["charges"]
        assert kept == second
        assert new["charge_id"] not in (first["charge_id"], second["charge_id"])
        assert _as_given([new]) == [added]

    async def test_a_client_may_name_its_charges_but_not_two_alike(
        self, client: httpx.AsyncClient
    ) -> None:
        own = "0190a8c2-7a4b-7c3d-8e5f-0123456789ab"
        case = await create_case(client, charges=[{**AZ_CRIMINAL, "charge_id": own}])
        assert case["charges"][0]["charge_id"] == own
        twice = [{**AZ_CRIMINAL, "charge_id": own}, {**RU_ADMINISTRATIVE, "charge_id": own}]
        refused = await client.patch(
            f"{API}/cases/{case['id']}", json={"charges": twice}, headers={"If-Match": '"1"'}
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["loc"] == ["body", "charges"]
        assert (await client.get(f"{API}/cases/{case['id']}")).json()["version"] == 1

    async def test_a_retried_create_answers_with_the_same_charge_ids(
        self, client: httpx.AsyncClient
    ) -> None:
        """Ids are made when the case file is, not when the request is read: the retry is
        the same request, and its answer is the first one."""
        person = await create_person(client)
        body = case_body(person["id"], charges=[RU_ADMINISTRATIVE])
        headers = {"Idempotency-Key": "open-case-ru-1"}
        first = await client.post(f"{API}/cases", json=body, headers=headers)
        again = await client.post(f"{API}/cases", json=body, headers=headers)
        assert first.status_code == again.status_code == 201, again.text
        assert again.json()["charges"] == first.json()["charges"]

    async def test_the_contract_shows_the_charge_and_its_id(
        self, anonymous: httpx.AsyncClient
    ) -> None:
        schemas = (await anonymous.get("/openapi.json")).json()["components"]["schemas"]
        charge = schemas["Charge"]["properties"]
        assert {"charge_id", "code", "article", "part", "item", "charged_on"} <= set(charge)
        assert "verdict" in schemas["Charge"]["description"]
        read = schemas["CaseRead"]["properties"]["charges"]["items"]
        assert read == {"$ref": "#/components/schemas/ChargeRead"}
        assert "charge_id" in schemas["ChargeRead"]["required"]


class TestWhoMayChangeCharges:
    async def test_an_analyst_reads_charges_but_cannot_change_them(
        self, client: httpx.AsyncClient, sign_in_as: Any
    ) -> None:
        case = await create_case(client, charges=[RU_ADMINISTRATIVE])
        analyst = (await sign_in_as(Role.analyst)).client
        url = f"{API}/cases/{case['id']}"
        assert (await analyst.get(url)).json()["charges"] == case["charges"]
        refused = await analyst.patch(
            url, json={"charges": [AZ_CRIMINAL]}, headers={"If-Match": '"1"'}
        )
        assert refused.status_code == 403, refused.text
        assert (await client.get(url)).json()["charges"] == case["charges"]

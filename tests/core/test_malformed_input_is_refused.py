"""Input that is malformed in ways a schema alone did not catch is refused with a 4xx, never a
500 or a wrong answer.
"""

import base64
import json

import httpx
import pytest

from tests.factories import API, SOURCE, create_case, create_person, person_body


async def test_control_characters_in_a_url_are_refused(client: httpx.AsyncClient) -> None:
    for url in ("http://a\u0000b", "http://a\u0007b"):
        response = await client.post(f"{API}/sources", json={**SOURCE, "url": url})
        assert response.status_code == 422


@pytest.mark.parametrize("score", ["2" + "0" * 308, "NaN", "Infinity", "true"])
async def test_a_forged_search_cursor_is_a_400(client: httpx.AsyncClient, score: str) -> None:
    person = await create_person(client)
    page = (await client.get(f"{API}/persons", params={"q": "Labanovich", "limit": 1})).json()
    assert page["items"][0]["id"] == person["id"]
    honest = json.loads(base64.urlsafe_b64decode((await _search_cursor(client)) + "=="))
    forged = f'{{"p":[{score},"{person["id"]}",true],"q":"{honest["q"]}"}}'
    cursor = base64.urlsafe_b64encode(forged.encode()).decode().rstrip("=")
    response = await client.get(f"{API}/persons", params={"q": "Labanovich", "cursor": cursor})
    assert response.status_code == 400


async def _search_cursor(client: httpx.AsyncClient) -> str:
    # A namesake, so that a search has a second page.
    names = [{"value": "Ales Labanovich", "script": "Latn", "kind": "legal"}]
    await create_person(client, names=names)
    page = (await client.get(f"{API}/persons", params={"q": "Labanovich", "limit": 1})).json()
    return str(page["next"].split("cursor=")[1])


async def test_dates_take_ascii_digits_only(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{API}/persons", json=person_body(birth_date="١٩٨٤"))
    assert response.status_code == 422


async def test_if_match_must_be_exactly_a_quoted_version(client: httpx.AsyncClient) -> None:
    case = await create_case(client)
    for value in ('"0_1"', '"1 "', 'W/"1"', "1", '"+1"'):
        response = await client.patch(
            f"{API}/cases/{case['id']}", json={"jurisdiction": "RU"}, headers={"If-Match": value}
        )
        # Not a strong ETag: the header must change (400), not the version read (412).
        assert response.status_code == 400, value
        assert response.json()["type"].endswith("if-match-unusable"), value


async def test_a_page_size_is_written_in_digits(client: httpx.AsyncClient) -> None:
    """The contract says integer: "9 ", "+9" or Arabic-Indic digits are not one."""
    for value, status in (("9 ", 422), ("+9", 422), ("٩", 422), ("9", 200)):
        for path in ("cases", "facilities"):
            response = await client.get(f"{API}/{path}", params={"limit": value})
            assert response.status_code == status, (path, value, response.text)

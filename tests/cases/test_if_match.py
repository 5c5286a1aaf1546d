"""If-Match as a client meets it on a case file: a weak ETag (say, weakened by a proxy that
compressed the answer) is told apart from a stale version, because the fix is another: send
the strong tag, not read the record again."""

import httpx

from tests.auth import assert_problem
from tests.factories import API, create_case, event


async def test_a_weak_etag_is_refused_with_a_refusal_that_says_so_and_names_the_strong_tag(
    client: httpx.AsyncClient,
) -> None:
    case = await create_case(client)
    url = f"{API}/cases/{case['id']}"
    read = await client.get(url)
    assert read.headers["etag"] == '"1"'

    weak = await client.patch(url, json={"jurisdiction": "LT"}, headers={"If-Match": 'W/"1"'})
    assert_problem(weak, 400, "if-match-unusable")
    problem = weak.json()
    assert "weak" in problem["detail"]
    assert 'Send the strong ETag the record was read with: "1"' in problem["detail"]
    assert "changed since" not in problem["title"] + problem["detail"]
    unchanged = (await client.get(url)).json()
    assert (unchanged["version"], unchanged["jurisdiction"]) == (1, "BY")

    # The tag it names is the one that works.
    strong = await client.patch(url, json={"jurisdiction": "LT"}, headers={"If-Match": '"1"'})
    assert strong.status_code == 200, strong.text
    assert strong.headers["etag"] == '"2"'


async def test_a_status_event_with_a_weak_etag_is_refused_and_not_recorded(
    client: httpx.AsyncClient,
) -> None:
    case = await create_case(client)
    url = f"{API}/cases/{case['id']}/status-events"
    body = event("released", "2022-03-01")
    weak = await client.post(url, json=body, headers={"If-Match": 'W/"1"'})
    assert_problem(weak, 400, "if-match-unusable")
    assert '"1"' in weak.json()["detail"]
    assert len((await client.get(url)).json()["events"]) == 1

    made = await client.post(url, json=body, headers={"If-Match": '"1"'})
    assert made.status_code == 201, made.text
    # Stale is another refusal, with its own type: read the record again.
    stale = await client.post(url, json=body, headers={"If-Match": '"1"'})
    assert_problem(stale, 412, "stale-version")
    assert stale.json()["current_version"] == 2


async def test_other_unusable_if_match_values_say_what_to_send_and_missing_is_428(
    client: httpx.AsyncClient,
) -> None:
    case = await create_case(client)
    url = f"{API}/cases/{case['id']}"
    for value, says in (
        ("*", "whatever its version"),
        ('"1", "2"', "one strong ETag"),
        ("1", "one strong ETag"),
        ('W/"x"', "one strong ETag"),
    ):
        refused = await client.patch(url, json={"jurisdiction": "LT"}, headers={"If-Match": value})
        assert_problem(refused, 400, "if-match-unusable")
        assert says in refused.json()["detail"], value
    missing = await client.patch(url, json={"jurisdiction": "LT"})
    assert_problem(missing, 428, "if-match-required")
    assert (await client.get(url)).json()["version"] == 1


async def test_the_contract_tells_a_weak_etag_from_a_stale_one(
    anonymous: httpx.AsyncClient,
) -> None:
    paths = (await anonymous.get("/openapi.json")).json()["paths"]
    for path, method in (
        ("/api/v1/cases/{case_id}", "patch"),
        ("/api/v1/cases/{case_id}/status-events", "post"),
    ):
        # A weak tag is a bad request (the header must change); stale, a 412 (read again).
        responses = paths[path][method]["responses"]
        assert "`stale-version`" in responses["412"]["description"]
        assert "`if-match-unusable`" not in responses["412"]["description"]
        assert "`if-match-unusable`" in responses["400"]["description"]
        assert "weak" in responses["400"]["description"]

"""Merge and unmerge (DESIGN §2, "Persons are one record each"): a coordinator folds a
duplicate record (B) into the kept one (A); B becomes a redirect that no list or report
counts, and an unmerge gives B back exactly as it was."""

import json
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from app.access.principal import Role
from tests.auth import SignedIn
from tests.conftest import row_counts
from tests.factories import API, create_case, create_person, event, if_match
from tests.reports.reporting import generate, recognise, settle

SignIn = Callable[..., Awaitable[SignedIn]]
REASON = "Same birth date, same case number in the court register; the mother confirmed."


async def read(client: httpx.AsyncClient, person_id: str) -> dict[str, Any]:
    response = await client.get(f"{API}/persons/{person_id}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def merge(
    client: httpx.AsyncClient,
    kept: dict[str, Any],
    merged: dict[str, Any],
    *,
    headers: dict[str, str] | None = None,
    **body: Any,
) -> httpx.Response:
    return await client.post(
        f"{API}/persons/{kept['id']}/merges",
        json={
            "merged_person_id": merged["id"],
            "merged_person_version": merged["version"],
            "reason": REASON,
            **body,
        },
        headers=headers if headers is not None else if_match(kept["version"]),
    )


async def unmerge(
    client: httpx.AsyncClient, person_id: str, merge_id: str, version: int
) -> httpx.Response:
    return await client.post(
        f"{API}/persons/{person_id}/merges/{merge_id}/unmerge", headers=if_match(version)
    )


async def two_records_of_one_prisoner(
    client: httpx.AsyncClient,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A: detained in 2021, sentenced, recognised. B (recorded by a partner's intake under
    another spelling): an earlier administrative arrest, released, a decision of its own,
    another occupation, a second citizenship and the family's address."""
    a = await create_person(client)
    a_case = await create_case(
        client,
        a["id"],
        history=[event("detained", "2021-08-10"), event("sentenced", "2022-01-20")],
        deprivation_type="imprisonment",
    )
    assert (await recognise(client, a["id"], "2022-03-01")).status_code == 201
    b = await create_person(
        client, occupation="engineer", citizenships=["BY", "LT"], address="Vilnius, Gedimino 1"
    )
    b_case = await create_case(
        client,
        b["id"],
        history=[event("detained", "2020-09-01"), event("released", "2020-09-16")],
        deprivation_type="administrative_arrest",
    )
    assert (await recognise(client, b["id"], "2020-10-01")).status_code == 201
    return await read(client, a["id"]), await read(client, b["id"]), a_case, b_case


async def test_a_merge_moves_the_duplicate_into_the_kept_person(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    a, b, a_case, b_case = await two_records_of_one_prisoner(client)

    # Both hold an occupation, differently: the coordinator must say whose stays.
    before = await row_counts(db)
    undecided = await merge(client, a, b)
    assert undecided.status_code == 409
    assert undecided.headers["content-type"] == "application/problem+json"
    assert undecided.json()["type"] == "urn:habeas:problem:merge-refused"
    assert undecided.json()["conflicts"] == ["occupation"]
    assert await row_counts(db) == before

    merged = await merge(client, a, b, resolutions={"occupation": "merged"})
    assert merged.status_code == 201, merged.text
    record = merged.json()
    assert merged.headers["Location"] == f"{API}/persons/{a['id']}/merges/{record['id']}"
    assert record["person_id"] == a["id"]
    assert record["merged_person_id"] == b["id"]
    assert record["moved"]["case_file_ids"] == [b_case["id"]]
    assert record["moved"]["names"] == len(b["names"])
    assert record["changed_fields"] == ["address", "citizenships", "occupation"]
    assert record["unmerged_at"] is None

    # A holds everything now, B's values where the merge took them.
    kept = await read(client, a["id"])
    assert merged.headers["ETag"] == f'"{kept["version"]}"'
    assert [n["value"] for n in kept["names"]] == [
        *(n["value"] for n in a["names"]),
        *(n["value"] for n in b["names"]),
    ]
    assert kept["citizenships"] == ["BY", "LT"]
    assert kept["occupation"] == "engineer"
    assert kept["address"] == "Vilnius, Gedimino 1"
    assert kept["birth_date"] == a["birth_date"]
    moved_case = (await client.get(f"{API}/cases/{b_case['id']}")).json()
    assert moved_case["person_id"] == a["id"]
    assert (await client.get(f"{API}/cases/{a_case['id']}")).json()["person_id"] == a["id"]

    # Both decisions, in the order they were made: B's of 2020 first, A's of 2022 current.
    recognition = (await client.get(f"{API}/persons/{a['id']}/recognition")).json()
    assert [d["decided_on"] for d in recognition["history"]] == ["2022-03-01", "2020-10-01"]
    assert [d["version"] for d in recognition["history"]] == [2, 1]
    assert recognition["version"] == 2

    # B is a redirect: read, it answers where it went; nothing else takes it.
    redirect = await client.get(f"{API}/persons/{b['id']}")
    assert redirect.status_code == 308
    assert redirect.headers["Location"] == f"{API}/persons/{a['id']}"
    assert redirect.headers["content-type"] == "application/problem+json"
    assert redirect.json()["merged_into"] == a["id"]
    followed = await client.get(f"{API}/persons/{b['id']}", follow_redirects=True)
    assert followed.status_code == 200
    assert followed.json()["id"] == a["id"]
    patched = await client.patch(
        f"{API}/persons/{b['id']}", json={"notes": "x"}, headers=if_match(b["version"] + 1)
    )
    assert patched.status_code == 404
    assert patched.json()["type"] == "urn:habeas:problem:person-merged"
    assert patched.json()["merged_into"] == a["id"]
    new_case = await client.post(
        f"{API}/cases",
        json={
            "person_id": b["id"],
            "jurisdiction": "BY",
            "deprivation_type": "pretrial_custody",
            "status_history": [event("detained", "2025-01-01")],
        },
    )
    assert new_case.status_code == 422
    assert new_case.json()["type"] == "urn:habeas:problem:person-merged"
    assert new_case.json()["merged_into"] == a["id"]

    # Lists and searches know one person.
    listed = {item["id"] for item in (await client.get(f"{API}/persons")).json()["items"]}
    assert listed == {a["id"]}
    b_name = b["names"][0]["value"]
    found = (await client.get(f"{API}/persons", params={"q": b_name})).json()["items"]
    assert [item["id"] for item in found] == [a["id"]]

    # Both histories show the merge with its field-level effect.
    a_history = (await client.get(f"{API}/persons/{a['id']}/history")).json()["entries"]
    assert a_history[0]["action"] == "person.merge"
    a_fields = a_history[0]["changes"][0]["fields"]
    assert a_fields["occupation"] == {"before": "teacher", "after": "engineer"}
    b_history = (await client.get(f"{API}/persons/{b['id']}/history")).json()["entries"]
    assert b_history[0]["action"] == "person.merge"
    assert b_history[0]["changes"][0]["fields"]["merged_into"] == {
        "before": None,
        "after": a["id"],
    }
    listed_merges = (await client.get(f"{API}/persons/{a['id']}/merges")).json()["items"]
    assert [m["id"] for m in listed_merges] == [record["id"]]
    # The trail keeps every record the merge moved: the case file and both decisions
    # (B's joined A's history as version 1; A's became version 2).
    changes = json.loads(
        await db.fetchval("SELECT changes FROM audit_event WHERE action = 'person.merge'")
    )
    moved = {(c["type"], c["id"]): c["fields"] for c in changes}
    assert moved[("case", b_case["id"])]["person_id"] == {"before": b["id"], "after": a["id"]}
    decisions = [c["fields"] for c in changes if c["type"] == "recognition_decision"]
    assert sorted(decisions, key=str) == sorted(
        [
            {"person_id": {"before": b["id"], "after": a["id"]}},
            {"version": {"before": 1, "after": 2}},
        ],
        key=str,
    )


async def test_an_unmerge_gives_the_merged_person_back_exactly(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    a, b, a_case, b_case = await two_records_of_one_prisoner(client)
    a_recognition = (await client.get(f"{API}/persons/{a['id']}/recognition")).json()
    b_recognition = (await client.get(f"{API}/persons/{b['id']}/recognition")).json()
    made = await merge(client, a, b, resolutions={"occupation": "merged"})
    assert made.status_code == 201, made.text
    record = made.json()

    # While merged, A gets a new case file and a decision; its notes change.
    later_case = await create_case(
        client,
        a["id"],
        history=[event("detained", "2025-02-01")],
        deprivation_type="pretrial_custody",
    )
    assert (await recognise(client, a["id"], "2025-03-01")).status_code == 201
    current = await read(client, a["id"])
    noted = await client.patch(
        f"{API}/persons/{a['id']}",
        json={"notes": "Transferred"},
        headers=if_match(current["version"]),
    )
    assert noted.status_code == 200, noted.text

    stale = await unmerge(client, a["id"], record["id"], current["version"])
    assert stale.status_code == 412
    undone = await unmerge(client, a["id"], record["id"], noted.json()["version"])
    assert undone.status_code == 200, undone.text
    answer = undone.json()
    assert answer["unmerged_at"] is not None
    assert answer["stayed"]["case_file_ids"] == [later_case["id"]]
    assert len(answer["stayed"]["recognition_decision_ids"]) == 1
    assert answer["stayed"]["fields"] == []

    # B is back exactly as it was; only its version moved on.
    restored = await read(client, b["id"])
    ignore = {"version", "updated_at"}
    assert {k: v for k, v in restored.items() if k not in ignore} == {
        k: v for k, v in b.items() if k not in ignore
    }
    assert (await client.get(f"{API}/cases/{b_case['id']}")).json()["person_id"] == b["id"]
    assert (await client.get(f"{API}/persons/{b['id']}/recognition")).json()[
        "history"
    ] == b_recognition["history"]

    # A is as it was, with what was added to it since.
    kept = await read(client, a["id"])
    assert kept["names"] == a["names"]
    assert kept["citizenships"] == a["citizenships"]
    assert kept["occupation"] == a["occupation"]
    assert kept["address"] is None
    assert kept["notes"] == "Transferred"
    assert (await client.get(f"{API}/cases/{a_case['id']}")).json()["person_id"] == a["id"]
    assert (await client.get(f"{API}/cases/{later_case['id']}")).json()["person_id"] == a["id"]
    decisions = (await client.get(f"{API}/persons/{a['id']}/recognition")).json()["history"]
    assert [d["decided_on"] for d in decisions] == ["2025-03-01", "2022-03-01"]
    assert decisions[1] == a_recognition["history"][0]

    # Undone once: not twice.
    again = await unmerge(client, a["id"], record["id"], kept["version"])
    assert again.status_code == 409
    assert again.json()["type"] == "urn:habeas:problem:merge-refused"
    listed = {item["id"] for item in (await client.get(f"{API}/persons")).json()["items"]}
    assert listed == {a["id"], b["id"]}
    history = (await client.get(f"{API}/persons/{b['id']}/history")).json()["entries"]
    assert [entry["action"] for entry in history[:2]] == ["person.unmerge", "person.merge"]


async def test_reports_count_a_merged_person_once(app: FastAPI, client: httpx.AsyncClient) -> None:
    # One detention, recorded twice under two spellings: both held.
    a = await create_person(client)
    await create_case(client, a["id"], history=[event("detained", "2025-09-02")])
    b = await create_person(client)
    await create_case(client, b["id"], history=[event("detained", "2025-09-03")])
    period = {"as_of": "2025-09-30", "period": {"from": "2025-09-01", "to": "2025-09-30"}}
    await settle(app)
    assert (await generate(client, **period))["figures"]["held"]["total"] == 2

    a, b = await read(client, a["id"]), await read(client, b["id"])
    refused = await merge(client, a, b)
    assert refused.status_code == 409
    assert len(refused.json()["case_file_ids"]) == 2
    merged = await merge(client, a, b, keep_overlapping_custody=True)
    assert merged.status_code == 201, merged.text
    await settle(app)
    figures = (await generate(client, **period))["figures"]
    assert figures["held"]["total"] == 1


async def test_merges_that_cannot_be_are_refused_and_change_nothing(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    a = await create_person(client)
    b = await create_person(client)
    c = await create_person(client)
    before = await row_counts(db)

    itself = await merge(client, a, a)
    assert itself.status_code == 422
    assert itself.json()["type"] == "urn:habeas:problem:merge-into-itself"
    unknown = await merge(client, a, {"id": "0190e0e0-0000-7000-8000-000000000000", "version": 1})
    assert unknown.status_code == 422
    assert unknown.json()["type"] == "urn:habeas:problem:unknown-reference"
    stale = await merge(client, a, b, headers=if_match(a["version"] + 1))
    assert stale.status_code == 412
    stale_b = await merge(client, a, {**b, "version": b["version"] + 1})
    assert stale_b.status_code == 412
    assert (await merge(client, a, b, headers={})).status_code == 428
    unknown_field = await merge(client, a, b, resolutions={"names": "merged"})
    assert unknown_field.status_code == 422
    extra = await merge(client, a, b, everything=True)
    assert extra.status_code == 422
    wrong_type = await merge(client, a, b, keep_overlapping_custody="yes")
    assert wrong_type.status_code == 422
    malformed = await client.post(
        f"{API}/persons/{a['id']}/merges",
        content=b"{not json",
        headers={**if_match(a["version"]), "content-type": "application/json"},
    )
    assert malformed.status_code in (400, 422)
    no_person = await client.post(
        f"{API}/persons/0190e0e0-0000-7000-8000-000000000000/merges",
        json={"merged_person_id": b["id"], "merged_person_version": 1, "reason": REASON},
        headers=if_match(1),
    )
    assert no_person.status_code == 404
    assert await row_counts(db) == before

    # B merged into A: B cannot be merged again, nor A into B (a cycle), nor C into B.
    assert (await merge(client, a, b)).status_code == 201
    a, b = await read(client, a["id"]), (await client.get(f"{API}/persons/{b['id']}")).json()
    b_version = (await client.get(f"{API}/persons/{b['merged_into']}/merges")).json()["items"][0]
    before = await row_counts(db)
    c = await read(client, c["id"])
    again = await merge(client, c, {"id": b_version["merged_person_id"], "version": 2})
    assert again.status_code == 409
    assert again.json()["merged_into"] == a["id"]
    cycle = await client.post(
        f"{API}/persons/{b_version['merged_person_id']}/merges",
        json={"merged_person_id": a["id"], "merged_person_version": a["version"], "reason": REASON},
        headers=if_match(2),
    )
    assert cycle.status_code == 409
    assert cycle.json()["merged_into"] == a["id"]
    assert await row_counts(db) == before


async def test_persons_stated_to_be_different_merge_only_when_the_statement_is_withdrawn(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    a = await create_person(client)
    twin = {**{k: v for k, v in a.items() if k in ("names", "gender", "citizenships")}}
    b = await client.post(
        f"{API}/persons",
        json={
            **twin,
            "publish_consent": True,
            "birth_date": "1979-03",
            "confirmed_distinct_from": [a["id"]],
        },
    )
    assert b.status_code == 201, b.text
    a = await read(client, a["id"])
    refused = await merge(client, a, b.json())
    assert refused.status_code == 409
    assert await db.fetchval("SELECT count(*) FROM person_distinction") == 1
    made = await merge(client, a, b.json(), overrule_distinction=True)
    assert made.status_code == 201, made.text
    assert await db.fetchval("SELECT count(*) FROM person_distinction") == 0
    kept = await read(client, a["id"])
    undone = await unmerge(client, a["id"], made.json()["id"], kept["version"])
    assert undone.status_code == 200, undone.text
    assert (await read(client, a["id"]))["confirmed_distinct_from"] == [b.json()["id"]]


async def test_only_coordinators_merge_and_a_redirect_never_reveals_a_hidden_person(
    client: httpx.AsyncClient, sign_in_as: SignIn, db: asyncpg.Connection
) -> None:
    a = await create_person(client)
    b = await create_person(client)
    caseworker = (await sign_in_as(Role.caseworker)).client
    analyst = (await sign_in_as(Role.analyst)).client
    before = await row_counts(db)
    for other in (caseworker, analyst):
        refused = await merge(other, a, b)
        assert refused.status_code == 403
        assert (await other.get(f"{API}/persons/{a['id']}/merges")).status_code == 403
    assert await row_counts(db) == before

    # A has a high-confidentiality case file the caseworker does not work on: they may not
    # see A, so B, merged into A, is not found rather than a redirect naming A.
    await create_case(client, a["id"], confidentiality="high")
    assert (await caseworker.get(f"{API}/persons/{b['id']}")).status_code == 200
    a = await read(client, a["id"])
    assert (await merge(client, a, b)).status_code == 201
    hidden = await caseworker.get(f"{API}/persons/{b['id']}")
    assert hidden.status_code == 404
    assert "merged_into" not in hidden.json()
    assert a["id"] not in hidden.text


async def test_a_merge_repeated_with_its_key_is_made_once(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    a = await create_person(client)
    b = await create_person(client)
    headers = {**if_match(a["version"]), "Idempotency-Key": "merge-once"}
    first = await merge(client, a, b, headers=headers)
    assert first.status_code == 201, first.text
    again = await merge(client, a, b, headers=headers)
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert await db.fetchval("SELECT count(*) FROM person_merge") == 1


async def test_redirects_never_chain_and_merges_are_undone_newest_first(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    a, b, d = await create_person(client), await create_person(client), await create_person(client)
    into_b = await merge(client, b, d)
    assert into_b.status_code == 201, into_b.text
    b = await read(client, b["id"])
    # B holds D: merging B into A would make D's redirect lead to a redirect.
    before = await row_counts(db)
    chained = await merge(client, a, b)
    assert chained.status_code == 409
    assert chained.json()["type"] == "urn:habeas:problem:merge-refused"
    assert await row_counts(db) == before

    c = await create_person(client, occupation="engineer", citizenships=["BY", "PL"])
    first = await merge(client, b, c, resolutions={"occupation": "merged"})
    assert first.status_code == 201, first.text
    b = await read(client, b["id"])
    out_of_order = await unmerge(client, b["id"], into_b.json()["id"], b["version"])
    assert out_of_order.status_code == 409
    assert out_of_order.json()["merge_ids"] == [first.json()["id"]]
    newest = await unmerge(client, b["id"], first.json()["id"], b["version"])
    assert newest.status_code == 200, newest.text
    b = await read(client, b["id"])
    assert (await unmerge(client, b["id"], into_b.json()["id"], b["version"])).status_code == 200
    assert (await read(client, d["id"]))["id"] == d["id"]
    assert (await read(client, c["id"]))["citizenships"] == ["BY", "PL"]


async def test_who_recorded_only_one_person_does_not_read_the_others_values_after_a_merge(
    client: httpx.AsyncClient, sign_in_as: SignIn
) -> None:
    caseworker = (await sign_in_as(Role.caseworker)).client
    theirs = await create_person(caseworker)
    assert "relatives" in (await caseworker.get(f"{API}/persons/{theirs['id']}")).json()
    other = await create_person(client, address="Minsk, Niezalezhnasci 1")
    made = await merge(client, theirs, other)
    assert made.status_code == 201, made.text
    seen = (await caseworker.get(f"{API}/persons/{theirs['id']}")).json()
    assert "address" not in seen
    assert "Niezalezhnasci" not in str(seen)
    kept = await read(client, theirs["id"])
    undone = await unmerge(client, theirs["id"], made.json()["id"], kept["version"])
    assert undone.status_code == 200, undone.text
    assert "relatives" in (await caseworker.get(f"{API}/persons/{theirs['id']}")).json()


async def test_sealed_values_taken_by_a_merge_go_back_at_the_unmerge(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    a = await create_person(client, address="Hrodna, Savieckaja 5")
    b = await create_person(
        client, address="Vilnius, Gedimino 1", contacts=[{"kind": "phone", "value": "+37060000001"}]
    )
    undecided = await merge(client, a, b)
    assert undecided.json()["conflicts"] == ["address"]
    made = await merge(client, a, b, resolutions={"address": "merged"})
    assert made.status_code == 201, made.text
    assert made.json()["changed_fields"] == ["address", "contacts"]
    kept = await read(client, a["id"])
    assert kept["address"] == "Vilnius, Gedimino 1"
    assert kept["contacts"] == b["contacts"]
    # The merge record keeps the values it replaced sealed, never in plain text.
    stored = await db.fetchrow("SELECT moved::text AS moved, sealed FROM person_merge")
    assert "Hrodna" not in stored["moved"] and b"Hrodna" not in stored["sealed"]
    undone = await unmerge(client, a["id"], made.json()["id"], kept["version"])
    assert undone.status_code == 200, undone.text
    restored = await read(client, a["id"])
    assert restored["address"] == "Hrodna, Savieckaja 5"
    assert restored["contacts"] == a["contacts"]
    assert (await read(client, b["id"]))["address"] == "Vilnius, Gedimino 1"


async def test_an_unmerge_waits_for_a_decision_since_that_covers_the_merged_persons_case(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    a, b, _, b_case = await two_records_of_one_prisoner(client)
    made = await merge(client, a, b, resolutions={"occupation": "merged"})
    assert made.status_code == 201, made.text
    covering = await recognise(client, a["id"], "2025-05-01", case_file_ids=[b_case["id"]])
    assert covering.status_code == 201, covering.text
    kept = await read(client, a["id"])
    before = await row_counts(db)
    refused = await unmerge(client, a["id"], made.json()["id"], kept["version"])
    assert refused.status_code == 409
    assert refused.json()["decision_ids"] == [covering.json()["current"]["id"]]
    assert await row_counts(db) == before
    assert (await client.get(f"{API}/cases/{b_case['id']}")).json()["person_id"] == a["id"]


async def test_unmerge_refusals_and_its_retry_with_a_key(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    a, b, c = await create_person(client), await create_person(client), await create_person(client)
    made = await merge(client, a, b)
    assert made.status_code == 201, made.text
    merge_id = made.json()["id"]
    kept = await read(client, a["id"])
    unknown = await unmerge(
        client, a["id"], "0190e0e0-0000-7000-8000-000000000000", kept["version"]
    )
    assert unknown.status_code == 404
    wrong_person = await unmerge(client, c["id"], merge_id, c["version"])
    assert wrong_person.status_code == 404
    # Read, a merge is found under the person it was made into only.
    assert (await client.get(f"{API}/persons/{c['id']}/merges/{merge_id}")).status_code == 404
    found = await client.get(f"{API}/persons/{a['id']}/merges/{merge_id}")
    assert found.status_code == 200 and found.json()["merged_person_id"] == b["id"]
    missing_if_match = await client.post(f"{API}/persons/{a['id']}/merges/{merge_id}/unmerge")
    assert missing_if_match.status_code == 428
    # B is in no duplicate check while merged: the check proposes A.
    query = {"names": [{"value": b["names"][0]["value"]}]}
    candidates = (await client.post(f"{API}/person-matches", json=query)).json()["candidates"]
    assert [candidate["person"]["id"] for candidate in candidates] == [a["id"]]

    headers = {**if_match(kept["version"]), "Idempotency-Key": "unmerge-once"}
    path = f"{API}/persons/{a['id']}/merges/{merge_id}/unmerge"
    first = await client.post(path, headers=headers)
    assert first.status_code == 200, first.text
    again = await client.post(path, headers=headers)
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert (await read(client, b["id"]))["id"] == b["id"]


async def test_partners_sync_can_follow_merges_from_an_append_only_log(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    a, b = await create_person(client), await create_person(client)
    made = await merge(client, a, b)
    assert made.status_code == 201, made.text
    kept = await read(client, a["id"])
    assert (await unmerge(client, a["id"], made.json()["id"], kept["version"])).status_code == 200
    rows = await db.fetch(
        "SELECT kind, merge_id::text, person_id::text, merged_person_id::text "
        "FROM person_merge_event ORDER BY seq"
    )
    assert [tuple(row) for row in rows] == [
        ("merged", made.json()["id"], a["id"], b["id"]),
        ("unmerged", made.json()["id"], a["id"], b["id"]),
    ]
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await db.execute("DELETE FROM person_merge_event")


async def test_a_merged_high_confidentiality_case_file_closes_the_kept_person(
    client: httpx.AsyncClient, sign_in_as: SignIn
) -> None:
    """B's case file is high-confidentiality: once it is A's, A is as closed as it, and a
    caseworker who does not work on it no longer reads A (nor learns of B through A)."""
    caseworker = (await sign_in_as(Role.caseworker)).client
    a = await create_person(client)
    b = await create_person(client)
    await create_case(client, b["id"], confidentiality="high")
    assert (await caseworker.get(f"{API}/persons/{a['id']}")).status_code == 200
    assert (await caseworker.get(f"{API}/persons/{b['id']}")).status_code == 404
    a = await read(client, a["id"])
    b = await read(client, b["id"])
    made = await merge(client, a, b)
    assert made.status_code == 201, made.text
    assert (await caseworker.get(f"{API}/persons/{a['id']}")).status_code == 404
    assert (await caseworker.get(f"{API}/persons/{b['id']}")).status_code == 404
    listed = (await caseworker.get(f"{API}/persons")).json()["items"]
    assert a["id"] not in {item["id"] for item in listed}

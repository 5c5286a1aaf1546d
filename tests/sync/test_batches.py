"""Partners' batches (POST /sync/batches): operations named by the partner's own ids,
applied in order in one transaction or not at all; stale versions answered with our
current values; every problem of a batch listed at once; the same key applied once;
what a partner writes attributed to it and entering as reported unless trusted."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from app.access.principal import Role
from app.identity.schemas import PartnerCreate
from app.sync import push as push_module
from tests.factories import API, SOURCE, create_case, create_person, event, if_match, transition
from tests.sync.feed import Copy, feed_partner, follow

BATCHES = f"{API}/sync/batches"
PROBLEM_JSON = "application/problem+json"
WRITER_SCOPES = ["sync:read", "sync:write"]
WRITES_BY = {"jurisdiction": "BY", "recognised_only": False, "read_write": True}


def new_person(names: tuple[str, str] = ("Ясь", "Тарасевіч")) -> dict[str, Any]:
    """A person with public-tier fields only, as a public-tier partner may send."""
    first, last = names
    return {
        "names": [
            {"value": f"{first} {last}", "script": "Cyrl", "language": "be", "kind": "legal"}
        ],
        "gender": "male",
        "citizenships": ["BY"],
        "region": "BY-MI",
    }


def new_case(**overrides: Any) -> dict[str, Any]:
    return {
        "jurisdiction": "BY",
        "deprivation_type": "pretrial_custody",
        "charges": [{"code": "BY-CC", "article": "342", "part": "1"}],
        "status_history": [event("detained", "2024-03-02")],
        **overrides,
    }


def person_and_case(
    person_ref: str, case_ref: str, names: tuple[str, str] = ("Ясь", "Тарасевіч"), **case: Any
) -> list[dict[str, Any]]:
    return [
        {"op": "person.create", "external_id": person_ref, "person": new_person(names)},
        {
            "op": "case.create",
            "external_id": case_ref,
            "person": {"external_id": person_ref},
            "case": new_case(**case),
        },
    ]


async def push(
    partner: httpx.AsyncClient, operations: list[dict[str, Any]], key: str | None = None
) -> httpx.Response:
    return await partner.post(
        BATCHES,
        json={"operations": operations},
        headers={"Idempotency-Key": key or str(uuid.uuid4())},
    )


def change_person(person_id: str, version: int, **changes: Any) -> dict[str, Any]:
    """A change to one of our persons, as of the version the partner read."""
    return {
        "op": "person.update",
        "person": {"id": person_id},
        "version": version,
        "changes": changes,
    }


def charge(case: dict[str, Any]) -> dict[str, Any]:
    """An event on one of our case files, as of the version the partner read."""
    return {
        "op": "event.append",
        "case": {"id": case["id"]},
        "version": case["version"],
        "event": event("charged", "2021-09-01"),
    }


@asynccontextmanager
async def held_case_file(
    db: asyncpg.Connection, database_url: str, case_id: str
) -> AsyncIterator[asyncpg.Connection]:
    """Another transaction holds the case file's row until the block ends: a batch that
    changes it waits, in the middle of its work."""
    holder = await asyncpg.connect(database_url)
    transaction = holder.transaction()
    await transaction.start()
    try:
        await holder.execute("SELECT 1 FROM case_file WHERE id = $1 FOR UPDATE", uuid.UUID(case_id))
        yield holder
    finally:
        await transaction.rollback()
        await holder.close()


async def waiting_for_a_lock(db: asyncpg.Connection) -> int:
    """The backend of a request waiting for a row lock on a case file."""
    for _ in range(1500):
        waiting: int | None = await db.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND query LIKE '%case_file%' AND datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
        if waiting:
            return waiting
        await asyncio.sleep(0.02)
    raise AssertionError("no request waits for the case file")


def problem_items(response: httpx.Response) -> dict[int, dict[str, Any]]:
    assert response.headers["content-type"] == PROBLEM_JSON
    return {item["index"]: item["problem"] for item in response.json()["items"]}


async def test_a_partner_reports_a_new_prisoner_then_a_sentence_then_a_claim(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    partner, row = await feed_partner(app, WRITES_BY, scopes=WRITER_SCOPES)
    async with aclosing(partner):
        first = await push(partner, person_and_case("P-17", "C-17"))
        assert first.status_code == 200, first.text
        made = first.json()["items"]
        assert [(i["op"], i["external_id"]) for i in made] == [
            ("person.create", "P-17"),
            ("case.create", "C-17"),
        ]
        case_id = made[1]["id"]

        # Our caseworkers see the partner's record: its event entered as reported (the
        # agreement does not trust its confirmations), attributed to the partner.
        history = (await client.get(f"{API}/cases/{case_id}/status-events")).json()
        (detained,) = history["events"]
        assert detained["confidence"] == "reported"
        assert detained["reported_by_partner"] == str(row.id)
        assert detained["recorded_by"] is None
        case = (await client.get(f"{API}/cases/{case_id}")).json()
        assert case["person_id"] == made[0]["id"] and case["status"] == "detained"

        # Later: a sentence, naming the case file by the partner's own id and the version
        # it last saw; then a release only claimed.
        sentence = await push(
            partner,
            [
                {
                    "op": "event.append",
                    "external_id": "E-1",
                    "case": {"external_id": "C-17"},
                    "version": made[1]["version"],
                    "event": event("sentenced", "2024-09-12", details={"term_months": 36}),
                }
            ],
        )
        assert sentence.status_code == 200, sentence.text
        (appended,) = sentence.json()["items"]
        assert appended["confidence"] == "reported"
        claim = await push(
            partner,
            [
                {
                    "op": "event.append",
                    "case": {"id": case_id},
                    "version": appended["version"],
                    "event": event("released", "2025-01-20", confidence="unconfirmed"),
                }
            ],
        )
        assert claim.status_code == 200, claim.text
        case = (await client.get(f"{API}/cases/{case_id}")).json()
        # A claim moves nothing.
        assert case["status"] == "sentenced" and case["pending_claims"] == 1
        states = [
            (e["to_status"], e["state"], e["reported_by_partner"])
            for e in (await client.get(f"{API}/cases/{case_id}/status-events")).json()["events"]
        ]
        assert states == [
            ("detained", "in_effect", str(row.id)),
            ("sentenced", "in_effect", str(row.id)),
            ("released", "pending_claim", str(row.id)),
        ]

        # The audit trail names the partner as the one who wrote, batch by batch.
        actors = await db.fetch(
            "SELECT actor_type, actor_id FROM audit_event WHERE action = 'sync.batch'"
            " AND outcome = 'success' AND resource_id = $1",
            row.id,
        )
        assert [(a["actor_type"], a["actor_id"]) for a in actors] == [("partner", row.id)] * 3

        # The partner reads back what it wrote, at its tier.
        copy = Copy()
        await follow(partner, copy)
        assert copy.records[("case", case_id)]["status"] == "sentenced"
        assert "reported_by_partner" not in copy.records[("case", case_id)]["status_events"][0]


async def test_a_trusted_partner_confirms(app: FastAPI, client: httpx.AsyncClient) -> None:
    partner, _ = await feed_partner(
        app, {**WRITES_BY, "trusted_as_confirmed": True}, scopes=WRITER_SCOPES
    )
    async with aclosing(partner):
        response = await push(partner, person_and_case("P-1", "C-1"))
        assert response.status_code == 200, response.text
        case_id = response.json()["items"][1]["id"]
        history = (await client.get(f"{API}/cases/{case_id}/status-events")).json()
        assert history["events"][0]["confidence"] == "confirmed"


async def test_a_stale_version_is_a_conflict_with_our_values_and_nothing_applies(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    person = await create_person(client)
    shared = await create_case(client, person["id"], jurisdiction="BY")
    partner, _ = await feed_partner(app, WRITES_BY, scopes=WRITER_SCOPES)
    async with aclosing(partner):
        # Our caseworker records a charge after the partner read the case file.
        moved = await transition(client, shared, "charged", "2021-09-01")
        assert moved.status_code == 201, moved.text
        events_before = await db.fetchval("SELECT count(*) FROM status_event")
        response = await push(
            partner,
            [
                *person_and_case("P-2", "C-2"),
                {
                    "op": "event.append",
                    "case": {"id": shared["id"]},
                    "version": shared["version"],
                    "event": event("sentenced", "2021-12-01"),
                },
            ],
        )
        assert response.status_code == 409, response.text
        assert response.json()["type"].endswith("batch-conflict")
        (conflict,) = problem_items(response).values()
        assert response.json()["items"][0]["index"] == 2
        assert conflict["current_version"] == shared["version"] + 1
        assert conflict["current"]["status"] == "charged"
        # At the agreement's tier: the restricted fields are absent.
        assert "detention_places" not in conflict["current"]
        # Nothing of the batch was applied, not even its valid operations.
        assert await db.fetchval("SELECT count(*) FROM status_event") == events_before
        assert await db.fetchval("SELECT count(*) FROM sync_external_id") == 0


async def test_every_problem_of_a_batch_is_listed_and_nothing_applies(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    person = await create_person(client)
    shared = await create_case(client, person["id"], jurisdiction="BY")
    partner, _ = await feed_partner(app, WRITES_BY, scopes=WRITER_SCOPES)
    async with aclosing(partner):
        persons_before = await db.fetchval("SELECT count(*) FROM person")
        response = await push(
            partner,
            [
                *person_and_case("P-3", "C-3"),
                # 2: an external id the partner never gave
                {
                    "op": "event.append",
                    "case": {"external_id": "C-unknown"},
                    "version": 1,
                    "event": event("charged", "2021-09-01"),
                },
                # 3: a restricted field, above the public tier of the agreement
                {
                    "op": "case.update",
                    "case": {"id": shared["id"]},
                    "version": shared["version"],
                    "changes": {"detention_places": [{"place": "SIZO-1"}]},
                },
                # 4: a transition the path refuses (detained again while detained)
                {
                    "op": "event.append",
                    "case": {"external_id": "C-3"},
                    "version": 1,
                    "event": event("detained", "2024-05-01"),
                },
                # 5: a case file the agreement does not share (another jurisdiction)
                {
                    "op": "case.create",
                    "external_id": "C-lt",
                    "person": {"external_id": "P-3"},
                    "case": new_case(jurisdiction="LT"),
                },
                # 6: a case file of ours it may not see, named by our id
                {
                    "op": "case.update",
                    "case": {"id": str(uuid.uuid4())},
                    "version": 1,
                    "changes": {"deprivation_type": "imprisonment"},
                },
                # 7: an external id given twice
                {
                    "op": "person.create",
                    "external_id": "P-3",
                    "person": new_person(("Алесь", "Мурашка")),
                },
            ],
        )
        assert response.status_code == 422, response.text
        assert response.json()["type"].endswith("batch-rejected")
        problems = problem_items(response)
        assert sorted(problems) == [2, 3, 4, 5, 6, 7]
        assert problems[2]["type"].endswith("unknown-reference")
        assert problems[3]["status"] == 403 and problems[3]["fields"] == ["detention_places"]
        assert problems[4]["type"].endswith("invalid-transition"), problems[4]
        assert problems[5]["type"].endswith("outside-agreement")
        assert problems[6]["status"] == 404
        assert problems[7]["status"] == 409
        assert await db.fetchval("SELECT count(*) FROM person") == persons_before
        assert await db.fetchval("SELECT count(*) FROM sync_external_id") == 0
        unchanged = (await client.get(f"{API}/cases/{shared['id']}")).json()
        assert unchanged["version"] == shared["version"]


async def test_malformed_batches_are_refused_whole(app: FastAPI) -> None:
    partner, _ = await feed_partner(app, WRITES_BY, scopes=WRITER_SCOPES)
    async with aclosing(partner):
        operation = person_and_case("P-4", "C-4")[0]
        cases: list[tuple[Any, dict[str, str], int]] = [
            ({"operations": [operation] * 501}, {"Idempotency-Key": "k1"}, 422),
            ({"operations": []}, {"Idempotency-Key": "k2"}, 422),
            (
                {"operations": [{**operation, "op": "person.delete"}]},
                {"Idempotency-Key": "k3"},
                422,
            ),
            ({"operations": [operation], "extra": 1}, {"Idempotency-Key": "k4"}, 422),
            (
                {"operations": [{**operation, "person": {**operation["person"], "x": 1}}]},
                {"Idempotency-Key": "k5"},
                422,
            ),
            (
                {
                    "operations": [
                        {
                            "op": "case.update",
                            "case": {"id": str(uuid.uuid4()), "external_id": "x"},
                            "version": 1,
                            "changes": {},
                        }
                    ]
                },
                {"Idempotency-Key": "k6"},
                422,
            ),
            ({"operations": [operation]}, {}, 422),
        ]
        for body, headers, status in cases:
            response = await partner.post(BATCHES, json=body, headers=headers)
            assert response.status_code == status, (body, response.text)
            assert response.headers["content-type"] == PROBLEM_JSON
        broken = await partner.post(
            BATCHES,
            content=b'{"operations": [',
            headers={"Idempotency-Key": "k7", "content-type": "application/json"},
        )
        assert broken.status_code == 400, broken.text


async def test_the_same_key_applies_once_and_answers_the_same(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Connection, database_url: str
) -> None:
    shared = await create_case(client, (await create_person(client))["id"], jurisdiction="BY")
    partner, _ = await feed_partner(app, WRITES_BY, scopes=WRITER_SCOPES)
    async with aclosing(partner):
        operations = person_and_case("P-5", "C-5")
        first = await push(partner, operations, key="batch-5")
        again = await push(partner, operations, key="batch-5")
        assert first.status_code == again.status_code == 200, again.text
        assert again.json() == first.json()
        assert again.headers["Idempotent-Replayed"] == "true"
        assert await db.fetchval("SELECT count(*) FROM sync_external_id") == 2

        other = await push(partner, person_and_case("P-6", "C-6"), key="batch-5")
        assert other.status_code == 422
        assert other.json()["type"].endswith("idempotency-key-reused")

        # While a batch is still running, a repeat of its key is refused at once rather
        # than kept waiting, and so is another batch of the same partner.
        slow = person_and_case("P-7", "C-7", ("Пятрусь", "Глеб"))
        async with held_case_file(db, database_url, shared["id"]):
            running = asyncio.create_task(push(partner, [*slow, charge(shared)], key="batch-7"))
            await waiting_for_a_lock(db)
            repeat = await push(partner, [*slow, charge(shared)], key="batch-7")
            another = await push(partner, person_and_case("P-9", "C-9", ("Сымон", "Лабека")))
        assert repeat.status_code == 409, repeat.text
        assert repeat.json()["type"].endswith("idempotency-key-in-flight")
        assert another.status_code == 409, another.text
        assert another.json()["type"].endswith("conflict")
        done = await running
        assert done.status_code == 200, done.text
        assert (await push(partner, [*slow, charge(shared)], key="batch-7")).json() == done.json()

        # The same person reported again under another external id meets the duplicate
        # check, as our intake does: the candidate is one the partner may read.
        twice = await push(partner, person_and_case("P-8", "C-8"))
        assert twice.status_code == 422, twice.text
        duplicate = problem_items(twice)[0]
        assert duplicate["type"].endswith("possible-duplicate")
        assert [c["person"]["id"] for c in duplicate["candidates"]] == [
            first.json()["items"][0]["id"]
        ]


async def test_who_may_push(app: FastAPI, client: httpx.AsyncClient, sign_in_as: Any) -> None:
    person = await create_person(client)
    shared = await create_case(client, person["id"], jurisdiction="BY")
    operations = [
        {
            "op": "event.append",
            "case": {"id": shared["id"]},
            "version": shared["version"],
            "event": event("charged", "2021-09-01"),
        }
    ]
    # Staff write through their own routes, never as a partner.
    refused = await push(client, operations)
    assert refused.status_code == 403, refused.text
    read_only, _ = await feed_partner(app, {**WRITES_BY, "read_write": False}, scopes=WRITER_SCOPES)
    without_write_scope, _ = await feed_partner(app, WRITES_BY, scopes=["sync:read"])
    without_read_scope, _ = await feed_partner(app, WRITES_BY, scopes=["sync:write"])
    for partner in (read_only, without_write_scope, without_read_scope):
        async with aclosing(partner):
            response = await push(partner, operations)
            assert response.status_code == 403, response.text
    analyst = (await sign_in_as(Role.analyst)).client
    assert (await push(analyst, operations)).status_code == 403

    # A writing partner's token reaches the records only through its batches, never
    # through the staff's routes.
    writer, _ = await feed_partner(app, WRITES_BY, scopes=WRITER_SCOPES)
    async with aclosing(writer):
        direct = await writer.post(
            f"{API}/cases/{shared['id']}/status-events",
            json=event("charged", "2021-09-01"),
            headers=if_match(shared["version"]),
        )
        assert direct.status_code == 403, direct.text
        patched = await writer.patch(
            f"{API}/cases/{shared['id']}",
            json={"deprivation_type": "imprisonment"},
            headers=if_match(shared["version"]),
        )
        assert patched.status_code == 403, patched.text
        person_patched = await writer.patch(
            f"{API}/persons/{person['id']}", json={"region": "BY-HR"}, headers=if_match(1)
        )
        assert person_patched.status_code == 403, person_patched.text
        pushed = await push(writer, operations)
        assert pushed.status_code == 200, pushed.text
    # The scope a batch holds can be given to no partner.
    with pytest.raises(ValidationError):
        PartnerCreate.model_validate(
            {"name": "p", "scopes": [push_module.BATCH_SCOPE], "auth_method": "client_secret"}
        )


async def test_partners_propose_recognition_and_only_coordinators_decide(
    app: FastAPI, client: httpx.AsyncClient, sign_in_as: Any
) -> None:
    person = await create_person(client)
    shared = await create_case(client, person["id"], jurisdiction="BY")
    partner, row = await feed_partner(app, WRITES_BY, scopes=WRITER_SCOPES)
    async with aclosing(partner):
        proposal = {
            "op": "recognition.propose",
            "person": {"id": person["id"]},
            "status": "political_prisoner",
            "case_files": [{"id": shared["id"]}],
            "criteria": ["G3.1a"],
            "rationale": "Detained for a post about the 2020 protests.",
        }
        response = await push(partner, [proposal])
        assert response.status_code == 200, response.text
        # A case file not of this person is refused.
        other = await create_case(client, (await create_person(client))["id"], jurisdiction="BY")
        wrong = await push(partner, [{**proposal, "case_files": [{"id": other["id"]}]}])
        assert wrong.status_code == 422, wrong.text

    proposals = await client.get(f"{API}/persons/{person['id']}/recognition/proposals")
    assert proposals.status_code == 200, proposals.text
    (kept,) = proposals.json()["proposals"]
    assert kept["partner_id"] == str(row.id) and kept["status"] == "political_prisoner"
    assert kept["case_file_ids"] == [shared["id"]]
    # The proposal decides nothing.
    recognition = (await client.get(f"{API}/persons/{person['id']}/recognition")).json()
    assert recognition["status"] == "not_assessed" and recognition["history"] == []
    caseworker = (await sign_in_as(Role.caseworker)).client
    refused = await caseworker.get(f"{API}/persons/{person['id']}/recognition/proposals")
    assert refused.status_code == 403


async def test_a_connection_killed_in_a_batch_applies_nothing_and_the_retry_applies_once(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Connection, database_url: str
) -> None:
    person = await create_person(client)
    shared = await create_case(client, person["id"], jurisdiction="BY")
    partner, row = await feed_partner(app, WRITES_BY, scopes=WRITER_SCOPES)
    operations = [*person_and_case("P-9", "C-9"), charge(shared)]
    persons_before = await db.fetchval("SELECT count(*) FROM person")
    # The batch writes its person and case file, then waits for the shared case file,
    # which another transaction holds; its connection is cut while it waits.
    async with held_case_file(db, database_url, shared["id"]):
        sent = asyncio.create_task(push(partner, operations, key="killed"))
        waiting = await waiting_for_a_lock(db)
        assert await db.fetchval("SELECT pg_terminate_backend($1)", waiting)
        cut = await sent
    assert cut.status_code == 503, cut.text
    assert await db.fetchval("SELECT count(*) FROM person") == persons_before
    assert await db.fetchval("SELECT count(*) FROM sync_external_id") == 0

    async with aclosing(partner):
        retried = await push(partner, operations, key="killed")
        assert retried.status_code == 200, retried.text
        again = await push(partner, operations, key="killed")
        assert again.json() == retried.json()
    assert await db.fetchval("SELECT count(*) FROM person") == persons_before + 1
    assert (
        await db.fetchval("SELECT count(*) FROM sync_external_id WHERE partner_id = $1", row.id)
        == 2
    )


async def test_what_a_refused_batch_showed_or_probed_is_in_the_audit_trail(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    person = await create_person(client)
    shared = await create_case(client, person["id"], jurisdiction="BY")
    elsewhere = await create_case(client, (await create_person(client))["id"], jurisdiction="LT")
    partner, row = await feed_partner(
        app, {**WRITES_BY, "max_tier": "restricted"}, scopes=WRITER_SCOPES
    )
    stale = {
        "op": "case.update",
        "case": {"id": shared["id"]},
        "version": shared["version"],
        "changes": {"deprivation_type": "imprisonment"},
    }
    async with aclosing(partner):
        moved = await transition(client, shared, "charged", "2021-09-01")
        assert moved.status_code == 201, moved.text
        # A restricted-tier partner is shown the case file's restricted values: a reading.
        conflict = await push(partner, [stale])
        assert conflict.status_code == 409, conflict.text
        assert "detention_places" in problem_items(conflict)[0]["current"]
        # A case file it may not see, named by our id: a denial, as a hidden record's 404.
        probe = await push(partner, [{**stale, "case": {"id": elsewhere["id"]}}])
        assert probe.status_code == 422, probe.text
        assert problem_items(probe)[0]["status"] == 404
        # A probe does not hide behind a stale version: the denial is what is recorded.
        both = await push(partner, [stale, {**stale, "case": {"id": elsewhere["id"]}}])
        assert both.status_code == 422, both.text
    recorded = await db.fetch(
        "SELECT action, outcome, resource_id, related FROM audit_event WHERE actor_id = $1"
        " ORDER BY seq",
        row.id,
    )
    outcomes = [(r["action"], r["outcome"]) for r in recorded]
    assert outcomes[-3:] == [
        ("sync.batch", "success"),
        ("sync.write", "denied"),
        ("sync.write", "denied"),
    ], outcomes
    read = recorded[-3]
    assert uuid.UUID(shared["id"]) in [read["resource_id"], *read["related"]]


async def test_what_only_our_staff_decide_is_refused_to_a_partner(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    person = await create_person(client)
    shared = await create_case(client, person["id"], jurisdiction="BY")
    source = await client.post(f"{API}/sources", json=SOURCE)
    assert source.status_code == 201, source.text
    partner, _ = await feed_partner(
        app, {**WRITES_BY, "max_tier": "restricted"}, scopes=WRITER_SCOPES
    )
    private_name = {
        "value": "Ян Т.",
        "script": "Cyrl",
        "language": "be",
        "kind": "legal",
        "is_public": False,
    }
    current = (await client.get(f"{API}/persons/{person['id']}")).json()
    async with aclosing(partner):
        response = await push(
            partner,
            [
                # 0: who may see a case file is a coordinator's decision
                {
                    "op": "case.update",
                    "case": {"id": shared["id"]},
                    "version": shared["version"],
                    "changes": {"confidentiality": "high"},
                },
                # 1: and so is its jurisdiction
                {
                    "op": "case.update",
                    "case": {"id": shared["id"]},
                    "version": shared["version"],
                    "changes": {"jurisdiction": "LT"},
                },
                # 2: our sources are ours to cite
                {
                    **charge(shared),
                    "event": event("charged", "2021-09-01", source_ids=[source.json()["id"]]),
                },
                # 3: a private name
                {
                    "op": "person.create",
                    "external_id": "P-private",
                    "person": {**new_person(("Тадэвуш", "Рэйтан")), "names": [private_name]},
                },
                # 4: that two persons are distinct rests on names it may not see
                change_person(
                    person["id"], current["version"], confirmed_distinct_from=[str(uuid.uuid4())]
                ),
            ],
        )
        assert response.status_code == 422, response.text
        problems = problem_items(response)
        assert sorted(problems) == [0, 1, 2, 3, 4]
        assert problems[0]["fields"] == ["confidentiality"]
        assert problems[1]["fields"] == ["jurisdiction"]
        assert problems[2]["fields"] == ["source_ids"]
        assert problems[3]["fields"] == ["names"]
        assert problems[4]["fields"] == ["confirmed_distinct_from"]
        assert all(problem["status"] == 403 for problem in problems.values())
        unchanged = (await client.get(f"{API}/cases/{shared['id']}")).json()
        assert unchanged["version"] == shared["version"]

        # A public-tier partner's event carries no restricted note.
        public, _ = await feed_partner(app, WRITES_BY, scopes=WRITER_SCOPES)
        async with aclosing(public):
            noted = await push(
                public, [{**charge(shared), "event": event("charged", "2021-09-01", note="n")}]
            )
            assert noted.status_code == 422
            assert problem_items(noted)[0]["fields"] == ["note"]

        # What it may change, it changes: the person's region, as of the version it read;
        # then, stale, it is shown the person as it is now.
        moved = await push(
            partner,
            [change_person(person["id"], current["version"], region="BY-HR")],
        )
        assert moved.status_code == 200, moved.text
        assert (await client.get(f"{API}/persons/{person['id']}")).json()["region"] == "BY-HR"
        stale = await push(
            partner,
            [change_person(person["id"], current["version"], region="BY-MI")],
        )
        assert stale.status_code == 409, stale.text
        conflict = problem_items(stale)[0]
        assert conflict["current_version"] == current["version"] + 1
        assert conflict["current"]["region"] == "BY-HR"
        # At the restricted tier: no confidential value.
        assert "address" not in conflict["current"] and "relatives" not in conflict["current"]

        # A person with a name the partner cannot see keeps it: the partner may not
        # replace the names.
        named = await create_person(client, names=[private_name])
        await create_case(client, named["id"], jurisdiction="BY")
        renamed = await push(
            partner,
            [
                change_person(
                    named["id"], named["version"], names=new_person(("Ян", "Тарасевіч"))["names"]
                )
            ],
        )
        assert renamed.status_code == 422, renamed.text
        assert problem_items(renamed)[0]["fields"] == ["names"]


async def test_the_duplicate_check_never_shows_a_partner_whom_it_may_not_read(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """A person recorded with the same name, whose only case file the agreement does not
    share, is no candidate for the partner: the batch makes its person (our scan of
    persons recorded twice finds the pair later), and nothing of ours is shown."""
    namesake = await create_person(client, names=new_person()["names"])
    await create_case(client, namesake["id"], jurisdiction="LT")
    partner, _ = await feed_partner(app, WRITES_BY, scopes=WRITER_SCOPES)
    async with aclosing(partner):
        made = await push(partner, person_and_case("P-namesake", "C-namesake"))
        assert made.status_code == 200, made.text
        assert namesake["id"] not in made.text

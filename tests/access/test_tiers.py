"""Field tiers, no mass assignment, encryption at rest, key rotation and the policy files."""

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from app.access.policy import POLICY_DIRECTORY, PolicyEngine, PolicyError
from app.access.principal import Role, Tier
from app.access.tiers import FIELD_TIERS, refuse_fields_above
from app.cases.schemas import CaseRead, StatusEventRead
from app.core.crypto import UndecryptableValue
from app.core.errors import Forbidden
from app.custody.schemas import CustodyEntryRead, CustodyTimeline, FacilityRead
from app.persons.schemas import PersonRead
from app.sources.schemas import SourceRead
from tests.auth import SignedIn, api_client, create_partner, partner_token
from tests.conftest import TEST_KEYS_DIR, row_counts
from tests.factories import API, case_body, event, person_body

SECRET_RELATIVE = "Ala Zyabliцкая-sister"
SECRET_ADDRESS = "Vulitsa Zialiony Luh 7, flat 12"
SECRET_WITNESS = "cellmate Yanka, via his mother"

SignIn = Callable[..., Awaitable[SignedIn]]


@pytest.mark.parametrize(
    ("kind", "model"),
    [
        ("person", PersonRead),
        ("case", CaseRead),
        ("status_event", StatusEventRead),
        ("source", SourceRead),
        ("facility", FacilityRead),
        ("custody_event", CustodyEntryRead),
        ("custody_timeline", CustodyTimeline),
    ],
)
def test_every_response_field_has_a_tier(kind: str, model: type[BaseModel]) -> None:
    assert set(model.model_fields) <= set(FIELD_TIERS[kind])


def test_writing_a_field_above_the_clearance_is_refused() -> None:
    refuse_fields_above("person", {"notes"}, Tier.restricted)
    with pytest.raises(Forbidden) as refused:
        refuse_fields_above("person", {"notes", "relatives", "address"}, Tier.restricted)
    assert refused.value.extensions["fields"] == ["address", "relatives"]
    with pytest.raises(Forbidden):
        refuse_fields_above("case", {"detention_places"}, Tier.public)


async def _world(sign_in_as: SignIn) -> dict[str, Any]:
    coordinator = (await sign_in_as(Role.coordinator)).client
    caseworker = await sign_in_as(Role.caseworker)
    people, bodies = {}, {}
    for kind in ("assigned", "other"):
        body = person_body(
            relatives=[{"name": SECRET_RELATIVE, "relation": "sister"}],
            address=SECRET_ADDRESS,
            notes="Needs insulin",
            names=[
                *person_body()["names"],
                {
                    "value": "Tajny Psieŭdanim",
                    "script": "Latn",
                    "kind": "hidden",
                    "is_public": False,
                },
            ],
        )
        # Both bear one private pseudonym: the second is stated to be someone else.
        body["confirmed_distinct_from"] = [person["id"] for person in people.values()]
        # With an Idempotency-Key, so that the stored response is among what is checked.
        response = await coordinator.post(
            f"{API}/persons", json=body, headers={"Idempotency-Key": f"person-{kind}"}
        )
        assert response.status_code == 201, response.text
        people[kind] = response.json()
        bodies[kind] = body
    cases = {}
    for kind, assigned in (("assigned", [str(caseworker.account.id)]), ("other", [])):
        response = await coordinator.post(
            f"{API}/cases",
            json=case_body(
                people[kind]["id"],
                [event("detained", "2021-08-10", note="arrested at home")],
                assigned_caseworkers=assigned,
                detention_places=[{"place": "Pre-trial prison No. 1"}],
            ),
        )
        assert response.status_code == 201, response.text
        cases[kind] = response.json()
    return {
        "coordinator": coordinator,
        "caseworker": caseworker,
        "people": people,
        "bodies": bodies,
        "cases": cases,
    }


async def test_each_role_receives_the_fields_of_its_clearance(
    app: FastAPI, sign_in_as: SignIn
) -> None:
    world = await _world(sign_in_as)
    analyst = (await sign_in_as(Role.analyst)).client
    caseworker = world["caseworker"].client
    people, cases = world["people"], world["cases"]

    async def person(client: Any, kind: str) -> dict[str, Any]:
        response = await client.get(f"{API}/persons/{people[kind]['id']}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    # The assigned caseworker sees confidential values of their person...
    mine = await person(caseworker, "assigned")
    assert mine["relatives"][0]["name"] == SECRET_RELATIVE
    assert mine["address"] == SECRET_ADDRESS
    # ...but only the restricted tier of anyone else: the keys are absent, not null.
    other = await person(caseworker, "other")
    assert "relatives" not in other and "address" not in other and "contacts" not in other
    assert other["notes"] == "Needs insulin" and other["birth_date"] == "1979-03"
    # Names kept out of public view are confidential too.
    assert all(name["is_public"] for name in other["names"])
    assert any(not name["is_public"] for name in mine["names"])
    seen_by_analyst = await person(analyst, "assigned")
    assert "relatives" not in seen_by_analyst and seen_by_analyst["notes"] == "Needs insulin"

    case = (await analyst.get(f"{API}/cases/{cases['other']['id']}")).json()
    assert case["detention_places"][0]["place"] == "Pre-trial prison No. 1"
    history = (await analyst.get(f"{API}/cases/{cases['other']['id']}/status-events")).json()
    assert history["events"][0]["note"] == "arrested at home"

    for max_tier in ("public", "restricted"):
        partner, secret = await create_partner(
            app,
            scopes=["sync:read"],
            agreement={"jurisdiction": "BY", "recognised_only": False, "max_tier": max_tier},
        )
        async with api_client(app) as client:
            token = await partner_token(client, partner.client_id, str(secret))
            client.headers["Authorization"] = f"Bearer {token}"
            shared_person = await person(client, "assigned")
            shared_case = (await client.get(f"{API}/cases/{cases['assigned']['id']}")).json()
            events = (
                await client.get(f"{API}/cases/{cases['assigned']['id']}/status-events")
            ).json()["events"]
            listed = (await client.get(f"{API}/persons?q=Psieudanim")).json()["items"]
        assert "relatives" not in shared_person and "address" not in shared_person
        hidden_names = [n for n in shared_person["names"] if not n["is_public"]]
        assert hidden_names == []
        # A name kept out of public view cannot even be searched for.
        assert listed == []
        if max_tier == "public":
            assert "birth_date" not in shared_person and "notes" not in shared_person
            assert "detention_places" not in shared_case
            assert "assigned_caseworkers" not in shared_case
            assert "note" not in events[0] and "recorded_by" not in events[0]
        else:
            assert shared_person["birth_date"] == "1979-03"
            assert shared_case["detention_places"][0]["place"] == "Pre-trial prison No. 1"
            assert events[0]["note"] == "arrested at home"


async def test_no_mass_assignment(sign_in_as: SignIn, db: asyncpg.Connection) -> None:
    world = await _world(sign_in_as)
    caseworker = world["caseworker"]
    case = world["cases"]["assigned"]
    before = await row_counts(db)
    # Choosing who works on a case file is for coordinators only.
    refused = await caseworker.client.patch(
        f"{API}/cases/{case['id']}",
        json={"assigned_caseworkers": []},
        headers={"If-Match": '"1"'},
    )
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    stored = await db.fetchval(
        "SELECT assigned_caseworkers FROM case_file WHERE id = $1",
        __import__("uuid").UUID(case["id"]),
    )
    assert [str(i) for i in stored] == [str(caseworker.account.id)]
    created = await caseworker.client.post(
        f"{API}/cases",
        json=case_body(world["people"]["other"]["id"], assigned_caseworkers=[]),
    )
    assert created.status_code == 403, created.text
    assert await row_counts(db) == before
    # Status, version and reference are derived, never written: unknown to the input model.
    for field, value in (("status", "released"), ("version", 9), ("reference", "HB-1")):
        response = await caseworker.client.patch(
            f"{API}/cases/{case['id']}", json={field: value}, headers={"If-Match": '"1"'}
        )
        assert response.status_code == 422, (field, response.text)
    # A caseworker who opens a case file for a person in their care is assigned to it...
    opened = await caseworker.client.post(
        f"{API}/cases", json=case_body(world["people"]["assigned"]["id"])
    )
    assert opened.status_code == 201, opened.text
    assert opened.json()["assigned_caseworkers"] == [str(caseworker.account.id)]
    # ...but opening one for someone else's person grants nothing: no assignment, and the
    # person's confidential values stay out of reach.
    other_person = world["people"]["other"]["id"]
    opened = await caseworker.client.post(f"{API}/cases", json=case_body(other_person))
    assert opened.status_code == 201, opened.text
    assert opened.json()["assigned_caseworkers"] == []
    person = (await caseworker.client.get(f"{API}/persons/{other_person}")).json()
    assert "address" not in person and "relatives" not in person


async def test_only_coordinators_lower_confidentiality_or_move_jurisdiction(
    sign_in_as: SignIn,
) -> None:
    world = await _world(sign_in_as)
    caseworker = world["caseworker"].client
    case = world["cases"]["assigned"]
    raised = await caseworker.patch(
        f"{API}/cases/{case['id']}", json={"confidentiality": "high"}, headers={"If-Match": '"1"'}
    )
    assert raised.status_code == 200, raised.text
    for change in ({"confidentiality": "normal"}, {"jurisdiction": "RU"}):
        refused = await caseworker.patch(
            f"{API}/cases/{case['id']}", json=change, headers={"If-Match": '"2"'}
        )
        assert refused.status_code == 403, (change, refused.text)
    lowered = await world["coordinator"].patch(
        f"{API}/cases/{case['id']}", json={"confidentiality": "normal"}, headers={"If-Match": '"2"'}
    )
    assert lowered.status_code == 200, lowered.text


async def _all_stored_text(
    db: asyncpg.Connection, skip_tables: frozenset[str] = frozenset()
) -> str:
    """Every value of every column of every table, found in the catalogue (so a table or
    column added later is covered without listing it): text as it is stored, binary
    values decoded as UTF-8, so plain text hidden inside either is found."""
    columns = await db.fetch(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
    )
    assert {"idempotency_record", "audit_event", "person", "source"} <= {
        column["table_name"] for column in columns
    }
    dumps = []
    for column in columns:
        table, name = column["table_name"], column["column_name"]
        if table in skip_tables:
            continue
        if column["data_type"] == "bytea":
            values = await db.fetch(
                f'SELECT "{name}" AS v FROM "{table}" WHERE "{name}" IS NOT NULL'
            )
            dumps.extend(bytes(row["v"]).decode("utf-8", errors="replace") for row in values)
        else:
            values = await db.fetch(
                f'SELECT "{name}"::text AS v FROM "{table}" WHERE "{name}" IS NOT NULL'
            )
            dumps.extend(row["v"] for row in values)
    return "\n".join(dumps)


async def test_the_database_holds_no_confidential_value_in_plain_text(
    sign_in_as: SignIn, db: asyncpg.Connection
) -> None:
    world = await _world(sign_in_as)
    coordinator = world["coordinator"]
    source = await coordinator.post(
        f"{API}/sources",
        headers={"Idempotency-Key": "source-1"},
        json={
            "publisher": "Monitor",
            "title": "Interview",
            "reliability": "B",
            "credibility": 2,
            "is_public": False,
            "witness": SECRET_WITNESS,
        },
    )
    assert source.status_code == 201 and source.json()["witness"] == SECRET_WITNESS
    assert await db.fetchval("SELECT count(*) FROM idempotency_record") == 3
    stored = await _all_stored_text(db)
    for secret in (SECRET_RELATIVE, SECRET_ADDRESS, SECRET_WITNESS, "Zyabli", "Luh 7"):
        assert secret not in stored
    totp = world["caseworker"].account.totp_secret
    assert totp not in stored
    # A private name is kept in plain text only where name search needs it.
    assert "Psieŭdanim" not in await _all_stored_text(db, frozenset({"person_name"}))
    # Only sealed envelopes: version byte 1, then the key id.
    envelope = await db.fetchval("SELECT address FROM person WHERE address IS NOT NULL LIMIT 1")
    assert envelope[0] == 1


async def test_a_sealed_value_copied_to_another_row_does_not_open(
    app: FastAPI, sign_in_as: SignIn, db: asyncpg.Connection
) -> None:
    world = await _world(sign_in_as)
    first, second = (world["people"][kind]["id"] for kind in ("assigned", "other"))
    import uuid

    sealed = await db.fetchval("SELECT address FROM person WHERE id = $1", uuid.UUID(first))
    ring = app.state.security.data_keys
    assert ring.open_json("person", "address", uuid.UUID(first), envelope=sealed) == SECRET_ADDRESS
    with pytest.raises(UndecryptableValue):
        ring.open("person", "address", uuid.UUID(second), envelope=sealed)
    with pytest.raises(UndecryptableValue):
        ring.open("person", "contacts", uuid.UUID(first), envelope=sealed)
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(UndecryptableValue):
        ring.open("person", "address", uuid.UUID(first), envelope=tampered)
    # Two seals of one value differ (a fresh nonce each time).
    assert ring.seal("person", "address", first, plaintext=b"x") != ring.seal(
        "person", "address", first, plaintext=b"x"
    )
    await db.execute("UPDATE person SET address = $1 WHERE id = $2", sealed, uuid.UUID(second))
    async with api_client(app) as client:
        client.headers["Authorization"] = world["coordinator"].headers["Authorization"]
        response = await client.get(f"{API}/persons/{second}")
    assert response.status_code == 500
    assert SECRET_ADDRESS not in response.text


async def test_keys_rotate_reseals_everything_while_the_app_keeps_serving(
    app: FastAPI, sign_in_as: SignIn, db: asyncpg.Connection, database_url: str
) -> None:
    world = await _world(sign_in_as)
    key_file = TEST_KEYS_DIR / "keys" / "data.json"
    backup = key_file.read_bytes()
    env = {**os.environ, "DATABASE_URL": database_url, "HABEAS_DATA_DIR": str(TEST_KEYS_DIR)}
    try:
        rotated = subprocess.run(
            [sys.executable, "-m", "app.cli", "keys", "rotate"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        report = json.loads(rotated.stdout)
        assert report["remaining_under_old_keys"] == 0
        assert report["resealed"]["person.address"] == 2
        assert report["resealed"]["app_user.totp_secret"] >= 2
        assert report["resealed"]["idempotency_record.response_sealed"] == 2
        new_kid = report["active_key"]
        retired = subprocess.run(
            [sys.executable, "-m", "app.cli", "keys", "retire"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(retired.stdout)["retired_keys"]
        ring_file = json.loads(key_file.read_text())
        assert ring_file["active"] == new_kid and list(ring_file["keys"]) == [new_kid]
        prefix = bytes([1, len(new_kid)]) + new_kid.encode()
        for column in ("address", "relatives"):
            heads = await db.fetch(f"SELECT {column} FROM person WHERE {column} IS NOT NULL")
            assert heads and all(bytes(row[0]).startswith(prefix) for row in heads)
        # The running app learns the new key from the file and still reads everything.
        caseworker = world["caseworker"].client
        person = await caseworker.get(f"{API}/persons/{world['people']['assigned']['id']}")
        assert person.status_code == 200 and person.json()["address"] == SECRET_ADDRESS
        # A create retried with its key still replays: its record was re-sealed too.
        replayed = await world["coordinator"].post(
            f"{API}/persons",
            json=world["bodies"]["assigned"],
            headers={"Idempotency-Key": "person-assigned"},
        )
        assert replayed.status_code == 201, replayed.text
        assert replayed.headers["Idempotent-Replayed"] == "true"
        assert replayed.json()["address"] == SECRET_ADDRESS
    finally:
        # Other tests' processes share this key directory: leave a ring that holds both.
        current = json.loads(key_file.read_text())
        old = json.loads(backup)
        key_file.write_text(
            json.dumps({"active": current["active"], "keys": {**old["keys"], **current["keys"]}})
        )


def test_policies_load_and_name_no_particular_record() -> None:
    engine = PolicyEngine()
    assert "permit" in engine.policy_text
    # Decisions are memoised by facts; that is sound only while policies name roles, areas
    # and actions, never a particular user, partner or record.
    named = set(re.findall(r'Habeas::(\w+)::"', engine.policy_text))
    assert named <= {"Role", "Area", "Action"}


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ("permit (principal, action, resource", "staff.cedar"),
        (
            'permit (principal, action == Habeas::Action::"case.read", resource)'
            " when { resource.no_such_attribute == 1 };",
            "staff.cedar",
        ),
    ],
)
def test_a_broken_policy_stops_the_start(tmp_path: Path, broken: str, message: str) -> None:
    for path in POLICY_DIRECTORY.iterdir():
        shutil.copy(path, tmp_path / path.name)
    with (tmp_path / "staff.cedar").open("a") as handle:
        handle.write("\n" + broken + "\n")
    with pytest.raises(PolicyError, match=message):
        PolicyEngine(tmp_path)


def test_serve_refuses_to_start_on_broken_policies_or_production_without_keys() -> None:
    env = {**os.environ, "HABEAS_ENV": "production"}
    env.pop("HABEAS_DATA_KEYS", None)
    env.pop("HABEAS_JWT_KEYS", None)
    refused = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--no-migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "Refusing to start" in refused.stderr and "production" in refused.stderr

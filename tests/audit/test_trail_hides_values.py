"""Confidential values never reach the trail in plain text: they are keyed fingerprints
(`hmac-sha256:…`), the same value giving the same fingerprint; so is a name searched for.
"""

import asyncpg
import httpx

from app.access.principal import Role
from tests.audit.trail import (
    assert_no_plain,
    change_of,
    events_after,
    head_seq,
    is_fingerprint,
    only_event_after,
)
from tests.auth import (
    SignInAs,
)
from tests.factories import (
    API,
    PERSON_SECRETS,
    SECRET_ADDRESS,
    confidential_person_body,
    create_case,
    create_person,
    if_match,
)


async def test_confidential_values_are_fingerprinted_consistently(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """The same confidential value gives the same fingerprint wherever it is recorded
    (so that an auditor can follow it), a different value a different one; neither is
    readable. Changing one shows the old and the new fingerprint."""
    start = await head_seq(db)
    first = await create_person(client, **confidential_person_body())
    moved = "Prospekt Niezalezhnasci 44, flat 3"
    response = await client.patch(
        f"{API}/persons/{first['id']}",
        json={"address": moved, "contacts": [{"kind": "email", "value": "relay@example.org"}]},
        headers=if_match(1),
    )
    assert response.status_code == 200, response.text
    second = await create_person(client, address=SECRET_ADDRESS)
    created_first, updated, created_second = await events_after(db, start)
    for recorded in (created_first, updated, created_second):
        assert_no_plain(recorded, (*PERSON_SECRETS, moved, "relay@example.org"))
    original = change_of(created_first, "person", first["id"])["address"]["after"]
    fields = change_of(updated, "person", first["id"])
    assert set(fields) == {"address", "contacts", "version"}
    assert fields["address"]["before"] == original
    assert is_fingerprint(fields["address"]["after"]) and fields["address"]["after"] != original
    assert is_fingerprint(fields["contacts"]["after"])
    assert change_of(created_second, "person", second["id"])["address"]["after"] == original


async def test_a_name_searched_for_is_kept_only_as_a_fingerprint(
    sign_in_as: SignInAs, db: asyncpg.Connection
) -> None:
    """A search by name is logged with the persons it showed, the name as a fingerprint."""
    coordinator = (await sign_in_as(Role.coordinator)).client
    caseworker = await sign_in_as(Role.caseworker)
    await create_case(coordinator)
    before = await head_seq(db)
    response = await caseworker.client.get(f"{API}/persons", params={"q": "Labanovich"})
    assert response.status_code == 200 and len(response.json()["items"]) == 1
    read = await only_event_after(db, before)
    assert read["action"] == "person.list"
    assert is_fingerprint(read["detail"]["q"])
    assert_no_plain(read, ("Labanovich", "Лабановіч"))

"""Migration 0017 computes the name keys anew for names stored before it: a name stored
with the old skeleton is found by the spellings the new keys fold together."""

import asyncio
import os
import uuid

import asyncpg

from app.core import embedded
from app.core.migrations import upgrade
from app.persons.names import skeleton, tokens


async def test_names_stored_before_get_the_new_keys(admin_url: str) -> None:
    name = f"habeas_test_name_keys_{os.getpid()}"
    await embedded.drop_database(admin_url, name)
    await embedded.ensure_database(admin_url, name)
    url = embedded.with_database(admin_url, name)
    person_id = uuid.uuid4()
    names = {uuid.uuid4(): "Ольга Ковальчук", uuid.uuid4(): "Tichanowskaja"}
    try:
        await asyncio.to_thread(upgrade, url, "0016")
        connection = await asyncpg.connect(**embedded.asyncpg_connect_kwargs(url))
        try:
            await connection.execute(
                "INSERT INTO person (id, gender, publish_consent, recognition_status, version,"
                " created_at, updated_at) VALUES ($1, 'female', true, 'not_assessed', 1, now(),"
                " now())",
                person_id,
            )
            for position, (name_id, value) in enumerate(names.items()):
                # The keys the old skeleton gave: the soft sign split the word.
                await connection.execute(
                    "INSERT INTO person_name (id, person_id, position, value, script, kind,"
                    " is_public, search_key, search_tokens) VALUES ($1, $2, $3, $4, 'Cyrl',"
                    " 'legal', true, 'al ga kaval cuk', ARRAY['al', 'ga', 'kaval', 'cuk'])",
                    name_id,
                    person_id,
                    position,
                    value,
                )
            await asyncio.to_thread(upgrade, url)
            stored = {
                row["id"]: (row["search_key"], row["search_tokens"])
                for row in await connection.fetch(
                    "SELECT id, search_key, search_tokens FROM person_name"
                )
            }
            found = await connection.fetchval(
                "SELECT count(*) FROM person_name WHERE search_tokens && $1::text[]",
                tokens("Kovalchuk"),
            )
        finally:
            await connection.close()
    finally:
        await embedded.drop_database(admin_url, name)
    assert stored == {i: (skeleton(value), tokens(value)) for i, value in names.items()}
    assert found == 1

"""Fifty clients read a person, change what they read and write it back under If-Match,
all at once, through the real app, each until its change lands: no update is lost. Each
successful PATCH moved the version by one and is in the final record; each 412 named a
version that another PATCH had already replaced; nothing else was answered. Fifty
successes and some hundreds of 412s: ten seconds or so, more on a busy machine."""

import asyncio
import random
from dataclasses import dataclass

import asyncpg
import httpx

from tests.factories import API, create_person

CLIENTS = 50
MAX_ATTEMPTS = 100


@dataclass(frozen=True)
class Attempt:
    token: str
    if_match: int
    status: int
    # The version after the PATCH (200) or the one the 412 reported as current.
    version: int


async def test_fifty_read_modify_write_clients_lose_no_update(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    person = await create_person(client, notes="start;")
    url = f"{API}/persons/{person['id']}"
    attempts: list[Attempt] = []

    async def read_modify_write(number: int) -> None:
        # Like any client of If-Match: on 412, back off (random, doubling), read again
        # and redo the change.
        backoff = random.Random(number)
        for round_ in range(MAX_ATTEMPTS):
            read = await client.get(url)
            assert read.status_code == 200, read.text
            version = int(read.headers["ETag"].strip('"'))
            token = f"c{number}r{round_};"
            written = await client.patch(
                url,
                json={"notes": read.json()["notes"] + token},
                headers={"If-Match": f'"{version}"'},
            )
            assert written.status_code in (200, 412), written.text
            answered = written.json()
            after = (
                answered["version"] if written.status_code == 200 else answered["current_version"]
            )
            attempts.append(Attempt(token, version, written.status_code, after))
            if written.status_code == 200:
                return
            await asyncio.sleep(backoff.uniform(0, 0.01 * 2 ** min(round_, 6)))
        raise AssertionError(f"client {number} never landed its change")

    await asyncio.gather(*(read_modify_write(number) for number in range(CLIENTS)))

    successes = sorted((a for a in attempts if a.status == 200), key=lambda a: a.version)
    refusals = [a for a in attempts if a.status == 412]
    final = await client.get(url)
    final_version = final.json()["version"]
    assert len(successes) == CLIENTS
    # Every successful PATCH moved the version by exactly one: none overwrote another.
    assert final_version == 1 + len(successes)
    assert [a.version for a in successes] == list(range(2, final_version + 1))
    assert all(a.version == a.if_match + 1 for a in successes)
    # Every refusal was for a version another client had already replaced.
    replaced = {a.if_match for a in successes}
    assert all(a.if_match in replaced and a.version > a.if_match for a in refusals)
    # What each success wrote is there, in order; nothing refused is.
    assert final.json()["notes"] == "start;" + "".join(a.token for a in successes)
    assert await db.fetchval("SELECT version FROM person") == final_version

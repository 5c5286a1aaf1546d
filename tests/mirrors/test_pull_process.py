"""`habeas sync pull` for real: the test app's instance served by `habeas serve` in a
process of its own, a second instance's database pulled into by the command in another,
killed (SIGKILL) in the middle of its catch-up and started again: nothing lost, nothing
doubled, and the second instance holds exactly the first's redacted view."""

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import aclosing, contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from tests.audit.chain import cli_env
from tests.factories import API, create_case, create_person, event, transition
from tests.mirrors.mirror import (
    SHARES_BY,
    Second,
    fresh_view,
    merge_and_withdraw,
    mirrored,
    mirrored_partner,
    signed_in_to,
)
from tests.mirrors.test_pull import correct, status_events
from tests.test_serve import free_port

STARTUP_SECONDS = 60
PERSONS = 30


@contextmanager
def serving(database_url: str, tmp_path: Path) -> Iterator[str]:
    """`habeas serve` on the test database (the instance the test app writes to)."""
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 (our own command)
            [sys.executable, "-m", "app.cli", "serve", "--no-migrate", "--port", str(port)],
            cwd=tmp_path,
            env={**cli_env(database_url), "HABEAS_LOG_LEVEL": "WARNING"},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"serve exited: {log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_pull(
    second: Second, base_url: str, client_id: str, key_file: Path, cwd: Path
) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 (our own command)
        [
            sys.executable,
            "-m",
            "app.cli",
            "sync",
            "pull",
            "--from",
            base_url,
            "--client-id",
            client_id,
            "--key-file",
            str(key_file),
            # A page a record: a long catch-up, to be killed in the middle of.
            "--page-size",
            "1",
        ],
        cwd=cwd,
        env=cli_env(second.url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_a_pull_killed_in_the_middle_of_its_catch_up_resumes_without_loss_or_double(
    app: FastAPI, client: httpx.AsyncClient, second: Second, database_url: str, tmp_path: Path
) -> None:
    for _ in range(PERSONS):
        person = await create_person(client)
        await create_case(client, person["id"], jurisdiction="BY")
    partner, key = await mirrored_partner(app, SHARES_BY)
    key_file = tmp_path / "mirror-key.json"
    key_file.write_text(json.dumps(key.as_dict(private=True)))
    records = 2 * PERSONS

    with serving(database_url, tmp_path) as base_url:
        pulling = start_pull(second, base_url, partner.client_id, key_file, tmp_path)
        # Killed once some pages are committed and before the last.
        deadline = time.monotonic() + 60
        committed = 0
        while committed < 5:
            assert pulling.poll() is None, pulling.communicate()
            assert time.monotonic() < deadline, "the pull committed no pages"
            await asyncio.sleep(0.02)
            committed = await second.db.fetchval(
                "SELECT coalesce(max(pages), 0) FROM mirror_upstream"
            )
        pulling.send_signal(signal.SIGKILL)
        pulling.communicate()
        assert pulling.returncode == -signal.SIGKILL
        held_at_kill = await second.db.fetchval("SELECT count(*) FROM mirror_record")
        assert 0 < held_at_kill < records

        again = start_pull(second, base_url, partner.client_id, key_file, tmp_path)
        output, errors = await asyncio.to_thread(again.communicate, timeout=120)
        assert again.returncode == 0, errors
        summary = json.loads(output)
        assert summary["caught_up"] is True
        # Only what the killed pull had not committed: nothing applied twice.
        assert summary["upserted"] == records - held_at_kill
        assert "page " in errors  # the progress display

    mirror = await signed_in_to(second)
    async with aclosing(mirror):
        assert await mirrored(mirror) == await fresh_view(app, SHARES_BY)
    assert await second.db.fetchval("SELECT count(*) FROM mirror_record") == records
    # Each record created here once, as the trail of the second instance says.
    created = await second.db.fetchval(
        "SELECT count(*) FROM audit_event, jsonb_array_elements(changes) AS c"
        " WHERE action = 'mirror.pull' AND c->'fields' ? 'state'"
        " AND c->'fields'->'state'->'before' = 'null'::jsonb"
    )
    assert created == records


async def test_a_pull_killed_while_following_the_changes_resumes_without_loss_or_double(
    app: FastAPI, client: httpx.AsyncClient, second: Second, database_url: str, tmp_path: Path
) -> None:
    """Killed after the first catch-up, in the middle of the changes since: a supersession
    and a retraction, a merge, a record leaving the agreement, and releases."""
    cases = []
    for _ in range(PERSONS):
        person = await create_person(client)
        cases.append(await create_case(client, person["id"], jurisdiction="BY"))
    kept = await create_person(client)
    await create_case(client, kept["id"], jurisdiction="BY")
    merged = await create_person(client)
    await create_case(client, merged["id"], jurisdiction="BY")
    partner, key = await mirrored_partner(app, SHARES_BY)
    key_file = tmp_path / "mirror-key.json"
    key_file.write_text(json.dumps(key.as_dict(private=True)))

    with serving(database_url, tmp_path) as base_url:
        first = start_pull(second, base_url, partner.client_id, key_file, tmp_path)
        _, errors = await asyncio.to_thread(first.communicate, timeout=120)
        assert first.returncode == 0, errors
        pages_caught_up = await second.db.fetchval("SELECT pages FROM mirror_upstream")

        # Upstream, after the catch-up: the first case file's detention superseded, then a
        # release claimed on it and retracted; a merge; the second case file made
        # high-confidentiality (it and its person leave the agreement); every other case
        # file's person released.
        corrected, leaving, *released = cases
        detention = (await status_events(client, corrected))[0]
        await correct(
            client,
            corrected,
            detention["id"],
            "supersession",
            {"reason": "The day was wrong", "event": event("detained", "2024-02-03")},
        )
        claimed = await transition(
            client,
            (await client.get(f"{API}/cases/{corrected['id']}")).json(),
            "released",
            "2025-09-11",
            confidence="unconfirmed",
        )
        assert claimed.status_code == 201, claimed.text
        await correct(
            client, corrected, claimed.json()["event"]["id"], "retraction", {"reason": "Denied"}
        )
        await merge_and_withdraw(client, kept, merged, leaving["id"])
        for case in released:
            moved = await transition(
                client, case, "released", "2025-09-11", details={"release_reason": "acquitted"}
            )
            assert moved.status_code == 201, moved.text

        pulling = start_pull(second, base_url, partner.client_id, key_file, tmp_path)
        deadline = time.monotonic() + 60
        while (await second.db.fetchval("SELECT pages FROM mirror_upstream")) < (
            pages_caught_up + 5
        ):
            assert pulling.poll() is None, pulling.communicate()
            assert time.monotonic() < deadline, "the pull committed no pages"
            await asyncio.sleep(0.02)
        pulling.send_signal(signal.SIGKILL)
        pulling.communicate()
        assert pulling.returncode == -signal.SIGKILL
        at_kill = await second.db.fetchrow("SELECT phase, caught_up FROM mirror_upstream")
        assert (at_kill["phase"], at_kill["caught_up"]) == ("changes", False)

        again = start_pull(second, base_url, partner.client_id, key_file, tmp_path)
        output, errors = await asyncio.to_thread(again.communicate, timeout=120)
        assert again.returncode == 0, errors
        summary = json.loads(output)
        assert summary["caught_up"] is True
        assert summary["upserted"] > 0  # the kill left changes to follow

    mirror = await signed_in_to(second)
    async with aclosing(mirror):
        assert await mirrored(mirror) == await fresh_view(app, SHARES_BY)
        gone = await mirrored(mirror, "gone")
        assert ("case", leaving["id"]) in gone
        redirects = await mirrored(mirror, "redirect")
        assert redirects[("person", merged["id"])]["merged_into"] == kept["id"]
    # Each record created here once, whatever the kill: the trail of the second instance.
    created = await second.db.fetchval(
        "SELECT count(*) FROM audit_event, jsonb_array_elements(changes) AS c"
        " WHERE action = 'mirror.pull' AND c->'fields' ? 'state'"
        " AND c->'fields'->'state'->'before' = 'null'::jsonb"
    )
    assert created == await second.db.fetchval("SELECT count(*) FROM mirror_record")

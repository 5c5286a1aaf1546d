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
from tests.factories import create_case, create_person
from tests.mirrors.mirror import (
    SHARES_BY,
    Second,
    fresh_view,
    mirrored,
    mirrored_partner,
    signed_in_to,
)
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

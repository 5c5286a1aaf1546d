"""`habeas report generate`: the same report as the API's, stored as a snapshot and written
to a file in the asked format."""

import csv
import io
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.auth import cli_env, run_cli
from tests.conftest import TEST_KEYS_DIR
from tests.factories import API, create_case, event

pytestmark = pytest.mark.asyncio


async def test_the_command_writes_the_report_it_stored(
    client: httpx.AsyncClient, db: asyncpg.Connection, database_url: str, tmp_path: Path
) -> None:
    await create_case(client, history=[event("detained", "2025-09-03")])
    await create_case(
        client, history=[event("detained", "2025-01-03"), event("released", "2025-09-20")]
    )
    env = cli_env(
        DATABASE_URL=database_url,
        HABEAS_DATA_DIR=str(TEST_KEYS_DIR),
        HABEAS_REPORT_SETTLE_SECONDS="0",
    )
    out = tmp_path / "september.csv"
    args = ["report", "generate", "--as-of", "2025-09-30", "--from", "2025-09-01"]
    args += ["--to", "2025-09-30", "--format", "csv", "--out", str(out)]
    done = await run_cli(args, env, tmp_path)
    assert done.returncode == 0, done.stderr

    stored = await db.fetchrow("SELECT id, content_sha256, generated_by FROM report_snapshot")
    assert stored is not None and stored["generated_by"] is None
    assert str(stored["id"]) in done.stdout
    rows = list(csv.DictReader(io.StringIO(out.read_bytes().decode("utf-8-sig"))))
    figures = {(row["figure"], row["key"]): row["value"] for row in rows}
    assert figures[("held.total", "")] == "1"
    assert figures[("period.released.total", "")] == "1"
    assert figures[("period.new_detentions", "")] == "1"
    assert figures[("content_sha256", "")] == stored["content_sha256"]
    read = await client.get(f"{API}/reports/{stored['id']}")
    assert read.json()["content_sha256"] == stored["content_sha256"]
    assert (
        await db.fetchval("SELECT count(*) FROM audit_event WHERE action = 'report.generate'") == 1
    )

    refused = await run_cli(
        [
            "report",
            "generate",
            "--as-of",
            "2025-09-30",
            "--from",
            "2025-10-01",
            "--to",
            "2025-09-30",
            "--out",
            str(out),
        ],
        env,
        tmp_path,
    )
    assert refused.returncode == 2
    assert "period" in refused.stderr

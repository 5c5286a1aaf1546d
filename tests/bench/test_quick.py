"""The harness is not part of the test suite (timings are noisy); this only checks that
`habeas bench --quick` runs end to end and writes valid JSON."""

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from app.bench.workloads import ALL_WORKLOADS
from app.core import embedded

EXPECTED_KEYS = {"name", "rps", "p50_ms", "p95_ms", "p99_ms", "raw_rps", "ratio", "rss_mb"}
TIMED_KEYS = {"name", "kind", "repeats", "api_s", "raw_s", "time_ratio", "rss_before_mb", "rss_mb"}


async def test_quick_runs_every_workload_and_writes_json(admin_url: str, tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    env = {**os.environ, "BENCH_DATABASE_URL": admin_url}
    try:
        completed = await asyncio.to_thread(
            subprocess.run,  # our own CLI
            [sys.executable, "-m", "app.cli", "bench", "--quick", "--json", str(output)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        await embedded.drop_database(admin_url, "habeas_bench_10k")
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(output.read_text())
    assert report["scale"] == "10k"
    assert [w["name"] for w in report["workloads"]] == list(ALL_WORKLOADS)
    for workload in report["workloads"]:
        if workload.get("kind") == "time":
            # The status report: POST /api/v1/reports against the hand-written SQL; a
            # partner's whole catch-up as one NDJSON stream against the same pages in SQL.
            assert set(workload) >= TIMED_KEYS, workload
            if workload["name"] == "sync_catch_up":
                assert workload["records"] > 1_000, workload
            assert workload["errors"] == 0, workload
            assert workload["repeats"] > 0, workload
            assert workload["api_s"] > 0, workload
            assert workload["raw_s"] > 0, workload
            continue
        assert set(workload) >= EXPECTED_KEYS, workload
        assert workload["rps"] > 0, workload
        assert workload["raw_rps"] > 0, workload
        assert workload["errors"] == 0, workload
        assert workload["p50_ms"] <= workload["p95_ms"] <= workload["p99_ms"]
    assert "api/raw" in completed.stdout
    assert "time ratio API/raw" in completed.stdout

"""`habeas bench`: prepare, serve, drive every workload, compare with raw SQL, report."""

import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from app.bench import database, identity
from app.bench.runner import (
    Measurement,
    Result,
    Server,
    TimedResult,
    run_api,
    run_raw,
    run_timed,
)
from app.bench.workloads import ALL_WORKLOADS, SyncCatchUp

GROWTH_WORKLOADS = ("case_read", "status_transition", "name_search", "duplicate_check")
# Whose API is measured again on a server that does not record reads: what recording
# them costs (`--audit-cost`).
READ_WORKLOADS = ("case_read", "case_list_filtered", "name_search")
# What the write ceiling drives with 1, 2, 4 … API processes (`--writers`).
CEILING_WORKLOAD = "status_transition"


@dataclass(frozen=True)
class Plan:
    scale: str
    workloads: list[str]
    warmup: float
    duration: float
    scale_compare: list[str] | None
    data_dir: Path
    server_url: str | None
    # The report benchmark: bulk-seeded databases (about ten status events a person), how
    # many reports are timed after how many warm-up ones, and the scales whose generation
    # time and server memory are compared.
    bulk: bool = False
    report_repeats: int = 3
    report_warmup: int = 1
    report_scales: list[str] | None = None
    # The NDJSON catch-up stops after so many records (0: once caught up).
    catch_up_records: int = 0
    # Also measure the read workloads on a server that does not record reads.
    audit_cost: bool = False
    # Also measure transitions with so many API processes each (the write ceiling).
    writers: list[int] | None = None


async def _api_only(
    plan: Plan, scale: str, names: list[str], *, workers: int, settings_env: dict[str, str]
) -> dict[str, Measurement]:
    """The API side of rate workloads on a server of its own (so many processes, these
    settings)."""
    keys = identity.key_env(plan.data_dir)
    url = await database.prepare(scale, plan.data_dir, plan.server_url)
    server = Server(
        url, database.application_url(url), key_env=keys, workers=workers, settings_env=settings_env
    )
    measured: dict[str, Measurement] = {}
    try:
        await server.wait_ready()
        signed_in = await identity.sign_in(url, server.base_url, keys)
        for name in names:
            workload = ALL_WORKLOADS[name]()
            workload.identity = signed_in
            print(f"  {scale} {name} ({workers} processes, {settings_env}) ...", end="", flush=True)  # noqa: T201
            api, _ = await run_api(
                workload, server, url, warmup=plan.warmup, duration=max(plan.duration, 1.0)
            )
            print(f" {api.rps:.1f} rps", flush=True)  # noqa: T201
            measured[name] = api
    finally:
        server.stop()
        await identity.remove_accounts(url)
    return measured


async def audit_cost(plan: Plan, results: list[Result | TimedResult]) -> dict[str, Any]:
    """What recording reads costs: each read workload's API rate in this run against the
    same API on a server started with reads unrecorded (HABEAS_AUDIT_READS=false)."""
    audited = {r.name: r for r in results if isinstance(r, Result) and r.name in READ_WORKLOADS}
    unrecorded = await _api_only(
        plan, plan.scale, list(audited), workers=2, settings_env={"HABEAS_AUDIT_READS": "false"}
    )
    return {
        name: {
            "rps": round(audited[name].api.rps, 1),
            "rps_reads_unrecorded": round(unrecorded[name].rps, 1),
            "cost": round(1 - audited[name].api.rps / unrecorded[name].rps, 3)
            if unrecorded[name].rps
            else 0.0,
            "p50_ms": round(audited[name].api.percentile(0.5), 2),
            "p50_ms_reads_unrecorded": round(unrecorded[name].percentile(0.5), 2),
        }
        for name in audited
    }


async def write_ceiling(plan: Plan, counts: list[int]) -> list[dict[str, Any]]:
    """Transitions a second with 1, 2, 4 … API processes against the one database."""
    rows = []
    for count in counts:
        api = (
            await _api_only(plan, plan.scale, [CEILING_WORKLOAD], workers=count, settings_env={})
        )[CEILING_WORKLOAD]
        rows.append(
            {
                "processes": count,
                "rps": round(api.rps, 1),
                "p50_ms": round(api.percentile(0.5), 2),
                "p95_ms": round(api.percentile(0.95), 2),
                "errors": api.errors,
            }
        )
    return rows


async def _run_scale(
    plan: Plan, scale: str, names: list[str], *, bulk: bool = False
) -> list[Result | TimedResult]:
    keys = identity.key_env(plan.data_dir)
    url = await database.prepare(scale, plan.data_dir, plan.server_url, bulk=bulk)
    server = Server(url, database.application_url(url), key_env=keys)
    results: list[Result | TimedResult] = []
    try:
        await server.wait_ready()
        # Every request is authenticated, policy-checked and redacted, as in production.
        signed_in = await identity.sign_in(url, server.base_url, keys)
        for name in names:
            workload = ALL_WORKLOADS[name]()
            workload.identity = signed_in
            if isinstance(workload, SyncCatchUp):
                workload.record_limit = plan.catch_up_records
            if workload.partner_agreement is not None:
                (
                    workload.partner_ids,
                    workload.partner_token_list,
                    workload.partner_credentials,
                ) = await identity.partner_tokens(
                    url,
                    server.base_url,
                    keys,
                    count=workload.concurrency,
                    scopes=workload.partner_scopes,
                    agreement=workload.partner_agreement,
                )
            if workload.timed:
                print(f"  {scale} {name}: API, then raw ...", end="", flush=True)  # noqa: T201
                timed = await run_timed(
                    workload,
                    server,
                    url,
                    repeats=min(plan.report_repeats, workload.max_repeats or plan.report_repeats),
                    warmup_runs=0 if workload.max_repeats else plan.report_warmup,
                )
                summary = timed.as_json()
                print(  # noqa: T201
                    f" {summary['api_s']} s / {summary['raw_s']} s = {summary['time_ratio']}x",
                    flush=True,
                )
                results.append(timed)
                continue
            print(f"  {scale} {name}: API ...", end="", flush=True)  # noqa: T201
            duration = max(plan.duration, workload.min_duration)
            api, rss_mb = await run_api(
                workload, server, url, warmup=plan.warmup, duration=duration
            )
            print(" raw ...", end="", flush=True)  # noqa: T201
            raw = await run_raw(workload, url, warmup=plan.warmup, duration=duration)
            result = Result(name, api, raw, rss_mb)
            print(f" {result.as_json()['ratio']}x", flush=True)  # noqa: T201
            results.append(result)
    finally:
        server.stop()
        await identity.remove_accounts(url)
        await identity.remove_partners(url)
    return results


def machine() -> dict[str, Any]:
    return {
        "cpus": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


async def run(plan: Plan) -> dict[str, Any]:
    report: dict[str, Any] = {
        "scale": plan.scale,
        "machine": machine(),
        "duration_s": plan.duration,
        "warmup_s": plan.warmup,
    }
    if plan.workloads:
        results = await _run_scale(plan, plan.scale, plan.workloads, bulk=plan.bulk)
        report["workloads"] = [result.as_json() for result in results]
        if plan.audit_cost:
            report["audit_cost"] = await audit_cost(plan, results)
    if plan.writers:
        report["write_ceiling"] = await write_ceiling(plan, plan.writers)
    if plan.report_scales:
        report["report_scales"] = {
            scale: (await _run_scale(plan, scale, ["status_report"], bulk=True))[0].as_json()
            for scale in plan.report_scales
        }
    if plan.scale_compare:
        small, large = plan.scale_compare
        by_scale = {
            scale: {r.name: r for r in await _run_scale(plan, scale, list(GROWTH_WORKLOADS))}
            for scale in (small, large)
        }
        report["growth"] = {
            name: {
                f"{small}_p50_ms": round(by_scale[small][name].api.percentile(0.5), 2),
                f"{large}_p50_ms": round(by_scale[large][name].api.percentile(0.5), 2),
                "p50_factor": round(
                    by_scale[large][name].api.percentile(0.5)
                    / by_scale[small][name].api.percentile(0.5),
                    2,
                ),
                "p95_factor": round(
                    by_scale[large][name].api.percentile(0.95)
                    / by_scale[small][name].api.percentile(0.95),
                    2,
                ),
                # The server's peak memory under the workload at each scale.
                f"{small}_rss_mb": round(by_scale[small][name].rss_mb, 1),
                f"{large}_rss_mb": round(by_scale[large][name].rss_mb, 1),
            }
            for name in GROWTH_WORKLOADS
        }
    return report


def table(report: dict[str, Any]) -> str:
    header = (
        f"{'workload':<28}{'rps':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
        f"{'raw rps':>10}{'api/raw':>9}{'rss MB':>9}{'errors':>8}"
    )
    workloads = report.get("workloads", [])
    rates = [w for w in workloads if w.get("kind") != "time"]
    lines = [
        f"scale {report['scale']}, {report['duration_s']} s per workload "
        f"after {report['warmup_s']} s warm-up, {report['machine']['cpus']} CPUs",
    ]
    if rates:
        lines += [header, "-" * len(header)]
    lines += [_timed_line(w) for w in workloads if w.get("kind") == "time"]
    for w in rates:
        lines.append(
            f"{w['name']:<28}{w['rps']:>9}{w['p50_ms']:>9}{w['p95_ms']:>9}"
            f"{w['p99_ms']:>9}{w['raw_rps']:>10}{w['ratio']:>9}{w['rss_mb']:>9}"
            f"{w['errors']:>8}"
        )
    for scale, w in report.get("report_scales", {}).items():
        lines.append(f"bulk {scale}: {_timed_line(w)}")
    for name, cost in report.get("audit_cost", {}).items():
        lines.append(f"audit cost {name}: " + ", ".join(f"{k} {v}" for k, v in cost.items()))
    for row in report.get("write_ceiling", []):
        lines.append("write ceiling: " + ", ".join(f"{k} {v}" for k, v in row.items()))
    for name, growth in report.get("growth", {}).items():
        lines.append(f"growth {name}: " + ", ".join(f"{k} {v}" for k, v in growth.items()))
    return "\n".join(lines)


def _timed_line(w: dict[str, Any]) -> str:
    return (
        f"{w['name']}: API {w['api_s']} s, raw SQL {w['raw_s']} s (medians of {w['repeats']}), "
        f"time ratio API/raw {w['time_ratio']} (lower is better), server RSS "
        f"{w['rss_before_mb']} MB before, {w['rss_mb']} MB peak, {w['rss_after_mb']} MB after, "
        f"errors {w['errors']}"
    )


def write_json(report: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(report, indent=2) + "\n")

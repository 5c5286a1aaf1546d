"""What a Prometheus scrape of /metrics reads: the metrics of app/core/metrics.py (this
process's, or every worker's in multiprocess mode) and the figures that scrape hooks read
at scrape time.

A scrape hook is where a figure that lives in the database goes (the same whatever
worker answers, so it needs no multiprocess bookkeeping): an async function given the
engine that returns metric families, listed in SCRAPE_HOOKS (`job_figures` below is one).
A hook that fails (the database is away) or takes longer than HOOK_SECONDS is logged and
left out of that scrape; the rest is still served.
"""

import asyncio
import hmac
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from datetime import datetime

import structlog
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core import metrics
from app.core.db import pool_exhausted, publish_pool_figures
from app.jobs import service as jobs

log = structlog.get_logger(__name__)

ScrapeHook = Callable[[AsyncEngine], Awaitable[Iterable[Metric]]]

# Prometheus gives up on a scrape after 10 s by default; a database that hangs must not
# take the other figures down with it.
HOOK_SECONDS = 2.0

# The last integrity run's outcome when there has been none (1: verified, 0: did not).
NEVER_RUN = -1


class PoolExhausted(Exception):
    """Requests are waiting for the pool's connections: a scrape does not queue behind
    them (its wait would count as theirs, and it would answer after Prometheus gave up)."""


async def job_figures(engine: AsyncEngine) -> list[Metric]:
    """The worker's figures (app/jobs/service.py, job_health): jobs in the queue, failed
    jobs, the last integrity run and when the chain last verified, the scheduled reports'
    runs. Three small queries (four while the last check failed: when it last held)."""
    if pool_exhausted(engine):
        raise PoolExhausted()
    async with AsyncSession(engine) as session:
        health = await jobs.job_health(session)
    return job_families(health)


def job_families(health: jobs.JobHealth) -> list[Metric]:
    queued = GaugeMetricFamily(
        "habeas_jobs_queued",
        "Jobs in the queue by entrypoint and status: queued (waiting), picked (running), "
        "failed (held for inspection until purged).",
        labels=["entrypoint", "status"],
    )
    # Every job and status has a series, 0 included: a sum over an empty queue is 0, not
    # nothing, and a job of another release still shows.
    depth = {
        (entrypoint, status): 0 for entrypoint in jobs.ENTRYPOINTS for status in jobs.QUEUE_STATUSES
    } | health.queue_depth
    for (entrypoint, status), count in sorted(depth.items()):
        queued.add_metric([entrypoint, status], count)
    last = health.last_integrity_check
    ok = NEVER_RUN if last is None else int(last.ok)
    report_runs = GaugeMetricFamily(
        "habeas_report_runs",
        "Scheduled status report runs (one per schedule and period) by status: running, "
        "succeeded, failed (every attempt so far failed; the next run tries again).",
        labels=["status"],
    )
    for status, count in sorted(health.report_runs.items()):
        report_runs.add_metric([status], count)
    return [
        queued,
        report_runs,
        GaugeMetricFamily(
            "habeas_jobs_failed",
            "Failed jobs held in the queue (any entrypoint).",
            value=health.failed_jobs,
        ),
        GaugeMetricFamily(
            "habeas_audit_integrity_last_run_ok",
            "Whether the last scheduled integrity check found the audit chain whole: "
            "1 verified, 0 did not verify (the alert), -1 no check has run yet.",
            value=ok,
        ),
        GaugeMetricFamily(
            "habeas_audit_integrity_last_run_timestamp_seconds",
            "When the last integrity check finished (Unix time; 0 if none has run).",
            value=_timestamp(last.finished_at if last else None),
        ),
        GaugeMetricFamily(
            "habeas_audit_last_verified_timestamp_seconds",
            "When an integrity check last found the whole chain verified (Unix time; 0 if "
            "never, so that an alert on its age fires).",
            value=_timestamp(health.last_verified_at),
        ),
    ]


def _timestamp(moment: datetime | None) -> float:
    return moment.timestamp() if moment is not None else 0.0


SCRAPE_HOOKS: tuple[ScrapeHook, ...] = (job_figures,)


def token_matches(authorization: str | None, token: bytes) -> bool:
    """Whether an Authorization header carries the token, compared in constant time."""
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), token)


class _Scrape:
    """One scrape's collector: the registry's metrics, then the hooks' families."""

    def __init__(self, base: Collector, families: Sequence[Metric]) -> None:
        self._base = base
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._base.collect()
        yield from self._families


async def scrape(
    engine: AsyncEngine, hooks: Iterable[ScrapeHook], accept: str | None
) -> tuple[bytes, str]:
    """The exposition in the format the scraper accepts (Prometheus' text format, or
    OpenMetrics), and its content type."""
    families: list[Metric] = []
    for hook in hooks:
        try:
            async with asyncio.timeout(HOOK_SECONDS):
                families.extend(await hook(engine))
        except Exception as error:
            log.warning(
                "metrics_hook_failed",
                hook=getattr(hook, "__name__", "hook"),
                error_class=type(error).__name__,
            )
    # This worker's pool as it is now (the others' are at most a second old). Published
    # after the hooks have given their connections back, with no await before encoding, so
    # the every-second publisher cannot interleave a figure that counts a hook's connection.
    publish_pool_figures(engine)
    encode, content_type = choose_encoder(accept or "")
    return encode(_Scrape(metrics.registry(), families)), content_type

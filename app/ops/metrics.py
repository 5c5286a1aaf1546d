"""What a Prometheus scrape of /metrics reads: the metrics of app/core/metrics.py (this
process's, or every worker's in multiprocess mode) and the figures that scrape hooks read
at scrape time.

A scrape hook is where a figure that lives in the database goes (the same whatever
worker answers, so it needs no multiprocess bookkeeping): an async function given the
engine that returns metric families, e.g. the job queue's depth once the worker exists:

    async def job_queue(engine: AsyncEngine) -> list[Metric]:
        depth = GaugeMetricFamily("habeas_jobs_queued", "Jobs waiting.", labels=["entrypoint"])
        ...  # one query; depth.add_metric([name], count)
        return [depth]

and add it to SCRAPE_HOOKS. A hook that fails (the database is away) is logged and left
out of that scrape; the rest is still served.
"""

import hmac
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence

import structlog
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core import metrics

log = structlog.get_logger(__name__)

ScrapeHook = Callable[[AsyncEngine], Awaitable[Iterable[Metric]]]

SCRAPE_HOOKS: tuple[ScrapeHook, ...] = ()


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
            families.extend(await hook(engine))
        except Exception as error:
            log.warning(
                "metrics_hook_failed",
                hook=getattr(hook, "__name__", "hook"),
                error_class=type(error).__name__,
            )
    encode, content_type = choose_encoder(accept or "")
    return encode(_Scrape(metrics.registry(), families)), content_type

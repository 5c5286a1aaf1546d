"""Prometheus metrics: what an operator watches (docs/reliability.md, "Metrics").

Every metric is defined here, so that the list in the docs can be checked against one
place, and features only call the small functions below. Labels are bounded sets (route
templates, methods, statuses, kinds): never a raw path, a name, an address or an id.

With several worker processes (`habeas serve --workers N`), prometheus_client's
multiprocess mode keeps each process's values in files under PROMETHEUS_MULTIPROC_DIR
(`serve` sets it) and a scrape, answered by any one worker, adds them all up. The pool's
gauges are therefore published when the pool changes rather than read at scrape time: a
worker can only read its own pool. Values a scrape reads from the database (the same for
every worker) are `ScrapeHook`s, app/ops/metrics.py.
"""

import os
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import multiprocess as prometheus_multiprocess
from starlette.convertors import PathConvertor

from app.core.config import InvalidSetting

# Where worker processes keep their values; prometheus_client reads it when it is imported.
MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# A token shorter than this could be guessed; `secrets.token_urlsafe(32)` gives 43.
MIN_TOKEN_CHARS = 32

# Request latencies from a fast read (a few ms) to a large report (seconds).
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# The audit append holds the chain's lock: milliseconds, or a queue behind other writers.
_APPEND_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

HTTP_REQUESTS = Counter(
    "habeas_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "habeas_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by route template and method.",
    ["route", "method"],
    buckets=_LATENCY_BUCKETS,
)

# The pool's gauges add up over worker processes that are alive ("livesum").
POOL_SIZE = Gauge(
    "habeas_db_pool_size",
    "Connections the pool keeps open at most when idle (HABEAS_POOL_SIZE).",
    multiprocess_mode="livesum",
)
POOL_MAX_OVERFLOW = Gauge(
    "habeas_db_pool_max_overflow",
    "Connections the pool may open beyond its size (HABEAS_POOL_MAX_OVERFLOW).",
    multiprocess_mode="livesum",
)
POOL_IN_USE = Gauge(
    "habeas_db_pool_connections_in_use",
    "Connections checked out of the pool by requests now.",
    multiprocess_mode="livesum",
)
POOL_IDLE = Gauge(
    "habeas_db_pool_connections_idle",
    "Connections in the pool waiting for a request.",
    multiprocess_mode="livesum",
)
POOL_OVERFLOW = Gauge(
    "habeas_db_pool_overflow",
    "Connections open beyond the pool's size now.",
    multiprocess_mode="livesum",
)
POOL_WAITING = Gauge(
    "habeas_db_pool_waiting",
    "Requests waiting now for a connection (the pool is exhausted).",
    multiprocess_mode="livesum",
)
POOL_WAIT = Histogram(
    "habeas_db_pool_checkout_wait_seconds",
    "How long checkouts that found the pool exhausted waited for a connection.",
    buckets=_WAIT_BUCKETS,
)
POOL_TIMEOUTS = Counter(
    "habeas_db_pool_checkout_timeouts",
    "Checkouts that gave up waiting (HABEAS_POOL_TIMEOUT_SECONDS); each is a 503.",
)
DATABASE_ERRORS = Counter(
    "habeas_database_errors",
    "Database errors met by requests, by kind (app/core/database_errors.py).",
    ["kind"],
)

AUDIT_APPEND = Histogram(
    "habeas_audit_append_seconds",
    "Time to append a unit of work's audit event (waiting for the chain's lock included).",
    ["kind"],
    buckets=_APPEND_BUCKETS,
)

SIGN_IN_FAILURES = Counter(
    "habeas_sign_in_failures",
    "Failed authentication attempts, by flow (user sign-in, partner token, enrolment).",
    ["flow"],
)
SIGN_IN_THROTTLED = Counter(
    "habeas_sign_in_throttled",
    "Authentication attempts refused (429) because failures blocked them, by flow.",
    ["flow"],
)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"


def record_request(route: str, method: str, *, status: int, seconds: float) -> None:
    method = method if method in _METHODS else "OTHER"
    HTTP_REQUESTS.labels(route, method, str(status)).inc()
    HTTP_LATENCY.labels(route, method).observe(seconds)


class AuditAppendTimer:
    """`with AuditAppendTimer(kind):` around an audit append."""

    __slots__ = ("_kind", "_started")

    def __init__(self, kind: str) -> None:
        self._kind = kind
        self._started = 0.0

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        AUDIT_APPEND.labels(self._kind).observe(time.perf_counter() - self._started)


def sign_in_failed(flow: str) -> None:
    SIGN_IN_FAILURES.labels(flow).inc()


def sign_in_throttled(flow: str) -> None:
    SIGN_IN_THROTTLED.labels(flow).inc()


def database_error(kind: str) -> None:
    DATABASE_ERRORS.labels(kind).inc()


def publish_pool(*, size: int, max_overflow: int, in_use: int, idle: int, overflow: int) -> None:
    POOL_SIZE.set(size)
    POOL_MAX_OVERFLOW.set(max_overflow)
    POOL_IN_USE.set(in_use)
    POOL_IDLE.set(idle)
    POOL_OVERFLOW.set(max(0, overflow))


# Exposition -------------------------------------------------------------------------------


def multiprocess_dir() -> Path | None:
    value = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
    return Path(value) if value else None


def registry() -> CollectorRegistry:
    """What a scrape reads: this process's metrics, or every worker's in multiprocess mode."""
    directory = multiprocess_dir()
    if directory is None:
        from prometheus_client import REGISTRY

        return REGISTRY
    forget_dead_workers(directory)
    combined = CollectorRegistry()
    prometheus_multiprocess.MultiProcessCollector(  # type: ignore[no-untyped-call]
        combined, path=str(directory)
    )
    return combined


def forget_dead_workers(directory: Path) -> None:
    """Drop the live gauges of worker processes that are gone (killed, or restarted by
    the server): otherwise their last pool figures would count for ever."""
    for path in directory.glob("gauge_live*_*.db"):
        pid = path.stem.rsplit("_", 1)[1]
        if pid.isdigit() and not _alive(int(pid)):
            prometheus_multiprocess.mark_process_dead(  # type: ignore[no-untyped-call]
                int(pid), str(directory)
            )


def forget_this_worker() -> None:
    """At a worker's shutdown: its pool is gone, so are its pool gauges."""
    directory = multiprocess_dir()
    if directory is not None:
        prometheus_multiprocess.mark_process_dead(  # type: ignore[no-untyped-call]
            os.getpid(), str(directory)
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prepare_multiprocess_dir(directory: Path) -> None:
    """Before the workers start: a directory of their own, emptied of a previous run's
    files (whose counters would otherwise be added to this run's)."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()


def read_token(path: Path | None) -> bytes | None:
    """The bearer token a scrape must present, from the file HABEAS_METRICS_TOKEN_FILE
    names; None: /metrics is not served. A file that cannot be read, or a token too short
    to resist guessing, stops the start (InvalidSetting)."""
    if path is None:
        return None
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidSetting(
            f"HABEAS_METRICS_TOKEN_FILE={path}: cannot be read ({type(error).__name__})"
        ) from None
    if len(token) < MIN_TOKEN_CHARS or any(char.isspace() for char in token):
        raise InvalidSetting(
            f"HABEAS_METRICS_TOKEN_FILE={path}: the token must be one word of at least "
            f"{MIN_TOKEN_CHARS} characters"
        )
    return token.encode()


def describe_route(route: Any, path: str) -> str:
    """The template of the route a request matched, as served (`/api/v1/cases/{case_id}`),
    never the path itself: ids must not become label values.

    FastAPI keeps an included router's routes with their own path, without the prefixes
    of the routers above; those are literal, and are the leading segments of the path
    that the route's own segments do not account for.
    """
    if route is None:
        return UNMATCHED_ROUTE
    template: str | None = getattr(route, "path_format", None)
    if template is None:
        return UNMATCHED_ROUTE
    convertors = getattr(route, "param_convertors", {})
    # A mount, or a parameter spanning several segments, leaves no way to tell the prefix.
    if not hasattr(route, "endpoint") or any(
        isinstance(convertor, PathConvertor) for convertor in convertors.values()
    ):
        return template
    served = path.rstrip("/").split("/")
    own = template.rstrip("/").split("/")
    prefix = "/".join(served[: max(1, len(served) - len(own) + 1)])
    return prefix + template

"""structlog configuration: JSON lines in production, readable lines in development.

The libraries' own log records (uvicorn's, pgqueuer's: plain `logging`) go through the same
renderer, to the same stream, so that with JSON logs on every line is JSON. Library
loggers are let through from WARNING up, except uvicorn's and pgqueuer's, whose messages
(start-up, a worker process that died, a job's entrypoint and id with its traceback) have
been read: they name no record. pgqueuer's job payloads are not logged, and ours are
empty anyway (app/jobs/queue.py). uvicorn's access log stays off (`habeas serve`): its
lines would carry query strings, which can hold names.
"""

import logging
import sys
from typing import TextIO

import structlog

# The loggers let through at the configured level; other libraries' at WARNING and above.
READ_LIBRARY_LOGGERS = ("uvicorn", "pgqueuer")


class _StdoutHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stdout` is when a record comes, as structlog's own lines do
    (a test that swaps it sees both)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


def configure_logging(level: str, as_json: bool) -> None:
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        cache_logger_on_first_use=True,
    )
    _route_standard_logging(level, shared, renderer)


def _route_standard_logging(
    level: str, shared: list[structlog.typing.Processor], renderer: structlog.typing.Processor
) -> None:
    handler = _StdoutHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            # The record's message with its arguments filled in becomes `event`; the
            # record's extra attributes are left out.
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    # Called again (each worker process, each app a test makes): one handler, the latest.
    for old in [existing for existing in root.handlers if isinstance(existing, _StdoutHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(logging.WARNING, logging.getLevelNamesMapping()[level]))
    for name in READ_LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(level)
    # uvicorn's own configuration (when something ran it with its defaults) gives its
    # loggers levels and handlers of their own and stops them at themselves: undone, so
    # that their records reach the one handler above at the level set here.
    for name in list(logging.root.manager.loggerDict):
        if name.split(".")[0] not in READ_LIBRARY_LOGGERS:
            continue
        library = logging.getLogger(name)
        if name not in READ_LIBRARY_LOGGERS:
            library.setLevel(logging.NOTSET)
        library.handlers.clear()
        library.propagate = True
        library.disabled = False
    # Never uvicorn's access log: its lines carry query strings, which can hold names
    # (our own `request` line says method, path, status and time).
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    access.disabled = True

"""Library log records (plain `logging`: uvicorn, pgqueuer) come out as our own lines do:
JSON lines with HABEAS_LOG_JSON, on stdout, with their level, logger and traceback; other
libraries' chatter below WARNING (an HTTP client's request lines, SQL) stays out.
`habeas serve` and `habeas worker` for real: tests/ops/test_metrics.py (several workers,
uvicorn's own lines) and tests/jobs/test_worker.py (every line of a worker is JSON)."""

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from app.core.logging import configure_logging


@pytest.fixture
def json_logs() -> Iterator[None]:
    configure_logging("INFO", as_json=True)
    yield
    # As the rest of the suite's apps configure it (tests/conftest.py, settings_for).
    configure_logging("WARNING", as_json=False)


def json_lines(output: str) -> list[dict[str, object]]:
    lines = [line for line in output.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]


def test_a_library_record_is_a_json_line_with_its_traceback(
    json_logs: None, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        raise RuntimeError("the export directory is not writable")
    except RuntimeError as error:
        # What pgqueuer logs when a job raises (pgqueuer/core/qm.py, log_failure).
        logging.getLogger("pgqueuer").exception(
            "Exception while processing entrypoint/job-id: %s/%s",
            "audit_integrity",
            42,
            exc_info=error,
        )
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 4711)
    structlog.get_logger("app").info("ours", answer=1)

    pgqueuer, uvicorn, ours = json_lines(capsys.readouterr().out)

    assert pgqueuer["event"] == "Exception while processing entrypoint/job-id: audit_integrity/42"
    assert pgqueuer["level"] == "error" and pgqueuer["logger"] == "pgqueuer"
    assert "RuntimeError: the export directory is not writable" in str(pgqueuer["exception"])
    assert str(pgqueuer["timestamp"]).endswith("Z")
    assert uvicorn["event"] == "Started server process [4711]"
    assert uvicorn["level"] == "info" and uvicorn["logger"] == "uvicorn.error"
    # uvicorn's extra attributes (its coloured copy of the message) stay out.
    assert "color_message" not in uvicorn
    assert ours["event"] == "ours" and ours["answer"] == 1


def test_other_libraries_below_warning_and_repeated_configuration_add_nothing(
    json_logs: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", as_json=True)  # each app a process makes configures again
    logging.getLogger("httpx").info('HTTP Request: GET https://idp.example/?login_hint=x "200"')
    logging.getLogger("sqlalchemy.engine.Engine").info("INSERT INTO person ... ('Labanovich')")
    logging.getLogger("pgqueuer").debug("below the configured level")
    logging.getLogger("asyncpg").warning("a warning from a library")

    (line,) = json_lines(capsys.readouterr().out)

    assert line["event"] == "a warning from a library" and line["level"] == "warning"


def test_without_json_logs_library_records_are_readable_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", as_json=False)
    try:
        logging.getLogger("pgqueuer").warning("Shutdown flush failed, %d items remaining", 2)
    finally:
        configure_logging("WARNING", as_json=False)
    output = capsys.readouterr().out
    assert "Shutdown flush failed, 2 items remaining" in output
    assert not output.lstrip().startswith("{")


def test_uvicorns_access_log_never_comes_out(
    json_logs: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its lines carry query strings (`?q=` holds names); our own `request` line does not,
    and nothing that ran uvicorn before (its own logging set-up) turns it back on."""
    import uvicorn

    uvicorn.Config(app="app.main:create_app", access_log=True)  # configures uvicorn's loggers
    configure_logging("INFO", as_json=True)
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "GET", "/api/v1/persons?q=Labanovich", "1.1", 200
    )
    assert "Labanovich" not in capsys.readouterr().out

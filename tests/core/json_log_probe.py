"""Run by tests/core/test_database_error_logs.py in a process of its own, so that the JSON
logging is configured as `habeas serve` configures it (structlog's configuration is
per process): a coordinator creates a person whose insert the database refuses, and the
answer's status and X-Request-ID go to stderr as one JSON line; the logs go to stdout.

    python -m tests.core.json_log_probe DATABASE_URL KEYS_DIR NOTES
"""

import asyncio
import json
import sys
from pathlib import Path

from app.access.principal import Role
from app.core.config import Environment, Settings
from app.main import create_app
from tests.auth import api_client, create_account, log_in
from tests.factories import API, person_body


async def probe(database_url: str, keys_dir: Path, notes: str) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        env=Environment.test,
        data_dir=keys_dir,
        log_json=True,
        log_level="INFO",
        password_time_cost=1,
        password_memory_kib=64,
        housekeeping_interval_seconds=0,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app), api_client(app) as client:
        account = await create_account(app, Role.coordinator)
        tokens = await log_in(client, account)
        client.headers["Authorization"] = f"Bearer {tokens['access_token']}"
        response = await client.post(f"{API}/persons", json=person_body(notes=notes))
    answer = {
        "status": response.status_code,
        "request_id": response.headers.get("x-request-id"),
        "retry_after": response.headers.get("retry-after"),
        "type": response.json().get("type"),
    }
    print(json.dumps(answer), file=sys.stderr)  # noqa: T201


if __name__ == "__main__":
    asyncio.run(probe(sys.argv[1], Path(sys.argv[2]), sys.argv[3]))

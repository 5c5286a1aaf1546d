"""Fixtures of the jobs tests: an empty pgqueuer queue (its tables have no models, so the
suite's table cleaning leaves them alone) and a directory for exported checkpoints."""

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from app.jobs.queue import QUEUE_TABLES


@pytest.fixture
async def empty_queue(db: asyncpg.Connection) -> AsyncIterator[None]:
    await db.execute(f"TRUNCATE {', '.join(sorted(QUEUE_TABLES))}")
    yield
    await db.execute(f"TRUNCATE {', '.join(sorted(QUEUE_TABLES))}")


@pytest.fixture
def export_dir(tmp_path: Path) -> Path:
    return tmp_path / "checkpoints"

"""The synthetic register and timelines: fictional, within each person's time in custody,
and as the API reads them."""

import asyncpg
import httpx
import pytest

from app.core.db import metadata
from app.seed import facilities
from app.seed.generator import AS_OF, generate
from app.seed.loader import load
from tests.custody.custody import listed_ids, timeline
from tests.factories import API


def test_the_synthetic_set_is_fictional_complete_and_deterministic() -> None:
    data = generate(400, 3)
    custody = facilities.generate(data, 3)
    assert custody == facilities.generate(generate(400, 3), 3)
    for table, columns, _ in custody.tables():
        assert list(columns) == [c.name for c in metadata.tables[table].c], table
    assert all(
        "synthetic" in latin.lower() and "синтетическ" in cyrillic
        for _, _, _, latin, cyrillic in facilities.FACILITIES
    )
    kinds = {row[2] for row in custody.events}
    assert {"transfer", "expected_release", "incommunicado", "punishment_cell"} <= kinds
    assert all(row[3] <= AS_OF for row in custody.events)
    starts = {row[0]: row[3] for row in custody.events}
    assert all(starts[end[1]] <= end[3] <= AS_OF for end in custody.ends)


@pytest.mark.usefixtures("clean_tables")
async def test_seeded_timelines_read_and_filter_through_the_api(
    database_url: str, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    summary = await load(database_url, persons=150, seed=5)
    assert f"{len(facilities.FACILITIES)} facilities" in summary
    facility = await db.fetchrow(
        "SELECT facility_id, case_file_id FROM custody_event WHERE kind = 'transfer' "
        "AND confidence = 'confirmed' ORDER BY effective_date DESC LIMIT 1"
    )
    read = await client.get(f"{API}/facilities/{facility['facility_id']}")
    assert read.status_code == 200, read.text
    case = {"id": str(facility["case_file_id"])}
    assert (await timeline(client, case))["current_facility_id"] == str(facility["facility_id"])
    listed = await listed_ids(client, facility_id=str(facility["facility_id"]), limit=200)
    assert case["id"] in listed

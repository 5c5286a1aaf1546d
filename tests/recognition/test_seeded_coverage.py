"""The synthetic data set covers case files as the API does: re-arrests the decisions did
not cover stay not_assessed, so benchmarks and reports meet the real mix."""

import asyncpg
import pytest

from app.seed.loader import load


@pytest.mark.usefixtures("clean_tables")
async def test_seeded_case_files_hold_their_latest_covering_decision(
    database_url: str, db: asyncpg.Connection
) -> None:
    await load(database_url, persons=400, seed=5)
    mismatched = await db.fetchval(
        """
        SELECT count(*) FROM case_file c
        LEFT JOIN LATERAL (
            SELECT d.status FROM recognition_coverage v
            JOIN recognition_decision d ON d.id = v.decision_id
            WHERE v.case_file_id = c.id ORDER BY d.version DESC LIMIT 1
        ) latest ON true
        WHERE c.recognition_status <> coalesce(latest.status, 'not_assessed')
        """
    )
    assert mismatched == 0
    # Recognised people arrested again, whose new case file no decision covers.
    rearrested = await db.fetchval(
        "SELECT count(*) FROM case_file c JOIN person p ON p.id = c.person_id"
        " WHERE p.recognition_status = 'political_prisoner'"
        " AND c.recognition_status = 'not_assessed'"
    )
    assert rearrested > 0
    assert await db.fetchval(
        "SELECT count(*) FROM case_file WHERE recognition_status = 'political_prisoner'"
    )
    # A decision covers only case files of its own person.
    assert not await db.fetchval(
        "SELECT count(*) FROM recognition_coverage v"
        " JOIN recognition_decision d ON d.id = v.decision_id"
        " JOIN case_file c ON c.id = v.case_file_id WHERE c.person_id <> d.person_id"
    )
    assert not await db.fetchval(
        "SELECT count(*) FROM recognition_decision"
        " WHERE status = 'withdrawn' AND (exclusion_code IS NULL OR rationale IS NULL)"
    )

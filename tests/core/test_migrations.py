"""The schema is made only by migrations, and the migrations match the models."""

import asyncio
import json
import os
import uuid

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine

import app.tables  # noqa: F401
from app.core import embedded
from app.core.config import get_settings
from app.core.crypto import data_key_ring
from app.core.db import async_url, metadata
from app.core.migrations import alembic_config, downgrade, head_revision, upgrade
from app.idempotency.service import SEALED_AT
from app.jobs.queue import QUEUE_TABLES


@pytest.fixture
async def scratch_url(admin_url: str) -> object:
    name = "habeas_test_migrations"
    await embedded.drop_database(admin_url, name)
    await embedded.ensure_database(admin_url, name)
    yield embedded.with_database(admin_url, name)
    await embedded.drop_database(admin_url, name)


async def test_upgrade_downgrade_and_upgrade_again(scratch_url: str) -> None:
    await asyncio.to_thread(upgrade, scratch_url)
    await asyncio.to_thread(downgrade, scratch_url, "base")
    connection = await asyncpg.connect(**embedded.asyncpg_connect_kwargs(scratch_url))
    try:
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'alembic_version'"
        )
        assert tables == []
    finally:
        await connection.close()
    await asyncio.to_thread(upgrade, scratch_url)


def _modelled(name: str | None, type_: str, parent_names: object) -> bool:
    """pgqueuer's tables have no models; tests/jobs/test_queue_schema.py checks them
    against pgqueuer's own declaration (as migrations/env.py leaves them out)."""
    return not (type_ == "table" and name in QUEUE_TABLES)


async def test_models_and_migrations_agree(database_url: str) -> None:
    engine = create_async_engine(async_url(database_url))
    options = {"include_name": _modelled}
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts=options), metadata
                )
            )
            revision = await connection.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    finally:
        await engine.dispose()
    assert differences == []
    assert revision == head_revision()


async def test_sealed_values_survive_a_downgrade_and_an_upgrade(scratch_url: str) -> None:
    """Migrations 0003 and 0005 seal and open existing values with the data key ring: a
    database with such values must go down past them and up again with nothing lost."""
    ring = data_key_ring(get_settings())
    source_id, record_id = uuid.uuid4(), uuid.uuid4()
    witness, response = "A neighbour who saw the arrest", {"id": str(source_id), "ok": True}
    await asyncio.to_thread(upgrade, scratch_url)
    connection = await asyncpg.connect(**embedded.asyncpg_connect_kwargs(scratch_url))
    try:
        await connection.execute(
            "INSERT INTO source (id, publisher, title, reliability, credibility, is_public,"
            " witness, version, created_at) VALUES ($1, 'Local monitor', 'Arrest report', 'B',"
            " 2, false, $2, 1, now())",
            source_id,
            ring.seal("source", "witness", source_id, plaintext=witness.encode()),
        )
        await connection.execute(
            "INSERT INTO idempotency_record (id, scope, key, fingerprint, status_code,"
            " response_sealed, created_at) VALUES ($1, 'sources', 'k-1', 'f', 201, $2, now())",
            record_id,
            ring.seal_json(*SEALED_AT, record_id, value=response),
        )
        await asyncio.to_thread(downgrade, scratch_url, "0002")
        assert await connection.fetchval("SELECT witness FROM source") == witness
        await asyncio.to_thread(upgrade, scratch_url)
        sealed_witness = await connection.fetchval("SELECT witness FROM source")
        sealed_response = await connection.fetchval(
            "SELECT response_sealed FROM idempotency_record"
        )
    finally:
        await connection.close()
    assert ring.open("source", "witness", source_id, envelope=sealed_witness).decode() == witness
    assert ring.open_json(*SEALED_AT, record_id, envelope=sealed_response) == response


async def test_charges_stored_before_charge_ids_get_one_each_and_keep_the_rest(
    admin_url: str,
) -> None:
    """Migration 0012 gives every stored charge a charge_id (a verdict names the charges it
    decided), changes nothing else of them nor the case file's version, and its downgrade
    takes the ids off again."""
    before = ScriptDirectory.from_config(alembic_config("postgresql://unused")).get_revision("0012")
    assert before is not None and isinstance(before.down_revision, str)
    name = f"habeas_test_charge_ids_{os.getpid()}"
    await embedded.drop_database(admin_url, name)
    await embedded.ensure_database(admin_url, name)
    url = embedded.with_database(admin_url, name)
    old_shape = [
        {"code": "BY-CC", "article": "342", "part": "1", "charged_on": "2021-08"},
        {"code": "BY-CC", "article": "130", "part": None, "description": "incitement"},
    ]
    person_id, case_id, empty_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    try:
        await asyncio.to_thread(upgrade, url, before.down_revision)
        connection = await asyncpg.connect(**embedded.asyncpg_connect_kwargs(url))
        try:
            await connection.execute(
                "INSERT INTO person (id, gender, publish_consent, recognition_status, version,"
                " created_at, updated_at) VALUES ($1, 'female', true, 'not_assessed', 1, now(),"
                " now())",
                person_id,
            )
            for case, charges in ((case_id, old_shape), (empty_id, [])):
                await connection.execute(
                    "INSERT INTO case_file (id, person_id, reference, jurisdiction,"
                    " deprivation_type, confidentiality, status, status_since,"
                    " status_since_precision, status_confidence, detained_on,"
                    " detained_precision, in_custody, version, created_at, updated_at,"
                    " charges) VALUES ($1, $2, $3, 'BY', 'pretrial_custody', 'normal',"
                    " 'detained', '2021-08-10', 'day', 'confirmed', '2021-08-10', 'day', true,"
                    " 4, now(), now(), $4::jsonb)",
                    case,
                    person_id,
                    f"HB-2021-{case.hex[:6]}",
                    json.dumps(charges),
                )
            await asyncio.to_thread(upgrade, url)
            migrated = json.loads(
                await connection.fetchval("SELECT charges FROM case_file WHERE id = $1", case_id)
            )
            ids = [uuid.UUID(charge.pop("charge_id")) for charge in migrated]
            assert migrated == old_shape
            assert len(set(ids)) == 2 and all(i.version == 7 for i in ids)
            assert (
                await connection.fetchval("SELECT charges FROM case_file WHERE id = $1", empty_id)
                == "[]"
            )
            assert await connection.fetchval("SELECT version FROM case_file LIMIT 1") == 4

            await asyncio.to_thread(downgrade, url, before.down_revision)
            restored = await connection.fetchval(
                "SELECT charges FROM case_file WHERE id = $1", case_id
            )
            assert json.loads(restored) == old_shape
        finally:
            await connection.close()
    finally:
        await embedded.drop_database(admin_url, name)

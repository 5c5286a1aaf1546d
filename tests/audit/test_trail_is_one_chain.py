"""Every kind of event (writes, reads, denials, searches) links into the one chain."""

import asyncpg
import httpx

from app.access.principal import Role
from tests.audit.trail import (
    search_events,
)
from tests.auth import (
    SignInAs,
)
from tests.factories import (
    API,
    create_case,
)


async def test_the_chain_still_verifies_after_all_kinds_of_events(
    sign_in_as: SignInAs, anonymous: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """Writes, reads, denials and searches all link into one chain that verifies, with
    contiguous sequence numbers."""
    coordinator = (await sign_in_as(Role.coordinator)).client
    caseworker = (await sign_in_as(Role.caseworker)).client
    auditor = (await sign_in_as(Role.auditor)).client
    case = await create_case(coordinator)
    await caseworker.get(f"{API}/cases/{case['id']}")
    await anonymous.get(f"{API}/cases/{case['id']}")
    await search_events(auditor)
    seqs = [row["seq"] for row in await db.fetch("SELECT seq FROM audit_event ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1))
    outcomes = {row["outcome"] for row in await db.fetch("SELECT outcome FROM audit_event")}
    assert outcomes == {"success", "denied"}
    verified = await auditor.get(f"{API}/audit/verify")
    assert verified.status_code == 200, verified.text
    assert verified.json()["ok"] is True
    assert verified.json()["events_checked"] == len(seqs)

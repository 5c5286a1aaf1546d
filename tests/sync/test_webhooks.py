"""Partners' webhooks (/sync/webhooks): a partner's endpoint is told, signed as the
Standard Webhooks specification says, that its feed has something new it may read, never
of what it may not; a write queues the notifying job in its own transaction; a failing
endpoint is retried with backoff, then disabled and shown to admins."""

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from aiohttp import web
from fastapi import FastAPI

from app.access.principal import Role
from app.core.clock import utcnow
from app.jobs.housekeeping import purge_expired
from app.jobs.worker import Jobs
from app.main import create_app
from app.sync import webhooks
from tests.conftest import settings_for
from tests.factories import API, create_case, create_person, transition
from tests.sync.feed import Copy, feed_partner, follow

HOOKS = f"{API}/sync/webhooks"
SHARES_BY = {"jurisdiction": "BY", "recognised_only": False, "max_tier": "public"}


@dataclass
class Receiver:
    """A partner's endpoint: what it received, and how many requests to fail first."""

    url: str = ""
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    failing: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.failing:
            self.failing -= 1
            return web.Response(status=500)
        self.received.append(({k.lower(): v for k, v in request.headers.items()}, body))
        return web.Response(status=204)


@asynccontextmanager
async def receiving() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    application = web.Application()
    application.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(application)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    receiver.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield receiver
    finally:
        await runner.cleanup()


@pytest.fixture(autouse=True)
async def no_webhook_jobs(db: asyncpg.Connection) -> AsyncIterator[None]:
    """The queue holds no run of the webhooks job before or after each test (pgqueuer's
    tables are not emptied between tests)."""
    forget = "DELETE FROM pgqueuer WHERE entrypoint LIKE 'sync_webhooks%'"
    await db.execute(forget)
    yield
    await db.execute(forget)


@pytest.fixture
async def private_app(database_url: str, app: FastAPI) -> AsyncIterator[FastAPI]:
    """The API where endpoints on this machine may be registered (as a development setup
    would allow), with a low limit of failures."""
    application = create_app(
        settings_for(database_url, webhook_allow_private=True, webhook_max_failures=3)
    )
    async with application.router.lifespan_context(application):
        yield application


def jobs_of(application: FastAPI) -> Jobs:
    return Jobs(
        application.state.session_factory,
        application.state.settings,
        application.state.security.audit_keys,
        application.state.security.data_keys,
    )


def verified(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The Standard Webhooks check, written from the specification: the base64 HMAC-SHA256
    of `{webhook-id}.{webhook-timestamp}.{body}` under the secret's bytes is one of the
    signatures."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(part == f"v1,{expected}" for part in headers["webhook-signature"].split(" "))


async def queued(db: asyncpg.Connection) -> int:
    found: int = await db.fetchval(
        "SELECT count(*) FROM pgqueuer WHERE entrypoint = 'sync_webhooks' AND status = 'queued'"
    )
    return found


async def test_a_partner_is_told_what_it_may_read_signed_and_nothing_else(
    private_app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    jobs = jobs_of(private_app)
    async with receiving() as receiver:
        partner, _ = await feed_partner(private_app, SHARES_BY)
        async with aclosing(partner):
            registered = await partner.post(HOOKS, json={"url": receiver.url})
            assert registered.status_code == 201, registered.text
            secret = registered.json()["secret"]
            assert secret.startswith("whsec_")
            # Shown once: the list never shows it.
            listed = (await partner.get(HOOKS)).json()["items"]
            assert [hook["url"] for hook in listed] == [receiver.url]
            assert "secret" not in listed[0]

            # A change the partner may not read (another jurisdiction) queues the job in
            # its transaction, and tells the partner nothing.
            await db.execute("DELETE FROM pgqueuer WHERE entrypoint = 'sync_webhooks'")
            other = await create_case(
                client, (await create_person(client))["id"], jurisdiction="LT"
            )
            assert await queued(db) == 1
            await jobs.notify_partners()
            assert receiver.received == []

            # A refused write (an invalid transition) commits nothing, and queues nothing.
            await db.execute("DELETE FROM pgqueuer WHERE entrypoint = 'sync_webhooks'")
            refused = await transition(client, other, "detained", "2021-09-01")
            assert refused.status_code in (409, 422), refused.text
            assert await queued(db) == 0

            # A case file the agreement shares: one signed message with the position.
            person = await create_person(client)
            await create_case(client, person["id"], jurisdiction="BY")
            await jobs.notify_partners()
            (headers, body) = receiver.received[-1]
            assert verified(secret, headers, body)
            message = json.loads(body)
            head = await db.fetchval("SELECT seq FROM audit_head")
            assert message["type"] == "sync.changes" and message["data"]["position"] == head
            assert (
                headers["webhook-id"]
                and abs(int(headers["webhook-timestamp"]) - utcnow().timestamp()) < 60
            )
            # The message says where, not what: the partner pulls.
            assert person["id"] not in body.decode()
            copy = Copy()
            await follow(partner, copy)
            assert ("person", person["id"]) in copy.records

            # Nothing new: nothing sent.
            await jobs.notify_partners()
            assert len(receiver.received) == 1
            deliveries = await db.fetch("SELECT outcome, position FROM sync_webhook_delivery")
            assert [(d["outcome"], d["position"]) for d in deliveries] == [("delivered", head)]


async def test_a_failing_endpoint_is_retried_with_backoff_then_disabled_and_reported(
    private_app: FastAPI,
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    sign_in_as: Any,
) -> None:
    jobs = jobs_of(private_app)
    async with receiving() as receiver:
        receiver.failing = 100
        partner, row = await feed_partner(private_app, SHARES_BY)
        async with aclosing(partner):
            assert (await partner.post(HOOKS, json={"url": receiver.url})).status_code == 201
            await create_case(client, (await create_person(client))["id"], jurisdiction="BY")
            before = utcnow()
            await jobs.notify_partners()
            hook = await db.fetchrow("SELECT * FROM sync_webhook WHERE partner_id = $1", row.id)
            assert hook["failures"] == 1 and hook["disabled_at"] is None
            # Full jitter within the first step of the backoff.
            wait = hook["next_attempt_at"] - before
            assert timedelta(0) < wait <= webhooks.BACKOFF_BASE + timedelta(seconds=1)
            retry = await db.fetchrow(
                "SELECT execute_after FROM pgqueuer WHERE entrypoint = 'sync_webhooks_retry'"
            )
            assert retry is not None and retry["execute_after"] > before

            # Not due yet: no attempt.
            await jobs.notify_partners()
            assert await db.fetchval("SELECT count(*) FROM sync_webhook_delivery") == 1
            # The second attempt runs as the retry job does: its own row taken (picked),
            # which must not stop it queueing the next retry (pgqueuer's dedupe would).
            await db.execute(
                "UPDATE pgqueuer SET status = 'picked' WHERE entrypoint = 'sync_webhooks_retry'"
            )
            await db.execute(
                "UPDATE sync_webhook SET next_attempt_at = now() WHERE partner_id = $1", row.id
            )
            await jobs.notify_partners()
            due = await db.fetchval(
                "SELECT next_attempt_at FROM sync_webhook WHERE partner_id = $1", row.id
            )
            waiting = await db.fetchval(
                "SELECT min(execute_after) FROM pgqueuer"
                " WHERE entrypoint = 'sync_webhooks_retry' AND status = 'queued'"
            )
            assert waiting is not None and waiting <= due + timedelta(seconds=1)
            await db.execute(
                "UPDATE sync_webhook SET next_attempt_at = now() WHERE partner_id = $1", row.id
            )
            await jobs.notify_partners()
            hook = await db.fetchrow("SELECT * FROM sync_webhook WHERE partner_id = $1", row.id)
            assert hook["failures"] == 3 and hook["disabled_at"] is not None
            assert "HTTP 500" in hook["disabled_reason"]
            outcomes = await db.fetch(
                "SELECT outcome, attempt FROM sync_webhook_delivery ORDER BY attempt"
            )
            assert [(o["outcome"], o["attempt"]) for o in outcomes] == [
                ("failed", 1),
                ("failed", 2),
                ("disabled", 3),
            ]
            disabled = await db.fetchval(
                "SELECT count(*) FROM audit_event WHERE action = 'sync.webhook_disable'"
                " AND resource_id = $1 AND actor_type = 'system'",
                row.id,
            )
            assert disabled == 1
            # Admins see it, and why; the partner sees its own.
            admin = (await sign_in_as(Role.admin)).client
            shown = {h["id"]: h for h in (await admin.get(HOOKS)).json()["items"]}
            assert shown[str(hook["id"])]["disabled_reason"] == hook["disabled_reason"]
            assert (await partner.get(HOOKS)).json()["items"][0]["disabled_at"] is not None

            # A disabled endpoint is told nothing more.
            receiver.failing = 0
            await create_case(client, (await create_person(client))["id"], jurisdiction="BY")
            await jobs.notify_partners()
            assert receiver.received == []


async def test_after_a_rotation_both_secrets_sign_for_a_while(
    private_app: FastAPI, client: httpx.AsyncClient
) -> None:
    jobs = jobs_of(private_app)
    async with receiving() as receiver:
        partner, _ = await feed_partner(private_app, SHARES_BY)
        async with aclosing(partner):
            first = (await partner.post(HOOKS, json={"url": receiver.url})).json()
            rotated = await partner.post(f"{HOOKS}/{first['id']}/secret")
            assert rotated.status_code == 201, rotated.text
            second = rotated.json()["secret"]
            assert second != first["secret"]
            await create_case(client, (await create_person(client))["id"], jurisdiction="BY")
            await jobs.notify_partners()
            (headers, body) = receiver.received[-1]
            assert len(headers["webhook-signature"].split(" ")) == 2
            assert verified(first["secret"], headers, body) and verified(second, headers, body)
            assert not verified(webhooks.new_secret()[0], headers, body)


async def test_who_may_register_and_where(
    app: FastAPI, private_app: FastAPI, sign_in_as: Any
) -> None:
    coordinator = (await sign_in_as(Role.coordinator)).client
    refused = await coordinator.post(HOOKS, json={"url": "https://partner.example/hook"})
    assert refused.status_code == 403
    assert (await coordinator.get(HOOKS)).status_code == 403
    writer_only, _ = await feed_partner(app, SHARES_BY, scopes=["sync:write"])
    async with aclosing(writer_only):
        no_feed = await writer_only.post(HOOKS, json={"url": "https://partner.example/hook"})
        assert no_feed.status_code == 403
    partner, _ = await feed_partner(app, SHARES_BY)
    other, _ = await feed_partner(app, SHARES_BY)
    async with aclosing(partner), aclosing(other):
        # https only, with a host and no credentials, where private addresses are not
        # allowed (the default).
        for url in (
            "http://partner.example/hook",
            "https://user:pw@partner.example/hook",
            "ftp://partner.example/hook",
            "https:///hook",
            "https://partner.example:99999/hook",
            "https://partner.example:8080/hook",
            "https://a..b/hook",
            "https://127.0.0.1/hook",
            "https://[::ffff:10.0.0.1]/hook",
            "https://[64:ff9b::a00:1]/hook",
        ):
            response = await partner.post(HOOKS, json={"url": url})
            assert response.status_code == 422, (url, response.text)
        made = await partner.post(HOOKS, json={"url": "https://partner.example/hook"})
        assert made.status_code == 201, made.text
        # Another partner's endpoint does not exist for it.
        hook_id = made.json()["id"]
        assert (await other.delete(f"{HOOKS}/{hook_id}")).status_code == 404
        assert (await other.post(f"{HOOKS}/{hook_id}/secret")).status_code == 404
        assert (await other.get(HOOKS)).json()["items"] == []
        assert (await partner.delete(f"{HOOKS}/{hook_id}")).status_code == 204
        # A bounded number of endpoints a partner.
        for _ in range(webhooks.MAX_ENDPOINTS):
            assert (
                await other.post(HOOKS, json={"url": "https://partner.example/h"})
            ).status_code == 201
        one_more = await other.post(HOOKS, json={"url": "https://partner.example/h"})
        assert one_more.status_code == 409, one_more.text
    # An endpoint that resolves to this machine is never called where private addresses
    # are not allowed.
    settings = app.state.settings
    refusal = await webhooks._refused_address("https://127.0.0.1/hook", settings)
    assert refusal is not None and "not public" in refusal
    assert (
        await webhooks._refused_address("https://127.0.0.1/hook", private_app.state.settings)
        is None
    )
    # A name that resolves to this machine, and addresses of IPv4 networks in IPv6 form.
    for inside in ("https://localhost/hook", "https://[::ffff:127.0.0.1]/hook"):
        assert await webhooks._refused_address(inside, settings) is not None, inside


def test_signatures_follow_the_standard_webhooks_test_vector() -> None:
    """The specification's published example: this secret, id, timestamp and body sign
    to this value."""
    secret = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    signed = webhooks.signature(
        secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
    )
    assert signed == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


async def test_what_the_partner_may_not_read_is_no_news(
    private_app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """A message exactly when the feed has something for the partner: none for a change to
    another case file of a person it shares (whose position moves with it), none for a
    record it was told is gone; a message would tell it that something it may not see
    happened."""
    jobs = jobs_of(private_app)
    person = await create_person(client)
    shared = await create_case(client, person["id"], jurisdiction="BY")
    elsewhere = await create_case(client, person["id"], jurisdiction="LT")
    async with receiving() as receiver:
        partner, _ = await feed_partner(private_app, SHARES_BY)
        async with aclosing(partner):
            copy = Copy()
            await follow(partner, copy)
            assert (await partner.post(HOOKS, json={"url": receiver.url})).status_code == 201
            # Another case file of the person: its position moves the person's too.
            moved = await transition(client, elsewhere, "charged", "2021-09-01")
            assert moved.status_code == 201, moved.text
            await jobs.notify_partners()
            assert receiver.received == []
            assert await follow(partner, copy) == []

            # What it may read is news; it pulls it.
            charged = await transition(client, shared, "charged", "2021-09-01")
            assert charged.status_code == 201, charged.text
            await jobs.notify_partners()
            assert len(receiver.received) == 1
            assert [i["id"] for i in await follow(partner, copy)] == [shared["id"]]

            # The case file leaves the agreement (another jurisdiction): news (a tombstone).
            current = (await client.get(f"{API}/cases/{shared['id']}")).json()
            left = await client.patch(
                f"{API}/cases/{shared['id']}",
                json={"jurisdiction": "LT"},
                headers={"If-Match": f'"{current["version"]}"'},
            )
            assert left.status_code == 200, left.text
            await jobs.notify_partners()
            assert len(receiver.received) == 2
            changes = [i["change"] for i in await follow(partner, copy) if i["kind"] == "case"]
            assert changes == ["tombstone"]
            # What happens to it afterwards is no news.
            sentenced = await transition(
                client, {**shared, "version": left.json()["version"]}, "sentenced", "2022-01-10"
            )
            assert sentenced.status_code == 201, sentenced.text
            await jobs.notify_partners()
            assert len(receiver.received) == 2
            assert await follow(partner, copy) == []


async def test_one_endpoint_in_trouble_does_not_hold_up_the_others(
    private_app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    jobs = jobs_of(private_app)
    async with receiving() as healthy, receiving() as broken:
        broken.failing = 100
        first, _ = await feed_partner(private_app, SHARES_BY)
        second, _ = await feed_partner(private_app, SHARES_BY)
        async with aclosing(first), aclosing(second):
            assert (await first.post(HOOKS, json={"url": broken.url})).status_code == 201
            # An endpoint that is not there at all.
            gone = broken.url.replace("/hook", "/nowhere").rsplit(":", 1)[0] + ":9/hook"
            assert (await first.post(HOOKS, json={"url": gone})).status_code == 201
            assert (await second.post(HOOKS, json={"url": healthy.url})).status_code == 201
            await create_case(client, (await create_person(client))["id"], jurisdiction="BY")
            await jobs.notify_partners()
            assert len(healthy.received) == 1
            outcomes = sorted(
                (row["outcome"], row["error"])
                for row in await db.fetch("SELECT outcome, error FROM sync_webhook_delivery")
            )
            assert outcomes == [
                ("delivered", None),
                ("failed", "HTTP 500"),
                ("failed", "could not connect"),
            ]


async def test_the_delivery_log_is_kept_for_its_days_then_purged(
    private_app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """What an endpoint was sent and what came of it is kept to find out why an endpoint
    fails, not for ever: the purge forgets attempts older than the retention, and nothing
    else (the endpoint keeps where it was told up to)."""
    jobs = jobs_of(private_app)
    settings = private_app.state.settings
    async with receiving() as receiver:
        partner, row = await feed_partner(private_app, SHARES_BY)
        async with aclosing(partner):
            assert (await partner.post(HOOKS, json={"url": receiver.url})).status_code == 201
            for _ in range(2):
                await create_case(client, (await create_person(client))["id"], jurisdiction="BY")
                await jobs.notify_partners()
    attempts = await db.fetch("SELECT id FROM sync_webhook_delivery ORDER BY attempted_at")
    assert len(attempts) == 2
    old, fresh = attempts
    retention = timedelta(days=settings.webhook_delivery_retention_days)
    await db.execute(
        "UPDATE sync_webhook_delivery SET attempted_at = now() - $1::interval WHERE id = $2",
        retention + timedelta(minutes=1),
        old["id"],
    )
    told = await db.fetchval("SELECT notified_seq FROM sync_webhook WHERE partner_id = $1", row.id)

    purged = await purge_expired(private_app.state.session_factory, settings)

    assert purged["webhook_deliveries"] == 1
    assert [r["id"] for r in await db.fetch("SELECT id FROM sync_webhook_delivery")] == [
        fresh["id"]
    ]
    assert told > 0
    assert (
        await db.fetchval("SELECT notified_seq FROM sync_webhook WHERE partner_id = $1", row.id)
        == told
    )
    # Again: nothing more is old enough.
    assert (await purge_expired(private_app.state.session_factory, settings))[
        "webhook_deliveries"
    ] == 0

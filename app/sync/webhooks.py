"""Partners' webhooks (docs/sync.md, "Webhooks"): an endpoint is told that the partner's
feed has something new, with the audit position, never the data (the partner pulls).

Every write that moves a feed position queues the job `sync_webhooks` in its own
transaction (the trigger `sync_webhooks_wake`, migration 0021), so a committed change is
never forgotten and a rolled-back one never announced. `habeas worker` runs the job: for
each enabled endpoint whose partner has anything new that it may read (or that it had
and lost), it sends one message signed as the Standard Webhooks specification says
(`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<HMAC-SHA256>`; after a
rotation the previous secret signs too, for a day). A failure is retried with exponential
backoff and full jitter (the job queued again for the earliest retry); after
`webhook_max_failures` failures in a row the endpoint is disabled, recorded in the audit
trail and logged at error level for the admins, who see it in `GET /sync/webhooks`.
"""

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import random
import secrets
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx
import orjson
import structlog
from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel import select as sqlmodel_select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.access.caller import Caller
from app.access.principal import Principal
from app.audit.journal import as_system, change, journal_of
from app.cases import service as cases_service
from app.core.clock import utcnow
from app.core.config import Settings
from app.core.crypto import AuditKeyRing, DataKeyRing
from app.core.db import commit
from app.core.errors import NotFound, UnprocessableInput
from app.core.ids import new_id
from app.identity.principals import partner_principal
from app.sync.models import SyncDelivered, SyncPosition, SyncWebhook, SyncWebhookDelivery

log = structlog.get_logger(__name__)

SECRET_PREFIX = "whsec_"  # noqa: S105 (the specification's prefix, not a secret)
SECRET_BYTES = 32
# After a rotation, the previous secret signs too for so long.
ROTATION_GRACE = timedelta(hours=24)
# Retries wait a random time up to base × 2^(failures − 1), at most the cap.
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=6)
SEALED = ("sync_webhook", "secret_sealed")
SEALED_PREVIOUS = ("sync_webhook", "previous_secret_sealed")
EVENT_TYPE = "sync.changes"


# Signing (the Standard Webhooks specification) -------------------------------------------


def new_secret() -> tuple[str, bytes]:
    """A secret as the partner receives it (`whsec_` and base64), and its bytes."""
    raw = secrets.token_bytes(SECRET_BYTES)
    return SECRET_PREFIX + base64.b64encode(raw).decode(), raw


def signature(secret: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """`v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` under the secret."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(secret, signed, hashlib.sha256).digest()).decode()


def signed_headers(
    signing: list[bytes], message_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            signature(secret, message_id, timestamp, body) for secret in signing
        ),
    }


# Registration ----------------------------------------------------------------------------


def checked_url(url: str, settings: Settings) -> str:
    """An endpoint's address: https (http only where private addresses are allowed), a
    host, no credentials in it."""
    parts = urlsplit(url)
    allowed = {"https", "http"} if settings.webhook_allow_private else {"https"}
    if parts.scheme not in allowed or not parts.hostname:
        raise UnprocessableInput("url must be an https:// address with a host.", fields=["url"])
    if parts.username or parts.password or parts.fragment:
        raise UnprocessableInput("url must not carry credentials or a fragment.", fields=["url"])
    return url


@dataclass(frozen=True)
class Registered:
    webhook: SyncWebhook
    secret: str


async def register(
    session: AsyncSession, caller: Caller, keys: DataKeyRing, settings: Settings, url: str
) -> Registered:
    partner_id = _partner_of(caller)
    shown, raw = new_secret()
    webhook_id = new_id()
    webhook = SyncWebhook(
        id=webhook_id,
        partner_id=partner_id,
        url=checked_url(url, settings),
        secret_sealed=_seal(keys, SEALED, webhook_id, raw),
        # Nothing before now is news to an endpoint registered now.
        notified_seq=await _head(session),
    )
    session.add(webhook)
    await session.flush()
    journal_of(session).changed(
        "sync.webhook_register",
        "partner",
        partner_id,
        changes=[change("sync_webhook", webhook_id, before=None, after={"url": webhook.url})],
    )
    return Registered(webhook, shown)


async def listed(session: AsyncSession, caller: Caller) -> list[SyncWebhook]:
    """A partner's own endpoints; an admin's view: every partner's."""
    query = sqlmodel_select(SyncWebhook).order_by(col(SyncWebhook.created_at), col(SyncWebhook.id))
    if caller.principal.is_partner:
        query = query.where(col(SyncWebhook.partner_id) == caller.principal.id)
    return list(await session.exec(query))


async def _own(session: AsyncSession, caller: Caller, webhook_id: uuid.UUID) -> SyncWebhook:
    found = await session.get(SyncWebhook, webhook_id, with_for_update=True)
    if found is None or found.partner_id != caller.principal.id:
        raise NotFound("No such webhook.")
    return found


async def remove(session: AsyncSession, caller: Caller, webhook_id: uuid.UUID) -> None:
    """Disable an endpoint for good (its deliveries stay on record)."""
    webhook = await _own(session, caller, webhook_id)
    webhook.disabled_at = webhook.disabled_at or utcnow()
    webhook.disabled_reason = webhook.disabled_reason or "removed by the partner"
    session.add(webhook)
    await session.flush()
    journal_of(session).changed(
        "sync.webhook_remove",
        "partner",
        webhook.partner_id,
        changes=[change("sync_webhook", webhook.id, before={"url": webhook.url}, after=None)],
    )


async def rotate(
    session: AsyncSession, caller: Caller, keys: DataKeyRing, webhook_id: uuid.UUID
) -> Registered:
    """A new secret; the previous one signs too for ROTATION_GRACE, so that the partner
    can switch without losing a message."""
    webhook = await _own(session, caller, webhook_id)
    if webhook.disabled_at is not None:
        raise NotFound("No such webhook.")
    shown, raw = new_secret()
    webhook.previous_secret_sealed = _seal(
        keys, SEALED_PREVIOUS, webhook.id, _open(keys, SEALED, webhook.id, webhook.secret_sealed)
    )
    webhook.previous_secret_until = utcnow() + ROTATION_GRACE
    webhook.secret_sealed = _seal(keys, SEALED, webhook.id, raw)
    session.add(webhook)
    await session.flush()
    journal_of(session).changed(
        "sync.webhook_rotate",
        "partner",
        webhook.partner_id,
        changes=[
            change("sync_webhook", webhook.id, before={"secret": "old"}, after={"secret": "new"})
        ],
    )
    return Registered(webhook, shown)


def _partner_of(caller: Caller) -> uuid.UUID:
    partner_id = caller.principal.partner_id
    if partner_id is None:
        raise NotFound("No such webhook.")
    return partner_id


def _seal(keys: DataKeyRing, where: tuple[str, str], row_id: uuid.UUID, raw: bytes) -> bytes:
    sealed = keys.seal_json(*where, row_id, value=base64.b64encode(raw).decode())
    assert sealed is not None
    return sealed


def _open(keys: DataKeyRing, where: tuple[str, str], row_id: uuid.UUID, envelope: bytes) -> bytes:
    return base64.b64decode(keys.open_json(*where, row_id, envelope=envelope))


async def _head(session: AsyncSession) -> int:
    seq = await session.scalar(select(func.coalesce(func.max(SyncPosition.seq), 0)))
    return int(seq or 0)


# Delivery (the worker's job) -------------------------------------------------------------


@dataclass
class Run:
    """What one run of the job did."""

    delivered: int = 0
    failed: int = 0
    disabled: int = 0
    retry_at: datetime | None = None


def backoff(failures: int) -> timedelta:
    """Full jitter: a random wait up to base × 2^(failures − 1), capped."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(failures - 1, 0))
    return timedelta(seconds=random.uniform(0.5, 1.0) * ceiling.total_seconds())


async def news_for(session: AsyncSession, principal: Principal, after: int, upto: int) -> bool:
    """Whether the partner's feed has a change between the two positions: a record it may
    read, or one it was handed and may have lost (a tombstone to come)."""
    readable_case = cases_service.readable_ids_of(principal)
    readable_person = cases_service.persons_with_readable_ids_of(principal)
    held = exists().where(
        and_(
            col(SyncDelivered.partner_id) == principal.id,
            col(SyncDelivered.record_type) == col(SyncPosition.record_type),
            col(SyncDelivered.record_id) == col(SyncPosition.record_id),
        )
    )
    query = select(
        exists().where(
            col(SyncPosition.seq) > after,
            col(SyncPosition.seq) <= upto,
            or_(
                and_(
                    col(SyncPosition.record_type) == "case",
                    col(SyncPosition.record_id).in_(readable_case),
                ),
                and_(
                    col(SyncPosition.record_type) == "person",
                    col(SyncPosition.record_id).in_(readable_person),
                ),
                held,
            ),
        )
    )
    return bool(await session.scalar(query))


async def notify_all(
    factory: async_sessionmaker[AsyncSession],
    data_keys: DataKeyRing,
    audit_keys: AuditKeyRing,
    settings: Settings,
    client: httpx.AsyncClient,
) -> Run:
    """Tell every enabled endpoint that is due what is new for its partner."""
    run = Run()
    async with factory() as session:
        now = utcnow()
        due = list(
            await session.exec(
                sqlmodel_select(SyncWebhook.id).where(
                    col(SyncWebhook.disabled_at).is_(None),
                    or_(
                        col(SyncWebhook.next_attempt_at).is_(None),
                        col(SyncWebhook.next_attempt_at) <= now,
                    ),
                )
            )
        )
    for webhook_id in due:
        await _notify_one(factory, data_keys, audit_keys, settings, client, webhook_id, run)
    async with factory() as session:
        waiting = await session.scalar(
            select(func.min(SyncWebhook.next_attempt_at)).where(
                col(SyncWebhook.disabled_at).is_(None)
            )
        )
    run.retry_at = waiting
    return run


async def _notify_one(
    factory: async_sessionmaker[AsyncSession],
    data_keys: DataKeyRing,
    audit_keys: AuditKeyRing,
    settings: Settings,
    client: httpx.AsyncClient,
    webhook_id: uuid.UUID,
    run: Run,
) -> None:
    # One endpoint at a time, its row held while it is told (a second worker skips it).
    async with factory() as session:
        webhook = await session.get(SyncWebhook, webhook_id, with_for_update={"skip_locked": True})
        if webhook is None or webhook.disabled_at is not None:
            return
        if await _told(session, webhook, audit_keys, data_keys, settings, client, run):
            session.add(webhook)
        await commit(session)


async def _told(
    session: AsyncSession,
    webhook: SyncWebhook,
    audit_keys: AuditKeyRing,
    data_keys: DataKeyRing,
    settings: Settings,
    client: httpx.AsyncClient,
    run: Run,
) -> bool:
    """Tell one endpoint what is new, if anything; whether its row changed."""
    principal = await partner_principal(session, webhook.partner_id)
    head = await _head(session)
    if (
        principal is None
        or principal.agreement is None
        or "sync:read" not in principal.scopes
        or not await news_for(session, principal, webhook.notified_seq, head)
    ):
        # Nothing new that it may read (nothing at all for a disabled partner or one
        # without the feed): no message.
        webhook.notified_seq = head
        return True
    signing = [_open(data_keys, SEALED, webhook.id, webhook.secret_sealed)]
    if (
        webhook.previous_secret_sealed is not None
        and webhook.previous_secret_until is not None
        and webhook.previous_secret_until > utcnow()
    ):
        signing.append(
            _open(data_keys, SEALED_PREVIOUS, webhook.id, webhook.previous_secret_sealed)
        )
    message_id = f"msg_{webhook.id.hex}_{head}"
    sent_at = utcnow()
    body = orjson.dumps(
        {
            "type": EVENT_TYPE,
            "timestamp": sent_at.isoformat().replace("+00:00", "Z"),
            "data": {"position": head, "changes": "/api/v1/sync/changes"},
        }
    )
    started = time.perf_counter()
    status_code, error = await _post(
        client,
        settings,
        webhook.url,
        signed_headers(signing, message_id, int(sent_at.timestamp()), body),
        body,
    )
    milliseconds = round((time.perf_counter() - started) * 1000)
    delivered = error is None
    attempt = webhook.failures + 1
    if delivered:
        webhook.notified_seq, webhook.failures, webhook.next_attempt_at = head, 0, None
        outcome = "delivered"
        run.delivered += 1
    else:
        webhook.failures += 1
        run.failed += 1
        if webhook.failures >= settings.webhook_max_failures:
            webhook.disabled_at = utcnow()
            webhook.disabled_reason = f"{webhook.failures} failed deliveries in a row: {error}"
            webhook.next_attempt_at = None
            outcome = "disabled"
            run.disabled += 1
            journal = as_system(session, audit_keys)
            journal.changed(
                "sync.webhook_disable",
                "partner",
                webhook.partner_id,
                changes=[
                    change(
                        "sync_webhook",
                        webhook.id,
                        before={"disabled": False},
                        after={"disabled": True, "reason": webhook.disabled_reason},
                    )
                ],
            )
            log.error(
                "webhook_disabled",
                webhook_id=str(webhook.id),
                partner_id=str(webhook.partner_id),
                failures=webhook.failures,
                error=error,
            )
        else:
            webhook.next_attempt_at = utcnow() + backoff(webhook.failures)
            outcome = "failed"
    session.add(
        SyncWebhookDelivery(
            webhook_id=webhook.id,
            message_id=message_id,
            position=head,
            attempt=attempt,
            attempted_at=sent_at,
            status_code=status_code,
            error=error,
            outcome=outcome,
            milliseconds=milliseconds,
        )
    )
    log.info(
        "webhook_delivery",
        webhook_id=str(webhook.id),
        outcome=outcome,
        status_code=status_code,
        attempt=attempt,
        milliseconds=milliseconds,
    )
    return True


async def _post(
    client: httpx.AsyncClient, settings: Settings, url: str, headers: dict[str, str], body: bytes
) -> tuple[int | None, str | None]:
    """Send one message: the status, and an error unless a 2xx came back in time."""
    refused = await _refused_address(url, settings)
    if refused is not None:
        return None, refused
    try:
        response = await client.post(
            url,
            content=body,
            headers=headers,
            timeout=settings.webhook_timeout_seconds,
            follow_redirects=False,
        )
    except httpx.HTTPError as failure:
        return None, f"{type(failure).__name__}: {failure}"[:500]
    if 200 <= response.status_code < 300:
        return response.status_code, None
    return response.status_code, f"HTTP {response.status_code}"


async def _refused_address(url: str, settings: Settings) -> str | None:
    """Why an endpoint may not be called now: it resolves to a private, loopback or
    otherwise internal address (unless allowed), or does not resolve."""
    if settings.webhook_allow_private:
        return None
    parts = urlsplit(url)
    try:
        found = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname, parts.port or 443, type=socket.SOCK_STREAM
        )
    except OSError as failure:
        return f"the host does not resolve: {failure}"
    for *_, address in found:
        ip = ipaddress.ip_address(address[0])
        if not ip.is_global:
            return f"the host resolves to an address that is not public ({ip})"
    return None

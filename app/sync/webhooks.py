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
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx
import orjson
import structlog
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from app.access.caller import Caller
from app.access.policy import PolicyEngine
from app.audit.journal import as_system, change, journal_of
from app.core.clock import utcnow
from app.core.config import Settings
from app.core.crypto import AuditKeyRing, DataKeyRing
from app.core.db import commit
from app.core.errors import Conflict, NotFound, UnprocessableInput
from app.core.ids import new_id
from app.identity.principals import partner_principal
from app.sync import repository
from app.sync import service as sync_service
from app.sync.models import SyncWebhook, SyncWebhookDelivery

log = structlog.get_logger(__name__)

SECRET_PREFIX = "whsec_"  # noqa: S105 (the specification's prefix, not a secret)
SECRET_BYTES = 32
# After a rotation, the previous secret signs too for so long.
ROTATION_GRACE = timedelta(hours=24)
# Retries wait a random time up to base × 2^(failures − 1), at most the cap.
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=6)
# An endpoint being told is left alone by other runs for so long.
LEASE = timedelta(minutes=2)
# Enabled endpoints a partner may have (each run tells them one after another).
MAX_ENDPOINTS = 5
# Ports an endpoint may listen on (where private addresses are not allowed).
PORTS = (443, 8443)
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
    """An endpoint's address: https on port 443 or 8443 of a host that is not an address
    of ours (http, any port and private addresses only where allowed), no credentials or
    fragment in it, and one that an HTTP client can call."""
    refused = UnprocessableInput(
        "url must be an https:// address of a public host (port 443 or 8443), without "
        "credentials or a fragment.",
        fields=["url"],
    )
    try:
        parts = urlsplit(url)
        port = parts.port
        host = httpx.URL(url).host
        (parts.hostname or "").encode("idna")
    except (ValueError, UnicodeError, httpx.InvalidURL):
        raise refused from None
    allowed = {"https", "http"} if settings.webhook_allow_private else {"https"}
    if parts.scheme not in allowed or not host or not parts.hostname:
        raise refused
    if parts.username or parts.password or parts.fragment:
        raise refused
    if not settings.webhook_allow_private:
        if port not in (None, *PORTS):
            raise refused
        try:
            literal = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            literal = None
        if literal is not None and not _public(literal):
            raise refused
    return url


@dataclass(frozen=True)
class Registered:
    webhook: SyncWebhook
    secret: str


async def register(
    session: AsyncSession, caller: Caller, keys: DataKeyRing, settings: Settings, url: str
) -> Registered:
    partner_id = _partner_of(caller)
    if await repository.enabled_webhooks_of(session, partner_id) >= MAX_ENDPOINTS:
        raise Conflict(
            f"A partner has at most {MAX_ENDPOINTS} endpoints; remove one to add another."
        )
    shown, raw = new_secret()
    webhook_id = new_id()
    webhook = SyncWebhook(
        id=webhook_id,
        partner_id=partner_id,
        url=checked_url(url, settings),
        secret_sealed=_seal(keys, SEALED, webhook_id, raw),
        # Nothing before now is news to an endpoint registered now.
        notified_seq=await _position(session),
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
    return await repository.webhooks(session, caller.principal.partner_id)


async def _own(session: AsyncSession, caller: Caller, webhook_id: uuid.UUID) -> SyncWebhook:
    found = await repository.webhook(session, webhook_id)
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


async def _position(session: AsyncSession) -> int:
    """Where the feed stands: the audit trail's head (every feed position is at or below)."""
    seq, _ = await repository.head(session)
    return seq


# Delivery (the worker's job) -------------------------------------------------------------


@dataclass
class Run:
    """What one run of the job did, and when the earliest retry is due."""

    delivered: int = 0
    failed: int = 0
    disabled: int = 0
    retry_at: datetime | None = None


async def purge_expired(session: AsyncSession, settings: Settings) -> int:
    """Forget the deliveries attempted longer ago than the log is kept; how many. The log
    holds partners' addresses and errors: it is for finding out why an endpoint fails."""
    kept_since = utcnow() - timedelta(days=settings.webhook_delivery_retention_days)
    return await repository.purge_deliveries(session, kept_since)


def backoff(failures: int) -> timedelta:
    """Full jitter: a random wait between 1 s and base × 2^(failures − 1), capped."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(failures - 1, 0))
    return timedelta(seconds=max(1.0, random.uniform(0, ceiling.total_seconds())))


@dataclass(frozen=True)
class _Message:
    """A message prepared for one endpoint, while its row is leased."""

    webhook_id: uuid.UUID
    url: str
    position: int
    message_id: str
    sent_at: datetime
    body: bytes
    headers: dict[str, str]


async def notify_all(
    factory: async_sessionmaker[AsyncSession],
    data_keys: DataKeyRing,
    audit_keys: AuditKeyRing,
    settings: Settings,
    client: httpx.AsyncClient,
    policy: PolicyEngine,
) -> Run:
    """Tell every enabled endpoint that is due what is new for its partner; one endpoint's
    trouble (a bad address, a slow server) is that endpoint's failure, not the run's."""
    run = Run()
    async with factory() as session:
        due = await repository.due_webhook_ids(session, utcnow())
    for webhook_id in due:
        message = await _lease(factory, data_keys, policy, webhook_id)
        if message is None:
            continue
        status_code, error = await _post(client, settings, message)
        await _record(factory, audit_keys, settings, message, status_code, error, run)
    async with factory() as session:
        run.retry_at = await repository.earliest_retry(session, utcnow())
    return run


async def _lease(
    factory: async_sessionmaker[AsyncSession],
    data_keys: DataKeyRing,
    policy: PolicyEngine,
    webhook_id: uuid.UUID,
) -> _Message | None:
    """If the endpoint's partner has news it may read, a signed message, with the row
    leased for the length of a delivery (another run leaves it alone); else the endpoint
    is up to date. The row is not held while the message travels."""
    async with factory() as session:
        webhook = await repository.webhook(session, webhook_id, skip_locked=True)
        now = utcnow()
        if (
            webhook is None
            or webhook.disabled_at is not None
            or (webhook.next_attempt_at is not None and webhook.next_attempt_at > now)
        ):
            return None
        principal = await partner_principal(session, webhook.partner_id)
        head = await _position(session)
        news = (
            principal is not None
            and principal.agreement is not None
            and "sync:read" in principal.scopes
            and await sync_service.has_news(
                session,
                Caller(principal, policy),
                data_keys,
                after=webhook.notified_seq,
                upto=head,
            )
        )
        if not news:
            # Nothing it may read is new (nothing at all for a disabled partner or one
            # without the feed): no message, and no failure left pending.
            webhook.notified_seq, webhook.failures, webhook.next_attempt_at = head, 0, None
            session.add(webhook)
            await session.commit()
            return None
        signing = [_open(data_keys, SEALED, webhook.id, webhook.secret_sealed)]
        if (
            webhook.previous_secret_sealed is not None
            and webhook.previous_secret_until is not None
            and webhook.previous_secret_until > now
        ):
            signing.append(
                _open(data_keys, SEALED_PREVIOUS, webhook.id, webhook.previous_secret_sealed)
            )
        body = orjson.dumps(
            {
                "type": EVENT_TYPE,
                "timestamp": now.isoformat().replace("+00:00", "Z"),
                "data": {"position": head, "changes": "/api/v1/sync/changes"},
            }
        )
        message_id = f"msg_{webhook.id.hex}_{head}"
        message = _Message(
            webhook.id,
            webhook.url,
            head,
            message_id,
            now,
            body,
            signed_headers(signing, message_id, int(now.timestamp()), body),
        )
        webhook.next_attempt_at = now + LEASE
        session.add(webhook)
        await session.commit()
    return message


async def _record(
    factory: async_sessionmaker[AsyncSession],
    audit_keys: AuditKeyRing,
    settings: Settings,
    message: _Message,
    status_code: int | None,
    error: str | None,
    run: Run,
) -> None:
    """What came of a delivery: the endpoint told up to the position, or one more failure
    (a retry after a backoff, or, after too many, the endpoint disabled and reported)."""
    async with factory() as session:
        webhook = await repository.webhook(session, message.webhook_id)
        if webhook is None:
            return
        attempt = webhook.failures + 1
        if error is None:
            webhook.notified_seq = max(webhook.notified_seq, message.position)
            webhook.failures, webhook.next_attempt_at = 0, None
            outcome = "delivered"
            run.delivered += 1
        else:
            webhook.failures += 1
            run.failed += 1
            outcome = "failed"
            webhook.next_attempt_at = utcnow() + backoff(webhook.failures)
            if webhook.disabled_at is None and webhook.failures >= settings.webhook_max_failures:
                outcome = "disabled"
                run.disabled += 1
                _disable(session, audit_keys, webhook, error)
        session.add(
            SyncWebhookDelivery(
                webhook_id=webhook.id,
                message_id=message.message_id,
                position=message.position,
                attempt=attempt,
                attempted_at=message.sent_at,
                status_code=status_code,
                error=error,
                outcome=outcome,
                milliseconds=round((utcnow() - message.sent_at).total_seconds() * 1000),
            )
        )
        session.add(webhook)
        await commit(session)
    log.info(
        "webhook_delivery",
        webhook_id=str(message.webhook_id),
        outcome=outcome,
        status_code=status_code,
        attempt=attempt,
        error=error,
    )


def _disable(
    session: AsyncSession, audit_keys: AuditKeyRing, webhook: SyncWebhook, error: str
) -> None:
    webhook.disabled_at = utcnow()
    webhook.next_attempt_at = None
    webhook.disabled_reason = f"{webhook.failures} failed deliveries in a row (last: {error})"
    as_system(session, audit_keys).changed(
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


async def _post(
    client: httpx.AsyncClient, settings: Settings, message: _Message
) -> tuple[int | None, str | None]:
    """Send one message within one deadline (resolving, connecting, the answer's status
    line), never reading the answer's body: its status, and what went wrong unless a 2xx
    came back. What went wrong is said in general terms, which the partner sees (the
    endpoint's reason for being disabled): no address or error of our network."""
    try:
        async with asyncio.timeout(settings.webhook_timeout_seconds):
            refused = await _refused_address(message.url, settings)
            if refused is not None:
                log.warning("webhook_address_refused", url=message.url, reason=refused)
                return None, "the address is not allowed"
            async with client.stream(
                "POST",
                message.url,
                content=message.body,
                headers=message.headers,
                follow_redirects=False,
            ) as response:
                status_code = response.status_code
    except TimeoutError:
        return None, "no answer in time"
    except Exception as failure:
        log.warning("webhook_post_failed", url=message.url, error=repr(failure)[:300])
        return None, "could not connect"
    if 200 <= status_code < 300:
        return status_code, None
    return status_code, f"HTTP {status_code}"


# Addresses inside other networks, written as IPv6 (NAT64, 6to4, IPv4-compatible).
_EMBEDDING_IPV4 = (
    ipaddress.ip_network("64:ff9b::/96"),
    ipaddress.ip_network("64:ff9b:1::/48"),
    ipaddress.ip_network("2002::/16"),
    ipaddress.ip_network("::/96"),
)


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return _public(ip.ipv4_mapped)
        if any(ip in network for network in _EMBEDDING_IPV4):
            return False
    return ip.is_global and not ip.is_multicast


async def _refused_address(url: str, settings: Settings) -> str | None:
    """Why an endpoint may not be called now: it resolves to an address that is not
    public (unless allowed), or does not resolve. (The name is resolved again to connect:
    an attacker's DNS that answers differently the second time is not stopped here; an
    egress proxy is the deployment's defence against that.)"""
    if settings.webhook_allow_private:
        return None
    try:
        parts = urlsplit(url)
        found = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname, parts.port or 443, type=socket.SOCK_STREAM
        )
    except (OSError, ValueError, UnicodeError) as failure:
        return f"the host does not resolve: {failure}"
    for *_, address in found:
        ip = ipaddress.ip_address(address[0])
        if not _public(ip):
            return f"the host resolves to an address that is not public ({ip})"
    return None

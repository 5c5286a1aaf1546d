"""Throttling of failed authentication, as the settings describe it (app/core/config.py):
per identity and address, per address, and per identity from everywhere (not holding back
addresses the account signed in from lately). Sign-in, enrolment and the partner token
endpoint share it."""

import hashlib
import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core import metrics
from app.core.clock import utcnow
from app.core.config import Settings
from app.core.errors import TooManyAttempts
from app.identity import repository
from app.identity.schemas import USERNAME_PATTERN

log = structlog.get_logger(__name__)

# One host commonly holds a whole IPv6 /64, so its addresses count as one.
IPV6_HOST_PREFIX = 64


# An address as kept: as throttling counts one that is not an IP address, and with an
# enrolment.
ADDRESS_CHARS = 64


def address_group(address: str) -> str:
    """What throttling counts a client address as: an IPv4 address itself (also written
    IPv4-mapped), an IPv6 address its /64, anything else (no address) as given."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:ADDRESS_CHARS]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        host_bits = 128 - IPV6_HOST_PREFIX
        network = ipaddress.IPv6Network((int(parsed) >> host_bits << host_bits, IPV6_HOST_PREFIX))
        return str(network)
    return str(parsed)


# The ways in that failures are counted for (labels of the sign-in metrics: never a name
# or an address).
USER_FLOW, PARTNER_FLOW, ENROLMENT_FLOW = "user", "partner", "enrolment"


@dataclass(frozen=True)
class Limit:
    """Failures counted under `key` within the window; the `max_failures`-th, and each one
    after it in the window, blocks the key for `block_seconds`."""

    key: str
    max_failures: int
    block_seconds: int


@dataclass(frozen=True)
class Throttle:
    """The counters one authentication attempt is judged by and, if it fails, counts to."""

    # Which way in this is, for the metrics: USER_FLOW or PARTNER_FLOW.
    flow: str
    address: Limit
    # The identity (account or client id) from this address: a success clears it, so the
    # owner's own typos are forgiven; others' failures elsewhere are not.
    pair: Limit
    # The identity from every address, if it has such a limit.
    identity: Limit | None = None
    # The identity's block does not hold back this address (the owner's lately); its
    # failures still count.
    identity_block_waived: bool = False

    @property
    def serial_key(self) -> str:
        """The row locked for the rest of the attempt: concurrent attempts on one identity
        are judged one after another, so none slips past a block."""
        return (self.identity or self.pair).key

    @property
    def identity_limits(self) -> list[Limit]:
        return [limit for limit in (self.pair, self.identity) if limit is not None]

    @property
    def blocking_limits(self) -> list[Limit]:
        """The identity's limits whose blocks refuse this attempt."""
        if self.identity_block_waived:
            return [self.pair]
        return self.identity_limits


def account_key(username: str) -> str:
    """The account a sign-in names, as throttling counts it: a name that cannot be a
    username (a forbidden character, too long) is counted by its digest, like any unknown
    name, but keeps no such characters in the table."""
    account = username.lower()
    if re.fullmatch(USERNAME_PATTERN, account):
        return account
    digest = hashlib.sha256(username.encode()).hexdigest()
    return f"~{digest[:32]}"


def sign_in_throttle(
    settings: Settings, account: str, address: str, *, address_known: bool
) -> Throttle:
    """`address`: as grouped by `address_group`."""
    return Throttle(
        flow=USER_FLOW,
        address=Limit(
            f"address:{address}",
            settings.login_max_failures_per_address,
            settings.login_block_seconds,
        ),
        pair=Limit(
            f"account|address:{account}|{address}",
            settings.login_max_failures_per_account_and_address,
            settings.login_block_seconds,
        ),
        identity=Limit(
            f"account:{account}",
            settings.login_max_failures_per_account,
            settings.login_account_block_seconds,
        ),
        identity_block_waived=address_known,
    )


def partner_throttle(settings: Settings, client_id: str, address: str) -> Throttle:
    """The token endpoint's counters; the address's are apart from sign-in's."""
    address = address_group(address)
    return Throttle(
        flow=PARTNER_FLOW,
        address=Limit(
            f"token-address:{address}",
            settings.login_max_failures_per_address,
            settings.login_block_seconds,
        ),
        pair=Limit(
            f"token-client|address:{client_id}|{address}",
            settings.login_max_failures_per_account_and_address,
            settings.login_block_seconds,
        ),
    )


async def enter_throttle(session: AsyncSession, throttle: Throttle, now: datetime) -> None:
    """Refuse an attempt a block holds back (429); else hold the identity's row until the
    attempt is judged."""
    # A blocked address is refused before anything is written for the identity it names,
    # so that a flood of invented names leaves no rows behind.
    address_blocked = await repository.blocked_until(session, [throttle.address.key])
    _refuse_if_blocked(throttle, address_blocked, now)
    await repository.lock_throttle(session, throttle.serial_key, now)
    keys = [limit.key for limit in throttle.blocking_limits]
    _refuse_if_blocked(throttle, await repository.blocked_until(session, keys), now)


async def count_failure(
    session: AsyncSession, settings: Settings, throttle: Throttle, *, now: datetime
) -> None:
    metrics.sign_in_failed(throttle.flow)
    window_start = now - timedelta(seconds=settings.login_failure_window_seconds)
    for limit in [throttle.address, *throttle.identity_limits]:
        await repository.record_failure(
            session,
            limit.key,
            now=now,
            window_start=window_start,
            limit=limit.max_failures,
            blocked_until=now + timedelta(seconds=limit.block_seconds),
        )


async def forget_failures(session: AsyncSession, throttle: Throttle, now: datetime) -> None:
    await repository.clear_failures(session, throttle.pair.key, now)


def _refuse_if_blocked(throttle: Throttle, blocked: datetime | None, now: datetime) -> None:
    if blocked is not None and blocked > now:
        log.warning("authentication_throttled", attempt=throttle.pair.key[:200])
        metrics.sign_in_throttled(throttle.flow)
        raise TooManyAttempts(max(1, int((blocked - now).total_seconds()) + 1))


async def purge_expired(session: AsyncSession, settings: Settings) -> dict[str, int]:
    """Delete what throttling and replay protection no longer need (the counters' keys
    hold names people typed); how many rows of each kind went."""
    now = utcnow()
    window_start = now - timedelta(seconds=settings.login_failure_window_seconds)
    known_since = now - timedelta(days=settings.login_known_address_days)
    return {
        "sign_in_throttles": await repository.purge_throttles(
            session, window_start=window_start, now=now
        ),
        "known_sign_in_addresses": await repository.purge_known_addresses(session, known_since),
        "client_assertion_uses": await repository.purge_assertion_uses(session, now),
    }

"""The journal of one unit of work: the audit event its transaction will append.

Every session that writes carries a journal (`attach`), and services say what they did:
`changed(...)` for writes, `viewed(...)` for reads above the public tier. The unit of work
appends the event as the last statement before commit (`app/core/db.commit`), so the
event and the change commit together or not at all, and a unit of work appends at most
one event: several changes in one request merge into it, and a write covers the reads it
answers with. A refusal of access (401, 403, a hidden record's 404) replaces whatever was
pending and is appended on its own after the rollback.

Confidential values never reach the trail: they are replaced by a keyed fingerprint.
"""

import getpass
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from app.access.principal import Principal, Tier
from app.access.tiers import FIELD_TIERS
from app.audit.chain import EventDraft, append, canonical
from app.audit.read_events import ReadEvents
from app.core.crypto import AuditKeyRing
from app.core.db import JOURNAL
from app.core.errors import DomainError
from app.core.metrics import AuditAppendTimer

# Bookkeeping that changes with every write and says nothing the event does not.
_UNTRACKED_FIELDS = frozenset({"updated_at", "created_at", "recorded_at"})
MAX_USER_AGENT = 256


@dataclass(frozen=True)
class Actor:
    type: str
    id: uuid.UUID | None = None
    role: str | None = None

    @classmethod
    def of(cls, principal: Principal) -> "Actor":
        return cls("partner" if principal.is_partner else "user", principal.id, principal.role)


ANONYMOUS = Actor("anonymous")
SYSTEM = Actor("system", None, "system")


@dataclass(frozen=True)
class Origin:
    """Where the unit of work came from: a request (id, address, agent) or the CLI."""

    request_id: str | None = None
    client_address: str | None = None
    user_agent: str | None = None
    # For denials: the route's template, and the record its path names.
    route: str | None = None
    path_record: uuid.UUID | None = None


class Journal:
    def __init__(
        self,
        keys: AuditKeyRing,
        origin: Origin,
        actor: Actor = ANONYMOUS,
        *,
        read_events: ReadEvents | None = None,
        record_reads: bool = True,
    ) -> None:
        self._keys = keys
        self.origin = origin
        self.actor = actor
        # Where a read's event goes once the unit of work has committed (none: appended
        # in its transaction); reads are not recorded at all only when measuring.
        self._read_events = read_events
        self._record_reads = record_reads
        self._committed_read: EventDraft | None = None
        # The action the route declared (`requires(...)`), for denials.
        self.attempted: str | None = None
        # The record a refusal concerns when the path does not name it (the account a
        # failed sign-in was for).
        self.subject: tuple[str, uuid.UUID] | None = None
        self._pending: EventDraft | None = None
        self._pending_is_write = False
        # A read that also keeps what it handed out (the change feed's deliveries) must
        # not be lost in a crash with the read's event.
        self._durable = False

    def keep_durable(self) -> None:
        """Commit this unit of work durably even if it only reads (see chain.append)."""
        self._durable = True

    # Who -------------------------------------------------------------------------------

    def identify(self, principal: Principal) -> None:
        self.actor = Actor.of(principal)

    def acting_as(self, actor: Actor) -> None:
        """Who acts, when it is known only during the unit of work (sign-in, tokens)."""
        self.actor = actor
        if self._pending is not None:
            self._pending.actor_type, self._pending.actor_id = actor.type, actor.id
            self._pending.actor_role = actor.role

    # What -------------------------------------------------------------------------------

    def changed(
        self,
        action: str,
        resource_type: str,
        resource_id: uuid.UUID | None,
        *,
        changes: Iterable[dict[str, Any] | None],
        related: Iterable[uuid.UUID] = (),
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """A write. The first write of the unit of work names the action and the record;
        later ones add their changes to the same event."""
        entries = [entry for entry in changes if entry is not None]
        if self._pending is None or not self._pending_is_write:
            self._pending = self._draft(
                action, "success", resource_type=resource_type, resource_id=resource_id
            )
            self._pending.changes = []
            self._pending_is_write = True
        draft = self._pending
        assert draft.changes is not None
        draft.changes.extend(entries)
        _add_related(draft, related)
        if detail:
            draft.detail = {**(draft.detail or {}), **detail}

    def viewed(
        self,
        action: str,
        resource_type: str,
        resource_ids: Iterable[uuid.UUID],
        *,
        clearance: Tier,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """A read. Only reads that show more than the public tier are recorded; a write in
        the same unit of work already covers what it answers with."""
        if clearance <= Tier.public or self._pending_is_write or not self._record_reads:
            return
        ids = list(resource_ids)
        if self._pending is None:
            single = ids[0] if len(ids) == 1 else None
            self._pending = self._draft(
                action, "success", resource_type=resource_type, resource_id=single
            )
            if detail:
                self._pending.detail = dict(detail)
            if single is not None:
                return
        _add_related(self._pending, ids)

    def viewed_page(
        self,
        action: str,
        resource_type: str,
        seen: Sequence[tuple[uuid.UUID, Tier]],
        *,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """A page of records read, each with the caller's clearance on it: recorded as one
        read at the highest of those clearances."""
        self.viewed(
            action,
            resource_type,
            [record_id for record_id, _ in seen],
            clearance=max((tier for _, tier in seen), default=Tier.public),
            detail=detail,
        )

    def instead_viewed(
        self, action: str, resource_type: str, seen: Sequence[tuple[uuid.UUID, Tier]]
    ) -> None:
        """The unit of work's writes are about to be undone by a refusal that shows these
        records (with `keeps_reading`): record their reading instead of the writes."""
        self._pending = None
        self._pending_is_write = False
        self.viewed_page(action, resource_type, seen)

    def refused(self, refusal: DomainError) -> None:
        """The unit of work ends in a refusal: nothing it did is recorded, and a denial of
        access is recorded instead; a refusal that shows records keeps their reading."""
        if refusal.keeps_reading and self._pending is not None and not self._pending_is_write:
            return
        self._pending = None
        self._pending_is_write = False
        if refusal.is_denial:
            self.deny(refusal.status_code, refusal.slug)
        elif refusal.records_absence:
            self.deny(refusal.status_code, refusal.slug, outcome="not_found")

    def deny(self, status: int, problem: str, *, outcome: str = "denied") -> None:
        """Record a refusal of access (or a request for a record that does not exist)
        instead of anything pending."""
        action = self.attempted or "request"
        resource_type: str | None = action.split(".", 1)[0] if self.attempted else None
        resource_id = self.origin.path_record
        if self.subject is not None:
            resource_type, resource_id = self.subject
        draft = self._draft(action, outcome, resource_type=resource_type, resource_id=resource_id)
        draft.detail = {"status": status, "problem": problem}
        if self.origin.route is not None:
            draft.detail["route"] = self.origin.route
        self._pending = draft
        self._pending_is_write = False

    # Values -----------------------------------------------------------------------------

    def fingerprint(self, value: Any) -> str:
        """A keyed hash of a confidential value: comparable, not readable."""
        return self._keys.fingerprint(canonical(value))

    def snapshot(self, kind: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """A record's JSON values as the trail keeps them: confidential ones fingerprinted."""
        # A field missing from a tiered kind's table is treated as confidential; records
        # without tiers (accounts, partners) are snapshotted field by field by their owner.
        tiers = FIELD_TIERS.get(kind)
        unknown = Tier.confidential if tiers is not None else Tier.public
        return {
            field: self.fingerprint(value)
            if value is not None and (tiers or {}).get(field, unknown) is Tier.confidential
            else value
            for field, value in values.items()
            if field not in _UNTRACKED_FIELDS
        }

    # The transaction --------------------------------------------------------------------

    async def before_commit(self, session: AsyncSession) -> None:
        draft, is_write = self._pending, self._pending_is_write
        self._pending, self._pending_is_write = None, False
        if draft is not None:
            # Only a successful read may skip waiting for the disk (see chain.append), or
            # be appended with others after its commit (app/audit/read_events.py).
            a_read = not is_write and draft.outcome == "success"
            batched = self._read_events is not None and self._read_events.running
            if a_read and not self._durable and batched:
                self._committed_read = draft
                return
            kind = "write" if is_write else "read" if a_read else "refusal"
            with AuditAppendTimer(kind):
                await append(session, draft, durable=not a_read or self._durable)

    async def after_commit(self) -> None:
        """The unit of work committed: its read's event joins the next batch (before the
        response is sent)."""
        draft, self._committed_read = self._committed_read, None
        if draft is not None and self._read_events is not None:
            await self._read_events.record(draft)

    def _draft(
        self, action: str, outcome: str, *, resource_type: str | None, resource_id: uuid.UUID | None
    ) -> EventDraft:
        return EventDraft(
            actor_type=self.actor.type,
            actor_id=self.actor.id,
            actor_role=self.actor.role,
            action=action,
            outcome=outcome,
            resource_type=resource_type,
            resource_id=resource_id,
            request_id=self.origin.request_id,
            client_address=self.origin.client_address,
            user_agent=self.origin.user_agent,
        )


def change(
    kind: str,
    record_id: uuid.UUID,
    *,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
) -> dict[str, Any] | None:
    """One record's field-level change between two snapshots (None: nothing changed). A
    created record has no `before`; its fields are those that have a value."""
    old = before or {}
    new = after or {}
    fields = {
        name: {"before": old.get(name), "after": new.get(name)}
        for name in sorted(old.keys() | new.keys())
        if old.get(name) != new.get(name)
    }
    if not fields:
        return None
    return {"type": kind, "id": str(record_id), "fields": fields}


def attach(session: AsyncSession, journal: Journal) -> Journal:
    session.info[JOURNAL] = journal
    return journal


def as_system(session: AsyncSession, keys: AuditKeyRing) -> Journal:
    """Give a unit of work outside any request (the CLI, set-up scripts) its journal: the
    system acts."""
    return attach(session, Journal(keys, command_origin(), SYSTEM))


def command_origin() -> Origin:
    """A unit of work started from the `habeas` command: the operating-system account that
    ran it is all there is to say about where it came from."""
    return Origin(user_agent=f"habeas-cli; os-user={getpass.getuser()}"[:MAX_USER_AGENT])


def journal_of(session: AsyncSession) -> Journal:
    """The session's journal. Every unit of work that writes must have one: a write path
    that forgot it fails loudly instead of going unrecorded."""
    journal = session.info.get(JOURNAL)
    if not isinstance(journal, Journal):
        raise RuntimeError("this unit of work has no audit journal")
    return journal


def _add_related(draft: EventDraft, ids: Iterable[uuid.UUID]) -> None:
    seen = set(draft.related)
    if draft.resource_id is not None:
        seen.add(draft.resource_id)
    for item in ids:
        if item not in seen:
            seen.add(item)
            draft.related.append(item)

"""The partners' change feed (`GET /sync/changes`).

**Positions.** Every write appends one event to the audit trail, numbered under the
chain's head lock, which is held until the write commits: numbers are given in commit
order, and a snapshot that sees one write sees every write numbered before it (the lock is
released only after the commit is visible). The trigger of migration 0020 keeps, for each
person and case file, the number of the last write that touched it (`sync_position`). A
partner that reads positions after its cursor, in order, therefore never misses a write
committed later with a lower number: there is none. A record changed again moves to its
new number, so each change reaches the partner once, as the record's state at that moment
or later. A transaction-id horizon (waiting for transactions older than the snapshot to
end) would give the same guarantee, but needs no such lock and would have had to be built;
the audit trail's order is already there and tested.

**Start.** A partner without a cursor (or whose agreement changed since its cursor was
made) first receives a snapshot: every person and case file its agreement shares now, as
it may see them, then a tombstone for each record handed to it before that it may no
longer read. The snapshot remembers the audit head at its start; the changes after it
follow, so nothing written during the snapshot is missed (a record written meanwhile may
come twice; a copy keyed by id and version takes the later).

**What a partner sees.** Each record is read through app/access (the partner's agreement,
its tier) at the moment of the read, never as stored. A record that leaves the agreement
arrives as a tombstone only for a partner it was handed to (`sync_delivered`); a person
merged into another arrives as a redirect when the partner may read that one.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from app.access.caller import Caller
from app.access.principal import SharingAgreement, Tier
from app.access.tiers import exclusion, hidden_fields
from app.cases import service as cases_service
from app.cases.history import entry_read_values
from app.cases.schemas import StatusEventRead, case_read
from app.core.crypto import DataKeyRing
from app.core.errors import InvalidCursor
from app.core.pagination import (
    cursor_int,
    cursor_uuid,
    decode_cursor,
    encode_cursor,
    query_fingerprint,
)
from app.persons import service as persons_service
from app.sync import repository
from app.sync.repository import Ref
from app.sync.schemas import ChangeKind, FeedItem, FeedPage, FeedPhase

NO_ID = uuid.UUID(int=0)
# Records looked at per request, at most, as a multiple of the page size: positions of
# records the partner was never handed are passed over, but not without end.
LOOKED_AT_PER_ITEM = 4


class Stage(StrEnum):
    persons = "persons"  # the snapshot's persons
    cases = "cases"  # the snapshot's case files
    gone = "gone"  # tombstones of what was handed before and is no longer shared
    changes = "changes"


@dataclass(frozen=True)
class Position:
    # Changes numbered after this come in the `changes` stage.
    seq: int
    # The agreement the snapshot was taken under (a hash of its terms).
    terms: str
    stage: Stage
    # The last record handed in this stage (in `changes`: at `seq`).
    after: Ref = ("", NO_ID)


@dataclass
class Feed:
    items: list[tuple[FeedItem, dict[str, Any]]] = field(default_factory=list)
    seen: list[tuple[uuid.UUID, Tier]] = field(default_factory=list)


def agreement_terms(agreement: SharingAgreement | None) -> str:
    if agreement is None:
        return "none"
    return query_fingerprint(
        {
            "jurisdiction": agreement.jurisdiction,
            "recognised_only": agreement.recognised_only,
            "case_file_ids": sorted(str(case_id) for case_id in agreement.case_file_ids),
            "max_tier": agreement.max_tier.name,
        }
    )


def _fingerprint(partner_id: uuid.UUID) -> str:
    return query_fingerprint({"feed": "sync/changes", "partner": str(partner_id)})


def encode_position(position: Position, partner_id: uuid.UUID) -> str:
    kind, after_id = position.after
    return encode_cursor(
        [position.seq, position.terms, position.stage.value, kind, str(after_id)],
        _fingerprint(partner_id),
    )


def decode_position(cursor: str, partner_id: uuid.UUID) -> Position:
    seq, terms, stage, kind, after_id = decode_cursor(cursor, _fingerprint(partner_id), 5)
    if seq != 0:
        seq = cursor_int(seq)
    if not isinstance(terms, str) or not isinstance(kind, str) or stage not in set(Stage):
        raise InvalidCursor("The cursor is damaged.")
    return Position(seq, terms, Stage(stage), (kind, cursor_uuid(after_id)))


async def read_changes(
    session: AsyncSession,
    caller: Caller,
    keys: DataKeyRing,
    *,
    cursor: str | None,
    limit: int,
) -> tuple[FeedPage, dict[str, Any], list[tuple[uuid.UUID, Tier]]]:
    """A page of the feed from `cursor`: the page, what to leave out of each item (above
    the partner's tier), and what it showed (for the audit trail)."""
    partner_id = caller.principal.id
    terms = agreement_terms(caller.principal.agreement)
    position = decode_position(cursor, partner_id) if cursor else None
    if position is None or position.terms != terms:
        position = Position(await repository.head(session), terms, Stage.persons)
    feed = Feed()
    budget = limit * LOOKED_AT_PER_ITEM
    caught_up = False
    while len(feed.items) < limit and budget > 0:
        wanted = min(limit - len(feed.items), budget)
        budget -= wanted
        position, finished = await _step(session, caller, keys, position, feed, wanted)
        if finished:
            caught_up = True
            break
    page = FeedPage(
        items=[item for item, _ in feed.items],
        next=encode_position(position, partner_id),
        phase=FeedPhase.changes if position.stage is Stage.changes else FeedPhase.snapshot,
        caught_up=caught_up,
    )
    excluded = {"items": {index: hidden for index, (_, hidden) in enumerate(feed.items)}}
    return page, excluded, feed.seen


async def _step(
    session: AsyncSession,
    caller: Caller,
    keys: DataKeyRing,
    position: Position,
    feed: Feed,
    wanted: int,
) -> tuple[Position, bool]:
    """Hand over up to `wanted` more records from `position`: where it got to, and whether
    the feed is caught up."""
    partner_id = caller.principal.id
    _, after_id = position.after
    if position.stage in (Stage.persons, Stage.cases):
        kind = "person" if position.stage is Stage.persons else "case"
        read_ids = (
            persons_service.readable_ids_after
            if kind == "person"
            else cases_service.readable_ids_after
        )
        ids = await read_ids(session, caller, after_id if after_id != NO_ID else None, wanted)
        refs = [(kind, record_id) for record_id in ids]
        await _hand_over(session, caller, keys, refs, [position.seq] * len(refs), feed)
        if len(ids) == wanted:
            return replace(position, after=refs[-1]), False
        following = Stage.cases if kind == "person" else Stage.gone
        return replace(position, stage=following, after=("", NO_ID)), False
    if position.stage is Stage.gone:
        refs = await repository.delivered_after(session, partner_id, position.after, wanted)
        await _hand_over(
            session, caller, keys, refs, [position.seq] * len(refs), feed, departures_only=True
        )
        if len(refs) == wanted:
            return replace(position, after=refs[-1]), False
        return replace(position, stage=Stage.changes, after=("", NO_ID)), False
    rows = await repository.changes_after(session, (position.seq, *position.after), wanted)
    await _hand_over(
        session,
        caller,
        keys,
        [(kind, record_id) for _, kind, record_id in rows],
        [seq for seq, _, _ in rows],
        feed,
    )
    if rows:
        seq, kind, record_id = rows[-1]
        position = replace(position, seq=seq, after=(kind, record_id))
    return position, len(rows) < wanted


async def _hand_over(
    session: AsyncSession,
    caller: Caller,
    keys: DataKeyRing,
    refs: Sequence[Ref],
    seqs: Sequence[int],
    feed: Feed,
    *,
    departures_only: bool = False,
) -> None:
    """Each record as the partner may read it now: its state, or, when it may not and was
    handed to the partner before, its departure (a tombstone or a redirect)."""
    if not refs:
        return
    person_ids = [record_id for kind, record_id in refs if kind == "person"]
    case_ids = [record_id for kind, record_id in refs if kind == "case"]
    persons = {
        view.person.id: view
        for view in await persons_service.readable_views(session, caller, keys, person_ids)
    }
    cases = {
        view.case.id: (view, entries)
        for view, entries in await cases_service.readable_with_events(session, caller, case_ids)
    }
    unreadable = [
        (kind, record_id)
        for kind, record_id in refs
        if record_id not in (persons if kind == "person" else cases)
    ]
    partner_id = caller.principal.id
    handed_before = await repository.delivered(session, partner_id, unreadable)
    merged = await persons_service.merged_into(
        session, [record_id for kind, record_id in handed_before if kind == "person"]
    )
    readable_targets = {
        view.person.id
        for view in await persons_service.readable_views(
            session, caller, keys, sorted(set(merged.values()))
        )
    }
    handed: list[Ref] = []
    for (kind, record_id), seq in zip(refs, seqs, strict=True):
        if kind == "person" and record_id in persons:
            if departures_only:
                continue
            view = persons[record_id]
            item = FeedItem(
                seq=seq, kind="person", id=record_id, change=ChangeKind.upsert, person=view.read()
            )
            feed.items.append((item, {"person": hidden_fields("person", view.clearance)}))
            feed.seen.append((record_id, view.clearance))
            handed.append((kind, record_id))
        elif kind == "case" and record_id in cases:
            if departures_only:
                continue
            case_view, entries = cases[record_id]
            item = FeedItem(
                seq=seq,
                kind="case",
                id=record_id,
                change=ChangeKind.upsert,
                case=case_read(case_view.case),
                status_events=[
                    StatusEventRead.model_validate(entry_read_values(entry)) for entry in entries
                ],
            )
            hidden_events = exclusion("status_event", case_view.clearance)
            feed.items.append(
                (
                    item,
                    {
                        "case": hidden_fields("case", case_view.clearance),
                        **({"status_events": {"__all__": hidden_events}} if hidden_events else {}),
                    },
                )
            )
            feed.seen.append((record_id, case_view.clearance))
            handed.append((kind, record_id))
        elif (kind, record_id) in handed_before:
            target = merged.get(record_id)
            if target is not None and target in readable_targets:
                departure = FeedItem(
                    seq=seq,
                    kind="person",
                    id=record_id,
                    change=ChangeKind.redirect,
                    merged_into=target,
                )
            else:
                departure = FeedItem(
                    seq=seq,
                    kind="person" if kind == "person" else "case",
                    id=record_id,
                    change=ChangeKind.tombstone,
                )
            feed.items.append((departure, {}))
    await repository.deliver(session, partner_id, handed)

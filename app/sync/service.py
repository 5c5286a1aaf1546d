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
its tier) at the moment of the read, never as stored. `sync_delivered` keeps a hash of
what each partner was last handed of each record and the number it was handed at: an
item whose hash did not change is not sent again once the partner has read past it (a
change to a case file the partner does not share moves its person's position, and must
not tell the partner so), and a record that leaves the agreement reaches the partner as
one tombstone (a person merged into another, as a redirect when the partner may read that
one) and then never again, while a partner never handed it hears nothing of it. A page
read again from an older cursor (its answer was lost) hands over the same items.

**Starting again.** The cursor carries the hash of the audit event at its position and a
hash of the agreement and of the access rules (tiers, policies). A changed agreement or
rule restarts the feed with a snapshot, then tombstones of what the partner may no longer
read; an audit trail that no longer holds the cursor's event (the database was restored
from a backup) restarts it with `reset`: the partner drops its copy and takes the
snapshot.
"""

import hashlib
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cache
from typing import Any

import orjson
from sqlmodel.ext.asyncio.session import AsyncSession

from app.access.caller import Caller
from app.access.policy import POLICY_DIRECTORY
from app.access.principal import SharingAgreement, Tier
from app.access.tiers import FIELD_TIERS, NESTED_TIERS, RECORD_TIERS, exclusion, hidden_fields
from app.cases import service as cases_service
from app.cases.history import HistoryEntry, entry_read
from app.cases.schemas import case_read
from app.core.crypto import DataKeyRing
from app.core.errors import InvalidCursor
from app.core.pagination import cursor_uuid, decode_cursor, encode_cursor, query_fingerprint
from app.custody import service as custody_service
from app.custody.schemas import timeline_exclusion
from app.persons import service as persons_service
from app.recognition import service as recognition_service
from app.recognition.schemas import decision_read
from app.sources import service as sources_service
from app.sync import repository
from app.sync.repository import Delivered, Ref
from app.sync.schemas import ChangeKind, FeedItem, FeedPhase

NO_ID = uuid.UUID(int=0)
# Records looked at per request, at most, as a multiple of the page size: positions of
# records the partner was never handed are passed over, but not without end.
LOOKED_AT_PER_ITEM = 4
# The largest audit number a cursor may name (PostgreSQL's bigint).
LAST_SEQ = 2**63 - 1
ANCHOR_BYTES = 8


class Stage(StrEnum):
    persons = "persons"  # the snapshot's persons
    cases = "cases"  # the snapshot's case files
    gone = "gone"  # tombstones of what was handed before and is no longer shared
    changes = "changes"


KINDS_AFTER = {"", "person", "case"}
SNAPSHOT = frozenset({Stage.persons, Stage.cases})


@dataclass(frozen=True)
class Position:
    # Changes numbered after this come in the `changes` stage.
    seq: int
    # The first bytes of the hash of the audit event numbered `seq` (hex; empty at 0).
    anchor: str
    # The agreement and the access rules the snapshot was taken under (a hash of both).
    terms: str
    stage: Stage
    # The last record handed in this stage (in `changes`: at `seq`).
    after: Ref = ("", NO_ID)
    # During a snapshot that restarted the feed: how far the partner had read before
    # (what it was handed after that, it may not have received).
    settled: int = 0


@dataclass
class Feed:
    # Each item handed over as the partner receives it (a FeedItem's JSON, its fields up
    # to the partner's tier): made once, for its content hash and for the answer.
    items: list[dict[str, Any]] = field(default_factory=list)
    seen: list[tuple[uuid.UUID, Tier]] = field(default_factory=list)


@dataclass(frozen=True)
class ChangesPage:
    """A page of the feed as `FeedPage` documents it, its items already as JSON values."""

    items: list[dict[str, Any]]
    next: str
    phase: FeedPhase
    caught_up: bool
    reset: bool

    def document(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "next": self.next,
            "phase": self.phase.value,
            "caught_up": self.caught_up,
            "reset": self.reset,
        }


@cache
def _rules() -> str:
    """A hash of the access rules a partner's copy was made under: a release that shows a
    partner more or less of a record starts the feed again."""
    tiers = orjson.dumps(
        {"fields": FIELD_TIERS, "nested": NESTED_TIERS, "records": RECORD_TIERS},
        option=orjson.OPT_SORT_KEYS,
    )
    policies = b"".join(path.read_bytes() for path in sorted(POLICY_DIRECTORY.glob("*.cedar")))
    return hashlib.sha256(tiers + policies).hexdigest()


def agreement_terms(agreement: SharingAgreement | None) -> str:
    terms: dict[str, Any] = {"rules": _rules()}
    if agreement is not None:
        terms |= {
            "jurisdiction": agreement.jurisdiction,
            "recognised_only": agreement.recognised_only,
            "case_file_ids": sorted(str(case_id) for case_id in agreement.case_file_ids),
            "max_tier": agreement.max_tier.name,
        }
    return query_fingerprint(terms)


def _fingerprint(partner_id: uuid.UUID) -> str:
    return query_fingerprint({"feed": "sync/changes", "partner": str(partner_id)})


def encode_position(position: Position, partner_id: uuid.UUID) -> str:
    kind, after_id = position.after
    return encode_cursor(
        [
            position.seq,
            position.anchor,
            position.terms,
            position.stage.value,
            kind,
            str(after_id),
            position.settled,
        ],
        _fingerprint(partner_id),
    )


def _seq(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= LAST_SEQ:
        raise InvalidCursor("The cursor is damaged.")
    return value


def decode_position(cursor: str, partner_id: uuid.UUID) -> Position:
    seq, anchor, terms, stage, kind, after_id, settled = decode_cursor(
        cursor, _fingerprint(partner_id), 7
    )
    if not (
        isinstance(anchor, str)
        and isinstance(terms, str)
        and isinstance(stage, str)
        and stage in Stage.__members__
        and isinstance(kind, str)
        and kind in KINDS_AFTER
    ):
        raise InvalidCursor("The cursor is damaged.")
    return Position(
        _seq(seq), anchor, terms, Stage(stage), (kind, cursor_uuid(after_id)), _seq(settled)
    )


def _anchor(digest: bytes | None) -> str:
    return digest[:ANCHOR_BYTES].hex() if digest else ""


async def _still_there(session: AsyncSession, position: Position, head: int) -> bool:
    """Whether the audit trail still holds the event the cursor was made at (not after a
    restore from an older backup)."""
    if position.seq > head:
        return False
    if position.seq == 0:
        return position.anchor == ""
    return _anchor(await repository.hash_at(session, position.seq)) == position.anchor


async def read_changes(
    session: AsyncSession,
    caller: Caller,
    keys: DataKeyRing,
    *,
    cursor: str | None,
    limit: int,
) -> tuple[ChangesPage, list[tuple[uuid.UUID, Tier]]]:
    """A page of the feed from `cursor`, and what it showed (for the audit trail)."""
    partner_id = caller.principal.id
    terms = agreement_terms(caller.principal.agreement)
    position = decode_position(cursor, partner_id) if cursor else None
    head, head_hash = await repository.head(session)
    snapshot = Position(head, _anchor(head_hash), terms, Stage.persons)
    reset = False
    if position is None:
        position = snapshot
    elif not await _still_there(session, position, head):
        position, reset = snapshot, True
    elif position.terms != terms:
        # What the partner had read up to (during a snapshot: what it had before it).
        settled = position.seq if position.stage is Stage.changes else position.settled
        position = replace(snapshot, settled=settled)
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
    page = ChangesPage(
        items=feed.items,
        next=encode_position(position, partner_id),
        phase=FeedPhase.changes if position.stage is Stage.changes else FeedPhase.snapshot,
        caught_up=caught_up,
        reset=reset,
    )
    return page, feed.seen


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
    if position.stage in SNAPSHOT:
        kind = "person" if position.stage is Stage.persons else "case"
        read_ids = (
            persons_service.readable_ids_after
            if kind == "person"
            else cases_service.readable_ids_after
        )
        ids = await read_ids(session, caller, after_id if after_id != NO_ID else None, wanted)
        refs = [(kind, record_id) for record_id in ids]
        await _hand_over(
            session, caller, keys, refs, [position.seq] * len(refs), feed, position=position
        )
        if len(ids) == wanted:
            return replace(position, after=refs[-1]), False
        following = Stage.cases if kind == "person" else Stage.gone
        return replace(position, stage=following, after=("", NO_ID)), False
    if position.stage is Stage.gone:
        refs = await repository.delivered_after(session, partner_id, position.after, wanted)
        # A record the partner still reads is not handed over in this stage: only those
        # that left are read further (for their tombstone or redirect).
        departed = await _departed(session, caller, refs)
        await _hand_over(
            session,
            caller,
            keys,
            departed,
            [position.seq] * len(departed),
            feed,
            position=position,
        )
        if len(refs) == wanted:
            return replace(position, after=refs[-1]), False
        return replace(position, stage=Stage.changes, after=("", NO_ID), settled=0), False
    rows = await repository.changes_after(session, (position.seq, *position.after), wanted)
    await _hand_over_changes(session, caller, keys, rows, feed, position=position)
    if rows:
        seq, kind, record_id = rows[-1]
        position = replace(position, seq=seq, after=(kind, record_id))
        position = replace(position, anchor=_anchor(await repository.hash_at(session, seq)))
    return position, len(rows) < wanted


async def _departed(session: AsyncSession, caller: Caller, refs: Sequence[Ref]) -> list[Ref]:
    """The records among `refs` the partner may no longer read, in their order: as
    _hand_over decides it (a person whose recognition it may not read counts as gone, as
    there), without reading what the others show."""
    persons = await persons_service.readable_resources(
        session, caller, [record_id for kind, record_id in refs if kind == "person"]
    )
    readable_persons = {
        person_id
        for person_id, resource in persons.items()
        if recognition_service.may_read(caller, resource)
    }
    readable_cases = await cases_service.readable_among(
        session, caller, [record_id for kind, record_id in refs if kind == "case"]
    )
    still = {("person", person_id) for person_id in readable_persons}
    still |= {("case", case_id) for case_id in readable_cases}
    return [ref for ref in refs if ref not in still]


def _every(hidden: dict[str, Any]) -> dict[str, Any]:
    """An exclusion for each item of a list field (none when nothing is hidden)."""
    return {"__all__": hidden} if hidden else {}


def _person_item(
    seq: int, view: persons_service.PersonView, recognition: recognition_service.Recognition
) -> tuple[FeedItem, dict[str, Any]]:
    """A person as the partner may read them, and what to leave out of the item."""
    item = FeedItem(
        seq=seq,
        kind="person",
        id=view.person.id,
        change=ChangeKind.upsert,
        person=view.read(),
        recognition=[
            decision_read(decision, recognition.coverage.get(decision.id, []))
            for decision in recognition.decisions
        ],
    )
    hidden = {
        "person": hidden_fields("person", view.clearance),
        "recognition": _every(exclusion("recognition_decision", recognition.clearance)),
    }
    return item, {field: value for field, value in hidden.items() if value}


def _case_item(
    seq: int,
    view: cases_service.CaseView,
    entries: Sequence[HistoryEntry],
    custody: custody_service.TimelineView,
) -> tuple[FeedItem, dict[str, Any]]:
    """A case file with its path and custody timeline, and what to leave out of the item."""
    item = FeedItem(
        seq=seq,
        kind="case",
        id=view.case.id,
        change=ChangeKind.upsert,
        case=case_read(view.case),
        status_events=[entry_read(entry) for entry in entries],
        custody=custody.timeline,
    )
    hidden = {
        "case": hidden_fields("case", view.clearance),
        "status_events": _every(exclusion("status_event", view.clearance)),
        "custody": timeline_exclusion(custody.clearance),
    }
    return item, {field: value for field, value in hidden.items() if value}


def _shown(item: FeedItem, hidden: dict[str, Any]) -> dict[str, Any]:
    """What the partner receives of a record, whatever its number."""
    return item.model_dump(mode="json", exclude={"seq": True, **hidden})


def _content_hash(shown: dict[str, Any]) -> bytes:
    return hashlib.sha256(orjson.dumps(shown, option=orjson.OPT_SORT_KEYS)).digest()


# Where a record shown to a partner cites sources, by kind: the keys from the item down to
# each `source_ids` list, lists passed through (events, their claims' settlements, custody
# entries and their ends, recognition decisions).
CITATIONS: dict[str, tuple[tuple[str, ...], ...]] = {
    # (decisions that cover a case file the partner is not shared are passed over: their
    # sources may be about that one)
    "person": (("recognition", "source_ids"),),
    "case": (
        ("status_events", "source_ids"),
        ("status_events", "claim", "source_ids"),
        ("custody", "entries", "source_ids"),
        ("custody", "entries", "end", "source_ids"),
    ),
}


def _cited(
    kind: str, shown: dict[str, Any], partly_shared: Collection[uuid.UUID]
) -> set[uuid.UUID]:
    """Every source a record cites where the partner is shown the citation, but for the
    decisions in `partly_shared`."""
    found: set[uuid.UUID] = set()
    if partly_shared and shown.get("recognition"):
        shown = {
            **shown,
            "recognition": [
                decision
                for decision in shown["recognition"]
                if uuid.UUID(decision["id"]) not in partly_shared
            ],
        }
    for path in CITATIONS[kind]:
        level: list[Any] = [shown]
        for key in path:
            following = []
            for value in level:
                for one in value if isinstance(value, list) else [value]:
                    inner = one.get(key) if isinstance(one, dict) else None
                    if inner is not None:
                        following.append(inner)
            level = following
        for source_ids in level:
            found.update(uuid.UUID(source_id) for source_id in source_ids)
    return found


@dataclass
class _Candidate:
    """A record the feed may hand over: what the partner would receive of it, and whether
    (at which clearance) it reads it, with the sources put beside it."""

    ref: Ref
    seq: int
    shown: dict[str, Any]
    read: tuple[uuid.UUID, Tier] | None
    sources: dict[uuid.UUID, Tier] = field(default_factory=dict)


async def _with_sources(
    session: AsyncSession,
    caller: Caller,
    keys: DataKeyRing,
    upserts: Sequence[_Candidate],
    partly_shared: Collection[uuid.UUID],
) -> None:
    """Put beside each upserted record the sources it cites, as the partner may read them,
    in what it shows and so in its content hash: a list (maybe empty) at the restricted
    tier, where citations are shown; none below it."""
    shown_citations = [
        candidate
        for candidate in upserts
        if candidate.read is not None and candidate.read[1] >= Tier.restricted
    ]
    cited_by = [
        _cited(candidate.ref[0], candidate.shown, partly_shared) for candidate in shown_citations
    ]
    sources = await sources_service.cited_by_shared_records(
        session, caller, set().union(*cited_by) if cited_by else set(), keys=keys
    )
    for candidate, cited in zip(shown_citations, cited_by, strict=True):
        views = [sources[source_id] for source_id in sorted(cited) if source_id in sources]
        candidate.shown["sources"] = [
            view.read().model_dump(mode="json", exclude=exclusion("source", view.clearance))
            for view in views
        ]
        candidate.sources = {view.source.id: view.clearance for view in views}


def _received(before: Delivered, ref: Ref, stage: Stage, position: Position) -> bool:
    """Whether the partner surely received what it was handed of a record: its cursor has
    passed the point it was handed at (after a restart: the point it had read up to, a
    tie sent again rather than lost)."""
    if stage is Stage.gone:
        return before.seq < position.settled
    if before.in_snapshot:
        return before.seq <= position.seq
    return (before.seq, *ref) <= (position.seq, *position.after)


def _worth_sending(
    stage: Stage,
    before: Delivered | None,
    ref: Ref,
    content_hash: bytes,
    position: Position,
    *,
    readable: bool,
) -> bool:
    """Whether to hand an item over: in a snapshot, every record the partner may read; a
    departure only to a partner that held the record; otherwise only what differs from
    what the partner holds, or what it may not have received (a page read again after
    its answer was lost)."""
    if stage in SNAPSHOT:
        return readable
    if before is None:
        return readable and stage is Stage.changes
    if stage is Stage.gone and readable:
        return False
    return before.content_hash != content_hash or not _received(before, ref, stage, position)


# Changes looked at in one go when asking whether a partner has news.
NEWS_CHUNK = 500
# After every kind and id: a position past which everything handed at a number counts as
# received.
_PAST_ALL: Ref = ("~", uuid.UUID(int=2**128 - 1))


async def has_news(
    session: AsyncSession, caller: Caller, keys: DataKeyRing, *, after: int, upto: int
) -> bool:
    """Whether the partner's feed would hand it anything for the writes numbered after
    `after`, up to `upto`: decided as the feed decides it (a record it may read that it
    does not hold as it is now, or the departure of one it holds), recording nothing. A
    change it may not see (another case file of a person it shares, a field above its
    tier, a record it was told is gone) is no news (app/sync/webhooks.py)."""
    # Past everything: what was handed over (at any number) counts as received, so that
    # only a difference of content is news.
    position = Position(2**63 - 1, "", "", Stage.changes, after=_PAST_ALL)
    cursor: tuple[int, str, uuid.UUID] = (after, "", NO_ID)
    while True:
        rows = [
            row
            for row in await repository.changes_after(session, cursor, NEWS_CHUNK)
            if row[0] <= upto
        ]
        if not rows:
            return False
        feed = Feed()
        await _hand_over_changes(
            session, caller, keys, rows, feed, position=position, deliver=False
        )
        if feed.items:
            return True
        if len(rows) < NEWS_CHUNK:
            return False
        cursor = rows[-1]


async def _hand_over_changes(
    session: AsyncSession,
    caller: Caller,
    keys: DataKeyRing,
    rows: Sequence[tuple[int, str, uuid.UUID]],
    feed: Feed,
    *,
    position: Position,
    deliver: bool = True,
) -> None:
    """The records changed at these numbers, each at its number (see _hand_over)."""
    await _hand_over(
        session,
        caller,
        keys,
        [(kind, record_id) for _, kind, record_id in rows],
        [seq for seq, _, _ in rows],
        feed,
        position=position,
        deliver=deliver,
    )


async def _hand_over(
    session: AsyncSession,
    caller: Caller,
    keys: DataKeyRing,
    refs: Sequence[Ref],
    seqs: Sequence[int],
    feed: Feed,
    *,
    position: Position,
    deliver: bool = True,
) -> None:
    """Each record as the partner may read it now: its state, or, when it may not and was
    handed to the partner before, its departure (a tombstone or a redirect)."""
    if not refs:
        return
    stage = position.stage
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
    recognitions = await recognition_service.of_readable(session, caller, list(persons.values()))
    timelines = await custody_service.timelines_of(
        session, [(view.case.id, view.clearance) for view, _ in cases.values()]
    )
    partner_id = caller.principal.id
    # A snapshot hands over every record the partner may read, whatever it holds.
    before = {} if stage in SNAPSHOT else await repository.delivered(session, partner_id, refs)
    unreadable_persons = [
        record_id
        for kind, record_id in before
        if kind == "person" and record_id not in recognitions
    ]
    merged = await persons_service.merged_into(session, unreadable_persons)
    readable_targets = {
        view.person.id
        for view in await persons_service.readable_views(
            session, caller, keys, sorted(set(merged.values()))
        )
    }
    candidates: list[_Candidate] = []
    for (kind, record_id), seq in zip(refs, seqs, strict=True):
        read: tuple[uuid.UUID, Tier] | None = None
        if kind == "person" and record_id in recognitions:
            item, hidden = _person_item(seq, persons[record_id], recognitions[record_id])
            read = (record_id, persons[record_id].clearance)
        elif kind == "case" and record_id in timelines:
            case_view, entries = cases[record_id]
            item, hidden = _case_item(seq, case_view, entries, timelines[record_id])
            read = (record_id, case_view.clearance)
        else:
            target = merged.get(record_id)
            redirect = target is not None and target in readable_targets
            item = FeedItem(
                seq=seq,
                kind="person" if kind == "person" else "case",
                id=record_id,
                change=ChangeKind.redirect if redirect else ChangeKind.tombstone,
                merged_into=target if redirect else None,
            )
            hidden = {}
        candidates.append(_Candidate((kind, record_id), seq, _shown(item, hidden), read))
    partly_shared = {
        decision_id
        for recognition in recognitions.values()
        for decision_id in recognition.partly_unseen
    }
    await _with_sources(
        session,
        caller,
        keys,
        [candidate for candidate in candidates if candidate.read],
        partly_shared,
    )
    handed: list[tuple[Ref, Delivered]] = []
    sources_seen: dict[uuid.UUID, Tier] = {}
    for candidate in candidates:
        content_hash = _content_hash(candidate.shown)
        ref = candidate.ref
        if not _worth_sending(
            stage, before.get(ref), ref, content_hash, position, readable=bool(candidate.read)
        ):
            continue
        # As FeedItem dumps it: the number first, then what it shows.
        feed.items.append({"seq": candidate.seq, **candidate.shown})
        if candidate.read is not None:
            feed.seen.append(candidate.read)
            sources_seen.update(candidate.sources)
        in_snapshot = stage in SNAPSHOT
        handed.append((ref, Delivered(content_hash, candidate.seq, in_snapshot)))
    # Each source handed over is a reading of it, at the tier it was shown.
    feed.seen.extend(sorted(sources_seen.items()))
    if deliver:
        await repository.deliver(session, partner_id, handed)

"""Mirroring another Habeas: the pages of its change feed applied here, each in one
transaction with the cursor that follows it (so that a pull killed anywhere resumes from
the last page it committed, and a page read twice changes nothing); and what our
coordinators read of the mirrored records."""

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError
from sqlmodel.ext.asyncio.session import AsyncSession

from app.access.caller import Caller
from app.access.principal import Tier
from app.audit.journal import change, journal_of
from app.core.errors import Conflict, DomainError, NotFound
from app.core.ids import new_id
from app.core.pagination import PageRequest, id_keyset_page
from app.mirrors import repository
from app.mirrors.repository import Current, Mirrored, Upstream, Write
from app.mirrors.schemas import MirroredState, UpstreamItem, UpstreamPage
from app.sync.schemas import ChangeKind

# The parts of a feed item that say what happened; the rest is the record.
ITEM_ENVELOPE = ("seq", "kind", "id", "change", "merged_into")
STATES_OF_CHANGES = {
    ChangeKind.upsert: MirroredState.live,
    ChangeKind.tombstone: MirroredState.gone,
    ChangeKind.redirect: MirroredState.redirect,
}


class UpstreamRefused(DomainError):
    """What the upstream answered cannot be mirrored (not its feed, or not as documented)."""

    status_code = 502
    slug = "upstream-invalid"
    title = "The upstream's answer cannot be mirrored"


class UpstreamMoved(Conflict):
    """Another pull moved the upstream's cursor meanwhile."""

    slug = "mirror-moved"
    title = "Another pull of this upstream moved its cursor"


@dataclass(frozen=True)
class Applied:
    """What one page did here."""

    upserted: int
    gone: int
    redirected: int
    unchanged: int
    forgotten: int
    caught_up: bool
    phase: str
    position: int
    cursor: str


def parse_page(raw: Mapping[str, Any]) -> UpstreamPage:
    try:
        page = UpstreamPage.model_validate(raw)
    except ValidationError as error:
        raise UpstreamRefused(
            f"Not a page of a change feed: {error.error_count()} problems."
        ) from None
    if any(
        (item.change is ChangeKind.redirect) != (item.merged_into is not None)
        for item in page.items
    ):
        raise UpstreamRefused("A redirect without its target, or a target without one.")
    return page


async def upstream_for(
    session: AsyncSession, base_url: str, client_id: str, now: datetime
) -> Upstream:
    """The upstream at this address read as this client, added on its first pull."""
    found = await repository.upstream_at(session, base_url, client_id)
    if found is not None:
        return found
    added = await repository.add_upstream(session, new_id(), base_url, client_id, now)
    if added is None:
        raise UpstreamMoved("Another pull added this upstream a moment ago: pull again.")
    journal_of(session).changed(
        "mirror.upstream_add",
        "mirror_upstream",
        added.id,
        changes=[
            change(
                "mirror_upstream",
                added.id,
                before=None,
                after={"base_url": base_url, "client_id": client_id},
            )
        ],
    )
    return added


def _body(item: UpstreamItem) -> dict[str, Any]:
    return {
        name: value for name, value in (item.model_extra or {}).items() if name not in ITEM_ENVELOPE
    }


def _snapshot(
    state: str, content_hash: bytes | None, merged_into: uuid.UUID | None
) -> dict[str, Any]:
    return {
        "state": state,
        "content_hash": None if content_hash is None else content_hash.hex(),
        "merged_into": None if merged_into is None else str(merged_into),
    }


async def apply_page(
    session: AsyncSession,
    upstream: Upstream,
    raw: Mapping[str, Any],
    now: datetime,
    *,
    read_from: str | None,
) -> Applied:
    """Apply one page read from the cursor `read_from`: its records as handed (the last
    item of a record wins), tombstones as the content deleted, redirects as pointers, a
    reset as every record forgotten first; then the cursor moves past it, only if it is
    still where the page was read from (else `UpstreamMoved`, nothing applied). Records
    that are as the page says already are left alone, so that a page read again (its
    commit was lost with the process) changes nothing and records nothing twice; a page
    that moves nothing (a caught-up feed asked again) writes nothing."""
    page = parse_page(raw)
    exists, cursor_here = await repository.lock_upstream(session, upstream.id)
    if not exists or cursor_here != read_from:
        raise UpstreamMoved(
            "Another pull of this upstream moved its cursor: this page is not applied."
        )
    if (
        not page.items
        and not page.reset
        and page.next == read_from
        and (page.phase.value, page.caught_up) == (upstream.phase, upstream.caught_up)
    ):
        return Applied(
            0, 0, 0, 0, 0, page.caught_up, page.phase.value, upstream.position, page.next
        )
    changes: list[dict[str, Any] | None] = []
    forgotten = 0
    if page.reset:
        for gone in await repository.forget_all(session, upstream.id, now):
            forgotten += 1
            changes.append(
                change(
                    f"mirror_{gone.kind}",
                    gone.id,
                    before=_snapshot(gone.state, gone.content_hash, gone.merged_into),
                    after=_snapshot("gone", None, None),
                )
            )
    last: dict[tuple[str, uuid.UUID], UpstreamItem] = {}
    for item in page.items:
        last.pop((item.kind.value, item.id), None)
        last[(item.kind.value, item.id)] = item
    held = await repository.current(session, upstream.id, list(last))
    writes, counts = _writes(last, held)
    await repository.write(session, upstream.id, writes, now)
    for written in writes:
        before = held.get((written.kind, written.upstream_record_id))
        changes.append(
            change(
                f"mirror_{written.kind}",
                written.id,
                before=None
                if before is None
                else _snapshot(before.state, before.content_hash, before.merged_into),
                after=_snapshot(written.state, written.content_hash, written.merged_into)
                | {"upstream_id": str(written.upstream_record_id)},
            )
        )
    if page.items:
        position = max(item.seq for item in page.items)
    else:
        position = 0 if page.reset else upstream.position
    await repository.advance(
        session,
        upstream.id,
        cursor=page.next,
        phase=page.phase.value,
        caught_up=page.caught_up,
        position=position,
        items=len(page.items),
        reset=page.reset,
        now=now,
    )
    journal_of(session).changed(
        "mirror.pull",
        "mirror_upstream",
        upstream.id,
        changes=changes,
        detail={
            "items": len(page.items),
            "position": position,
            "phase": page.phase.value,
            "reset": page.reset,
            "caught_up": page.caught_up,
        },
    )
    return Applied(
        upserted=counts["live"],
        gone=counts["gone"],
        redirected=counts["redirect"],
        unchanged=counts["unchanged"],
        forgotten=forgotten,
        caught_up=page.caught_up,
        phase=page.phase.value,
        position=position,
        cursor=page.next,
    )


def _writes(
    last: Mapping[tuple[str, uuid.UUID], UpstreamItem],
    held: Mapping[tuple[str, uuid.UUID], Current],
) -> tuple[list[Write], dict[str, int]]:
    writes: list[Write] = []
    counts = {"live": 0, "gone": 0, "redirect": 0, "unchanged": 0}
    for (kind, record_id), item in last.items():
        state = STATES_OF_CHANGES[item.change].value
        body = (
            orjson.dumps(_body(item), option=orjson.OPT_SORT_KEYS).decode()
            if state == "live"
            else None
        )
        content_hash = None if body is None else hashlib.sha256(body.encode()).digest()
        before = held.get((kind, record_id))
        if before is None and state == "gone":
            # A tombstone of a record never held here: nothing to delete.
            counts["unchanged"] += 1
            continue
        if before is not None and (before.state, before.content_hash, before.merged_into) == (
            state,
            content_hash,
            item.merged_into,
        ):
            counts["unchanged"] += 1
            continue
        counts[state] += 1
        writes.append(
            Write(
                id=before.id if before is not None else new_id(),
                kind=kind,
                upstream_record_id=record_id,
                state=state,
                body=body,
                content_hash=content_hash,
                merged_into=item.merged_into,
                upstream_seq=item.seq,
            )
        )
    return writes, counts


# What our staff read ---------------------------------------------------------------------


async def listed(session: AsyncSession, caller: Caller) -> list[Upstream]:
    del caller  # the policy decided; the list holds no case content
    return await repository.upstreams(session)


async def records(
    session: AsyncSession,
    caller: Caller,
    upstream_id: uuid.UUID,
    *,
    kind: str,
    states: Sequence[str],
    page: PageRequest,
) -> tuple[list[Mirrored], str | None]:
    """A page of an upstream's mirrored records, in our ids' order; their reading is
    recorded (what upstreams share may be above the public tier)."""
    del caller  # the policy decided: only coordinators read mirrored records
    if await repository.upstream(session, upstream_id) is None:
        raise NotFound("No such mirror.")

    async def fetch(after: uuid.UUID | None, limit: int) -> list[Mirrored]:
        return await repository.records(session, upstream_id, kind, states, after, limit)

    rows, next_cursor = await id_keyset_page(
        fetch,
        {"upstream": str(upstream_id), "kind": kind, "states": sorted(states)},
        cursor=page.cursor,
        limit=page.limit,
    )
    journal_of(session).viewed_page(
        "mirror.read",
        "mirror_record",
        [(row.id, Tier.restricted) for row in rows],
        detail={"upstream": str(upstream_id), "kind": kind},
    )
    return rows, next_cursor

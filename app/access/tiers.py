"""Every field's tier, in one table (DESIGN §4). A caller receives the fields up to its
clearance on the record, and the others are absent; input that sets a field above the
caller's clearance is refused, never silently dropped.

A test checks that every field of every response model is listed here, so a new field
cannot be added without deciding its tier.
"""

from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Any

from app.access.principal import Tier
from app.core.errors import Forbidden

P, R, C = Tier.public, Tier.restricted, Tier.confidential

FIELD_TIERS: Mapping[str, Mapping[str, Tier]] = {
    "person": {
        "id": P,
        "names": P,  # but a name marked not public is at PRIVATE_NAME_TIER
        "gender": P,
        "citizenships": P,
        "region": P,
        "occupation": P,
        "affiliations": P,
        "recognition_status": P,
        "version": P,
        "created_at": P,
        "updated_at": P,
        "birth_date": R,
        "special_risk": R,
        "publish_consent": R,
        "health": R,
        "lawyer": R,
        "notes": R,
        "relatives": C,
        "contacts": C,
        "address": C,
        # who intake stated is someone else: the likeness may rest on a private name
        "confirmed_distinct_from": C,
    },
    "case": {
        "id": P,
        "person_id": P,
        "reference": P,
        "jurisdiction": P,
        "deprivation_type": P,
        "charges": P,
        "court_decisions": P,
        "court_decisions_unmatched": P,
        "status": P,
        "status_since": P,
        "in_custody": P,
        "status_confidence": P,
        "sentence_type": P,
        "pending_claims": P,
        "detained_on": P,
        "version": P,
        "created_at": P,
        "updated_at": P,
        "recognition_status": P,
        "former_political_prisoner": P,
        "confidentiality": R,
        "assigned_caseworkers": R,
        "detention_places": R,
        # status events and collective outcomes
        "status_history": P,
    },
    "status_event": {
        "id": P,
        "case_file_id": P,
        "position": P,
        "state": P,
        "supersedes": P,
        "claim": P,
        "from_status": P,
        "to_status": P,
        "effective_date": P,
        "confidence": P,
        "collective_event_id": P,
        "recorded_at": P,
        "retraction": P,
        "note": R,
        "details": R,
        "source_ids": R,
        "recorded_by": R,
        "reported_by_partner": R,
    },
    "recognition_decision": {
        "id": P,
        "person_id": P,
        "version": P,
        "status": P,
        "criteria": P,
        "decided_on": P,
        "recorded_at": P,
        "case_file_ids": P,
        "co_signers": R,
        "rationale": R,
        "exclusion_reason": R,
        "exclusion_code": R,
        "source_ids": R,
        "decided_by": R,
    },
    "source": {
        "id": P,
        "publisher": P,
        "title": P,
        "url": P,
        "published_on": P,
        "reliability": P,
        "credibility": P,
        "is_public": P,
        "version": P,
        "created_at": P,
        "witness": C,
        "recorded_by": R,
    },
    "facility": {
        "id": P,
        "names": P,
        "country": P,
        "region": P,
        "type": P,
        "version": P,
        "created_at": P,
        "updated_at": P,
    },
    # One entry of a custody timeline; whole entries have tiers too (RECORD_TIERS).
    "custody_event": {
        "id": P,
        "case_file_id": P,
        "kind": P,
        "effective_date": P,
        "confidence": P,
        "recorded_at": P,
        "retraction": P,
        "end": P,
        "facility_id": P,
        "from_facility_id": P,
        "details": P,
        "note": R,
        "source_ids": R,
        "recorded_by": R,
    },
    "custody_timeline": {
        "case_file_id": P,
        "entries": P,
        # where the person is held, and whether anyone knows: restricted (DESIGN §2)
        "current_facility_id": R,
        "incommunicado": R,
    },
}


# Fields inside a nested object, by kind and field: a retraction is public (a partner must
# know an event was withdrawn), why and by whom is not.
NESTED_TIERS: Mapping[str, Mapping[str, Mapping[str, Tier]]] = {
    "status_event": {
        "retraction": {"reason": R, "recorded_by": R},
        "claim": {"reason": R, "source_ids": R, "recorded_by": R},
    },
    "custody_event": {
        "retraction": {"reason": R, "recorded_by": R},
        "end": {"note": R, "source_ids": R, "recorded_by": R},
    },
}


# Records that are whole at a tier, by kind of record and its own kind: a caller below it
# does not receive the record at all. The places of detention and what happens to a
# person's health in custody are restricted (DESIGN §2, "Custody timeline"); a new charge
# and the expected release date are as public as the charges and the status.
RECORD_TIERS: Mapping[str, Mapping[str, Tier]] = {
    "custody_event": {
        "transfer": R,
        "incommunicado": R,
        "hunger_strike": R,
        "punishment_cell": R,
        "new_charge": P,
        "expected_release": P,
    },
}


def record_shown(kind: str, record_kind: str, clearance: Tier) -> bool:
    """Whether a caller with this clearance receives a `kind` record of this own kind (an
    unlisted one is confidential)."""
    return RECORD_TIERS[kind].get(record_kind, C) <= clearance


def exclusion(kind: str, clearance: Tier) -> dict[str, Any]:
    """What to leave out of a `kind` record for this clearance, as pydantic's `exclude`
    (a dict of the caller's own: made once per kind and clearance, copied)."""
    return dict(_exclusion(kind, clearance))


@cache
def _exclusion(kind: str, clearance: Tier) -> dict[str, Any]:
    excluded: dict[str, Any] = dict.fromkeys(_HIDDEN[kind][clearance], True)
    for field, inner in NESTED_TIERS.get(kind, {}).items():
        hidden = {name: True for name, tier in inner.items() if tier > clearance}
        if hidden and field not in excluded:
            excluded[field] = hidden
    return excluded


def hidden_fields(kind: str, clearance: Tier) -> set[str]:
    """The fields of a `kind` record that a caller with this clearance does not receive."""
    return set(_HIDDEN[kind][clearance])


# A name the family asked to keep out of public lists is confidential: a caller below this
# clearance on the person does not receive it, nor find the person by it.
PRIVATE_NAME_TIER = C


def shows_name(*, is_public: bool, clearance: Tier) -> bool:
    """Whether a caller with this clearance on a person receives one of their names."""
    return is_public or clearance >= PRIVATE_NAME_TIER


def page_exclusion(kind: str, clearances: Sequence[Tier]) -> dict[str, Any]:
    """What to leave out of each item of a page of `kind` records, as pydantic's `exclude`
    of a `Page`: each item by the caller's clearance on that record."""
    return {"items": {index: hidden_fields(kind, tier) for index, tier in enumerate(clearances)}}


_HIDDEN: Mapping[str, Mapping[Tier, frozenset[str]]] = {
    kind: {
        clearance: frozenset(field for field, tier in fields.items() if tier > clearance)
        for clearance in Tier
    }
    for kind, fields in FIELD_TIERS.items()
}


# What a partner never writes, whatever its tier (app/sync/push.py): who may see a case
# file (its confidentiality, its jurisdiction) and who works on it are our coordinators'
# decisions; that two persons are distinct rests on names it may not see; sources are
# ours (a partner reads them only in its feed, beside what it shares that cites them). A
# private or hidden name it may not write either.
PARTNERS_NEVER_SET: Mapping[str, frozenset[str]] = {
    "case": frozenset({"confidentiality", "jurisdiction", "assigned_caseworkers"}),
    "person": frozenset({"confirmed_distinct_from"}),
    "status_event": frozenset({"source_ids"}),
}


def refuse_fields_partners_never_set(kind: str, fields: Iterable[str]) -> None:
    named = sorted(set(fields) & PARTNERS_NEVER_SET[kind])
    if named:
        raise Forbidden(
            "A partner may not set these fields: " + ", ".join(named) + ".", fields=named
        )


def refuse_names_partners_never_set(names: Iterable[Any]) -> None:
    """A partner writes public names only: a private or hidden one is ours to keep."""
    if any(not shows_name(is_public=name.is_public, clearance=Tier.restricted) for name in names):
        raise Forbidden(
            "A partner writes public names only; a private or hidden name is ours to keep.",
            fields=["names"],
        )


def refuse_fields_above(kind: str, fields: Iterable[str], clearance: Tier) -> None:
    """No mass assignment: writing a field above the caller's clearance is refused."""
    tiers = FIELD_TIERS[kind]
    above = sorted(field for field in fields if tiers.get(field, C) > clearance)
    if above:
        raise Forbidden("You may not set these fields: " + ", ".join(above) + ".", fields=above)

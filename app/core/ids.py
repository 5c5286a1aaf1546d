"""Identifiers: UUIDv7, made in Python so that PostgreSQL 15 (no `uuidv7()`) works too."""

import random
import uuid

import uuid_utils.compat


def new_id() -> uuid.UUID:
    return uuid_utils.compat.uuid7()


def deterministic_uuid7(timestamp_ms: int, rng: random.Random) -> uuid.UUID:
    """A UUIDv7 whose random bits come from `rng`, so that seeded demo data is reproducible."""
    value = (timestamp_ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= rng.getrandbits(12) << 64
    value |= 0b10 << 62
    value |= rng.getrandbits(62)
    return uuid.UUID(int=value)

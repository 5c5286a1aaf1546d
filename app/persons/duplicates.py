"""The scan of the whole database for persons recorded twice (`habeas persons duplicates`,
the worker's schedule, and what `GET /person-duplicates` lists).

Comparing every pair of a million persons is out of reach, so pairs are blocked: a block
is two words of one name in some reading of each (the name keys of app/persons/names.py,
given-name forms joined), and only persons who share a block are compared. A block larger
than BLOCK_LIMIT (a common first name and surname) is split by birth year; one still larger
is left out and counted. Pairs stated to be two people (`person_distinction`) and merged
persons are never compared. The blocks are written to a scratch table and paired by
PostgreSQL; the pairs are scored page by page with the duplicate check's own scoring
(app/persons/matching.py), so memory stays bounded whatever the population.
"""

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations
from typing import Any

import asyncpg
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.clock import utcnow
from app.core.dates import Precision
from app.persons import matching, repository
from app.persons.models import PersonDuplicateScan
from app.persons.names import name_words, word_keys_with_name_forms, words

# Persons in one block compared pair by pair, at most (above: split by birth year).
BLOCK_LIMIT = 100
# Words of a name that make blocks (as the check's candidates: MATCH_WORDS).
BLOCK_WORDS = repository.MATCH_WORDS
COPY_ROWS = 20_000
SCORED_PAIRS = 2_000


class ScanRunning(Exception):
    """Another scan holds the scan's lock."""


# Written words whose keys one scan keeps (some 60 MB at most): a million persons' names
# hold far more distinct words, and the server's own cache (names.word_keys) is smaller.
SCAN_WORDS_KEPT = 250_000


class NameKeys:
    """The keys of names as one scan reads them: each written word's keys made once while
    it is among the SCAN_WORDS_KEPT most recently read."""

    def __init__(self) -> None:
        self._of_word = lru_cache(maxsize=SCAN_WORDS_KEPT)(word_keys_with_name_forms)

    def name_words(self, name: str) -> list[tuple[str, ...]]:
        return [keys for word in words(name) if (keys := self._of_word(word))]


def block_keys(names: Iterable[str], keys: NameKeys | None = None) -> set[str]:
    """The blocks of a person: each two words of one of their names, in each reading."""
    blocks: set[str] = set()
    for name in names:
        name_keys = keys.name_words(name) if keys is not None else name_words(name)
        for left, right in combinations(name_keys[:BLOCK_WORDS], 2):
            blocks.update(" ".join(sorted((a, b))) for a in left for b in right)
    return blocks


@dataclass(frozen=True)
class Candidate:
    person_id: uuid.UUID
    other_person_id: uuid.UUID
    score: float
    reasons: list[matching.Reason]


def _facts(row: asyncpg.Record, names: list[str], keys: NameKeys) -> matching.Facts:
    # Names read alike (a transliteration with the keys of the original) are compared once.
    forms: dict[tuple[tuple[str, ...], ...], matching.NameForm] = {}
    for name in names:
        name_keys = keys.name_words(name)
        forms.setdefault(tuple(name_keys), matching.NameForm(name, name_keys))
    precision = row["birth_date_precision"]
    return matching.Facts(
        names=list(forms.values()),
        birth_date=row["birth_date"],
        birth_precision=Precision(precision) if precision else None,
        gender=row["gender"],
        citizenships=row["citizenships"],
        region=row["region"],
    )


async def scan(
    session: AsyncSession,
    *,
    threshold: float = matching.DUPLICATE_THRESHOLD,
    found: Callable[[Candidate], None] | None = None,
) -> PersonDuplicateScan:
    """Scan every person; keep the pairs scoring at or above `threshold` (in place of the
    last scan's), each also handed to `found` as it is scored."""
    started = utcnow()
    driver = await repository.scan_open(session)
    if driver is None:
        raise ScanRunning("Another scan for persons recorded twice is running: try later.")
    keys = NameKeys()
    persons = 0
    rows: list[tuple[str, uuid.UUID, int | None]] = []
    current: uuid.UUID | None = None
    current_year: int | None = None
    names: list[str] = []

    async def flush_person() -> None:
        nonlocal persons
        if current is None:
            return
        persons += 1
        rows.extend((key, current, current_year) for key in block_keys(names, keys))
        if len(rows) >= COPY_ROWS:
            await repository.scan_add_blocks(driver, rows)
            rows.clear()

    async for row in repository.scan_names(driver):
        if row["person_id"] != current:
            await flush_person()
            current, current_year, names = row["person_id"], row["birth_year"], []
        names.append(row["value"])
    await flush_person()
    if rows:
        await repository.scan_add_blocks(driver, rows)
    blocks, skipped, pairs = await repository.scan_pairs(
        driver,
        block_limit=BLOCK_LIMIT,
        max_years_apart=matching.max_birth_years_apart(threshold),
    )

    result = PersonDuplicateScan(
        started_at=started,
        finished_at=started,
        threshold=threshold,
        persons=persons,
        blocks=blocks,
        blocks_skipped=skipped,
        pairs_compared=pairs,
        candidates=0,
    )
    await repository.scan_begin(session, result)
    kept = 0
    after = (uuid.UUID(int=0), uuid.UUID(int=0))
    while page := await repository.scan_pair_page(driver, after, SCORED_PAIRS):
        after = page[-1]
        ids = sorted({person_id for pair in page for person_id in pair})
        records, names_of = await repository.scan_facts(driver, ids)
        facts = {
            record["id"]: _facts(record, names_of.get(record["id"], []), keys) for record in records
        }
        found_here: list[tuple[uuid.UUID, uuid.UUID, float]] = []
        for one, other in page:
            if one not in facts or other not in facts:
                continue
            scored = matching.score_at_least(facts[other], facts[one], threshold)
            if scored is not None:
                score, reasons = scored
                found_here.append((one, other, score))
                if found is not None:
                    found(Candidate(one, other, score, reasons))
        # Written page by page: memory holds one page, whatever the population.
        await repository.scan_add_candidates(driver, result.id, found_here)
        kept += len(found_here)
    result.candidates = kept
    result.finished_at = utcnow()
    await repository.scan_finish(session, result)
    return result


def summary(result: PersonDuplicateScan) -> dict[str, Any]:
    """What a scan compared and found, as the command prints and the trail keeps it."""
    return {
        "threshold": result.threshold,
        "persons": result.persons,
        "blocks": result.blocks,
        "blocks_skipped": result.blocks_skipped,
        "pairs_compared": result.pairs_compared,
        "candidates": result.candidates,
        "seconds": round((result.finished_at - result.started_at).total_seconds(), 1),
    }

"""The duplicate check: how much a would-be person looks like a recorded one, and why.

A score in [0, 1] from the best-matching pair of names, moved by the facts that tell
people apart or together: the birth year (agrees, a year apart, conflicts), gender,
citizenships and region. Two spellings of one name share a key (app/persons/names.py);
words that share none are compared by the edit similarity of their most likely keys
(rapidfuzz), which catches what the rules do not fold (a letter dropped, Вераб'ёў against
Воробьёв).

The weights are rules as data (`WEIGHTS`); `DUPLICATE_THRESHOLD` is where intake stops
and asks. Both were set on the evaluation set in tests/persons/name_pairs (its note gives
the recall and precision they reach).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from rapidfuzz.distance import OSA

from app.core.dates import Precision

# A would-be person whose best candidate scores this much or more is refused at intake
# unless the caller states that they are a different person.
DUPLICATE_THRESHOLD = 0.85
# Candidates scoring less are not shown at all: a shared first name alone is not a match.
CANDIDATE_FLOOR = 0.6


@dataclass(frozen=True)
class Weights:
    # A name of one word (a surname alone) is weaker evidence than a full name.
    one_word_name: float = 0.75
    # A word of the longer name left unpaired (a surname the shorter lacks: Иван Иванович
    # against Иван Иванович Петров) costs this much, unless it is a patronymic.
    unpaired_word: float = 0.25
    # Words that share no key count by their keys' edit similarity above this floor.
    word_likeness_floor: float = 0.7
    birth_year_agrees: float = 0.05
    birth_year_near: float = -0.05
    birth_year_conflicts: float = -0.35
    # the same year, another month (both known to the month) or day (both to the day)
    birth_day_conflicts: float = -0.15
    gender_conflicts: float = -0.35
    citizenship_shared: float = 0.02
    citizenship_disjoint: float = -0.05
    region_agrees: float = 0.02


WEIGHTS = Weights()


class ReasonKind(StrEnum):
    name = "name"
    birth_date = "birth_date"
    gender = "gender"
    citizenship = "citizenship"
    region = "region"


class Verdict(StrEnum):
    same_spelling = "same_spelling"  # every word shares a key
    similar = "similar"  # some words only resemble each other
    agrees = "agrees"
    near = "near"
    conflicts = "conflicts"


@dataclass(frozen=True)
class Reason:
    kind: ReasonKind
    verdict: Verdict
    effect: float
    # For a name: the two spellings compared (the candidate's as the caller may see it).
    given: str | None = None
    recorded: str | None = None


@dataclass(frozen=True)
class NameForm:
    value: str
    words: Sequence[Sequence[str]]  # the keys of each word (names.name_words)


@dataclass(frozen=True)
class Facts:
    """What the check compares of a person, would-be or recorded."""

    names: Sequence[NameForm]
    birth_date: date | None = None
    birth_precision: Precision | None = None
    gender: str | None = None
    citizenships: Sequence[str] = ()
    region: str | None = None


def _word_similarity(left: Sequence[str], right: Sequence[str]) -> float:
    if not set(left).isdisjoint(right):
        return 1.0
    # Each word's most likely reading only: across every reading of both words, some
    # pair of different surnames comes a letter apart by chance.
    # Optimal string alignment: two neighbours swapped are one edit, as one letter wrong.
    ratio = OSA.normalized_similarity(left[0], right[0]) if left and right else 0.0
    # Keys half alike are different words (Сосновук, Сосновенко): only a close likeness
    # (a letter or two in a long word) counts for much.
    return max(0.0, (ratio - WEIGHTS.word_likeness_floor) / (1 - WEIGHTS.word_likeness_floor))


def name_similarity(given: NameForm, recorded: NameForm) -> tuple[float, bool]:
    """How alike two names are, and whether every word compared shares a key. Each word
    of the shorter name is paired with a word of the other, at most once each, best pairs
    first; words left over in the longer name (a patronymic, a second surname) are not
    held against it."""
    shorter, longer = sorted((given.words, recorded.words), key=len)
    if not shorter:
        return 0.0, False
    pairs = sorted(
        (
            (_word_similarity(word, other), i, j)
            for i, word in enumerate(shorter)
            for j, other in enumerate(longer)
        ),
        reverse=True,
    )
    used_short: set[int] = set()
    used_long: set[int] = set()
    total = 0.0
    exact = True
    for similarity, i, j in pairs:
        if i in used_short or j in used_long:
            continue
        used_short.add(i)
        used_long.add(j)
        total += similarity
        exact = exact and similarity == 1.0
    score = total / len(shorter)
    if len(shorter) == 1:
        return score * WEIGHTS.one_word_name, exact
    unpaired = [word for j, word in enumerate(longer) if j not in used_long]
    score -= WEIGHTS.unpaired_word * sum(1 for word in unpaired if not _patronymic(word))
    return max(0.0, score), exact


# The keys' endings of patronymics (-ович, -евич, -овна, -евна, -ична; -авіч, -аўна …).
_PATRONYMIC_ENDINGS = ("avic", "evic", "avna", "evna", "icna")


def _patronymic(word: Sequence[str]) -> bool:
    return any(key.endswith(_PATRONYMIC_ENDINGS) for key in word)


def _birth(given: Facts, recorded: Facts) -> Reason | None:
    if given.birth_date is None or recorded.birth_date is None:
        return None
    apart = abs(given.birth_date.year - recorded.birth_date.year)
    if apart >= 2:
        return Reason(ReasonKind.birth_date, Verdict.conflicts, WEIGHTS.birth_year_conflicts)
    if apart == 1:
        return Reason(ReasonKind.birth_date, Verdict.near, WEIGHTS.birth_year_near)
    finer = (Precision.month, Precision.day)
    if given.birth_precision in finer and recorded.birth_precision in finer:
        if given.birth_date.month != recorded.birth_date.month:
            return Reason(ReasonKind.birth_date, Verdict.conflicts, WEIGHTS.birth_day_conflicts)
        both_days = given.birth_precision == recorded.birth_precision == Precision.day
        if both_days and given.birth_date != recorded.birth_date:
            return Reason(ReasonKind.birth_date, Verdict.conflicts, WEIGHTS.birth_day_conflicts)
    return Reason(ReasonKind.birth_date, Verdict.agrees, WEIGHTS.birth_year_agrees)


_KNOWN_GENDERS = {"female", "male"}


def _others(given: Facts, recorded: Facts) -> list[Reason]:
    reasons = []
    if (
        given.gender in _KNOWN_GENDERS
        and recorded.gender in _KNOWN_GENDERS
        and given.gender != recorded.gender
    ):
        reasons.append(Reason(ReasonKind.gender, Verdict.conflicts, WEIGHTS.gender_conflicts))
    if given.citizenships and recorded.citizenships:
        if set(given.citizenships) & set(recorded.citizenships):
            reasons.append(
                Reason(ReasonKind.citizenship, Verdict.agrees, WEIGHTS.citizenship_shared)
            )
        else:
            reasons.append(
                Reason(ReasonKind.citizenship, Verdict.conflicts, WEIGHTS.citizenship_disjoint)
            )
    if given.region and recorded.region and given.region == recorded.region:
        reasons.append(Reason(ReasonKind.region, Verdict.agrees, WEIGHTS.region_agrees))
    return reasons


def score(given: Facts, recorded: Facts) -> tuple[float, list[Reason]]:
    """The likeness of a would-be person to a recorded one, in [0, 1], with its reasons:
    the best pair of names first, then each fact that moved the score."""
    found = score_at_least(given, recorded, 0.0)
    assert found is not None  # every score is at least 0
    return found


# The most the names can add: a pair of names that agree in every word.
_BEST_NAME_SIMILARITY = 1.0


def score_at_least(
    given: Facts, recorded: Facts, threshold: float
) -> tuple[float, list[Reason]] | None:
    """The score and its reasons, or None when the score is below `threshold`. The facts
    are weighed first: when even names alike in every word could not lift them to the
    threshold (born years apart, another gender), the names are not compared at all."""
    facts = _facts_reasons(given, recorded)
    effect = sum(reason.effect for reason in facts)
    if min(1.0, _BEST_NAME_SIMILARITY + effect) < threshold:
        return None
    best = _best_names(given, recorded)
    if best is None:
        return (0.0, []) if threshold <= 0.0 else None
    similarity, exact, mine, theirs = best
    total = min(1.0, max(0.0, similarity + effect))
    if total < threshold:
        return None
    name = Reason(
        ReasonKind.name,
        Verdict.same_spelling if exact else Verdict.similar,
        round(similarity, 3),
        given=mine.value,
        recorded=theirs.value,
    )
    return total, [name, *facts]


def max_birth_years_apart(threshold: float) -> int | None:
    """How many years apart two persons' birth years may be and the pair still reach
    `threshold` (None: any): the scan leaves the others out before comparing names."""
    best_others = WEIGHTS.citizenship_shared + WEIGHTS.region_agrees
    if _BEST_NAME_SIMILARITY + WEIGHTS.birth_year_conflicts + best_others < threshold:
        return 1
    return None


def _facts_reasons(given: Facts, recorded: Facts) -> list[Reason]:
    birth = _birth(given, recorded)
    return ([birth] if birth else []) + _others(given, recorded)


def _best_names(given: Facts, recorded: Facts) -> tuple[float, bool, NameForm, NameForm] | None:
    """The best-matching pair of names: the first found of the highest similarity."""
    best: tuple[float, bool, NameForm, NameForm] | None = None
    for mine in given.names:
        for theirs in recorded.names:
            similarity, exact = name_similarity(mine, theirs)
            if best is None or similarity > best[0]:
                best = (similarity, exact, mine, theirs)
                if similarity >= _BEST_NAME_SIMILARITY:
                    return best
    return best

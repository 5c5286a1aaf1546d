"""The scan's shortcuts give the duplicate check's own answer: scoring with a threshold
(facts first, names skipped when they could not help) keeps exactly the pairs the full
score keeps, with the same score and reasons; the scan's cache of word keys gives the
server's keys."""

from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from app.core.dates import Precision
from app.persons import matching
from app.persons.duplicates import NameKeys
from app.persons.names import name_words

FIRST = ["Алесь", "Aliaksandr", "Іван", "Ivan", "Ганна", "Hanna", "Вольга", "Olga"]
LAST = ["Шастак", "Shastak", "Shastakou", "Лабановіч", "Labanovich", "Кавальчук", "Kovalchuk"]
PATRONYMIC = ["Іванавіч", "Ivanovich", "Сяргееўна"]

names = st.lists(
    st.builds(
        lambda words: " ".join(words),
        st.lists(st.sampled_from(FIRST + LAST + PATRONYMIC), min_size=1, max_size=3),
    ),
    min_size=0,
    max_size=3,
)
facts = st.builds(
    lambda values, born, precision, gender, citizenships, region: matching.Facts(
        names=[matching.NameForm(value, name_words(value)) for value in values],
        birth_date=born,
        birth_precision=precision if born else None,
        gender=gender,
        citizenships=citizenships,
        region=region,
    ),
    names,
    st.none() | st.dates(min_value=date(1960, 1, 1), max_value=date(1966, 12, 31)),
    st.sampled_from([Precision.year, Precision.month, Precision.day]),
    st.sampled_from([None, "female", "male", "unknown"]),
    st.lists(st.sampled_from(["BY", "LT", "PL"]), max_size=2),
    st.sampled_from([None, "Minsk", "Hrodna"]),
)


@given(facts, facts, st.floats(min_value=0.0, max_value=1.0))
def test_scoring_with_a_threshold_keeps_what_the_full_score_keeps(
    given_facts: matching.Facts, recorded: matching.Facts, threshold: float
) -> None:
    full_score, full_reasons = matching.score(given_facts, recorded)
    bounded = matching.score_at_least(given_facts, recorded, threshold)
    if full_score >= threshold:
        assert bounded == (full_score, full_reasons)
    else:
        assert bounded is None


@given(facts, facts, st.floats(min_value=0.6, max_value=1.0))
def test_pairs_the_scan_leaves_out_by_birth_year_could_not_reach_the_threshold(
    given_facts: matching.Facts, recorded: matching.Facts, threshold: float
) -> None:
    limit = matching.max_birth_years_apart(threshold)
    if limit is None or given_facts.birth_date is None or recorded.birth_date is None:
        return
    if abs(given_facts.birth_date.year - recorded.birth_date.year) > limit:
        assert matching.score(given_facts, recorded)[0] < threshold


def test_the_birth_year_limit_follows_the_weights() -> None:
    # Born years apart, the best a pair can score is 1 - 0.35 + 0.04.
    assert matching.max_birth_years_apart(matching.DUPLICATE_THRESHOLD) == 1
    assert matching.max_birth_years_apart(0.6) is None


@given(names)
def test_the_scans_word_cache_gives_the_servers_keys(values: list[str]) -> None:
    keys = NameKeys()
    for value in values + values:
        assert keys.name_words(value) == name_words(value)

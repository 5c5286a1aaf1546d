"""The state machine as a table: every pair of statuses is either allowed or refused, and
a path is checked in effective order."""

import itertools
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.cases.statuses import (
    CUSTODIAL_SENTENCES,
    FINAL,
    INITIAL,
    TRANSITIONS,
    SentenceType,
    Status,
    Step,
    Violation,
    check_path,
    in_custody,
)
from app.core.dates import PartialDate

TODAY = date(2026, 11, 25)
S = Status

# DESIGN §2, restated by hand.
ALLOWED = {
    (S.charged, S.detained),
    (S.charged, S.sentenced),
    (S.charged, S.released),
    (S.detained, S.charged),
    (S.detained, S.sentenced),
    (S.detained, S.released),
    (S.detained, S.pardoned),
    (S.detained, S.deported),
    (S.detained, S.died_in_custody),
    (S.sentenced, S.sentenced),
    (S.sentenced, S.detained),
    (S.sentenced, S.charged),
    (S.sentenced, S.released),
    (S.sentenced, S.pardoned),
    (S.sentenced, S.deported),
    (S.sentenced, S.died_in_custody),
    (S.released, S.deported),
    (S.pardoned, S.deported),
}
STARTS = {S.detained, S.charged}


def step(status: Status, when: str, given: int = 0) -> Step:
    return Step(status, PartialDate.parse(when), given)


def _reach(status: Status) -> list[Step]:
    """A valid path ending in `status`, in 2020."""
    if status in STARTS:
        return [step(status, "2020-01-01")]
    return [step(S.detained, "2020-01-01"), step(status, "2020-02-01", 1)]


@pytest.mark.parametrize("source", list(Status))
@pytest.mark.parametrize("target", list(Status))
def test_each_pair_of_statuses_is_allowed_exactly_when_the_design_says(
    source: Status, target: Status
) -> None:
    path = _reach(source)
    assert check_path(path, TODAY) is None
    error = check_path([*path, step(target, "2020-03-01", 2)], TODAY)
    assert (error is None) == ((source, target) in ALLOWED)
    if error is not None:
        assert error.violation is Violation.not_allowed
        assert (error.from_status, error.to_status) == (source, target)


def test_detained_and_charged_are_the_only_starts() -> None:
    assert INITIAL == STARTS
    for status in Status:
        error = check_path([step(status, "2020-01-01")], TODAY)
        assert (error is None) == (status in STARTS)


def test_deported_and_died_in_custody_are_final() -> None:
    assert {S.deported, S.died_in_custody} == FINAL
    assert all(not TRANSITIONS[s] for s in FINAL)


@pytest.mark.parametrize("sentence", list(SentenceType))
def test_only_a_custodial_sentence_is_custody(sentence: SentenceType) -> None:
    custodial = {
        SentenceType.imprisonment,
        SentenceType.restriction_of_freedom_open_facility,
        SentenceType.compulsory_treatment,
    }
    assert custodial == CUSTODIAL_SENTENCES
    assert in_custody(S.sentenced, sentence) == (sentence in custodial)


def test_in_custody_is_detained_or_a_custodial_sentence_and_never_charged() -> None:
    assert in_custody(S.detained, None)
    assert not in_custody(S.charged, None)
    for status in (S.released, S.pardoned, S.deported, S.died_in_custody):
        assert not in_custody(status, SentenceType.imprisonment)


def test_an_empty_path_is_invalid() -> None:
    error = check_path([], TODAY)
    assert error is not None
    assert error.violation is Violation.empty


def test_late_news_of_an_earlier_event_takes_its_place_by_date() -> None:
    """Detained, released, and then we learn of the sentence in between."""
    path = [
        step(S.detained, "2021-08-10", 0),
        step(S.released, "2022-03-01", 1),
        step(S.sentenced, "2022-01-15", 2),
    ]
    assert check_path(path, TODAY) is None


def test_events_on_the_same_day_keep_the_order_they_were_given() -> None:
    assert (
        check_path([step(S.detained, "2021-05-10", 0), step(S.released, "2021-05-10", 1)], TODAY)
        is None
    )
    error = check_path(
        [step(S.released, "2021-05-10", 0), step(S.detained, "2021-05-10", 1)], TODAY
    )
    assert error is not None and error.index == 0


def test_a_month_that_may_hold_the_previous_day_follows_it_as_given() -> None:
    """Detained on 15 August, released "in August": the release may well be later."""
    path = [step(S.detained, "2021-08-15", 0), step(S.released, "2021-08", 1)]
    assert check_path(path, TODAY) is None
    path = [step(S.detained, "2021-08-15", 0), step(S.sentenced, "2021", 1)]
    assert check_path(path, TODAY) is None


def test_a_month_that_certainly_precedes_a_day_comes_first_whatever_the_order_given() -> None:
    path = [step(S.detained, "2021-08-15", 0), step(S.released, "2021-07", 1)]
    error = check_path(path, TODAY)
    assert error is not None
    assert (error.index, error.violation) == (1, Violation.not_initial)


def test_a_future_effective_date_is_refused() -> None:
    error = check_path([step(S.detained, "2026-11-26")], TODAY)
    assert error is not None
    assert error.violation is Violation.date_in_future


def test_an_error_names_the_step_as_it_was_given() -> None:
    path = [step(S.detained, "2021-05-10", 0), step(S.deported, "2021-01-01", 1)]
    error = check_path(path, TODAY)
    assert error is not None
    assert (error.index, error.violation) == (1, Violation.not_initial)


def reference_order(path: list[Step]) -> list[Step]:
    """Of all orders that put a step after every step whose dates certainly come before
    it, the one closest to the order given (by brute force, independent of the code)."""
    allowed = [
        order
        for order in itertools.permutations(path)
        if not any(
            later.effective.end < earlier.effective.start
            for i, earlier in enumerate(order)
            for later in order[i + 1 :]
        )
    ]
    return list(min(allowed, key=lambda order: [s.given for s in order]))


def reference_check(path: list[Step], today: date) -> bool:
    """A plain restatement of the rules, to compare the table-driven code against."""
    ordered = reference_order(path)
    if not ordered or ordered[0].status not in STARTS:
        return False
    for before, after in itertools.pairwise(ordered):
        if (before.status, after.status) not in ALLOWED:
            return False
    return all(s.effective.start <= today for s in ordered)


partial_dates = st.builds(
    lambda d, precision: PartialDate.parse(
        d.isoformat() if precision == 2 else d.strftime("%Y-%m") if precision == 1 else str(d.year)
    ),
    st.dates(min_value=date(2000, 1, 1), max_value=date(2027, 12, 31)),
    st.integers(0, 2),
)
paths = st.lists(st.tuples(st.sampled_from(list(Status)), partial_dates), max_size=6).map(
    lambda items: [Step(s, d, i) for i, (s, d) in enumerate(items)]
)


@given(paths)
def test_check_path_agrees_with_a_plain_restatement_of_the_rules(path: list[Step]) -> None:
    assert (check_path(path, TODAY) is None) == reference_check(path, TODAY)

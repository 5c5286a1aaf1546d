"""The state machine as a table: every pair of statuses is either allowed or refused."""

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.cases.statuses import (
    FINAL,
    IN_CUSTODY,
    TRANSITIONS,
    Status,
    Step,
    Violation,
    check_path,
    current_status,
)
from app.core.dates import PartialDate

TODAY = date(2026, 11, 25)
S = Status

ALLOWED = {
    (S.detained, S.sentenced),
    (S.detained, S.released),
    (S.detained, S.pardoned),
    (S.detained, S.deported),
    (S.detained, S.died_in_custody),
    (S.sentenced, S.sentenced),
    (S.sentenced, S.released),
    (S.sentenced, S.pardoned),
    (S.sentenced, S.deported),
    (S.sentenced, S.died_in_custody),
    (S.released, S.deported),
    (S.pardoned, S.deported),
}


def step(status: Status, when: str) -> Step:
    return Step(status, PartialDate.parse(when))


@pytest.mark.parametrize("source", list(Status))
@pytest.mark.parametrize("target", list(Status))
def test_each_pair_of_statuses_is_allowed_exactly_when_the_design_says(
    source: Status, target: Status
) -> None:
    path = [step(S.detained, "2020-01-01")]
    if source is not S.detained:
        path.append(step(source, "2020-02-01"))
    error = check_path([*path, step(target, "2020-03-01")], TODAY)
    reachable = source is S.detained or (S.detained, source) in ALLOWED
    assert reachable
    assert (error is None) == ((source, target) in ALLOWED)
    if error is not None:
        assert error.violation is Violation.not_allowed
        assert (error.from_status, error.to_status) == (source, target)


def test_deported_and_died_in_custody_are_final() -> None:
    assert {S.deported, S.died_in_custody} == FINAL
    assert all(not TRANSITIONS[s] for s in FINAL)


def test_in_custody_means_detained_or_sentenced() -> None:
    assert {S.detained, S.sentenced} == IN_CUSTODY


def test_a_path_must_start_detained() -> None:
    error = check_path([step(S.sentenced, "2020-01-01")], TODAY)
    assert error is not None
    assert error.violation is Violation.not_initial


def test_an_empty_path_is_invalid() -> None:
    error = check_path([], TODAY)
    assert error is not None
    assert error.violation is Violation.empty


def test_an_effective_date_before_the_previous_one_is_refused() -> None:
    error = check_path([step(S.detained, "2021-05-10"), step(S.released, "2021-05-09")], TODAY)
    assert error is not None
    assert error.violation is Violation.date_before_previous
    assert error.index == 1


def test_the_same_day_twice_is_allowed() -> None:
    assert (
        check_path([step(S.detained, "2021-05-10"), step(S.released, "2021-05-10")], TODAY) is None
    )


def test_a_future_effective_date_is_refused() -> None:
    error = check_path([step(S.detained, "2026-11-26")], TODAY)
    assert error is not None
    assert error.violation is Violation.date_in_future


def test_an_imprecise_date_that_may_fall_after_the_previous_one_is_allowed() -> None:
    # "sometime in 2021" may well be after 10 May 2021
    assert check_path([step(S.detained, "2021-05-10"), step(S.sentenced, "2021")], TODAY) is None


def test_an_imprecise_date_does_not_lower_the_floor_for_later_events() -> None:
    path = [
        step(S.detained, "2021-05-10"),
        step(S.sentenced, "2021"),
        step(S.released, "2021-02-01"),
    ]
    error = check_path(path, TODAY)
    assert error is not None
    assert error.index == 2
    assert error.violation is Violation.date_before_previous


def test_a_month_that_certainly_precedes_the_previous_day_is_refused() -> None:
    error = check_path([step(S.detained, "2021-05-10"), step(S.released, "2021-04")], TODAY)
    assert error is not None
    assert error.violation is Violation.date_before_previous


def reference_check(path: list[Step], today: date) -> bool:
    """A plain restatement of the rules, to compare the table-driven code against."""
    if not path or path[0].status is not S.detained:
        return False
    latest_start = None
    for index, current in enumerate(path):
        if index and (path[index - 1].status, current.status) not in ALLOWED:
            return False
        if current.effective.start > today:
            return False
        if latest_start is not None and current.effective.end < latest_start:
            return False
        latest_start = max(filter(None, [latest_start, current.effective.start]))
    return True


partial_dates = st.builds(
    lambda d, precision: PartialDate.parse(
        d.isoformat() if precision == 2 else d.strftime("%Y-%m") if precision == 1 else str(d.year)
    ),
    st.dates(min_value=date(2000, 1, 1), max_value=date(2027, 12, 31)),
    st.integers(0, 2),
)
paths = st.lists(st.builds(Step, st.sampled_from(list(Status)), partial_dates), max_size=6)


@given(paths)
def test_check_path_agrees_with_a_plain_restatement_of_the_rules(path: list[Step]) -> None:
    assert (check_path(path, TODAY) is None) == reference_check(path, TODAY)


@given(paths)
def test_current_status_is_the_last_step(path: list[Step]) -> None:
    assert current_status(path) == (path[-1].status if path else None)

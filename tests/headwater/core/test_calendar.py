"""Calendar facts: US federal holidays (fixed dates and nth/last weekdays) and month seasonality."""

from __future__ import annotations

import math
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from headwater.core.calendar import is_us_holiday, month_cos, month_sin, us_holidays

D = date
MONDAY, THURSDAY = 0, 3


@pytest.mark.parametrize(
    ("year", "expected"),
    [
        # 2013: January 1st a Tuesday (MLK Day the 21st)
        (2013, [(1, 21), (2, 18), (5, 27), (9, 2), (10, 14), (11, 28)]),
        # 2012: a leap year, and November 1st a Thursday (Thanksgiving on the 22nd, not 29th)
        (2012, [(1, 16), (2, 20), (5, 28), (9, 3), (10, 8), (11, 22)]),
        # 2018: January 1st a Monday (MLK Day the 15th, the earliest it can be)
        (2018, [(1, 15), (2, 19), (5, 28), (9, 3), (10, 8), (11, 22)]),
        # 2021: May 31st a Monday (Memorial Day on the month's very last day)
        (2021, [(1, 18), (2, 15), (5, 31), (9, 6), (10, 11), (11, 25)]),
        # 2014: September 1st a Monday (Labor Day on the 1st)
        (2014, [(1, 20), (2, 17), (5, 26), (9, 1), (10, 13), (11, 27)]),
    ],
)
def test_holidays_of_known_years(year: int, expected: list[tuple[int, int]]) -> None:
    fixed = [(1, 1), (7, 4), (11, 11), (12, 25)]

    holidays = us_holidays(year)

    assert sorted(holidays) == sorted(D(year, m, d) for m, d in [*expected, *fixed])
    assert len(set(holidays)) == 10


@given(st.integers(min_value=1900, max_value=2200))
def test_floating_holidays_follow_their_rule_in_any_year(year: int) -> None:
    _, mlk, presidents, memorial, _, labor, columbus, _, thanksgiving, _ = us_holidays(year)

    # Then each is the right weekday in the right week of its month
    for day, month, first in [
        (mlk, 1, 15),  # third Monday
        (presidents, 2, 15),
        (labor, 9, 1),  # first Monday
        (columbus, 10, 8),  # second Monday
    ]:
        assert (day.month, day.weekday()) == (month, MONDAY)
        assert first <= day.day <= first + 6
    # the last Monday of May: a week later is June
    assert (memorial.month, memorial.weekday()) == (5, MONDAY)
    assert (memorial + timedelta(days=7)).month == 6
    # the fourth Thursday of November
    assert (thanksgiving.month, thanksgiving.weekday()) == (11, THURSDAY)
    assert 22 <= thanksgiving.day <= 28


def test_a_holiday_is_its_date_not_the_observed_day_off() -> None:
    # Independence Day 2020 fell on a Saturday (observed on Friday the 3rd)
    assert is_us_holiday(D(2020, 7, 4))
    assert not is_us_holiday(D(2020, 7, 3))
    # Christmas 2016 on a Sunday (observed on Monday the 26th)
    assert is_us_holiday(D(2016, 12, 25))
    assert not is_us_holiday(D(2016, 12, 26))


@pytest.mark.parametrize(
    "day",
    [D(2012, 2, 29), D(2013, 12, 31), D(2013, 5, 20), D(2013, 11, 21), D(2013, 11, 29)],
    ids=[
        "leap-day",
        "new-years-eve",
        "week-before-memorial",
        "week-before-thanksgiving",
        "black-friday",
    ],
)
def test_ordinary_days_are_not_holidays(day: date) -> None:
    assert not is_us_holiday(day)


def test_is_us_holiday_looks_in_the_days_own_year() -> None:
    # New Year's Day of each year, read through the cache in any order
    assert is_us_holiday(D(2014, 1, 1)) and is_us_holiday(D(2013, 1, 1))
    assert D(2014, 1, 1) not in us_holidays(2013)


MONTHS = range(1, 13)


def test_january_is_the_top_of_the_circle_and_july_the_bottom() -> None:
    assert (month_sin(1), month_cos(1)) == (0.0, 1.0)
    assert month_sin(4) == pytest.approx(1.0) and month_cos(4) == pytest.approx(0.0, abs=1e-12)
    assert month_sin(7) == pytest.approx(0.0, abs=1e-12) and month_cos(7) == pytest.approx(-1.0)
    assert month_sin(10) == pytest.approx(-1.0)


def test_months_are_twelve_evenly_spaced_points_and_december_neighbours_january() -> None:
    points = [(month_sin(m), month_cos(m)) for m in MONTHS]

    # On the unit circle, all distinct
    assert all(math.isclose(s * s + c * c, 1.0) for s, c in points)
    assert len({(round(s, 9), round(c, 9)) for s, c in points}) == 12
    # Every pair of neighbours equally far apart, December to January included
    steps = [math.dist(points[i], points[(i + 1) % 12]) for i in range(12)]
    assert all(math.isclose(step, steps[0]) for step in steps)
    assert math.dist(points[11], points[0]) < math.dist(points[5], points[0])

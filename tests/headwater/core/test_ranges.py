"""Run ranges: the command line's or each use case's configured range, resolved in its own zone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from headwater.core import ranges
from headwater.core.config import ConfigError, Settings
from headwater.core.ranges import (
    RangeError,
    configured,
    default_holdout,
    describe,
    run_ranges,
    splits,
    today_in,
)

D = date
NEW_YORK, TOKYO = "America/New_York", "Asia/Tokyo"


def settings_with(**usecases: dict[str, Any]) -> Settings:
    """A stage whose ``[usecase.<name>]`` tables are the keyword arguments, all enabled."""
    return Settings.model_validate({"usecases": list(usecases), "usecase": usecases})


def fixed_today(days: dict[str, date]) -> Callable[[str], date]:
    """A ``today`` that answers per time zone, and fails for a zone nobody asked about."""
    return lambda timezone: days[timezone]


# -- run_ranges --------------------------------------------------------------------------------


def test_given_dates_apply_to_every_use_case_whatever_they_configure() -> None:
    # Given two use cases, one with a configured range
    settings = settings_with(a={"start": "2013-01-01", "end": "2013-01-31"}, b={})

    # When the command line gives a start and an end
    got = run_ranges(settings, {"a": NEW_YORK, "b": TOKYO}, "2013-03-01", "2013-03-12")

    # Then both run over exactly those dates, in run order
    assert got == {"a": (D(2013, 3, 1), D(2013, 3, 12)), "b": (D(2013, 3, 1), D(2013, 3, 12))}
    assert list(got) == ["a", "b"]


def test_a_given_start_alone_is_a_one_day_range_not_the_configured_end() -> None:
    settings = settings_with(a={"start": "2013-01-01", "end": "2013-01-31"})

    assert run_ranges(settings, {"a": NEW_YORK}, "2013-01-10") == {
        "a": (D(2013, 1, 10), D(2013, 1, 10))
    }


def test_a_given_end_alone_keeps_the_configured_start() -> None:
    settings = settings_with(a={"start": "2013-01-01", "end": "2013-01-31"})

    assert run_ranges(settings, {"a": NEW_YORK}, end="2013-02-28") == {
        "a": (D(2013, 1, 1), D(2013, 2, 28))
    }


def test_a_configured_start_without_end_is_one_day() -> None:
    settings = settings_with(a={"start": "2012-02-29"})

    assert run_ranges(settings, {"a": NEW_YORK}) == {"a": (D(2012, 2, 29), D(2012, 2, 29))}


def test_relative_dates_resolve_in_each_use_cases_own_time_zone() -> None:
    # Given one instant at which Tokyo is already a day ahead of New York (a leap day there)
    today = fixed_today({NEW_YORK: D(2012, 2, 28), TOKYO: D(2012, 2, 29)})
    settings = settings_with(east={"start": "today-1", "end": "today"}, west={})

    # When the configured range and the command line's relative dates are resolved
    east = run_ranges(settings, {"east": TOKYO}, today=today)
    both = run_ranges(settings, {"east": TOKYO, "west": NEW_YORK}, "yesterday", today=today)

    # Then each is counted from its own zone's today
    assert east == {"east": (D(2012, 2, 28), D(2012, 2, 29))}
    assert both == {"east": (D(2012, 2, 28),) * 2, "west": (D(2012, 2, 27),) * 2}


def test_relative_dates_cross_month_and_year_ends() -> None:
    today = fixed_today({NEW_YORK: D(2013, 1, 1)})
    settings = settings_with(a={"start": "today-365", "end": "yesterday"})

    assert run_ranges(settings, {"a": NEW_YORK}, today=today) == {
        "a": (D(2012, 1, 2), D(2012, 12, 31))  # 2012 is a leap year: 366 days long
    }


def test_a_use_case_without_any_range_is_named_with_where_to_set_one() -> None:
    settings = settings_with(a={"start": "2013-01-01"}, b={})
    settings = settings.model_copy(update={"stage": "prod"})

    with pytest.raises(RangeError) as caught:
        run_ranges(settings, {"a": NEW_YORK, "b": NEW_YORK})

    message = str(caught.value)
    assert "'b'" in message and "usecase.b.start" in message and "config/prod.toml" in message
    assert isinstance(caught.value, ConfigError)  # the CLI's exit code 2


def test_an_unconfigured_use_case_is_a_config_error_naming_the_configured_ones() -> None:
    with pytest.raises(ConfigError, match="'c' is not configured .*a"):
        run_ranges(settings_with(a={}), {"c": NEW_YORK}, "2013-01-01")


@pytest.mark.parametrize(
    ("start", "end", "config", "shown"),
    [
        ("2013-01-10", "2013-01-09", {}, "--end 2013-01-09 is before --start 2013-01-10"),
        # relative dates are shown resolved, with the text the user wrote
        ("today", "today-1", {}, "--end 2013-03-09 (today-1) is before --start 2013-03-10 (today)"),
        (
            None,
            None,
            {"start": "2013-03-05", "end": "2013-03-01"},
            "usecase.a.end 2013-03-01 is before usecase.a.start 2013-03-05",
        ),
        (None, "2013-01-01", {"start": "2013-03-05"}, "--end 2013-01-01 is before usecase.a.start"),
    ],
)
def test_a_range_ending_before_it_starts_names_both_ends_and_their_origin(
    start: str | None, end: str | None, config: dict[str, str], shown: str
) -> None:
    settings = settings_with(a=config)
    today = fixed_today({NEW_YORK: D(2013, 3, 10)})

    with pytest.raises(RangeError) as caught:
        run_ranges(settings, {"a": NEW_YORK}, start, end, today=today)

    assert shown in str(caught.value)


@pytest.mark.parametrize(
    ("start", "end", "origin"),
    [
        ("2013-02-29", None, "--start"),
        ("2013-01-01", "tomorrow", "--end"),
        ("today+1", None, "--start"),
    ],
)
def test_a_bad_date_names_the_option_it_came_from(start: str, end: str | None, origin: str) -> None:
    with pytest.raises(RangeError, match=f"^{origin}: "):
        run_ranges(settings_with(a={}), {"a": NEW_YORK}, start, end)


def test_a_one_day_range_on_the_last_day_of_february_is_allowed() -> None:
    got = run_ranges(settings_with(a={}), {"a": NEW_YORK}, "2013-02-28", "2013-02-28")

    assert got == {"a": (D(2013, 2, 28), D(2013, 2, 28))}


# -- today_in ----------------------------------------------------------------------------------


class _FrozenDatetime(datetime):
    """``datetime`` whose ``now(tz)`` is one fixed instant, seen from ``tz``."""

    instant = datetime(2013, 3, 10, 3, 30, tzinfo=UTC)

    @classmethod
    def now(cls, tz: Any = None) -> Any:  # type: ignore[override]
        return cls.instant.astimezone(tz)


@pytest.mark.parametrize(
    ("instant", "timezone", "day"),
    [
        # 03:30 UTC on the spring-forward day is still the evening before in New York
        (datetime(2013, 3, 10, 3, 30, tzinfo=UTC), NEW_YORK, D(2013, 3, 9)),
        (datetime(2013, 3, 10, 3, 30, tzinfo=UTC), TOKYO, D(2013, 3, 10)),
        # just after New York's midnight, now EDT (UTC-4), not EST
        (datetime(2013, 3, 11, 4, 0, 1, tzinfo=UTC), NEW_YORK, D(2013, 3, 11)),
        (datetime(2013, 3, 11, 3, 59, 59, tzinfo=UTC), NEW_YORK, D(2013, 3, 10)),
        # New Year's Eve in New York while it is already 2013 in UTC
        (datetime(2013, 1, 1, 4, 59, tzinfo=UTC), NEW_YORK, D(2012, 12, 31)),
    ],
)
def test_today_is_the_date_in_the_given_zone(
    monkeypatch: pytest.MonkeyPatch, instant: datetime, timezone: str, day: date
) -> None:
    monkeypatch.setattr(_FrozenDatetime, "instant", instant)
    monkeypatch.setattr(ranges, "datetime", _FrozenDatetime)

    assert today_in(timezone) == day


# -- default_holdout and splits ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "holdout"),
    [
        (D(2013, 1, 1), D(2013, 3, 12), D(2013, 3, 1)),  # 70 days: the last 11 held out
        (D(2013, 1, 1), D(2013, 1, 7), D(2013, 1, 6)),  # 6 days apart: one day held out
        (D(2013, 1, 1), D(2013, 1, 13), D(2013, 1, 11)),  # 12 days apart: two days
        (D(2012, 1, 1), D(2012, 12, 31), D(2012, 11, 1)),  # a leap year: 365 // 6 = 60 days
        (D(2013, 3, 4), D(2013, 3, 5), D(2013, 3, 5)),  # two days: never the first
    ],
)
def test_the_default_holdout_is_the_last_sixth_and_splits_the_range(
    start: date, end: date, holdout: date
) -> None:
    assert default_holdout(start, end) == holdout
    assert splits(start, end, holdout)


def test_a_one_day_range_has_no_default_holdout_that_splits_it() -> None:
    day = D(2016, 2, 29)

    assert default_holdout(day, day) == day + timedelta(days=1)
    assert not splits(day, day, default_holdout(day, day))


@pytest.mark.parametrize(
    ("holdout", "expected"),
    [
        (D(2013, 1, 1), False),  # from the first day: nothing left to train on
        (D(2013, 1, 2), True),
        (D(2013, 1, 31), True),  # only the last day held out
        (D(2013, 2, 1), False),  # after the range: nothing held out
        (D(2012, 12, 31), False),
    ],
)
def test_splits_needs_days_on_both_sides(holdout: date, expected: bool) -> None:
    assert splits(D(2013, 1, 1), D(2013, 1, 31), holdout) is expected


# -- configured and describe -------------------------------------------------------------------


def test_configured_keeps_the_given_order_and_only_those_with_a_start() -> None:
    settings = settings_with(a={"start": "today"}, b={}, c={"start": "2013-01-01"})

    assert configured(settings, ["c", "b", "a"]) == ["c", "a"]
    assert configured(settings, []) == []


def test_describe_says_one_range_once_and_different_ones_per_use_case() -> None:
    same = {"a": (D(2013, 1, 1), D(2013, 1, 31)), "b": (D(2013, 1, 1), D(2013, 1, 31))}
    different = {"a": (D(2013, 1, 1), D(2013, 1, 31)), "b": (D(2013, 1, 1), D(2013, 2, 1))}

    assert describe(same) == "2013-01-01..2013-01-31"
    assert describe(different) == "a 2013-01-01..2013-01-31, b 2013-01-01..2013-02-01"
    assert describe({"a": (D(2013, 1, 1),) * 2}) == "2013-01-01..2013-01-01"

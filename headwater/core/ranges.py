"""The date range each use case of a run covers: the command line's, else its configured one."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from headwater.core.config import ConfigError, Settings
from headwater.core.partitions import resolve_date

#: Per use case, the first and last date (inclusive) of a run.
Ranges = Mapping[str, tuple[date, date]]


class RangeError(ConfigError):
    """A use case has no range to run over, or its range ends before it starts."""


def today_in(timezone: str) -> date:
    """Today's date in ``timezone``."""
    return datetime.now(ZoneInfo(timezone)).date()


def run_ranges(
    settings: Settings,
    timezones: Mapping[str, str],
    start: str | None = None,
    end: str | None = None,
    today: Callable[[str], date] = today_in,
) -> dict[str, tuple[date, date]]:
    """Each use case's range: ``start``/``end`` when given (for all), else its configured one.

    Dates are ISO, ``today``, ``yesterday`` or ``today-N``, resolved in each use case's
    time zone (``timezones``: use case -> zone, in run order). A given ``start`` without
    ``end`` is a one-day range; a given ``end`` alone keeps the configured start.
    """
    ranges = {}
    for name, timezone in timezones.items():
        config = settings.usecase_config(name)
        key = f"usecase.{name}"
        if start:
            first_text, first_from = start, "--start"
            last_text, last_from = (end, "--end") if end else (start, "--start")
        elif config.start:
            first_text, first_from = config.start, f"{key}.start"
            last_text, last_from = (
                (end, "--end") if end else (config.end or config.start, f"{key}.end")
            )
        else:
            raise RangeError(
                f"use case {name!r} has no date range: give --start (and --end), "
                f"or set {key}.start (and end) in config/{settings.stage}.toml"
            )
        local_today = today(timezone)
        first = _resolve(first_text, first_from, local_today)
        last = _resolve(last_text, last_from, local_today)
        if last < first:
            raise RangeError(
                f"use case {name!r}: {last_from} {_shown(last, last_text)} is before "
                f"{first_from} {_shown(first, first_text)}"
            )
        ranges[name] = (first, last)
    return ranges


def _resolve(text: str, origin: str, today: date) -> date:
    try:
        return resolve_date(text, today)
    except ValueError as exc:
        raise RangeError(f"{origin}: {exc}") from None


def _shown(day: date, text: str) -> str:
    return str(day) if text.strip() == day.isoformat() else f"{day} ({text})"


def default_holdout(start: date, end: date) -> date:
    """The first holdout date when none is configured: the last sixth of ``start..end``.

    At least the last day is held out, and never the first (it is trained on): a range of
    one day has no such date, so its default falls after ``end`` (:func:`splits` says so).
    """
    return max(start + timedelta(days=1), end - timedelta(days=max(1, (end - start).days // 6)))


def splits(start: date, end: date, holdout_from: date) -> bool:
    """True when ``holdout_from`` leaves days of ``start..end`` to train on and to hold out."""
    return start < holdout_from <= end


def configured(settings: Settings, usecases: Sequence[str]) -> list[str]:
    """The use cases among ``usecases`` whose configuration sets a default range."""
    return [name for name in usecases if settings.usecase_config(name).start is not None]


def describe(ranges: Ranges) -> str:
    """``a..b`` when every use case has the same range, else each use case's one."""
    spans = {f"{first}..{last}" for first, last in ranges.values()}
    if len(spans) == 1:
        return spans.pop()
    return ", ".join(f"{name} {first}..{last}" for name, (first, last) in ranges.items())

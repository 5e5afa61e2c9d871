"""Calendar facts shared by use cases: US federal holidays and the month on the unit circle.

Plain Python (no pandas, no numpy): the API's per-request feature path runs these, and
the batch path applies the very same functions once per distinct value, so both paths
give bit-identical numbers.
"""

from __future__ import annotations

import functools
import math
from datetime import date, timedelta


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> date:
    last = date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


@functools.lru_cache(maxsize=512)  # a few years per scored request: the serving hot spot
def us_holidays(year: int) -> tuple[date, ...]:
    """US federal holidays of ``year`` (the dates, not the observed days off)."""
    return (
        date(year, 1, 1),
        _nth_weekday(year, 1, 0, 3),  # Martin Luther King Jr. Day
        _nth_weekday(year, 2, 0, 3),  # Presidents' Day
        _last_weekday(year, 5, 0),  # Memorial Day
        date(year, 7, 4),
        _nth_weekday(year, 9, 0, 1),  # Labor Day
        _nth_weekday(year, 10, 0, 2),  # Columbus Day
        date(year, 11, 11),
        _nth_weekday(year, 11, 3, 4),  # Thanksgiving
        date(year, 12, 25),
    )


def is_us_holiday(day: date) -> bool:
    """True when ``day`` is a US federal holiday (its date, not the observed day off)."""
    return day in us_holidays(day.year)


def month_sin(month: int) -> float:
    """Seasonality: the month as a point on the unit circle (sine)."""
    return math.sin(2.0 * math.pi * (month - 1) / 12.0)


def month_cos(month: int) -> float:
    """Seasonality: the month as a point on the unit circle (cosine)."""
    return math.cos(2.0 * math.pi * (month - 1) / 12.0)

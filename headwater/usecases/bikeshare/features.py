"""Model features of the bike-share use case: one definition, two paths.

``features_frame`` is the batch path (vectorised pandas: training runs it on Spark
through ``mapInPandas``); ``features_record`` is the single-record path in plain Python
(the API runs it per request). Both apply the same scalar functions to the same
:class:`FeatureLookups` (computed at training time, stored with the model version), so
they give bit-identical features; a property test holds them to it on real rows.

Only what is known before the hour is used: the calendar (hour, weekday, month,
holiday, working day, the trend since the first training year), the weather of the
hour (forecast or observed; missing values take the training period's monthly
averages, and ``weather_defaulted`` says so) and the rentals of the hours before
(:data:`WINDOWS`: 1, 24 and 168 hours earlier, computed across partitions by the training
job; at serving the request carries them; missing ones take the training mean of that hour
of the day, and ``recent_rentals`` is listed in ``defaulted``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from headwater.core.calendar import is_us_holiday, month_cos, month_sin
from headwater.core.usecase import Window

if TYPE_CHECKING:
    import pandas as pd

#: An hour is "high demand" (busy: bikes to rebalance) above this many rentals (~ top 22%).
HIGH_DEMAND_THRESHOLD = 300
# ``day_hour`` (the hour on a working day or a day off) lets a linear model tell the
# commuting peaks of working days from the midday peak of weekends and holidays.
CATEGORICAL = ("hour", "weekday", "weather_situation", "day_hour")
WEATHER_NUMBERS = ("temp_c", "feels_like_c", "humidity_pct", "wind_speed_kmh")
WEATHER = ("weather_situation", *WEATHER_NUMBERS)
#: Hours back of each lag of the hour's own rentals (the hour before, the day, the week).
LAG_HOURS = (1, 24, 168)
#: The lags, computed over the whole range by the training job (across partitions).
WINDOWS = tuple(
    Window(
        f"rentals_{hours}h_before",
        "rentals",
        "lag",
        "hour_start",
        span=timedelta(hours=hours),
        description=f"rentals in the hour {hours} h before",
    )
    for hours in LAG_HOURS
)
LAGS = tuple(w.name for w in WINDOWS)
NUMERIC = (
    "month_sin",
    "month_cos",
    "holiday",
    "workingday",
    "years_since_start",
    *WEATHER_NUMBERS,
    "weather_defaulted",
    *LAGS,
)
FEATURES = (*CATEGORICAL, *NUMERIC)
#: The clean columns (and windows) ``features_frame`` reads.
INPUT_COLUMNS = ("date", "hour", "holiday", *WEATHER, *LAGS)
DAYS_PER_YEAR = 365.25


@dataclass(frozen=True)
class FeatureLookups:
    """Tables the features need at serving time, computed from the training period.

    ``weather`` holds the typical weather of each month (``"01"`` .. ``"12"``): the
    mean of each number and the most frequent situation; ``default_weather`` the same
    over the whole period (for a month never seen). ``start_year`` is the trend's
    origin: the first year of the training data. ``typical_rentals`` is the mean rentals
    of each hour of the day (``"00"`` .. ``"23"``), the default of a lag not known.
    """

    start_year: int = 2011
    weather: dict[str, dict[str, Any]] = field(default_factory=dict)
    default_weather: dict[str, Any] = field(default_factory=dict)
    weather_situations: list[str] = field(default_factory=list)
    typical_rentals: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (stored with the model version)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> FeatureLookups:
        """Inverse of :meth:`to_dict`."""
        return cls(**body)


def month_key(month: int) -> str:
    """Key of a month's typical weather in the lookups."""
    return f"{month:02d}"


def hour_label(hour: int) -> str:
    """The categorical value of an hour of the day (``"06"``)."""
    return f"{hour:02d}"


def day_hour(working: float, hour: int) -> str:
    """The hour of a working day (``"work-08"``) or of a day off (``"off-08"``)."""
    return f"{'work' if working else 'off'}-{hour:02d}"


def years_since(day: date, start_year: int) -> float:
    """The trend: years elapsed from 1 January of ``start_year`` to ``day``."""
    return (day - date(start_year, 1, 1)).days / DAYS_PER_YEAR


def working_day(weekday: int, holiday: bool) -> float:
    """1.0 on a weekday (Monday = 0) that is not a holiday, else 0.0."""
    return 1.0 if weekday < 5 and not holiday else 0.0


def typical_lag(lookups: FeatureLookups, hour: int, hours_back: int) -> float:
    """The default of a lag: the training mean rentals of the hour of the day it falls on."""
    return float(lookups.typical_rentals.get(hour_label((hour - hours_back) % 24), 0.0))


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _situation(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def features_record(
    *,
    hour_start: datetime,
    lookups: FeatureLookups,
    holiday: bool | None = None,
    weather: Mapping[str, Any] | None = None,
    recent_rentals: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Derive every model feature of one hour; also return which inputs were defaulted.

    Args:
        hour_start: local wall-clock start of the hour (naive).
        lookups: the lookups stored with the model version.
        holiday: whether the day is a holiday; None takes the US federal calendar.
        weather: the hour's weather (any of :data:`WEATHER`); missing values take the
            month's typical weather.
        recent_rentals: rentals of the hours before, by lag name (:data:`LAGS`); missing
            ones take the training mean of the hour of the day they fall on.

    Returns:
        ``(features, defaulted)``: the feature values by name, and the names of the
        inputs that came from defaults rather than from the request.
    """
    day, month, weekday = hour_start.date(), hour_start.month, hour_start.weekday()
    defaulted: list[str] = []
    if holiday is None:
        holiday = is_us_holiday(day)
        defaulted.append("holiday")
    observed = weather or {}
    typical = lookups.weather.get(month_key(month), lookups.default_weather)
    situation = _situation(observed.get("weather_situation"))
    if situation is None:
        situation = typical["weather_situation"]
        defaulted.append("weather")
    numbers: dict[str, float] = {}
    for name in WEATHER_NUMBERS:
        value = _number(observed.get(name))
        if value is None:
            value = float(typical[name])
            if "weather" not in defaulted:
                defaulted.append("weather")
        numbers[name] = value
    recent = recent_rentals or {}
    lags: dict[str, float] = {}
    for name, hours in zip(LAGS, LAG_HOURS, strict=True):
        value = _number(recent.get(name))
        if value is None:
            value = typical_lag(lookups, hour_start.hour, hours)
            if "recent_rentals" not in defaulted:
                defaulted.append("recent_rentals")
        lags[name] = value
    working = working_day(weekday, bool(holiday))
    features = {
        "hour": hour_label(hour_start.hour),
        "weekday": str(weekday),
        "weather_situation": situation,
        "day_hour": day_hour(working, hour_start.hour),
        "month_sin": month_sin(month),
        "month_cos": month_cos(month),
        "holiday": 1.0 if holiday else 0.0,
        "workingday": working,
        "years_since_start": years_since(day, lookups.start_year),
        **numbers,
        "weather_defaulted": 1.0 if "weather" in defaulted else 0.0,
        **lags,
    }
    return features, defaulted


# -- the batch path --------------------------------------------------------------------------
def _via(values: pd.Series, function: Any) -> pd.Series:
    """Apply a scalar feature function once per distinct value (same floats as the record path)."""
    table = {value: function(value) for value in values.unique()}
    return values.map(table)


def features_frame(rows: pd.DataFrame, lookups: FeatureLookups) -> pd.DataFrame:
    """Vectorised :func:`features_record` over clean rows (same index, FEATURES columns).

    ``rows`` needs :data:`INPUT_COLUMNS`: the local ``date``, the local ``hour``, the
    ``holiday`` flag, the weather columns and the lags (nullable).
    """
    # lazy: pandas off the API's cold start (the API imports this module)
    import pandas as pd

    day = pd.to_datetime(rows["date"])
    dates = day.dt.strftime("%Y-%m-%d")
    month = day.dt.month.astype(int)
    weekday = day.dt.day_of_week.astype(int)
    holiday = rows["holiday"].astype("boolean").fillna(False).astype(bool)

    hour = rows["hour"].astype(int)
    out = pd.DataFrame(index=rows.index)
    out["hour"] = _via(hour, hour_label)
    out["weekday"] = weekday.astype(str)
    keys = month.map(month_key)
    typical = {key: lookups.weather.get(key, lookups.default_weather) for key in keys.unique()}
    situation = rows["weather_situation"].astype(object)
    missing_situation = ~situation.map(lambda v: _situation(v) is not None).astype(bool)
    fallback = keys.map(lambda k: typical[k]["weather_situation"])
    out["weather_situation"] = situation.where(~missing_situation, fallback).astype(str)
    out["month_sin"] = _via(month, month_sin).astype(float)
    out["month_cos"] = _via(month, month_cos).astype(float)
    out["holiday"] = holiday.astype(float)
    pairs = pd.Series(list(zip(weekday, holiday, strict=True)), index=rows.index)
    out["workingday"] = _via(pairs, lambda p: working_day(p[0], p[1])).astype(float)
    slots = pd.Series(list(zip(out["workingday"], hour, strict=True)), index=rows.index)
    out["day_hour"] = _via(slots, lambda p: day_hour(p[0], p[1]))
    out["years_since_start"] = _via(
        dates, lambda d: years_since(date.fromisoformat(d), lookups.start_year)
    ).astype(float)
    any_default = missing_situation.copy()
    for name in WEATHER_NUMBERS:
        observed = pd.to_numeric(rows[name], errors="coerce").astype(float)
        missing = observed.isna()
        any_default |= missing
        filler = keys.map(lambda k, n=name: float(typical[k][n])).astype(float)
        out[name] = observed.where(~missing, filler).astype(float)
    out["weather_defaulted"] = any_default.astype(float)
    for name, hours in zip(LAGS, LAG_HOURS, strict=True):
        observed = pd.to_numeric(rows[name], errors="coerce").astype(float)
        filler = _via(hour, lambda h, back=hours: typical_lag(lookups, h, back)).astype(float)
        out[name] = observed.where(observed.notna(), filler).astype(float)
    return out[list(FEATURES)]

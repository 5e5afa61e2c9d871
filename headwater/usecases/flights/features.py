"""Model features of the flights use case: one definition, two paths.

``features_frame`` is the batch path (vectorised pandas: training runs it on Spark
through ``mapInPandas``); ``features_record`` is the single-record path in plain
Python (the API runs it per request, with neither pandas nor numpy). Both read the
same :class:`FeatureLookups`, computed at training time and stored with the model
version, and a property test proves they agree on the real data.

Only what is known before departure is used: the schedule, carrier, route,
aircraft, the weather at the origin for the scheduled hour, congestion (the
number of departures scheduled at the origin in that hour: schedules are published
in advance) and a now-cast: the share of the origin's departures delayed 15+ minutes among
those scheduled in the 3 hours before (up to 15 minutes before, when their outcome is known;
:data:`WINDOWS`, computed across partitions by the training job; at serving the request
carries it; when unknown it takes the origin's training delay rate and ``recent_delays`` is
listed in ``defaulted``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from headwater.core.calendar import month_cos, month_sin, us_holidays
from headwater.core.usecase import Window

if TYPE_CHECKING:
    import pandas as pd

CATEGORICAL = ("carrier", "origin", "dest", "dep_hour", "weekday")
WEATHER = (
    "temp_f",
    "dew_point_f",
    "humidity_pct",
    "wind_speed_mph",
    "precip_in",
    "pressure_hpa",
    "visibility_ft",
)
#: The now-cast of delays at the origin (a window over its departures, by scheduled time).
NOWCAST = "origin_delay_share_3h"
WINDOWS = (
    Window(
        NOWCAST,
        "dep_delayed_15",
        "rolling_mean",
        "sched_dep_utc",
        keys=("origin",),
        span=timedelta(hours=3),
        gap=timedelta(minutes=15),
        description="share of the origin's departures delayed 15+ minutes, scheduled in the "
        "3 hours before (up to 15 minutes before)",
    ),
)
NUMERIC = (
    "month_sin",
    "month_cos",
    "log_distance",
    "holiday_near",
    "plane_age",
    "seats",
    "engines",
    *WEATHER,
    "weather_defaulted",
    "congestion",
    NOWCAST,
)
FEATURES = (*CATEGORICAL, *NUMERIC)

#: Plausible range and meaning of every weather column, by its clean (and feature) name: the
#: raw weather contract quarantines readings outside it and the API refuses requests outside it.
WEATHER_RANGES: dict[str, tuple[float, float, str]] = {
    "temp_f": (-60, 130, "Air temperature in degrees Fahrenheit"),
    "dew_point_f": (-80, 100, "Dew point in degrees Fahrenheit"),
    "humidity_pct": (0, 100, "Relative humidity in percent"),
    "wind_dir_deg": (0, 360, "Wind direction in degrees"),
    "wind_speed_mph": (0, 250, "Wind speed in miles per hour"),
    "wind_gust_mph": (0, 300, "Wind gusts in miles per hour"),
    "precip_in": (0, 20, "Precipitation in the hour, in inches"),
    "pressure_hpa": (850, 1100, "Sea-level pressure in hectopascals"),
    "visibility_ft": (0, 200_000, "Visibility in feet"),
}
AIRCRAFT = ("plane_age", "seats", "engines")


@dataclass(frozen=True)
class FeatureLookups:
    """Tables the features need at serving time, computed from the training data."""

    route_distance: dict[str, float] = field(default_factory=dict)
    default_distance: float = 1000.0
    aircraft: dict[str, dict[str, float]] = field(default_factory=dict)
    default_aircraft: dict[str, float] = field(default_factory=dict)
    weather: dict[str, dict[str, float]] = field(default_factory=dict)
    default_weather: dict[str, float] = field(default_factory=dict)
    congestion: dict[str, float] = field(default_factory=dict)
    typical_congestion: dict[str, float] = field(default_factory=dict)
    default_congestion: float = 0.0
    #: The training delay rate of each origin, and overall: the now-cast when not known.
    delay_share: dict[str, float] = field(default_factory=dict)
    default_delay_share: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (stored with the model version)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> FeatureLookups:
        """Inverse of :meth:`to_dict`."""
        return cls(**body)


def route_key(origin: str, dest: str) -> str:
    """Key of a route in the lookups."""
    return f"{origin}-{dest}"


def weather_key(origin: str, month: int) -> str:
    """Key of the default weather of an origin in a month."""
    return f"{origin}-{month:02d}"


def congestion_key(origin: str, day: date, hour: int) -> str:
    """Key of the scheduled departures at an origin in one hour of one day."""
    return f"{origin}|{day.isoformat()}|{hour:02d}"


def typical_key(origin: str, weekday: int, hour: int) -> str:
    """Key of the typical scheduled departures at an origin by weekday and hour."""
    return f"{origin}|{weekday}|{hour:02d}"


# -- holidays ------------------------------------------------------------------------------
HOLIDAY_WINDOW_DAYS = 3


def holiday_near(day: date) -> float:
    """1.0 when ``day`` is within three days of a US federal holiday, else 0.0."""
    for year in (day.year - 1, day.year, day.year + 1):
        for holiday in us_holidays(year):
            if abs((day - holiday).days) <= HOLIDAY_WINDOW_DAYS:
                return 1.0
    return 0.0


def log_distance(miles: float) -> float:
    """Distance on a log scale."""
    return math.log1p(miles)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def aircraft_features(
    plane: Mapping[str, float | None] | None, year: int, lookups: FeatureLookups
) -> tuple[dict[str, float], bool]:
    """Age, seats and engines of an aircraft (defaults when unknown); True if defaulted."""
    defaults = lookups.default_aircraft
    if plane is None:
        return {name: float(defaults[name]) for name in AIRCRAFT}, True
    built = _number(plane.get("year"))
    age = float(year - built) if built is not None else float(defaults["plane_age"])
    return {
        "plane_age": age,
        "seats": float(plane["seats"]),
        "engines": float(plane["engines"]),
    }, built is None


def features_record(
    *,
    carrier: str,
    origin: str,
    dest: str,
    scheduled_departure: datetime,
    lookups: FeatureLookups,
    tailnum: str | None = None,
    weather: Mapping[str, Any] | None = None,
    recent_delay_share: float | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Derive every model feature of one flight; also return which inputs were defaulted.

    Args:
        carrier: airline code as in the training data; so are ``origin`` and ``dest``.
        origin: departure airport code.
        dest: arrival airport code.
        scheduled_departure: local wall-clock time at the origin (naive).
        lookups: the lookups stored with the model version.
        tailnum: the aircraft, if known.
        weather: observed weather at the origin (any of :data:`WEATHER`); missing
            values are filled from the origin-and-month defaults.
        recent_delay_share: the now-cast (:data:`NOWCAST`); None takes the origin's
            training delay rate.

    Returns:
        ``(features, defaulted)``: the feature values by name, and the names of the
        inputs that came from defaults rather than from the request.
    """
    day = scheduled_departure.date()
    hour = scheduled_departure.hour
    month = scheduled_departure.month
    weekday = scheduled_departure.weekday()
    defaulted: list[str] = []

    distance = lookups.route_distance.get(route_key(origin, dest))
    if distance is None:
        distance = lookups.default_distance
        defaulted.append("distance")

    aircraft, aircraft_defaulted = aircraft_features(
        lookups.aircraft.get(tailnum or ""), day.year, lookups
    )
    if aircraft_defaulted:
        defaulted.append("aircraft")

    observed = weather or {}
    defaults = lookups.weather.get(weather_key(origin, month), lookups.default_weather)
    values: dict[str, float] = {}
    for name in WEATHER:
        value = _number(observed.get(name))
        if value is None:
            value = float(defaults[name])
            if "weather" not in defaulted:
                defaulted.append("weather")
        values[name] = value

    congestion = lookups.congestion.get(congestion_key(origin, day, hour))
    if congestion is None:
        congestion = lookups.typical_congestion.get(
            typical_key(origin, weekday, hour), lookups.default_congestion
        )
        defaulted.append("congestion")

    nowcast = _number(recent_delay_share)
    if nowcast is None:
        nowcast = float(lookups.delay_share.get(origin, lookups.default_delay_share))
        defaulted.append("recent_delays")

    features = {
        "carrier": carrier,
        "origin": origin,
        "dest": dest,
        "dep_hour": f"{hour:02d}",
        "weekday": str(weekday),
        "month_sin": month_sin(month),
        "month_cos": month_cos(month),
        "log_distance": log_distance(distance),
        "holiday_near": holiday_near(day),
        **aircraft,
        **values,
        "weather_defaulted": 1.0 if "weather" in defaulted else 0.0,
        "congestion": float(congestion),
        NOWCAST: nowcast,
    }
    return features, defaulted


# -- the batch path --------------------------------------------------------------------------
def _via(values: pd.Series, function: Any) -> pd.Series:
    """Apply a scalar feature function once per distinct value (same floats as the record path)."""
    table = {value: function(value) for value in values.unique()}
    return values.map(table)


def features_frame(flights: pd.DataFrame, lookups: FeatureLookups) -> pd.DataFrame:
    """Vectorised :func:`features_record` over clean flights (same index, FEATURES columns).

    ``flights`` needs ``carrier``, ``origin``, ``dest``, ``tailnum``,
    ``sched_dep_local``, the weather columns of :data:`WEATHER` and the now-cast
    :data:`NOWCAST` (nullable).
    Scalar transforms run once per distinct value through the record path's own
    functions, so both paths give bit-identical numbers.
    """
    # lazy: pandas off the API's cold start (the API imports this module)
    import pandas as pd

    local = pd.to_datetime(flights["sched_dep_local"])
    hour = local.dt.hour.astype(int)
    month = local.dt.month.astype(int)
    weekday = local.dt.day_of_week.astype(int)
    day = local.dt.strftime("%Y-%m-%d")
    origin = flights["origin"].astype(str)
    dest = flights["dest"].astype(str)
    hour2 = hour.map("{:02d}".format)

    out = pd.DataFrame(index=flights.index)
    out["carrier"] = flights["carrier"].astype(str)
    out["origin"] = origin
    out["dest"] = dest
    out["dep_hour"] = hour2
    out["weekday"] = weekday.astype(str)
    out["month_sin"] = _via(month, month_sin).astype(float)
    out["month_cos"] = _via(month, month_cos).astype(float)
    distance = (origin + "-" + dest).map(lookups.route_distance)
    distance = distance.astype(float).fillna(lookups.default_distance)
    out["log_distance"] = _via(distance, log_distance).astype(float)
    out["holiday_near"] = _via(day, lambda d: holiday_near(date.fromisoformat(d))).astype(float)

    tail = flights["tailnum"].astype(object).where(flights["tailnum"].notna(), "")
    year = local.dt.year.astype(int)
    pairs = pd.Series(list(zip(tail, year, strict=True)), index=flights.index)
    aircraft = _via(
        pairs, lambda p: aircraft_features(lookups.aircraft.get(p[0]), p[1], lookups)[0]
    )
    for name in AIRCRAFT:
        out[name] = aircraft.map(lambda a, n=name: a[n]).astype(float)

    keys = origin + "-" + month.map("{:02d}".format)
    any_default = pd.Series(False, index=flights.index)
    for name in WEATHER:
        by_key = {k: float(v[name]) for k, v in lookups.weather.items()}
        fallback = keys.map(by_key).astype(float).fillna(float(lookups.default_weather[name]))
        observed = flights[name].astype(float)
        missing = observed.isna()
        any_default |= missing
        out[name] = observed.where(~missing, fallback).astype(float)
    out["weather_defaulted"] = any_default.astype(float)

    exact = (origin + "|" + day + "|" + hour2).map(lookups.congestion).astype(float)
    typical = (origin + "|" + weekday.astype(str) + "|" + hour2).map(lookups.typical_congestion)
    congestion = exact.fillna(typical.astype(float)).fillna(lookups.default_congestion)
    out["congestion"] = congestion.astype(float)
    typical_share = origin.map(lookups.delay_share).astype(float)
    typical_share = typical_share.fillna(float(lookups.default_delay_share))
    nowcast = pd.to_numeric(flights[NOWCAST], errors="coerce").astype(float)
    out[NOWCAST] = nowcast.where(nowcast.notna(), typical_share).astype(float)
    return out[list(FEATURES)]

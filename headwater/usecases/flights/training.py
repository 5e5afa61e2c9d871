"""Spark side of the flights model: the lookups, and the training spec the generic job runs.

Every aggregation here is bounded by the calendar and the reference tables (routes,
aircraft, origins x months, origins x hours), never by the number of flights, so
collecting the lookups to the driver is safe on EMR.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from headwater.core.usecase import Baseline, Quantity, TrainingSpec
from headwater.usecases.flights.features import (
    CATEGORICAL,
    NOWCAST,
    NUMERIC,
    WEATHER,
    WINDOWS,
    FeatureLookups,
    features_frame,
)


def build_lookups(flights: Any, planes: Any, schedule: Any | None = None) -> FeatureLookups:
    """Compute the serving lookups from clean flights (training period) and the planes table.

    Args:
        flights: Spark DataFrame of clean flights of the training period (routes,
            weather defaults).
        planes: Spark DataFrame of the planes reference table (tailnum, year, seats, engines).
        schedule: clean flights whose schedule counts as known in advance (congestion);
            default: ``flights``. Schedules are published ahead, so this may include
            the holdout period without leaking its outcomes.
    """
    schedule = flights if schedule is None else schedule
    # lazy: pyspark only on the training host
    from pyspark.sql import functions as F

    # Five small jobs, each bounded by a reference dimension; the medians and means of the
    # collected tables are taken here rather than in more Spark jobs.
    means = [F.avg(name).alias(name) for name in WEATHER]
    overall = flights.agg(
        F.percentile_approx("distance", 0.5).alias("distance"),
        F.max(F.year("flight_date")).alias("year"),
        *means,
    ).first()
    routes = flights.groupBy("origin", "dest").agg(F.first("distance").alias("distance"))
    route_distance = {f"{r.origin}-{r.dest}": float(r.distance) for r in routes.collect()}

    plane_rows = planes.select("tailnum", "year", "seats", "engines").collect()
    aircraft = {
        r.tailnum: {
            "year": None if r.year is None else float(r.year),
            "seats": float(r.seats),
            "engines": float(r.engines),
        }
        for r in plane_rows
        if r.tailnum and r.seats is not None and r.engines is not None
    }
    ref_year = overall.year or 2013
    dated = [r for r in plane_rows if r.year is not None]
    default_aircraft = {
        "plane_age": _median([ref_year - r.year for r in dated], 10.0),
        "seats": _median([r.seats for r in dated], 150.0),
        "engines": _median([r.engines for r in dated], 2.0),
    }

    weather = {
        f"{r.origin}-{r.month:02d}": {name: _finite(r[name]) for name in WEATHER}
        for r in flights.groupBy("origin", "month").agg(*means).collect()
    }
    default_weather = {name: _finite(overall[name]) for name in WEATHER}
    for values in weather.values():
        for name in WEATHER:
            if values[name] is None:
                values[name] = default_weather[name]

    hourly = schedule.groupBy("origin", "flight_date", "sched_dep_hour").count().collect()
    congestion = {
        f"{r.origin}|{r.flight_date.isoformat()}|{r.sched_dep_hour:02d}": float(r["count"])
        for r in hourly
    }
    cells: dict[str, list[float]] = {}
    for r in hourly:
        cell = cells.setdefault(
            f"{r.origin}|{r.flight_date.weekday()}|{r.sched_dep_hour:02d}", [0.0, 0.0]
        )
        cell[0] += r["count"]
        cell[1] += 1
    typical = {key: total / n for key, (total, n) in cells.items()}
    default_congestion = sum(r["count"] for r in hourly) / len(hourly) if hourly else 0.0
    delayed = F.col("dep_delayed_15").cast("double")
    shares = flights.groupBy("origin").agg(F.avg(delayed).alias("share")).collect()
    overall_share = flights.agg(F.avg(delayed).alias("share")).first().share
    return FeatureLookups(
        route_distance=route_distance,
        default_distance=float(overall.distance),
        aircraft=aircraft,
        default_aircraft=default_aircraft,
        weather=weather,
        default_weather={k: (v if v is not None else 0.0) for k, v in default_weather.items()},
        congestion=congestion,
        typical_congestion=typical,
        default_congestion=float(default_congestion),
        delay_share={r.origin: float(r.share) for r in shares if r.share is not None},
        default_delay_share=float(overall_share or 0.0),
    )


def _median(values: list[Any], default: float) -> float:
    """The lower median of the known values (as Spark's percentile_approx), else ``default``."""
    # lazy: only where the lookups are built; the API imports this module for its TRAINING
    import statistics

    known = [v for v in values if v is not None]
    return float(statistics.median_low(known)) if known else default


def _finite(value: Any) -> float | None:
    return None if value is None else float(value)


INPUT_COLUMNS = ("carrier", "origin", "dest", "tailnum", "sched_dep_local", *WEATHER, NOWCAST)
HUMAN_NAMES = {
    "carrier": "airline",
    "origin": "origin airport",
    "dest": "destination airport",
    "dep_hour": "scheduled departure hour",
    "weekday": "weekday (0 = Monday)",
    "month_sin": "month (sine)",
    "month_cos": "month (cosine)",
    "log_distance": "log distance",
    "holiday_near": "within 3 days of a holiday",
    "plane_age": "aircraft age (years)",
    "seats": "seats",
    "engines": "engines",
    "temp_f": "temperature (°F)",
    "dew_point_f": "dew point (°F)",
    "humidity_pct": "relative humidity (%)",
    "wind_speed_mph": "wind speed (mph)",
    "precip_in": "precipitation (in)",
    "pressure_hpa": "pressure (hPa)",
    "visibility_ft": "visibility (ft)",
    "weather_defaulted": "weather defaulted",
    "congestion": "departures scheduled in the hour",
    NOWCAST: "share of the origin's departures delayed in the 3 hours before",
}


def build_training_lookups(train: Any, references: Mapping[str, Any], all_rows: Any) -> Any:
    """The spec's lookups: training flights, the planes snapshot, the whole schedule."""
    return build_lookups(train, references["planes"], schedule=all_rows)


TRAINING = TrainingSpec(
    dataset="flights",
    date_column="flight_date",
    references=("planes",),
    label=Quantity("dep_delayed_15", "departure delayed 15+ minutes"),
    # The demo's clean data spans -86..1272 minutes (2013): a margin around it, no further.
    target=Quantity("arr_delay", "arrival delay", "min", low=-120, high=1500),
    categorical=CATEGORICAL,
    numeric=NUMERIC,
    input_columns=INPUT_COLUMNS,
    baselines=(
        Baseline("base_rate", (), "the training delay rate, for every flight"),
        Baseline(
            "carrier_hour_rate",
            ("carrier", "dep_hour"),
            "the training delay rate of the airline at the scheduled hour",
        ),
    ),
    human_names=HUMAN_NAMES,
    build_lookups=build_training_lookups,
    features_frame=features_frame,
    load_lookups=FeatureLookups.from_dict,
    windows=WINDOWS,
)

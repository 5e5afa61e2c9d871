"""Data contracts of the bike share use case: raw rentals, raw weather, clean rentals."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa

SEASONS = ["spring", "summer", "fall", "winter"]
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]  # position = 0 for Monday
YES_NO = ["Yes", "No"]
CONDITIONS = ["Clear", "Mist", "Light Rain", "Heavy Rain"]
HOUR_PATTERN = r"^\s*(1[0-2]|[1-9])\s*([aApP][mM])\s*$"  # 12am .. 11pm
#: The data set's seasons start on these (month, day): its own labels, checked on all 17,379 hours.
SEASON_STARTS = ((3, 21, "summer"), (6, 21, "fall"), (9, 23, "winter"), (12, 21, "spring"))
#: Columns identifying one raw row of each source: a repeat is quarantined, the first kept.
KEYS = {"rentals": ("dteday", "hr"), "weather": ("observed_at",)}


def season_of(day: pd.Series) -> pd.Series:
    """The data set's season of each date (``spring`` from 21 December to 20 March, ...)."""
    when = day.dt.month * 100 + day.dt.day
    season = pd.Series("spring", index=day.index, dtype="str")
    for month, first, name in SEASON_STARTS:
        season = season.mask(when >= month * 100 + first, name)
    return season


RAW_RENTALS = pa.DataFrameSchema(
    {
        "dteday": pa.Column("datetime64[ms]", coerce=True),
        "season": pa.Column(str, pa.Check.isin(SEASONS)),
        "hr": pa.Column(str, pa.Check.str_matches(HOUR_PATTERN)),
        "holiday": pa.Column(str, pa.Check.isin(YES_NO)),
        # Blank in the shipped file for 875 hours: repaired from the date.
        "weekday": pa.Column(str, pa.Check.isin(WEEKDAYS), nullable=True),
        "workingday": pa.Column(str, pa.Check.isin(YES_NO)),
        "casual": pa.Column("int64", pa.Check.ge(0)),
        "registered": pa.Column("int64", pa.Check.ge(0)),
        "cnt": pa.Column("int64", pa.Check.ge(0)),
    },
    checks=[
        pa.Check(
            lambda df: df["cnt"] == df["casual"] + df["registered"],
            name="cnt_is_casual_plus_registered",
            error="cnt is not casual + registered",
        ),
        # Cross-field: season and working day agree with the date (weekday: see cleaning).
        pa.Check(
            lambda df: df["season"] == season_of(df["dteday"]),
            name="season_matches_dteday",
            error="season is not the season of dteday",
        ),
        pa.Check(
            lambda df: (
                (df["workingday"] == "Yes")
                == ((df["dteday"].dt.day_of_week < 5) & (df["holiday"] == "No"))
            ),
            name="workingday_matches_dteday_and_holiday",
            error="workingday disagrees with the weekday of dteday and holiday",
        ),
    ],
    strict=False,
    name="raw_rentals",
)

RAW_WEATHER = pa.DataFrameSchema(
    {
        "observed_at": pa.Column(
            "datetime64[us, UTC]",
            pa.Check(lambda s: s.dt.floor("h") == s, name="on_the_hour"),
            coerce=True,
        ),
        "condition": pa.Column(str, pa.Check.isin(CONDITIONS), nullable=True),
        "temp_c": pa.Column("float64", pa.Check.in_range(-30, 50), nullable=True),
        "apparent_temp_c": pa.Column("float64", pa.Check.in_range(-40, 60), nullable=True),
        # 0 % is not a humidity Washington sees: the data set's 22 zero readings (2011-03-10)
        # are a sensor fault, so those observations are quarantined (weather then defaults).
        "humidity": pa.Column("float64", pa.Check.in_range(1, 100), nullable=True),
        "wind_kmh": pa.Column("float64", pa.Check.in_range(0, 150), nullable=True),
    },
    strict=False,
    name="raw_weather",
)

CLEAN_RENTALS = pa.DataFrameSchema(
    {
        "hour_start": pa.Column("datetime64[us, UTC]"),
        "hour": pa.Column("int32", pa.Check.in_range(0, 23)),
        "weekday": pa.Column("int32", pa.Check.in_range(0, 6)),
        "month": pa.Column("int32", pa.Check.in_range(1, 12)),
        "holiday": pa.Column(bool),
        "workingday": pa.Column(bool),
        "season": pa.Column(str, pa.Check.isin(SEASONS)),
        "weather_situation": pa.Column(str, pa.Check.isin(CONDITIONS), nullable=True),
        "casual": pa.Column("int64", pa.Check.ge(0)),
        "registered": pa.Column("int64", pa.Check.ge(0)),
        "rentals": pa.Column("int64", pa.Check.ge(0)),
        "high_demand": pa.Column(bool),
    },
    checks=[
        pa.Check(
            lambda df: df["rentals"] == df["casual"] + df["registered"],
            name="rentals_is_casual_plus_registered",
        ),
    ],
    strict=False,
    name="clean_rentals",
)

"""Vectorised cleaning of the flights use case: raw flights + raw weather -> clean flights."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa

from headwater.core.partitions import Partition
from headwater.core.usecase import CleanResult
from headwater.data.contracts import REASON, split_by_contract
from headwater.usecases.flights.contracts import (
    CLEAN_FLIGHTS,
    RAW_FLIGHTS,
    RAW_WEATHER,
    WEATHER_COLUMNS,
)

DELAY_THRESHOLD_MINUTES = 15  # the FAA's definition of a delayed departure

CLEAN_COLUMNS = [
    "flight_date",
    "carrier",
    "flight",
    "tailnum",
    "origin",
    "dest",
    "sched_dep_local",
    "sched_dep_utc",
    "sched_dep_hour",
    "day_of_week",
    "month",
    "distance",
    "cancelled",
    "dep_delay",
    "arr_delay",
    "dep_delayed_15",
    *WEATHER_COLUMNS.values(),
    "weather_missing",
]

CLEAN_SCHEMA = pa.schema(
    [
        pa.field("flight_date", pa.date32(), nullable=False),
        pa.field("carrier", pa.string(), nullable=False),
        pa.field("flight", pa.int64(), nullable=False),
        pa.field("tailnum", pa.string()),
        pa.field("origin", pa.string(), nullable=False),
        pa.field("dest", pa.string(), nullable=False),
        pa.field("sched_dep_local", pa.timestamp("us"), nullable=False),
        pa.field("sched_dep_utc", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("sched_dep_hour", pa.int64(), nullable=False),
        pa.field("day_of_week", pa.int64(), nullable=False),
        pa.field("month", pa.int64(), nullable=False),
        pa.field("distance", pa.float64(), nullable=False),
        pa.field("cancelled", pa.bool_(), nullable=False),
        pa.field("dep_delay", pa.float64()),
        pa.field("arr_delay", pa.float64()),
        pa.field("dep_delayed_15", pa.bool_()),
        *(pa.field(name, pa.float64()) for name in WEATHER_COLUMNS.values()),
        pa.field("weather_missing", pa.bool_(), nullable=False),
    ]
)


def scheduled_departure(flights: pd.DataFrame, timezone: str) -> pd.Series:
    """Return the scheduled departure as a UTC instant.

    Schedules are local wall-clock times. A time that does not exist (the spring
    DST gap) is shifted forward; an ambiguous one (the autumn repeat) is read as
    daylight time, the first of the two.
    """
    local = pd.to_datetime(
        pd.DataFrame(
            {
                "year": flights["year"],
                "month": flights["month"],
                "day": flights["day"],
                "hour": flights["sched_dep_time"] // 100,
                "minute": flights["sched_dep_time"] % 100,
            }
        )
    )
    aware = local.dt.tz_localize(
        timezone, ambiguous=np.ones(len(local), dtype=bool), nonexistent="shift_forward"
    )
    return aware.dt.tz_convert("UTC").astype("datetime64[us, UTC]")


def clean_weather(weather: pd.DataFrame) -> pd.DataFrame:
    """Rename weather to clean columns keyed by ``origin`` and UTC ``hour``; one row per key."""
    out = weather.rename(columns={"location": "origin", "time": "hour", **WEATHER_COLUMNS})
    return out[["origin", "hour", *WEATHER_COLUMNS.values()]]


def clean_flights(flights: pd.DataFrame, weather: pd.DataFrame, timezone: str) -> pd.DataFrame:
    """Derive schedule fields and the label, and join weather at the origin's scheduled hour.

    Args:
        flights: raw flights that met the raw contract.
        weather: clean weather (see :func:`clean_weather`), unique by origin and hour.
        timezone: the zone the schedules are written in.

    Returns:
        One row per input flight (same index), columns :data:`CLEAN_COLUMNS`.
    """
    sched_utc = scheduled_departure(flights, timezone)
    sched_local = sched_utc.dt.tz_convert(timezone)
    cancelled = flights["dep_time"].isna() | flights["dep_delay"].isna()
    label = (flights["dep_delay"] >= DELAY_THRESHOLD_MINUTES).astype("boolean")
    label = label.mask(cancelled, pd.NA)
    base = flights.assign(
        sched_dep_utc=sched_utc,
        sched_dep_local=sched_local.dt.tz_localize(None).astype("datetime64[us]"),
        sched_dep_hour=sched_local.dt.hour.astype("int64"),
        day_of_week=sched_local.dt.day_of_week.astype("int64"),
        month=flights["month"].astype("int64"),
        distance=flights["distance"].astype("float64"),
        cancelled=cancelled.to_numpy(dtype=bool),
        dep_delay=flights["dep_delay"].where(~cancelled),
        dep_delayed_15=label,
        hour=sched_utc.dt.floor("h"),
    )
    joined = base.merge(weather, on=["origin", "hour"], how="left", validate="many_to_one")
    joined.index = base.index
    joined["weather_missing"] = joined["temp_f"].isna().to_numpy()
    return joined[CLEAN_COLUMNS]


def _dedupe_weather(weather: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    dup = weather.duplicated(subset=["location", "time"], keep="first")
    rejected = weather[dup].assign(**{REASON: "duplicate (location, time): first row kept"})
    return weather[~dup], rejected


def _outside(flights: pd.DataFrame, partition: Partition) -> pd.Series:
    day = pd.to_datetime(flights["flight_date"])
    lo, hi = pd.Timestamp(partition.start), pd.Timestamp(partition.end)
    return (day < lo) | (day >= hi)


def _with_reasons(raw: pd.DataFrame, reasons: pd.Series) -> pd.DataFrame:
    return raw.loc[reasons.index].assign(**{REASON: reasons.to_numpy()}).sort_index()


def clean_partition(
    raw: Mapping[str, pd.DataFrame], partition: Partition, timezone: str
) -> CleanResult:
    """Apply the contracts and clean one partition; rejected rows are quarantined."""
    flights_in = raw["flights"].reset_index(drop=True)
    weather_in = raw["weather"].reset_index(drop=True)

    weather_split = split_by_contract(RAW_WEATHER, weather_in)
    weather_ok, weather_dupes = _dedupe_weather(weather_split.valid)

    flights_split = split_by_contract(RAW_FLIGHTS, flights_in)
    outside = _outside(flights_split.valid, partition)
    misplaced = flights_split.valid[outside].assign(
        **{REASON: f"flight_date outside partition {partition.label}"}
    )
    cleaned = clean_flights(flights_split.valid[~outside], clean_weather(weather_ok), timezone)
    clean_split = split_by_contract(CLEAN_FLIGHTS, cleaned)
    # Clean rows keep the raw index, so a clean-contract failure maps back to its raw row.
    # Quarantine keeps the raw rows as extracted; clean rows keep the raw index.
    flights_reasons = pd.concat(
        [flights_split.rejected[REASON], misplaced[REASON], clean_split.rejected[REASON]]
    )
    weather_reasons = pd.concat([weather_split.rejected[REASON], weather_dupes[REASON]])
    return CleanResult(
        clean=clean_split.valid.reset_index(drop=True),
        quarantine={
            "flights": _with_reasons(flights_in, flights_reasons),
            "weather": _with_reasons(weather_in, weather_reasons),
        },
        rows_in={"flights": len(flights_in), "weather": len(weather_in)},
        rows_out={"flights": len(clean_split.valid), "weather": len(weather_ok)},
    )

"""Cleaning of the bike share use case: raw rentals + raw weather -> one clean row per hour.

Rentals are local wall-clock hours (``dteday`` + ``hr`` written ``6am``/``12pm``) of the
use case's zone; weather comes keyed by UTC hour. Rows are quarantined, with a reason,
when they break the raw contract (unparseable hour, unknown values, rentals that are not
casual + registered), fall outside the partition, name an hour the zone does not have,
carry a weekday that contradicts their date, or repeat an hour already seen. A blank
weekday is repaired from the date; a blank weather situation stays null.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import pyarrow as pa

from headwater.core.partitions import Partition
from headwater.core.usecase import CleanResult
from headwater.data.contracts import REASON, split_by_contract
from headwater.usecases.bikeshare.contracts import (
    CLEAN_RENTALS,
    RAW_RENTALS,
    RAW_WEATHER,
    WEEKDAYS,
)
from headwater.usecases.bikeshare.data import local_hour_start, parse_hour
from headwater.usecases.bikeshare.features import HIGH_DEMAND_THRESHOLD

#: Raw weather field -> clean column (units in the name).
WEATHER_COLUMNS = {
    "condition": "weather_situation",
    "temp_c": "temp_c",
    "apparent_temp_c": "feels_like_c",
    "humidity": "humidity_pct",
    "wind_kmh": "wind_speed_kmh",
}

CLEAN_SCHEMA = pa.schema(
    [
        pa.field("hour_start", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("date", pa.date32(), nullable=False),
        pa.field("hour", pa.int32(), nullable=False),
        pa.field("weekday", pa.int32(), nullable=False),
        pa.field("month", pa.int32(), nullable=False),
        pa.field("holiday", pa.bool_(), nullable=False),
        pa.field("workingday", pa.bool_(), nullable=False),
        pa.field("season", pa.string(), nullable=False),
        pa.field("weather_situation", pa.string()),
        pa.field("temp_c", pa.float64()),
        pa.field("feels_like_c", pa.float64()),
        pa.field("humidity_pct", pa.float64()),
        pa.field("wind_speed_kmh", pa.float64()),
        pa.field("casual", pa.int64(), nullable=False),
        pa.field("registered", pa.int64(), nullable=False),
        pa.field("rentals", pa.int64(), nullable=False),
        pa.field("high_demand", pa.bool_(), nullable=False),
    ]
)
CLEAN_COLUMNS = CLEAN_SCHEMA.names

#: The record schema asked of the weather source (the ``json_pages`` kind converts to it).
RAW_WEATHER_SCHEMA = pa.schema(
    [
        pa.field("observed_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("condition", pa.string()),
        pa.field("temp_c", pa.float64()),
        pa.field("apparent_temp_c", pa.float64()),
        pa.field("humidity", pa.float64()),
        pa.field("wind_kmh", pa.float64()),
    ]
)


def _reject(frame: pd.DataFrame, mask: pd.Series, reason: str | pd.Series) -> pd.Series:
    """The reasons of the rows of ``frame`` selected by ``mask`` (indexed like the raw rows)."""
    if isinstance(reason, pd.Series):
        return reason[mask].astype(str)
    return pd.Series(reason, index=frame.index[mask], dtype="str")


def clean_weather(
    weather: pd.DataFrame, partition: Partition, timezone: str
) -> tuple[pd.DataFrame, pd.Series]:
    """Valid, in-partition, one-per-hour weather; and the reasons of the rows rejected."""
    split = split_by_contract(RAW_WEATHER, weather)
    valid = split.valid
    lo, hi = (pd.Timestamp(t) for t in partition.utc_bounds(timezone))
    outside = (valid["observed_at"] < lo) | (valid["observed_at"] >= hi)
    inside = valid[~outside]
    dupes = inside["observed_at"].duplicated(keep="first")
    reasons = pd.concat(
        [
            split.rejected[REASON],
            _reject(valid, outside, f"observed_at outside partition {partition.label}"),
            _reject(inside, dupes, "duplicate observed_at: first observation kept"),
        ]
    )
    return inside[~dupes], reasons


def clean_rentals(
    rentals: pd.DataFrame, weather: pd.DataFrame, partition: Partition, timezone: str
) -> tuple[pd.DataFrame, pd.Series]:
    """Clean rentals (raw index kept) joined to the hour's weather; and the rejected reasons.

    Args:
        rentals: raw rentals that met the raw contract.
        weather: clean weather (see :func:`clean_weather`), unique by ``observed_at``.
        partition: the partition the rows must belong to.
        timezone: the zone ``dteday`` and ``hr`` are written in.
    """
    day = pd.to_datetime(rentals["dteday"])
    outside = (day < pd.Timestamp(partition.start)) | (day >= pd.Timestamp(partition.end))
    hour = parse_hour(rentals["hr"])
    hour_start = local_hour_start(day, hour, timezone)
    gap = hour_start.isna() & ~outside
    weekday = day.dt.day_of_week
    stated = rentals["weekday"].map({name: i for i, name in enumerate(WEEKDAYS)})
    wrong_day = stated.notna() & (stated != weekday) & ~outside & ~gap
    kept = ~(outside | gap | wrong_day)
    dupes = hour_start.where(kept).duplicated(keep="first") & kept
    named = pd.Series([WEEKDAYS[d] for d in weekday], index=rentals.index, dtype="str")
    contradiction = "weekday " + rentals["weekday"].astype(str) + " contradicts dteday (a " + named

    reasons = pd.concat(
        [
            _reject(rentals, outside, f"dteday outside partition {partition.label}"),
            _reject(rentals, gap, f"hr does not exist on that date in {timezone} (DST gap)"),
            _reject(
                rentals,
                wrong_day,
                contradiction + ")",
            ),
            _reject(rentals, dupes, "duplicate hour (dteday, hr): first row kept"),
        ]
    )
    keep = kept & ~dupes
    base = rentals[keep]
    out = pd.DataFrame(
        {
            "hour_start": hour_start[keep],
            "date": day[keep].dt.date,
            "hour": hour[keep].astype("int32"),
            "weekday": weekday[keep].astype("int32"),
            "month": day[keep].dt.month.astype("int32"),
            "holiday": (base["holiday"] == "Yes").to_numpy(dtype=bool),
            "workingday": (base["workingday"] == "Yes").to_numpy(dtype=bool),
            "season": base["season"],
            "casual": base["casual"].astype("int64"),
            "registered": base["registered"].astype("int64"),
            "rentals": base["cnt"].astype("int64"),
        },
        index=base.index,
    )
    out["high_demand"] = (out["rentals"] > HIGH_DEMAND_THRESHOLD).to_numpy(dtype=bool)
    lookup = weather.rename(columns={"observed_at": "hour_start", **WEATHER_COLUMNS})
    joined = out.merge(
        lookup[["hour_start", *WEATHER_COLUMNS.values()]],
        on="hour_start",
        how="left",
        validate="one_to_one",
    )
    joined.index = out.index
    return joined[CLEAN_COLUMNS], reasons


def _with_reasons(raw: pd.DataFrame, reasons: pd.Series) -> pd.DataFrame:
    return raw.loc[reasons.index].assign(**{REASON: reasons.to_numpy()}).sort_index()


def clean_partition(
    raw: Mapping[str, pd.DataFrame], partition: Partition, timezone: str
) -> CleanResult:
    """Apply the contracts and clean one partition; rejected rows are quarantined."""
    rentals_in = raw["rentals"].reset_index(drop=True)
    weather_in = raw["weather"].reset_index(drop=True)
    weather_ok, weather_reasons = clean_weather(weather_in, partition, timezone)
    rentals_split = split_by_contract(RAW_RENTALS, rentals_in)
    cleaned, rentals_reasons = clean_rentals(rentals_split.valid, weather_ok, partition, timezone)
    clean_split = split_by_contract(CLEAN_RENTALS, cleaned)
    rentals_reasons = pd.concat(
        [rentals_split.rejected[REASON], rentals_reasons, clean_split.rejected[REASON]]
    )
    clean = clean_split.valid.sort_values("hour_start", kind="stable", ignore_index=True)
    return CleanResult(
        clean=clean,
        quarantine={
            "rentals": _with_reasons(rentals_in, rentals_reasons),
            "weather": _with_reasons(weather_in, weather_reasons),
        },
        rows_in={"rentals": len(rentals_in), "weather": len(weather_in)},
        rows_out={"rentals": len(clean), "weather": len(weather_ok)},
    )

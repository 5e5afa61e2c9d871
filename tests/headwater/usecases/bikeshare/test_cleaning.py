"""Bike share cleaning: dirty rows are repaired or quarantined with a reason; totals reconcile."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pyarrow as pa
import pytest

from headwater.core.partitions import partition_of
from headwater.data.contracts import REASON
from headwater.data.pipeline import reconcile
from headwater.usecases.bikeshare.cleaning import CLEAN_SCHEMA, clean_partition
from headwater.usecases.bikeshare.contracts import season_of

TZ = "America/New_York"
MONTH = partition_of(date(2011, 3, 1), "month")


def _rental(day: str, hr: str, **extra: object) -> dict[str, object]:
    when = pd.Timestamp(day)
    season = season_of(pd.Series([when])).iloc[0]  # the data set's own season of the date
    working = "Yes" if when.day_of_week < 5 and extra.get("holiday", "No") == "No" else "No"
    row = {"id": 0, "dteday": when, "season": season, "hr": hr,
           "holiday": "No", "weekday": None, "workingday": working,
           "casual": 10, "registered": 290, "cnt": 300}  # fmt: skip
    return {**row, **extra}


def _weather(stamp: str, **extra: object) -> dict[str, object]:
    row = {"observed_at": pd.Timestamp(stamp, tz="UTC"), "condition": "Clear", "temp_c": 5.0,
           "apparent_temp_c": 2.0, "humidity": 60.0, "wind_kmh": 11.0}  # fmt: skip
    return {**row, **extra}


def _raw(rentals: list[dict[str, object]], weather: list[dict[str, object]]) -> dict:
    frame = pd.DataFrame(rentals)
    frame["dteday"] = frame["dteday"].astype("datetime64[ms]")
    return {"rentals": frame, "weather": pd.DataFrame(weather)}


def test_dirty_rows_are_repaired_or_quarantined_with_their_reason() -> None:
    raw = _raw(
        [
            _rental("2011-03-14", "6am"),  # 0 clean, weekday blank -> Monday
            _rental("2011-03-14", "7am", weekday="Mon", cnt=301, casual=11),  # 1 high demand
            _rental("2011-03-14", "13pm"),  # 2 unparseable hour
            _rental("2011-03-14", "8am", weekday="Fri"),  # 3 contradicting weekday
            _rental("2011-03-14", "9am", cnt=5),  # 4 cnt != casual + registered
            _rental("2011-04-01", "9am"),  # 5 outside the partition
            _rental("2011-03-13", "2am"),  # 6 the spring DST gap
            _rental("2011-03-14", "6am", casual=1, registered=1, cnt=2),  # 7 duplicate hour
            _rental("2011-03-14", "10am", season="monsoon"),  # 8 unknown season
        ],
        [
            _weather("2011-03-14T10:00Z"),  # 6am EDT
            _weather("2011-03-14T11:00Z", condition=None),  # 7am: unknown situation stays null
            _weather("2011-03-14T11:00Z", temp_c=99.0),  # implausible and a duplicate
            _weather("2011-03-14T12:00Z", humidity=0.0),  # the sensor fault: quarantined
            _weather("2011-02-28T12:00Z"),  # outside the partition
            _weather("2011-03-14T13:30Z"),  # not on the hour
        ],
    )
    result = clean_partition(raw, MONTH, TZ)

    clean = result.clean
    assert clean["hour"].tolist() == [6, 7]
    assert clean["weekday"].tolist() == [0, 0]  # repaired from the date
    assert clean["hour_start"].tolist() == [
        pd.Timestamp("2011-03-14T10:00Z"), pd.Timestamp("2011-03-14T11:00Z")
    ]  # fmt: skip
    assert clean["high_demand"].tolist() == [False, True]
    assert clean["rentals"].tolist() == [300, 301]
    assert clean["weather_situation"].tolist()[0] == "Clear"
    assert pd.isna(clean["weather_situation"].iloc[1])
    assert clean["temp_c"].tolist() == [5.0, 5.0]
    pa.Table.from_pandas(clean, schema=CLEAN_SCHEMA, preserve_index=False)  # fits the schema

    reasons = result.quarantine["rentals"][REASON]
    assert sorted(reasons.index) == [2, 3, 4, 5, 6, 7, 8]
    assert "hr" in reasons[2] and "str_matches" in reasons[2]
    assert reasons[3] == "weekday Fri contradicts dteday (a Mon)"
    assert "cnt is not casual + registered" in reasons[4]
    assert reasons[5] == "dteday outside partition 2011-03"
    assert "DST gap" in reasons[6]
    assert reasons[7].startswith("duplicate hour")
    assert "season is not the season of dteday" in reasons[8]
    weather_reasons = result.quarantine["weather"][REASON]
    assert sorted(weather_reasons.index) == [2, 3, 4, 5]
    assert "temp_c" in weather_reasons[2] and "humidity" in weather_reasons[3]
    assert "outside partition" in weather_reasons[4] and "on_the_hour" in weather_reasons[5]

    ledger = reconcile(
        result.rows_in, result.rows_out, {k: len(v) for k, v in result.quarantine.items()}
    )
    assert ledger == {
        "rentals": {"in": 9, "out": 2, "quarantined": 7},
        "weather": {"in": 6, "out": 2, "quarantined": 4},
    }


def test_the_autumn_repeated_hour_is_daylight_time() -> None:
    raw = _raw([_rental("2011-11-06", "1am")], [_weather("2011-11-06T05:00Z")])
    result = clean_partition(raw, partition_of(date(2011, 11, 6), "day"), TZ)
    assert result.clean["hour_start"].tolist() == [pd.Timestamp("2011-11-06T05:00Z")]
    assert result.clean["temp_c"].tolist() == [5.0]


@pytest.mark.parametrize(("hr", "hour"), [("12am", 0), ("1am", 1), ("11am", 11), ("12pm", 12),
                                          ("1pm", 13), ("11pm", 23)])  # fmt: skip
def test_hours_are_read_as_a_clock(hr: str, hour: int) -> None:
    raw = _raw([_rental("2011-03-15", hr)], [_weather("2011-03-15T12:00Z")])
    assert clean_partition(raw, MONTH, TZ).clean["hour"].tolist() == [hour]

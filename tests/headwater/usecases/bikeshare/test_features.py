"""The bike-share features: one definition, the batch path (Spark) equal to the record path (API).

The parity tests run ``features_frame`` and ``features_record`` on real clean rows: the
vendored CSV's rows of two months, cleaned by the use case's own cleaning, with some weather
values knocked out and lookups that miss a month, so every default path is exercised.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.core.partitions import partition_of
from headwater.usecases.bikeshare.features import (
    CATEGORICAL,
    FEATURES,
    INPUT_COLUMNS,
    LAG_HOURS,
    LAGS,
    NUMERIC,
    WEATHER_NUMBERS,
    FeatureLookups,
    features_frame,
    features_record,
    years_since,
)

TIMEZONE = "America/New_York"
TYPICAL_JULY = {
    "weather_situation": "Clear", "temp_c": 30.0, "feels_like_c": 33.0, "humidity_pct": 60.0,
    "wind_speed_kmh": 11.0,
}  # fmt: skip
OVERALL = {
    "weather_situation": "Mist", "temp_c": 15.0, "feels_like_c": 14.0, "humidity_pct": 62.0,
    "wind_speed_kmh": 13.0,
}  # fmt: skip
LOOKUPS = FeatureLookups(
    start_year=2011,
    weather={"07": TYPICAL_JULY, "03": {**OVERALL, "weather_situation": "Light Rain"}},
    default_weather=OVERALL,
    weather_situations=["Clear", "Light Rain", "Mist"],
    typical_rentals={f"{h:02d}": 10.0 * h + 1 for h in range(24)},
)


def clean_month(month: date) -> pd.DataFrame:
    """The vendored CSV's rows of one month, through the use case's contracts and cleaning."""
    from headwater.usecases.bikeshare.cleaning import clean_partition
    from headwater.usecases.bikeshare.data import (
        read_csv,
        rentals_for_database,
        weather_observations,
    )

    csv = read_csv()
    part = partition_of(month, "month")
    rentals = rentals_for_database(csv)
    rentals = rentals[(rentals["dteday"] >= part.start) & (rentals["dteday"] < part.end)]
    weather = weather_observations(csv)
    local = weather["observed_at"].dt.tz_convert(TIMEZONE).dt.date
    weather = weather[(local >= part.start) & (local < part.end)]
    return clean_partition({"rentals": rentals, "weather": weather}, part, TIMEZONE).clean


@pytest.fixture(scope="module")
def clean_rows() -> pd.DataFrame:
    """Real clean rows of July 2011 and March 2012, a few weather values knocked out."""
    frame = pd.concat([clean_month(date(2011, 7, 1)), clean_month(date(2012, 3, 1))])
    frame = frame.reset_index(drop=True)
    # the lags as the training job's windows give them: the rentals exactly so long before,
    # null before the first hour, across the month's end and where an hour is missing
    rentals = dict(zip(frame["hour_start"], frame["rentals"], strict=True))
    for name, hours in zip(LAGS, LAG_HOURS, strict=True):
        back = frame["hour_start"] - pd.Timedelta(hours=hours)
        frame[name] = back.map(rentals).astype("Int64")
    frame.loc[frame.index % 7 == 0, "temp_c"] = None
    frame.loc[frame.index % 11 == 0, "weather_situation"] = None
    return frame


def local_start(row: Any) -> datetime:
    """The local wall-clock start of a clean row's hour (what an API request names)."""
    return datetime.combine(row["date"], datetime.min.time()).replace(hour=int(row["hour"]))


def record_of(row: Any) -> dict[str, Any]:
    """The record path on one clean row: its hour, holiday flag and weather."""
    weather = {name: row[name] for name in ("weather_situation", *WEATHER_NUMBERS)}
    weather = {k: None if v is None or (isinstance(v, float) and math.isnan(v)) else v
               for k, v in weather.items()}  # fmt: skip
    recent = {name: None if pd.isna(row[name]) else int(row[name]) for name in LAGS}
    features, _ = features_record(
        hour_start=local_start(row),
        lookups=LOOKUPS,
        holiday=bool(row["holiday"]),
        weather=weather,
        recent_rentals=recent,
    )
    return features


def assert_same(batch: pd.DataFrame, rows: pd.DataFrame) -> None:
    for index, row in rows.iterrows():
        expected = record_of(row)
        got = batch.loc[index]
        for name in CATEGORICAL:
            assert got[name] == expected[name], (index, name)
        for name in NUMERIC:
            assert got[name] == expected[name], (index, name)  # bit-identical, not approx


def test_real_clean_rows_have_what_the_features_need(clean_rows: pd.DataFrame) -> None:
    assert set(INPUT_COLUMNS) <= set(clean_rows.columns)
    assert len(clean_rows) > 1000
    assert clean_rows["weather_situation"].isna().any()
    assert clean_rows["holiday"].any()  # July 4th
    assert clean_rows[list(LAGS)].isna().any().all()  # first hours: lags not known
    assert clean_rows[list(LAGS)].notna().sum().min() > 1000


def test_lags_not_given_take_the_typical_rentals_of_the_hour_they_fall_on() -> None:
    # Given a request at 00:00 with only the lag of the day before
    features, defaulted = features_record(
        hour_start=datetime(2012, 7, 2, 0),
        lookups=LOOKUPS,
        holiday=False,
        weather=TYPICAL_JULY,
        recent_rentals={"rentals_24h_before": 7},
    )

    # Then the hour before is 23:00's typical rentals, the week before 00:00's; said once
    assert features["rentals_1h_before"] == 231.0
    assert features["rentals_24h_before"] == 7.0
    assert features["rentals_168h_before"] == 1.0
    assert defaulted == ["recent_rentals"]


def test_batch_and_record_paths_agree_on_every_real_row(clean_rows: pd.DataFrame) -> None:
    batch = features_frame(clean_rows[list(INPUT_COLUMNS)], LOOKUPS)

    assert list(batch.columns) == list(FEATURES)
    assert batch.index.equals(clean_rows.index)
    assert {str(batch[n].dtype) for n in NUMERIC} == {"float64"}
    assert_same(batch, clean_rows)


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_batch_and_record_paths_agree_on_any_batch_of_real_rows(
    clean_rows: pd.DataFrame, data: st.DataObject
) -> None:
    # Given any subset of real rows, in any order, with any weather value missing
    picks = data.draw(st.lists(st.integers(0, len(clean_rows) - 1), min_size=1, max_size=30))
    rows = clean_rows.iloc[picks].copy()
    for name in ("weather_situation", *WEATHER_NUMBERS):
        if data.draw(st.booleans()):
            rows[name] = None

    # Then each batch row is its record
    batch = features_frame(rows[list(INPUT_COLUMNS)].reset_index(drop=True), LOOKUPS)
    assert_same(batch, rows.reset_index(drop=True))


def test_a_fully_known_hour_uses_no_default() -> None:
    weather = {"weather_situation": "Mist", "temp_c": 21.5, "feels_like_c": 22.0,
               "humidity_pct": 70.0, "wind_speed_kmh": 9.0}  # fmt: skip

    recent = {"rentals_1h_before": 400, "rentals_24h_before": 520, "rentals_168h_before": 480}

    features, defaulted = features_record(
        hour_start=datetime(2012, 7, 6, 17),
        lookups=LOOKUPS,
        holiday=False,
        weather=weather,
        recent_rentals=recent,
    )

    assert defaulted == []
    assert [features[name] for name in LAGS] == [400.0, 520.0, 480.0]
    assert (features["hour"], features["weekday"]) == ("17", "4")  # a Friday
    assert features["weather_situation"] == "Mist"
    assert features["temp_c"] == 21.5
    assert (features["holiday"], features["workingday"], features["weather_defaulted"]) == (
        0.0, 1.0, 0.0
    )  # fmt: skip
    assert features["years_since_start"] == pytest.approx((366 + 186) / 365.25)
    assert features["month_cos"] == pytest.approx(math.cos(math.pi))  # July: opposite January


def test_no_holiday_given_takes_the_federal_calendar_and_says_so() -> None:
    features, defaulted = features_record(hour_start=datetime(2012, 7, 4, 9), lookups=LOOKUPS)

    assert features["holiday"] == 1.0
    assert features["workingday"] == 0.0  # a Wednesday, but a holiday
    assert defaulted == ["holiday", "weather", "recent_rentals"]


def test_partial_weather_fills_only_the_missing_values_from_the_month() -> None:
    features, defaulted = features_record(
        hour_start=datetime(2011, 7, 9, 8), lookups=LOOKUPS, holiday=False,
        weather={"temp_c": 25.0},
    )  # fmt: skip

    assert features["temp_c"] == 25.0
    assert features["humidity_pct"] == TYPICAL_JULY["humidity_pct"]
    assert features["weather_situation"] == "Clear"
    assert features["weather_defaulted"] == 1.0
    assert features["workingday"] == 0.0  # a Saturday
    assert defaulted == ["weather", "recent_rentals"]


def test_a_month_never_seen_takes_the_overall_weather() -> None:
    features, _ = features_record(
        hour_start=datetime(2013, 1, 2, 8), lookups=LOOKUPS, holiday=False
    )

    assert features["weather_situation"] == "Mist"
    assert features["wind_speed_kmh"] == OVERALL["wind_speed_kmh"]


def test_the_trend_counts_years_from_the_first_training_year() -> None:
    assert years_since(date(2011, 1, 1), 2011) == 0.0
    assert years_since(date(2012, 12, 31), 2011) == pytest.approx(730 / 365.25)


def test_lookups_survive_their_json_form() -> None:
    import json

    assert FeatureLookups.from_dict(json.loads(json.dumps(LOOKUPS.to_dict()))) == LOOKUPS

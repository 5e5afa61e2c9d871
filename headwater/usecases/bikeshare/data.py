"""The vendored Capital Bikeshare hourly data (see data/NOTICE) and the demo source database.

The CSV is read as text, dirty values and all: the rentals columns go to the SQL
source as shipped (the contracts and the cleaning deal with them), the weather columns
are what the embedded weather API serves, keyed by UTC hour.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from headwater.core.usecase import DemoReport
from headwater.data.sources.sql import build_sqlite, sqlite_target

CSV_PATH = Path(__file__).with_name("data") / "bike-rental-dataset.csv.gz"
CSV_SHA256 = "37243617704e1f087a24c90449f64be6122b9de72ac0d15641fe3fba28402f1e"
TIMEZONE = "America/New_York"

#: Columns of the source table ``rentals`` (``id`` is the row's position in the shipped file).
RENTAL_TYPES = {
    "id": sa.Integer(),
    "dteday": sa.Date(),
    "season": sa.String(16),
    "hr": sa.String(8),
    "holiday": sa.String(8),
    "weekday": sa.String(8),
    "workingday": sa.String(8),
    "casual": sa.Integer(),
    "registered": sa.Integer(),
    "cnt": sa.Integer(),
}
#: The CSV's weather columns -> the embedded API's record fields.
WEATHER_FIELDS = {
    "weathersit": "condition",
    "temp": "temp_c",
    "atemp": "apparent_temp_c",
    "hum": "humidity",
    "windspeed": "wind_kmh",
}


def rentals_table() -> sa.Table:
    """The source table: ``id`` its key (extraction order), ``dteday`` indexed (partitions)."""
    columns = [
        sa.Column(name, kind, primary_key=name == "id", index=name == "dteday")
        for name, kind in RENTAL_TYPES.items()
    ]
    return sa.Table("rentals", sa.MetaData(), *columns)


def read_csv(path: Path = CSV_PATH) -> pd.DataFrame:
    """Read the shipped CSV as text (blanks become missing), in the file's own order."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    return frame.replace("", None)


def csv_sha256(path: Path = CSV_PATH) -> str:
    """The SHA-256 of the uncompressed CSV (the vendored file is the file as shipped)."""
    with gzip.open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def parse_hour(text: pd.Series) -> pd.Series:
    """Hours written ``12am``..``11pm`` as 0..23 (nullable Int64); anything else is missing."""
    parts = text.astype("string").str.strip().str.lower().str.extract(r"^(1[0-2]|[1-9])(am|pm)$")
    clock = pd.to_numeric(parts[0], errors="coerce").astype("Int64") % 12
    return (clock + (parts[1] == "pm").astype("Int64") * 12).astype("Int64")


def local_hour_start(day: pd.Series, hour: pd.Series, timezone: str) -> pd.Series:
    """The UTC start of local ``day`` + ``hour``; the autumn's repeated hour is read as DST.

    A local hour that does not exist (the spring DST gap) is NaT.
    """
    local = pd.to_datetime(day) + pd.to_timedelta(hour.astype("float64"), unit="h")
    aware = local.dt.tz_localize(
        timezone, ambiguous=np.ones(len(local), dtype=bool), nonexistent="NaT"
    )
    return aware.dt.tz_convert("UTC").astype("datetime64[us, UTC]")


def rentals_for_database(csv: pd.DataFrame) -> pd.DataFrame:
    """The rentals columns of the CSV as the source table holds them (dirty values kept)."""
    out = csv.assign(
        id=np.arange(1, len(csv) + 1),
        dteday=pd.to_datetime(csv["dteday"], format="%Y-%m-%d").dt.date,
    )
    for column in ("casual", "registered", "cnt"):
        out[column] = pd.to_numeric(out[column]).astype("Int64")
    return out[list(RENTAL_TYPES)]


def weather_observations(csv: pd.DataFrame, timezone: str = TIMEZONE) -> pd.DataFrame:
    """The CSV's weather as observations by UTC hour (what the embedded API serves), sorted."""
    hour_start = local_hour_start(csv["dteday"], parse_hour(csv["hr"]), timezone)
    out = pd.DataFrame({"observed_at": hour_start})
    for column, name in WEATHER_FIELDS.items():
        values = csv[column]
        out[name] = values if column == "weathersit" else pd.to_numeric(values)
    out = out.dropna(subset=["observed_at"])
    out = out.drop_duplicates(subset=["observed_at"], keep="first")
    return out.sort_values("observed_at", ignore_index=True)


def build_demo_database(
    path: Path,
    *,
    replace: bool = False,
    first: date | None = None,
    last: date | None = None,
) -> DemoReport:
    """Build the rentals source database (SQLite) from the vendored CSV.

    ``first``/``last`` keep only the rows of those dates (small fixtures for tests).
    An existing database is kept unless ``replace``.
    """

    def write(conn: sa.Connection) -> dict[str, int]:
        rentals = rentals_for_database(read_csv())
        if first is not None or last is not None:
            day = rentals["dteday"]
            rentals = rentals[(day >= (first or date.min)) & (day <= (last or date.max))]
        rentals_table().create(conn)
        rentals.to_sql("rentals", conn, index=False, if_exists="append", chunksize=50_000)
        return {"rentals": len(rentals)}

    url, tables = build_sqlite(path, write, replace=replace)
    return DemoReport(url=url, tables=tables)


def build_demo_data(sources: Mapping[str, Any], *, replace: bool = False) -> DemoReport:
    """Build the demo database where the configured ``rentals`` source (a SQLite URL) points."""
    url = sources["rentals"].options()["url"]
    return build_demo_database(sqlite_target(url, "source 'rentals'"), replace=replace)

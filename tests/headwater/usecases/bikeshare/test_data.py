"""The vendored CSV and the demo rentals database built from it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from headwater.core.config import SourceConfig
from headwater.core.usecase import get_usecase
from headwater.usecases.bikeshare.data import CSV_SHA256, csv_sha256, parse_hour, read_csv


def test_the_vendored_csv_is_the_file_as_shipped() -> None:
    assert csv_sha256() == CSV_SHA256
    csv = read_csv()
    assert len(csv) == 17_379
    assert csv["weekday"].isna().sum() == 875 and csv["weathersit"].isna().sum() == 1_258
    assert parse_hour(csv["hr"]).notna().all()


def test_build_demo_data_fills_the_configured_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "bike.sqlite"
    source = SourceConfig(kind="sql", url=f"sqlite:///{path}", table="rentals")
    report = get_usecase("bikeshare").build_demo_data({"rentals": source}, replace=False)
    assert report.tables == {"rentals": 17_379}
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM rentals WHERE weekday IS NULL").fetchone() == (875,)
        assert db.execute("SELECT hr FROM rentals WHERE id = 1").fetchone() == ("6am",)
        columns = [row[1] for row in db.execute("PRAGMA table_info(rentals)")]
    assert "weathersit" not in columns and "temp" not in columns  # weather is served over HTTP
    assert not path.with_name("bike.sqlite.tmp").exists()


def test_demo_data_is_only_built_into_sqlite() -> None:
    source = SourceConfig(kind="sql", url="postgresql://db/x", table="rentals")
    with pytest.raises(ValueError, match="sqlite:///"):
        get_usecase("bikeshare").build_demo_data({"rentals": source}, replace=False)

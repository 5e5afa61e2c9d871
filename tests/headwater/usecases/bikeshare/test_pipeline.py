"""The pipeline steps on the bike share demo source: one bad cell quarantines its hour, not the day
(moved from tests/headwater/data/test_pipeline.py)."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

from headwater.core.config import Settings
from headwater.core.layout import dataset
from headwater.core.partitions import parse_partition
from headwater.data.pipeline import (
    QUARANTINE,
    clean_partition,
    extract_partition,
    lake_for,
)

MakeSettings = Callable[..., Settings]


def test_a_text_rental_count_quarantines_its_hour_not_the_bike_share_day(
    make_settings: MakeSettings, tmp_path: Path, bike_db: str
) -> None:
    # Given a rentals source whose one hour has text in its integer cnt cell (before: the
    # whole day failed, "raw_rentals contract broken as a whole: cnt: dtype('int64')")
    path = tmp_path / "rentals.sqlite"
    shutil.copyfile(bike_db.removeprefix("sqlite:///"), path)
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE rentals SET cnt = 'lots' WHERE id = "
            "(SELECT MIN(id) FROM rentals WHERE dteday = '2011-02-03')"
        )
    settings = make_settings(
        bikeshare=True, usecase__bikeshare__sources__rentals__url=f"sqlite:///{path}"
    )
    partition = parse_partition("2011-02-03", "day")

    # When the day is extracted and cleaned
    raw = {
        s: extract_partition(settings, "bikeshare", s, partition, "run-1")
        for s in ("rentals", "weather")
    }
    result = clean_partition(settings, "bikeshare", partition, "run-1")

    # Then that hour alone is quarantined, naming the cell
    bad, _ = lake_for(settings).read(QUARANTINE, dataset("bikeshare", "rentals"), partition.key)
    assert bad["quarantine_reason"].to_pylist() == ["cnt: cannot be read as int64 (got 'lots')"]
    assert result.reconciliation["rentals"]["quarantined"] == 1
    assert result.rows == raw["rentals"].rows - 1 > 0

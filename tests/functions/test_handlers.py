"""The Lambda handlers, invoked as the runtime does: a JSON event from tests/events, a context.

They run on the test-only use case (tests/usecases/minimal), so any use case's events take
the same path; a shipped use case's own figures are in its folder (tests/headwater/usecases/).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from functions import clean, extract
from headwater.core.config import ConfigError, Settings
from headwater.core.layout import dataset
from headwater.data.executors import LocalContext, resolve_handler
from tests.functions.conftest import SOURCE, USECASE

EVENTS = Path(__file__).parents[1] / "events"
# The sample events under tests/events/
EXTRACT, CLEAN = f"extract_{SOURCE}", f"clean_{USECASE}"
BAD_PARTITION = f"extract_{SOURCE}_bad_partition"


def load_event(name: str) -> dict[str, Any]:
    """Read a sample event as the runtime hands it over: a fresh dict from JSON."""
    return json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8"))


def _local_file(uri: str) -> Path:
    parsed = urlparse(uri)
    assert parsed.scheme == "file"
    return Path(parsed.path)


def _sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_json_result(result: dict[str, Any]) -> None:
    assert json.loads(json.dumps(result, allow_nan=False)) == result


def _source_rows(url: str, day: str, where: str = "1 = 1") -> int:
    """Count the day's rows in the demo source itself (independently of the pipeline)."""
    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        query = f"SELECT COUNT(*) FROM readings WHERE day = ? AND {where}"
        return int(db.execute(query, (day,)).fetchone()[0])


@pytest.mark.parametrize("day", ["2013-01-01", "2013-01-02"])
def test_extract_writes_the_day_and_answers_rows_uri_and_checksum(
    meters_stage: Settings, lambda_context: LocalContext, meters_db: str, day: str
) -> None:
    # Given the sample extract event, for that day
    event = {**load_event(EXTRACT), "partition": day}

    # When the handler runs
    result = extract.lambda_handler(event, lambda_context)

    # Then it answers the source's row count for that day, in JSON ...
    expected = _source_rows(meters_db, day)
    assert expected > 0
    assert result["rows"] == expected
    assert (result["dataset"], result["partition"]) == (dataset(USECASE, SOURCE), f"date={day}")
    _assert_json_result(result)
    # ... and a file that exists, with that checksum and that many rows
    path = _local_file(result["uri"])
    assert path.is_file()
    assert path.is_relative_to(_local_file(meters_stage.lake.uri) / "raw" / USECASE / SOURCE)
    assert result["checksum"] == _sha256(path)
    assert pq.read_metadata(path).num_rows == expected


def _quarantined_rows(stage: Settings, day: str) -> int:
    root = _local_file(stage.lake.uri) / "quarantine" / USECASE / SOURCE / f"date={day}"
    files = list(root.glob("*.parquet"))
    assert len(files) == 1, files
    return pq.read_metadata(files[0]).num_rows


@pytest.mark.parametrize(
    "day",
    [
        "2013-01-02",
        "2013-01-01",  # the demo source holds one reading without a load that day
    ],
)
def test_clean_answers_rows_uri_checksum_and_quarantined(
    meters_stage: Settings, lambda_context: LocalContext, meters_db: str, day: str
) -> None:
    # Given the day's source extracted by the extract handler
    event = {**load_event(EXTRACT), "partition": day}
    extracted = extract.lambda_handler(event, lambda_context)["rows"]

    # When the clean handler runs
    result = clean.lambda_handler(
        {**load_event(f"clean_{USECASE}"), "partition": day}, lambda_context
    )

    # Then quarantined is what the quarantine partition holds, the rows the source lacks a load
    _assert_json_result(result)
    quarantined = _quarantined_rows(meters_stage, day)
    assert result["quarantined"] == quarantined
    assert quarantined == _source_rows(meters_db, day, "load_kw IS NULL")
    # ... the clean file exists with its checksum, one row per reading not quarantined ...
    path = _local_file(result["uri"])
    assert path.is_relative_to(_local_file(meters_stage.lake.uri) / "clean" / USECASE / SOURCE)
    assert result["checksum"] == _sha256(path)
    assert result["rows"] == pq.read_metadata(path).num_rows
    assert result["rows"] == extracted - quarantined
    # ... and the ledger balances against what extract reported
    assert result["reconciliation"] == {
        SOURCE: {"in": extracted, "out": extracted - quarantined, "quarantined": quarantined}
    }


def _without(key: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda event: {k: v for k, v in event.items() if k != key}


def _with(**changes: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda event: {**event, **changes}


EXTRACT, BAD_PARTITION, CLEAN = (
    f"extract_{SOURCE}",
    f"extract_{SOURCE}_bad_partition",
    "clean_meters",
)


@pytest.mark.parametrize(
    ("handler", "name", "change", "error", "message"),
    [
        (extract, EXTRACT, _without("source"), ValidationError, r"source\s+Field required"),
        (
            extract,
            EXTRACT,
            _with(table=SOURCE),
            ValidationError,
            r"table\s+Extra inputs are not permitted",
        ),
        (extract, BAD_PARTITION, _with(), ValueError, r"bad partition '2013-13-01'"),
        (extract, EXTRACT, _with(partition="2013-1-2"), ValidationError, r"partition"),
        (
            extract,
            EXTRACT,
            _with(source="Readings!"),
            ValidationError,
            r"source\s+String should match pattern",
        ),
        (extract, EXTRACT, _with(source="tickets"), ValueError, r"source 'tickets'"),
        (extract, EXTRACT, _with(run_id=""), ValidationError, r"run_id"),
        (extract, EXTRACT, _without("usecase"), ValidationError, r"usecase\s+Field"),
        (
            extract,
            EXTRACT,
            _with(usecase="../raw"),
            ValidationError,
            r"usecase\s+String should match pattern",
        ),
        (
            extract,
            EXTRACT,
            _with(usecase="trains"),
            ConfigError,
            rf"use case 'trains' is not configured \(configured: {USECASE}\)",
        ),
        (clean, CLEAN, _without("usecase"), ValidationError, r"usecase\s+Field required"),
        (clean, CLEAN, _with(usecase="trains"), ConfigError, r"use case 'trains'"),
        (clean, CLEAN, _with(source=SOURCE), ValidationError, r"source\s+Extra inputs"),
        (clean, CLEAN, _with(partition="2013-02-30"), ValueError, r"bad partition '2013-02-30'"),
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
    meters_stage: Settings,
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
    lake = _local_file(meters_stage.lake.uri)
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

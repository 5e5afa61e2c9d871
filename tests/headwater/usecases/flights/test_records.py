"""The flights test model's metrics.json and lineage.json as typed records: an old lineage's
range string, the figures of its metrics (moved from tests/headwater/core/test_records.py)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from headwater.core.records import DateRange, Lineage, TrainingMetrics
from tests.headwater.usecases.flights.fixtures import TEST_MODEL as MODELS


def read(name: str) -> dict[str, Any]:
    return json.loads((MODELS / name).read_text())


def test_an_old_lineage_range_string_reads_as_a_typed_pair() -> None:
    # Given a lineage written before the range was two fields
    document = read("lineage.json")
    assert document["date_range"] == "2013-01-01..2013-12-31"

    lineage = Lineage.from_dict(document)

    assert lineage.range == DateRange(date(2013, 1, 1), date(2013, 12, 31))
    assert lineage.holdout_from == date(2013, 11, 1)
    assert lineage.trained_at == datetime(2026, 11, 24, 2, 42, 33, tzinfo=UTC)
    assert lineage.input_datasets == ["clean/flights", "raw/planes"]
    # the same facts as a new document's: equal records
    new = {k: v for k, v in document.items() if k != "date_range"}
    assert Lineage.from_dict({**new, "range": lineage.range.to_dict()}) == lineage


def test_the_metrics_on_disk_read_as_typed_fields() -> None:
    metrics = TrainingMetrics.from_dict(read("metrics.json"))

    assert metrics.holdout_from == date(2013, 11, 1)
    assert metrics.holdout["rows"] == 54145 and metrics.train_rows == 274376
    assert metrics.baselines["mean_arrival_delay"] == {
        "rmse": 40.12416009926686,
        "mae": 24.69171559092345,
    }
    assert metrics.calibration is not None and metrics.calibration[7]["observed_rate"] == 1.0
    assert metrics.export_parity is not None and metrics.export_parity["rows"] == 2000
    assert metrics.label is None and metrics.holdout_window is None  # older than both
    assert metrics.extra == {}

"""metrics.json and lineage.json as typed records: round trips, old versions, bad documents."""

from __future__ import annotations

import json
import pickle
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from headwater.core.records import (
    DateRange,
    HoldoutWindow,
    Lineage,
    ProductionScore,
    QuantityNames,
    RecordError,
    TrainingMetrics,
)
from tests.conftest import model_directories

ON_DISK = model_directories()  # every use case's test model


def read(folder: Path, name: str) -> dict[str, Any]:
    return json.loads((folder / name).read_text())


# -- versions already on disk -----------------------------------------------------------------
@pytest.mark.parametrize("folder", ON_DISK.values(), ids=list(ON_DISK))
def test_metrics_on_disk_round_trip_unchanged(folder: Path) -> None:
    document = read(folder, "metrics.json")

    assert TrainingMetrics.from_dict(document).to_dict() == document


@pytest.mark.parametrize("folder", ON_DISK.values(), ids=list(ON_DISK))
def test_lineage_on_disk_round_trips_unchanged(folder: Path) -> None:
    document = read(folder, "lineage.json")

    assert Lineage.from_dict(document).to_dict() == document


# -- what the job writes now ------------------------------------------------------------------
NEW_LINEAGE = Lineage(
    model="meters",
    usecase="meters",
    version="20261124T023915Z-794e11",
    run_id="r1",
    code_version="abc",
    training_key="k1",
    trained_at=datetime(2026, 11, 24, 2, 42, 33, tzinfo=UTC),
    range=DateRange(date(2013, 1, 1), date(2013, 12, 31)),
    holdout_from=date(2013, 11, 1),
    inputs={"clean/meters/month=2013-01": "sha256:ab"},
    config={"gate": {"metric": "auc_roc"}},
    spark_version="3.5.1",
    pyspark_version="3.5.1",
    python_version="3.11.7",
)

NEW_METRICS = TrainingMetrics(
    model="meters",
    usecase="meters",
    version="v2",
    label=QuantityNames("dep_delayed_15", "departure delayed 15 min", ""),
    target=QuantityNames("arr_delay", "arrival delay", "min"),
    holdout_from=date(2013, 11, 1),
    holdout={"rows": 10, "auc_roc": 0.71},
    regression={"rmse": 38.9, "r2": float("nan")},
    baselines={"base_rate": {"auc_roc": 0.5}},
    baseline_descriptions={"base_rate": "the training base rate"},
    calibration=({"bin": 0, "count": 3, "mean_probability": 0.1, "observed_rate": 0.2},),
    train_rows=100,
    threshold=0.5,
    holdout_window=HoldoutWindow(date(2013, 11, 1), date(2013, 12, 31), 10, 61),
    production_on_holdout=ProductionScore("v1", {"auc_roc": 0.7, "rows": 10}),
    comparison={"version": "v1", "method": "paired block bootstrap", "intervals": {}},
    export_parity={"rows": 10, "max_abs_probability": 0.0},
)


def test_a_new_lineage_writes_its_range_as_two_fields() -> None:
    document = NEW_LINEAGE.to_dict()

    assert document["range"] == {"start": "2013-01-01", "end": "2013-12-31"}
    assert "date_range" not in document
    assert document["trained_at"] == "2026-11-24T02:42:33+00:00"
    assert Lineage.from_dict(json.loads(json.dumps(document))) == NEW_LINEAGE


def test_new_metrics_round_trip_through_json() -> None:
    document = json.loads(json.dumps(NEW_METRICS.to_dict()))

    back = TrainingMetrics.from_dict(document)

    assert back.to_dict().keys() == document.keys()
    assert back.holdout_window == NEW_METRICS.holdout_window
    assert back.production_on_holdout == NEW_METRICS.production_on_holdout
    assert back.label == NEW_METRICS.label and back.target == NEW_METRICS.target
    assert document["holdout_window"] == {
        "from": "2013-11-01",
        "to": "2013-12-31",
        "rows": 10,
        "days": 61,
    }
    assert document["production_on_holdout"] == {"version": "v1", "auc_roc": 0.7, "rows": 10}


def test_a_production_that_could_not_score_keeps_its_error() -> None:
    document = {"version": "v1", "error": "AnalysisException: no column x"}

    score = ProductionScore.from_dict(document, "metrics.json")

    assert score == ProductionScore("v1", {}, "AnalysisException: no column x")
    assert score.to_dict() == document


def test_unknown_fields_are_kept_and_written_back() -> None:
    # a newer job's field (or a hand-made test model's note) survives a read and a write
    document = {"holdout": {"auc_roc": 0.7}, "note": "hand-made", "profile": {"rows": 3}}

    metrics = TrainingMetrics.from_dict(document)

    assert metrics.extra == {"note": "hand-made", "profile": {"rows": 3}}
    assert metrics.to_dict() == {**document, "regression": {}, "baselines": {}}


def test_missing_sections_read_as_empty() -> None:
    metrics, lineage = TrainingMetrics.from_dict({}), Lineage.from_dict({})

    assert metrics.holdout == {} and metrics.holdout_from is None and metrics.comparison is None
    assert lineage.range is None and lineage.inputs == {} and lineage.training_key is None


# -- bad documents ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("document", "field", "problem"),
    [
        ([1, 2], "the document", "not a JSON object"),
        ({"holdout": {"auc_roc": "high"}}, "holdout.auc_roc", "not a number"),
        ({"holdout": {"auc_roc": True}}, "holdout.auc_roc", "not a number"),
        ({"holdout": [0.7]}, "holdout", "not a JSON object"),
        ({"holdout_from": "2013-13-01"}, "holdout_from", "not an ISO date"),
        ({"train_rows": 1.5}, "train_rows", "not a whole number"),
        ({"baselines": {"base_rate": {"auc_roc": None}}}, "baselines.base_rate.auc_roc", "number"),
        ({"holdout_window": {"from": "2013-11-01"}}, "holdout_window.to", "is missing"),
        ({"production_on_holdout": {"auc_roc": 0.7}}, "production_on_holdout.version", "missing"),
        ({"calibration": [{"bin": "x"}]}, "calibration[0].bin", "not a number"),
        ({"label": {"column": 3}}, "label.column", "not a string"),
    ],
)
def test_bad_metrics_name_the_document_and_the_field(
    document: Any, field: str, problem: str
) -> None:
    with pytest.raises(RecordError) as raised:
        TrainingMetrics.from_dict(document, "s3://lake/models/meters/v1/metrics.json")

    error = raised.value
    assert (error.document, error.field) == ("s3://lake/models/meters/v1/metrics.json", field)
    assert problem in error.problem
    assert str(error).startswith(f"s3://lake/models/meters/v1/metrics.json: {field} is ")


@pytest.mark.parametrize(
    ("document", "field", "problem"),
    [
        ({"date_range": "2013-01-01"}, "date_range", "not 'start..end'"),
        ({"date_range": "2013-01-01..someday"}, "date_range", "not an ISO date"),
        ({"date_range": "2013-12-31..2013-01-01"}, "date_range", "ends (2013-01-01) before"),
        ({"range": {"start": "2013-01-01"}}, "range.end", "is missing"),
        ({"range": {"start": "2013-01-01", "end": 20131231}}, "range.end", "not an ISO date"),
        (
            {"range": {"start": "2013-01-01", "end": "2013-01-02"}, "date_range": "x"},
            "range",
            "twice",
        ),
        ({"trained_at": "yesterday"}, "trained_at", "not an ISO time"),
        ({"inputs": {"clean/x/1": 3}}, "inputs.clean/x/1", "not a string"),
        ({"training_key": 7}, "training_key", "not a string"),
    ],
)
def test_bad_lineage_names_the_document_and_the_field(
    document: Any, field: str, problem: str
) -> None:
    with pytest.raises(RecordError) as raised:
        Lineage.from_dict(document)

    assert (raised.value.document, raised.value.field) == ("lineage.json", field)
    assert problem in raised.value.problem


def test_a_record_error_survives_crossing_processes() -> None:
    error = RecordError("metrics.json", "holdout", "is [], not a JSON object")

    copied = pickle.loads(pickle.dumps(error))

    assert (copied.document, copied.field, str(copied)) == (
        "metrics.json",
        "holdout",
        str(error),
    )


def test_a_range_cannot_end_before_it_starts() -> None:
    with pytest.raises(ValueError, match="ends"):
        DateRange(date(2013, 2, 1), date(2013, 1, 1))
    assert str(DateRange(date(2013, 1, 1), date(2013, 1, 31))) == "2013-01-01..2013-01-31"

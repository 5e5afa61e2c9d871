"""The portable scorer: Spark's own ``transform`` and ``serving.scoring`` give the same numbers.

The one-hot conventions are checked against Spark on a tiny frame; the unit tests replay
hand-written exports whose answers are known. Parity on a whole trained version is tested with
the use case it was trained for.
"""

from __future__ import annotations

import copy
import json
import math
import random
from pathlib import Path
from typing import Any

import pytest

from headwater.model.spark_export import export_document, export_pipeline
from headwater.model.spark_training import feature_stages
from headwater.serving.scoring import (
    ExportError,
    PortablePipeline,
    fold,
    load_pipelines,
    score_batch,
)

# pyspark leaves collect() sockets to the garbage collector: see the note in tests/conftest.py.
pytestmark = pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")
TOLERANCE = 1e-9


# --- the one-hot conventions, against Spark on a tiny frame ------------------------------------


@pytest.mark.parametrize("handle_invalid", ["keep", "error"])
@pytest.mark.parametrize("drop_last", [True, False])
def test_one_hot_sizes_and_slots_match_spark(
    spark: Any, handle_invalid: str, drop_last: bool
) -> None:
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import OneHotEncoder, StringIndexer, VectorAssembler

    # Given a fitted index + one-hot + assemble pipeline over three meters
    train_df = spark.createDataFrame(
        [("m1", 1.0), ("m1", 2.0), ("m2", 3.0), ("DL", 4.0)], "meter string, x double"
    )
    model = Pipeline(
        stages=[
            StringIndexer(inputCol="meter", outputCol="meter_idx", handleInvalid="keep"),
            OneHotEncoder(
                inputCols=["meter_idx"],
                outputCols=["meter_ohe"],
                handleInvalid=handle_invalid,
                dropLast=drop_last,
            ),
            VectorAssembler(inputCols=["meter_ohe", "x"], outputCol="raw", handleInvalid="keep"),
        ]
    ).fit(train_df)
    pipeline = PortablePipeline.from_dict(export_pipeline(model, ["meter", "x"]))

    # When known and unseen meters go through Spark and through the scorer
    rows = [("m1", 1.5), ("m2", 0.0), ("DL", -1.0), ("m9", 2.0), (None, 7.0)]
    frame = spark.createDataFrame(rows, "meter string, x double")
    expected = [r.raw.toArray().tolist() for r in model.transform(frame).collect()]

    # Then the vectors have the same size and the same slots set
    got = [row["raw"] for row in score_batch(pipeline, [{"meter": c, "x": x} for c, x in rows])]
    assert got == expected


# --- hand-written exports ----------------------------------------------------------------------


def document(**changes: Any) -> dict[str, Any]:
    """A small classifier export: one category, two numbers (the second constant in training)."""
    stages = [
        {
            "type": "StringIndexer",
            "inputCols": ["meter"],
            "outputCols": ["meter_idx"],
            "labels": [["m1", "m2"]],
            "handleInvalid": "keep",
        },
        {
            "type": "OneHotEncoder",
            "inputCols": ["meter_idx"],
            "outputCols": ["meter_ohe"],
            "categorySizes": [3],  # two labels plus the extra index of "keep"
            "dropLast": True,
            "handleInvalid": "keep",
        },
        {"type": "VectorAssembler", "inputCols": ["meter_ohe", "x", "y"], "outputCol": "raw"},
        {
            "type": "StandardScaler",
            "inputCol": "raw",
            "outputCol": "features",
            "withMean": True,
            "withStd": True,
            "mean": [0.5, 0.25, 0.0, 10.0, 4.0],
            "std": [0.5, 0.5, 0.0, 2.0, 0.0],
        },
        {
            "type": "LogisticRegression",
            "featuresCol": "features",
            "coefficients": [1.0, -1.0, 3.0, 0.5, 7.0],
            "intercept": -0.25,
            "threshold": 0.5,
        },
    ]
    body = export_document({"classifier": {"inputs": ["meter", "x", "y"], "stages": stages}}, {})
    body.update(changes)
    return body


def classifier(body: dict[str, Any] | None = None) -> PortablePipeline:
    """The classifier of a document."""
    return load_pipelines(body or document())["classifier"]


def test_a_hand_written_export_scores_as_computed_by_hand() -> None:
    out = classifier().transform({"meter": "m2", "x": 12.0, "y": 99.0})

    assert out["meter_idx"] == 1
    assert out["raw"] == [0.0, 1.0, 0.0, 12.0, 99.0]
    # (v - mean) / std, and 0 where the training std was 0 (the unseen slot, and y)
    assert out["features"] == [-1.0, 1.5, 0.0, 1.0, 0.0]
    margin = -0.25 + 1.0 * -1.0 + -1.0 * 1.5 + 0.5 * 1.0
    assert out["probability"] == pytest.approx(1 / (1 + math.exp(-margin)), abs=1e-15)
    assert out["prediction"] == 0.0


@pytest.mark.parametrize("meter", ["m9", None, "", 7])
def test_an_unseen_or_missing_category_takes_the_extra_index(meter: Any) -> None:
    out = classifier().transform({"meter": meter, "x": 10.0, "y": 4.0})

    assert out["meter_idx"] == 2
    assert out["raw"][:3] == [0.0, 0.0, 1.0]
    assert out["features"][2] == 0.0  # constant in training: scaled to 0, whatever its value


def test_without_keep_an_unseen_category_is_an_error() -> None:
    body = document()
    body["pipelines"]["classifier"]["stages"][0]["handleInvalid"] = "error"

    with pytest.raises(ValueError, match="unseen value 'm9' for 'meter'"):
        classifier(body).transform({"meter": "m9", "x": 1.0, "y": 1.0})


@pytest.mark.parametrize(
    ("handle_invalid", "drop_last", "size", "unseen_slot"),
    [
        ("keep", True, 3, 1.0),
        ("keep", False, 4, 1.0),
        ("error", True, 2, 0.0),
        ("error", False, 3, 1.0),
    ],
)
def test_one_hot_block_sizes(
    handle_invalid: str, drop_last: bool, size: int, unseen_slot: float
) -> None:
    # categorySizes is 3 (two labels and the indexer's extra one): the block is
    # 3 + (1 if keep) - (1 if dropLast) wide, and the extra index is dropped only when
    # dropLast removes the last slot and no slot of "keep" replaces it
    body = document()
    encoder = body["pipelines"]["classifier"]["stages"][1]
    encoder.update(handleInvalid=handle_invalid, dropLast=drop_last)
    body["pipelines"]["classifier"]["stages"] = body["pipelines"]["classifier"]["stages"][:3]

    out = classifier(body).transform({"meter": "m1", "x": 1.0, "y": 2.0})

    assert out["meter_ohe"] == ((0,), size)
    assert len(out["raw"]) == size + 2
    unseen = classifier(body).transform({"meter": "m9", "x": 1.0, "y": 2.0})["raw"][:size]
    assert sum(unseen) == unseen_slot


def test_a_linear_regression_head_predicts_the_margin() -> None:
    body = document()
    stages = body["pipelines"]["classifier"]["stages"]
    stages[-1] = {"type": "LinearRegression", "featuresCol": "features",
                  "coefficients": [0.0, 0.0, 0.0, 2.0, 0.0], "intercept": 15.0}  # fmt: skip

    out = classifier(body).transform({"meter": "m1", "x": 14.0, "y": 4.0})

    assert out["prediction"] == 15.0 + 2.0 * (14.0 - 10.0) / 2.0
    assert "probability" not in out


@pytest.mark.parametrize(("x", "probability"), [(-1e6, 0.0), (1e6, 1.0)])
def test_extreme_margins_saturate_instead_of_overflowing(x: float, probability: float) -> None:
    out = classifier().transform({"meter": "m1", "x": x, "y": 4.0})

    assert out["probability"] == probability
    assert out["prediction"] == probability


def test_missing_numbers_score_nan() -> None:
    out = classifier().transform({"meter": "m1", "x": None, "y": 4.0})

    assert math.isnan(out["raw"][3]) and math.isnan(out["probability"])
    assert out["prediction"] == 0.0


def test_missing_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="missing model inputs: x, y"):
        classifier().transform({"meter": "m1"})


def test_transform_does_not_change_the_callers_record() -> None:
    record = {"meter": "m1", "x": 1.0, "y": 2.0}

    classifier().transform(record)

    assert record == {"meter": "m1", "x": 1.0, "y": 2.0}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format": "onnx"}, "not a headwater.spark-pipeline document"),
        ({"format_version": 2}, "export format version 2 is not supported"),
        ({"format_version": None}, "export format version None is not supported"),
        ({"pipelines": {}}, "export document has no pipelines"),
        ({"pipelines": []}, "export document has no pipelines"),
    ],
)
def test_bad_documents_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ExportError, match=message):
        load_pipelines(document(**changes))


def test_unknown_stages_and_malformed_pipelines_are_refused() -> None:
    unknown = document()
    unknown["pipelines"]["classifier"]["stages"].append({"type": "RandomForestClassifier"})
    with pytest.raises(ExportError, match="unsupported stage 'RandomForestClassifier'"):
        load_pipelines(unknown)

    malformed = copy.deepcopy(document())
    del malformed["pipelines"]["classifier"]["stages"][3]["mean"]
    with pytest.raises(ExportError, match="malformed pipeline export"):
        load_pipelines(malformed)


def test_a_scaler_given_a_vector_of_the_wrong_size_refuses_it() -> None:
    body = document()
    body["pipelines"]["classifier"]["stages"][2]["inputCols"] = ["meter_ohe", "x"]

    with pytest.raises(ExportError, match="scaler expects 5 values, got 4"):
        classifier(body).transform({"meter": "m1", "x": 1.0, "y": 1.0})


def test_export_stage_refuses_what_the_scorer_cannot_replay(spark: Any) -> None:
    from pyspark.ml.feature import Bucketizer

    from headwater.model.spark_export import export_stage

    with pytest.raises(ExportError, match="cannot export stage 'Bucketizer'"):
        export_stage(Bucketizer(splits=[0.0, 1.0, 2.0], inputCol="x", outputCol="b"))


def test_feature_stages_fitted_on_a_constant_column_export_a_zero_std(spark: Any) -> None:
    # Given the job's shared stages fitted where one numeric column never varies
    frame = spark.createDataFrame(
        [("m1", 1.0, 5.0), ("m2", 2.0, 5.0), ("m1", 4.0, 5.0)], "meter string, x double, k double"
    )
    model = feature_stages(["meter"], ["x", "k"]).fit(frame)
    exported = export_pipeline(model, ["meter", "x", "k"])
    pipeline = PortablePipeline.from_dict(exported)

    # When a new row is scored both ways
    row = spark.createDataFrame([("m9", 3.0, 9.0)], frame.schema)
    expected = model.transform(row).first().features.toArray().tolist()
    got = pipeline.transform({"meter": "m9", "x": 3.0, "k": 9.0})["features"]

    # Then the constant column exports std 0 and scales to 0 in both
    assert exported["stages"][-1]["std"][-1] == 0.0
    assert got[-1] == expected[-1] == 0.0
    assert got == pytest.approx(expected, abs=1e-12)


# --- the folded form the API scores with -------------------------------------------------------

MODELS = sorted(Path(__file__).parents[1].glob("usecases/*/model/export.json"))


def test_the_folded_form_scores_the_hand_computed_margin() -> None:
    form = fold(classifier())

    # the scaler folded into the weights, every constant term into one constant
    margin = -0.25 + 1.0 * -1.0 + -1.0 * 1.5 + 0.5 * 1.0
    assert form.margin({"meter": "m2", "x": 12.0, "y": 99.0}) == pytest.approx(margin, abs=1e-15)
    probability, decision = form.classify({"meter": "m2", "x": 12.0, "y": 99.0})
    assert probability == pytest.approx(1 / (1 + math.exp(-margin)), abs=1e-15)
    assert decision == 0.0


def random_record(pipeline: PortablePipeline, rng: random.Random) -> dict[str, Any]:
    """A record of the pipeline's inputs: known, unseen and missing categories, odd numbers."""
    labels = {
        source: list(table)
        for stage in pipeline.stages
        if hasattr(stage, "tables")
        for source, table in zip(stage.inputs, stage.tables, strict=True)
    }
    record: dict[str, Any] = {}
    for name in pipeline.inputs:
        if name in labels:
            record[name] = rng.choice([*labels[name], *labels[name], "never-seen", None, 7])
        else:
            record[name] = rng.choice([rng.gauss(0, 100), rng.uniform(-1, 1), 0, True, 1e9])
    return record


@pytest.mark.parametrize("handle_invalid", ["keep", "error"])
@pytest.mark.parametrize("drop_last", [True, False])
@pytest.mark.parametrize("with_mean", [True, False])
def test_the_folded_form_agrees_with_the_stage_by_stage_replay(
    handle_invalid: str, drop_last: bool, with_mean: bool
) -> None:
    body = document()
    stages = body["pipelines"]["classifier"]["stages"]
    stages[1].update(handleInvalid=handle_invalid, dropLast=drop_last)
    stages[3]["withMean"] = with_mean
    size = 3 + (handle_invalid == "keep") - drop_last
    stages[3].update(mean=[0.5] * size + [10.0, 4.0], std=[0.5] * size + [2.0, 0.0])
    stages[4]["coefficients"] = [0.5 * (i + 1) for i in range(size)] + [3.0, 7.0]
    pipeline = classifier(body)
    form, rng = fold(pipeline), random.Random(7)

    for _ in range(200):
        record = random_record(pipeline, rng)
        out = pipeline.transform(record)
        assert form.classify(record) == (
            pytest.approx(out["probability"], abs=1e-12),
            out["prediction"],
        )


@pytest.mark.parametrize("export", MODELS, ids=lambda path: path.parent.parent.name)
def test_each_use_cases_model_folds_to_the_same_answers(export: Path) -> None:
    pipelines = load_pipelines(json.loads(export.read_text(encoding="utf-8")))
    rng = random.Random(11)

    for pipeline in pipelines.values():
        form = fold(pipeline)
        for _ in range(300):
            record = random_record(pipeline, rng)
            out = pipeline.transform(record)
            if form.logistic:
                probability, decision = form.classify(record)
                assert probability == pytest.approx(out["probability"], abs=1e-12, nan_ok=True)
                assert decision == out["prediction"]
            else:
                assert form.margin(record) == pytest.approx(
                    out["prediction"], rel=1e-12, nan_ok=True
                )


def test_a_missing_input_or_a_refused_category_reads_as_in_the_replay() -> None:
    body = document()
    body["pipelines"]["classifier"]["stages"][0]["handleInvalid"] = "error"
    form = fold(classifier(body))

    with pytest.raises(ValueError, match="missing model inputs: y"):
        form.margin({"meter": "m1", "x": 1.0})
    with pytest.raises(ValueError, match="unseen value 'm9' for 'meter'"):
        form.margin({"meter": "m9", "x": 1.0, "y": 1.0})


@pytest.mark.parametrize(
    ("cut", "message"),
    [
        (slice(0, 4), "ending in a linear model"),
        (slice(2, 5), "no stage makes 'meter_ohe'"),
    ],
)
def test_a_pipeline_of_another_shape_does_not_fold(cut: slice, message: str) -> None:
    body = document()
    stages = body["pipelines"]["classifier"]["stages"]
    body["pipelines"]["classifier"]["stages"] = stages[cut]

    with pytest.raises(ExportError, match=message):
        fold(classifier(body))


def test_a_large_mean_with_a_small_deviation_folds_without_cancelling() -> None:
    # Given a number whose training mean is far larger than its deviation
    body = document()
    scaler = body["pipelines"]["classifier"]["stages"][3]
    scaler.update(mean=[0.5, 0.25, 0.0, 1.7e9 + 0.3, 4.0], std=[0.5, 0.5, 0.0, 1.0, 0.0])
    body["pipelines"]["classifier"]["stages"][4]["coefficients"][3] = 0.7
    pipeline = classifier(body)
    record = {"meter": "m2", "x": 1.7e9 + 0.8, "y": 4.0}

    # Then the folded margin keeps the difference to the mean as the replay does
    expected = pipeline.transform(record)["probability"]
    assert fold(pipeline).classify(record)[0] == pytest.approx(expected, abs=1e-12)


def shorter_mean(body: dict[str, Any]) -> None:
    body["pipelines"]["classifier"]["stages"][3]["mean"].pop()


def indexer_outside_the_inputs(body: dict[str, Any]) -> None:
    body["pipelines"]["classifier"]["stages"][0]["inputCols"] = ["gauge"]


def assembler_first(body: dict[str, Any]) -> None:
    stages = body["pipelines"]["classifier"]["stages"]
    stages.insert(0, stages.pop(2))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (shorter_mean, "the scaler has 4 means and 5 deviations, not 5"),
        (indexer_outside_the_inputs, "an indexer reads 'gauge', not an input of the pipeline"),
        (assembler_first, "cannot fold a Indexer stage here"),
    ],
    ids=["short mean", "indexer outside", "assembler first"],
)
def test_a_malformed_export_is_refused_when_folded(damage: Any, message: str) -> None:
    body = document()
    damage(body)

    with pytest.raises(ExportError, match=message):
        fold(classifier(body))

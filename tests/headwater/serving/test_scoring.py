"""The portable scorer: Spark's own ``transform`` and ``serving.scoring`` give the same numbers.

The parity test loads the trained version's Spark pipelines and its ``export.json`` and scores
every flight of the holdout, plus rows no training data had (unseen and null categories, missing
numbers), both ways. The unit tests replay hand-written exports whose answers are known.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest

from headwater.core.layout import CLEAN, dataset
from headwater.model.spark_export import export_document, export_pipeline
from headwater.model.spark_training import feature_stages, feature_table, with_probability
from headwater.serving.scoring import (
    FORMAT,
    FORMAT_VERSION,
    ExportError,
    PortablePipeline,
    load_pipelines,
    score_batch,
)
from headwater.usecases.flights.features import CATEGORICAL, FEATURES, NUMERIC, FeatureLookups
from headwater.usecases.flights.training import TRAINING

# pyspark leaves collect() sockets to the garbage collector: see the note in tests/conftest.py.
pytestmark = pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")
TOLERANCE = 1e-9


# --- parity with Spark on the trained version --------------------------------------------------


@pytest.fixture(scope="module")
def spark_models(spark: Any, trained_model: Any) -> tuple[Any, Any]:
    """The version's fitted Spark pipelines, loaded from the lake."""
    from pyspark.ml import PipelineModel

    base = trained_model.directory / "spark"
    return (
        PipelineModel.load(f"file://{base / 'classifier'}"),
        PipelineModel.load(f"file://{base / 'regressor'}"),
    )


def holdout_features(spark: Any, trained_model: Any) -> Any:
    """Features of every holdout flight (cancelled ones too), computed with the stored lookups."""
    from pyspark.sql import functions as F

    lake = trained_model.lake
    flights = dataset("flights", "flights")
    paths = [
        f"file://{lake.path(CLEAN, flights, key, lake.manifest(CLEAN, flights, key).file)}"
        for key in lake.partitions(CLEAN, flights)
    ]
    flights = spark.read.parquet(*paths)
    lookups = FeatureLookups.from_dict(trained_model.read_json("lookups.json"))
    # A flight's features depend on the lookups only, so select the holdout before computing them.
    return feature_table(
        flights.where(F.col("flight_date") >= F.lit(trained_model.holdout_from)), TRAINING, lookups
    )


def synthetic_rows(template: dict[str, Any]) -> list[dict[str, Any]]:
    """Requests training never saw: unseen or null categories, and missing numbers."""
    unseen = {"carrier": "ZZ", "origin": "ZZZ", "dest": "XXX", "dep_hour": "99", "weekday": "7"}
    changes: list[dict[str, Any]] = [
        {"carrier": "ZZ"},
        {"dest": "XXX"},
        {"dep_hour": "99"},
        {"carrier": "ZZ", "dest": "XXX", "dep_hour": "99"},
        unseen,
        {name: None for name in CATEGORICAL},
        {"carrier": None, "dest": "XXX"},
        {"carrier": "", "weekday": None},
        {"congestion": 0.0, "seats": 500.0, "plane_age": 60.0, "holiday_near": 1.0},
        # missing numbers: Spark's VectorAssembler(handleInvalid="keep") passes NaN through
        {"temp_f": None},
        {"congestion": None, **unseen},
        {"visibility_ft": float("nan")},
    ]
    return [{**template, **change} for change in changes]


def is_missing_number(row: dict[str, Any]) -> bool:
    """True when a numeric input is missing (the scores must then be NaN both ways)."""
    return any(row[n] is None or math.isnan(row[n]) for n in NUMERIC)


@pytest.fixture(scope="module")
def scored_both_ways(
    spark: Any, trained_model: Any, spark_models: tuple[Any, Any]
) -> list[tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """(Spark classifier row, scorer classifier row, Spark regressor row, scorer regressor row)."""
    classifier, regressor = spark_models
    holdout = holdout_features(spark, trained_model).select(*FEATURES)
    template = holdout.first().asDict()
    extra = spark.createDataFrame(synthetic_rows(template), holdout.schema)
    rows = holdout.unionByName(extra).cache()  # features are computed once, not per model
    index = [f"{c}_idx" for c in CATEGORICAL]
    spark_cls = (
        with_probability(classifier.transform(rows))
        .select(*FEATURES, *index, "p", "prediction")
        .collect()
    )
    spark_reg = regressor.transform(rows).select(*FEATURES, "prediction").collect()
    pipelines = load_pipelines(trained_model.read_json("export.json"))
    rows.unpersist()
    out = []
    for cls_row, reg_row in zip(spark_cls, spark_reg, strict=True):
        cls, reg = cls_row.asDict(), reg_row.asDict()
        inputs = {name: cls[name] for name in FEATURES}
        assert inputs == {name: reg[name] for name in FEATURES} or is_missing_number(inputs)
        out.append(
            (
                cls,
                pipelines["classifier"].transform(inputs),
                reg,
                pipelines["regressor"].transform(inputs),
            )
        )
    return out


def test_the_scorer_reproduces_spark_on_the_whole_holdout_and_on_unseen_inputs(
    scored_both_ways: list[tuple[dict[str, Any], ...]], trained_model: Any
) -> None:
    # Given every holdout flight plus the synthetic requests, scored by Spark and by the scorer
    metrics = trained_model.read_json("metrics.json")
    complete = [s for s in scored_both_ways if not is_missing_number(s[0])]
    assert len(complete) > metrics["holdout"]["rows"]  # cancelled flights are scored too

    # Then probabilities, decisions and regression predictions agree on every row
    worst_p = max(abs(spark["p"] - ours["probability"]) for spark, ours, _, _ in complete)
    worst_label = max(
        abs(spark["prediction"] - ours["prediction"]) for spark, ours, _, _ in complete
    )
    worst_reg = max(abs(spark["prediction"] - ours["prediction"]) for _, _, spark, ours in complete)
    assert worst_p <= TOLERANCE
    assert worst_label == 0.0
    assert worst_reg <= TOLERANCE
    # and so do the category indices, including the extra one of handleInvalid="keep"
    for spark, ours, _, _ in complete:
        for name in CATEGORICAL:
            assert spark[f"{name}_idx"] == ours[f"{name}_idx"], (name, spark[name])


def test_unseen_and_null_categories_go_to_the_extra_index(
    scored_both_ways: list[tuple[dict[str, Any], ...]], trained_model: Any
) -> None:
    export = trained_model.read_json("export.json")
    labels = export["pipelines"]["classifier"]["stages"][0]["labels"]
    sizes = {name: len(values) for name, values in zip(CATEGORICAL, labels, strict=True)}

    synthetic = [s for s in scored_both_ways if s[0]["carrier"] in ("ZZ", None, "")]

    assert len(synthetic) >= 5
    for spark, ours, _, _ in synthetic:
        assert ours["carrier_idx"] == sizes["carrier"] == spark["carrier_idx"]
        assert 0.0 < ours["probability"] < 1.0 or math.isnan(ours["probability"])


def test_a_missing_number_gives_nan_both_ways(
    scored_both_ways: list[tuple[dict[str, Any], ...]],
) -> None:
    missing = [s for s in scored_both_ways if is_missing_number(s[0])]

    assert len(missing) == 3
    for spark_cls, ours_cls, spark_reg, ours_reg in missing:
        assert math.isnan(spark_cls["p"]) and math.isnan(ours_cls["probability"])
        assert math.isnan(spark_reg["prediction"]) and math.isnan(ours_reg["prediction"])
        # NaN > threshold is false: both call it "not delayed"
        assert spark_cls["prediction"] == ours_cls["prediction"] == 0.0


def test_both_saved_pipelines_share_the_fitted_feature_stages(
    spark_models: tuple[Any, Any],
) -> None:
    classifier, regressor = spark_models

    kinds = [type(s).__name__ for s in classifier.stages]
    assert kinds == ["StringIndexerModel", "OneHotEncoderModel", "VectorAssembler",
                     "StandardScalerModel", "LogisticRegressionModel"]  # fmt: skip
    assert type(regressor.stages[-1]).__name__ == "LinearRegressionModel"
    assert classifier.stages[0].labelsArray == regressor.stages[0].labelsArray
    assert classifier.stages[3].mean == regressor.stages[3].mean
    assert classifier.stages[3].std == regressor.stages[3].std
    assert classifier.stages[2].getInputCols()[-len(NUMERIC) :] == list(NUMERIC)


def test_the_export_describes_the_version(trained_model: Any) -> None:
    export = trained_model.read_json("export.json")

    assert (export["format"], export["format_version"]) == (FORMAT, FORMAT_VERSION)
    assert export["metadata"]["version"] == trained_model.version
    assert export["metadata"]["features"] == list(FEATURES)
    assert set(export["pipelines"]) == {"classifier", "regressor"}
    for pipeline in export["pipelines"].values():
        assert pipeline["inputs"] == list(FEATURES)
        assert [s["type"] for s in pipeline["stages"]][:4] == [
            "StringIndexer", "OneHotEncoder", "VectorAssembler", "StandardScaler"
        ]  # fmt: skip


# --- the one-hot conventions, against Spark on a tiny frame ------------------------------------


@pytest.mark.parametrize("handle_invalid", ["keep", "error"])
@pytest.mark.parametrize("drop_last", [True, False])
def test_one_hot_sizes_and_slots_match_spark(
    spark: Any, handle_invalid: str, drop_last: bool
) -> None:
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import OneHotEncoder, StringIndexer, VectorAssembler

    # Given a fitted index + one-hot + assemble pipeline over three carriers
    train_df = spark.createDataFrame(
        [("AA", 1.0), ("AA", 2.0), ("UA", 3.0), ("DL", 4.0)], "carrier string, x double"
    )
    model = Pipeline(
        stages=[
            StringIndexer(inputCol="carrier", outputCol="carrier_idx", handleInvalid="keep"),
            OneHotEncoder(
                inputCols=["carrier_idx"],
                outputCols=["carrier_ohe"],
                handleInvalid=handle_invalid,
                dropLast=drop_last,
            ),
            VectorAssembler(inputCols=["carrier_ohe", "x"], outputCol="raw", handleInvalid="keep"),
        ]
    ).fit(train_df)
    pipeline = PortablePipeline.from_dict(export_pipeline(model, ["carrier", "x"]))

    # When known and unseen carriers go through Spark and through the scorer
    rows = [("AA", 1.5), ("UA", 0.0), ("DL", -1.0), ("ZZ", 2.0), (None, 7.0)]
    frame = spark.createDataFrame(rows, "carrier string, x double")
    expected = [r.raw.toArray().tolist() for r in model.transform(frame).collect()]

    # Then the vectors have the same size and the same slots set
    got = [row["raw"] for row in score_batch(pipeline, [{"carrier": c, "x": x} for c, x in rows])]
    assert got == expected


# --- hand-written exports ----------------------------------------------------------------------


def document(**changes: Any) -> dict[str, Any]:
    """A small classifier export: one category, two numbers (the second constant in training)."""
    stages = [
        {
            "type": "StringIndexer",
            "inputCols": ["carrier"],
            "outputCols": ["carrier_idx"],
            "labels": [["AA", "UA"]],
            "handleInvalid": "keep",
        },
        {
            "type": "OneHotEncoder",
            "inputCols": ["carrier_idx"],
            "outputCols": ["carrier_ohe"],
            "categorySizes": [3],  # two labels plus the extra index of "keep"
            "dropLast": True,
            "handleInvalid": "keep",
        },
        {"type": "VectorAssembler", "inputCols": ["carrier_ohe", "x", "y"], "outputCol": "raw"},
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
    body = export_document({"classifier": {"inputs": ["carrier", "x", "y"], "stages": stages}}, {})
    body.update(changes)
    return body


def classifier(body: dict[str, Any] | None = None) -> PortablePipeline:
    """The classifier of a document."""
    return load_pipelines(body or document())["classifier"]


def test_a_hand_written_export_scores_as_computed_by_hand() -> None:
    out = classifier().transform({"carrier": "UA", "x": 12.0, "y": 99.0})

    assert out["carrier_idx"] == 1
    assert out["raw"] == [0.0, 1.0, 0.0, 12.0, 99.0]
    # (v - mean) / std, and 0 where the training std was 0 (the unseen slot, and y)
    assert out["features"] == [-1.0, 1.5, 0.0, 1.0, 0.0]
    margin = -0.25 + 1.0 * -1.0 + -1.0 * 1.5 + 0.5 * 1.0
    assert out["probability"] == pytest.approx(1 / (1 + math.exp(-margin)), abs=1e-15)
    assert out["prediction"] == 0.0


@pytest.mark.parametrize("carrier", ["ZZ", None, "", 7])
def test_an_unseen_or_missing_category_takes_the_extra_index(carrier: Any) -> None:
    out = classifier().transform({"carrier": carrier, "x": 10.0, "y": 4.0})

    assert out["carrier_idx"] == 2
    assert out["raw"][:3] == [0.0, 0.0, 1.0]
    assert out["features"][2] == 0.0  # constant in training: scaled to 0, whatever its value


def test_without_keep_an_unseen_category_is_an_error() -> None:
    body = document()
    body["pipelines"]["classifier"]["stages"][0]["handleInvalid"] = "error"

    with pytest.raises(ValueError, match="unseen value 'ZZ' for 'carrier'"):
        classifier(body).transform({"carrier": "ZZ", "x": 1.0, "y": 1.0})


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

    out = classifier(body).transform({"carrier": "AA", "x": 1.0, "y": 2.0})

    assert out["carrier_ohe"] == ((0,), size)
    assert len(out["raw"]) == size + 2
    unseen = classifier(body).transform({"carrier": "ZZ", "x": 1.0, "y": 2.0})["raw"][:size]
    assert sum(unseen) == unseen_slot


def test_a_linear_regression_head_predicts_the_margin() -> None:
    body = document()
    stages = body["pipelines"]["classifier"]["stages"]
    stages[-1] = {"type": "LinearRegression", "featuresCol": "features",
                  "coefficients": [0.0, 0.0, 0.0, 2.0, 0.0], "intercept": 15.0}  # fmt: skip

    out = classifier(body).transform({"carrier": "AA", "x": 14.0, "y": 4.0})

    assert out["prediction"] == 15.0 + 2.0 * (14.0 - 10.0) / 2.0
    assert "probability" not in out


@pytest.mark.parametrize(("x", "probability"), [(-1e6, 0.0), (1e6, 1.0)])
def test_extreme_margins_saturate_instead_of_overflowing(x: float, probability: float) -> None:
    out = classifier().transform({"carrier": "AA", "x": x, "y": 4.0})

    assert out["probability"] == probability
    assert out["prediction"] == probability


def test_missing_numbers_score_nan() -> None:
    out = classifier().transform({"carrier": "AA", "x": None, "y": 4.0})

    assert math.isnan(out["raw"][3]) and math.isnan(out["probability"])
    assert out["prediction"] == 0.0


def test_missing_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="missing model inputs: x, y"):
        classifier().transform({"carrier": "AA"})


def test_transform_does_not_change_the_callers_record() -> None:
    record = {"carrier": "AA", "x": 1.0, "y": 2.0}

    classifier().transform(record)

    assert record == {"carrier": "AA", "x": 1.0, "y": 2.0}


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
    body["pipelines"]["classifier"]["stages"][2]["inputCols"] = ["carrier_ohe", "x"]

    with pytest.raises(ExportError, match="scaler expects 5 values, got 4"):
        classifier(body).transform({"carrier": "AA", "x": 1.0, "y": 1.0})


def test_export_stage_refuses_what_the_scorer_cannot_replay(spark: Any) -> None:
    from pyspark.ml.feature import Bucketizer

    from headwater.model.spark_export import export_stage

    with pytest.raises(ExportError, match="cannot export stage 'Bucketizer'"):
        export_stage(Bucketizer(splits=[0.0, 1.0, 2.0], inputCol="x", outputCol="b"))


def test_feature_stages_fitted_on_a_constant_column_export_a_zero_std(spark: Any) -> None:
    # Given the job's shared stages fitted where one numeric column never varies
    frame = spark.createDataFrame(
        [("AA", 1.0, 5.0), ("UA", 2.0, 5.0), ("AA", 4.0, 5.0)], "carrier string, x double, k double"
    )
    model = feature_stages(["carrier"], ["x", "k"]).fit(frame)
    exported = export_pipeline(model, ["carrier", "x", "k"])
    pipeline = PortablePipeline.from_dict(exported)

    # When a new row is scored both ways
    row = spark.createDataFrame([("ZZ", 3.0, 9.0)], frame.schema)
    expected = model.transform(row).first().features.toArray().tolist()
    got = pipeline.transform({"carrier": "ZZ", "x": 3.0, "k": 9.0})["features"]

    # Then the constant column exports std 0 and scales to 0 in both
    assert exported["stages"][-1]["std"][-1] == 0.0
    assert got[-1] == expected[-1] == 0.0
    assert got == pytest.approx(expected, abs=1e-12)

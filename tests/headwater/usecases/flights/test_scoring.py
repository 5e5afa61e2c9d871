"""The portable scorer against Spark on the flights version trained in this process.

The parity test loads the trained version's Spark pipelines and its ``export.json`` and scores
every flight of the holdout, plus rows no training data had (unseen and null categories, missing
numbers), both ways (moved from tests/headwater/serving/test_scoring.py).
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from headwater.core.layout import CLEAN, dataset
from headwater.model.spark_training import feature_table, with_probability
from headwater.serving.scoring import (
    FORMAT,
    FORMAT_VERSION,
    fold,
    load_pipelines,
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
    forms = {name: fold(pipeline) for name, pipeline in pipelines.items()}
    rows.unpersist()
    out = []
    for cls_row, reg_row in zip(spark_cls, spark_reg, strict=True):
        cls, reg = cls_row.asDict(), reg_row.asDict()
        inputs = {name: cls[name] for name in FEATURES}
        assert inputs == {name: reg[name] for name in FEATURES} or is_missing_number(inputs)
        ours_cls = pipelines["classifier"].transform(inputs)
        ours_reg = pipelines["regressor"].transform(inputs)
        # and as the API scores them: the folded forms
        ours_cls["folded"] = forms["classifier"].classify(inputs)
        ours_reg["folded"] = forms["regressor"].margin(inputs)
        out.append((cls, ours_cls, reg, ours_reg))
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
    # and so do the folded forms the API scores with
    folded_p = max(abs(spark["p"] - ours["folded"][0]) for spark, ours, _, _ in complete)
    folded_label = max(
        abs(spark["prediction"] - ours["folded"][1]) for spark, ours, _, _ in complete
    )
    folded_reg = max(abs(spark["prediction"] - ours["folded"]) for _, _, spark, ours in complete)
    assert folded_p <= TOLERANCE
    assert folded_label == 0.0
    assert folded_reg <= TOLERANCE
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

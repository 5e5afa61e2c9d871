"""Training/serving parity: the API's answers for real holdout flights equal Spark's (1e-9).

The Spark side is the training job's own path: the clean partition read by Spark,
``feature_table`` (the batch feature definition on the executors) and the version's
``PipelineModel``s. The API side starts from the raw request fields (carrier, route,
local departure, tail number, observed weather) and goes through HTTP-level
validation, ``features_record`` and the portable export. Uses the session fixtures
``spark`` and ``trained_model`` (tests/conftest.py).
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from headwater.core import layout
from headwater.usecases.flights.features import WEATHER

# The API tests' fixtures (tests/api/conftest.py), api_env autouse as there.
from tests.api.conftest import api_env, app_for  # noqa: F401

# ruff: noqa: F811 (those fixtures are the tests' arguments)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning"),
]

TOLERANCE = 1e-9
KEY = ("carrier", "origin", "dest", "flight_date", "dep_hour")


def promote_copy(trained_model: Any, root: Path) -> str:
    """The trained version in a lake of this test, promoted (the shared lake stays untouched)."""
    from headwater.data.lake import open_lake
    from headwater.registry.registry import Registry

    name, version = "flights", trained_model.version  # the registry name is the use case's
    target = root.joinpath("lake", *layout.model_parts(name, version))
    target.mkdir(parents=True)
    for file in ("export.json", "lookups.json", "metrics.json", "lineage.json", "_SUCCESS"):
        shutil.copy(trained_model.directory / file, target / file)
    Registry(open_lake(f"file://{root}/lake"), name).promote(version, "parity test")
    return f"file://{root}/lake"


RAW_KEY = ("carrier", "origin", "dest", "flight_date", "sched_dep_local")


def _key(row: Any) -> tuple:
    """A clean row's key, as the features keep it (the hour of the scheduled departure)."""
    return (row["carrier"], row["origin"], row["dest"], row["flight_date"],
            f"{row['sched_dep_local'].hour:02d}")  # fmt: skip


def spark_answers(
    spark: Any, trained_model: Any, path: str, nowcasts: dict[tuple, Any]
) -> dict[tuple, tuple]:
    """Spark's probability, decision and arrival delay per flight key, on the holdout."""
    from pyspark.ml import PipelineModel
    from pyspark.sql import functions as F

    from headwater.model.spark_training import feature_table, with_probability, with_windows
    from headwater.usecases.flights.features import NOWCAST, FeatureLookups
    from headwater.usecases.flights.training import TRAINING

    lookups = FeatureLookups.from_dict(trained_model.read_json("lookups.json"))
    flights = spark.read.parquet(f"file://{path}").where(
        ~F.col("cancelled") & (F.col("flight_date") >= F.lit(trained_model.holdout_from))
    )
    # the window (the now-cast) over these rows, as the job computes it: a client sends it
    flights = with_windows(flights, TRAINING.windows).cache()
    nowcasts.update(
        (_key(row), row[NOWCAST]) for row in flights.select(*RAW_KEY, NOWCAST).collect()
    )
    features = feature_table(flights, TRAINING, lookups).cache()
    models = trained_model.directory / "spark"
    classifier = PipelineModel.load(f"file://{models / 'classifier'}")
    regressor = PipelineModel.load(f"file://{models / 'regressor'}")
    classified = (
        with_probability(classifier.transform(features)).select(*KEY, "p", "prediction").collect()
    )
    regressed = regressor.transform(features).select(*KEY, "prediction").collect()
    features.unpersist()
    delays = {tuple(row[k] for k in KEY): row["prediction"] for row in regressed}
    return {
        tuple(row[k] for k in KEY): (
            row["p"],
            row["prediction"],
            delays[tuple(row[k] for k in KEY)],
        )
        for row in classified
    }


def test_api_predictions_equal_spark_on_the_holdout(
    spark: Any, trained_model: Any, tmp_path: Path, app_for: Any
) -> None:
    import pyarrow.parquet as pq

    # Given the holdout flights of the trained version, as they are in the clean zone
    lake = trained_model.lake
    month = f"month={trained_model.holdout_from:%Y-%m}"
    dataset = layout.dataset("flights", "flights")
    manifest = lake.manifest(layout.CLEAN, dataset, month)
    path = lake.path(layout.CLEAN, dataset, month, manifest.file)
    rows = [
        r
        for r in pq.read_table(path).to_pylist()
        if not r["cancelled"] and r["flight_date"] >= trained_model.holdout_from
    ]

    # And Spark's answers for them, by the training job's path
    nowcasts: dict[tuple, Any] = {}
    answers = spark_answers(spark, trained_model, path, nowcasts)

    # Rows are matched on what the features keep; flights sharing a key are left out.
    def key(row: dict[str, Any]) -> tuple:
        hour = f"{row['sched_dep_local'].hour:02d}"
        return (row["carrier"], row["origin"], row["dest"], row["flight_date"], hour)

    counts = Counter(key(r) for r in rows)
    rows = [r for r in rows if counts[key(r)] == 1]
    assert len(rows) > 1000

    # When the API, serving that version, is asked about each flight from its raw fields
    client = app_for(promote_copy(trained_model, tmp_path)).test_client()
    requests = [
        {
            "carrier": r["carrier"],
            "flight": r["flight"],
            "origin": r["origin"],
            "dest": r["dest"],
            "scheduled_departure": r["sched_dep_local"].isoformat(),
            "tailnum": r["tailnum"],
            "weather": {name: r[name] for name in WEATHER},
            "recent_delay_share": nowcasts[key(r)],
        }
        for r in rows
    ]
    predictions: list[dict[str, Any]] = []
    for start in range(0, len(requests), 1000):
        response = client.post(
            "/v1/flights/predictions", json={"instances": requests[start : start + 1000]}
        )
        assert response.status_code == 200, response.get_json()
        predictions.extend(response.get_json()["predictions"])

    # Then every answer equals Spark's
    worst = {"probability": 0.0, "delay": 0.0}
    decisions = 0
    for row, prediction in zip(rows, predictions, strict=True):
        probability, decision, delay = answers[key(row)]
        worst["probability"] = max(
            worst["probability"], abs(prediction["delay_probability"] - probability)
        )
        worst["delay"] = max(
            worst["delay"], abs(prediction["expected_arrival_delay_minutes"] - delay)
        )
        decisions += prediction["delayed"] != (decision == 1.0)
        assert prediction["model"]["version"] == trained_model.version
    print(f"parity: {len(rows)} holdout flights, worst absolute differences {worst}")
    assert worst["probability"] <= TOLERANCE, worst
    assert worst["delay"] <= TOLERANCE, worst
    assert decisions == 0

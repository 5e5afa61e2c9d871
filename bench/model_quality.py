"""Benchmark: how much the Headwater features add, on the time split and on a random split.

Trains, on local Spark and the lake's real 2013 data, with the training job's own code
(lookups, shared feature definition, feature stages, logistic regression, evaluation):

- the reference model of the issue: logistic regression on carrier, origin, month,
  hour, weekday and distance (month one-hot, distance on a log scale);
- the Headwater model: the same learner on the full feature set (weather, aircraft,
  congestion, holidays, destination);
- the smoothed carrier-and-hour rate (the naive baseline);
- with ``--gbt``: gradient-boosted trees on the Headwater features (the candidate the
  issue allows), to decide by measurement whether it earns its export and parity work.

Each on two holdouts: the time split the job uses (train January-October, hold out
November-December) and a seeded 80/20 random split (the reference's own basis).

    python bench/model_quality.py [--lake file://var/lake] [--gbt]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REFERENCE_CATEGORICAL = ("carrier", "origin", "month", "dep_hour", "weekday")
REFERENCE_NUMERIC = ("log_distance",)
TIME_SPLIT = date(2013, 11, 1)


def labelled(frame: Any) -> Any:
    """Flights that flew and have a label, with the calendar month as a category."""
    from pyspark.sql import functions as F

    from headwater.model.spark_training import labelled as with_label

    return with_label(frame).withColumn("month", F.month("flight_date").cast("string"))


def splits(spark: Any, flights: Any, planes: Any, kind: str) -> tuple[Any, Any]:
    """Feature tables of (train, holdout); the lookups come from the training side only."""
    from pyspark.sql import functions as F

    from headwater.model.spark_training import feature_table
    from headwater.usecases.flights.training import TRAINING, build_lookups

    if kind == "time":
        in_train = F.col("flight_date") < F.lit(TIME_SPLIT)
    else:
        in_train = F.rand(seed=20130101) < 0.8
    marked = flights.withColumn("_train", in_train).cache()
    train_flights = marked.where("_train").drop("_train")
    holdout_flights = marked.where("not _train").drop("_train")
    lookups = build_lookups(train_flights, planes, schedule=flights)
    train = labelled(feature_table(train_flights, TRAINING, lookups)).cache()
    holdout = labelled(feature_table(holdout_flights, TRAINING, lookups)).cache()
    train.count(), holdout.count()
    return train, holdout


def logistic(train: Any, categorical: tuple[str, ...], numeric: tuple[str, ...]) -> Any:
    """The job's feature stages and logistic regression, fitted on ``train``."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression

    from headwater.model.spark_training import feature_stages

    stages = feature_stages(categorical, numeric).getStages()
    model = LogisticRegression(featuresCol="features", labelCol="label", regParam=0.001)
    return Pipeline(stages=[*stages, model]).fit(train)


def boosted(train: Any, categorical: tuple[str, ...], numeric: tuple[str, ...]) -> Any:
    """Gradient-boosted trees on the same inputs (trees need no scaling)."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import GBTClassifier

    from headwater.model.spark_training import feature_stages

    index, encode, assemble, _ = feature_stages(categorical, numeric).getStages()
    assemble.setOutputCol("features")
    model = GBTClassifier(featuresCol="features", labelCol="label", maxIter=60, maxDepth=5)
    return Pipeline(stages=[index, encode, assemble, model]).fit(train)


def main(argv: list[str] | None = None) -> int:
    """Print AUC-ROC (and log loss) per model and split."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", default=f"file://{ROOT / 'var' / 'lake'}")
    parser.add_argument("--gbt", action="store_true", help="also train gradient-boosted trees")
    args = parser.parse_args(argv)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    from headwater.data.lake import open_lake
    from headwater.model.spark_training import (
        baselines,
        classification_metrics,
        read_inputs,
        with_probability,
    )
    from headwater.usecases.flights.features import CATEGORICAL, NUMERIC
    from headwater.usecases.flights.training import TRAINING

    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.driver.memory", "4g")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    flights, references, _ = read_inputs(
        spark, open_lake(args.lake), "flights", TRAINING, date(2013, 1, 1), date(2013, 12, 31),
        "month",
    )  # fmt: skip
    planes = references["planes"]
    flights = flights.cache()
    models = {
        "reference LR (carrier, origin, month, hour, weekday, distance)": (
            logistic,
            REFERENCE_CATEGORICAL,
            REFERENCE_NUMERIC,
        ),
        "headwater LR (all features)": (logistic, CATEGORICAL, NUMERIC),
    }
    if args.gbt:
        models["headwater GBT (all features, 60 trees, depth 5)"] = (boosted, CATEGORICAL, NUMERIC)
    results = []
    for kind in ("time", "random"):
        train, holdout = splits(spark, flights, planes, kind)
        rows = (train.count(), holdout.count())
        print(f"# {kind} split: {rows[0]:,} training flights, {rows[1]:,} held out", flush=True)
        naive = baselines(train, holdout, TRAINING)["carrier_hour_rate"]
        results.append((kind, "carrier-and-hour rate (naive)", naive, 0.0))
        for name, (fit, categorical, numeric) in models.items():
            started = time.perf_counter()
            model = fit(train, categorical, numeric)
            seconds = time.perf_counter() - started
            metrics = classification_metrics(with_probability(model.transform(holdout)))
            results.append((kind, name, metrics, seconds))
            print(
                f"  {name:66s} AUC {metrics['auc_roc']:.4f}  log loss "
                f"{metrics['log_loss']:.4f}  fit {seconds:5.1f} s",
                flush=True,
            )
        train.unpersist()
        holdout.unpersist()
    print("\n| split | model | AUC-ROC | AUC-PR | log loss | fit (s) |")
    print("|---|---|---|---|---|---|")
    for kind, name, metrics, seconds in results:
        print(
            f"| {kind} | {name} | {metrics['auc_roc']:.4f} | {metrics['auc_pr']:.4f} "
            f"| {metrics['log_loss']:.4f} | {seconds:.1f} |"
        )
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

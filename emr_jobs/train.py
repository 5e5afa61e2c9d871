"""Train, evaluate and export the flight-delay models on Spark (an EMR step, or local).

    spark-submit emr_jobs/train.py --lake s3://bucket/lake --version V --start 2013-01-01 \\
        --end 2013-12-31 [--holdout-from 2013-11-01] [--production-version P]

Reads the clean partitions named by their manifests, builds the features (the
shared definition in ``headwater.usecases.flights.features``), fits a logistic
regression (delayed 15+ minutes) and a linear regression (arrival delay), evaluates
both on a time-based holdout against naive baselines, and writes one new model
version: the Spark pipelines, the portable export, lookups, metrics, lineage, an
HTML report, then ``_SUCCESS``. Nothing that grows with the data is collected.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from headwater.evaluation import (
    EPSILON,
    ScoreBin,
    calibration_table,
    constant_metrics,
    exact_metrics,
    roc_curve,
    summary,
)

PARITY_SAMPLE_ROWS = 2000
_T0 = time.perf_counter()


def progress(step: str, **fields: Any) -> None:
    """One progress line on stderr (the step log): elapsed seconds, step, figures."""
    extra = " ".join(f"{k}={v}" for k, v in fields.items())
    print(
        f"[headwater-train {time.perf_counter() - _T0:7.1f}s] {step} {extra}".rstrip(),
        file=sys.stderr,
        flush=True,
    )


PARITY_TOLERANCE = 1e-9


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The job's command line."""
    parser = argparse.ArgumentParser(description="Train the flight-delay models.")
    parser.add_argument("--lake", required=True, help="lake URI (file:// or s3://)")
    parser.add_argument("--model-name", default="flights_delay")
    parser.add_argument("--version", required=True, help="the new model version's id")
    parser.add_argument("--start", type=date.fromisoformat, required=True)
    parser.add_argument("--end", type=date.fromisoformat, required=True)
    parser.add_argument("--grain", choices=["day", "month"], default="month")
    parser.add_argument(
        "--holdout-from",
        type=date.fromisoformat,
        default=None,
        help="first date of the holdout (default: the last sixth of the range)",
    )
    parser.add_argument(
        "--production-version",
        default=None,
        help="evaluate this registered version on the same holdout",
    )
    parser.add_argument("--run-id", default="adhoc")
    parser.add_argument("--code-version", default="unknown")
    parser.add_argument("--config-json", default="{}", help="the run's configuration (lineage)")
    parser.add_argument("--master", default=None, help="Spark master (spark-submit sets it)")
    parser.add_argument("--shuffle-partitions", type=int, default=8)
    parser.add_argument("--reg-param", type=float, default=0.001)
    parser.add_argument("--log-level", default="WARN", help="Spark's log level after start-up")
    parser.add_argument("--region", default=None)
    parser.add_argument("--endpoint-url", default=None)
    return parser.parse_args(argv)


def create_spark(args: argparse.Namespace) -> Any:
    """Build the SparkSession (inside main: nothing runs at import)."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(f"headwater-train-{args.version}")
    if args.master:
        builder = builder.master(args.master)
    spark = (
        builder.config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(args.shuffle_partitions))
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    # Warnings and errors only: the tail of this log goes into failure notifications, where
    # INFO lines about committed writes would crowd out the error.
    spark.sparkContext.setLogLevel(args.log_level)
    return spark


# -- transforms: DataFrame -> DataFrame ------------------------------------------------------
def split_by_time(features: Any, holdout_from: date) -> tuple[Any, Any]:
    """Train on flights before ``holdout_from``, hold out the rest (never a random split)."""
    from pyspark.sql import functions as F

    labelled = features.where(~F.col("cancelled") & F.col("label").isNotNull())
    cutoff = F.lit(holdout_from)
    return labelled.where(F.col("flight_date") < cutoff), labelled.where(
        F.col("flight_date") >= cutoff
    )


def with_probability(predictions: Any, column: str = "probability") -> Any:
    """Add ``p``: the probability of the positive class as a double column."""
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    return predictions.withColumn("p", vector_to_array(F.col(column))[1])


def feature_stages(categorical: Sequence[str], numeric: Sequence[str]) -> Any:
    """Index, one-hot encode, assemble and standardise: the stages both models share."""
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import OneHotEncoder, StandardScaler, StringIndexer, VectorAssembler

    index = [f"{c}_idx" for c in categorical]
    onehot = [f"{c}_ohe" for c in categorical]
    return Pipeline(
        stages=[
            StringIndexer(inputCols=list(categorical), outputCols=index, handleInvalid="keep"),
            OneHotEncoder(inputCols=index, outputCols=onehot, handleInvalid="keep", dropLast=True),
            VectorAssembler(
                inputCols=onehot + list(numeric), outputCol="raw_features", handleInvalid="keep"
            ),
            StandardScaler(
                inputCol="raw_features", outputCol="features", withMean=False, withStd=True
            ),
        ]
    )


def fit_models(
    train: Any, categorical: Sequence[str], numeric: Sequence[str], reg_param: float, target: str
) -> tuple[Any, Any]:
    """Fit the shared feature stages once, then both heads; return two PipelineModels.

    The classifier (logistic regression on the label) and the regressor (linear
    regression on ``target``, where known) share the fitted feature stages, so they
    are exported and served from one definition.
    """
    from pyspark.ml import PipelineModel
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.regression import LinearRegression
    from pyspark.sql import functions as F

    features = feature_stages(categorical, numeric).fit(train)
    progress("fitted feature stages")
    # Not cached here: each estimator then persists its own deserialised instances,
    # which its iterations read far faster than a cached DataFrame of vectors.
    vectors = features.transform(train).select("features", "label", target)
    logistic = LogisticRegression(
        featuresCol="features", labelCol="label", regParam=reg_param, maxIter=15
    ).fit(vectors)
    progress("fitted classifier", iterations=logistic.summary.totalIterations)
    linear = LinearRegression(
        featuresCol="features", labelCol=target, regParam=reg_param, solver="normal"
    ).fit(vectors.where(F.col(target).isNotNull()))
    return (
        PipelineModel(stages=[*features.stages, logistic]),
        PipelineModel(stages=[*features.stages, linear]),
    )


# -- evaluation ------------------------------------------------------------------------------
#: Equal-width score bins of the holdout histogram (calibration, ROC plot, exact means).
HISTOGRAM_BINS = 200
#: At most this many distinct scores are collected for an exact baseline evaluation.
MAX_EXACT_SCORES = 10_000


def score_histogram(scored: Any, score: str = "p", bins: int = HISTOGRAM_BINS) -> list[ScoreBin]:
    """Reduce a scored holdout to ``bins`` equal-width score bins, in one Spark job.

    Each bin carries its count, positives and the sums of the score, the log loss, the
    squared error and the correct decisions at 0.5, so the holdout's means are exact.
    """
    from pyspark.sql import functions as F

    s, y = F.col(score), F.col("label")
    clipped = F.least(F.greatest(s, F.lit(EPSILON)), F.lit(1 - EPSILON))
    bucket = F.least(F.floor(s * bins), F.lit(bins - 1)).cast("int")
    rows = (
        scored.groupBy(bucket.alias("b"))
        .agg(
            F.count("*").alias("n"),
            F.sum(y).alias("pos"),
            F.sum(s).alias("s"),
            F.sum(-(y * F.log(clipped) + (1 - y) * F.log(1 - clipped))).alias("ll"),
            F.sum((s - y) ** 2).alias("se"),
            F.sum(((s > 0.5).cast("double") == y).cast("double")).alias("ok"),
        )
        .collect()
    )
    return [
        ScoreBin((r.b + 0.5) / bins, float(r.n), float(r.pos), r.s, r.ll, r.se, r.ok) for r in rows
    ]


def exact_histogram(scored: Any, score: str = "p") -> list[ScoreBin]:
    """One bin per distinct score: for baselines, whose scores take few values."""
    from pyspark.sql import functions as F

    rows = (
        scored.groupBy(F.col(score).alias("s"))
        .agg(F.count("*").alias("n"), F.sum("label").alias("pos"))
        .limit(MAX_EXACT_SCORES + 1)
        .collect()
    )
    if len(rows) > MAX_EXACT_SCORES:
        raise ValueError(f"more than {MAX_EXACT_SCORES} distinct scores: not a baseline")
    return [ScoreBin.exact(float(r.s), float(r.n), float(r.pos)) for r in rows]


def classification_metrics(
    scored: Any, score: str = "p", histogram: Sequence[ScoreBin] | None = None
) -> dict[str, float]:
    """AUC-ROC, AUC-PR, log loss, Brier score, accuracy and base rate of a scored holdout.

    The means come from the bounded histogram (computed here unless given); both AUCs
    are Spark's exact ones.
    """
    from pyspark.ml.evaluation import BinaryClassificationEvaluator

    if histogram is None:
        histogram = score_histogram(scored, score)
    # numBins=0: the exact curves. The default down-sampling to 1,000 bins depends on how the
    # scores are partitioned, so the same model scored twice would get two different AUCs and
    # the gate would compare evaluation noise.
    evaluator = BinaryClassificationEvaluator(rawPredictionCol=score, labelCol="label", numBins=0)
    return {
        **summary(histogram),
        "auc_roc": evaluator.evaluate(scored, {evaluator.metricName: "areaUnderROC"}),
        "auc_pr": evaluator.evaluate(scored, {evaluator.metricName: "areaUnderPR"}),
    }


def regression_metrics(scored: Any, label: str) -> dict[str, float]:
    """RMSE, MAE and R² of a scored holdout, in one pass over it."""
    from pyspark.sql import functions as F

    err = F.col("prediction") - F.col(label)
    row = scored.agg(
        F.count("*").alias("n"),
        F.avg(err * err).alias("mse"),
        F.avg(F.abs(err)).alias("mae"),
        F.var_pop(label).alias("variance"),
    ).first()
    r2 = 1.0 - row.mse / row.variance if row.variance else float("nan")
    return {"rmse": math.sqrt(row.mse), "mae": float(row.mae), "r2": r2}


def baselines(train: Any, holdout: Any, target: str) -> dict[str, dict[str, float]]:
    """Naive baselines on the same holdout: the base rate and the carrier-and-hour rate.

    Three small Spark jobs: the training means, the holdout totals, and the holdout's
    histogram under the carrier-hour rates (at most one score per carrier-hour cell,
    so its metrics are exact).
    """
    from pyspark.sql import functions as F

    means = train.agg(F.avg("label").alias("rate"), F.avg(target).alias("delay")).first()
    base_rate, mean_delay = float(means.rate), float(means.delay or 0.0)
    err = F.col(target) - F.lit(mean_delay)
    totals = holdout.agg(
        F.count("*").alias("n"),
        F.sum("label").alias("pos"),
        F.sqrt(F.avg(err * err)).alias("rmse"),
        F.avg(F.abs(err)).alias("mae"),
    ).first()
    prior = 20.0  # smooth small carrier-hour cells towards the base rate
    cells = train.groupBy("carrier", "dep_hour").agg(
        ((F.sum("label") + prior * base_rate) / (F.count("*") + prior)).alias("cell_rate")
    )
    by_cell = holdout.join(F.broadcast(cells), ["carrier", "dep_hour"], "left").withColumn(
        "p", F.coalesce(F.col("cell_rate"), F.lit(base_rate))
    )
    return {
        "base_rate": constant_metrics(base_rate, float(totals.n), float(totals.pos)),
        "carrier_hour_rate": exact_metrics(exact_histogram(by_cell)),
        "mean_arrival_delay": {"rmse": float(totals.rmse or 0.0), "mae": float(totals.mae or 0.0)},
    }


def top_coefficients(model: Any, predictions: Any, n: int = 15) -> list[tuple[str, float]]:
    """The ``n`` largest coefficients by magnitude, named after their assembled slots."""
    attrs = predictions.schema["raw_features"].metadata.get("ml_attr", {}).get("attrs", {})
    names = {a["idx"]: a["name"] for group in attrs.values() for a in group}
    weights = model.stages[-1].coefficients.toArray()
    ranked = sorted(range(len(weights)), key=lambda i: -abs(weights[i]))[:n]
    return [(names.get(i, f"slot {i}"), float(weights[i])) for i in ranked]


def check_parity(classifier: Any, regressor: Any, holdout: Any, export: dict) -> dict[str, float]:
    """Score a bounded holdout sample with Spark and with the portable export; compare."""
    from headwater.scoring import load_pipelines
    from headwater.usecases.flights.features import FEATURES

    pipelines = load_pipelines(export)
    sample = holdout.limit(PARITY_SAMPLE_ROWS)
    spark_cls = (
        with_probability(classifier.transform(sample))
        .select(*FEATURES, "p", "prediction")
        .collect()
    )
    spark_reg = regressor.transform(sample).select(*FEATURES, "prediction").collect()
    worst_p = worst_label = worst_reg = 0.0
    for row in spark_cls:
        out = pipelines["classifier"].transform(row.asDict())
        worst_p = max(worst_p, abs(out["probability"] - row.p))
        worst_label = max(worst_label, abs(out["prediction"] - row.prediction))
    for row in spark_reg:
        out = pipelines["regressor"].transform(row.asDict())
        worst_reg = max(worst_reg, abs(out["prediction"] - row.prediction))
    return {
        "rows": len(spark_cls),
        "max_abs_probability": worst_p,
        "max_abs_decision": worst_label,
        "max_abs_regression": worst_reg,
    }


# -- the job ---------------------------------------------------------------------------------
def _default_holdout(start: date, end: date) -> date:
    return end - timedelta(days=max(1, (end - start).days // 6))


def _spark_path(lake: Any, *parts: str) -> str:
    return f"file://{lake.path(*parts)}" if lake.is_local else lake.uri_of(*parts)


def read_inputs(
    spark: Any, lake: Any, start: date, end: date, grain: str = "month"
) -> tuple[Any, Any, dict[str, str]]:
    """The clean flights of ``start..end`` and the planes snapshot as of ``end``.

    Returns ``(flights, planes, inputs)``: two DataFrames, and the checksum of every
    partition read (the lineage). Only published partitions are read, by manifest.
    """
    from headwater.lake import LakeError
    from headwater.partitions import partitions_between
    from headwater.pipeline import CLEAN, RAW, latest_snapshot

    paths, inputs = [], {}
    for part in partitions_between(start, end, grain):
        manifest = lake.manifest(CLEAN, "flights", part.key)
        if manifest is None:
            raise LakeError(f"clean partition {part.key} is not published: run the pipeline first")
        paths.append(_spark_path(lake, CLEAN, "flights", part.key, manifest.file))
        inputs[f"{CLEAN}/flights/{part.key}"] = manifest.checksum
    snapshot = latest_snapshot(lake, "planes", as_of=end)
    if snapshot is None:
        raise LakeError("no planes snapshot in the lake: run the pipeline (it extracts it)")
    planes_manifest = lake.manifest(RAW, "planes", snapshot)
    inputs[f"{RAW}/planes/{snapshot}"] = planes_manifest.checksum
    planes = spark.read.parquet(_spark_path(lake, RAW, "planes", snapshot, planes_manifest.file))
    return spark.read.parquet(*paths), planes, inputs


def train(spark: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Run the whole job; return a summary (version, headline metrics, timings)."""
    from pyspark.ml import PipelineModel
    from pyspark.sql import functions as F

    from headwater.lake import open_lake
    from headwater.report import render_report
    from headwater.spark_export import export_document, export_pipeline
    from headwater.usecases.flights.features import CATEGORICAL, FEATURES, NUMERIC
    from headwater.usecases.flights.training import (
        LABEL,
        TARGET,
        build_lookups,
        feature_table,
    )

    started = time.perf_counter()
    lake = open_lake(args.lake, region=args.region, endpoint_url=args.endpoint_url)
    flights, planes, inputs = read_inputs(spark, lake, args.start, args.end, args.grain)
    flights = flights.cache()
    progress("inputs", partitions=len(inputs) - 1, rows=flights.count())

    holdout_from = args.holdout_from or _default_holdout(args.start, args.end)
    lookups = build_lookups(
        flights.where(F.col("flight_date") < F.lit(holdout_from)), planes, schedule=flights
    )
    progress("lookups", routes=len(lookups.route_distance), aircraft=len(lookups.aircraft))
    features = feature_table(flights, lookups).cache()
    train_df, holdout_df = split_by_time(features, holdout_from)
    train_df, holdout_df = train_df.cache(), holdout_df.cache()
    train_rows, holdout_rows = train_df.count(), holdout_df.count()
    progress("features", train=train_rows, holdout=holdout_rows)
    if not train_rows or not holdout_rows:
        raise ValueError(f"empty train or holdout split at {holdout_from}: widen the date range")

    classifier, regressor = fit_models(train_df, CATEGORICAL, NUMERIC, args.reg_param, TARGET)
    fitted = time.perf_counter()
    progress("fitted")

    scored = with_probability(classifier.transform(holdout_df)).cache()
    histogram = score_histogram(scored)
    holdout_metrics = classification_metrics(scored, histogram=histogram)
    calibration = calibration_table(histogram)
    roc = roc_curve(histogram)
    regression = regression_metrics(
        regressor.transform(holdout_df.where(F.col(TARGET).isNotNull())), TARGET
    )
    metrics: dict[str, Any] = {
        "model": args.model_name,
        "version": args.version,
        "holdout_from": holdout_from.isoformat(),
        "holdout": holdout_metrics,
        "regression": regression,
        "baselines": baselines(train_df, holdout_df, TARGET),
        "calibration": calibration,
        "train_rows": train_rows,
        "threshold": float(classifier.stages[-1].getThreshold()),
    }
    progress("evaluated", auc_roc=round(holdout_metrics["auc_roc"], 4))
    version_dir = ("models", args.model_name, args.version)
    if args.production_version:
        try:
            production = PipelineModel.load(
                _spark_path(
                    lake, "models", args.model_name, args.production_version, "spark", "classifier"
                )
            )
            metrics["production_on_holdout"] = {
                "version": args.production_version,
                **classification_metrics(with_probability(production.transform(holdout_df))),
            }
        except Exception as exc:  # a model of another feature set cannot score this holdout
            metrics["production_on_holdout"] = {
                "version": args.production_version,
                "error": f"{type(exc).__name__}: {exc}",
            }

    export = export_document(
        {
            "classifier": export_pipeline(classifier, FEATURES),
            "regressor": export_pipeline(regressor, FEATURES),
        },
        {
            "model": args.model_name,
            "version": args.version,
            "label": LABEL,
            "target": TARGET,
            "features": list(FEATURES),
            "categorical": list(CATEGORICAL),
            "numeric": list(NUMERIC),
            "threshold": metrics["threshold"],
            "trained_at": datetime.now(UTC).isoformat(),
        },
    )
    parity = check_parity(classifier, regressor, holdout_df, export)
    progress("export checked", **parity)
    metrics["export_parity"] = parity
    if max(parity["max_abs_probability"], parity["max_abs_regression"]) > PARITY_TOLERANCE:
        raise RuntimeError(f"portable export disagrees with Spark: {parity}")

    import pyspark

    lineage = {
        "model": args.model_name,
        "version": args.version,
        "run_id": args.run_id,
        "code_version": args.code_version,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "date_range": f"{args.start}..{args.end}",
        "holdout_from": holdout_from.isoformat(),
        "inputs": inputs,
        "config": json.loads(args.config_json),
        "spark_version": spark.version,
        "pyspark_version": pyspark.__version__,
        "python_version": platform.python_version(),
    }
    classifier.write().overwrite().save(_spark_path(lake, *version_dir, "spark", "classifier"))
    regressor.write().overwrite().save(_spark_path(lake, *version_dir, "spark", "regressor"))
    for name, body in (
        ("export.json", export),
        ("lookups.json", lookups.to_dict()),
        ("metrics.json", metrics),
        ("lineage.json", lineage),
    ):
        lake.write_bytes(json.dumps(body, indent=1, default=str).encode(), *version_dir, name)
    report = render_report(
        title=f"{args.model_name} {args.version}",
        metrics=metrics,
        roc_points=roc,
        calibration=calibration,
        top_coefficients=top_coefficients(classifier, scored),
        lineage=lineage,
    )
    lake.write_bytes(report.encode("utf-8"), *version_dir, "report.html")
    lake.write_bytes(b"", *version_dir, "_SUCCESS")
    progress("written", uri=lake.uri_of(*version_dir))
    for frame in (flights, features, train_df, holdout_df, scored):
        frame.unpersist()
    return {
        "version": args.version,
        "uri": lake.uri_of(*version_dir),
        "auc_roc": holdout_metrics["auc_roc"],
        "log_loss": holdout_metrics["log_loss"],
        "rmse": regression["rmse"],
        "fit_seconds": round(fitted - started, 2),
        "seconds": round(time.perf_counter() - started, 2),
        "parity": parity,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, build the session, train, print the summary as JSON."""
    args = parse_args(argv)
    spark = create_spark(args)
    try:
        summary = train(spark, args)
    finally:
        spark.stop()
    print(json.dumps({"headwater_train": summary}, default=float), flush=True)
    return 0 if not math.isnan(summary["auc_roc"]) else 1


if __name__ == "__main__":
    sys.exit(main())

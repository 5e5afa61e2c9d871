"""Train, evaluate and export one use case's models on Spark (an EMR step, or local).

    spark-submit emr_jobs/train.py --options-json '{"usecase": "<name>", ...}' [--master M]

A thin entrypoint: read the run's options (one JSON document,
:class:`headwater.model.options.TrainOptions`, built by the scheduler), build the
SparkSession, run the generic job (:func:`headwater.model.spark_training.train`) on the use
case's training spec, and print its summary as one JSON line ``{"headwater_train": {...}}``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from typing import Any

from headwater.core.usecase import get_usecase
from headwater.model import spark_training
from headwater.model.options import TrainOptions
from headwater.model.runners import OPTIONS_FLAG, die_with_parent


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The job's command line: its options, and what only the Spark session needs."""
    parser = argparse.ArgumentParser(description="Train a use case's models.")
    parser.add_argument(
        OPTIONS_FLAG,
        dest="options",
        type=TrainOptions.from_json,
        required=True,
        help="the run's options as JSON (TrainOptions)",
    )
    parser.add_argument("--master", default=None, help="Spark master (spark-submit sets it)")
    parser.add_argument("--log-level", default="WARN", help="Spark's log level after start-up")
    return parser.parse_args(argv)


def create_spark(options: TrainOptions, master: str | None = None, log_level: str = "WARN") -> Any:
    """Build the SparkSession (inside main: nothing runs at import)."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession  # lazy: pyspark only where the job runs

    builder = SparkSession.builder.appName(f"headwater-train-{options.usecase}-{options.version}")
    if master:
        builder = builder.master(master)
    spark = (
        builder.config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(options.shuffle_partitions))
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    # Warnings and errors only: the tail of this log goes into failure notifications, where
    # INFO lines about committed writes would crowd out the error.
    spark.sparkContext.setLogLevel(log_level)
    return spark


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, build the session, train, print the summary as JSON."""
    args = parse_args(argv)
    options: TrainOptions = args.options
    # Locally the driver's parent is spark-submit's JVM: when it dies (its runner was
    # killed), so does this driver, rather than finishing a version nobody will gate.
    die_with_parent()
    usecase = get_usecase(options.usecase, options.usecase_module)
    spark = create_spark(options, args.master, args.log_level)
    try:
        summary = spark_training.train(spark, usecase, options)
    finally:
        spark.stop()
    print(json.dumps({"headwater_train": summary}, default=float), flush=True)
    return 0 if not math.isnan(summary["auc_roc"]) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Train, evaluate and export one use case's models on Spark (an EMR step, or local).

    spark-submit emr_jobs/train.py --usecase NAME [--usecase-module M] --lake s3://bucket/lake \\
        --version V --start 2013-01-01 --end 2013-12-31 [--holdout-from 2013-11-01] \\
        [--production-version P]

A thin entrypoint: parse the command line, build the SparkSession, run the generic
job (:func:`headwater.model.spark_training.train`) on the use case's training spec, and print
its summary as one JSON line ``{"headwater_train": {...}}``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from datetime import date
from typing import Any

from headwater.model.spark_training import TrainOptions


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The job's command line."""
    parser = argparse.ArgumentParser(description="Train a use case's models.")
    parser.add_argument("--usecase", required=True, help="the use case's registry name")
    parser.add_argument(
        "--usecase-module", default=None, help="module holding USECASE (default: by name)"
    )
    parser.add_argument("--lake", required=True, help="lake URI (file:// or s3://)")
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
    parser.add_argument(
        "--training-key", default="", help="what identifies this training (lineage)"
    )
    parser.add_argument("--config-json", default="{}", help="the run's configuration (lineage)")
    parser.add_argument("--master", default=None, help="Spark master (spark-submit sets it)")
    parser.add_argument("--shuffle-partitions", type=int, default=8)
    parser.add_argument("--reg-param", type=float, default=0.001)
    parser.add_argument("--log-level", default="WARN", help="Spark's log level after start-up")
    parser.add_argument("--region", default=None)
    parser.add_argument("--endpoint-url", default=None)
    return parser.parse_args(argv)


def train_options(args: argparse.Namespace) -> TrainOptions:
    """The generic job's options from the parsed command line."""
    return TrainOptions(
        lake=args.lake,
        version=args.version,
        start=args.start,
        end=args.end,
        grain=args.grain,
        holdout_from=args.holdout_from,
        production_version=args.production_version,
        run_id=args.run_id,
        code_version=args.code_version,
        training_key=args.training_key,
        config=json.loads(args.config_json),
        reg_param=args.reg_param,
        region=args.region,
        endpoint_url=args.endpoint_url,
    )


def create_spark(args: argparse.Namespace) -> Any:
    """Build the SparkSession (inside main: nothing runs at import)."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(f"headwater-train-{args.usecase}-{args.version}")
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, build the session, train, print the summary as JSON."""
    from headwater.core.usecase import get_usecase
    from headwater.model.runners import die_with_parent
    from headwater.model.spark_training import train

    args = parse_args(argv)
    # Locally the driver's parent is spark-submit's JVM: when it dies (its runner was
    # killed), so does this driver, rather than finishing a version nobody will gate.
    die_with_parent()
    usecase = get_usecase(args.usecase, args.usecase_module)
    spark = create_spark(args)
    try:
        summary = train(spark, usecase, train_options(args))
    finally:
        spark.stop()
    print(json.dumps({"headwater_train": summary}, default=float), flush=True)
    return 0 if not math.isnan(summary["auc_roc"]) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Regenerate the API's test model from a real, Spark-trained version (run by hand, rarely).

    .venv/bin/python tests/headwater/usecases/flights/model/generate.py [--lake var/lake]

Copies the production version's ``export.json``, ``metrics.json`` and ``lineage.json``
(real numbers from a full-year training run), picks holdout flights, scores them with
the version's own Spark ``PipelineModel`` over the training job's feature path
(``feature_table``), and writes those flights as API requests with Spark's answers
(``spark_predictions.json``). ``lookups.json`` keeps every small table whole and, of
the big ones (aircraft, congestion by day), the entries those flights use plus a
few more, so the fixture stays small and scores them exactly as the full one does.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from datetime import datetime
from pathlib import Path

from headwater.usecases.flights.features import WEATHER

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lake", default="var/lake")
    parser.add_argument("--month", default="2013-11")
    args = parser.parse_args(argv)

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    import pandas as pd
    import pyarrow.parquet as pq
    from pyspark.ml import PipelineModel
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    from headwater.model.spark_training import feature_table, with_probability
    from headwater.usecases.flights.features import FeatureLookups, congestion_key
    from headwater.usecases.flights.training import TRAINING

    models = Path(args.lake) / "models" / "flights_delay"
    version = json.loads((models / "PRODUCTION.json").read_text())["version"]
    source = models / version
    lookups_doc = json.loads((source / "lookups.json").read_text())
    lookups = FeatureLookups.from_dict(lookups_doc)

    part = Path(args.lake) / "clean" / "flights" / f"month={args.month}"
    (parquet,) = part.glob("*.parquet")
    frame = pq.read_table(parquet).to_pandas()
    frame = frame[~frame["cancelled"]]
    # Variety: every origin, flights without tail number or weather, unknown tail numbers.
    picks = [
        frame[frame["origin"] == "EWR"].iloc[[0, 500, 2000]],
        frame[frame["origin"] == "JFK"].iloc[[10, 800, 3000]],
        frame[frame["origin"] == "LGA"].iloc[[20, 900, 4000]],
        frame[frame["tailnum"].isna()].head(2),
        frame[frame["temp_f"].isna()].head(2),
        frame[~frame["tailnum"].isin(list(lookups.aircraft)) & frame["tailnum"].notna()].head(2),
        frame.sample(12, random_state=7),
    ]
    chosen = pd.concat(picks).drop_duplicates(["carrier", "flight", "flight_date"])
    keys = chosen[["carrier", "origin", "dest", "flight_date", "sched_dep_hour"]]
    chosen = chosen[~keys.duplicated(keep=False)]

    spark = (
        SparkSession.builder.master("local[1]")
        .appName("api-fixture")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    try:
        flights = spark.read.parquet(f"file://{parquet.resolve()}")
        wanted = spark.createDataFrame(
            [(r.carrier, int(r.flight), r.flight_date) for r in chosen.itertuples()],
            "carrier string, flight long, flight_date date",
        )
        selected = flights.join(wanted, ["carrier", "flight", "flight_date"])
        features = feature_table(selected, TRAINING, lookups)
        classifier = PipelineModel.load(f"file://{(source / 'spark' / 'classifier').resolve()}")
        regressor = PipelineModel.load(f"file://{(source / 'spark' / 'regressor').resolve()}")
        join = ["carrier", "origin", "dest", "flight_date", "dep_hour"]
        scored = (
            with_probability(classifier.transform(features))
            .select(*join, F.col("p").alias("probability"), F.col("prediction").alias("decision"))
            .join(
                regressor.transform(features).select(*join, F.col("prediction").alias("delay")),
                join,
            )
            .collect()
        )
    finally:
        spark.stop()

    answers = {(r.carrier, r.origin, r.dest, r.flight_date, r.dep_hour): r for r in scored}
    cases = []
    for r in chosen.itertuples():
        answer = answers[(r.carrier, r.origin, r.dest, r.flight_date, f"{r.sched_dep_hour:02d}")]
        weather = {
            n: (None if math.isnan(getattr(r, n)) else float(getattr(r, n))) for n in WEATHER
        }
        request = {
            "carrier": r.carrier,
            "flight": int(r.flight),
            "origin": r.origin,
            "dest": r.dest,
            "scheduled_departure": datetime.fromisoformat(str(r.sched_dep_local)).isoformat(),
            "tailnum": None if pd.isna(r.tailnum) else r.tailnum,
            "weather": weather,
        }
        cases.append(
            {
                "request": request,
                "spark": {
                    "probability": answer.probability,
                    "decision": answer.decision,
                    "arrival_delay": answer.delay,
                },
            }
        )

    used_tails = {c["request"]["tailnum"] for c in cases}
    used_congestion = {
        congestion_key(
            c["request"]["origin"],
            datetime.fromisoformat(c["request"]["scheduled_departure"]).date(),
            datetime.fromisoformat(c["request"]["scheduled_departure"]).hour,
        )
        for c in cases
    }
    some_tails = sorted(lookups_doc["aircraft"])[:40]
    some_days = sorted(k for k in lookups_doc["congestion"] if "|2013-11-04|" in k)
    small = dict(lookups_doc)
    small["aircraft"] = {
        k: v
        for k, v in lookups_doc["aircraft"].items()
        if k in used_tails or k in some_tails or k == "N14228"
    }
    small["congestion"] = {
        k: v for k, v in lookups_doc["congestion"].items() if k in used_congestion or k in some_days
    }

    for name in ("export.json", "metrics.json", "lineage.json"):
        (HERE / name).write_text((source / name).read_text())
    (HERE / "lookups.json").write_text(json.dumps(small, indent=1, sort_keys=True))
    (HERE / "spark_predictions.json").write_text(
        json.dumps(
            {
                "version": version,
                "source": "Spark PipelineModel.transform over feature_table",
                "cases": cases,
            },
            indent=1,
        )
    )
    print(f"{len(cases)} flights scored by Spark; fixture written to {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

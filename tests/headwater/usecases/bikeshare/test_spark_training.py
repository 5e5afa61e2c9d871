"""The bike share use case trained through the generic job, end to end
(moved from tests/headwater/model/test_spark_training.py)."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import pytest

from headwater.core import layout
from headwater.core.usecase import get_usecase
from headwater.model.spark_training import (
    TrainOptions,
    train,
)

# pyspark leaves collect() sockets to the garbage collector: see the note in tests/conftest.py.
pytestmark = pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")


# --- the second use case, end to end -----------------------------------------------------------

BIKE_FIRST, BIKE_LAST, BIKE_HOLDOUT = date(2011, 5, 1), date(2011, 6, 30), date(2011, 6, 16)


@pytest.fixture(scope="module")
def trained_bikeshare(
    spark: Any, bike_weather_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """Build the demo rentals of May-June 2011, run the pipeline month by month, train."""
    import warnings

    from headwater.core.config import Settings
    from headwater.core.partitions import partitions_between
    from headwater.data.pipeline import clean_partition, extract_partition, lake_for
    from headwater.usecases.bikeshare.data import build_demo_database

    root = tmp_path_factory.mktemp("bikeshare")
    db = build_demo_database(root / "bikeshare.sqlite", first=BIKE_FIRST, last=BIKE_LAST).url
    sources = {
        "rentals": {"kind": "sql", "url": db, "table": "rentals", "date_column": "dteday"},
        "weather": {
            "kind": "json_pages", "base_url": bike_weather_server.url,
            "items_field": "observations", "page_size": 500, "rate_limit_per_second": 200,
            "timeout_seconds": 5, "max_retries": 3,
        },
    }  # fmt: skip
    settings = Settings.model_validate(
        {
            "stage": "test",
            "usecases": ["bikeshare"],
            "usecase": {"bikeshare": {"sources": sources}},
            "lake": {"uri": f"file://{root}/lake"},
        }
    )
    for part in partitions_between(BIKE_FIRST, BIKE_LAST, "month"):
        extract_partition(settings, "bikeshare", "rentals", part, "bike-train")
        extract_partition(settings, "bikeshare", "weather", part, "bike-train")
        clean_partition(settings, "bikeshare", part, "bike-train")
    options = TrainOptions(
        usecase="bikeshare", lake=settings.lake.uri, version="v-bike", start=BIKE_FIRST,
        end=BIKE_LAST, holdout_from=BIKE_HOLDOUT, run_id="bike-train", code_version="test-code",
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "unclosed <socket.socket", ResourceWarning)
        summary = train(spark, get_usecase("bikeshare"), options)
    return lake_for(settings), summary


def test_the_second_use_case_trains_through_the_same_job(trained_bikeshare: Any) -> None:
    from headwater.serving.scoring import load_pipelines
    from headwater.usecases.bikeshare.features import FEATURES as BIKE_FEATURES
    from headwater.usecases.bikeshare.features import FeatureLookups as BikeLookups
    from headwater.usecases.bikeshare.features import features_record

    lake, summary = trained_bikeshare
    version = layout.model_parts("bikeshare", "v-bike")

    def read(name: str) -> Any:
        return json.loads(lake.read_bytes(*version, name))

    # Then the version is complete, under the use case's own registry
    assert lake.exists(*version, layout.SUCCESS)
    assert summary["usecase"] == "bikeshare" and summary["uri"].endswith("models/bikeshare/v-bike")
    metrics, export, lineage = read(layout.METRICS), read(layout.EXPORT), read(layout.LINEAGE)
    # with the use case's label, target, unit and baselines, on the same holdout
    assert metrics["label"]["column"] == "high_demand"
    assert metrics["target"] == {
        "column": "rentals", "name": "rentals in the hour", "unit": "rentals"
    }  # fmt: skip
    assert list(metrics["baselines"]) == [
        "base_rate", "hour_weekday_rate", "mean_rentals", "same_hour_yesterday",
        "same_hour_last_week",
    ]  # fmt: skip
    # persistence predicts rentals from the lags, computed across the May-June boundary
    assert (
        0
        < metrics["baselines"]["same_hour_yesterday"]["rmse"]
        < (metrics["baselines"]["mean_rentals"]["rmse"])
    )
    # the lags reach back from the range's first hour: those rows are null, and counted
    lag_nulls = {name: w["null_rows"] for name, w in metrics["windows"].items()}
    assert 1 <= lag_nulls["rentals_1h_before"] < lag_nulls["rentals_24h_before"]
    assert 100 <= lag_nulls["rentals_168h_before"] < 400  # about the first week
    holdout = metrics["holdout"]
    assert 0.0 < holdout["positive_rate"] < 1.0
    assert holdout["auc_roc"] > metrics["baselines"]["hour_weekday_rate"]["auc_roc"] > 0.5
    assert metrics["regression"]["rmse"] < metrics["baselines"]["mean_rentals"]["rmse"]
    assert metrics["export_parity"]["max_abs_probability"] <= 1e-9
    assert export["metadata"]["usecase"] == "bikeshare"
    assert export["metadata"]["features"] == list(BIKE_FEATURES)
    assert lineage["usecase"] == "bikeshare"
    assert set(lineage["inputs"]) == {
        "clean/bikeshare/rentals/month=2011-05", "clean/bikeshare/rentals/month=2011-06"
    }  # fmt: skip
    report = lake.read_bytes(*version, layout.REPORT).decode()
    assert "Hourly bike rentals" in report
    assert "Regression (rentals in the hour, rentals)" in report
    assert "flight" not in report.lower()
    # and an hour the API derives from a request is scored by the exported pipelines
    lookups = BikeLookups.from_dict(read(layout.LOOKUPS))
    assert lookups.start_year == 2011 and set(lookups.weather) == {"05", "06"}
    assert set(lookups.typical_rentals) == {f"{h:02d}" for h in range(24)}
    record, _ = features_record(hour_start=datetime(2011, 6, 20, 17), lookups=lookups)
    pipelines = load_pipelines(export)
    busy = pipelines["classifier"].transform(dict(record))["probability"]
    record, _ = features_record(hour_start=datetime(2011, 6, 20, 3), lookups=lookups)
    quiet = pipelines["classifier"].transform(dict(record))["probability"]
    assert busy > 0.5 > quiet  # a June weekday at 5 pm is busy, 3 am is not

"""What real runs of the training job write for the flights use case, and its lookups, feature
table and baselines on Spark (moved from tests/headwater/model/test_spark_training.py).

``trained_model`` (this folder's fixtures.py) is one run of
``headwater.model.spark_training.train`` for the flights use case on January to March 2013,
in process.
"""

from __future__ import annotations

import json
import math
import platform
from datetime import date
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from headwater.core import layout
from headwater.core.layout import CLEAN, RAW
from headwater.core.records import Lineage, TrainingMetrics
from headwater.core.usecase import get_usecase
from headwater.data.lake import LakeError
from headwater.data.pipeline import latest_snapshot
from headwater.model.spark_training import (
    TrainOptions,
    baselines,
    classification_metrics,
    default_holdout,
    feature_table,
    train,
    with_windows,
)
from headwater.usecases.flights.features import (
    CATEGORICAL,
    FEATURES,
    NUMERIC,
    WEATHER,
    FeatureLookups,
    features_frame,
)
from headwater.usecases.flights.training import HUMAN_NAMES, TRAINING, build_lookups
from tests.headwater.model.test_spark_training import flip_64_bytes, publish_blobs

# pyspark leaves collect() sockets to the garbage collector: see the note in tests/conftest.py.
pytestmark = pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")
HOLDOUT = date(2013, 3, 1)
FLIGHTS = layout.dataset("flights", "flights")


def test_baselines_smooth_each_carrier_hour_towards_the_base_rate(spark: Any) -> None:
    # Given training flights: AA at 08 delayed 3 times out of 4, UA at 17 never (base rate 1/2)
    schema = "carrier string, dep_hour string, label double, arr_delay double"
    train_df = spark.createDataFrame(
        [
            ("AA", "08", 1.0, 10.0),
            ("AA", "08", 1.0, 20.0),
            ("AA", "08", 0.0, None),
            ("AA", "08", 1.0, 30.0),
            ("UA", "17", 0.0, 0.0),
            ("UA", "17", 0.0, 0.0),
        ],
        schema,
    )
    # and a holdout with an on-time AA 08 flight and a delayed flight in a cell never seen
    holdout = spark.createDataFrame([("AA", "08", 0.0, 10.0), ("DL", "06", 1.0, None)], schema)

    # When the baselines are evaluated
    result = baselines(train_df, holdout, TRAINING)

    # Then the carrier-hour rate is (3 + 20 * 1/2) / (4 + 20); an unseen cell gets the base rate
    cell = (3 + 20 * 0.5) / (4 + 20)
    by_cell = result["carrier_hour_rate"]
    assert by_cell["brier"] == pytest.approx((cell**2 + 0.5**2) / 2, abs=1e-12)
    assert by_cell["log_loss"] == pytest.approx((-math.log(1 - cell) - math.log(0.5)) / 2)
    assert by_cell["auc_roc"] == 0.0  # the on-time flight got the higher score
    assert result["base_rate"]["brier"] == pytest.approx(0.25, abs=1e-12)
    # and the arrival-delay baseline predicts the training mean, 60 / 5 = 12 minutes
    assert result["mean_arr_delay"] == {"rmse": pytest.approx(2.0), "mae": pytest.approx(2.0)}
    assert list(result) == ["base_rate", "carrier_hour_rate", "mean_arr_delay"]


# --- lookups and the feature table -------------------------------------------------------------

FLIGHT_SCHEMA = (
    "origin string, dest string, distance double, flight_date date, month long, "
    "sched_dep_hour long, "
    + ", ".join(f"{name} double" for name in WEATHER)
    + ", dep_delayed_15 boolean"
)


def flight(
    origin: str,
    dest: str,
    distance: float,
    day: date,
    hour: int,
    temp: float | None,
    precip: float | None = 0.1,
    delayed: bool | None = False,
) -> tuple[Any, ...]:
    """One clean-flight row for build_lookups (weather: temperature and precipitation vary)."""
    weather = {name: 1.0 for name in WEATHER} | {"temp_f": temp, "precip_in": precip}
    return (origin, dest, distance, day, day.month, hour, *(weather[n] for n in WEATHER), delayed)


def test_build_lookups_keys_and_values_by_hand(spark: Any) -> None:
    # Given a few training flights (Jan 7 and 14 are Mondays), one more scheduled in the holdout,
    flights = spark.createDataFrame(
        [
            flight("EWR", "LAX", 2454.0, date(2013, 1, 7), 8, 30.0, delayed=True),
            flight("EWR", "LAX", 2454.0, date(2013, 1, 7), 8, None, delayed=None),  # cancelled
            flight("JFK", "BOS", 187.0, date(2013, 1, 8), 17, 20.0, delayed=True),
            flight("EWR", "LAX", 2454.0, date(2013, 1, 14), 8, 40.0),
            flight("LGA", "ATL", 762.0, date(2013, 2, 1), 6, 50.0, precip=None),
        ],
        FLIGHT_SCHEMA,
    )
    schedule = flights.union(
        spark.createDataFrame(
            [flight("EWR", "SFO", 2565.0, date(2013, 3, 4), 8, 45.0, delayed=True)],
            FLIGHT_SCHEMA,
        )
    )
    # and planes, one without a build year, one without seats, one without a tail number
    planes = spark.createDataFrame(
        [
            ("N1", 2003, 178, 2),
            ("N4", 2008, 100, 2),
            ("N5", 2000, 300, 4),
            ("N2", None, 20, 1),
            ("N3", None, None, 2),
            (None, None, 50, 2),
        ],
        "tailnum string, year int, seats int, engines int",
    )

    # When the lookups are built
    lookups = build_lookups(flights, planes, schedule=schedule)

    # Then routes come from training flights only, keyed origin-dest
    assert lookups.route_distance == {"EWR-LAX": 2454.0, "JFK-BOS": 187.0, "LGA-ATL": 762.0}
    assert lookups.default_distance == 2454.0  # the median of the flights' distances
    # aircraft with seats and engines, ages measured from the data's last year (2013)
    assert lookups.aircraft == {
        "N1": {"year": 2003.0, "seats": 178.0, "engines": 2.0},
        "N4": {"year": 2008.0, "seats": 100.0, "engines": 2.0},
        "N5": {"year": 2000.0, "seats": 300.0, "engines": 4.0},
        "N2": {"year": None, "seats": 20.0, "engines": 1.0},
    }
    assert lookups.default_aircraft == {"plane_age": 10.0, "seats": 178.0, "engines": 2.0}
    # weather averages per origin and month, skipping missing values, else the overall average
    assert set(lookups.weather) == {"EWR-01", "JFK-01", "LGA-02"}
    assert lookups.weather["EWR-01"]["temp_f"] == 35.0
    assert lookups.weather["LGA-02"]["precip_in"] == pytest.approx(0.1)  # none in LGA-02
    assert lookups.default_weather["temp_f"] == 35.0  # (30 + 20 + 40 + 50) / 4
    # congestion per origin, day and hour from the whole schedule, holdout included
    assert lookups.congestion == {
        "EWR|2013-01-07|08": 2.0,
        "JFK|2013-01-08|17": 1.0,
        "EWR|2013-01-14|08": 1.0,
        "LGA|2013-02-01|06": 1.0,
        "EWR|2013-03-04|08": 1.0,
    }
    # typical congestion per origin, weekday (Monday = 0) and hour
    assert lookups.typical_congestion == {
        "EWR|0|08": pytest.approx((2 + 1 + 1) / 3),
        "JFK|1|17": 1.0,
        "LGA|4|06": 1.0,
    }
    assert lookups.default_congestion == pytest.approx(6 / 5)
    # the delay rate of each origin's known outcomes (training flights only), and overall
    assert lookups.delay_share == {"EWR": 0.5, "JFK": 1.0, "LGA": 0.0}
    assert lookups.default_delay_share == 0.5  # 2 delayed of 4 known
    assert FeatureLookups.from_dict(json.loads(json.dumps(lookups.to_dict()))) == lookups


def test_feature_table_on_spark_equals_the_pandas_path_on_a_real_partition(
    spark: Any, trained_model: Any
) -> None:
    # Given the clean March partition with its windows, and the trained version's lookups
    lake = trained_model.lake
    manifest = lake.manifest(CLEAN, FLIGHTS, "month=2013-03")
    flights = spark.read.parquet(
        f"file://{lake.path(CLEAN, FLIGHTS, 'month=2013-03', manifest.file)}"
    )
    flights = with_windows(flights, TRAINING.windows).cache()
    lookups = FeatureLookups.from_dict(trained_model.read_json("lookups.json"))

    # When the features are computed on Spark (Arrow batches on the executors)
    table = feature_table(flights, TRAINING, lookups)

    # Then the schema is the features, the date, the label as a double, the target as a double
    types = {f.name: f.dataType.simpleString() for f in table.schema.fields}
    assert list(types) == [*FEATURES, "flight_date", "label", "arr_delay"]
    assert {types[n] for n in CATEGORICAL} == {"string"}
    assert {types[n] for n in NUMERIC} == {"double"}
    assert [types[n] for n in ("flight_date", "label", "arr_delay")] == [
        "date", "double", "double"
    ]  # fmt: skip
    # and the rows are exactly what the pandas path gives on the same flights
    clean = pd.DataFrame([row.asDict() for row in flights.collect()])
    assert clean[TRAINING.windows[0].name].notna().sum() > 0.9 * manifest.rows
    expected = features_frame(clean, lookups).assign(
        flight_date=pd.to_datetime(clean["flight_date"]).dt.date,
        label=clean["dep_delayed_15"].astype("float64"),
        arr_delay=clean["arr_delay"],
    )
    got = sorted(comparable(row.asDict().values()) for row in table.collect())
    want = sorted(comparable(values) for values in expected.itertuples(index=False))
    assert len(got) == manifest.rows
    assert got == want
    labels = [row[-2] for row in got]
    assert sum(1 for v in labels if v == NO_VALUE) == clean["cancelled"].sum()


NO_VALUE = float("-inf")


def comparable(values: Any) -> tuple[Any, ...]:
    """A row as a sortable tuple: missing numbers (None or NaN) become one sentinel."""
    out = []
    for value in values:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            value = NO_VALUE
        elif hasattr(value, "item"):  # numpy scalars
            value = value.item()
        out.append(value)
    return tuple(out)


# --- a real run of the job ---------------------------------------------------------------------


def test_the_version_holds_models_export_lookups_metrics_lineage_report_and_success(
    trained_model: Any,
) -> None:
    directory = trained_model.directory

    for name in ("classifier", "regressor"):
        assert (directory / "spark" / name / "metadata").is_dir()
        assert (directory / "spark" / name / "stages").is_dir()
    names = {p.name for p in directory.iterdir()}
    assert {"export.json", "lookups.json", "metrics.json", "lineage.json", "report.html"} <= names
    assert "_SUCCESS" in names
    assert trained_model.registry.is_complete(trained_model.version)
    assert trained_model.registry.info(trained_model.version).status == "candidate"


def labelled_rows(trained_model: Any) -> tuple[int, int]:
    """Labelled, not cancelled flights before and from the holdout date, counted with pyarrow."""
    lake = trained_model.lake
    before = after = 0
    for key in lake.partitions(CLEAN, FLIGHTS):
        table = lake.read(CLEAN, FLIGHTS, key)[0]
        usable = table.filter(
            pc.and_(pc.invert(table["cancelled"]), pc.is_valid(table["dep_delayed_15"]))
        )
        late = pc.greater_equal(usable["flight_date"], pa.scalar(HOLDOUT))
        after += pc.sum(late).as_py() or 0
        before += usable.num_rows - (pc.sum(late).as_py() or 0)
    return before, after


def test_metrics_report_the_holdout_the_baselines_and_the_calibration(trained_model: Any) -> None:
    metrics = trained_model.read_json("metrics.json")
    train_rows, holdout_rows = labelled_rows(trained_model)

    assert (metrics["model"], metrics["version"]) == ("flights", trained_model.version)
    assert metrics["usecase"] == "flights"
    assert metrics["label"] == {
        "column": "dep_delayed_15", "name": "departure delayed 15+ minutes", "unit": ""
    }  # fmt: skip
    assert metrics["target"] == {"column": "arr_delay", "name": "arrival delay", "unit": "min"}
    assert metrics["holdout_from"] == "2013-03-01"
    holdout = metrics["holdout"]
    assert 0.5 < holdout["auc_roc"] <= 1.0
    assert holdout["rows"] == holdout_rows
    assert metrics["train_rows"] == train_rows
    assert 0.0 < holdout["positive_rate"] < 1.0
    # the model is compared with naive baselines on the same holdout, and beats the constant one
    assert set(metrics["baselines"]) == {"base_rate", "carrier_hour_rate", "mean_arr_delay"}
    # the now-cast is null only where no departure's outcome is known in the hours before
    nowcast = metrics["windows"]["origin_delay_share_3h"]
    assert nowcast["kind"] == "rolling_mean" and 0 < nowcast["null_rows"] < train_rows / 10
    assert metrics["baselines"]["base_rate"]["rows"] == holdout_rows
    assert metrics["baselines"]["base_rate"]["auc_roc"] == pytest.approx(0.5)
    # the model beats the naive baselines on this data: ranking and arrival-delay error
    assert holdout["auc_roc"] > metrics["baselines"]["carrier_hour_rate"]["auc_roc"] > 0.5
    assert 0 < metrics["regression"]["rmse"] < metrics["baselines"]["mean_arr_delay"]["rmse"]
    assert sum(row["count"] for row in metrics["calibration"]) == holdout_rows
    assert all(0 <= row["bin"] <= 9 for row in metrics["calibration"])
    assert metrics["threshold"] == 0.5
    assert "production_on_holdout" not in metrics  # nothing was in production
    parity = metrics["export_parity"]
    assert parity["rows"] == min(2000, holdout_rows)
    assert max(parity["max_abs_probability"], parity["max_abs_regression"]) <= 1e-9
    assert trained_model.summary["auc_roc"] == holdout["auc_roc"]
    # what the job wrote is the typed record's own form: it reads back and writes the same
    assert TrainingMetrics.from_dict(metrics).to_dict() == metrics


def test_lineage_names_every_input_by_checksum_and_the_versions_that_ran(
    trained_model: Any, spark: Any
) -> None:
    import pyspark

    lake = trained_model.lake
    lineage = trained_model.read_json("lineage.json")

    expected = {
        f"clean/flights/flights/{key}": lake.manifest(CLEAN, FLIGHTS, key).checksum
        for key in ("month=2013-01", "month=2013-02", "month=2013-03")
    }
    snapshot = latest_snapshot(lake, "flights", "planes")
    assert snapshot == "snapshot=2013-03-12"
    planes = layout.dataset("flights", "planes")
    expected[f"raw/flights/planes/{snapshot}"] = lake.manifest(RAW, planes, snapshot).checksum
    assert lineage["inputs"] == expected
    assert all(v.startswith("sha256:") for v in lineage["inputs"].values())
    assert lineage["spark_version"] == spark.version
    assert lineage["pyspark_version"] == pyspark.__version__
    assert lineage["python_version"] == platform.python_version()
    assert lineage["code_version"] == "test-code"
    assert lineage["run_id"] == "fixture-train"
    assert lineage["range"] == {"start": "2013-01-01", "end": "2013-03-12"}
    assert "date_range" not in lineage  # the range is two fields, never a string to split
    assert lineage["holdout_from"] == "2013-03-01"
    assert lineage["config"] == {"stage": "test", "fixture": "trained_model"}
    assert lineage["usecase"] == "flights"
    # what the job wrote is the typed record's own form: it reads back and writes the same
    assert Lineage.from_dict(lineage).to_dict() == lineage


@pytest.mark.slow
def test_a_run_inside_one_partition_trains_and_holds_out_only_its_own_days(
    trained_model: Any, spark: Any, tmp_path: Any
) -> None:
    import shutil
    import warnings

    from headwater.data.lake import open_lake

    # Given a lake holding the fixture's March partition (month grain: March 1st to 12th)
    source = trained_model.lake
    march, planes = "month=2013-03", layout.dataset("flights", "planes")
    for parts in ((CLEAN, FLIGHTS, march), (RAW, planes)):
        shutil.copytree(source.path(*parts), tmp_path / "lake" / "/".join(parts))
    lake = open_lake(f"file://{tmp_path}/lake")
    start, end = date(2013, 3, 5), date(2013, 3, 12)

    # When a run of March 5th to 12th trains on it (default holdout: the last sixth)
    options = TrainOptions("flights", lake=lake.uri, version="v-inside", start=start, end=end)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "unclosed <socket", ResourceWarning)
        train(spark, get_usecase("flights"), options)

    # Then it trained and held out only the rows of its own days, counted with pyarrow
    holdout_from = default_holdout(start, end)
    assert start < holdout_from <= end
    table = lake.read(CLEAN, FLIGHTS, march)[0]
    usable = table.filter(
        pc.and_(pc.invert(table["cancelled"]), pc.is_valid(table["dep_delayed_15"]))
    ).to_pandas()
    day = pd.to_datetime(usable["flight_date"]).dt.date
    train_rows = int(((day >= start) & (day < holdout_from)).sum())
    holdout_rows = int(((day >= holdout_from) & (day <= end)).sum())
    assert int((day < start).sum()) > 0  # the partition does hold days before the range
    version = layout.model_parts("flights", "v-inside")
    metrics = json.loads(lake.read_bytes(*version, layout.METRICS))
    lineage = json.loads(lake.read_bytes(*version, layout.LINEAGE))
    assert metrics["train_rows"] == train_rows
    assert metrics["holdout"]["rows"] == holdout_rows
    assert metrics["holdout_window"] == {
        "from": holdout_from.isoformat(), "to": "2013-03-12", "rows": holdout_rows,
        "days": (end - holdout_from).days + 1,
    }  # fmt: skip
    assert (lineage["range"], lineage["holdout_from"]) == (
        {"start": "2013-03-05", "end": "2013-03-12"},
        holdout_from.isoformat(),
    )


def test_report_draws_the_roc_curve_and_the_calibration(trained_model: Any) -> None:
    report = (trained_model.directory / "report.html").read_text(encoding="utf-8")
    auc = trained_model.read_json("metrics.json")["holdout"]["auc_roc"]

    assert report.startswith("<!doctype html>")
    assert report.count("<svg") >= 2
    assert f"ROC curve (AUC {auc:.3f})" in report
    assert 'aria-label="Calibration"' in report
    assert trained_model.version in report
    # headings name the use case's own label, target and unit, and features by human name
    assert "Holdout metrics (classifier: departure delayed 15+ minutes)" in report
    assert "Regression (arrival delay, min)" in report
    assert "the training delay rate of the airline at the scheduled hour" in report
    assert any(f"{name} (" in report or f"{name} = " in report for name in HUMAN_NAMES.values())


# --- production scored as it serves: its own lookups, a typed outcome ---------------------------


@pytest.fixture(scope="module")
def production_run(spark: Any, trained_model: Any, tmp_path_factory: Any) -> Any:
    """The trained model's holdout scored as the candidate, against a lake of productions.

    ``v-same`` holds the trained version's files; ``v-other-lookups`` the same classifier
    with other lookups (no route distances, every route 5,000 miles): the features the API
    would derive for it differ. The candidate is the trained version as it serves.
    """
    import shutil

    from headwater.data.lake import open_lake
    from headwater.model.spark_training import (
        holdout_window,
        read_step,
        score_production,
        start_run,
        verify_step,
    )

    options = TrainOptions(
        usecase="flights", lake=trained_model.settings.lake.uri, version="v-candidate",
        start=trained_model.start, end=trained_model.end, grain="month",
        holdout_from=trained_model.holdout_from, config={"gate": {"confidence": 0.9}},
    )  # fmt: skip
    run = start_run(spark, get_usecase("flights"), options)
    verify_step(run)
    read_step(run)
    lake = open_lake(f"file://{tmp_path_factory.mktemp('productions')}/lake")
    other = {"route_distance": {}, "default_distance": 5e3}
    other |= {"congestion": {}, "typical_congestion": {}, "default_congestion": 1e3}
    changes = {"v-same": {}, "v-other-lookups": other}
    for version, change in changes.items():
        target = lake.path(*layout.model_parts("flights", version))
        shutil.copytree(trained_model.directory, target)
        lookups = json.loads(
            lake.read_bytes(*layout.model_parts("flights", version), "lookups.json")
        )
        body = json.dumps(lookups | change).encode()
        lake.write_bytes(body, *layout.model_parts("flights", version), "lookups.json")
    run.lake = lake
    run.scored = score_production(run, "v-same")
    run.holdout_metrics = classification_metrics(run.scored)
    window = holdout_window(run.scored, run.spec.date_column, run.holdout_from, run.options.end)
    run.metrics = TrainingMetrics(holdout_window=window)
    return run


def test_production_is_scored_with_its_own_lookups_as_the_api_serves_it(
    production_run: Any,
) -> None:
    from headwater.model.comparison import ComparisonOutcome
    from headwater.model.spark_training import compare_with_production

    # Given production versions with the candidate's classifier: one with the same lookups,
    # one with other lookups
    candidate_auc = production_run.holdout_metrics["auc_roc"]

    # When each is compared with the candidate
    same = compare_with_production(production_run, "v-same")
    other = compare_with_production(production_run, "v-other-lookups")

    # Then both scored the holdout; the same files score the same, and the other lookups
    # change production's scores (with the candidate's lookups both would equal the candidate)
    assert same.outcome is other.outcome is ComparisonOutcome.COMPARED
    assert same.metrics["auc_roc"] == pytest.approx(candidate_auc, abs=1e-12)
    # (the same files agree to 1e-12; distance and congestion move the probabilities; with
    # the now-cast window in the model, distance alone moved them by 7e-7)
    for metric in ("log_loss", "brier"):
        assert abs(other.metrics[metric] - production_run.holdout_metrics[metric]) > 1e-6
    assert other.metrics["auc_roc"] != production_run.holdout_metrics["auc_roc"]
    assert other.metrics["rows"] == same.metrics["rows"]  # the same holdout rows
    # and the interval's level is the gate's, as recorded in the run's options
    assert other.numbers["confidence"] == 0.9


def test_a_production_that_cannot_score_is_recorded_as_production_failing(
    production_run: Any,
) -> None:
    from headwater.model.comparison import ComparisonOutcome
    from headwater.model.spark_training import compare_with_production
    from headwater.registry.gate import comparison_failed

    # When the production version named is not in the lake
    outcome = compare_with_production(production_run, "v-gone")

    # Then production failed to score, with the reason; not the comparison's own failure
    assert outcome.outcome is ComparisonOutcome.PRODUCTION_FAILED
    assert "lookups.json" in outcome.error and outcome.metrics == {}
    written = outcome.to_metrics()
    assert written["production_on_holdout"]["error"] == outcome.error
    assert not comparison_failed(written)


def test_a_failed_comparison_is_written_as_such_and_not_reused(
    production_run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    from headwater.core.config import GateConfig
    from headwater.model import spark_training
    from headwater.registry.gate import comparison_failed, judge

    # Given a comparison that breaks once production has scored the holdout
    def broken(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise IndexError("boom")

    monkeypatch.setattr(spark_training, "interval_comparison", broken)
    options = dataclasses.replace(production_run.options, production_version="v-same")
    run = dataclasses.replace(production_run, options=options)

    # When the job's compare step runs
    fields = spark_training.production_step(run)

    # Then metrics.json says the comparison failed (production did score), the gate refuses
    # it as such and a rerun trains again (luigi_tasks.training.comparable)
    assert fields == {"version": "v-same", "outcome": "comparison_failed"}
    metrics = run.metrics.to_dict()
    assert metrics["comparison"]["error"] == "IndexError: boom"
    assert metrics["production_on_holdout"]["auc_roc"] > 0.5
    assert comparison_failed(metrics)
    body = {**metrics, "holdout": production_run.holdout_metrics}
    with pytest.raises(ValueError, match=r"the comparison failed \(IndexError: boom\)"):
        judge(body, "v-same", GateConfig())


def test_a_corrupted_reference_snapshot_is_refused_too(spark: Any, tmp_path: Any) -> None:
    from headwater.data.lake import open_lake
    from headwater.model.spark_training import read_inputs

    lake = open_lake(f"file://{tmp_path}/lake")
    publish_blobs(lake, CLEAN, FLIGHTS, "month=2013-01")
    planes = layout.dataset("flights", "planes")
    publish_blobs(lake, RAW, planes, "snapshot=2013-01-31")
    flip_64_bytes(lake, RAW, planes, "snapshot=2013-01-31")

    with pytest.raises(
        LakeError, match=rf"raw/{planes}/snapshot=2013-01-31: manifest sha256:"
    ) as e:
        read_inputs(spark, lake, "flights", TRAINING, date(2013, 1, 1), date(2013, 1, 31), "month")
    # a snapshot is replaced by a run of --rerun extract ending on its date: this training's
    assert (
        "`headwater run --usecase flights --start 2013-01-01 --end 2013-01-31 --rerun extract`"
        in str(e.value)
    )


def test_the_training_summary_times_every_step_of_the_job(trained_model: Any) -> None:
    from headwater.model.spark_training import STEPS

    assert list(trained_model.summary["steps"]) == [name for name, _ in STEPS]
    assert all(s >= 0 for s in trained_model.summary["steps"].values())


def training_features(trained_model: Any) -> pd.DataFrame:
    """The model inputs of the training rows, by the pandas path (labelled, before the holdout)."""
    lake = trained_model.lake
    from headwater.monitoring.windows import with_windows as pandas_windows

    lookups = FeatureLookups.from_dict(trained_model.read_json(layout.LOOKUPS))
    frames = []
    for key in lake.partitions(CLEAN, FLIGHTS):
        # the windows over this partition alone (a window reaching into the month before is
        # null here, not in Spark: the windowed inputs' ranges are left out below)
        clean = pandas_windows(lake.read(CLEAN, FLIGHTS, key)[0].to_pandas(), TRAINING.windows)
        day = pd.to_datetime(clean["flight_date"]).dt.date
        rows = clean[clean["dep_delayed_15"].notna() & (day < HOLDOUT)]
        if len(rows):  # the holdout's month has none
            frames.append(features_frame(rows, lookups))
    return pd.concat(frames, ignore_index=True)


def test_the_version_records_the_reference_profile_of_every_model_input(
    trained_model: Any,
) -> None:
    from headwater.monitoring.reference import ModelReference

    reference = ModelReference.from_dict(trained_model.read_json(layout.PROFILE))
    expected = training_features(trained_model)

    # every model input, categorical ones as categories
    assert list(reference.profile.features) == list(FEATURES)
    assert {n for n, f in reference.profile.features.items() if f.kind == "categorical"} == set(
        CATEGORICAL
    )
    # each numeric input's range is exact over every training row (NaN is not a maximum)
    windowed = {w.name for w in TRAINING.windows}  # filled from Spark's windows, not here
    for name in (n for n in NUMERIC if n not in windowed):
        values = expected[name].astype("float64")
        got = reference.ranges()[name]
        assert (got.minimum, got.maximum) == pytest.approx((values.min(), values.max())), name
    # every training row was profiled (fewer than the sample's bound)
    assert reference.sample["train"] == {"rows": len(expected), "of": len(expected)}
    assert reference.profile.features["carrier"].count == len(expected)


def test_the_reference_profiles_the_holdouts_answers_and_its_calibration(
    trained_model: Any,
) -> None:
    from headwater.monitoring.reference import ModelReference

    reference = ModelReference.from_dict(trained_model.read_json(layout.PROFILE))
    metrics = trained_model.read_json(layout.METRICS)
    answer = get_usecase("flights").serving.answer

    outputs = reference.profile.predictions
    assert set(outputs) == {answer.probability, answer.estimate}
    holdout_rows = metrics["holdout"]["rows"]
    assert outputs[answer.probability].count == holdout_rows == reference.sample["holdout"]["of"]
    assert 0.0 < outputs[answer.probability].minimum < outputs[answer.probability].maximum < 1.0
    # the calibration map follows the holdout's calibration table: under-predicting deciles
    # map to their observed rates
    calibration = reference.calibration
    assert calibration.method == "isotonic"
    assert list(calibration.probabilities) == sorted(calibration.probabilities)
    assert calibration.scores[0] >= 0.0 and calibration.scores[-1] <= 1.0


def test_the_null_holds_each_training_months_drift_against_the_whole_window(
    trained_model: Any,
) -> None:
    from headwater.monitoring.drift import PSI_THRESHOLD
    from headwater.monitoring.reference import ModelReference

    null = ModelReference.from_dict(trained_model.read_json(layout.PROFILE)).null

    # the training months (the holdout, March, is not one of them)
    assert null.periods == ("2013-01", "2013-02")
    assert sum(null.rows.values()) == len(training_features(trained_model))
    values = null.distribution.values
    assert set(values) == set(FEATURES)
    assert all(len(v) == 2 and min(v) >= 0.0 for v in values.values())
    # month_sin takes one value a month: against a two-month window each month drifts hard
    assert min(values["month_sin"]) > PSI_THRESHOLD
    assert null.thresholds.for_feature("month_sin", "psi") == max(values["month_sin"])

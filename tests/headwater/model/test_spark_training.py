"""The generic training job's transforms on small hand-made frames, its input checks and steps.

Every Spark test uses the session's one local SparkSession (``spark`` in tests/conftest.py); a
job that needs a use case runs the test-only one (tests/usecases/minimal). What real runs of a
shipped use case write is tested in that use case's folder (test_spark_training.py).
"""

from __future__ import annotations

import bisect
import math
import random
from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from headwater.core import layout
from headwater.core.layout import CLEAN
from headwater.core.records import HoldoutWindow
from headwater.data.lake import LakeError
from headwater.model.evaluation import calibration_table, exact_metrics, roc_curve
from headwater.model.spark_training import (
    TrainOptions,
    classification_metrics,
    default_holdout,
    exact_histogram,
    feature_stages,
    regression_metrics,
    score_histogram,
    split_by_time,
    train,
)
from tests.conftest import minimal_usecase

# pyspark leaves collect() sockets to the garbage collector: see the note in tests/conftest.py.
MINIMAL = minimal_usecase()  # the test-only use case
pytestmark = pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")
HOLDOUT = date(2013, 3, 1)


# --- split_by_time -----------------------------------------------------------------------------


def test_split_by_time_never_mixes_dates_and_drops_unlabelled_rows(spark: Any) -> None:
    # Given rows on both sides of the cutoff, some without a label (null, or NaN)
    rows = [
        ("a", date(2013, 2, 27), 1.0),
        ("b", date(2013, 2, 28), 0.0),
        ("c", date(2013, 2, 28), None),
        ("d", date(2013, 2, 28), float("nan")),
        ("e", date(2013, 3, 1), 0.0),  # the first holdout day
        ("f", date(2013, 3, 1), None),
        ("g", date(2013, 3, 2), 1.0),
    ]
    frame = spark.createDataFrame(rows, "id string, day date, label double")

    # When it is split at March 1st on the use case's date column
    train_df, holdout_df = split_by_time(frame, "day", HOLDOUT)

    # Then training has only earlier days, the holdout only later ones, both labelled
    train_rows, holdout_rows = train_df.collect(), holdout_df.collect()
    assert sorted(r.id for r in train_rows) == ["a", "b"]
    assert sorted(r.id for r in holdout_rows) == ["e", "g"]
    assert max(r.day for r in train_rows) < min(r.day for r in holdout_rows)


def test_the_default_holdout_is_the_last_sixth_of_the_range() -> None:
    assert default_holdout(date(2013, 1, 1), date(2013, 3, 12)) == date(2013, 3, 1)
    assert default_holdout(date(2013, 1, 1), date(2013, 1, 3)) == date(2013, 1, 2)  # >= 1 day
    # two days: train on the first, hold out the last (never a holdout from the first day)
    assert default_holdout(date(2013, 3, 4), date(2013, 3, 5)) == date(2013, 3, 5)
    # one day cannot be split: the default falls after it (the checks refuse such a range)
    assert default_holdout(date(2013, 3, 5), date(2013, 3, 5)) > date(2013, 3, 5)


def test_only_the_rows_of_the_runs_range_are_kept(spark: Any) -> None:
    from headwater.model.spark_training import in_range

    # Given a month partition's rows, on days before, inside and after a run's range
    days = [date(2013, 3, d) for d in (1, 4, 5, 6, 31)]
    frame = spark.createDataFrame([(d, i) for i, d in enumerate(days)], "day date, id int")

    # When the run covers March 5th only
    kept = in_range(frame, "day", date(2013, 3, 5), date(2013, 3, 5))

    # Then only that day's rows remain; a wider range keeps both of its ends
    assert [r.day for r in kept.collect()] == [date(2013, 3, 5)]
    wider = in_range(frame, "day", date(2013, 3, 4), date(2013, 3, 6)).collect()
    assert sorted(r.day for r in wider) == days[1:4]


def test_a_range_too_short_to_split_fails_before_reading_anything(
    spark: Any, tmp_path: Any
) -> None:
    options = TrainOptions(
        usecase="meters", lake=f"file://{tmp_path}/empty", version="v-short",
        start=date(2013, 3, 5), end=date(2013, 3, 5),
    )  # fmt: skip

    # not the LakeError of the unpublished partition: nothing was read
    with pytest.raises(ValueError, match=r"2013-03-05\.\.2013-03-05 .*too short"):
        train(spark, MINIMAL.USECASE, options)


# --- evaluation --------------------------------------------------------------------------------


def scored(spark: Any, pairs: list[tuple[float, float]]) -> Any:
    """A scored holdout: (probability of a delay, label) pairs."""
    return spark.createDataFrame([(float(p), float(y)) for p, y in pairs], "p double, label double")


SEPARABLE = [(0.9, 1), (0.2, 0), (0.6, 1), (0.4, 0)]


def test_classification_metrics_of_a_perfectly_separable_holdout(spark: Any) -> None:
    metrics = classification_metrics(scored(spark, SEPARABLE))

    assert metrics["rows"] == 4
    assert metrics["auc_roc"] == 1.0
    assert metrics["auc_pr"] == 1.0
    assert metrics["log_loss"] == pytest.approx(
        (-math.log(0.9) - math.log(0.8) - math.log(0.6) - math.log(0.6)) / 4, abs=1e-12
    )
    assert metrics["brier"] == pytest.approx((0.01 + 0.04 + 0.16 + 0.16) / 4, abs=1e-12)
    assert metrics["accuracy_at_0_5"] == 1.0
    assert metrics["positive_rate"] == 0.5


def test_auc_counts_the_pairs_ranked_right(spark: Any) -> None:
    # Delays scored 0.8 and 0.4, on-time rows 0.6 and 0.2: 3 of the 4 pairs are ordered
    metrics = classification_metrics(scored(spark, [(0.8, 1), (0.4, 1), (0.6, 0), (0.2, 0)]))

    assert metrics["auc_roc"] == pytest.approx(0.75, abs=1e-12)
    assert metrics["accuracy_at_0_5"] == 0.5  # 0.8 and 0.2 right, 0.4 and 0.6 wrong


def exact_auc(pairs: list[tuple[float, float]]) -> float:
    """AUC by definition: the share of (delayed, on-time) pairs ranked right, ties counting 1/2."""
    positives = sorted(p for p, y in pairs if y == 1)
    negatives = sorted(p for p, y in pairs if y == 0)
    right = sum(
        bisect.bisect_left(negatives, p)
        + 0.5 * (bisect.bisect_right(negatives, p) - bisect.bisect_left(negatives, p))
        for p in positives
    )
    return right / (len(positives) * len(negatives))


def test_auc_is_exact_and_the_same_however_the_holdout_is_partitioned(spark: Any) -> None:
    # Given a holdout larger than Spark's default 1,000 ROC bins, with many distinct scores
    rng = random.Random(20130301)
    pairs = []
    for _ in range(5000):
        y = float(rng.random() < 0.3)
        pairs.append((round(min(1.0, max(0.0, rng.gauss(0.35 + 0.2 * y, 0.2))), 4), y))
    frame = scored(spark, pairs)

    # When it is evaluated as one partition and as several (two models scored the same holdout)
    one = classification_metrics(frame.coalesce(1))
    many = classification_metrics(frame.repartition(7))

    # Then the AUC is the exact one both times, so a gate comparing two AUCs compares models,
    # not the binning of the evaluation
    assert one["auc_roc"] == pytest.approx(exact_auc(pairs), abs=1e-12)
    assert many["auc_roc"] == pytest.approx(one["auc_roc"], abs=1e-12)
    assert many["auc_pr"] == pytest.approx(one["auc_pr"], abs=1e-12)


def test_log_loss_clips_certain_wrong_answers_instead_of_going_infinite(spark: Any) -> None:
    metrics = classification_metrics(scored(spark, [(1.0, 0), (0.0, 1), (0.0, 0), (1.0, 1)]))

    assert math.isfinite(metrics["log_loss"])
    assert metrics["log_loss"] == pytest.approx(-2 * math.log(1e-15) / 4, rel=1e-3)
    assert metrics["brier"] == 0.5


def test_calibration_from_the_histogram_has_one_row_per_occupied_decile(spark: Any) -> None:
    holdout = scored(spark, [(0.05, 0), (0.15, 0), (0.15, 1), (0.95, 1), (1.0, 1), (0.97, 0)])

    table = calibration_table(score_histogram(holdout))

    assert [row["bin"] for row in table] == [0, 1, 9]  # p = 1.0 belongs to the last decile
    assert [row["count"] for row in table] == [1, 2, 3]
    assert table[1]["mean_probability"] == pytest.approx(0.15)
    assert table[1]["observed_rate"] == 0.5
    assert table[2]["mean_probability"] == pytest.approx((0.95 + 1.0 + 0.97) / 3)
    assert table[2]["observed_rate"] == pytest.approx(2 / 3)
    assert set(table[0]) == {"bin", "count", "mean_probability", "observed_rate"}


def test_the_histogram_is_bounded_and_carries_exact_holdout_means(spark: Any) -> None:
    # Given 5,000 scores with many distinct values
    rng = random.Random(7)
    pairs = [(rng.random(), float(rng.random() < 0.3)) for _ in range(5000)]

    # When the holdout is reduced to 20 bins
    histogram = score_histogram(scored(spark, pairs), bins=20)

    # Then at most 20 rows reach the driver, yet the means are those of every row
    assert len(histogram) <= 20
    assert sum(b.count for b in histogram) == 5000
    brier = sum((p - y) ** 2 for p, y in pairs) / 5000
    assert sum(b.squared_error_sum for b in histogram) / 5000 == pytest.approx(brier, rel=1e-12)


@pytest.mark.parametrize(
    "pairs",
    [SEPARABLE, [(0.8, 1), (0.4, 1), (0.6, 0), (0.2, 0), (1.0, 0), (0.0, 1), (0.5, 1)]],
    ids=["separable", "mixed"],
)
def test_roc_points_run_monotonically_from_the_origin_to_the_top_right(
    spark: Any, pairs: list[tuple[float, float]]
) -> None:
    points = roc_curve(score_histogram(scored(spark, pairs), bins=50))

    assert points[0] == (0.0, 0.0)
    assert points[-1] == (1.0, 1.0)
    for (fpr0, tpr0), (fpr1, tpr1) in zip(points, points[1:], strict=False):
        assert fpr0 <= fpr1 and tpr0 <= tpr1
    if pairs is SEPARABLE:
        assert (0.0, 1.0) in points  # all delays found before the first false alarm


def test_exact_histogram_metrics_equal_sparks_exact_evaluator_on_tied_scores(spark: Any) -> None:
    # Given a holdout whose scores take 30 values (a baseline's cells), with many ties
    rng = random.Random(11)
    pairs = []
    for _ in range(3000):
        y = float(rng.random() < 0.25)
        pairs.append((rng.randrange(30) / 29 * 0.5 + 0.3 * y * rng.random(), y))
    pairs = [(round(p, 2), y) for p, y in pairs]
    frame = scored(spark, pairs)

    # When it is evaluated from one bin per distinct score, and by Spark on every row
    ours = exact_metrics(exact_histogram(frame))
    sparks = classification_metrics(frame)

    # Then both AUCs and every mean agree to rounding
    assert ours["auc_roc"] == pytest.approx(exact_auc(pairs), abs=1e-12)
    for name in ("auc_roc", "auc_pr", "log_loss", "brier", "accuracy_at_0_5", "positive_rate"):
        assert ours[name] == pytest.approx(sparks[name], abs=1e-12), name


def test_exact_histogram_refuses_a_continuous_score(spark: Any, monkeypatch: Any) -> None:
    import headwater.model.spark_training as job

    monkeypatch.setattr(job, "MAX_EXACT_SCORES", 10)
    frame = scored(spark, [(i / 100, float(i % 2)) for i in range(50)])

    with pytest.raises(ValueError, match="more than 10 distinct scores"):
        exact_histogram(frame)


def test_regression_metrics_by_hand(spark: Any) -> None:
    frame = spark.createDataFrame(
        [(10.0, 12.0), (0.0, -2.0), (30.0, 30.0)], "arr_delay double, prediction double"
    )

    metrics = regression_metrics(frame, "arr_delay")

    assert metrics["rmse"] == pytest.approx(math.sqrt((4 + 4 + 0) / 3))
    assert metrics["mae"] == pytest.approx(4 / 3)
    mean = 40 / 3
    total = (10 - mean) ** 2 + mean**2 + (30 - mean) ** 2
    assert metrics["r2"] == pytest.approx(1 - 8 / total)


def test_feature_stages_keep_unseen_categories_and_missing_numbers(spark: Any) -> None:
    # (Spark ML stages need the session's context: the spark fixture, and its marker)
    stages = feature_stages(["meter", "site"], ["congestion"]).getStages()

    indexer, encoder, assembler, scaler = stages
    assert indexer.getHandleInvalid() == "keep"
    assert indexer.getOutputCols() == ["meter_idx", "site_idx"]
    assert (encoder.getHandleInvalid(), encoder.getDropLast()) == ("keep", True)
    assert assembler.getInputCols() == ["meter_ohe", "site_ohe", "congestion"]
    assert assembler.getHandleInvalid() == "keep"
    # scaled, not centred: one-hot vectors stay sparse (both heads fit an intercept)
    assert (scaler.getWithMean(), scaler.getWithStd()) == (False, True)


def test_training_without_published_inputs_says_what_is_missing(spark: Any, tmp_path: Any) -> None:
    options = TrainOptions(
        usecase="meters", lake=f"file://{tmp_path}/empty", version="v-none",
        start=date(2013, 1, 1), end=date(2013, 1, 31),
    )  # fmt: skip

    with pytest.raises(
        LakeError, match=r"clean partition month=2013-01 of meters/readings is not published"
    ):
        train(spark, MINIMAL.USECASE, options)


# --- the comparison with production: same holdout rows, per-day histogram pairs -----------------


def dated_scores(spark: Any, rows: list[tuple[date, float, int]]) -> Any:
    return spark.createDataFrame(
        [(d, float(p), float(y)) for d, p, y in rows], "fl_date date, p double, label double"
    )


def test_the_holdout_window_counts_rows_and_days_with_rows(spark: Any) -> None:
    from headwater.model.spark_training import holdout_window

    frame = dated_scores(spark, [(date(2013, 3, 27), 0.1, 0), (date(2013, 3, 29), 0.2, 1)] * 3)

    window = holdout_window(frame, "fl_date", date(2013, 3, 27), date(2013, 3, 31))

    assert window == HoldoutWindow(date(2013, 3, 27), date(2013, 3, 31), rows=6, days=2)


def test_block_histograms_keep_each_days_rows_apart(spark: Any) -> None:
    from headwater.model.spark_training import block_histograms

    frame = dated_scores(
        spark,
        [(date(2013, 3, 27), 0.1234, 0), (date(2013, 3, 27), 0.9, 1), (date(2013, 3, 31), 0.5, 1)],
    )

    array = block_histograms(frame, "fl_date", date(2013, 3, 27), 5)

    # Then each row is in its day and in the bin comparison.score_bins gives its score
    from headwater.model.comparison import score_bins

    low, high, middle = score_bins(np.array([0.1234, 0.9, 0.5]))
    assert array.shape[:2] == (5, 1000)
    assert array[0, low, :2].tolist() == [1.0, 0.0] and array[0, high, :2].tolist() == [1.0, 1.0]
    assert array[4, middle, :2].tolist() == [1.0, 1.0] and array[1:4].sum() == 0.0
    assert middle == 500 and low < 450 < 550 < high  # log-odds bins, symmetric about 0.5


def test_the_comparison_is_paired_on_the_same_rows_and_centred_on_the_exact_gain(
    spark: Any,
) -> None:
    from headwater.model.spark_training import interval_comparison

    # Given production and a candidate scoring the same 28 days of rows (the gate's minimum
    # holdout), the candidate better
    rng = random.Random(7)
    days = [date(2013, 3, 1 + i) for i in range(28)]
    labels = [(d, int(rng.random() < 0.3)) for d in days for _ in range(60)]
    candidate = dated_scores(
        spark, [(d, min(0.99, 0.3 + 0.4 * y + rng.gauss(0, 0.15) % 0.3), y) for d, y in labels]
    )
    production = dated_scores(
        spark, [(d, min(0.99, 0.3 + 0.1 * y + rng.gauss(0, 0.15) % 0.3), y) for d, y in labels]
    )
    new, old = classification_metrics(candidate), classification_metrics(production)
    window = {"from": "2013-03-01", "to": "2013-03-28"}

    comparison = interval_comparison(
        candidate,
        production,
        "fl_date",
        window,
        {"auc_roc": new["auc_roc"] - old["auc_roc"]},
        0.9,
    )

    auc = comparison["intervals"]["auc_roc"]
    assert comparison["blocks"] == 28 and comparison["confidence"] == 0.9
    assert auc["difference"] == pytest.approx(new["auc_roc"] - old["auc_roc"])
    assert 0 < auc["lower"] < auc["difference"] < auc["upper"]
    assert set(comparison["intervals"]) >= {"auc_roc", "log_loss", "brier"}


def test_a_two_day_holdout_is_compared_without_an_interval_saying_why(spark: Any) -> None:
    from headwater.model.spark_training import interval_comparison

    # Given production and a candidate scoring the same rows of a two-day holdout
    rows = [
        (date(2013, 3, 4 + i % 2), 0.2 + 0.6 * (i % 3 == 0), int(i % 3 == 0)) for i in range(60)
    ]
    candidate, production = dated_scores(spark, rows), dated_scores(spark, rows[::-1])
    window = {"from": "2013-03-04", "to": "2013-03-05"}

    # When they are compared (the audit's run crashed here with an IndexError)
    comparison = interval_comparison(
        candidate, production, "fl_date", window, {"auc_roc": 0.0}, 0.95
    )

    # Then there is no interval, and the comparison says why in plain words
    assert comparison["intervals"] == {} and comparison["blocks"] == 2
    assert comparison["no_interval"] == (
        "2 day(s) of holdout: too few blocks for an interval (at least 5)"
    )


# --- inputs are verified against their manifests before training -------------------------------

READINGS = layout.dataset("meters", "readings")


def publish_blobs(lake: Any, zone: str, dataset: str, key: str, rows: int = 40) -> Any:
    """Publish a small partition whose bytes are incompressible (a flipped byte stays readable)."""
    rng = random.Random(key)
    table = pa.table(
        {
            "row": pa.array(range(rows), pa.int64()),
            "blob": pa.array([rng.randbytes(512) for _ in range(rows)], pa.binary()),
        }
    )
    return lake.publish(zone, dataset, key, [table], schema=table.schema, source="t", run_id="t")


def flip_64_bytes(lake: Any, zone: str, dataset: str, key: str) -> str:
    """Flip 64 bytes in the middle of a published file, as a bad disk or a stray write would."""
    import pyarrow.parquet as pq

    manifest = lake.manifest(zone, dataset, key)
    path = lake.path(zone, dataset, key, manifest.file)
    with open(path, "r+b") as handle:
        data = bytearray(handle.read())
        middle = len(data) // 2
        data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
        handle.seek(0)
        handle.write(data)
    assert pq.read_table(path).num_rows == manifest.rows  # still readable: only a checksum sees it
    return manifest.checksum


def small_lake(tmp_path: Any) -> Any:
    from headwater.data.lake import open_lake

    lake = open_lake(f"file://{tmp_path}/lake")
    for key in ("month=2011-05", "month=2011-06"):
        publish_blobs(lake, CLEAN, READINGS, key)
    return lake


def test_inputs_are_read_with_the_checksums_of_what_was_verified(spark: Any, tmp_path: Any) -> None:
    from headwater.model.spark_training import read_inputs

    lake = small_lake(tmp_path)
    spec = MINIMAL.TRAINING

    clean, references, inputs = read_inputs(
        spark, lake, "meters", spec, date(2011, 5, 1), date(2011, 6, 30), "month"
    )

    assert clean.count() == 80
    assert references == {}
    assert inputs == {
        f"clean/{READINGS}/{key}": lake.manifest(CLEAN, READINGS, key).checksum
        for key in ("month=2011-05", "month=2011-06")
    }


def test_training_refuses_a_corrupted_clean_partition_naming_it_and_both_checksums(
    spark: Any, tmp_path: Any
) -> None:
    # Given a small lake whose June partition had 64 bytes flipped after publishing
    lake = small_lake(tmp_path)
    expected = flip_64_bytes(lake, CLEAN, READINGS, "month=2011-06")
    options = TrainOptions(
        usecase="meters",
        lake=lake.uri,
        version="v-corrupt",
        start=date(2011, 5, 1),
        end=date(2011, 6, 30),
    )

    # When the job trains on it, then it fails before any work, naming the partition and sums
    with pytest.raises(LakeError) as raised:
        train(spark, MINIMAL.USECASE, options)
    message = str(raised.value)
    assert f"clean/{READINGS}/month=2011-06: manifest {expected}, data sha256:" in message
    assert "month=2011-05" not in message  # the intact partition is not blamed
    # the next step is the command that republishes that partition (a plain re-run skips it)
    assert (
        "republish it with `headwater run --usecase meters --start 2011-06-01 --end "
        "2011-06-30 --rerun clean --until clean`, then run again" in message
    )
    assert "re-run the pipeline" not in message
    assert not lake.exists(*layout.model_parts("meters", "v-corrupt"))


def test_a_file_gone_from_under_its_manifest_is_named(spark: Any, tmp_path: Any) -> None:
    from headwater.model.spark_training import verify_inputs

    lake = small_lake(tmp_path)
    manifest = lake.manifest(CLEAN, READINGS, "month=2011-05")
    lake.delete(CLEAN, READINGS, "month=2011-05", manifest.file)
    uri = f"file://{lake.path(CLEAN, READINGS, 'month=2011-05', manifest.file)}"

    with pytest.raises(LakeError, match="training input missing"):
        verify_inputs(spark, {"clean/x/month=2011-05": (uri, manifest.checksum)})


# --- the job as named steps ---------------------------------------------------------------------
def test_each_step_runs_in_order_and_logs_one_progress_record_with_its_seconds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from headwater.core.progress import ProgressEvent
    from headwater.model.spark_training import run_steps

    # Given two steps that note their turn and return figures
    order: list[str] = []

    def first(run: Any) -> dict[str, Any]:
        order.append("first")
        return {"rows": 5}

    def second(run: Any) -> dict[str, Any]:
        order.append("second")
        return {}

    # When they run
    seconds = run_steps(None, (("first", first), ("second", second)))  # type: ignore[arg-type]

    # Then in order, each timed, and the step log holds one record per step with its seconds
    assert order == ["first", "second"] and list(seconds) == ["first", "second"]
    lines = capsys.readouterr().err.splitlines()
    events = [ProgressEvent.from_line(line) for line in lines]
    assert [(e.step, e.seconds, dict(e.fields)) for e in events if e] == [
        ("first", seconds["first"], {"rows": 5}),
        ("second", seconds["second"], {}),
    ]


# --- the profile step: the version's reference for monitoring ------------------------------------


def test_a_bounded_sample_never_collects_more_than_its_limit(spark: Any) -> None:
    from headwater.model.spark_training import bounded_sample

    frame = spark.range(5000).withColumnRenamed("id", "n")

    sample = bounded_sample(frame, 5000, limit=400)
    whole = bounded_sample(frame, 5000, limit=10_000)

    assert 300 < len(sample) <= 400 and sample["n"].is_unique
    # drawn across the rows, not the first ones
    assert sample["n"].max() > 4000
    assert sorted(whole["n"]) == list(range(5000))

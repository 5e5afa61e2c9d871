"""Windows across partitions: lags, leads and rolling aggregates on Spark; regression baselines.

Every test builds a small frame by hand and checks the job's own output against values worked
out by hand (``spark``: the session's one local SparkSession).
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pytest

from headwater.core import layout
from headwater.core.layout import CLEAN
from headwater.core.usecase import RegressionBaseline, Window
from headwater.model.spark_training import (
    LABEL,
    TrainingRun,
    TrainOptions,
    baseline_input,
    baselines,
    read_step,
    verify_step,
    windows_step,
    with_windows,
)

pytestmark = pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")
HOUR = timedelta(hours=1)


def hourly(spark: Any, rows: list[tuple[str, datetime, float | None]]) -> Any:
    return spark.createDataFrame(rows, "key string, at timestamp, value double")


def by_key_and_time(frame: Any, column: str) -> dict[tuple[str, datetime], Any]:
    return {(r.key, r.at): r[column] for r in frame.collect()}


def test_a_lag_by_time_reaches_the_row_exactly_that_long_before_and_is_null_past_the_edge(
    spark: Any,
) -> None:
    # Given hours 22:00..01:00 across a month's end (two partitions) for two keys, one gap
    t0 = datetime(2011, 1, 31, 22)
    rows = [("a", t0 + i * HOUR, float(i)) for i in range(4)]
    rows += [("b", t0 + i * HOUR, 10.0 + i) for i in (0, 2, 3)]  # b has no 23:00
    frame = hourly(spark, rows)
    window = Window("value_1h_before", "value", "lag", "at", keys=("key",), span=HOUR)

    # When the lag is added
    out = by_key_and_time(with_windows(frame, [window]), "value_1h_before")

    # Then each row reads its own key's previous hour, across the month's end
    assert out[("a", t0)] is None  # before the range's first instant: incomplete
    assert out[("a", t0 + HOUR)] == 0.0
    assert out[("a", t0 + 2 * HOUR)] == 1.0  # 00:00 on Feb 1st reads 23:00 on Jan 31st
    assert out[("b", t0 + 2 * HOUR)] is None  # the hour before is missing: not the row before
    assert out[("b", t0 + 3 * HOUR)] == 12.0


def test_a_lead_reads_the_next_period_and_leaves_the_last_unknown(spark: Any) -> None:
    t0 = datetime(2011, 1, 31, 23)
    frame = hourly(spark, [("a", t0 + i * HOUR, float(i)) for i in range(3)])
    by_time = Window("next_hour", "value", "lead", "at", keys=("key",), span=HOUR)
    by_rows = Window("next_row", "value", "lead", "at", keys=("key",), rows=1)

    out = with_windows(frame, [by_time, by_rows])

    assert by_key_and_time(out, "next_hour") == {
        ("a", t0): 1.0,
        ("a", t0 + HOUR): 2.0,
        ("a", t0 + 2 * HOUR): None,
    }
    assert by_key_and_time(out, "next_row") == by_key_and_time(out, "next_hour")


def test_a_rolling_share_counts_the_keys_rows_before_the_row_never_itself_nor_its_instant(
    spark: Any,
) -> None:
    # Given departures at one origin (value: delayed or not) and one at another origin
    t0 = datetime(2013, 1, 1, 6)
    rows = [
        ("EWR", t0, 1.0),
        ("EWR", t0 + timedelta(hours=3), 1.0),
        ("EWR", t0 + timedelta(hours=4), 0.0),
        ("EWR", t0 + timedelta(hours=5), None),  # unknown outcome: not counted
        ("EWR", t0 + timedelta(hours=6), 1.0),
        ("EWR", t0 + timedelta(hours=6), 0.0),  # the same instant: neither sees the other
        ("JFK", t0 + timedelta(hours=6), 1.0),
    ]
    frame = spark.createDataFrame(rows, "key string, at timestamp, value double")
    three_hours = timedelta(hours=3)
    windows = [
        Window("share", "value", "rolling_mean", "at", keys=("key",), span=three_hours),
        Window("total", "value", "rolling_sum", "at", keys=("key",), span=three_hours),
        Window("seen", "value", "rolling_count", "at", keys=("key",), span=three_hours),
    ]

    out = [
        (r.key, r.at, r.value, r.share, r.total, r.seen)
        for r in with_windows(frame, windows).orderBy("key", "at", "value").collect()
    ]

    assert out == [
        # the first three hours of the range: the window starts before the range, so null
        ("EWR", t0, 1.0, None, None, None),
        # [06:00, 09:00): only 06:00 (1)
        ("EWR", t0 + timedelta(hours=3), 1.0, 1.0, 1.0, 1.0),
        # [07:00, 10:00): 09:00 (1)
        ("EWR", t0 + timedelta(hours=4), 0.0, 1.0, 1.0, 1.0),
        # [08:00, 11:00): 09:00 (1), 10:00 (0)
        ("EWR", t0 + timedelta(hours=5), None, 0.5, 1.0, 2.0),
        # [09:00, 12:00): 09:00 (1), 10:00 (0), 11:00 (null, not counted)
        ("EWR", t0 + timedelta(hours=6), 0.0, 0.5, 1.0, 2.0),
        ("EWR", t0 + timedelta(hours=6), 1.0, 0.5, 1.0, 2.0),
        ("JFK", t0 + timedelta(hours=6), 1.0, None, 0.0, 0.0),  # empty window: no mean
    ]


def test_a_gap_closes_the_window_before_the_row(spark: Any) -> None:
    t0 = datetime(2013, 1, 1, 6)
    frame = hourly(spark, [("a", t0 + timedelta(minutes=m), float(m)) for m in (0, 60, 170, 180)])
    window = Window(
        "seen", "value", "rolling_count", "at", span=timedelta(hours=3), gap=timedelta(minutes=15)
    )

    out = by_key_and_time(with_windows(frame, [window]), "seen")

    # 09:00 sees [06:00, 08:45): 06:00 and 07:00, not 08:50 (within the last 15 minutes)
    assert out[("a", t0 + timedelta(minutes=180))] == 2.0


def test_a_rolling_window_over_rows_is_null_until_it_holds_that_many_rows(spark: Any) -> None:
    t0 = datetime(2013, 1, 1)
    frame = hourly(spark, [("a", t0 + i * HOUR, float(i)) for i in range(4)])
    window = Window("mean_2", "value", "rolling_mean", "at", keys=("key",), rows=2)

    out = by_key_and_time(with_windows(frame, [window]), "mean_2")

    assert [out[("a", t0 + i * HOUR)] for i in range(4)] == [None, None, 0.5, 1.5]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"kind": "median"}, "not in"),
        ({"span": HOUR, "rows": 2}, "exactly one of span and rows"),
        ({"span": None}, "exactly one of span and rows"),
        ({"span": -HOUR}, "positive"),
        ({"kind": "lag", "gap": HOUR}, "rolling span only"),
        ({"gap": 2 * HOUR}, "leaves no window"),
    ],
)
def test_a_window_that_cannot_be_computed_is_refused_when_declared(
    arguments: dict[str, Any], message: str
) -> None:
    declared = {"kind": "rolling_mean", "span": HOUR, **arguments}
    with pytest.raises(ValueError, match=message):
        Window("w", "value", order="at", **declared)


# --- regression baselines over clean columns ----------------------------------------------------
def test_a_persistence_baseline_predicts_the_target_with_its_column_and_counts_the_defaults(
    spark: Any, meters_module: Any
) -> None:
    # Given the test-only use case's spec, a training mean of 10 and a holdout whose column is
    # yesterday's value (one unknown)
    spec = dataclasses.replace(
        meters_module.TRAINING,
        baselines=(),
        regression_baselines=(RegressionBaseline("yesterday", "before", "as the day before"),),
    )
    schema = f"{LABEL} double, load_kw double, {baseline_input('before')} double"
    train = spark.createDataFrame([(1.0, 4.0, None), (0.0, 16.0, None)], schema)
    holdout = spark.createDataFrame(
        [(1.0, 12.0, 10.0), (0.0, 6.0, 9.0), (1.0, 20.0, None), (0.0, None, 3.0)], schema
    )

    out = baselines(train, holdout, spec)

    # errors where the target is known: 10-12, 9-6, and 10 (the mean) - 20
    assert out["yesterday"]["rmse"] == pytest.approx(((4 + 9 + 100) / 3) ** 0.5)
    assert out["yesterday"]["mae"] == pytest.approx((2 + 3 + 10) / 3)
    assert out["yesterday"]["rows_defaulted"] == 1


# --- a label not yet known is labelled by a later, longer range ---------------------------------
READINGS = layout.dataset("meters", "readings")


def publish_days(lake: Any, key: str, first: date, days: int) -> None:
    """Publish one clean partition of daily rows: the day and its load (the day's number)."""
    stamps = [datetime(first.year, first.month, first.day) + timedelta(days=i) for i in range(days)]
    table = pa.table(
        {
            "hour_start": pa.array(stamps, pa.timestamp("us", tz="UTC")),
            "date": pa.array([s.date() for s in stamps], pa.date32()),
            "load_kw": pa.array([s.day for s in stamps], pa.int64()),
        }
    )
    lake.publish(CLEAN, READINGS, key, [table], schema=table.schema, source="t", run_id="t")


def windowed_rows(
    spark: Any, lake: Any, spec: Any, start: date, end: date
) -> tuple[dict[date, Any], dict[str, Any]]:
    """The clean rows of ``start..end`` after the job's windows step, and what it counted."""
    usecase = SimpleNamespace(name="meters", training=spec)
    options = TrainOptions(usecase="meters", lake=lake.uri, version="v", start=start, end=end)
    run = TrainingRun(spark, usecase, options, lake, holdout_from=end)  # type: ignore[arg-type]
    for step in (verify_step, read_step, windows_step):
        step(run)
    rows = {r.date: r.tomorrow for r in run.clean.collect()}
    run.clean.unpersist()
    return rows, run.windows


def test_a_lead_label_unknown_at_a_ranges_end_is_labelled_by_a_longer_range_without_republishing(
    spark: Any, tmp_path: Any, meters_module: Any
) -> None:
    from headwater.data.lake import open_lake

    # Given January and February published, and a label that is the next day's load
    lake = open_lake(f"file://{tmp_path}/lake")
    publish_days(lake, "month=2011-01", date(2011, 1, 1), 31)
    publish_days(lake, "month=2011-02", date(2011, 2, 1), 28)
    manifests = {k: lake.manifest(CLEAN, READINGS, k) for k in ("month=2011-01", "month=2011-02")}
    lead = Window("tomorrow", "load_kw", "lead", "hour_start", span=timedelta(days=1))
    spec = dataclasses.replace(meters_module.TRAINING, windows=(lead,))

    # When a training's range ends mid-February, then its last day's label is not yet known
    early, counted = windowed_rows(spark, lake, spec, date(2011, 1, 1), date(2011, 2, 14))
    assert early[date(2011, 1, 31)] == 1  # across the month's end: February 1st's load
    assert early[date(2011, 2, 14)] is None
    assert counted == {"tomorrow": {"kind": "lead", "null_rows": 1}}

    # When a later training runs to the end of February on the same partitions
    later, _ = windowed_rows(spark, lake, spec, date(2011, 1, 1), date(2011, 2, 28))

    # Then that day is labelled, and no clean partition was republished
    assert later[date(2011, 2, 14)] == 15
    assert later[date(2011, 2, 28)] is None
    assert {k: lake.manifest(CLEAN, READINGS, k) for k in manifests} == manifests

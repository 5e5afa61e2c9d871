"""Windows in pandas for monitoring: by hand, and the same values as the training job's Spark."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from headwater.core.usecase import Window
from headwater.monitoring.windows import with_windows

pytestmark = pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")
HOURS = [datetime(2012, 11, 1, h) for h in (0, 1, 2, 4)]  # 03:00 is missing
LAG = Window("before", "rentals", "lag", "hour_start", span=timedelta(hours=1))


def test_a_lag_by_span_takes_the_row_exactly_that_far_back_or_null() -> None:
    # Given four hours, one missing, in no particular order
    clean = pd.DataFrame({"hour_start": HOURS[::-1], "rentals": [40, 30, 20, 10]})
    # When the one-hour lag is added
    out = with_windows(clean, (LAG,))
    # Then each row has the rentals of the hour before, null where there is none
    got = dict(zip(out["hour_start"], out["before"], strict=True))
    assert got[HOURS[1]] == 10 and got[HOURS[2]] == 20
    assert math.isnan(got[HOURS[0]]) and math.isnan(got[HOURS[3]])
    assert list(out["rentals"]) == [40, 30, 20, 10]  # the input's rows and order kept


def test_a_lead_by_rows_and_rolling_windows_by_rows_and_by_span() -> None:
    # Given four hours (03:00 missing)
    clean = pd.DataFrame({"hour_start": HOURS, "rentals": [10, 20, 30, 40]})
    lead = Window("next", "rentals", "lead", "hour_start", rows=1)
    mean_2 = Window("mean_2", "rentals", "rolling_mean", "hour_start", rows=2)
    sum_2h = Window("sum_2h", "rentals", "rolling_sum", "hour_start", span=timedelta(hours=2))
    # When they are added
    out = with_windows(clean, (lead, mean_2, sum_2h))
    # Then the lead reads the next row; the rolling mean the two rows before (null until two
    # rows are behind); the rolling sum the rows in [t - 2 h, t) (null before the first
    # instant + 2 h: the span would start before the range)
    assert list(out["next"])[:3] == [20, 30, 40] and math.isnan(list(out["next"])[3])
    means = list(out["mean_2"])
    assert math.isnan(means[0]) and math.isnan(means[1]) and means[2:] == [15.0, 25.0]
    sums = list(out["sum_2h"])
    assert math.isnan(sums[0]) and math.isnan(sums[1]) and sums[2:] == [30.0, 30.0]


def random_rows(seed: int) -> pd.DataFrame:
    """Departures at random minutes for three keys over two days, some values null."""
    rng = random.Random(seed)
    start = datetime(2013, 10, 31, 0)
    rows = []
    for _ in range(400):
        at = start + timedelta(minutes=rng.randrange(0, 48 * 60, 5))
        value = None if rng.random() < 0.1 else float(rng.random() < 0.3)
        rows.append((rng.choice("abc"), at, value))
    frame = pd.DataFrame(rows, columns=["key", "at", "value"])
    # one row per key and instant: where two share one, Spark's order among them is unspecified
    return frame.drop_duplicates(["key", "at"]).reset_index(drop=True)


WINDOWS = (
    Window("lag_1h", "value", "lag", "at", keys=("key",), span=timedelta(hours=1)),
    Window("lead_2", "value", "lead", "at", keys=("key",), rows=2),
    Window(
        "share_3h",
        "value",
        "rolling_mean",
        "at",
        keys=("key",),
        span=timedelta(hours=3),
        gap=timedelta(minutes=15),
    ),
    Window("sum_5", "value", "rolling_sum", "at", keys=("key",), rows=5),
    Window("count_90m", "value", "rolling_count", "at", span=timedelta(minutes=90)),
)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_same_rows_through_spark_and_pandas_give_the_same_window_values(
    spark: Any, seed: int
) -> None:
    from headwater.model.spark_training import with_windows as spark_windows

    # Given the same rows on both sides
    rows = random_rows(seed)
    frame = spark.createDataFrame(
        [
            (key, at.to_pydatetime(), None if math.isnan(value) else value)
            for key, at, value in rows.itertuples(index=False)
        ],
        "key string, at timestamp, value double",
    )
    names = [w.name for w in WINDOWS]

    # When training's Spark windows and monitoring's pandas windows are added
    collected = spark_windows(frame, WINDOWS).select("key", "at", *names).collect()
    trained = pd.DataFrame([r.asDict() for r in collected]).astype({n: float for n in names})
    monitored = with_windows(rows, WINDOWS)

    # Then every window has the same value on every row (null where Spark has null)
    both = monitored.merge(trained, on=["key", "at"], suffixes=("", "_spark"))
    assert len(both) == len(rows)
    for name in names:
        assert both[name].isna().tolist() == both[f"{name}_spark"].isna().tolist(), name
        assert both[name].dropna().to_numpy() == pytest.approx(
            both[f"{name}_spark"].dropna().to_numpy()
        ), name
        assert both[name].notna().any(), name  # a window that is all null proves nothing

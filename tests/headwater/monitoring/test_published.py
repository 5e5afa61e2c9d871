"""Monitoring inputs read from the lake: the clean rows with the training job's windows."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pandas as pd

from headwater.core.usecase import Window
from headwater.monitoring.published import with_windows

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


def test_a_lead_by_rows_and_a_rolling_window_not_computed_here() -> None:
    clean = pd.DataFrame({"hour_start": HOURS, "rentals": [10, 20, 30, 40]})
    lead = Window("next", "rentals", "lead", "hour_start", rows=1)
    rolling = Window("mean", "rentals", "rolling_mean", "hour_start", rows=2)
    out = with_windows(clean, (lead, rolling))
    assert list(out["next"])[:3] == [20, 30, 40] and math.isnan(list(out["next"])[3])
    assert out["mean"].isna().all()

"""A use case's windows over clean rows in pandas: the same values as the training job's Spark.

Monitoring compares a partition with the model's reference through the model's own features,
so a window feature must be computed as training computed it. Both derive from one definition,
the frame of each :class:`~headwater.core.usecase.Window`
(:func:`headwater.model.spark_training.window_frame`): here by sorting each key's rows by time
and reading the frame's bounds with ``searchsorted`` over running sums, there with Spark window
functions. A test holds the two to the same values on the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from headwater.core.usecase import Window
from headwater.model.spark_training import WindowFrame, window_frame


def _micros(times: pd.Series) -> np.ndarray:
    """Microseconds of each timestamp (naive: as written; aware: UTC), as Spark's unix_micros."""
    stamps = pd.to_datetime(times)
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    return stamps.astype("datetime64[us]").astype("int64").to_numpy()


def _frame_values(at: np.ndarray, values: np.ndarray, rows: WindowFrame, first: int) -> np.ndarray:
    """One key's window column: ``at`` sorted ascending, ``values`` in that order (NaN: null).

    A lag or a lead returns the position (in this order) of the row it reads, -1 for none.
    """
    count = len(at)
    if rows.by_time:
        lo = np.searchsorted(at, at + rows.start, side="left")
        hi = np.searchsorted(at, at + rows.end, side="right")
    else:
        position = np.arange(count)
        lo, hi = position + rows.start, position + rows.end + 1
    if not rows.rolling:
        # lag / lead: the position of the one row the frame names (by time: the first at that
        # instant), -1 where there is none
        inside = (lo >= 0) & (lo < count) & (hi > lo) & (hi <= count)
        if rows.by_time:
            inside &= np.take(at, np.clip(lo, 0, count - 1)) == at + rows.start
        return np.where(inside, lo, -1)
    present = ~np.isnan(values)
    sums = np.concatenate([[0.0], np.cumsum(np.where(present, values, 0.0))])
    counts = np.concatenate([[0], np.cumsum(present)])
    lo, hi = np.clip(lo, 0, count), np.clip(hi, 0, count)
    total, seen = sums[hi] - sums[lo], counts[hi] - counts[lo]
    if rows.aggregate == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(seen > 0, total / np.where(seen > 0, seen, 1), np.nan)
    else:
        out = (total if rows.aggregate == "sum" else seen).astype(float)
    complete = (at + rows.start >= first) if rows.by_time else (np.arange(count) + rows.start >= 0)
    return np.where(complete, out, np.nan)


def with_windows(clean: pd.DataFrame, windows: Sequence[Window]) -> pd.DataFrame:
    """The clean rows with each window's column, over the rows given (not modified).

    The rows given are the whole range as far as the windows see it: a lag or a rolling span
    reaching before the first instant is null, as in training (pass the partitions either
    side to monitor one).
    """
    out = clean.copy()
    for w in windows:
        if not len(out):
            out[w.name] = pd.Series(dtype=float)
            continue
        rows = window_frame(w)
        at = _micros(out[w.order])
        first = int(at.min())
        source = out[w.column]
        values = np.zeros(len(out))
        if rows.rolling:
            values = pd.to_numeric(source, errors="raise").to_numpy(dtype=float, na_value=np.nan)
        column = np.full(len(out), np.nan)
        found = np.full(len(out), -1)  # lag / lead: the row read, by position in ``out``
        keys = list(w.keys)
        groups = out.groupby(keys, sort=False).indices.values() if keys else [np.arange(len(out))]
        for index in groups:
            # stable: rows at the same instant keep their order (Spark's is unspecified there)
            order = index[np.argsort(at[index], kind="stable")]
            got = _frame_values(at[order], values[order], rows, first)
            if rows.rolling:
                column[order] = got
            else:
                found[order] = np.where(got >= 0, order[np.clip(got, 0, None)], -1)
        if rows.rolling:
            out[w.name] = column
        else:
            # the value as the column holds it (Spark keeps the column's type), null where none
            out[w.name] = source.iloc[np.clip(found, 0, None)].to_numpy()
            out[w.name] = out[w.name].where(pd.Series(found >= 0, index=out.index))
    return out

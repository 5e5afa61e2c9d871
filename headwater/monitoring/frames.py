"""Profiles from pandas data frames of clean data: the one module here that knows pandas.

The training job calls :func:`profile_frame` on a bounded sample collected from Spark
(``DataFrame.sample(...).toPandas()``, :data:`SAMPLE_ROWS` rows at most): deciles from
100,000 rows are within a fraction of a percent of the full column's, and a Spark pass over
all rows supplies what a sample gets wrong, the exact minimum and maximum (pass them as
``ranges``; :func:`spark_range_expressions` names them). The API never imports this module.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np
import pandas as pd

from headwater.monitoring.profile import NUMERIC_BINS, TOP_K, Profile, Range, build_profile

#: Rows of the training data to collect from Spark for the profile.
SAMPLE_ROWS = 100_000


def categorical_columns(frame: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """The columns of ``frame`` (among ``columns``) a profile treats as categories by dtype."""
    return [
        name
        for name in columns
        if not pd.api.types.is_numeric_dtype(frame[name]) or pd.api.types.is_bool_dtype(frame[name])
    ]


def column_values(series: pd.Series, numeric: bool) -> np.ndarray | list[object]:
    """A column's values as the profile functions take them: floats (NaN), or objects (None)."""
    if numeric:
        return pd.to_numeric(series, errors="raise").to_numpy(dtype=float, na_value=np.nan)
    # pandas' NA and NaT are not None: make every missing value None before counting.
    missing = series.isna()
    return [None if gone else value for value, gone in zip(series, missing, strict=True)]


def profile_frame(
    frame: pd.DataFrame,
    features: Sequence[str],
    *,
    categorical: Collection[str] | None = None,
    predictions: Sequence[str] = (),
    ranges: Mapping[str, Range] | None = None,
    bins: int = NUMERIC_BINS,
    top_k: int = TOP_K,
) -> Profile:
    """The reference profile of ``features`` (and ``predictions``) columns of a data frame.

    Args:
        frame: clean training rows (or a sample of them), not modified.
        features: the model's inputs, by column name.
        categorical: the inputs to profile as categories (default: by dtype, see
            :func:`categorical_columns`).
        predictions: columns holding the model's outputs on these rows.
        ranges: exact training ranges of numeric inputs when ``frame`` is a sample.
        bins, top_k: as :func:`headwater.monitoring.profile.build_profile`.
    """
    missing = [c for c in (*features, *predictions) if c not in frame.columns]
    if missing:
        raise KeyError(f"columns not in the frame: {', '.join(missing)}")
    kinds = set(categorical_columns(frame, features) if categorical is None else categorical)
    return build_profile(
        {name: column_values(frame[name], name not in kinds) for name in features},
        categorical=kinds,
        predictions={name: column_values(frame[name], True) for name in predictions},
        bins=bins,
        top_k=top_k,
        ranges=ranges,
    )


def spark_range_expressions(columns: Sequence[str]) -> list[tuple[str, str, str]]:
    """``(column, min alias, max alias)`` for the exact-range aggregation the Spark job runs.

    The job evaluates ``F.min(column).alias(min alias), F.max(column).alias(max alias)``
    for each and passes the row to :func:`ranges_from_row`.
    """
    return [(name, f"{name}__min", f"{name}__max") for name in columns]


def ranges_from_row(row: Mapping[str, object], columns: Sequence[str]) -> dict[str, Range]:
    """The exact training ranges from the aggregated row of :func:`spark_range_expressions`."""
    out = {}
    for name, low, high in spark_range_expressions(columns):
        if row.get(low) is not None and row.get(high) is not None:
            out[name] = Range(float(row[low]), float(row[high]))  # type: ignore[arg-type]
    return out

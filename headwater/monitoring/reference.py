"""A model version's reference for monitoring, built at training: ``profile.json``.

The training job (its ``profile`` step, :func:`headwater.model.spark_training.profile_step`)
does the Spark work, the exact training range of each numeric input and bounded samples;
this module turns what it collected into one typed record, :class:`ModelReference`:

- the reference :class:`~headwater.monitoring.profile.Profile` of every **model input** (the
  features as the model sees them: what the API derives per request and scores, and what
  prediction capture records) over the training rows, with their exact ranges, and of the
  **predictions** (the holdout's probabilities and estimates, under the answer's keys);
- the holdout's **calibration map** (:func:`headwater.monitoring.estimate.calibration_from_bins`);
- the **null**: the drift of each training month against the whole-window reference
  (:func:`headwater.monitoring.drift.null_distribution`), so that thresholds can be set from
  quiet periods (:meth:`NullDistribution.thresholds`, stored beside it).

Why the model inputs and not the clean columns they are derived from: the API has the
features in hand for every request (an out-of-range check per answer costs a few
comparisons), the capture records them, so training-serving skew compares like with like,
and a new clean partition is compared after the version's own ``features_frame`` (with its
lookups), which is the transform the model will see it through. Clean columns such as a
date or a tail number would drift every period by construction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from headwater.model.evaluation import ScoreBin
from headwater.monitoring.drift import NullDistribution, Thresholds, null_distribution
from headwater.monitoring.estimate import CalibrationMap, calibration_from_bins
from headwater.monitoring.frames import (
    SAMPLE_ROWS,
    column_values,
    profile_frame,
    ranges_from_row,
    spark_range_expressions,
)
from headwater.monitoring.profile import Profile, Range, profile_numeric

# The training job's one entry into this package (the contract's declared exception):
# what its profile step needs, from here.
__all__ = [
    "SAMPLE_ROWS",
    "ModelReference",
    "MonthlyNull",
    "model_reference",
    "monthly_null",
    "month_of",
    "ranges_from_row",
    "spark_range_expressions",
]

#: The version of profile.json's layout (bumped when a reader must tell layouts apart).
FORMAT = 1
#: What each training period is compared with to build the null.
NULL_REFERENCE = "whole training window"


def month_of(dates: pd.Series) -> pd.Series:
    """The training month (``YYYY-MM``) of each date: the period the null is measured on."""
    return pd.to_datetime(dates).dt.strftime("%Y-%m")


@dataclass(frozen=True)
class MonthlyNull:
    """The drift of each training month against the whole window's reference, per input."""

    #: The months, in order (each input's values follow this order).
    periods: tuple[str, ...]
    #: Sampled rows of each month (the drift of a month of few rows is noisier).
    rows: Mapping[str, int]
    distribution: NullDistribution
    #: Per input, the largest quiet drift, never below the rule-of-thumb threshold.
    thresholds: Thresholds
    reference: str = NULL_REFERENCE

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "reference": self.reference,
            "periods": list(self.periods),
            "rows": dict(self.rows),
            **self.distribution.to_dict(),
            "thresholds": self.thresholds.to_dict(),
        }

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> MonthlyNull:
        """Read a null written by :meth:`to_dict`."""
        return cls(
            periods=tuple(str(p) for p in body["periods"]),
            rows={str(k): int(v) for k, v in body["rows"].items()},
            distribution=NullDistribution.from_dict(body),
            thresholds=Thresholds.from_dict(body["thresholds"]),
            reference=str(body.get("reference", NULL_REFERENCE)),
        )


@dataclass(frozen=True)
class ModelReference:
    """What ``profile.json`` holds: the reference profile, calibration map and monthly null."""

    profile: Profile
    calibration: CalibrationMap
    null: MonthlyNull
    #: Rows profiled and rows they were sampled from, per side (``train``, ``holdout``).
    sample: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    format: int = FORMAT

    def ranges(self) -> dict[str, Range]:
        """The training range of each numeric model input (for ``out_of_range`` answers)."""
        return self.profile.ranges()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (``profile.json``)."""
        return {
            "format": self.format,
            "profile": self.profile.to_dict(),
            "calibration": self.calibration.to_dict(),
            "null": self.null.to_dict(),
            "sample": {side: dict(counts) for side, counts in self.sample.items()},
        }

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> ModelReference:
        """Read a reference written by :meth:`to_dict`."""
        return cls(
            profile=Profile.from_dict(body["profile"]),
            calibration=CalibrationMap.from_dict(body["calibration"]),
            null=MonthlyNull.from_dict(body["null"]),
            sample={k: dict(v) for k, v in (body.get("sample") or {}).items()},
            format=int(body.get("format", FORMAT)),
        )


def monthly_null(
    reference: Profile, sample: pd.DataFrame, date_column: str, categorical: Iterable[str]
) -> MonthlyNull:
    """The drift of each month of ``sample`` against ``reference``: the null of quiet months."""
    kinds, months = set(categorical), month_of(sample[date_column])
    periods = tuple(sorted(months.dropna().unique()))
    rows: dict[str, int] = {}
    quiet = []
    for period in periods:
        rows_of = sample[months == period]
        rows[period] = len(rows_of)
        columns = {
            name: column_values(rows_of[name], name not in kinds) for name in reference.features
        }
        quiet.append((reference, columns))
    distribution = null_distribution(quiet)
    return MonthlyNull(
        periods=periods,
        rows=rows,
        distribution=distribution,
        thresholds=distribution.thresholds(),
    )


def model_reference(
    train: pd.DataFrame,
    predictions: pd.DataFrame,
    histogram: Sequence[ScoreBin],
    *,
    features: Sequence[str],
    categorical: Iterable[str],
    date_column: str,
    ranges: Mapping[str, Range],
    rows: Mapping[str, int] | None = None,
) -> ModelReference:
    """The reference of a model version from what the training job collected.

    Args:
        train: a sample of the training rows: the model inputs and the date column.
        predictions: a sample of the holdout's predictions, one column per served output
            (named as the answer names it).
        histogram: the holdout's score histogram (the evaluation's bins).
        features: the model inputs, by name.
        categorical: the inputs profiled as categories (the model's categorical features).
        date_column: the date of each training row (its month is its period in the null).
        ranges: the exact training range of each numeric input, over every training row.
        rows: rows the samples were drawn from (``train``, ``holdout``), for the record.
    """
    kinds = list(categorical)
    inputs = profile_frame(train, features, categorical=kinds, ranges=ranges)
    outputs = {
        name: profile_numeric(column_values(predictions[name], True)) for name in predictions
    }
    profile = Profile(features=inputs.features, predictions=outputs)
    drawn = {"train": len(train), "holdout": len(predictions)}
    return ModelReference(
        profile=profile,
        calibration=calibration_from_bins(histogram),
        null=monthly_null(inputs, train, date_column, kinds),
        sample={
            side: {"rows": drawn[side], "of": int((rows or {}).get(side, drawn[side]))}
            for side in drawn
        },
    )

"""Realized live metrics of a served model once outcomes arrive, with day-block intervals.

A classifier's live metrics come from its served probabilities and the outcomes that
arrived for them; a regressor's from its estimates and the realized values. Metric names,
directions and the classifier metrics themselves are the training evaluation's
(:mod:`headwater.model.evaluation`): the live AUC is computed exactly as the holdout's, so
the two can stand side by side. Predictions whose outcome has not arrived (a missing
label: ``None`` or NaN) are counted in :attr:`LiveMetrics.without_outcome`, never dropped
silently.

Intervals: a **day-block bootstrap**. Rows of one day share weather and traffic, so days,
not rows, are resampled (with replacement); each day is reduced once to an additive summary
(a score histogram of at most :data:`BOOTSTRAP_BINS` bins, or five sums for a regression),
a replicate sums the drawn days' summaries, and the interval is the percentile interval of
the replicates, shifted onto the exact point value. Fewer than :data:`MIN_DAYS` days give
no interval, and say so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from headwater.model.evaluation import (
    EPSILON,
    HEADLINE_METRICS,
    METRIC_NAMES,
    SMALLER_IS_BETTER,
    ScoreBin,
    auc_pr,
    auc_roc,
    calibration_table,
    exact_metrics,
)
from headwater.monitoring.profile import numeric_values

#: Fewer days than this get no interval: resampling 2 days has 3 outcomes, not a distribution.
MIN_DAYS = 5
#: Bootstrap replicates.
REPLICATES = 1000
#: The replicates' seed: the same pairs always give the same interval.
SEED = 20130101
#: Two-sided confidence of the intervals.
CONFIDENCE = 0.95
#: Score bins of a day's histogram in the bootstrap (exact scores when there are fewer).
BOOTSTRAP_BINS = 200
#: The classifier metrics with an interval (the exact ones come from the evaluation).
CLASSIFIER_METRICS = ("auc_roc", "auc_pr", "log_loss", "brier", "accuracy_at_0_5")
#: The regression metrics.
REGRESSION_METRICS = ("rmse", "mae", "r2")
METHOD = "day block bootstrap"
# The sums a day's score histogram carries per bin (as ScoreBin's).
_FIELDS = ("count", "positives", "score_sum", "log_loss_sum", "squared_error_sum", "correct_sum")


class TooFewDays(ValueError):
    """Too few days of pairs for a block bootstrap interval."""


@dataclass(frozen=True)
class Interval:
    """A bootstrap confidence interval of one metric."""

    lower: float
    upper: float
    confidence: float
    blocks: int
    replicates: int
    method: str = METHOD

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> Interval:
        """Read an interval written by :meth:`to_dict`."""
        return cls(**{k: body[k] for k in cls.__dataclass_fields__ if k in body})


def day_block_bootstrap(
    values_by_day: Mapping[str, np.ndarray],
    statistic: Callable[[np.ndarray], Mapping[str, float]],
    confidence: float = CONFIDENCE,
    seed: int = SEED,
    *,
    replicates: int = REPLICATES,
    points: Mapping[str, float] | None = None,
) -> dict[str, Interval]:
    """Percentile intervals of each value of ``statistic``, resampling days with replacement.

    Args:
        values_by_day: day -> that day's additive summary (arrays of one shape: histograms,
            sums); a replicate is the sum of the drawn days' summaries.
        statistic: summed summary -> metric name -> value (NaN or inf: replicate left out).
        confidence: two-sided level (0.95: the 2.5% and 97.5% percentiles).
        seed: the generator's seed (same input, same interval).
        replicates: resamples of the days.
        points: exact point values; each interval is shifted by ``point - statistic(all
            days)`` so that it is centred where the exact figure is (binning moves it a hair).

    Raises:
        TooFewDays: fewer than :data:`MIN_DAYS` days.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), not {confidence}")
    days = len(values_by_day)
    if days < MIN_DAYS:
        raise TooFewDays(
            f"{days} day(s) of outcomes: too few for an interval (at least {MIN_DAYS})"
        )
    stacked = np.stack([np.asarray(v, dtype=float) for v in values_by_day.values()])
    flat = stacked.reshape(days, -1)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(days, np.full(days, 1.0 / days), size=replicates).astype(float)
    draws: dict[str, list[float]] = {}
    for row in weights:
        for name, value in statistic((row @ flat).reshape(stacked.shape[1:])).items():
            draws.setdefault(name, []).append(value)
    whole = statistic(stacked.sum(0))
    alpha = (1.0 - confidence) / 2.0
    out = {}
    for name, values in draws.items():
        finite = np.asarray(values, dtype=float)
        finite = finite[np.isfinite(finite)]
        if not finite.size or not math.isfinite(whole.get(name, math.nan)):
            continue
        shift = (points or {}).get(name, whole[name]) - whole[name]
        low, high = np.quantile(finite, [alpha, 1.0 - alpha])
        out[name] = Interval(
            lower=float(low + shift),
            upper=float(high + shift),
            confidence=confidence,
            blocks=days,
            replicates=replicates,
        )
    return out


@dataclass(frozen=True)
class LiveMetrics:
    """The realized metrics of one model version over one period of served predictions."""

    #: ``classification`` or ``regression``.
    kind: str
    #: Metric name (:data:`headwater.model.evaluation.METRIC_NAMES`) -> exact value.
    metrics: Mapping[str, float]
    #: Metric name -> its day-block interval (empty when there are too few days).
    intervals: Mapping[str, Interval] = field(default_factory=dict)
    #: Served predictions considered, with and without an arrived outcome.
    predictions: int = 0
    with_outcome: int = 0
    without_outcome: int = 0
    #: Days with at least one outcome.
    days: int = 0
    #: Classification: predicted mean against observed rate per score decile.
    calibration: tuple[Mapping[str, float], ...] = ()
    #: Why a metric or interval is missing ("" when nothing is).
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "kind": self.kind,
            "metrics": dict(self.metrics),
            "intervals": {k: v.to_dict() for k, v in self.intervals.items()},
            "predictions": self.predictions,
            "with_outcome": self.with_outcome,
            "without_outcome": self.without_outcome,
            "days": self.days,
            "calibration": [dict(row) for row in self.calibration],
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> LiveMetrics:
        """Read metrics written by :meth:`to_dict`."""
        return cls(
            kind=str(body["kind"]),
            metrics=dict(body["metrics"]),
            intervals={k: Interval.from_dict(v) for k, v in (body.get("intervals") or {}).items()},
            predictions=int(body.get("predictions", 0)),
            with_outcome=int(body.get("with_outcome", 0)),
            without_outcome=int(body.get("without_outcome", 0)),
            days=int(body.get("days", 0)),
            calibration=tuple(dict(r) for r in body.get("calibration") or ()),
            note=str(body.get("note", "")),
        )


def score_bins(scores: np.ndarray, positives: np.ndarray) -> list[ScoreBin]:
    """One exact :class:`ScoreBin` per distinct score; ``positives`` may be expected (0..1)."""
    distinct, inverse = np.unique(scores, return_inverse=True)
    counts = np.bincount(inverse, minlength=distinct.size)
    hits = np.bincount(inverse, weights=positives, minlength=distinct.size)
    # Plain floats (tolist): numpy scalars make the evaluation's Python loops several times slower.
    return [
        ScoreBin.exact(s, float(n), p)
        for s, n, p in zip(distinct.tolist(), counts.tolist(), hits.tolist(), strict=True)
    ]


def _days(days: Iterable[Any] | None, size: int) -> np.ndarray | None:
    if days is None:
        return None
    out = np.asarray([str(d) for d in days], dtype=object)
    if out.size != size:
        raise ValueError(f"{out.size} days for {size} predictions")
    return out


def _pairs(
    predictions: Iterable[Any] | np.ndarray, outcomes: Iterable[Any] | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    served, actual = numeric_values(predictions), numeric_values(outcomes)
    if served.size != actual.size:
        raise ValueError(f"{served.size} predictions but {actual.size} outcomes")
    if np.isnan(served).any():
        raise ValueError("a served prediction is missing: every served row has one")
    return served, actual, ~np.isnan(actual)


def _histogram_by_day(
    scores: np.ndarray, labels: np.ndarray, days: np.ndarray
) -> dict[str, np.ndarray]:
    """Per day, a score histogram ``(bins, fields)`` on one grid shared by all days."""
    distinct, inverse = np.unique(scores, return_inverse=True)
    if distinct.size > BOOTSTRAP_BINS:
        bins = BOOTSTRAP_BINS
        inverse = np.minimum(np.floor(scores * bins), bins - 1).astype(int)
    else:
        bins = distinct.size
    clipped = np.clip(scores, EPSILON, 1.0 - EPSILON)
    per_row = np.column_stack(
        [
            np.ones_like(scores),
            labels,
            scores,
            -(labels * np.log(clipped) + (1.0 - labels) * np.log(1.0 - clipped)),
            (scores - labels) ** 2,
            np.where(scores > 0.5, labels, 1.0 - labels),
        ]
    )
    out = {}
    for day in sorted(set(days)):
        rows = days == day
        histogram = np.zeros((bins, len(_FIELDS)))
        np.add.at(histogram, inverse[rows], per_row[rows])
        out[day] = histogram
    return out


def _classifier_statistic(histogram: np.ndarray) -> dict[str, float]:
    """The classifier metrics of a summed histogram: the curves by the evaluation's functions."""
    occupied = histogram[histogram[:, 0] > 0]
    rows, positives = occupied[:, 0].sum(), occupied[:, 1].sum()
    if not 0 < positives < rows:
        return {m: math.nan for m in CLASSIFIER_METRICS}
    # A bin's mean score orders the bins as their score ranges do. Plain floats (tolist):
    # the curves loop in Python, where numpy scalars are several times slower.
    bins = [ScoreBin(row[2] / row[0], *row) for row in occupied.tolist()]
    means = occupied.sum(0) / rows  # the exact means, as evaluation.summary takes them
    return {
        "auc_roc": auc_roc(bins),
        "auc_pr": auc_pr(bins),
        "log_loss": float(means[3]),
        "brier": float(means[4]),
        "accuracy_at_0_5": float(means[5]),
    }


def classification_metrics(
    probabilities: Iterable[Any] | np.ndarray,
    labels: Iterable[Any] | np.ndarray,
    days: Iterable[Any] | None = None,
    *,
    confidence: float = CONFIDENCE,
    replicates: int = REPLICATES,
    seed: int = SEED,
) -> LiveMetrics:
    """Realized AUC, AUC-PR, log loss, Brier, accuracy and calibration of served probabilities.

    Args:
        probabilities: the served probability of each prediction.
        labels: its outcome, 0 or 1, or ``None``/NaN while it has not arrived.
        days: the day each prediction was served (any key), for the interval; none: no interval.
        confidence, replicates, seed: as :func:`day_block_bootstrap`.
    """
    served, actual, known = _pairs(probabilities, labels)
    day_keys = _days(days, served.size)
    scores, outcome = served[known], actual[known]
    if not np.isin(outcome, (0.0, 1.0)).all():
        raise ValueError("classification outcomes must be 0 or 1 (or missing)")
    base = {
        "kind": "classification",
        "predictions": int(served.size),
        "with_outcome": int(known.sum()),
        "without_outcome": int((~known).sum()),
    }
    if not scores.size:
        return LiveMetrics(metrics={}, note="no outcome has arrived yet", **base)
    bins = score_bins(scores, outcome)
    metrics = exact_metrics(bins)
    notes = []
    if not 0 < outcome.sum() < outcome.size:
        # One class only: the ranking metrics are undefined (the curves divide by zero).
        metrics = {k: v for k, v in metrics.items() if k not in ("auc_roc", "auc_pr")}
        notes.append("outcomes of one class only: no AUC")
    intervals: dict[str, Interval] = {}
    day_count = 0
    if day_keys is None:
        notes.append("no serving days given: no interval")
    else:
        by_day = _histogram_by_day(scores, outcome, day_keys[known])
        day_count = len(by_day)
        try:
            intervals = day_block_bootstrap(
                by_day,
                _classifier_statistic,
                confidence,
                seed,
                replicates=replicates,
                points={k: v for k, v in metrics.items() if k in CLASSIFIER_METRICS},
            )
        except TooFewDays as error:
            notes.append(str(error))
    return LiveMetrics(
        metrics=metrics,
        intervals={k: v for k, v in intervals.items() if k in metrics},
        days=day_count,
        calibration=tuple(calibration_table(bins)),
        note="; ".join(notes),
        **base,
    )


def _regression_statistic(sums: np.ndarray) -> dict[str, float]:
    n, sse, sae, total, squares = sums
    if n <= 0:
        return {m: math.nan for m in REGRESSION_METRICS}
    spread = squares - total * total / n
    return {
        "rmse": math.sqrt(sse / n),
        "mae": sae / n,
        "r2": 1.0 - sse / spread if spread > 0 else math.nan,
    }


def regression_metrics(
    estimates: Iterable[Any] | np.ndarray,
    outcomes: Iterable[Any] | np.ndarray,
    days: Iterable[Any] | None = None,
    *,
    confidence: float = CONFIDENCE,
    replicates: int = REPLICATES,
    seed: int = SEED,
) -> LiveMetrics:
    """Realized RMSE, MAE and R² of served estimates against the outcomes that arrived."""
    served, actual, known = _pairs(estimates, outcomes)
    day_keys = _days(days, served.size)
    base = {
        "kind": "regression",
        "predictions": int(served.size),
        "with_outcome": int(known.sum()),
        "without_outcome": int((~known).sum()),
    }
    if not known.any():
        return LiveMetrics(metrics={}, note="no outcome has arrived yet", **base)
    error = served[known] - actual[known]
    y = actual[known]
    per_row = np.column_stack([np.ones_like(y), error**2, np.abs(error), y, y**2])
    metrics = {k: v for k, v in _regression_statistic(per_row.sum(0)).items() if math.isfinite(v)}
    metrics["rows"] = int(y.size)
    notes, intervals, day_count = [], {}, 0
    if day_keys is None:
        notes.append("no serving days given: no interval")
    else:
        keys = day_keys[known]
        by_day = {day: per_row[keys == day].sum(0) for day in sorted(set(keys))}
        day_count = len(by_day)
        try:
            intervals = day_block_bootstrap(
                by_day, _regression_statistic, confidence, seed, replicates=replicates
            )
        except TooFewDays as error_:
            notes.append(str(error_))
    return LiveMetrics(
        metrics=metrics,
        intervals={k: v for k, v in intervals.items() if k in metrics},
        days=day_count,
        note="; ".join(notes),
        **base,
    )


@dataclass(frozen=True)
class AgainstHoldout:
    """One live metric beside the holdout figure recorded at training."""

    metric: str
    live: float
    holdout: float
    #: The live interval, when there is one.
    lower: float | None = None
    upper: float | None = None

    @property
    def difference(self) -> float:
        """Live minus holdout, signed so that positive is better."""
        gap = self.live - self.holdout
        return -gap if self.metric in SMALLER_IS_BETTER else gap

    @property
    def significantly_worse(self) -> bool:
        """Whether the whole live interval is worse than the holdout figure (no interval: no)."""
        if self.lower is None or self.upper is None:
            return False
        if self.metric in SMALLER_IS_BETTER:
            return self.lower > self.holdout
        return self.upper < self.holdout

    def text(self) -> str:
        """One line as people read it: ``AUC 0.652 [0.630, 0.671] vs holdout 0.711``."""
        name = METRIC_NAMES.get(self.metric, self.metric)
        band = f" [{self.lower:.3f}, {self.upper:.3f}]" if self.lower is not None else ""
        flag = ", significantly worse" if self.significantly_worse else ""
        return f"{name} {self.live:.3f}{band} vs holdout {self.holdout:.3f}{flag}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> AgainstHoldout:
        """Read a comparison written by :meth:`to_dict`."""
        return cls(**{k: body[k] for k in cls.__dataclass_fields__ if k in body})


def against_holdout(
    live: LiveMetrics, holdout: Mapping[str, float], metrics: Sequence[str] | None = None
) -> tuple[AgainstHoldout, ...]:
    """Each live metric that has a holdout figure, beside it (default: the headline metrics)."""
    names = metrics if metrics is not None else HEADLINE_METRICS
    out = []
    for name in names:
        if name not in live.metrics or not isinstance(holdout.get(name), int | float):
            continue
        interval = live.intervals.get(name)
        out.append(
            AgainstHoldout(
                metric=name,
                live=float(live.metrics[name]),
                holdout=float(holdout[name]),
                lower=interval.lower if interval else None,
                upper=interval.upper if interval else None,
            )
        )
    return tuple(out)

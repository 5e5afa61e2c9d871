"""Live classification performance estimated from served probabilities, before labels arrive.

Confidence-based performance estimation (the idea of NannyML's CBPE): if the served
probabilities are calibrated, a prediction served with probability ``p`` is a positive with
probability ``p``, so every count of a confusion matrix has an expectation that needs no
label: at any threshold ``t``, E[TP] = sum of ``p`` over the rows scored above ``t``, E[FP] =
sum of ``1 - p`` over them, and so on. Here each distinct served score becomes a
:class:`headwater.model.evaluation.ScoreBin` whose positives are the *expected* positives,
and the evaluation's own functions compute from it the expected ROC and PR curves (hence
AUC and AUC-PR, as ratios of expectations), the expected log loss and Brier score, and the
expected accuracy at 0.5; :func:`estimate_performance` adds accuracy, precision and recall at
the model's decision threshold.

Served probabilities are rarely calibrated (a shipped use case's holdout under-predicts in every
decile), so the estimate first maps each score through the holdout's **calibration map**:
an isotonic (monotone) fit of the holdout's observed rates on its scores
(:func:`calibration_from_bins` reads the holdout histogram the training job already
computes), stored as a small table. The ranking is the served score's; the calibrated
probability only says how likely each row is positive.

The assumption, as in CBPE: the relation between score and outcome is the holdout's (no
concept drift). A change in that relation is what the realized metrics, once labels
arrive, reveal; the estimate is shown as an estimate and replaced by them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from headwater.model.evaluation import ScoreBin, exact_metrics
from headwater.monitoring.live import score_bins
from headwater.monitoring.profile import numeric_values

#: The decision threshold when the model records none (the API decides ``p > threshold``).
THRESHOLD = 0.5
METHOD = "confidence-based performance estimation"


@dataclass(frozen=True)
class CalibrationMap:
    """A monotone map from served score to probability: a table interpolated linearly.

    The isotonic fit is a step function; each step is stored by its first and last score,
    so the map is flat within a step and linear between steps, and flat beyond the ends.
    """

    #: Scores, ascending.
    scores: tuple[float, ...]
    #: The calibrated probability at each score, non-decreasing.
    probabilities: tuple[float, ...]
    method: str = "isotonic"

    def __post_init__(self) -> None:
        if len(self.scores) != len(self.probabilities) or not self.scores:
            raise ValueError("a calibration map needs as many probabilities as scores (>= 1)")

    @classmethod
    def identity(cls) -> CalibrationMap:
        """The map of a calibrated model: every score is its own probability."""
        return cls(scores=(0.0, 1.0), probabilities=(0.0, 1.0), method="identity")

    def apply(self, scores: Iterable[Any] | np.ndarray) -> np.ndarray:
        """The calibrated probability of each score."""
        return np.interp(numeric_values(scores), self.scores, self.probabilities)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (stored in the model version)."""
        return {
            "method": self.method,
            "scores": list(self.scores),
            "probabilities": list(self.probabilities),
        }

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> CalibrationMap:
        """Read a map written by :meth:`to_dict`."""
        return cls(
            scores=tuple(float(s) for s in body["scores"]),
            probabilities=tuple(float(p) for p in body["probabilities"]),
            method=str(body.get("method", "isotonic")),
        )


def fit_isotonic(
    scores: Iterable[float] | np.ndarray,
    positives: Iterable[float] | np.ndarray,
    counts: Iterable[float] | np.ndarray,
) -> CalibrationMap:
    """The isotonic fit of observed rates on scores (pool adjacent violators, weighted).

    Args:
        scores: one score per group (a distinct score, or a histogram bin's mean score).
        positives: the positives of each group.
        counts: the rows of each group (groups without rows are ignored).
    """
    x, pos, n = numeric_values(scores), numeric_values(positives), numeric_values(counts)
    if not x.size == pos.size == n.size:
        raise ValueError("scores, positives and counts differ in length")
    keep = n > 0
    order = np.argsort(x[keep], kind="stable")
    x, pos, n = x[keep][order], pos[keep][order], n[keep][order]
    if not x.size:
        raise ValueError("cannot calibrate without any row")
    # Blocks: [positives, rows, first score, last score]; merge while the order is violated.
    blocks: list[list[float]] = []
    for xi, pi, ni in zip(x.tolist(), pos.tolist(), n.tolist(), strict=True):
        blocks.append([pi, ni, xi, xi])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            last = blocks.pop()
            blocks[-1][0] += last[0]
            blocks[-1][1] += last[1]
            blocks[-1][3] = last[3]
    xs: list[float] = []
    ys: list[float] = []
    for hits, rows, first, last in blocks:
        for point in (first, last) if last > first else (first,):
            xs.append(point)
            ys.append(hits / rows)
    return CalibrationMap(scores=tuple(xs), probabilities=tuple(ys))


def calibration_from_bins(bins: Iterable[ScoreBin]) -> CalibrationMap:
    """The calibration map of a holdout given as score bins (the training job's histogram)."""
    rows = [b for b in bins if b.count > 0]
    return fit_isotonic(
        [b.score_sum / b.count for b in rows],
        [b.positives for b in rows],
        [b.count for b in rows],
    )


def calibration_from_pairs(
    probabilities: Iterable[Any] | np.ndarray, labels: Iterable[Any] | np.ndarray
) -> CalibrationMap:
    """The calibration map of (probability, 0/1 label) pairs."""
    p, y = numeric_values(probabilities), numeric_values(labels)
    if p.size != y.size:
        raise ValueError(f"{p.size} probabilities but {y.size} labels")
    distinct, inverse = np.unique(p, return_inverse=True)
    return fit_isotonic(
        distinct,
        np.bincount(inverse, weights=y, minlength=distinct.size),
        np.bincount(inverse, minlength=distinct.size),
    )


@dataclass(frozen=True)
class Estimate:
    """The estimated performance of served probabilities (no label used)."""

    #: Metric name -> expected value (the evaluation's names; plus ``accuracy``,
    #: ``precision`` and ``recall`` at :attr:`threshold`).
    metrics: Mapping[str, float]
    threshold: float
    #: Served predictions the estimate covers.
    predictions: int
    #: How served scores were mapped to probabilities (``isotonic`` or ``identity``).
    calibration: str
    #: Expected ``tp``, ``fp``, ``fn``, ``tn`` at :attr:`threshold`.
    confusion: Mapping[str, float] = field(default_factory=dict)
    method: str = METHOD

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "metrics": dict(self.metrics),
            "threshold": self.threshold,
            "predictions": self.predictions,
            "calibration": self.calibration,
            "confusion": dict(self.confusion),
            "method": self.method,
        }

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> Estimate:
        """Read an estimate written by :meth:`to_dict`."""
        return cls(
            metrics=dict(body["metrics"]),
            threshold=float(body["threshold"]),
            predictions=int(body["predictions"]),
            calibration=str(body["calibration"]),
            confusion=dict(body.get("confusion") or {}),
            method=str(body.get("method", METHOD)),
        )


def expected_confusion(
    scores: np.ndarray, probabilities: np.ndarray, threshold: float
) -> dict[str, float]:
    """Expected TP, FP, FN, TN when rows scored above ``threshold`` are called positive."""
    called = scores > threshold
    return {
        "tp": float(probabilities[called].sum()),
        "fp": float((1.0 - probabilities[called]).sum()),
        "fn": float(probabilities[~called].sum()),
        "tn": float((1.0 - probabilities[~called]).sum()),
    }


def _ratio(top: float, bottom: float) -> float:
    return top / bottom if bottom > 0 else math.nan


def estimate_performance(
    scores: Iterable[Any] | np.ndarray,
    calibration: CalibrationMap | None = None,
    threshold: float = THRESHOLD,
) -> Estimate:
    """Expected AUC, AUC-PR, log loss, Brier, accuracy, precision and recall of served scores.

    Args:
        scores: the served probabilities of a period.
        calibration: the holdout's calibration map (default: scores taken as calibrated).
        threshold: the model's decision threshold (a row is called positive above it).
    """
    served = numeric_values(scores)
    if np.isnan(served).any():
        raise ValueError("a served probability is missing: every served row has one")
    if not served.size:
        raise ValueError("cannot estimate the performance of no prediction")
    mapping = calibration or CalibrationMap.identity()
    probabilities = np.clip(mapping.apply(served), 0.0, 1.0)
    metrics = exact_metrics(score_bins(served, probabilities))
    expected_positives = probabilities.sum()
    if not 0 < expected_positives < served.size:
        # Every row surely one class: the expected curves are undefined.
        metrics = {k: v for k, v in metrics.items() if k not in ("auc_roc", "auc_pr")}
    counts = expected_confusion(served, probabilities, threshold)
    metrics["accuracy"] = (counts["tp"] + counts["tn"]) / served.size
    metrics["precision"] = _ratio(counts["tp"], counts["tp"] + counts["fp"])
    metrics["recall"] = _ratio(counts["tp"], counts["tp"] + counts["fn"])
    return Estimate(
        metrics={k: v for k, v in metrics.items() if not math.isnan(v)},
        threshold=threshold,
        predictions=int(served.size),
        calibration=mapping.method,
        confusion=counts,
    )

"""Binary-classification metrics from bounded score histograms, in plain Python.

An engine (Spark on the training cluster) reduces a scored holdout to at most a few
hundred :class:`ScoreBin` rows; everything here works on those rows, so nothing that
grows with the data reaches the driver. When each bin holds a single distinct score
(a baseline scoring by cells of a few columns, a constant), every metric is exact and follows
the definitions of Spark's ``BinaryClassificationMetrics``: the ROC and PR curves run
over the distinct scores in descending order, tied scores form one point, and the
areas are trapezoids (so a tie counts one half in the AUC).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: Probabilities are clipped to [EPSILON, 1 - EPSILON] in the log loss.
EPSILON = 1e-15
#: The metrics the evaluation computes (classifier, then regression, then counts), by the
#: names people read: the notification, the report, ``models list``, the gate's sentences.
METRIC_NAMES = {
    "auc_roc": "AUC",
    "auc_pr": "AUC-PR",
    "log_loss": "log loss",
    "brier": "Brier",
    "rmse": "RMSE",
    "mae": "MAE",
    "r2": "R²",
    "accuracy_at_0_5": "accuracy at threshold 0.5",
    "positive_rate": "positive rate",
    "rows": "rows",
}
#: The headline metrics, in the order people read them (classifier, then regression).
HEADLINE_METRICS = ("auc_roc", "auc_pr", "log_loss", "brier", "rmse", "mae", "r2")
#: The metrics where the smaller value is the better model.
SMALLER_IS_BETTER = frozenset({"log_loss", "brier", "rmse", "mae"})


@dataclass(frozen=True)
class ScoreBin:
    """The rows of one score (or one score bin): how many, how many positive.

    ``score_sum`` is the sum of the scores in the bin; the sums of the per-row log
    loss, squared error and correct decisions at 0.5 let one bounded histogram carry
    the exact means of the whole holdout.
    """

    score: float
    count: float
    positives: float
    score_sum: float
    log_loss_sum: float
    squared_error_sum: float
    correct_sum: float

    @classmethod
    def exact(cls, score: float, count: float, positives: float) -> ScoreBin:
        """A bin of ``count`` rows that all have ``score``: every sum follows from it."""
        clipped = min(max(score, EPSILON), 1.0 - EPSILON)
        negatives = count - positives
        decided_positive = score > 0.5
        return cls(
            score=score,
            count=count,
            positives=positives,
            score_sum=score * count,
            log_loss_sum=-(positives * math.log(clipped) + negatives * math.log(1.0 - clipped)),
            squared_error_sum=positives * (score - 1.0) ** 2 + negatives * score**2,
            correct_sum=positives if decided_positive else negatives,
        )


def _descending(bins: Iterable[ScoreBin]) -> list[ScoreBin]:
    return sorted((b for b in bins if b.count > 0), key=lambda b: -b.score)


def _trapezoid(points: Sequence[tuple[float, float]]) -> float:
    pairs = zip(points, points[1:], strict=False)
    return sum((x1 - x0) * (y0 + y1) / 2.0 for (x0, y0), (x1, y1) in pairs)


def roc_curve(bins: Iterable[ScoreBin]) -> list[tuple[float, float]]:
    """(false-positive rate, true-positive rate) at each bin, from (0, 0) to (1, 1)."""
    ordered = _descending(bins)
    total_pos = sum(b.positives for b in ordered)
    total_neg = sum(b.count - b.positives for b in ordered)
    points, tp, fp = [(0.0, 0.0)], 0.0, 0.0
    for b in ordered:
        tp, fp = tp + b.positives, fp + b.count - b.positives
        points.append((fp / total_neg if total_neg else 0.0, tp / total_pos if total_pos else 0.0))
    points.append((1.0, 1.0))
    return points


def pr_curve(bins: Iterable[ScoreBin]) -> list[tuple[float, float]]:
    """(recall, precision) at each bin, starting at recall 0 with the first precision."""
    ordered = _descending(bins)
    total_pos = sum(b.positives for b in ordered)
    points: list[tuple[float, float]] = []
    tp = predicted = 0.0
    for b in ordered:
        tp, predicted = tp + b.positives, predicted + b.count
        points.append((tp / total_pos if total_pos else 0.0, tp / predicted if predicted else 1.0))
    return [(0.0, points[0][1]), *points] if points else []


def auc_roc(bins: Iterable[ScoreBin]) -> float:
    """Area under the ROC curve (ties within a bin count one half)."""
    return _trapezoid(roc_curve(bins))


def auc_pr(bins: Iterable[ScoreBin]) -> float:
    """Area under the precision-recall curve, as Spark computes it."""
    return _trapezoid(pr_curve(bins))


def summary(bins: Iterable[ScoreBin]) -> dict[str, float]:
    """Rows, log loss, Brier score, accuracy at 0.5 and positive rate (exact means)."""
    rows = list(bins)
    n = sum(b.count for b in rows)
    if n == 0:
        raise ValueError("cannot evaluate an empty holdout")
    return {
        "rows": int(n),
        "log_loss": sum(b.log_loss_sum for b in rows) / n,
        "brier": sum(b.squared_error_sum for b in rows) / n,
        "accuracy_at_0_5": sum(b.correct_sum for b in rows) / n,
        "positive_rate": sum(b.positives for b in rows) / n,
    }


def exact_metrics(bins: Iterable[ScoreBin]) -> dict[str, float]:
    """Every metric of a holdout given as one bin per distinct score: all exact."""
    rows = list(bins)
    return {**summary(rows), "auc_roc": auc_roc(rows), "auc_pr": auc_pr(rows)}


def constant_metrics(score: float, count: float, positives: float) -> dict[str, float]:
    """The metrics of a model that gives every row the same ``score``."""
    return exact_metrics([ScoreBin.exact(score, count, positives)])


def calibration_table(bins: Iterable[ScoreBin], deciles: int = 10) -> list[dict[str, float]]:
    """Mean score against observed rate per score decile (occupied deciles only).

    ``bins`` must be equal-width bins of [0, 1] whose number is a multiple of
    ``deciles``, or exact scores; each lands in the decile of its score.
    """
    table: dict[int, list[float]] = {}
    for b in bins:
        if b.count <= 0:
            continue
        index = min(math.floor(b.score * deciles), deciles - 1)
        cell = table.setdefault(index, [0.0, 0.0, 0.0])
        cell[0] += b.count
        cell[1] += b.score_sum
        cell[2] += b.positives
    return [
        {
            "bin": index,
            "count": int(count),
            "mean_probability": score_sum / count,
            "observed_rate": positives / count,
        }
        for index, (count, score_sum, positives) in sorted(table.items())
    ]


def mean_target_baseline(target: str) -> str:
    """The name of the regression baseline that predicts the training mean of ``target``."""
    return f"mean_{target}"

"""Metrics from score histograms, against their definitions computed row by row."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.model.evaluation import (
    ScoreBin,
    auc_pr,
    auc_roc,
    calibration_table,
    constant_metrics,
    exact_metrics,
    pr_curve,
    roc_curve,
    summary,
)


def bins_of(pairs: list[tuple[float, int]]) -> list[ScoreBin]:
    """One exact bin per distinct score."""
    cells: dict[float, list[int]] = {}
    for score, label in pairs:
        cell = cells.setdefault(score, [0, 0])
        cell[0] += 1
        cell[1] += label
    return [ScoreBin.exact(s, n, pos) for s, (n, pos) in cells.items()]


def pairwise_auc(pairs: list[tuple[float, int]]) -> float:
    """AUC by definition: the share of (positive, negative) pairs ranked right, ties 1/2."""
    positives = [s for s, y in pairs if y]
    negatives = [s for s, y in pairs if not y]
    right = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return right / (len(positives) * len(negatives))


scores = st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.5000001, 0.7, 0.9, 1.0])
holdouts = st.lists(st.tuples(scores, st.integers(0, 1)), min_size=2, max_size=60).filter(
    lambda pairs: 0 < sum(y for _, y in pairs) < len(pairs)
)


@settings(max_examples=200, deadline=None)
@given(holdouts)
def test_auc_roc_is_the_share_of_pairs_ranked_right(pairs: list[tuple[float, int]]) -> None:
    assert auc_roc(bins_of(pairs)) == pytest.approx(pairwise_auc(pairs), abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(holdouts)
def test_means_are_the_row_by_row_means(pairs: list[tuple[float, int]]) -> None:
    metrics = summary(bins_of(pairs))

    n = len(pairs)
    clip = [(min(max(s, 1e-15), 1 - 1e-15), y) for s, y in pairs]
    log_loss = -sum(y * math.log(p) + (1 - y) * math.log(1 - p) for p, y in clip) / n
    assert metrics["rows"] == n
    assert metrics["log_loss"] == pytest.approx(log_loss, rel=1e-12)
    assert metrics["brier"] == pytest.approx(sum((s - y) ** 2 for s, y in pairs) / n, abs=1e-12)
    assert metrics["accuracy_at_0_5"] == pytest.approx(
        sum((s > 0.5) == bool(y) for s, y in pairs) / n
    )
    assert metrics["positive_rate"] == pytest.approx(sum(y for _, y in pairs) / n)


def test_pr_curve_starts_at_recall_zero_with_the_first_precision() -> None:
    # Scores 0.9 (delayed), 0.8 (on time), 0.3 (delayed)
    bins = bins_of([(0.9, 1), (0.8, 0), (0.3, 1)])

    assert pr_curve(bins) == [(0.0, 1.0), (0.5, 1.0), (0.5, 0.5), (1.0, 2 / 3)]
    assert auc_pr(bins) == pytest.approx(0.5 * 1.0 + 0.5 * (0.5 + 2 / 3) / 2)


def test_a_constant_model_has_auc_one_half_and_pr_area_the_positive_rate() -> None:
    metrics = constant_metrics(0.2, count=100, positives=30)

    assert metrics["auc_roc"] == 0.5
    assert metrics["auc_pr"] == pytest.approx(0.3)
    assert metrics["brier"] == pytest.approx(0.3 * 0.8**2 + 0.7 * 0.2**2)
    assert metrics["log_loss"] == pytest.approx(-(0.3 * math.log(0.2) + 0.7 * math.log(0.8)))
    assert metrics["accuracy_at_0_5"] == pytest.approx(0.7)  # 0.2 says "on time" to everyone


def test_roc_curve_of_a_perfect_ranking_reaches_the_top_left_corner() -> None:
    points = roc_curve(bins_of([(0.9, 1), (0.8, 1), (0.2, 0)]))

    assert points == [(0.0, 0.0), (0.0, 0.5), (0.0, 1.0), (1.0, 1.0), (1.0, 1.0)]
    assert auc_roc(bins_of([(0.9, 1), (0.8, 1), (0.2, 0)])) == 1.0


def test_empty_bins_are_ignored_and_an_empty_holdout_is_an_error() -> None:
    empty = ScoreBin.exact(0.4, 0, 0)
    bins = [*bins_of([(0.9, 1), (0.1, 0)]), empty]

    assert auc_roc(bins) == 1.0
    assert len(roc_curve(bins)) == 4
    with pytest.raises(ValueError, match="empty holdout"):
        summary([empty])


def test_calibration_deciles_from_fine_bins() -> None:
    # Given 200-bin midpoints as a training histogram reports them
    rng = random.Random(3)
    pairs = [(rng.random(), int(rng.random() < 0.4)) for _ in range(2000)]
    fine: dict[int, list[float]] = {}
    for s, y in pairs:
        cell = fine.setdefault(min(int(s * 200), 199), [0.0, 0.0, 0.0])
        cell[0] += 1
        cell[1] += y
        cell[2] += s
    bins = [
        ScoreBin((b + 0.5) / 200, n, pos, total, 0.0, 0.0, 0.0)
        for b, (n, pos, total) in fine.items()
    ]

    table = calibration_table(bins)

    # Then each decile holds exactly the rows whose score falls in it
    for row in table:
        members = [(s, y) for s, y in pairs if min(int(s * 10), 9) == row["bin"]]
        assert row["count"] == len(members)
        assert row["mean_probability"] == pytest.approx(sum(s for s, _ in members) / len(members))
        assert row["observed_rate"] == pytest.approx(sum(y for _, y in members) / len(members))
    assert sum(row["count"] for row in table) == 2000


def test_exact_metrics_names_every_metric() -> None:
    metrics = exact_metrics(bins_of([(0.9, 1), (0.1, 0)]))

    assert set(metrics) == {
        "rows",
        "auc_roc",
        "auc_pr",
        "log_loss",
        "brier",
        "accuracy_at_0_5",
        "positive_rate",
    }


def test_a_holdout_of_one_class_gets_sparks_degenerate_values_not_nan() -> None:
    # Spark's conventions: a rate whose total is zero is 0 (recall, FPR), precision 1
    only_delays = bins_of([(0.9, 1), (0.2, 1)])
    only_on_time = bins_of([(0.9, 0), (0.2, 0)])

    assert auc_roc(only_delays) == 1.0
    assert auc_pr(only_delays) == 1.0
    assert auc_roc(only_on_time) == 0.0
    assert auc_pr(only_on_time) == 0.0
    assert summary(only_on_time)["positive_rate"] == 0.0

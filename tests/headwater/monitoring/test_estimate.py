"""Estimated performance (CBPE) by hand, the isotonic calibration map, and against realized
figures on synthetic populations."""

from __future__ import annotations

import json

import numpy as np
import pytest

from headwater.model.evaluation import ScoreBin
from headwater.monitoring.estimate import (
    CalibrationMap,
    Estimate,
    calibration_from_bins,
    calibration_from_pairs,
    estimate_performance,
    fit_isotonic,
)
from headwater.monitoring.live import classification_metrics


def test_expected_metrics_of_three_calibrated_probabilities_by_hand() -> None:
    estimate = estimate_performance([0.2, 0.6, 0.9])

    # Descending: .9 (expected positives .9, negatives .1), .6 (.6, .4), .2 (.2, .8);
    # P = 1.7, N = 1.3. AUC = sum neg_g (P above + pos_g / 2) / (P N)
    # = (.1 x .45 + .4 x (.9 + .3) + .8 x (1.5 + .1)) / 2.21 = 1.805 / 2.21
    assert estimate.metrics["auc_roc"] == pytest.approx(0.816742, abs=1e-6)
    # Brier: E[(p - y)²] = p (1 - p): (.16 + .24 + .09) / 3
    assert estimate.metrics["brier"] == pytest.approx(0.163333, abs=1e-6)
    # Log loss: the mean entropy, (.500402 + .673012 + .325083) / 3
    assert estimate.metrics["log_loss"] == pytest.approx(0.499499, abs=1e-6)
    # At 0.5, .6 and .9 are called positive: TP 1.5, FP .5, FN .2, TN .8.
    assert estimate.confusion == pytest.approx({"tp": 1.5, "fp": 0.5, "fn": 0.2, "tn": 0.8})
    assert estimate.metrics["accuracy"] == pytest.approx(2.3 / 3)
    assert estimate.metrics["precision"] == pytest.approx(0.75)
    assert estimate.metrics["recall"] == pytest.approx(1.5 / 1.7)
    assert estimate.metrics["positive_rate"] == pytest.approx(1.7 / 3)
    assert (estimate.predictions, estimate.calibration) == (3, "identity")


def test_the_decision_threshold_is_the_model_s() -> None:
    estimate = estimate_performance([0.2, 0.6, 0.9], threshold=0.7)

    # Only .9 is called positive: TP .9, FP .1, FN .8, TN .6 + .2... (1 - .6) + (1 - .2) = 1.2
    assert estimate.confusion == pytest.approx({"tp": 0.9, "fp": 0.1, "fn": 0.8, "tn": 1.2})
    assert estimate.metrics["recall"] == pytest.approx(0.9 / 1.7)


def test_isotonic_fit_pools_adjacent_violators() -> None:
    # Rates 0, 1, 0, 1 at scores .1 .. .4: the middle pair violates the order and is pooled
    # to 0.5; each step is stored by its first and last score.
    fitted = fit_isotonic([0.4, 0.1, 0.3, 0.2], [1, 0, 0, 1], [1, 1, 1, 1])

    assert fitted.scores == (0.1, 0.2, 0.3, 0.4)
    assert fitted.probabilities == (0.0, 0.5, 0.5, 1.0)
    # Flat within a step, linear between steps, flat beyond the ends.
    assert fitted.apply([0.05, 0.25, 0.35, 0.9]).tolist() == pytest.approx([0.0, 0.5, 0.75, 1.0])


def test_isotonic_fit_weights_groups_by_their_rows() -> None:
    # 9 rows at .2 with rate 2/9 and 1 row at .3 with rate 0: pooled (2 + 0) / 10.
    fitted = fit_isotonic([0.2, 0.3, 0.5], [2, 0, 3], [9, 1, 0])

    assert fitted.probabilities == (0.2, 0.2)


def test_the_holdout_histogram_and_its_pairs_give_the_same_map() -> None:
    pairs = [(0.1, 0), (0.1, 0), (0.1, 1), (0.4, 1), (0.4, 0), (0.7, 1), (0.9, 0), (0.9, 1)]
    cells: dict[float, list[int]] = {}
    for score, label in pairs:
        cells.setdefault(score, [0, 0])
        cells[score][0] += 1
        cells[score][1] += label
    bins = [ScoreBin.exact(s, n, pos) for s, (n, pos) in cells.items()]

    from_bins = calibration_from_bins(bins)

    from_pairs = calibration_from_pairs(*zip(*pairs, strict=True))
    # A bin's score is its mean (score_sum / count): equal up to rounding.
    assert from_bins.scores == pytest.approx(from_pairs.scores)
    assert from_bins.probabilities == from_pairs.probabilities
    # 1/3, 1/2, 1, 1/2: the last two pool to 2/3.
    assert from_bins.probabilities == pytest.approx((1 / 3, 0.5, 2 / 3, 2 / 3))
    assert CalibrationMap.from_dict(json.loads(json.dumps(from_bins.to_dict()))) == from_bins


def test_an_empty_or_ragged_calibration_is_refused() -> None:
    with pytest.raises(ValueError, match="without any row"):
        fit_isotonic([0.5], [0], [0])
    with pytest.raises(ValueError, match="length"):
        fit_isotonic([0.5, 0.6], [0], [1])
    with pytest.raises(ValueError, match="as many"):
        CalibrationMap(scores=(0.1,), probabilities=())


def test_an_estimate_survives_json() -> None:
    estimate = estimate_performance([0.2, 0.6, 0.9])

    assert Estimate.from_dict(json.loads(json.dumps(estimate.to_dict()))) == estimate


METRICS = ("auc_roc", "auc_pr", "brier", "log_loss", "accuracy_at_0_5")


def errors(seeds: range, scale: float, calibrate: bool) -> dict[str, np.ndarray]:
    """Estimated minus realized metrics of served probabilities ``scale`` x the true ones,
    one synthetic period of 1,500 predictions per seed (the map from a 5,000-row holdout)."""
    out: dict[str, list[float]] = {m: [] for m in METRICS}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        truth = rng.beta(2, 6, 1500)
        outcomes = rng.binomial(1, truth)
        held = rng.beta(2, 6, 5000)
        calibration = calibration_from_pairs(scale * held, rng.binomial(1, held))
        served = scale * truth
        estimate = estimate_performance(served, calibration if calibrate else None)
        realized = classification_metrics(served, outcomes)
        for m in METRICS:
            out[m].append(estimate.metrics[m] - realized.metrics[m])
    return {m: np.asarray(v) for m, v in out.items()}


def test_on_calibrated_populations_the_estimate_tracks_the_realized_auc() -> None:
    # Given 20 periods whose labels are drawn from the served probabilities themselves,
    error = errors(range(20), scale=1.0, calibrate=False)

    # then the estimated AUC is unbiased (mean error within 0.01) and each period's within
    # 0.05 (the realized AUC of 1,500 rows itself varies by about 0.015).
    assert abs(error["auc_roc"].mean()) < 0.01
    assert np.abs(error["auc_roc"]).max() < 0.05
    for metric in METRICS:
        assert np.abs(error[metric]).mean() < 0.03, metric


def test_the_holdout_calibration_map_corrects_an_under_predicting_model() -> None:
    # Given a model that serves 0.75 x the true probability (it under-predicts, as the
    # holdout of a shipped use case does in every decile),
    raw = errors(range(30, 40), scale=0.75, calibrate=False)
    mapped = errors(range(30, 40), scale=0.75, calibrate=True)

    # then taken at face value its probabilities mislead the estimate, and the holdout's
    # map removes most of the error.
    for metric in ("brier", "log_loss", "accuracy_at_0_5", "auc_pr"):
        assert np.abs(mapped[metric]).mean() < np.abs(raw[metric]).mean() / 2, metric
    assert abs(mapped["auc_roc"].mean()) < 0.015

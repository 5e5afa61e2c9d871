"""Realized live metrics by hand, outcomes never arrived, day-block intervals."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from headwater.monitoring.live import (
    MIN_DAYS,
    AgainstHoldout,
    Interval,
    LiveMetrics,
    TooFewDays,
    against_holdout,
    classification_metrics,
    day_block_bootstrap,
    regression_metrics,
)

PROBABILITIES = [0.1, 0.4, 0.35, 0.8]
LABELS = [0, 0, 1, 1]


def test_classification_metrics_of_four_pairs_by_hand() -> None:
    live = classification_metrics(PROBABILITIES, LABELS)

    # Positive-negative pairs ranked right: .35>.1, .8>.1, .8>.4 (not .35>.4): 3 of 4.
    assert live.metrics["auc_roc"] == pytest.approx(0.75)
    # Descending: .8 (1), .4 (0), .35 (1), .1 (0): (recall, precision) (0, 1), (.5, 1),
    # (.5, .5), (1, 2/3), (1, .5); trapezoids .5 x 1 + 0 + .5 x (.5 + 2/3) / 2 = .791667
    assert live.metrics["auc_pr"] == pytest.approx(0.791667, abs=1e-6)
    # -(ln .9 + ln .6 + ln .35 + ln .8) / 4 = (0.105361 + 0.510826 + 1.049822 + 0.223144) / 4
    assert live.metrics["log_loss"] == pytest.approx(0.472288, abs=1e-6)
    # (.1² + .4² + .65² + .2²) / 4 = (.01 + .16 + .4225 + .04) / 4
    assert live.metrics["brier"] == pytest.approx(0.158125)
    # At 0.5 only .8 is called positive: right on .1, .4 and .8, wrong on .35.
    assert live.metrics["accuracy_at_0_5"] == pytest.approx(0.75)
    assert (live.predictions, live.with_outcome, live.without_outcome) == (4, 4, 0)
    assert live.intervals == {} and "no serving days" in live.note


def test_predictions_whose_outcome_never_arrived_are_counted_not_dropped() -> None:
    live = classification_metrics([*PROBABILITIES, 0.9, 0.2], [*LABELS, None, math.nan])

    assert live.metrics["auc_roc"] == pytest.approx(0.75)
    assert (live.predictions, live.with_outcome, live.without_outcome) == (6, 4, 2)


def test_no_outcome_yet_gives_no_metric_and_says_why() -> None:
    live = classification_metrics([0.2, 0.3], [None, None], days=["d1", "d2"])

    assert live.metrics == {} and live.without_outcome == 2
    assert "no outcome" in live.note


def test_outcomes_of_one_class_give_no_auc_but_the_means() -> None:
    live = classification_metrics([0.2, 0.6], [1, 1])

    assert "auc_roc" not in live.metrics and "auc_pr" not in live.metrics
    # (.8² + .4²) / 2
    assert live.metrics["brier"] == pytest.approx(0.4)
    assert "one class" in live.note


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="0 or 1"):
        classification_metrics([0.2], [2])
    with pytest.raises(ValueError, match="outcomes"):
        classification_metrics([0.2, 0.3], [1])
    with pytest.raises(ValueError, match="days"):
        classification_metrics([0.2, 0.3], [1, 0], days=["d1"])
    with pytest.raises(ValueError, match="missing"):
        regression_metrics([None, 1.0], [1.0, 1.0])


def test_the_live_calibration_table_has_mean_probability_and_observed_rate_per_decile() -> None:
    live = classification_metrics([0.12, 0.18, 0.81, 0.83, 0.85], [0, 1, 1, 1, 0])

    assert [dict(row) for row in live.calibration] == [
        {"bin": 1, "count": 2, "mean_probability": pytest.approx(0.15), "observed_rate": 0.5},
        {"bin": 8, "count": 3, "mean_probability": pytest.approx(0.83), "observed_rate": 2 / 3},
    ]


def test_regression_metrics_by_hand_with_a_missing_outcome_counted() -> None:
    live = regression_metrics([3, 5, -1, 7], [2, 5, 1, None])

    # Errors 1, 0, -2: RMSE sqrt(5/3), MAE 3/3; outcomes 2, 5, 1 (mean 8/3) spread 26/3:
    # R² = 1 - 5 / (26/3) = 0.423077
    assert live.metrics["rmse"] == pytest.approx(math.sqrt(5 / 3))
    assert live.metrics["mae"] == pytest.approx(1.0)
    assert live.metrics["r2"] == pytest.approx(0.423077, abs=1e-6)
    assert (live.kind, live.with_outcome, live.without_outcome) == ("regression", 3, 1)


def test_the_bootstrap_needs_enough_days_and_says_how_many() -> None:
    with pytest.raises(TooFewDays, match="4 day"):
        day_block_bootstrap(
            {str(d): np.ones(1) for d in range(MIN_DAYS - 1)}, lambda s: {"n": float(s[0])}
        )


def test_identical_days_give_a_point_interval_and_a_seed_repeats_itself() -> None:
    days = {str(d): np.array([10.0, 4.0]) for d in range(7)}

    interval = day_block_bootstrap(days, lambda s: {"rate": s[1] / s[0]}, replicates=50)

    assert interval["rate"].lower == pytest.approx(0.4) == interval["rate"].upper
    varied = {str(d): np.array([10.0, float(d)]) for d in range(7)}
    first = day_block_bootstrap(varied, lambda s: {"rate": s[1] / s[0]}, seed=1, replicates=50)
    again = day_block_bootstrap(varied, lambda s: {"rate": s[1] / s[0]}, seed=1, replicates=50)
    other = day_block_bootstrap(varied, lambda s: {"rate": s[1] / s[0]}, seed=2, replicates=50)
    assert first == again and first != other
    assert first["rate"].lower < 0.3 < first["rate"].upper


def test_a_95_percent_day_block_interval_covers_the_true_rate_about_95_times_in_100() -> None:
    # Given days whose rates vary around 0.3 (a shared day effect), 20 days of 50 rows each,
    rng = np.random.default_rng(0)
    covered = 0
    trials = 200
    for _ in range(trials):
        day_rates = np.clip(0.3 + rng.normal(0, 0.08, 20), 0, 1)
        hits = rng.binomial(50, day_rates)
        days = {str(d): np.array([50.0, float(h)]) for d, h in enumerate(hits)}
        interval = day_block_bootstrap(days, lambda s: {"rate": s[1] / s[0]}, replicates=300)
        covered += interval["rate"].lower <= 0.3 <= interval["rate"].upper
    # then the coverage is near the nominal level (the percentile bootstrap runs a bit short
    # on 20 blocks: about 0.92 here).
    assert 0.88 <= covered / trials <= 0.99


def calibrated(seed: int, days: int = 30, rows: int = 200) -> tuple[np.ndarray, ...]:
    """A calibrated population: labels drawn from the served probabilities, per day."""
    rng = np.random.default_rng(seed)
    p = rng.beta(2, 6, days * rows)
    return p, rng.binomial(1, p).astype(float), np.repeat(np.arange(days), rows)


def test_classification_intervals_hold_the_exact_point_and_bin_only_in_the_bootstrap() -> None:
    p, y, day = calibrated(1)

    live = classification_metrics(p, y, day, replicates=200)
    coarse = classification_metrics(np.round(p, 2), y, day, replicates=200)

    assert live.days == 30
    for metric in ("auc_roc", "auc_pr", "log_loss", "brier", "accuracy_at_0_5"):
        interval = live.intervals[metric]
        assert interval.lower < live.metrics[metric] < interval.upper, metric
        assert interval.blocks == 30 and interval.replicates == 200
    # 6,000 distinct scores are binned (200 bins) in the bootstrap; 100 rounded ones are not:
    # both widths agree within a few percent.
    width = live.intervals["auc_roc"].upper - live.intervals["auc_roc"].lower
    coarse_width = coarse.intervals["auc_roc"].upper - coarse.intervals["auc_roc"].lower
    assert width == pytest.approx(coarse_width, rel=0.2)
    assert 0.005 < width < 0.05


def test_regression_intervals_come_from_day_sums() -> None:
    rng = np.random.default_rng(2)
    truth = rng.normal(100, 20, 3000)
    live = regression_metrics(truth + rng.normal(0, 5, 3000), truth, np.arange(3000) // 100)

    assert live.intervals["rmse"].lower < live.metrics["rmse"] < live.intervals["rmse"].upper
    assert live.intervals["rmse"].lower < 5.0 < live.intervals["rmse"].upper
    assert live.intervals["mae"].blocks == 30


def test_live_metrics_survive_json() -> None:
    p, y, day = calibrated(3, days=6, rows=20)
    live = classification_metrics(p, y, day, replicates=20)

    assert LiveMetrics.from_dict(json.loads(json.dumps(live.to_dict()))) == live


def test_against_holdout_flags_only_intervals_wholly_on_the_worse_side() -> None:
    live = LiveMetrics(
        kind="classification",
        metrics={"auc_roc": 0.65, "log_loss": 0.60, "brier": 0.2, "rows": 900},
        intervals={
            "auc_roc": Interval(0.62, 0.68, 0.95, 30, 1000),
            "log_loss": Interval(0.58, 0.62, 0.95, 30, 1000),
            "brier": Interval(0.18, 0.25, 0.95, 30, 1000),
        },
    )

    rows = against_holdout(live, {"auc_roc": 0.711, "log_loss": 0.55, "brier": 0.21, "mae": 1})

    assert [r.metric for r in rows] == ["auc_roc", "log_loss", "brier"]
    assert [r.significantly_worse for r in rows] == [True, True, False]
    assert rows[0].difference == pytest.approx(-0.061) and rows[1].difference == pytest.approx(
        -0.05
    )
    assert rows[0].text() == "AUC 0.650 [0.620, 0.680] vs holdout 0.711, significantly worse"
    assert AgainstHoldout.from_dict(rows[2].to_dict()) == rows[2]


def test_without_an_interval_a_lower_live_figure_is_not_called_significant() -> None:
    live = LiveMetrics(kind="classification", metrics={"auc_roc": 0.5})

    (row,) = against_holdout(live, {"auc_roc": 0.711})

    assert not row.significantly_worse and row.text() == "AUC 0.500 vs holdout 0.711"

"""The paired block bootstrap: metrics from histograms, intervals that say how sure a gain is."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from headwater.model.comparison import (
    COMPARISON_BINS,
    FIELDS,
    Interval,
    block_of,
    histogram_array,
    metric_values,
    paired_bootstrap,
    signed,
)
from headwater.model.evaluation import ScoreBin, exact_metrics


def histograms(
    rng: np.random.Generator, days: int, rows: int, separation: float, bins: int = 100
) -> tuple[np.ndarray, list[list[float]]]:
    """Per-day histograms of a model whose positives score ``separation`` higher on average."""
    out = np.zeros((days, bins, len(FIELDS)))
    scores_by_day = []
    for day in range(days):
        labels = rng.random(rows) < 0.3
        scores = np.clip(0.3 + separation * (labels - 0.3) + rng.normal(0, 0.1, rows), 0, 1)
        scores_by_day.append(list(zip(scores, labels, strict=True)))
        index = np.minimum((scores * bins).astype(int), bins - 1)
        for i, s, y in zip(index, scores, labels, strict=True):
            s_clip = min(max(s, 1e-15), 1 - 1e-15)
            out[day, i] += [
                1,
                y,
                s,
                -(y * np.log(s_clip) + (1 - y) * np.log(1 - s_clip)),
                (s - y) ** 2,
                float((s > 0.5) == y),
            ]
    return out, scores_by_day


def test_metrics_from_histograms_match_the_evaluation_module() -> None:
    # Given bins each holding one distinct score (so both computations are exact)
    bins = [ScoreBin.exact(s, n, p) for s, n, p in [(0.1, 50, 5), (0.35, 30, 9), (0.8, 20, 15)]]
    array = np.zeros((100, len(FIELDS)))
    for b in bins:
        array[int(b.score * 100)] = [
            b.count,
            b.positives,
            b.score_sum,
            b.log_loss_sum,
            b.squared_error_sum,
            b.correct_sum,
        ]

    got = {k: float(v) for k, v in metric_values(array).items()}

    expected = exact_metrics(bins)
    for metric in ("auc_roc", "auc_pr", "log_loss", "brier", "accuracy_at_0_5"):
        assert got[metric] == pytest.approx(expected[metric]), metric


def test_a_small_gain_on_a_few_days_has_an_interval_reaching_below_zero() -> None:
    rng = np.random.default_rng(1)
    candidate, _ = histograms(rng, days=5, rows=150, separation=0.12)
    production, _ = histograms(rng, days=5, rows=150, separation=0.115)

    interval = paired_bootstrap(candidate, production, block_length=1)["auc_roc"]

    assert interval.lower < 0 < interval.upper
    assert interval.blocks == 5 and interval.confidence == 0.95


def test_a_clear_gain_on_many_days_clears_zero_and_is_reproducible() -> None:
    rng = np.random.default_rng(2)
    candidate, _ = histograms(rng, days=40, rows=200, separation=0.3)
    production, _ = histograms(rng, days=40, rows=200, separation=0.1)

    first = paired_bootstrap(candidate, production, replicates=400, block_length=1)
    again = paired_bootstrap(candidate, production, replicates=400, block_length=1)

    assert first == again  # a fixed seed: the same holdout gives the same interval
    assert 0 < first["auc_roc"].lower < first["auc_roc"].difference < first["auc_roc"].upper
    assert first["log_loss"].upper < 0  # the better model has the lower loss


def test_the_interval_is_centred_on_the_exact_point_difference() -> None:
    rng = np.random.default_rng(3)
    candidate, _ = histograms(rng, days=10, rows=100, separation=0.2)
    production, _ = histograms(rng, days=10, rows=100, separation=0.2)
    binned = paired_bootstrap(candidate, production, replicates=200, block_length=1)["auc_roc"]

    shifted = paired_bootstrap(  # days drawn one by one (independent here)
        candidate,
        production,
        replicates=200,
        block_length=1,
        points={"auc_roc": binned.difference + 0.01},
    )["auc_roc"]

    assert shifted.lower == pytest.approx(binned.lower + 0.01)
    assert shifted.upper == pytest.approx(binned.upper + 0.01)


def test_histograms_of_two_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="histograms differ"):
        paired_bootstrap(np.zeros((2, 10, 6)), np.zeros((3, 10, 6)))


@pytest.mark.parametrize(
    ("days", "indexes", "blocks"),
    [(5, [0, 4], [0, 4]), (100, [0, 99], [0, 99]), (365, [0, 3, 4, 364], [0, 0, 1, 91])],
)
def test_long_holdouts_group_consecutive_days(
    days: int, indexes: list[int], blocks: list[int]
) -> None:
    assert [block_of(i, days) for i in indexes] == blocks


def test_collected_rows_land_in_their_block_and_bin() -> None:
    rows = [{"block": 1, "bin": 999, **dict.fromkeys(FIELDS, 2.0)}]

    array = histogram_array(rows, blocks=2, bins=COMPARISON_BINS)

    assert array.shape == (2, COMPARISON_BINS, len(FIELDS))
    assert array[1, 999].tolist() == [2.0] * len(FIELDS) and array.sum() == 2.0 * len(FIELDS)


def test_an_interval_round_trips_through_json() -> None:
    interval = Interval("auc_roc", 0.002, -0.004, 0.008, 0.95, blocks=5)
    assert Interval.from_dict(interval.to_dict()) == interval


def test_block_counts_cover_every_day() -> None:
    from headwater.model.comparison import block_count

    assert [block_count(d) for d in (0, 1, 5, 100, 101, 365)] == [1, 1, 5, 100, 51, 92]


@pytest.mark.parametrize(
    ("value", "text"),
    [(-1e-17, "+0.0000"), (-0.0, "+0.0000"), (0.00234, "+0.0023"), (-0.5, "-0.5000")],
)
def test_a_difference_is_printed_with_its_sign_and_never_as_minus_zero(
    value: float, text: str
) -> None:
    assert signed(value) == text


# --- too few blocks for an interval ------------------------------------------------------------


def test_nulls_are_refused_not_read_as_zero() -> None:
    from headwater.model.comparison import BadHistogram

    rows = [{"block": 0, "bin": 3, **dict.fromkeys(FIELDS, 1.0), "positives": None}]

    with pytest.raises(BadHistogram, match="block 0, bin 3 has null positives"):
        histogram_array(rows, blocks=2, bins=COMPARISON_BINS)


def test_a_persistent_difference_lengthens_the_blocks_and_refuses_too_few() -> None:
    from headwater.model.comparison import TooFewBlocks, optimal_block_length

    rng = np.random.default_rng(3)
    walk = np.cumsum(rng.normal(size=200))  # strongly persistent
    noise = rng.normal(size=200)
    assert optimal_block_length(walk) > 5 * optimal_block_length(noise)
    # 12 days whose differences persist: too few effective blocks, and how many days needed
    candidate, _ = histograms(rng, 12, 200, 0.3)
    with pytest.raises(
        TooFewBlocks, match=r"one independent day per 4.0\): 12 days .* \(about 20 days needed\)"
    ):
        paired_bootstrap(candidate, candidate * 0.5, block_length=4)


def _ar1_plus_noise(rng: np.random.Generator, days: int, rho: float) -> np.ndarray:
    """A persistent AR(1) difference under as much day noise (the bench's daily AUC shape)."""
    a = np.empty(days)
    a[0] = rng.normal()
    for t in range(1, days):
        a[t] = rho * a[t - 1] + np.sqrt(1 - rho**2) * rng.normal()
    return a + rng.normal(size=days)


def test_independent_days_are_rarely_refused_and_get_short_blocks() -> None:
    from headwater.model.comparison import MIN_EFFECTIVE_BLOCKS, persistence_of

    # Given 200 series of 28 independent days (the gate's minimum holdout)
    rng = np.random.default_rng(5)
    measured = [persistence_of(rng.normal(size=28)) for _ in range(200)]

    # Then most get an interval, on short blocks (13.5% refused over 400 series: the price
    # of the 99.5% bound on persistence at the minimum; 0.25% at 61 days)
    refused = sum(m.effective_blocks < MIN_EFFECTIVE_BLOCKS for m in measured)
    assert refused <= 40  # a fifth at most
    assert np.median([m.block_length for m in measured]) <= 3


def test_a_difference_persisting_for_weeks_under_day_noise_is_refused_at_61_days() -> None:
    from headwater.model.comparison import MIN_EFFECTIVE_BLOCKS, persistence_of

    # Given AR(1) rho 0.9 under day noise: lag 1 about 0.45, but about 11 days per
    # independent one (the old Politis-White / AR(1) floor rule promoted 11-15% here)
    rng = np.random.default_rng(6)
    measured = [persistence_of(_ar1_plus_noise(rng, 61, 0.9)) for _ in range(200)]

    # Then most such holdouts are refused, and the rest get long blocks
    refused = [m.effective_blocks < MIN_EFFECTIVE_BLOCKS for m in measured]
    assert sum(refused) >= 50
    assert np.median([m.inflation for m in measured]) > 4  # lag 1 alone: about 2.6


def test_the_t_quantile_matches_students() -> None:
    from headwater.model.comparison import t_quantile

    # Student's t 97.5% quantiles (tables) on 4, 9 and 60 degrees of freedom
    for df, expected in ((4, 2.7764), (9, 2.2622), (60, 2.0003)):
        assert t_quantile(0.975, df) == pytest.approx(expected, rel=3e-3)


@pytest.mark.parametrize("days", [0, 1, 2, 4])
def test_a_holdout_of_too_few_days_gets_no_interval_and_says_why(days: int) -> None:
    from headwater.model.comparison import MIN_BLOCKS, TooFewBlocks

    # Given a holdout of fewer days than an interval needs (the audit's had 2)
    rng = np.random.default_rng(3)
    candidate, _ = histograms(rng, days=days, rows=100, separation=0.3)
    production, _ = histograms(rng, days=days, rows=100, separation=0.1)

    # When the comparison resamples it, then it refuses plainly (never an IndexError)
    with pytest.raises(TooFewBlocks) as raised:
        paired_bootstrap(candidate, production)
    assert str(raised.value) == (
        f"{days} day(s) of holdout: too few blocks for an interval (at least {MIN_BLOCKS})"
    )
    assert days < MIN_BLOCKS <= 5  # a holdout of five days does get one (above)


def test_a_row_outside_the_holdouts_blocks_is_named_not_an_index_error() -> None:
    rows = [{"block": 2, "bin": 10, **dict.fromkeys(FIELDS, 1.0)}]

    with pytest.raises(ValueError, match="block 2 is outside the holdout's 2 blocks"):
        histogram_array(rows, blocks=2, bins=COMPARISON_BINS)


def test_the_gate_refuses_production_when_the_comparison_has_no_interval() -> None:
    from headwater.core.config import GateConfig
    from headwater.registry.gate import TrainingWindow, comparison_problems, decide

    # Given a candidate 0.05 better on a 2-day holdout the job could put no interval on
    reason = "2 day(s) of holdout: too few blocks for an interval (at least 5)"
    candidate = TrainingWindow(date(2014, 1, 1), date(2014, 3, 2), date(2014, 3, 1))
    production = TrainingWindow(date(2013, 1, 1), date(2013, 12, 31), date(2013, 11, 1))

    # When the gate weighs it (the holdout's size limits lowered, so only the interval counts)
    lenient = GateConfig(min_holdout_rows=1, min_holdout_days=1, min_window_ratio=0.1)
    refusals = comparison_problems(
        candidate, production, lenient, production_version="p", holdout_rows=5000,
        holdout_days=2, no_interval=reason,
    )  # fmt: skip
    decision = decide({"auc_roc": 0.75}, {"auc_roc": 0.70}, lenient, refusals=refusals)

    # Then it does not promote over production, and says why in plain words
    assert not decision.promote
    assert refusals == [f"no confidence interval on the gain: {reason}"]
    assert reason in decision.reason
    assert comparison_problems(
        candidate, production, lenient, production_version="p", holdout_rows=5000,
        holdout_days=2,
    ) == []  # fmt: skip

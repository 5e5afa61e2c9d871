"""Shadow against production on the same served requests: the gate's paired comparison, live."""

from __future__ import annotations

import math

import numpy as np
import pytest

from headwater.core.config import GateConfig
from headwater.monitoring.shadow import (
    ShadowComparison,
    ShadowPair,
    ShadowVerdict,
    compare_shadow,
    pair_records,
)
from headwater.serving.capture import CaptureRecord

#: A gate that judges five days of four pairs (the default wants 28 days and 1,000 rows).
SMALL = GateConfig(min_holdout_days=5, min_holdout_rows=0)


def hand_pairs(days: int = 5) -> list[ShadowPair]:
    """Per day two positives and two negatives; production says 0.5 to all, the shadow
    0.8 to positives and 0.2 to negatives."""
    pairs = []
    for d in range(days):
        for i, outcome in enumerate((True, True, False, False)):
            shadow = 0.8 if outcome else 0.2
            pairs.append(ShadowPair(f"r{d}", i, f"2026-01-{d + 1:02d}", 0.5, shadow, outcome))
    return pairs


@pytest.mark.parametrize(
    ("metric", "production", "shadow"),
    [
        # AUC: production's ties count one half (0.5); the shadow ranks every pair right (1.0)
        ("auc_roc", 0.5, 1.0),
        # log loss: -ln 0.5 for production; -ln 0.8 for every row of the shadow
        ("log_loss", math.log(2.0), -math.log(0.8)),
        # Brier: 0.25 for production; 0.2 ** 2 for the shadow
        ("brier", 0.25, 0.04),
    ],
)
def test_a_hand_computed_case(metric: str, production: float, shadow: float) -> None:
    gate = SMALL.model_copy(update={"metric": metric})

    result = compare_shadow(hand_pairs(), gate, production_version="p", shadow_version="s")

    # Then both metrics and the oriented gain are the hand-computed ones
    gain = shadow - production if metric == "auc_roc" else production - shadow
    assert result.production == pytest.approx(production)
    assert result.shadow == pytest.approx(shadow)
    assert result.gain == pytest.approx(gain)
    # every day shows the same gain: the interval is that gain, and it clears the margin
    assert result.lower == pytest.approx(gain, abs=1e-6)
    assert result.upper == pytest.approx(gain, abs=1e-6)
    assert (result.days, result.pairs, result.without_outcome) == (5, 20, 0)
    assert result.verdict == ShadowVerdict.BETTER and result.clears_margin
    assert "shadow" in result.reason and "clears margin" in result.reason


def test_a_worse_shadow_is_not_better() -> None:
    swapped = [
        ShadowPair(p.request_id, p.instance, p.day, p.shadow, p.production, p.outcome)
        for p in hand_pairs()
    ]

    result = compare_shadow(swapped, SMALL, production_version="p", shadow_version="s")

    assert result.gain == pytest.approx(-0.5)
    assert result.verdict == ShadowVerdict.NOT_BETTER and not result.clears_margin
    assert "does not clear margin" in result.reason


def test_too_few_days_or_pairs_are_refused_whatever_the_gain() -> None:
    # Given the default gate (28 days, 1,000 rows) and five days of a perfect shadow
    result = compare_shadow(hand_pairs(), GateConfig(), production_version="p", shadow_version="s")

    # Then no evidence is claimed, and the refusals say why
    assert result.verdict == ShadowVerdict.UNDECIDED and not result.clears_margin
    assert result.gain == pytest.approx(0.5)
    assert any("5 days of paired outcomes, fewer than the 28" in r for r in result.refusals)
    assert any("20 pairs with an outcome, fewer than the 1000" in r for r in result.refusals)


def test_four_days_get_no_interval() -> None:
    result = compare_shadow(
        hand_pairs(days=4),
        SMALL.model_copy(update={"min_holdout_days": 0}),
        production_version="p",
        shadow_version="s",
    )

    assert result.lower is None and result.verdict == ShadowVerdict.UNDECIDED
    assert any("4 day(s) of holdout: too few blocks" in r for r in result.refusals)


def test_pairs_without_their_outcome_are_counted_not_compared() -> None:
    pairs = hand_pairs() + [ShadowPair("late", 0, "2026-01-06", 0.5, 0.9, None)] * 3

    result = compare_shadow(pairs, SMALL, production_version="p", shadow_version="s")

    assert (result.pairs, result.without_outcome, result.days) == (20, 3, 5)
    nothing = compare_shadow(pairs[-3:], SMALL, production_version="p", shadow_version="s")
    assert nothing.verdict == ShadowVerdict.UNDECIDED and nothing.gain is None
    assert "3 waiting" in nothing.text()


def test_the_record_survives_its_json_form() -> None:
    result = compare_shadow(hand_pairs(), SMALL, production_version="p", shadow_version="s")

    assert ShadowComparison.from_dict(result.to_dict()) == result
    assert result.to_dict()["verdict"] == "better"
    with pytest.raises(ValueError, match="not a shadow comparison"):
        ShadowComparison.from_dict({"verdict": "maybe"})


def record(request_id: str, instance: int, role: str, probability: float) -> CaptureRecord:
    return CaptureRecord(
        request_id, instance, "meters", role[0], "2026-01-01T00:00:00.000000+00:00", {},
        probability, probability > 0.5, 0.0, 0.5, role=role,
    )  # fmt: skip


def test_records_are_paired_by_request_and_instance() -> None:
    records = [
        record("a", 0, "production", 0.1),
        record("a", 1, "production", 0.2),
        record("b", 0, "production", 0.3),  # the shadow failed on it
        record("a", 1, "shadow", 0.25),
        record("a", 0, "shadow", 0.15),
        record("a", 0, "shadow", 0.99),  # a duplicate delivery: the first is kept
    ]

    pairs = pair_records(records)

    assert [(p.request_id, p.instance, p.probability, s.probability) for p, s in pairs] == [
        ("a", 0, 0.1, 0.15),
        ("a", 1, 0.2, 0.25),
    ]


def simulate(rng: np.random.Generator, days: int, rows: int, lift: float) -> list[ShadowPair]:
    """Both models see each row's shared signal plus noise of their own; the shadow's signal
    is stronger by ``lift`` (0: equally good models)."""
    pairs = []
    for d in range(days):
        outcome = rng.random(rows) < 0.2
        signal = rng.normal(0.0, 1.0, rows) + 1.2 * outcome
        old = signal + rng.normal(0.0, 0.5, rows)
        new = signal + lift * outcome + rng.normal(0.0, 0.5, rows)
        to_p = lambda x: 1.0 / (1.0 + np.exp(-(x - 1.5)))  # noqa: E731
        for i in range(rows):
            pairs.append(
                ShadowPair(
                    f"d{d}", i, f"2026-02-{d + 1:02d}", to_p(old[i]), to_p(new[i]), outcome[i]
                )
            )
    return pairs


def test_equal_models_rarely_win_and_a_clearly_better_shadow_usually_does() -> None:
    # Given 60 seeded periods of 28 days x 200 requests where both models are equally good
    rng = np.random.default_rng(16)
    gate = GateConfig()

    def wins(lift: float, periods: int) -> int:
        return sum(
            compare_shadow(
                simulate(rng, 28, 200, lift),
                gate,
                production_version="p",
                shadow_version="s",
                replicates=200,
                bins=100,
            ).clears_margin
            for _ in range(periods)
        )

    # Then the shadow "wins" in fewer than 5% of them (3 of 60 would be 5%)
    assert wins(0.0, 60) < 3
    # and a shadow whose AUC is several points higher wins most of 10 periods
    assert wins(0.6, 10) >= 8

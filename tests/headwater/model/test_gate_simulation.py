"""The gate on simulated holdouts: equal models rarely promoted, a clear gain usually is.

Seeded and small (bench/gate_simulation.py prints the full table): each holdout is reduced
as the training job reduces it (``score_bins`` histograms per day), compared by the job's
``paired_bootstrap`` and judged by the gate's ``judge`` with the default GateConfig.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from headwater.core.config import GateConfig

BENCH = Path(__file__).resolve().parents[3] / "bench" / "gate_simulation.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """bench/gate_simulation.py, imported by path (bench/ is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("gate_simulation", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("scenario", [0, 2], ids=["independent", "rho 0.9"])
def test_equal_models_are_promoted_less_than_one_time_in_twenty(
    bench: ModuleType, scenario: int
) -> None:
    # Given 120 holdouts of 28 days where the two models are equally good (the audit's
    # rule promoted 8.75% / 28.5% with persistent differences)
    rate = bench.promotion_rate(
        bench.SCENARIOS[scenario], 28, 0.0, 120, seed=11, rows=200, bins=100, replicates=200
    )

    # Then the gate promoted fewer than 5% (6 of 120 would be 5%)
    assert rate < 0.05


def test_a_gain_of_two_points_over_61_independent_days_is_promoted(bench: ModuleType) -> None:
    # Given 30 holdouts of 61 independent days where the candidate's AUC is 0.02 higher
    rate = bench.promotion_rate(
        bench.SCENARIOS[0], 61, 0.02, 30, seed=12, rows=200, bins=100, replicates=200
    )

    # Then the gate promoted at least 80% of them (what the caution costs is in docs/gate.md)
    assert rate >= 0.8
    assert GateConfig().min_holdout_days <= 61

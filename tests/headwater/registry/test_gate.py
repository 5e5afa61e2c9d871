"""The gate as one module: decision kinds, and a verdict from a version's metrics.json."""

from __future__ import annotations

import json

import pytest

from headwater.core.config import GateConfig
from headwater.model.comparison import Interval
from headwater.registry.gate import DecisionKind, judge

YEAR = {"date_range": "2013-01-01..2013-12-31", "holdout_from": "2013-11-01"}
NEXT = {"date_range": "2014-01-01..2014-12-31", "holdout_from": "2014-11-01"}


def metrics(gain: float, spread: float, days: int = 61) -> dict:
    """A candidate's metrics.json measured against production ``p`` with an interval."""
    interval = Interval("auc_roc", gain, gain - spread, gain + spread, 0.95, blocks=days)
    return {
        "holdout": {"auc_roc": 0.70 + gain, "rows": 50_000},
        "holdout_window": {"rows": 50_000, "days": days},
        "production_on_holdout": {"version": "p", "auc_roc": 0.70},
        "comparison": {"version": "p", "intervals": {"auc_roc": interval.to_dict()}},
    }


def test_decision_kinds_are_the_strings_decision_json_holds() -> None:
    assert [str(k) for k in DecisionKind] == ["promoted", "rejected", "held", "retired"]
    assert json.dumps({"decision": DecisionKind.HELD}) == '{"decision": "held"}'


@pytest.mark.parametrize(
    ("gain", "spread", "no_promote", "kind"),
    [
        (0.02, 0.005, False, DecisionKind.PROMOTED),
        (0.02, 0.019, False, DecisionKind.REJECTED),  # lower bound 0.001 < margin 0.002
        (0.02, 0.005, True, DecisionKind.HELD),
    ],
)
def test_judge_reads_the_interval_and_names_the_kind(
    gain: float, spread: float, no_promote: bool, kind: DecisionKind
) -> None:
    verdict = judge(
        metrics(gain, spread), "p", GateConfig(),
        candidate_lineage=NEXT, production_lineage=YEAR, no_promote=no_promote,
    )  # fmt: skip

    assert verdict.kind == kind, verdict.reason
    assert verdict.comparison["margin"] == 0.002


def test_judge_refuses_a_holdout_shorter_than_the_minimum_naming_found_and_needed() -> None:
    verdict = judge(
        metrics(0.05, 0.001, days=14), "p", GateConfig(),
        candidate_lineage=NEXT, production_lineage=YEAR,
    )  # fmt: skip

    assert verdict.kind == DecisionKind.REJECTED
    assert "the holdout has 14 days, fewer than the 28 required" in verdict.reason


def test_a_failed_comparison_is_named_as_such_not_as_production_failing() -> None:
    body = metrics(0.02, 0.005)
    body["comparison"] = {"version": "p", "outcome": "comparison_failed", "error": "boom"}

    with pytest.raises(ValueError, match=r"the comparison failed \(boom\).*--retrain"):
        judge(body, "p", GateConfig(), candidate_lineage=NEXT, production_lineage=YEAR)


def test_a_metric_the_bootstrap_refused_reaches_the_gate_with_its_reason() -> None:
    # Given a comparison whose AUC interval was refused: too many resamples without a positive
    body = metrics(0.02, 0.005)
    reason = (
        "240 of 2000 resamples could not compute auc_roc (more than 1%: too few days with "
        "positives)"
    )
    body["comparison"] |= {"outcome": "compared", "intervals": {}, "refused": {"auc_roc": reason}}

    # When the gate judges it
    verdict = judge(body, "p", GateConfig(), candidate_lineage=NEXT, production_lineage=YEAR)

    # Then it is rejected for that reason, not for "no interval measured"
    assert verdict.kind == DecisionKind.REJECTED
    assert f"no confidence interval on the gain: {reason}" in verdict.reason


def test_a_refusal_of_another_metric_does_not_stop_the_gates_own() -> None:
    body = metrics(0.02, 0.005)
    body["comparison"]["refused"] = {"auc_pr": "auc_pr cannot be computed on this holdout"}

    verdict = judge(body, "p", GateConfig(), candidate_lineage=NEXT, production_lineage=YEAR)

    assert verdict.kind == DecisionKind.PROMOTED, verdict.reason


def test_production_failing_to_score_is_named_by_the_interval_reader_too() -> None:
    from headwater.registry.gate import gate_interval

    body = metrics(0.02, 0.005)
    body["comparison"] = {"version": "p", "outcome": "production_failed", "error": "no lookups"}

    with pytest.raises(ValueError, match=r"production p: it could not score the holdout \(no "):
        gate_interval(body, "p", "auc_roc")

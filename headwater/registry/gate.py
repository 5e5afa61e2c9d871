"""The quality gate: may a candidate replace production? One module, for Luigi and the CLI.

The training job scores production on the candidate's holdout and puts a confidence
interval on the gain (:mod:`headwater.model.comparison`); this module reads those numbers
from the candidate's ``metrics.json``, refuses an unfair comparison
(:func:`comparison_problems`), decides (:func:`decide`: the interval's lower bound must
clear the margin) and names the outcome (:func:`judge`, a :class:`Verdict`). Nothing here
reads or writes the lake: the caller passes the version's files and records the verdict
(:meth:`headwater.registry.registry.Registry.record_verdict`). The settings, with one
default each, are :class:`headwater.core.config.GateConfig`; what the gate guarantees is
in ``docs/gate.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from headwater.core.config import GateConfig
from headwater.core.records import Lineage, RecordError
from headwater.model.comparison import ComparisonOutcome, Interval, signed
from headwater.model.evaluation import METRIC_NAMES, SMALLER_IS_BETTER
from headwater.serving.store import DecisionKind

#: The holdout metrics the gate can compare (``usecase.<name>.gate.metric``).
GATE_METRICS: tuple[str, ...] = ("auc_roc", "auc_pr", "log_loss", "brier")
#: Gate metrics where the smaller value is the better model (losses).
LOWER_IS_BETTER = SMALLER_IS_BETTER & frozenset(GATE_METRICS)
# Metric differences closer than this to the margin count as equal to it (float noise).
_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Decision:
    """The gate's verdict on a candidate, with a sentence a human can act on.

    ``comparison`` holds the numbers behind it (point gain, its interval, the margin), as
    recorded in ``decision.json``; empty when there was nothing to compare with.
    """

    promote: bool
    reason: str
    comparison: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """What to record for a candidate: its kind, the reason and the gate's numbers."""

    kind: DecisionKind
    reason: str
    comparison: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingWindow:
    """A version's dates, from its lineage.

    It trained on ``start..holdout_from - 1`` and was held out on ``holdout_from..end``.
    """

    start: date
    end: date
    holdout_from: date

    @property
    def train_days(self) -> int:
        """Calendar days of the training window."""
        return (self.holdout_from - self.start).days

    @property
    def last_trained(self) -> date:
        """The last day the version trained on."""
        return self.holdout_from - timedelta(days=1)

    @classmethod
    def of(cls, lineage: Lineage | Mapping[str, Any] | None) -> TrainingWindow | None:
        """A version's range and ``holdout_from`` (its lineage); None when absent or bad."""
        if isinstance(lineage, Mapping):
            try:
                lineage = Lineage.from_dict(lineage)
            except RecordError:
                return None
        if not isinstance(lineage, Lineage) or not (lineage.range and lineage.holdout_from):
            return None
        return cls(lineage.range.start, lineage.range.end, lineage.holdout_from)


def higher_is_better(metric: str) -> bool:
    """False for losses (log loss, Brier score, RMSE...): the smaller, the better."""
    return metric not in SMALLER_IS_BETTER


def comparison_problems(
    candidate: TrainingWindow | None,
    production: TrainingWindow | None,
    gate: GateConfig,
    *,
    production_version: str,
    holdout_rows: int,
    holdout_days: int,
    allow_shorter_window: bool = False,
    no_interval: str | None = None,
) -> list[str]:
    """Why candidate and production cannot be compared fairly on the candidate's holdout.

    Both were scored on the same holdout rows; the comparison is refused when that holdout
    is too small (``gate.min_holdout_rows``, ``gate.min_holdout_days``), when production
    trained on any of its days (production would be graded on what it has seen), or when
    the candidate trained on a much shorter window than production (``gate.min_window_ratio``,
    unless ``allow_shorter_window`` or ``gate.allow_shorter_window``), or when the training
    job could put no confidence interval on the gain (``no_interval``, its reason). An empty
    list: the comparison is fair.
    """
    problems = []
    if no_interval:
        problems.append(f"no confidence interval on the gain: {no_interval}")
    if holdout_days < gate.min_holdout_days:
        problems.append(
            f"the holdout has {holdout_days} days, fewer than the {gate.min_holdout_days} "
            "required (gate.min_holdout_days)"
        )
    if holdout_rows < gate.min_holdout_rows:
        problems.append(
            f"the holdout has {holdout_rows} rows ({holdout_rows / max(holdout_days, 1):.1f} a day "
            f"over {holdout_days} days), fewer than the {gate.min_holdout_rows} required "
            "(gate.min_holdout_rows: set it to fit the use case's grain)"
        )
    if candidate is None or production is None:
        whose = "candidate" if candidate is None else f"production {production_version}"
        problems.append(f"the training window of {whose} is unknown (no lineage.json dates)")
        return problems
    if candidate.holdout_from <= production.last_trained and candidate.end >= production.start:
        problems.append(
            f"the holdout {candidate.holdout_from}..{candidate.end} overlaps the training "
            f"window {production.start}..{production.last_trained} of production "
            f"{production_version}: production would be graded on days it trained on"
        )
    shorter = allow_shorter_window or gate.allow_shorter_window
    if not shorter and candidate.train_days < gate.min_window_ratio * production.train_days:
        problems.append(
            f"the candidate trained on {candidate.train_days} days, less than "
            f"{gate.min_window_ratio:g} x the {production.train_days} days of production "
            f"{production_version} (gate.min_window_ratio; override with "
            "gate.allow_shorter_window or --allow-shorter-window)"
        )
    return problems


def decide(
    candidate: Mapping[str, Any],
    production: Mapping[str, Any] | None,
    gate: GateConfig | None = None,
    *,
    interval: Interval | None = None,
    refusals: Sequence[str] = (),
) -> Decision:
    """Promote when there is no production model, or the candidate surely beats it by the margin.

    Args:
        candidate: the candidate's metrics on its holdout.
        production: the production model's metrics on the same holdout, None when there is
            no production model.
        gate: the metric compared in both mappings and the margin (default: GateConfig's).
        interval: the confidence interval on (candidate - production) of the metric: the
            lower bound of the gain, not the point gain, must clear the margin. Required
            whenever there is a production model and no refusal: a point gain alone never
            promotes.
        refusals: reasons the comparison is not fair (:func:`comparison_problems`): any
            of them rejects the candidate.

    Returns:
        The decision and a sentence quoting both numbers (and the interval).
    """
    gate = gate or GateConfig()
    metric, margin, better = gate.metric, gate.margin, higher_is_better(gate.metric)
    label = METRIC_NAMES.get(metric, metric)
    new = _metric_value(candidate, metric, "candidate")
    if production is None:
        return Decision(True, f"no production model yet: candidate {label} {new:.4f} goes first")
    old = _metric_value(production, metric, "production")
    gain = new - old if better else old - new
    sense = "" if better else " (lower is better)"
    numbers: dict[str, Any] = {
        "metric": metric,
        "candidate": new,
        "production": old,
        "gain": gain,
        "margin": margin,
        "higher_is_better": better,
    }
    if interval is not None:  # quoted wherever the numbers are, even beside a refusal
        low, high = interval.lower, interval.upper
        if not better:  # a gain in a loss is a fall: the bounds swap and change sign
            low, high = -high, -low
        numbers |= {"lower_gain": low, "upper_gain": high, "interval": interval.to_dict()}
    if refusals:
        numbers["refusals"] = list(refusals)
        reason = "cannot compare candidate with production fairly: " + "; ".join(refusals)
        return Decision(False, reason, numbers)
    if interval is None:
        raise ValueError(
            f"no confidence interval on the {label} gain over production: the gate never "
            "promotes on a point gain alone (pass the interval, or a refusal saying why "
            "there is none)"
        )
    quoted = (
        f"candidate {label} {new:.4f} vs production {old:.4f}: gain {signed(gain)}, "
        f"{interval.confidence * 100:g}% interval [{signed(low)}, {signed(high)}] "
        f"({interval.method.split(' (')[0]} over {interval.blocks} blocks)"
    )
    if _clears(low, margin):
        return Decision(True, f"{quoted}; its lower bound clears margin {margin:g}{sense}", numbers)
    return Decision(
        False, f"{quoted}; its lower bound does not clear margin {margin:g}{sense}", numbers
    )


def gate_baseline(metrics: Mapping[str, Any], production: str | None) -> dict[str, Any] | None:
    """The production model's metrics on the candidate's holdout (None: no production yet).

    The training job scores the production model on the same holdout; if it could not
    (say, a model of another feature set), the gate cannot compare and says so.
    """
    if production is None:
        return None
    measured = metrics.get("production_on_holdout") or {}
    if measured.get("version") != production or "error" in measured:
        why = measured.get("error", "it was not measured on this holdout")
        raise ValueError(f"cannot compare with production {production}: {why}")
    return dict(measured)


def gate_interval(metrics: Mapping[str, Any], production: str, metric: str) -> Interval | None:
    """The training job's interval on (candidate - production) of the gate's metric.

    None when the job said why it has none (:func:`why_no_interval`: the gate refuses for
    it): the holdout as a whole (``no_interval``), or this metric (``refused``, e.g. too
    many resamples without a positive). Raises ValueError when production could not score
    the holdout, when the comparison itself failed, or when nothing was measured.
    """
    comparison = metrics.get("comparison") or {}
    intervals = comparison.get("intervals") or {}
    ours = comparison.get("version") == production
    outcome = comparison.get("outcome")
    if ours and outcome == ComparisonOutcome.PRODUCTION_FAILED:
        raise ValueError(
            f"cannot compare with production {production}: it could not score the holdout "
            f"({comparison.get('error', 'no reason recorded')})"
        )
    if ours and (outcome == ComparisonOutcome.COMPARISON_FAILED or comparison.get("error")):
        raise ValueError(
            f"cannot compare with production {production}: the comparison failed "
            f"({comparison.get('error', 'no reason recorded')}); train again (--retrain) "
            "once it is mended"
        )
    if ours and why_no_interval(metrics, metric):
        return None
    if not ours or metric not in intervals:
        raise ValueError(
            f"cannot compare with production {production}: the training job measured no "
            f"confidence interval on the difference of {metric}"
        )
    return Interval.from_dict(intervals[metric])


def why_no_interval(metrics: Mapping[str, Any], metric: str) -> str | None:
    """The job's reason for measuring no interval on ``metric`` (None: it gave none)."""
    comparison = metrics.get("comparison") or {}
    refused = comparison.get("refused") or {}
    return comparison.get("no_interval") or refused.get(metric) or None


def comparison_failed(metrics: Mapping[str, Any]) -> bool:
    """True when the training job's comparison with production itself failed (not production
    failing to score): such a version is trained again rather than reused."""
    comparison = metrics.get("comparison") or {}
    return comparison.get("outcome") == ComparisonOutcome.COMPARISON_FAILED


def judge(
    metrics: Mapping[str, Any],
    production: str | None,
    gate: GateConfig,
    *,
    candidate_lineage: Mapping[str, Any] | None = None,
    production_lineage: Mapping[str, Any] | None = None,
    no_promote: bool = False,
    allow_shorter_window: bool = False,
) -> Verdict:
    """The gate on one candidate: its ``metrics.json`` against ``production`` (None: none).

    ``no_promote``: an exploratory run; the verdict is :attr:`DecisionKind.HELD` and says
    what the gate would have done. Raises ValueError when production could not be measured
    on the holdout (the gate cannot compare, and fails closed).
    """
    production_metrics = gate_baseline(metrics, production)
    interval, refusals = None, []
    if production is not None:
        interval = gate_interval(metrics, production, gate.metric)
        window = metrics.get("holdout_window") or {}
        refusals = comparison_problems(
            TrainingWindow.of(candidate_lineage),
            TrainingWindow.of(production_lineage),
            gate,
            production_version=production,
            holdout_rows=int(window.get("rows", metrics["holdout"].get("rows", 0))),
            holdout_days=int(window.get("days", 0)),
            allow_shorter_window=allow_shorter_window,
            no_interval=None if interval else why_no_interval(metrics, gate.metric),
        )
    decision = decide(
        metrics["holdout"], production_metrics, gate, interval=interval, refusals=refusals
    )
    kind = DecisionKind.PROMOTED if decision.promote else DecisionKind.REJECTED
    if not no_promote:
        return Verdict(kind, decision.reason, decision.comparison)
    reason = (
        "exploratory run (--no-promote): production untouched; the gate would "
        f"have {kind} it: {decision.reason}"
    )
    return Verdict(DecisionKind.HELD, reason, decision.comparison)


def _clears(gain: float, margin: float) -> bool:
    """A gain strictly above the margin (one within float noise of it counts as equal)."""
    return gain > margin and not math.isclose(gain, margin, rel_tol=0.0, abs_tol=_TOLERANCE)


def _metric_value(metrics: Mapping[str, Any], metric: str, whose: str) -> float:
    if metric not in metrics:
        known = ", ".join(sorted(metrics)) or "none"
        raise ValueError(f"{whose} metrics have no {metric!r} (available: {known})")
    value = metrics[metric]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{whose} {metric} is {value!r}, not a finite number")
    return float(value)

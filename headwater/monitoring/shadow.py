"""Shadow against production, live: the gate's paired comparison on the same served requests.

While a shadow model is set (``headwater models shadow <version>``), the API records, for every
captured instance, production's answer and the shadow's (``CaptureRecord.role``; same request
id and instance). Once the outcomes arrive, both models have been scored on exactly the same
rows, as the gate's candidate and production are on a holdout, so the same comparison
applies (``docs/gate.md``): per day, a pair of score histograms
(:func:`headwater.model.comparison.score_bins`, consecutive days grouped beyond
:data:`~headwater.model.comparison.MAX_BLOCKS`), the paired circular block bootstrap
(:func:`~headwater.model.comparison.paired_bootstrap`, blocks sized from the persistence of the
gate metric's daily differences) and the gate's rule (:func:`headwater.registry.gate.decide`:
the interval's lower bound on the gain must clear ``gate.margin``; fewer than
``gate.min_holdout_days`` days or ``gate.min_holdout_rows`` pairs with an outcome are refused).

The contract with the monitoring partitions (``monitoring/<usecase>/<partition>/``, whose
``shadow`` section is this module's output):

* input: :class:`ShadowPair` records, one per request instance both models answered, with the
  realized outcome (None while it has not arrived: counted in ``without_outcome``, never
  compared) and the day the request was served (``CaptureRecord.served_at[:10]`` or the use
  case's local day: any sortable ``YYYY-MM-DD``). :func:`pair_records` builds the
  ``(production, shadow)`` record pairs from captured records; the caller joins outcomes.
* call: ``compare_shadow(pairs, gate, production_version=..., shadow_version=...)`` with the
  use case's :class:`~headwater.core.config.GateConfig`; pure (no lake, no clock), seeded.
* output: a :class:`ShadowComparison`; its ``to_dict()`` is the ``shadow`` section of the
  partition's published record, read back with :meth:`ShadowComparison.from_dict`
  (:func:`headwater.monitoring.published.shadow_of` computes it for the monitoring task, and
  :func:`headwater.monitoring.published.latest_comparison` finds the newest one of a shadow
  version in the published records: ``models show`` and ``models promote`` cite it).
  ``gain``, ``lower`` and ``upper`` are oriented so that positive means the shadow is better
  (for a loss, production minus shadow). ``verdict`` is ``better`` only when ``lower`` clears
  ``margin`` and nothing was refused.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from headwater.core.config import GateConfig
from headwater.model.comparison import (
    COMPARISON_BINS,
    FIELDS,
    REPLICATES,
    SEED,
    TooFewBlocks,
    block_count,
    block_of,
    paired_bootstrap,
    score_bins,
    signed,
)
from headwater.model.evaluation import EPSILON, METRIC_NAMES, exact_metrics
from headwater.monitoring.live import score_bins as exact_bins
from headwater.registry.gate import decide
from headwater.serving.capture import PRODUCTION, SHADOW, CaptureRecord


class ShadowVerdict(StrEnum):
    """What the live comparison says of the shadow (``ShadowComparison.verdict``)."""

    BETTER = "better"  # the interval's lower bound on the gain clears the margin
    NOT_BETTER = "not_better"  # it does not: no live evidence for promoting the shadow
    UNDECIDED = "undecided"  # no fair comparison yet (too few days or pairs, no interval)


@dataclass(frozen=True)
class ShadowPair:
    """One request instance answered by both models, and its realized outcome."""

    request_id: str
    instance: int
    #: The day it was served, ``YYYY-MM-DD`` (the unit the bootstrap resamples).
    day: str
    #: Production's probability (the answer returned to the client).
    production: float
    #: The shadow's probability for the same request.
    shadow: float
    #: The realized outcome (True: the positive class), None while it has not arrived.
    outcome: bool | None


@dataclass(frozen=True)
class ShadowComparison:
    """The gate metric of shadow and production on the same served requests, and the verdict."""

    production_version: str
    shadow_version: str
    metric: str
    #: Each model's metric on the pairs with an outcome (None: no pairs).
    production: float | None
    shadow: float | None
    #: shadow - production, oriented: positive means the shadow is better (losses flipped).
    gain: float | None
    #: The bootstrap interval on ``gain`` (None: none could be put, ``refusals`` say why).
    lower: float | None
    upper: float | None
    confidence: float
    margin: float
    #: Days (blocks of the bootstrap) and pairs with an outcome compared.
    days: int
    pairs: int
    #: Pairs whose outcome has not arrived (not compared).
    without_outcome: int
    verdict: ShadowVerdict
    #: The gate's sentence, quoting both numbers and the interval.
    reason: str
    refusals: list[str] = field(default_factory=list)
    block_length: int = 0

    @property
    def clears_margin(self) -> bool:
        """True when the live evidence supports promoting the shadow."""
        return self.verdict == ShadowVerdict.BETTER

    def text(self) -> str:
        """One line for people: gain, interval, days and pairs, verdict."""
        label = METRIC_NAMES.get(self.metric, self.metric)
        if self.gain is None:
            return f"no paired outcomes yet ({self.without_outcome} waiting for their outcome)"
        text = f"shadow {self.shadow_version} vs production {self.production_version}: {label} "
        text += f"gain {signed(self.gain)}"
        if self.lower is not None and self.upper is not None:
            text += f", {self.confidence * 100:g}% interval [{signed(self.lower)}, "
            text += f"{signed(self.upper)}]"
        text += f" over {self.days} days, {self.pairs:,} pairs (margin {self.margin:g}): "
        return text + str(self.verdict).replace("_", " ")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the monitoring partition's ``shadow`` section)."""
        return {**asdict(self), "verdict": str(self.verdict)}

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> ShadowComparison:
        """Read :meth:`to_dict` output.

        Raises:
            ValueError: not a shadow comparison.
        """
        try:
            values = {key: body[key] for key in cls.__dataclass_fields__ if key in body}
            values["verdict"] = ShadowVerdict(values["verdict"])
            values["refusals"] = list(values.get("refusals", []))
            return cls(**values)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a shadow comparison: {exc}") from None


def pair_records(
    records: Iterable[CaptureRecord],
) -> list[tuple[CaptureRecord, CaptureRecord]]:
    """The (production, shadow) records of the same request instance, in production's order.

    Instances only one model answered (the shadow was off, failed, or was sampled out) are
    left out; so are duplicates (the first of each identity is kept).
    """
    by_role: dict[str, dict[tuple[str, int], CaptureRecord]] = {PRODUCTION: {}, SHADOW: {}}
    for record in records:
        if record.role in by_role:
            by_role[record.role].setdefault((record.request_id, record.instance), record)
    shadow = by_role[SHADOW]
    return [(p, shadow[key]) for key, p in by_role[PRODUCTION].items() if key in shadow]


def day_histograms(
    scores: np.ndarray, outcomes: np.ndarray, blocks: np.ndarray, count: int, bins: int
) -> np.ndarray:
    """Per block, the comparison's histogram ``(count, bins, FIELDS)`` of ``scores``."""
    index = blocks * bins + score_bins(scores, bins)
    clipped = np.clip(scores, EPSILON, 1.0 - EPSILON)
    y = outcomes.astype(float)
    columns = (
        np.ones_like(scores),
        y,
        scores,
        -(y * np.log(clipped) + (1.0 - y) * np.log(1.0 - clipped)),
        (scores - y) ** 2,
        ((scores > 0.5) == outcomes).astype(float),
    )
    out = np.stack([np.bincount(index, c, count * bins) for c in columns], -1)
    return out.reshape(count, bins, len(FIELDS))


def compare_shadow(
    pairs: Sequence[ShadowPair],
    gate: GateConfig,
    *,
    production_version: str,
    shadow_version: str,
    replicates: int = REPLICATES,
    seed: int = SEED,
    bins: int = COMPARISON_BINS,
) -> ShadowComparison:
    """Compare the shadow with production on the same served requests, as the gate does.

    Args:
        pairs: the request instances both models answered, with their outcomes.
        gate: the use case's gate settings (metric, margin, confidence, minimum days and rows).
        production_version: the production version the pairs were answered by.
        shadow_version: the shadow version.
        replicates: bootstrap replicates; seed: their generator's seed (reproducible).
        bins: score bins per day and model.

    Returns:
        The comparison; its verdict is ``better`` only when the interval's lower bound on
        the gain clears ``gate.margin`` and neither the days nor the pairs are too few.
    """
    known = [p for p in pairs if p.outcome is not None]
    waiting = len(pairs) - len(known)
    base = {
        "production_version": production_version,
        "shadow_version": shadow_version,
        "metric": gate.metric,
        "confidence": gate.confidence,
        "margin": gate.margin,
        "pairs": len(known),
        "without_outcome": waiting,
    }
    if not known:
        reason = "no pair of answers has its outcome yet"
        return ShadowComparison(
            **base,
            production=None,
            shadow=None,
            gain=None,
            lower=None,
            upper=None,
            days=0,
            verdict=ShadowVerdict.UNDECIDED,
            reason=reason,
            refusals=[reason],
        )
    days = sorted({p.day for p in known})
    position = {day: i for i, day in enumerate(days)}
    count = block_count(len(days))
    blocks = np.array([block_of(position[p.day], len(days)) for p in known])
    outcomes = np.array([bool(p.outcome) for p in known])
    old = np.array([p.production for p in known], dtype=float)
    new = np.array([p.shadow for p in known], dtype=float)
    exact_old = exact_metrics(exact_bins(old, outcomes.astype(float)))
    exact_new = exact_metrics(exact_bins(new, outcomes.astype(float)))
    points = {
        m: exact_new[m] - exact_old[m]
        for m in exact_new
        if m in exact_old and math.isfinite(exact_new[m] - exact_old[m])
    }
    refusals = []
    if len(days) < gate.min_holdout_days:
        refusals.append(
            f"{len(days)} days of paired outcomes, fewer than the {gate.min_holdout_days} the "
            "gate requires (gate.min_holdout_days)"
        )
    if len(known) < gate.min_holdout_rows:
        refusals.append(
            f"{len(known)} pairs with an outcome, fewer than the {gate.min_holdout_rows} the "
            "gate requires (gate.min_holdout_rows)"
        )
    interval, length = None, 0
    try:
        boot = paired_bootstrap(
            day_histograms(new, outcomes, blocks, count, bins),
            day_histograms(old, outcomes, blocks, count, bins),
            confidence=gate.confidence,
            points=points,
            replicates=replicates,
            seed=seed,
            metric=gate.metric,
        )
        length = boot.block_length
        if gate.metric in boot:
            interval = boot[gate.metric]
        else:
            refusals.append(boot.refused.get(gate.metric, f"no interval on {gate.metric}"))
    except TooFewBlocks as exc:
        refusals.append(f"no confidence interval on the gain: {exc}")
    if gate.metric not in exact_new or not math.isfinite(exact_new[gate.metric]):
        reason = f"{gate.metric} cannot be computed on these pairs (one class only?)"
        return ShadowComparison(
            **base,
            production=None,
            shadow=None,
            gain=None,
            lower=None,
            upper=None,
            days=len(days),
            verdict=ShadowVerdict.UNDECIDED,
            reason=reason,
            refusals=[*refusals, reason],
        )
    decision = decide(
        {gate.metric: exact_new[gate.metric]},
        {gate.metric: exact_old[gate.metric]},
        gate,
        interval=interval,
        refusals=refusals,  # never empty when there is no interval
    )
    numbers = decision.comparison
    if decision.promote:
        verdict = ShadowVerdict.BETTER
    elif refusals:
        verdict = ShadowVerdict.UNDECIDED
    else:
        verdict = ShadowVerdict.NOT_BETTER
    return ShadowComparison(
        **base,
        production=float(numbers["production"]),
        shadow=float(numbers["candidate"]),
        gain=float(numbers["gain"]),
        lower=numbers.get("lower_gain"),
        upper=numbers.get("upper_gain"),
        days=len(days),
        verdict=verdict,
        reason=decision.reason.replace("candidate", "shadow"),
        refusals=list(refusals),
        block_length=length,
    )

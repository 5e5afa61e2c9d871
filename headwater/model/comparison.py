"""How sure is a gain? A paired block bootstrap of (candidate - production) on one holdout.

The gate compares two models scored on the same holdout rows. Its point difference alone
cannot tell a better model from a lucky holdout, so the training job also reduces the pair
of scored holdouts to a bounded structure, and this module resamples it.

The choice, and its assumption:

- **Blocks are days** (at most :data:`MAX_BLOCKS`, consecutive days grouped when the
  holdout is longer). Rows of one day share weather and traffic, so they are not
  independent; days are assumed to be (approximately) independent and exchangeable. A
  short holdout therefore gives a wide interval, which is the point.
- **Each block is a pair of score histograms** (:data:`COMPARISON_BINS` equal-width bins of
  [0, 1] per model, with the sums of :class:`headwater.model.evaluation.ScoreBin`), computed in
  one Spark aggregation: at most ``2 x blocks x bins`` small rows reach the driver,
  whatever the number of holdout rows. Both models' histograms of a block come from the
  same rows, so resampling blocks keeps the pairing (the correlation between the two
  models' errors is what makes a paired interval narrow).
- **A replicate** draws blocks with replacement, sums their histograms and computes each
  metric for both models: AUC from binned scores (ties within a bin count one half), the
  means exactly. The interval is the percentile interval of the replicates' differences,
  shifted by the gap between the exact point difference (Spark's exact AUC) and the binned
  one, so it is centred on the number the gate quotes. Replicates use a fixed seed: the same
  holdout always gives the same interval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from headwater.model.evaluation import METRIC_NAMES

#: Equal-width score bins per block and model (fine enough that ties within a bin are rare).
COMPARISON_BINS = 1000
#: At most this many blocks: longer holdouts group consecutive days.
MAX_BLOCKS = 100
#: Fewer blocks than this get no interval: resampling 2 days has 3 outcomes, not a distribution.
MIN_BLOCKS = 5
#: Bootstrap replicates (resamples of the blocks).
REPLICATES = 2000
#: The replicates' random generator's seed: the interval is reproducible.
SEED = 20130101
#: The sums each histogram bin carries, in order (as :class:`headwater.model.evaluation.ScoreBin`).
FIELDS = ("count", "positives", "score_sum", "log_loss_sum", "squared_error_sum", "correct_sum")
#: The metrics this module can put an interval on.
METRICS = ("auc_roc", "auc_pr", "log_loss", "brier", "accuracy_at_0_5")
METHOD = "paired block bootstrap (blocks: holdout days)"
# Replicates summed at once (bounds the memory of one step: chunk x bins x fields floats).
_CHUNK = 100


class TooFewBlocks(ValueError):
    """A holdout of too few blocks (days) for a bootstrap interval: the gate cannot weigh it."""


@dataclass(frozen=True)
class Interval:
    """A confidence interval on (candidate - production) of one metric."""

    metric: str
    difference: float
    lower: float
    upper: float
    confidence: float
    method: str = METHOD
    blocks: int = 0
    replicates: int = REPLICATES

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (as stored in metrics.json and decision.json)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> Interval:
        """Read an interval written by :meth:`to_dict`."""
        return cls(**{key: body[key] for key in cls.__dataclass_fields__ if key in body})


def signed(value: float, digits: int = 4) -> str:
    """A difference with its sign, as printed: ``+0.0023``; a difference that rounds to zero
    is ``+0.0000``, never ``-0.0000``."""
    return f"{round(float(value), digits) + 0.0:+.{digits}f}"


def block_width(days: int, max_blocks: int = MAX_BLOCKS) -> int:
    """Days per block for a holdout of ``days`` days: 1, or more to stay within ``max_blocks``."""
    return -(-days // max_blocks) if days > max_blocks else 1


def block_count(days: int, max_blocks: int = MAX_BLOCKS) -> int:
    """How many blocks a holdout of ``days`` days has (at least one)."""
    return max(1, -(-days // block_width(days, max_blocks)))


def block_of(day_index: int, days: int, max_blocks: int = MAX_BLOCKS) -> int:
    """The block of the ``day_index``-th holdout day: one per day, consecutive days grouped."""
    return day_index // block_width(days, max_blocks)


def histogram_array(rows: Sequence[Mapping[str, Any]], blocks: int, bins: int) -> np.ndarray:
    """Arrange collected ``{block, bin, <FIELDS>}`` rows as an array ``(blocks, bins, fields)``."""
    out = np.zeros((blocks, bins, len(FIELDS)))
    for row in rows:
        block, bin_ = int(row["block"]), int(row["bin"])
        if not (0 <= block < blocks and 0 <= bin_ < bins):
            raise ValueError(
                f"block {block} is outside the holdout's {blocks} blocks, or bin {bin_} outside "
                f"its {bins} bins: rows dated outside the holdout window were compared"
            )
        out[block, bin_] = [float(row[f] or 0.0) for f in FIELDS]
    return out


def metric_values(histograms: np.ndarray) -> dict[str, np.ndarray]:
    """Each metric of summed histograms ``(..., bins, fields)``, vectorised over ``...``."""
    count, pos = histograms[..., 0], histograms[..., 1]
    neg = count - pos
    n, p = count.sum(-1), pos.sum(-1)
    q = n - p
    with np.errstate(invalid="ignore", divide="ignore"):
        # Bins ascend by score: positives scored above bin i are p - cumsum(pos)[i].
        above = p[..., None] - np.cumsum(pos, -1)
        auc = (neg * (above + pos / 2.0)).sum(-1) / (p * q)
        # Precision-recall from the highest score down, as headwater.model.evaluation.pr_curve.
        tp = np.cumsum(pos[..., ::-1], -1)
        predicted = np.cumsum(count[..., ::-1], -1)
        precision = np.where(predicted > 0, tp / np.where(predicted > 0, predicted, 1), np.nan)
        first = np.take_along_axis(precision, np.argmax(predicted > 0, -1)[..., None], -1)
        precision = np.where(np.isnan(precision), first, precision)
        recall = tp / p[..., None]
        recall = np.concatenate([np.zeros_like(recall[..., :1]), recall], -1)
        precision = np.concatenate([first, precision], -1)
        auc_pr = (recall[..., 1:] - recall[..., :-1]) * (precision[..., 1:] + precision[..., :-1])
        auc_pr = auc_pr.sum(-1) / 2.0
        return {
            "auc_roc": auc,
            "auc_pr": auc_pr,
            "log_loss": histograms[..., 3].sum(-1) / n,
            "brier": histograms[..., 4].sum(-1) / n,
            "accuracy_at_0_5": histograms[..., 5].sum(-1) / n,
        }


def paired_bootstrap(
    candidate: np.ndarray,
    production: np.ndarray,
    *,
    confidence: float = 0.95,
    points: Mapping[str, float] | None = None,
    replicates: int = REPLICATES,
    seed: int = SEED,
) -> dict[str, Interval]:
    """Intervals on (candidate - production) for each of :data:`METRICS`.

    Args:
        candidate: the candidate's histograms, ``(blocks, bins, fields)``.
        production: production's histograms of the same blocks and bins.
        confidence: two-sided level, e.g. 0.95 (the 2.5% and 97.5% percentiles).
        points: the exact point differences by metric (default: the binned ones).
        replicates: resamples of the blocks.
        seed: the generator's seed.

    Raises:
        TooFewBlocks: fewer than :data:`MIN_BLOCKS` blocks (days): no interval, and why.
    """
    if candidate.shape != production.shape or candidate.ndim != 3:
        raise ValueError(f"histograms differ: {candidate.shape} vs {production.shape}")
    blocks = candidate.shape[0]
    if blocks < MIN_BLOCKS:  # blocks are days below MAX_BLOCKS days
        raise TooFewBlocks(
            f"{blocks} day(s) of holdout: too few blocks for an interval (at least {MIN_BLOCKS})"
        )
    binned = {
        m: float(c - p)
        for (m, c), p in zip(
            metric_values(candidate.sum(0)).items(),
            metric_values(production.sum(0)).values(),
            strict=True,
        )
    }
    rng = np.random.default_rng(seed)
    flat_c, flat_p = candidate.reshape(blocks, -1), production.reshape(blocks, -1)
    draws: dict[str, list[np.ndarray]] = {m: [] for m in METRICS}
    for start in range(0, replicates, _CHUNK):
        size = min(_CHUNK, replicates - start)
        # How often each block is drawn in each replicate (blocks drawn with replacement).
        weights = rng.multinomial(blocks, np.full(blocks, 1.0 / blocks), size=size).astype(float)
        shape = (size, *candidate.shape[1:])
        new = metric_values((weights @ flat_c).reshape(shape))
        old = metric_values((weights @ flat_p).reshape(shape))
        for metric in METRICS:
            draws[metric].append(new[metric] - old[metric])
    alpha = (1.0 - confidence) / 2.0
    out = {}
    for metric in METRICS:
        values = np.concatenate(draws[metric])
        values = values[np.isfinite(values)]
        point = float((points or {}).get(metric, binned[metric]))
        if not values.size or not np.isfinite(binned[metric]):
            continue
        low, high = np.quantile(values, [alpha, 1.0 - alpha])
        shift = point - binned[metric]
        out[metric] = Interval(
            metric=metric,
            difference=point,
            lower=float(low + shift),
            upper=float(high + shift),
            confidence=confidence,
            blocks=blocks,
            replicates=replicates,
        )
    return out


def comparison_text(numbers: Mapping[str, Any]) -> str:
    """The gate's numbers in one line: gain, its interval, the margin ("": none recorded).

    ``numbers`` is the ``comparison`` of a ``decision.json``
    (:func:`headwater.registry.registry.decide`).
    """
    if not isinstance(numbers.get("gain"), int | float):
        return ""
    metric = str(numbers.get("metric", ""))
    text = f"{METRIC_NAMES.get(metric, metric)} gain {signed(numbers['gain'])}"
    if "lower_gain" in numbers:
        interval = numbers.get("interval") or {}
        text += (
            f", {float(interval.get('confidence', 0)) * 100:g}% interval "
            f"[{signed(numbers['lower_gain'])}, {signed(numbers['upper_gain'])}] over "
            f"{interval.get('blocks', '?')} blocks"
        )
    return f"{text} (margin {numbers.get('margin', 0):g})"

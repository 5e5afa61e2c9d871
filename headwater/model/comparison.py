"""How sure is a gain? A paired circular block bootstrap of (candidate - production).

The gate compares two models scored on the same holdout rows. Its point difference alone
cannot tell a better model from a lucky holdout, so the training job also reduces the pair
of scored holdouts to a bounded structure, and this module resamples it. What the gate
guarantees with it, and at what cost in power, is in ``docs/gate.md``.

The choice, and its assumption:

- **Days are the unit** (at most :data:`MAX_BLOCKS`, consecutive days grouped when the
  holdout is longer): rows of one day share weather and traffic, so they are not
  independent. Neither are days: a difference between the two models can persist for
  several days. So days are resampled in **circular blocks of consecutive days** whose
  length follows the persistence of the gate metric's daily differences
  (:func:`persistence_of`: a bias-corrected lag-1 autocorrelation raised to its one-sided
  95% upper bound, and the decay of later lags); the assumption left is that the daily
  differences are stationary and behave like an AR(1) under day noise. A holdout of too
  few *effective* blocks (days / variance inflation, :data:`MIN_EFFECTIVE_BLOCKS`) gets no
  interval; the spread is scaled up to the variance the persistence implies and widened by
  ``t(k - 1) / z`` for ``k`` effective blocks (the percentile bootstrap is too narrow on
  few blocks). Politis-White (:func:`optimal_block_length`) is kept for measuring only.
- **Each day is a pair of score histograms** (:data:`COMPARISON_BINS` bins of the score's
  log-odds over [-:data:`LOGIT_RANGE`, +:data:`LOGIT_RANGE`] per model, so rare-positive
  scores near 0 spread over many bins; sums of :class:`headwater.model.evaluation.ScoreBin`),
  computed in one Spark aggregation: at most ``2 x blocks x bins`` small rows reach the
  driver. Both models' histograms of a day come from the same rows, so resampling days
  keeps the pairing.
- **A replicate** draws blocks, sums their histograms and computes each metric for both
  models: AUC from binned scores (ties within a bin count one half), the means exactly. A
  replicate whose metric cannot be computed (no positive drawn) is counted (``dropped``);
  above :data:`MAX_DROPPED_SHARE` of the replicates the metric gets no interval. The
  interval is the percentile interval of the replicates' differences, shifted by the gap
  between the exact point difference (Spark's exact AUC) and the binned one (recorded as
  ``binned_error``), so it is centred on the number the gate quotes. Replicates use a fixed
  seed: the same holdout always gives the same interval.
- **Its level:** ``confidence`` is two-sided; the gate uses the lower bound only, so 0.95
  two-sided is a 97.5% one-sided lower bound.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from statistics import NormalDist
from typing import Any

import numpy as np

from headwater.model.evaluation import METRIC_NAMES

#: Score bins per block and model, equal-width in log-odds (fine enough that ties are rare).
COMPARISON_BINS = 1000
#: The log-odds range the bins cover (scores below 4.5e-5 or above 1 - 4.5e-5 share the ends).
LOGIT_RANGE = 10.0
#: At most this many blocks: longer holdouts group consecutive days.
MAX_BLOCKS = 100
#: Fewer days than this get no interval: resampling 2 days has 3 outcomes, not a distribution.
MIN_BLOCKS = 5
#: Fewer effective blocks (days / block length) than this get no interval either.
MIN_EFFECTIVE_BLOCKS = 5
#: Above this share of replicates dropped (metric not computable), a metric gets no interval.
MAX_DROPPED_SHARE = 0.01
#: Bootstrap replicates (resamples of the blocks).
REPLICATES = 2000
#: The replicates' random generator's seed: the interval is reproducible.
SEED = 20130101
#: The sums each histogram bin carries, in order (as :class:`headwater.model.evaluation.ScoreBin`).
FIELDS = ("count", "positives", "score_sum", "log_loss_sum", "squared_error_sum", "correct_sum")
#: The metrics this module can put an interval on.
METRICS = ("auc_roc", "auc_pr", "log_loss", "brier", "accuracy_at_0_5")
METHOD = "paired block bootstrap (circular blocks of holdout days, length from their persistence)"
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
    # Days per resampled block (Politis-White), and blocks / block_length.
    block_length: int = 1
    effective_blocks: float = 0.0
    # Replicates in which the metric could not be computed (not in the percentiles).
    dropped: int = 0
    # The binned point difference minus the exact one (the shift applied to the interval).
    binned_error: float = 0.0

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


class BadHistogram(ValueError):
    """A collected histogram row the comparison cannot use (a null sum, a row outside)."""


def score_bins(scores: np.ndarray, bins: int = COMPARISON_BINS) -> np.ndarray:
    """The comparison bin of each score: equal-width in log-odds over +-:data:`LOGIT_RANGE`.

    The Spark job computes the same expression (``block_histograms``); bins ascend with
    the score, so the binned AUC ranks as the exact one does.
    """
    clipped = np.clip(scores, 1e-300, 1.0 - 1e-16)
    logit = np.log(clipped) - np.log1p(-clipped)
    index = np.floor((logit + LOGIT_RANGE) / (2 * LOGIT_RANGE) * bins)
    return np.clip(index, 0, bins - 1).astype(int)


def histogram_array(rows: Sequence[Mapping[str, Any]], blocks: int, bins: int) -> np.ndarray:
    """Arrange collected ``{block, bin, <FIELDS>}`` rows as an array ``(blocks, bins, fields)``.

    Raises:
        BadHistogram: a row outside the holdout's blocks or bins, or a null sum (a null is
            never read as zero: it would hide rows the metrics then miss).
    """
    out = np.zeros((blocks, bins, len(FIELDS)))
    for row in rows:
        block, bin_ = int(row["block"]), int(row["bin"])
        if not (0 <= block < blocks and 0 <= bin_ < bins):
            raise BadHistogram(
                f"block {block} is outside the holdout's {blocks} blocks, or bin {bin_} outside "
                f"its {bins} bins: rows dated outside the holdout window were compared"
            )
        nulls = [f for f in FIELDS if row[f] is None]
        if nulls:
            raise BadHistogram(
                f"block {block}, bin {bin_} has null {', '.join(nulls)}: a null label or score "
                "reached the comparison (the holdout must have neither)"
            )
        out[block, bin_] = [float(row[f]) for f in FIELDS]
    return out


def optimal_block_length(series: np.ndarray) -> float:
    """The circular block bootstrap's block length for ``series`` (Politis-White 2004, with
    Patton-Politis-White 2009's correction; as ``arch.bootstrap.optimal_block_length``).

    The lag window ``m`` is twice the first lag after which ``k_n`` autocorrelations in a
    row are inside +-2 sqrt(log10(n)/n); the length is ``(2 g^2 / d)^(1/3) n^(1/3)``, capped
    at ``min(3 sqrt(n), n/3)``. A series without variation has length 1.
    """
    x = np.asarray(series, dtype=float)
    n = x.shape[0]
    eps = x - x.mean()
    if n < 3 or not np.any(eps):
        return 1.0
    b_max = np.ceil(min(3 * np.sqrt(n), n / 3))
    kn = max(5, int(np.log10(n)))
    m_max = min(int(np.ceil(np.sqrt(n))) + kn, n - 2)  # a short series has fewer lags
    band = 2 * np.sqrt(np.log10(n) / n)
    acv = np.zeros(m_max + 1)
    acorr = np.zeros(m_max + 1)
    first: int | None = None
    for i in range(m_max + 1):
        tail, head = eps[i + 1 :], eps[: -(i + 1)]
        cross = eps[i:] @ eps[: n - i]
        acv[i] = cross / n
        norm = np.sqrt((tail @ tail) * (head @ head))
        acorr[i] = abs(cross) / norm if norm > 0 else 0.0
        if i >= kn and first is None and np.all(acorr[i - kn : i] < band):
            first = i - kn
    m = min(2 * max(first, 1) if first is not None else m_max, m_max)
    lags = np.arange(1, m + 1)
    weight = np.where(lags / m <= 0.5, 1.0, 2 * (1 - lags / m))
    g = float(np.sum(2 * weight * lags * acv[1 : m + 1]))
    long_run = float(acv[0] + np.sum(2 * weight * acv[1 : m + 1]))
    if long_run <= 0:
        return 1.0
    length = ((2 * g**2) / (4 / 3 * long_run**2)) ** (1 / 3) * n ** (1 / 3)
    return float(min(max(length, 1.0), b_max))


def circular_block_weights(
    rng: np.random.Generator, blocks: int, length: int, size: int
) -> np.ndarray:
    """How often each of ``blocks`` days is drawn in each of ``size`` replicates, ``(size,
    blocks)``: runs of ``length`` consecutive days from uniform starts, wrapping around."""
    runs = -(-blocks // length)
    starts = rng.integers(0, blocks, size=(size, runs))
    days = ((starts[..., None] + np.arange(length)) % blocks).reshape(size, -1)[:, :blocks]
    weights = np.zeros((size, blocks))
    np.add.at(weights, (np.arange(size)[:, None], days), 1.0)
    return weights


def daily_differences(candidate: np.ndarray, production: np.ndarray) -> dict[str, np.ndarray]:
    """Each metric's (candidate - production) per block, in date order (NaN: not computable)."""
    new, old = metric_values(candidate), metric_values(production)
    return {m: new[m] - old[m] for m in METRICS}


#: The one-sided level of the upper bound put on the daily differences' lag-1 autocorrelation
#: (a persistence estimated from a few weeks of days is biased low and noisy).
#: 0.995, not 0.95: at 0.95 equal models whose difference persisted at rho 0.9 under day
#: noise were promoted 8.3% of the time over 28 days (surrogate, 400 holdouts); at 0.995,
#: 4.0% and 2.2% (two seeds), 4.0% over 61 days, for a +0.02 gain over 61 independent days
#: promoted 87% of the time instead of 93% (docs/gate.md).
PERSISTENCE_LEVEL = 0.995
_Z_PERSISTENCE = 2.5758293035489004  # the standard normal's 99.5% quantile
#: The largest lag-1 autocorrelation and decay the rule uses (beyond, nothing is independent).
_MAX_PERSISTENCE = 0.95


@dataclass(frozen=True)
class Persistence:
    """How long the gate metric's daily differences stay alike, measured with caution.

    ``lag1`` is their lag-1 autocorrelation (bias-corrected), ``upper`` its one-sided
    :data:`PERSISTENCE_LEVEL` upper bound, ``decay`` the rate at which further lags fade
    (lag 2 / lag 1 when lag 1 is clearly positive, else ``upper``) and ``inflation`` the
    variance inflation ``1 + 2 upper / (1 - decay)`` of a mean of these days: one
    independent day is worth ``inflation`` days here.
    """

    days: int
    lag1: float
    upper: float
    decay: float
    inflation: float

    @property
    def block_length(self) -> int:
        """Days per resampled block: the days one independent observation spans."""
        return int(np.ceil(self.inflation))

    @property
    def effective_blocks(self) -> float:
        """The days' worth in independent observations: ``days / inflation``."""
        return self.days / self.inflation


def persistence_of(series: np.ndarray) -> Persistence:
    """Measure the persistence of a metric's daily differences (NaN days left out).

    An AR(1) plus day noise (ARMA(1,1)) reading: the lag-1 autocorrelation, bias-corrected
    (``r + (1 + 3r) / n``) and raised to its one-sided upper bound, and a decay from lag 2
    / lag 1. A difference that persists for weeks under day noise shows a modest lag 1 but
    a slow decay; lag 1 alone (or Politis-White on 61 days) missed it and let equal models
    through 11-15% of the time (docs/gate.md).
    """
    x = np.asarray(series, dtype=float)
    x = x[np.isfinite(x)]
    n = int(x.size)
    eps = x - x.mean() if n else x
    denominator = float(eps @ eps)
    if n < 3 or denominator <= 0:
        return Persistence(n, 0.0, 0.0, 0.0, 1.0)
    r1 = float(eps[1:] @ eps[:-1]) / denominator
    r2 = float(eps[2:] @ eps[:-2]) / denominator
    r1, r2 = r1 + (1 + 3 * r1) / n, r2 + (1 + 3 * r2) / n
    upper = r1 + _Z_PERSISTENCE * np.sqrt(max(1.0 - r1 * r1, 0.0) / n)
    upper = float(min(max(upper, 0.0), _MAX_PERSISTENCE))
    # lag 2 / lag 1 is noise when lag 1 is not clearly above zero
    clear = r1 > 2.0 / np.sqrt(n)
    decay = float(min(max(r2 / r1 if clear else upper, upper), _MAX_PERSISTENCE))
    return Persistence(n, round(r1, 4), upper, decay, 1.0 + 2.0 * upper / (1.0 - decay))


def t_quantile(p: float, df: float) -> float:
    """Student's t quantile (Cornish-Fisher expansion from the normal's; within 0.3% for
    ``df >= 4``), without scipy on the cluster's driver."""
    z = NormalDist().inv_cdf(p)
    return float(
        z
        + (z**3 + z) / (4 * df)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)
        + (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / (92160 * df**4)
    )


def gate_series(candidate: np.ndarray, production: np.ndarray, metric: str) -> np.ndarray:
    """The daily differences of ``metric`` whose persistence sets the blocks (the gate's)."""
    return daily_differences(candidate, production)[metric]


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


@dataclass(frozen=True)
class Bootstrap:
    """The intervals of one comparison, and why a metric has none (``refused``)."""

    intervals: dict[str, Interval]
    refused: dict[str, str]
    block_length: int
    blocks: int

    def __getitem__(self, metric: str) -> Interval:
        return self.intervals[metric]

    def __contains__(self, metric: object) -> bool:
        return metric in self.intervals

    def items(self) -> Any:
        """The intervals by metric."""
        return self.intervals.items()


def paired_bootstrap(
    candidate: np.ndarray,
    production: np.ndarray,
    *,
    confidence: float = 0.95,
    points: Mapping[str, float] | None = None,
    replicates: int = REPLICATES,
    seed: int = SEED,
    block_length: int | None = None,
    metric: str = "auc_roc",
) -> Bootstrap:
    """Intervals on (candidate - production) for each of :data:`METRICS`.

    Args:
        candidate: the candidate's histograms, ``(blocks, bins, fields)``, blocks in date order.
        production: production's histograms of the same blocks and bins.
        confidence: two-sided level, e.g. 0.95 (the 2.5% and 97.5% percentiles; the gate's
            lower bound is then a 97.5% one-sided bound).
        points: the exact point differences by metric (default: the binned ones).
        replicates: resamples of the blocks.
        seed: the generator's seed.
        block_length: days per resampled block, and the days one independent observation
            spans (default: from :func:`persistence_of` the gate metric's daily differences).
        metric: the gate's metric: its daily differences set the blocks (every metric's
            interval uses them; another metric's noisier series would refuse independent
            days).

    Raises:
        TooFewBlocks: fewer than :data:`MIN_BLOCKS` days, or fewer than
            :data:`MIN_EFFECTIVE_BLOCKS` effective blocks: no interval, and why.
    """
    if candidate.shape != production.shape or candidate.ndim != 3:
        raise ValueError(f"histograms differ: {candidate.shape} vs {production.shape}")
    blocks = candidate.shape[0]
    if blocks < MIN_BLOCKS:  # blocks are days below MAX_BLOCKS days
        raise TooFewBlocks(
            f"{blocks} day(s) of holdout: too few blocks for an interval (at least {MIN_BLOCKS})"
        )
    measured = persistence_of(gate_series(candidate, production, metric))
    if block_length is not None:
        measured = Persistence(blocks, 0.0, 0.0, 0.0, float(block_length))
    length, inflation = measured.block_length, measured.inflation
    effective = blocks / inflation
    if effective < MIN_EFFECTIVE_BLOCKS:
        raise TooFewBlocks(
            f"the daily {metric} differences persist (lag-1 autocorrelation {measured.lag1:.2f}, "
            f"up to {measured.upper:.2f}; one independent day per {inflation:.1f}): {blocks} "
            f"days of holdout are {effective:.1f} independent blocks, fewer than "
            f"{MIN_EFFECTIVE_BLOCKS} (about {int(np.ceil(MIN_EFFECTIVE_BLOCKS * inflation))} "
            "days needed)"
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
    series = gate_series(candidate, production, metric)
    known = np.isfinite(series)
    series = np.where(known, series, series[known].mean() if known.any() else 0.0)
    draws: dict[str, list[np.ndarray]] = {m: [] for m in METRICS}
    means: list[np.ndarray] = []
    for start in range(0, replicates, _CHUNK):
        size = min(_CHUNK, replicates - start)
        weights = circular_block_weights(rng, blocks, length, size)
        shape = (size, *candidate.shape[1:])
        new = metric_values((weights @ flat_c).reshape(shape))
        old = metric_values((weights @ flat_p).reshape(shape))
        for name in METRICS:
            draws[name].append(new[name] - old[name])
        means.append(weights @ series / blocks)
    alpha = (1.0 - confidence) / 2.0
    # Blocks of `length` days see only the dependence within them: where the measured
    # persistence implies a larger variance of the mean than the blocks reproduce, the
    # spread is scaled up to it; then Student's t on `effective - 1` degrees of freedom
    # replaces the normal's quantile (few independent blocks, an estimated spread).
    resampled = float(np.var(np.concatenate(means)))
    implied = float(np.var(series)) * inflation / blocks
    scale = float(np.sqrt(implied / resampled)) if resampled > 0 and implied > resampled else 1.0
    quantile = NormalDist().inv_cdf(1.0 - alpha)
    widen = scale * t_quantile(1.0 - alpha, effective - 1.0) / quantile
    intervals, refused = {}, {}
    for name in METRICS:
        values = np.concatenate(draws[name])
        finite = values[np.isfinite(values)]
        dropped = int(values.size - finite.size)
        if not np.isfinite(binned[name]) or not finite.size:
            refused[name] = f"{name} cannot be computed on this holdout"
            continue
        if dropped > MAX_DROPPED_SHARE * replicates:
            refused[name] = (
                f"{dropped} of {replicates} resamples could not compute {name} (more than "
                f"{MAX_DROPPED_SHARE:.0%}: too few days with positives)"
            )
            continue
        point = float((points or {}).get(name, binned[name]))
        low, high = np.quantile(finite, [alpha, 1.0 - alpha])
        low = binned[name] - widen * (binned[name] - low)
        high = binned[name] + widen * (high - binned[name])
        shift = point - binned[name]
        intervals[name] = Interval(
            metric=name,
            difference=point,
            lower=float(low + shift),
            upper=float(high + shift),
            confidence=confidence,
            blocks=blocks,
            replicates=replicates,
            block_length=length,
            effective_blocks=round(effective, 2),
            dropped=dropped,
            binned_error=-shift,
        )
    return Bootstrap(intervals, refused, length, blocks)


class ComparisonOutcome(StrEnum):
    """What became of the training job's comparison with production (``comparison.outcome``)."""

    COMPARED = "compared"  # production scored on the holdout, the interval measured (or why not)
    PRODUCTION_FAILED = "production_failed"  # production could not score the holdout
    COMPARISON_FAILED = "comparison_failed"  # the comparison itself failed: retrain to retry


@dataclass(frozen=True)
class ProductionComparison:
    """The training job's comparison of its candidate with production, on the same holdout.

    ``outcome`` says which of three things happened: production scored and the bootstrap
    ran (``metrics`` and ``numbers`` filled), production could not score the holdout
    (``error``: a model of another feature set, say), or production scored and the
    comparison itself failed (``metrics`` and ``error``). Written into ``metrics.json`` by
    :meth:`to_metrics`; the gate (:mod:`headwater.registry.gate`) reads it back.
    """

    version: str
    outcome: ComparisonOutcome
    #: Production's metrics on the candidate's holdout (empty when it could not score it).
    metrics: Mapping[str, float] = field(default_factory=dict)
    #: The bootstrap's numbers: method, confidence, blocks, intervals, refused, no_interval.
    numbers: Mapping[str, Any] = field(default_factory=dict)
    #: Why production could not score, or why the comparison failed ("": it did not).
    error: str = ""

    def to_metrics(self) -> dict[str, Any]:
        """``production_on_holdout`` and ``comparison``, as ``metrics.json`` holds them."""
        scored: dict[str, Any] = {"version": self.version, **self.metrics}
        if self.outcome is ComparisonOutcome.PRODUCTION_FAILED:
            scored["error"] = self.error
        comparison = {"version": self.version, "outcome": str(self.outcome), **self.numbers}
        if self.error:
            comparison["error"] = self.error
        return {"production_on_holdout": scored, "comparison": comparison}


def comparison_numbers(bootstrap: Bootstrap) -> dict[str, Any]:
    """The intervals of a bootstrap and, per metric, why it has none (``refused``)."""
    return {
        "intervals": {metric: i.to_dict() for metric, i in bootstrap.items()},
        "refused": dict(bootstrap.refused),
    }


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

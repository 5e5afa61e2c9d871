"""Drift of new data against a model's reference profile, per feature, with a measure per type.

- **Numerics: PSI** (population stability index) over the reference's quantile bins,
  ``sum((cur - ref) * ln(cur / ref))``, an empty bin's share replaced by
  :data:`PSI_EPSILON` (as Evidently does) so a bin that empties or fills gives a large,
  finite value. Threshold :data:`PSI_THRESHOLD` = 0.2, the common rule (below 0.1 stable,
  0.1-0.2 moderate, above 0.2 a significant shift). Values outside the training range are
  counted (and land in the open end bins).
- **Categoricals: Jensen-Shannon distance** (base 2, so in [0, 1]) between the category
  frequencies (listed categories plus "other"); it is symmetric, bounded and defined when a
  category is absent on one side, where PSI needs an epsilon. Threshold
  :data:`JS_THRESHOLD` = 0.1 (Evidently's default for its JS test). Values of categories the
  reference does not list are counted as unseen (new, when the reference is complete).
- **Predictions**: PSI of each served output (probability, estimate) over the bins of the
  model's predictions on its training rows.

Seasonal data makes a fixed threshold noisy: January's temperatures "drift" against a
whole-year reference every year. Two remedies, both here: compare a period with the same
season's reference (:class:`References`), and set each feature's threshold at a high
quantile of its drift on quiet periods, where nothing changed (:class:`NullDistribution`);
:meth:`NullDistribution.false_alarm_rate` measures the false-alarm rate of any thresholds on
quiet periods held out from that choice. A calendar input (a function of the date alone: month
sine, a trend in years) is measured but never drifts (:attr:`FeatureDrift.calendar`): its
distribution over a period is fixed by the period's dates.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from headwater.monitoring.profile import (
    CategoricalProfile,
    FeatureProfile,
    NumericProfile,
    Profile,
    bin_index,
    category_of,
    is_null,
    numeric_values,
)

#: PSI above this is a significant shift (the common rule of thumb).
PSI_THRESHOLD = 0.2
#: Jensen-Shannon distance (base 2) above this is a significant shift (Evidently's default).
JS_THRESHOLD = 0.1
#: The share an empty bin counts as in the PSI (so the logarithm stays finite).
PSI_EPSILON = 1e-4
#: The quantile of the quiet periods' drift a calibrated threshold sits at: their maximum.
#: With the 12 to 24 quiet months a model's training window offers, the 95% quantile only
#: interpolates between the two largest values; on the synthetic seasonal checks (20 seeds,
#: four features) the maximum halves the months with a false alarm (12% -> 6%) and still
#: catches every shift the 95% quantile catches (docs/monitoring.md).
NULL_QUANTILE = 1.0
#: Measure names, as stored.
PSI, JS = "psi", "js"


def psi(
    reference: Sequence[float], current: Sequence[float], epsilon: float = PSI_EPSILON
) -> float:
    """Population stability index between two share vectors over the same bins."""
    ref, cur = np.asarray(reference, dtype=float), np.asarray(current, dtype=float)
    if ref.shape != cur.shape:
        raise ValueError(f"share vectors differ in length: {ref.size} vs {cur.size}")
    ref, cur = np.where(ref > 0, ref, epsilon), np.where(cur > 0, cur, epsilon)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def js_distance(reference: Sequence[float], current: Sequence[float]) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between two frequency vectors."""
    p, q = np.asarray(reference, dtype=float), np.asarray(current, dtype=float)
    if p.shape != q.shape:
        raise ValueError(f"frequency vectors differ in length: {p.size} vs {q.size}")
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2.0

    def kl(a: np.ndarray) -> float:
        present = a > 0  # 0 * log 0 = 0
        return float(np.sum(a[present] * np.log2(a[present] / m[present])))

    # Rounding can leave a hair below zero when the vectors are equal.
    return float(np.sqrt(max(0.0, (kl(p) + kl(q)) / 2.0)))


@dataclass(frozen=True)
class Thresholds:
    """The drift thresholds of a use case: one per measure, overridden per feature by name.

    The shape a use case declares (and :meth:`from_dict` reads):
    ``{"psi": 0.2, "js": 0.1, "features": {"temperature": 0.35}}``; ``features`` also
    names served outputs (``"probability"``) for prediction drift.
    """

    psi: float = PSI_THRESHOLD
    js: float = JS_THRESHOLD
    features: Mapping[str, float] = field(default_factory=dict)

    def for_feature(self, name: str, measure: str) -> float:
        """The threshold of ``name`` measured by ``measure`` (its override, else the measure's)."""
        if name in self.features:
            return float(self.features[name])
        if measure not in (PSI, JS):
            raise ValueError(f"unknown drift measure {measure!r}; known: {PSI}, {JS}")
        return self.psi if measure == PSI else self.js

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"psi": self.psi, "js": self.js, "features": dict(self.features)}

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> Thresholds:
        """Read thresholds declared by a use case (every key optional)."""
        unknown = set(body) - {"psi", "js", "features"}
        if unknown:
            raise ValueError(f"unknown drift threshold keys: {', '.join(sorted(unknown))}")
        return cls(
            psi=float(body.get("psi", PSI_THRESHOLD)),
            js=float(body.get("js", JS_THRESHOLD)),
            features={k: float(v) for k, v in (body.get("features") or {}).items()},
        )


@dataclass(frozen=True)
class FeatureDrift:
    """The drift of one feature (or served output) of a sample against its reference."""

    feature: str
    #: ``numeric`` or ``categorical``.
    kind: str
    #: ``psi`` or ``js``.
    measure: str
    #: The measure's value; None when the sample has no non-null value.
    value: float | None
    threshold: float
    #: Non-null values in the sample.
    count: int
    #: Missing values in the sample, and their share of it.
    nulls: int
    null_share: float
    #: The reference's share of missing values (a jump in nulls is reported beside the drift).
    reference_null_share: float
    #: Numerics: non-null values outside the training range.
    out_of_range: int = 0
    #: Categoricals: values whose category the reference does not list.
    unseen: int = 0
    #: Categoricals: distinct categories the reference does not list (new ones if complete).
    new_categories: int = 0
    #: A function of the row's date alone (month sine, a trend in years): its distribution over
    #: a period is fixed by the period's dates, so its value is recorded but is not data drift
    #: (never over its threshold, never ranked); its out-of-range values still count.
    calendar: bool = False

    @property
    def drifted(self) -> bool:
        """Whether the measure is beyond the threshold (a calendar input never is)."""
        return not self.calendar and self.value is not None and self.value > self.threshold

    @property
    def out_of_range_share(self) -> float:
        """Share of the non-null values outside the training range."""
        return self.out_of_range / self.count if self.count else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> FeatureDrift:
        """Read a result written by :meth:`to_dict`."""
        return cls(**{k: body[k] for k in cls.__dataclass_fields__ if k in body})


def _null_share(nulls: int, count: int) -> float:
    return nulls / (nulls + count) if nulls + count else 0.0


def numeric_drift(
    name: str, reference: NumericProfile, values: Iterable[Any] | np.ndarray, threshold: float
) -> FeatureDrift:
    """PSI of a numeric sample over the reference's bins, and its out-of-range count."""
    array = numeric_values(values)
    present = array[~np.isnan(array)]
    nulls = int(array.size - present.size)
    value = None
    if present.size:
        counts = np.bincount(bin_index(reference.edges, present), minlength=len(reference.shares))
        value = psi(reference.shares, counts / present.size)
    outside = int(np.sum((present < reference.minimum) | (present > reference.maximum)))
    return FeatureDrift(
        feature=name,
        kind=reference.kind,
        measure=PSI,
        value=value,
        threshold=threshold,
        count=int(present.size),
        nulls=nulls,
        null_share=_null_share(nulls, int(present.size)),
        reference_null_share=_null_share(reference.nulls, reference.count),
        out_of_range=outside,
    )


def categorical_drift(
    name: str, reference: CategoricalProfile, values: Iterable[Any], threshold: float
) -> FeatureDrift:
    """Jensen-Shannon distance of a categorical sample's frequencies, and its unseen values."""
    index = {c: i for i, c in enumerate(reference.categories)}
    counts = np.zeros(len(index) + 1)  # the listed categories, then "other"
    nulls, new = 0, set()
    for raw in values:
        if is_null(raw):
            nulls += 1
            continue
        category = category_of(raw)
        position = index.get(category)
        if position is None:
            counts[-1] += 1
            new.add(category)
        else:
            counts[position] += 1
    count = int(counts.sum())
    value = js_distance([*reference.shares, reference.other], counts) if count else None
    return FeatureDrift(
        feature=name,
        kind=reference.kind,
        measure=JS,
        value=value,
        threshold=threshold,
        count=count,
        nulls=nulls,
        null_share=_null_share(nulls, count),
        reference_null_share=_null_share(reference.nulls, reference.count),
        unseen=int(counts[-1]),
        new_categories=len(new),
    )


def feature_drift(
    name: str,
    reference: FeatureProfile,
    values: Iterable[Any] | np.ndarray,
    thresholds: Thresholds | None = None,
) -> FeatureDrift:
    """The drift of one feature with the measure its type calls for."""
    thresholds = thresholds or Thresholds()
    if isinstance(reference, NumericProfile):
        return numeric_drift(name, reference, values, thresholds.for_feature(name, PSI))
    return categorical_drift(name, reference, values, thresholds.for_feature(name, JS))


@dataclass(frozen=True)
class DriftReport:
    """The drift of one sample (a partition of clean data, or of served inputs) per feature."""

    features: tuple[FeatureDrift, ...]
    #: Prediction drift, per served output.
    predictions: tuple[FeatureDrift, ...] = ()
    #: Rows in the sample.
    rows: int = 0
    #: Rows with at least one numeric input outside its training range.
    rows_out_of_range: int = 0

    @property
    def out_of_range_share(self) -> float:
        """Share of the rows with at least one input outside the training range."""
        return self.rows_out_of_range / self.rows if self.rows else 0.0

    def out_of_range_inputs(self) -> tuple[FeatureDrift, ...]:
        """The inputs with values outside their training range, the largest share first."""
        outside = [d for d in self.features if d.out_of_range]
        return tuple(sorted(outside, key=lambda d: -d.out_of_range_share))

    def largest(self) -> tuple[FeatureDrift, ...]:
        """The measured inputs and outputs by drift relative to their threshold, the largest
        first; calendar inputs left out (:attr:`FeatureDrift.calendar`)."""
        measured = [
            d for d in (*self.features, *self.predictions) if d.value is not None and not d.calendar
        ]
        return tuple(sorted(measured, key=lambda d: -(d.value or 0.0) / (d.threshold or 1e-12)))

    def drifted(self) -> tuple[FeatureDrift, ...]:
        """Inputs and outputs beyond their threshold, the most drifted (value/threshold) first."""
        over = [d for d in (*self.features, *self.predictions) if d.drifted]
        return tuple(sorted(over, key=lambda d: -(d.value or 0.0) / (d.threshold or 1e-12)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "features": [d.to_dict() for d in self.features],
            "predictions": [d.to_dict() for d in self.predictions],
            "rows": self.rows,
            "rows_out_of_range": self.rows_out_of_range,
        }

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> DriftReport:
        """Read a report written by :meth:`to_dict`."""
        return cls(
            features=tuple(FeatureDrift.from_dict(d) for d in body["features"]),
            predictions=tuple(FeatureDrift.from_dict(d) for d in body.get("predictions", ())),
            rows=int(body.get("rows", 0)),
            rows_out_of_range=int(body.get("rows_out_of_range", 0)),
        )


def drift_report(
    profile: Profile,
    columns: Mapping[str, Iterable[Any] | np.ndarray],
    predictions: Mapping[str, Iterable[Any] | np.ndarray] | None = None,
    thresholds: Thresholds | None = None,
    calendar: Collection[str] = (),
) -> DriftReport:
    """The drift of a sample against a reference profile: every input, and each output given.

    Args:
        profile: the model version's reference profile.
        columns: input name -> the sample's values, for every input of the profile; all of
            the same length (one value per row).
        predictions: output name -> the served values (prediction drift), optional.
        thresholds: the use case's thresholds (default: :class:`Thresholds`'s).
        calendar: the inputs that are a function of the row's date alone (marked
            :attr:`FeatureDrift.calendar`: measured, never drifted).
    """
    thresholds = thresholds or Thresholds()
    missing = [name for name in profile.features if name not in columns]
    if missing:
        raise ValueError(f"the sample lacks inputs of the profile: {', '.join(missing)}")
    unknown = [name for name in (predictions or {}) if name not in profile.predictions]
    if unknown:
        raise ValueError(f"outputs without a reference profile: {', '.join(unknown)}")
    features, rows, outside = [], None, None
    for name, reference in profile.features.items():
        values = columns[name]
        if isinstance(reference, NumericProfile):
            values = numeric_values(values)
            # NaN compares False both ways: a missing value is never out of range.
            row_outside = (values < reference.minimum) | (values > reference.maximum)
            outside = row_outside if outside is None else outside | row_outside
        else:
            values = list(values)
        if rows is not None and len(values) != rows:
            raise ValueError(f"input {name!r} has {len(values)} values, the others {rows}")
        rows = len(values)
        measured = feature_drift(name, reference, values, thresholds)
        features.append(replace(measured, calendar=True) if name in calendar else measured)
    outputs = tuple(
        numeric_drift(name, profile.predictions[name], values, thresholds.for_feature(name, PSI))
        for name, values in (predictions or {}).items()
    )
    return DriftReport(
        features=tuple(features),
        predictions=outputs,
        rows=rows or 0,
        rows_out_of_range=int(outside.sum()) if outside is not None else 0,
    )


@dataclass(frozen=True)
class References:
    """A model's reference profiles: the whole training window's, and one per season.

    A season is whatever key a use case's data repeats on (month of year for monthly
    partitions, e.g. ``"01"``); a period is compared with its season's profile when
    there is one, else with the whole window's.
    """

    overall: Profile
    seasons: Mapping[str, Profile] = field(default_factory=dict)

    def for_season(self, season: str | None) -> Profile:
        """The reference to compare a period of ``season`` with."""
        return self.seasons.get(season, self.overall) if season is not None else self.overall

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (stored in the model version)."""
        return {
            "overall": self.overall.to_dict(),
            "seasons": {key: p.to_dict() for key, p in self.seasons.items()},
        }

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> References:
        """Read references written by :meth:`to_dict`."""
        return cls(
            overall=Profile.from_dict(body["overall"]),
            seasons={k: Profile.from_dict(p) for k, p in (body.get("seasons") or {}).items()},
        )


@dataclass(frozen=True)
class NullDistribution:
    """Drift values of quiet periods (where nothing changed), per feature: the empirical null.

    Built by :func:`null_distribution` from periods known to be quiet (the training
    window's own months, each against its reference); it sets thresholds that quiet
    periods rarely cross (:meth:`thresholds`) and measures how often any thresholds
    would have raised a false alarm (:meth:`false_alarm_rate`).
    """

    #: Feature -> its measure (``psi`` or ``js``).
    measures: Mapping[str, str]
    #: Feature -> its drift value on each quiet period.
    values: Mapping[str, tuple[float, ...]]

    def thresholds(
        self, quantile: float = NULL_QUANTILE, base: Thresholds | None = None
    ) -> Thresholds:
        """Per feature, the ``quantile`` of its quiet drift, never below ``base``'s threshold.

        ``base`` (default :class:`Thresholds`) keeps the rule-of-thumb threshold where the
        quiet periods barely move (large samples): the null only ever raises a threshold.
        """
        if not 0.0 < quantile <= 1.0:
            raise ValueError(f"quantile must be in (0, 1], not {quantile}")
        base = base or Thresholds()
        features = dict(base.features)
        for name, values in self.values.items():
            floor = base.for_feature(name, self.measures[name])
            if values:
                features[name] = max(floor, float(np.quantile(values, quantile)))
        return Thresholds(psi=base.psi, js=base.js, features=features)

    def false_alarm_rate(self, thresholds: Thresholds) -> dict[str, float]:
        """Per feature, the share of these quiet periods whose drift crosses ``thresholds``."""
        out = {}
        for name, values in self.values.items():
            limit = thresholds.for_feature(name, self.measures[name])
            out[name] = sum(v > limit for v in values) / len(values) if values else 0.0
        return out

    def period_false_alarm_rate(self, thresholds: Thresholds) -> float:
        """The share of quiet periods where at least one feature crosses ``thresholds``."""
        periods = {len(v) for v in self.values.values()}
        if len(periods) > 1:
            raise ValueError("features have different numbers of quiet periods")
        count = periods.pop() if periods else 0
        if not count:
            return 0.0
        alarms = [
            any(
                self.values[name][i] > thresholds.for_feature(name, self.measures[name])
                for name in self.values
            )
            for i in range(count)
        ]
        return sum(alarms) / count

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "measures": dict(self.measures),
            "values": {name: list(v) for name, v in self.values.items()},
        }

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> NullDistribution:
        """Read a distribution written by :meth:`to_dict`."""
        return cls(
            measures={k: str(v) for k, v in body["measures"].items()},
            values={k: tuple(float(x) for x in v) for k, v in body["values"].items()},
        )


def null_distribution(
    periods: Iterable[tuple[Profile, Mapping[str, Iterable[Any] | np.ndarray]]],
) -> NullDistribution:
    """The drift of each quiet period against its reference, per input: the empirical null.

    Args:
        periods: ``(reference, columns)`` per quiet period, e.g. each training month with
            the whole window's profile, or with the same month of another year
            (:meth:`References.for_season`).
    """
    measures: dict[str, str] = {}
    values: dict[str, list[float]] = {}
    for reference, columns in periods:
        for drift in drift_report(reference, columns).features:
            if drift.value is None:
                continue
            measures[drift.feature] = drift.measure
            values.setdefault(drift.feature, []).append(drift.value)
    return NullDistribution(measures=measures, values={k: tuple(v) for k, v in values.items()})

"""The reference profile of a model's inputs and predictions, built once at training.

A numeric column is kept as quantile bins: the interior cut points of its deciles (edges
from the training data, ties merged), the training share of each bin, its minimum and
maximum (the training range that ``out_of_range`` answers are judged against) and its
nulls. A categorical column is kept as the frequencies of its ``top_k`` categories plus
one "other" share, its number of distinct categories and its nulls. Everything is plain
Python and numpy, small (a few hundred numbers per model) and stored as JSON in the model
version through :meth:`Profile.to_dict`.

Bins are half-open, ``[edge_i, edge_i+1)``, the first open to the left and the last to
the right, so a value equal to an edge always lands in the bin above it, at training and
in production alike (discrete columns, such as an hour, keep their ties together).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Quantile bins of a numeric column (deciles).
NUMERIC_BINS = 10
#: Categories kept by name; the rest are summed into one "other" share.
TOP_K = 20


def is_null(value: Any) -> bool:
    """Whether a value counts as missing: ``None`` or a float NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def numeric_values(values: Iterable[Any] | np.ndarray) -> np.ndarray:
    """A column as a float array, missing values (``None``, NaN) as NaN."""
    array = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=float)
    return array.reshape(-1)


def category_of(value: Any) -> str:
    """The key a categorical value is counted under (its text, as stored in JSON)."""
    return value if isinstance(value, str) else str(value)


def bin_index(edges: Sequence[float], values: np.ndarray) -> np.ndarray:
    """The bin of each value over ``edges``: ``[edge_i, edge_i+1)``, open at both ends."""
    return np.searchsorted(np.asarray(edges, dtype=float), values, side="right")


@dataclass(frozen=True)
class Range:
    """The smallest and largest value of a numeric input seen at training."""

    minimum: float
    maximum: float

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies within the training range (bounds included)."""
        return self.minimum <= value <= self.maximum


@dataclass(frozen=True)
class NumericProfile:
    """A numeric column at training: quantile bins with their shares, range and nulls."""

    #: Interior cut points, ascending and distinct: ``len(shares) - 1`` of them.
    edges: tuple[float, ...]
    #: Share of the non-null training values in each bin (sums to 1).
    shares: tuple[float, ...]
    #: Smallest and largest non-null training value.
    minimum: float
    maximum: float
    #: Non-null values profiled.
    count: int
    #: Missing values (``None`` or NaN) seen.
    nulls: int
    kind: str = field(default="numeric", init=False)

    @property
    def range(self) -> Range:
        """The training range of the column."""
        return Range(self.minimum, self.maximum)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "kind": self.kind,
            "edges": list(self.edges),
            "shares": list(self.shares),
            "minimum": self.minimum,
            "maximum": self.maximum,
            "count": self.count,
            "nulls": self.nulls,
        }

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> NumericProfile:
        """Read a profile written by :meth:`to_dict`."""
        return cls(
            edges=tuple(float(e) for e in body["edges"]),
            shares=tuple(float(s) for s in body["shares"]),
            minimum=float(body["minimum"]),
            maximum=float(body["maximum"]),
            count=int(body["count"]),
            nulls=int(body["nulls"]),
        )


@dataclass(frozen=True)
class CategoricalProfile:
    """A categorical column at training: top categories' shares, the rest as "other", nulls."""

    #: The most frequent categories, most frequent first (ties by name).
    categories: tuple[str, ...]
    #: Share of the non-null training values of each of ``categories``.
    shares: tuple[float, ...]
    #: Share of all the other categories together (0 when ``categories`` is complete).
    other: float
    #: Distinct categories seen at training.
    distinct: int
    #: Non-null values profiled.
    count: int
    #: Missing values seen.
    nulls: int
    kind: str = field(default="categorical", init=False)

    @property
    def complete(self) -> bool:
        """Whether every training category is listed (so any other category is new)."""
        return self.distinct == len(self.categories)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "kind": self.kind,
            "categories": list(self.categories),
            "shares": list(self.shares),
            "other": self.other,
            "distinct": self.distinct,
            "count": self.count,
            "nulls": self.nulls,
        }

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> CategoricalProfile:
        """Read a profile written by :meth:`to_dict`."""
        return cls(
            categories=tuple(str(c) for c in body["categories"]),
            shares=tuple(float(s) for s in body["shares"]),
            other=float(body["other"]),
            distinct=int(body["distinct"]),
            count=int(body["count"]),
            nulls=int(body["nulls"]),
        )


FeatureProfile = NumericProfile | CategoricalProfile
_KINDS: dict[str, type[NumericProfile] | type[CategoricalProfile]] = {
    "numeric": NumericProfile,
    "categorical": CategoricalProfile,
}


def feature_profile_from_dict(body: Mapping[str, Any]) -> FeatureProfile:
    """Read a numeric or categorical profile written by its ``to_dict``."""
    kind = body.get("kind")
    if kind not in _KINDS:
        raise ValueError(f"unknown profile kind {kind!r}; known kinds: {', '.join(_KINDS)}")
    return _KINDS[kind].from_dict(body)


def profile_numeric(
    values: Iterable[Any] | np.ndarray,
    bins: int = NUMERIC_BINS,
    minimum: float | None = None,
    maximum: float | None = None,
) -> NumericProfile:
    """Quantile bins, training range and nulls of a numeric column.

    Args:
        values: the column (a sequence or array; ``None`` and NaN count as nulls).
        bins: quantile bins wanted (fewer when ties merge edges).
        minimum, maximum: the exact training range when ``values`` is a sample of a larger
            column (Spark computes them over all rows); default: the sample's own.

    Raises:
        ValueError: the column has no non-null value (nothing to compare against later).
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, not {bins}")
    array = numeric_values(values)
    present = array[~np.isnan(array)]
    if not present.size:
        raise ValueError("cannot profile a column without any non-null value")
    cuts = np.quantile(present, np.linspace(0.0, 1.0, bins + 1)[1:-1]) if bins > 1 else []
    edges = np.unique(np.asarray(cuts, dtype=float))
    counts = np.bincount(bin_index(edges, present), minlength=edges.size + 1)
    low = float(present.min()) if minimum is None else float(min(minimum, present.min()))
    high = float(present.max()) if maximum is None else float(max(maximum, present.max()))
    return NumericProfile(
        edges=tuple(float(e) for e in edges),
        shares=tuple(float(c) for c in counts / present.size),
        minimum=low,
        maximum=high,
        count=int(present.size),
        nulls=int(array.size - present.size),
    )


def profile_categorical(values: Iterable[Any], top_k: int = TOP_K) -> CategoricalProfile:
    """Frequencies of the ``top_k`` categories of a column, the rest as "other", and nulls.

    Raises:
        ValueError: the column has no non-null value.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, not {top_k}")
    nulls, counts = 0, Counter[str]()
    for value in values:
        if is_null(value):
            nulls += 1
        else:
            counts[category_of(value)] += 1
    total = sum(counts.values())
    if not total:
        raise ValueError("cannot profile a column without any non-null value")
    top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top_k]
    kept = sum(n for _, n in top)
    return CategoricalProfile(
        categories=tuple(c for c, _ in top),
        shares=tuple(n / total for _, n in top),
        other=(total - kept) / total,
        distinct=len(counts),
        count=total,
        nulls=nulls,
    )


@dataclass(frozen=True)
class Profile:
    """The reference profile of a model version: each input, and each prediction it serves."""

    #: Per model input (by the name the model sees), its numeric or categorical profile.
    features: Mapping[str, FeatureProfile]
    #: Per served output (e.g. the probability, the estimate), its numeric profile.
    predictions: Mapping[str, NumericProfile] = field(default_factory=dict)

    def ranges(self) -> dict[str, Range]:
        """The training range of each numeric input (for ``out_of_range`` answers)."""
        return {
            name: feature.range
            for name, feature in self.features.items()
            if isinstance(feature, NumericProfile)
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (stored in the model version)."""
        return {
            "features": {name: f.to_dict() for name, f in self.features.items()},
            "predictions": {name: p.to_dict() for name, p in self.predictions.items()},
        }

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> Profile:
        """Read a profile written by :meth:`to_dict`."""
        return cls(
            features={name: feature_profile_from_dict(f) for name, f in body["features"].items()},
            predictions={
                name: NumericProfile.from_dict(p)
                for name, p in (body.get("predictions") or {}).items()
            },
        )


def build_profile(
    columns: Mapping[str, Iterable[Any] | np.ndarray],
    categorical: Collection[str] = (),
    predictions: Mapping[str, Iterable[Any] | np.ndarray] | None = None,
    *,
    bins: int = NUMERIC_BINS,
    top_k: int = TOP_K,
    ranges: Mapping[str, Range] | None = None,
) -> Profile:
    """The profile of a model's training inputs (and its predictions on them).

    Args:
        columns: input name -> its training values.
        categorical: the inputs profiled as categories; every other input is numeric.
        predictions: output name -> the model's predictions on the training rows.
        bins, top_k: quantile bins per numeric, categories kept per categorical.
        ranges: exact training ranges when ``columns`` is a sample (see :func:`profile_numeric`).
    """
    unknown = set(categorical) - set(columns)
    if unknown:
        raise ValueError(f"categorical inputs without values: {', '.join(sorted(unknown))}")
    exact = ranges or {}
    features: dict[str, FeatureProfile] = {}
    for name, values in columns.items():
        if name in categorical:
            features[name] = profile_categorical(values, top_k)
        else:
            bounds = exact.get(name)
            features[name] = profile_numeric(
                values,
                bins,
                minimum=bounds.minimum if bounds else None,
                maximum=bounds.maximum if bounds else None,
            )
    outputs = {name: profile_numeric(v, bins) for name, v in (predictions or {}).items()}
    return Profile(features=features, predictions=outputs)


def outside_range(ranges: Mapping[str, Range], features: Mapping[str, Any]) -> tuple[str, ...]:
    """The inputs of one request outside their training range (plain Python: per request).

    Inputs without a recorded range, missing or not numeric are not judged here (the
    API reports defaulted and unseen inputs on its own).
    """
    out = []
    for name, bounds in ranges.items():
        value = features.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float) or is_null(value):
            continue
        if not bounds.contains(value):
            out.append(name)
    return tuple(out)

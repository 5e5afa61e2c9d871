"""Reference profiles: quantile bins, category frequencies, ranges, and their JSON round trip."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from headwater.monitoring.profile import (
    CategoricalProfile,
    NumericProfile,
    Profile,
    Range,
    bin_index,
    build_profile,
    feature_profile_from_dict,
    outside_range,
    profile_categorical,
    profile_numeric,
)


def test_quartiles_of_one_to_eight_are_interpolated_cut_points_with_a_quarter_each() -> None:
    # Given 1..8: quantile q sits at position 7q, so q=.25 -> 2.75, .5 -> 4.5, .75 -> 6.25.
    profile = profile_numeric(range(1, 9), bins=4)

    assert profile.edges == (2.75, 4.5, 6.25)
    # [<2.75): 1,2 | [2.75, 4.5): 3,4 | [4.5, 6.25): 5,6 | [6.25, ...): 7,8
    assert profile.shares == (0.25, 0.25, 0.25, 0.25)
    assert (profile.minimum, profile.maximum, profile.count, profile.nulls) == (1, 8, 8, 0)


def test_ties_merge_edges_and_shares_are_counted_not_assumed() -> None:
    # Given seven 0s and three 1s: the deciles at positions 0.9k are 0 up to k=7 (position 6.3
    # interpolates 0.3 of the way from 0 to 1), then 1, 1: distinct edges 0, 0.3, 1.
    profile = profile_numeric([0] * 7 + [1] * 3)

    assert profile.edges == (0.0, pytest.approx(0.3), 1.0)
    # A value on an edge lands in the bin above it: the 0s in [0, 0.3), the 1s in [1, ...).
    assert profile.shares == (0.0, 0.7, 0.0, 0.3)


def test_nulls_are_counted_apart_from_the_bins() -> None:
    profile = profile_numeric([1.0, None, float("nan"), 3.0], bins=2)

    assert (profile.count, profile.nulls) == (2, 2)
    assert profile.edges == (2.0,)
    assert profile.shares == (0.5, 0.5)


def test_an_exact_range_from_the_full_column_widens_a_sample_s_range() -> None:
    profile = profile_numeric([2.0, 3.0, 4.0], minimum=-1.0, maximum=10.0)

    assert profile.range == Range(-1.0, 10.0)
    # A "range" narrower than the sample itself cannot be the column's: the sample wins.
    assert profile_numeric([2.0, 3.0], minimum=2.5, maximum=2.5).range == Range(2.0, 3.0)


def test_a_column_without_values_cannot_be_profiled() -> None:
    with pytest.raises(ValueError, match="non-null"):
        profile_numeric([None, float("nan")])
    with pytest.raises(ValueError, match="non-null"):
        profile_categorical([None])


def test_bin_index_puts_values_outside_the_edges_in_the_open_end_bins() -> None:
    assert bin_index((2.0, 4.0), np.array([-100.0, 1.9, 2.0, 3.9, 4.0, 1e9])).tolist() == [
        0,
        0,
        1,
        1,
        2,
        2,
    ]


def test_top_categories_are_kept_by_frequency_and_the_rest_summed_as_other() -> None:
    # Given a x4, b x3, c x2, d x1 and two nulls; top 2 kept: a 4/10, b 3/10, other 3/10.
    values = ["a"] * 4 + ["b"] * 3 + ["c"] * 2 + ["d"] + [None, float("nan")]

    profile = profile_categorical(values, top_k=2)

    assert profile.categories == ("a", "b")
    assert profile.shares == (0.4, 0.3)
    assert profile.other == pytest.approx(0.3)
    assert (profile.distinct, profile.count, profile.nulls) == (4, 10, 2)
    assert not profile.complete


def test_categories_are_counted_by_their_text_and_ties_ordered_by_name() -> None:
    profile = profile_categorical([2, "2", "b", "a"])

    assert profile.categories == ("2", "a", "b")
    assert profile.shares == (0.5, 0.25, 0.25)
    assert profile.complete and profile.other == 0.0


def test_build_profile_profiles_declared_categoricals_as_categories_and_the_rest_as_numbers() -> (
    None
):
    profile = build_profile(
        {"distance": [100, 200, 300, 400], "meter": ["m1", "m2", "m1", "m3"]},
        categorical={"meter"},
        predictions={"probability": [0.1, 0.2, 0.3, 0.4]},
        bins=2,
        ranges={"distance": Range(17.0, 4983.0)},
    )

    assert isinstance(profile.features["distance"], NumericProfile)
    assert isinstance(profile.features["meter"], CategoricalProfile)
    assert profile.features["meter"].categories[0] == "m1"
    assert profile.predictions["probability"].edges == (pytest.approx(0.25),)
    assert profile.ranges() == {"distance": Range(17.0, 4983.0)}


def test_a_categorical_input_without_a_column_is_an_error() -> None:
    with pytest.raises(ValueError, match="hour"):
        build_profile({"distance": [1.0]}, categorical={"hour"})


def test_a_profile_survives_json_unchanged() -> None:
    profile = build_profile(
        {"x": np.arange(100.0), "c": list("aabbbc") * 10},
        categorical={"c"},
        predictions={"p": np.linspace(0, 1, 100)},
        top_k=2,
    )

    assert Profile.from_dict(json.loads(json.dumps(profile.to_dict()))) == profile


def test_an_unknown_profile_kind_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="numeric, categorical"):
        feature_profile_from_dict({"kind": "text"})


def test_outside_range_names_numeric_inputs_beyond_their_training_range_only() -> None:
    ranges = {"year": Range(2011.0, 2012.0), "temp": Range(-10.0, 40.0), "hum": Range(0.0, 1.0)}

    out = outside_range(ranges, {"year": 1900, "temp": 40.0, "hum": None, "extra": 5})

    assert out == ("year",)
    assert outside_range(ranges, {"temp": math.nan, "year": "1900", "hum": 1.5}) == ("hum",)

"""Profiles from pandas frames: kinds by dtype, pandas' missing values, exact ranges."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from headwater.monitoring.frames import (
    categorical_columns,
    profile_frame,
    ranges_from_row,
    spark_range_expressions,
)
from headwater.monitoring.profile import CategoricalProfile, NumericProfile, Range, build_profile


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "distance": pd.array([100, 200, None, 400], dtype="Int64"),
            "meter": pd.array(["m1", None, "m1", "m3"], dtype="string"),
            "holiday": [True, False, False, False],
            "p": [0.1, 0.2, 0.3, 0.4],
        }
    )


def test_kinds_come_from_dtypes_and_booleans_are_categories(frame: pd.DataFrame) -> None:
    assert categorical_columns(frame, ["distance", "meter", "holiday"]) == ["meter", "holiday"]


def test_a_frame_profile_equals_the_profile_of_its_columns_with_pandas_nulls_as_nulls(
    frame: pd.DataFrame,
) -> None:
    before = frame.copy()

    profile = profile_frame(frame, ["distance", "meter", "holiday"], predictions=["p"], bins=2)

    assert frame.equals(before)
    expected = build_profile(
        {
            "distance": [100.0, 200.0, None, 400.0],
            "meter": ["m1", None, "m1", "m3"],
            "holiday": [True, False, False, False],
        },
        categorical={"meter", "holiday"},
        predictions={"p": [0.1, 0.2, 0.3, 0.4]},
        bins=2,
    )
    assert profile == expected
    assert isinstance(profile.features["distance"], NumericProfile)
    assert profile.features["distance"].nulls == 1
    meter = profile.features["meter"]
    assert isinstance(meter, CategoricalProfile)
    assert (meter.categories, meter.nulls) == (("m1", "m3"), 1)


def test_declared_kinds_override_dtypes(frame: pd.DataFrame) -> None:
    profile = profile_frame(frame, ["distance"], categorical={"distance"})

    assert isinstance(profile.features["distance"], CategoricalProfile)
    assert profile.features["distance"].categories == ("100", "200", "400")


def test_a_missing_column_is_named(frame: pd.DataFrame) -> None:
    with pytest.raises(KeyError, match="month"):
        profile_frame(frame, ["distance", "month"])


def test_exact_ranges_from_the_spark_aggregation_reach_the_profile(frame: pd.DataFrame) -> None:
    aliases = spark_range_expressions(["distance"])
    row = {aliases[0][1]: np.int64(17), aliases[0][2]: 4983}

    ranges = ranges_from_row(row, ["distance"])
    profile = profile_frame(frame, ["distance"], ranges=ranges)

    assert ranges == {"distance": Range(17.0, 4983.0)}
    assert profile.ranges() == {"distance": Range(17.0, 4983.0)}

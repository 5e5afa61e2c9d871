"""Window and baseline steps of the training job on the bike share spec: baseline columns that
are not features reach the feature table (moved from tests/headwater/model/test_windows.py)."""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any

import pytest

from headwater.core.usecase import Baseline, RegressionBaseline
from headwater.model.spark_training import LABEL, baseline_input

pytestmark = pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")


def test_baseline_columns_that_are_not_features_are_carried_into_the_feature_table(
    spark: Any,
) -> None:
    from headwater.model.spark_training import feature_table
    from headwater.usecases.bikeshare.training import TRAINING

    # Given a spec whose baselines read clean columns, one the model does not use, one it
    # uses as a feature (whose default must not stand in for the clean value)
    spec = dataclasses.replace(
        TRAINING,
        baselines=(Baseline("by_registered", ("registered",), "d"),),
        regression_baselines=(
            RegressionBaseline("casual", "casual", "d"),
            RegressionBaseline("a_week_before", "rentals_168h_before", "d"),
        ),
    )
    assert "registered" not in spec.features and "rentals_168h_before" in spec.features

    clean = spark.createDataFrame(
        [
            (
                date(2012, 6, 1),
                17,
                False,
                "Clear",
                25.0,
                25.0,
                50.0,
                10.0,
                True,
                320,
                41,
                279,
                300,
                None,
                None,
            )
        ],  # fmt: skip
        "date date, hour int, holiday boolean, weather_situation string, temp_c double, "
        "feels_like_c double, humidity_pct double, wind_speed_kmh double, high_demand boolean, "
        "rentals bigint, casual bigint, registered bigint, rentals_1h_before bigint, "
        "rentals_24h_before bigint, rentals_168h_before bigint",
    )
    from headwater.usecases.bikeshare.features import FeatureLookups

    typical = {
        "weather_situation": "Clear",
        "temp_c": 20.0,
        "feels_like_c": 20.0,
        "humidity_pct": 50.0,
    }
    lookups = FeatureLookups(default_weather={**typical, "wind_speed_kmh": 9.0})
    row = feature_table(clean, spec, lookups).first()

    assert row[LABEL] == 1.0 and row.rentals == 320.0
    assert row.registered == 279 and row[baseline_input("casual")] == 41
    # the feature takes the hour's typical rentals; the baseline sees the unknown as unknown
    assert row.rentals_168h_before == 0.0 and row[baseline_input("rentals_168h_before")] is None

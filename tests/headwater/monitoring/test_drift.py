"""Drift measures against hand-computed values, and the false-alarm rate on seasonal data."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from headwater.monitoring.drift import (
    JS_THRESHOLD,
    PSI_THRESHOLD,
    DriftReport,
    FeatureDrift,
    NullDistribution,
    References,
    Thresholds,
    drift_report,
    feature_drift,
    js_distance,
    null_distribution,
    psi,
)
from headwater.monitoring.profile import (
    Profile,
    build_profile,
    profile_categorical,
    profile_numeric,
)


def test_psi_of_a_half_half_reference_against_a_quarter_three_quarters_sample() -> None:
    # (0.25 - 0.5) ln(0.25/0.5) + (0.75 - 0.5) ln(0.75/0.5) = 0.173287 + 0.101366
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.274653, abs=1e-6)
    assert psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0


def test_psi_counts_an_empty_bin_as_epsilon() -> None:
    # Third bin empty at training: its share counts as 1e-4.
    # 0 + (0.25 - 0.5) ln(0.5) + (0.25 - 0.0001) ln(0.25 / 0.0001)
    # = 0.173287 + 0.2499 * 7.824046 = 0.173287 + 1.955229
    assert psi([0.5, 0.5, 0.0], [0.5, 0.25, 0.25]) == pytest.approx(2.128516, abs=1e-6)


def test_share_vectors_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="length"):
        psi([1.0], [0.5, 0.5])
    with pytest.raises(ValueError, match="length"):
        js_distance([1.0], [0.5, 0.5])


def test_js_distance_in_base_2_is_one_for_disjoint_and_zero_for_equal_frequencies() -> None:
    assert js_distance([1, 0], [0, 1]) == pytest.approx(1.0)
    assert js_distance([3, 1], [0.75, 0.25]) == pytest.approx(0.0)
    # m = (0.75, 0.25); KL(p||m) = .5 log2(.5/.75) + .5 log2(.5/.25) = 0.207519;
    # KL(q||m) = log2(1/.75) = 0.415037; JSD = 0.311278; distance = sqrt = 0.557923
    assert js_distance([0.5, 0.5], [1.0, 0.0]) == pytest.approx(0.557923, abs=1e-6)


def test_numeric_drift_is_the_psi_over_the_reference_bins_with_out_of_range_counted() -> None:
    reference = profile_numeric(range(1, 9), bins=4)  # edges 2.75, 4.5, 6.25: a quarter each

    same = feature_drift("x", reference, list(range(1, 9)))
    moved = feature_drift("x", reference, [1, 1, 1, 1, 9, 9, 9, 9, None, None])

    assert same.value == pytest.approx(0.0) and not same.drifted
    # Sample shares (.5, 0, 0, .5): 2 x (.25 ln 2) + 2 x (.25 - 1e-4) ln(.25 / 1e-4)
    # = 0.346574 + 3.910458
    assert moved.value == pytest.approx(4.257032, abs=1e-6)
    assert moved.drifted and moved.measure == "psi" and moved.threshold == PSI_THRESHOLD
    assert (moved.count, moved.nulls, moved.out_of_range) == (8, 2, 4)
    assert moved.null_share == pytest.approx(0.2) and moved.out_of_range_share == 0.5


def test_categorical_drift_is_the_js_distance_with_unseen_categories_counted() -> None:
    reference = profile_categorical(["a", "b"])  # a .5, b .5, complete

    drift = feature_drift("c", reference, ["a", "a", "c", None])

    # p = (.5, .5, 0) (a, b, other); q = (2/3, 0, 1/3); m = (7/12, 1/4, 1/6)
    # KL(p||m) = .5 log2(6/7) + .5 log2 2 = 0.388804; KL(q||m) = 2/3 log2(8/7) + 1/3 = 0.461763
    # JSD = 0.425284, distance = 0.652138
    assert drift.value == pytest.approx(0.652138, abs=1e-6)
    assert drift.measure == "js" and drift.threshold == JS_THRESHOLD and drift.drifted
    assert (drift.count, drift.nulls, drift.unseen, drift.new_categories) == (3, 1, 1, 1)


def test_an_empty_sample_has_no_drift_value_and_does_not_alarm() -> None:
    drift = feature_drift("x", profile_numeric([1.0, 2.0]), [None])

    assert drift.value is None and not drift.drifted and drift.nulls == 1


def test_thresholds_default_per_measure_and_are_overridden_per_feature() -> None:
    thresholds = Thresholds.from_dict({"js": 0.2, "features": {"temperature": 0.5}})

    assert thresholds.for_feature("temperature", "psi") == 0.5
    assert thresholds.for_feature("distance", "psi") == PSI_THRESHOLD
    assert thresholds.for_feature("meter", "js") == 0.2
    assert Thresholds.from_dict(thresholds.to_dict()) == thresholds
    with pytest.raises(ValueError, match="psl"):
        Thresholds.from_dict({"psl": 0.1})
    with pytest.raises(ValueError, match="ks"):
        thresholds.for_feature("distance", "ks")


@pytest.fixture
def profile() -> Profile:
    return build_profile(
        {"hour": list(range(24)) * 10, "meter": ["m1", "m2", "m3", "m4"] * 60},
        categorical={"meter"},
        predictions={"probability": np.linspace(0.0, 0.5, 240)},
    )


def test_a_report_covers_every_input_and_counts_rows_with_any_input_out_of_range(
    profile: Profile,
) -> None:
    report = drift_report(
        profile,
        {"hour": [0, 25, 3, -1, None], "meter": ["m1", "m1", "m9", "m2", "m1"]},
        predictions={"probability": [0.9, 0.9, 0.8, 0.95, 0.9]},
        thresholds=Thresholds(features={"meter": 0.99}),
    )

    assert [d.feature for d in report.features] == ["hour", "meter"]
    assert (report.rows, report.rows_out_of_range) == (5, 2)
    assert report.out_of_range_share == 0.4
    # Every served probability is above the training predictions' range: a large PSI.
    (prediction,) = report.predictions
    assert prediction.feature == "probability" and prediction.value > 1.0
    # The meter's override keeps it quiet; hour and the probability drift.
    assert {d.feature for d in report.drifted()} == {"hour", "probability"}
    assert report.drifted()[0].value / report.drifted()[0].threshold >= (
        report.drifted()[1].value / report.drifted()[1].threshold
    )
    assert DriftReport.from_dict(json.loads(json.dumps(report.to_dict()))) == report


def test_a_report_refuses_a_sample_without_an_input_or_with_ragged_columns(
    profile: Profile,
) -> None:
    with pytest.raises(ValueError, match="meter"):
        drift_report(profile, {"hour": [1]})
    with pytest.raises(ValueError, match="meter"):
        drift_report(profile, {"hour": [1, 2], "meter": ["m1"]})
    with pytest.raises(ValueError, match="estimate"):
        drift_report(profile, {"hour": [1], "meter": ["m1"]}, predictions={"estimate": [1]})


def test_feature_drift_survives_json() -> None:
    drift = feature_drift("x", profile_numeric([1, 2, 3]), [5, 6])

    assert FeatureDrift.from_dict(json.loads(json.dumps(drift.to_dict()))) == drift


def test_the_null_sets_thresholds_at_its_quantile_never_below_the_rule_of_thumb() -> None:
    null = NullDistribution(
        measures={"temperature": "psi", "distance": "psi", "meter": "js"},
        values={
            "temperature": (0.1, 0.3, 0.5, 0.7, 0.9),
            "distance": (0.01, 0.02, 0.03, 0.04, 0.05),
            "meter": (0.0, 0.0, 0.0, 0.0, 0.5),
        },
    )

    thresholds = null.thresholds(quantile=0.75)

    # The 75% quantile of 5 values sits at position 3: 0.7 for temperature.
    assert thresholds.for_feature("temperature", "psi") == pytest.approx(0.7)
    assert thresholds.for_feature("distance", "psi") == PSI_THRESHOLD
    assert thresholds.for_feature("meter", "js") == JS_THRESHOLD
    assert null.false_alarm_rate(thresholds) == {
        "temperature": 0.2,
        "distance": 0.0,
        "meter": 0.2,
    }
    # Period 5 alarms on temperature and meter at once: one period in five.
    assert null.period_false_alarm_rate(thresholds) == 0.2
    assert NullDistribution.from_dict(json.loads(json.dumps(null.to_dict()))) == null


# -- seasonal data: false alarms on quiet periods, a real shift detected ------------------------
MONTHS = [f"{m:02d}" for m in range(1, 13)]
ROWS = 1500


def month_of(rng: np.random.Generator, month: int, year_offset: float, shift: float = 0.0) -> dict:
    """One month of synthetic rows: a seasonal temperature, a seasonal precipitation type,
    a stationary distance and meter; ``year_offset`` moves a whole year's temperatures."""
    season = math.sin(2 * math.pi * (month - 1) / 12)
    snow = max(0.0, -season) * 0.5
    return {
        "temperature": 15 + 10 * season + year_offset + shift + rng.normal(0, 3, ROWS),
        "distance": rng.lognormal(6.5, 0.6, ROWS),
        "precipitation": rng.choice(["none", "rain", "snow"], ROWS, p=[0.7 - snow, 0.3, snow]),
        "meter": rng.choice(["m1", "m2", "m3", "m4"], ROWS, p=[0.4, 0.3, 0.2, 0.1]),
    }


def profile_of(months: list[dict]) -> Profile:
    joined = {k: np.concatenate([m[k] for m in months]) for k in months[0]}
    return build_profile(joined, categorical={"precipitation", "meter"})


@pytest.fixture(scope="module")
def years() -> list[list[dict]]:
    """Four quiet years of twelve months (year-to-year noise, no change in process)."""
    rng = np.random.default_rng(16)
    return [[month_of(rng, m, rng.normal(0, 0.7)) for m in range(1, 13)] for _ in range(4)]


def test_naive_whole_window_drift_alarms_on_most_quiet_months_of_a_seasonal_feature(
    years: list[list[dict]],
) -> None:
    # Given a reference of two whole training years and the rule-of-thumb thresholds,
    reference = profile_of(years[0] + years[1])

    # when the next two (quiet) years are checked month by month,
    quiet = null_distribution((reference, month) for month in years[2] + years[3])

    # then temperature "drifts" in most months: the seasonal false alarm the issue names.
    assert quiet.false_alarm_rate(Thresholds())["temperature"] > 0.5
    assert quiet.false_alarm_rate(Thresholds())["distance"] == 0.0


def test_same_season_references_and_null_thresholds_keep_false_alarms_low_and_catch_a_shift(
    years: list[list[dict]],
) -> None:
    # Given references per month of the first year (and the whole year's),
    references = References(
        overall=profile_of(years[0]),
        seasons={key: profile_of([month]) for key, month in zip(MONTHS, years[0], strict=True)},
    )
    # and thresholds at the largest drift of the second year's months against their season,
    calibration = null_distribution(
        (references.for_season(key), month) for key, month in zip(MONTHS, years[1], strict=True)
    )
    thresholds = calibration.thresholds()

    # when the next two quiet years (held out from that choice) are checked,
    held_out = null_distribution(
        (references.for_season(key), month)
        for year in years[2:]
        for key, month in zip(MONTHS, year, strict=True)
    )

    # then at most one month in twelve raises any alarm, on any of the four features,
    assert held_out.period_false_alarm_rate(thresholds) <= 1 / 12
    # and a July 4 degrees warmer than usual (1.3 noise sd) is caught, temperature alone.
    rng = np.random.default_rng(7)
    shifted = month_of(rng, 7, 0.0, shift=4.0)
    report = drift_report(references.for_season("07"), shifted, thresholds=thresholds)
    assert [d.feature for d in report.drifted()] == ["temperature"]
    # The same month unshifted raises nothing.
    quiet = drift_report(references.for_season("07"), month_of(rng, 7, 0.0), thresholds=thresholds)
    assert quiet.drifted() == ()


def test_a_whole_window_null_quiets_seasonal_features_and_still_catches_a_units_change(
    years: list[list[dict]],
) -> None:
    # Given one reference of two training years and the null of its own 24 months,
    reference = profile_of(years[0] + years[1])
    thresholds = null_distribution((reference, m) for m in years[0] + years[1]).thresholds()

    held_out = null_distribution((reference, month) for month in years[2] + years[3])

    # then quiet months rarely alarm (the seasonal feature's threshold rose with its null),
    assert held_out.period_false_alarm_rate(thresholds) <= 2 / 24
    assert thresholds.for_feature("temperature", "psi") > PSI_THRESHOLD
    # and temperatures sent in Fahrenheit are caught.
    rng = np.random.default_rng(3)
    fahrenheit = month_of(rng, 4, 0.0)
    fahrenheit["temperature"] = fahrenheit["temperature"] * 1.8 + 32
    report = drift_report(reference, fahrenheit, thresholds=thresholds)
    assert [d.feature for d in report.drifted()] == ["temperature"]
    assert report.out_of_range_share > 0.5


def test_references_fall_back_to_the_whole_window_and_survive_json(
    years: list[list[dict]],
) -> None:
    references = References(
        overall=profile_of(years[0][:2]), seasons={"01": profile_of(years[0][:1])}
    )

    assert references.for_season("02") is references.overall
    assert references.for_season(None) is references.overall
    assert references.for_season("01") is references.seasons["01"]
    assert References.from_dict(json.loads(json.dumps(references.to_dict()))) == references


@pytest.mark.parametrize(("shift", "drifted"), [(0.1, False), (0.25, False), (0.5, True)])
def test_the_psi_rule_of_thumb_passes_small_shifts_and_flags_half_a_standard_deviation(
    shift: float, drifted: bool
) -> None:
    # On a normal column the PSI over deciles is about 0.01, 0.06 and 0.24 for these shifts.
    rng = np.random.default_rng(5)
    reference = profile_numeric(rng.normal(0, 1, 50_000))

    drift = feature_drift("x", reference, rng.normal(shift, 1, 50_000))

    assert drift.drifted is drifted

"""The model version's reference (profile.json) from what the training job collects."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest

from headwater.model.evaluation import ScoreBin
from headwater.monitoring.drift import PSI_THRESHOLD, drift_report
from headwater.monitoring.profile import NumericProfile, Range
from headwater.monitoring.reference import ModelReference, model_reference


def training_sample(rng: np.random.Generator) -> pd.DataFrame:
    """Three months of 1,000 rows: January and February alike, March shifted by 2 sd."""
    parts = []
    for month, shift in ((1, 0.0), (2, 0.0), (3, 2.0)):
        parts.append(
            pd.DataFrame(
                {
                    "day": [date(2013, month, 1 + i % 28) for i in range(1000)],
                    "distance": rng.normal(shift, 1.0, 1000),
                    "meter": rng.choice(["m1", "m3"], 1000),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


@pytest.fixture
def reference() -> ModelReference:
    rng = np.random.default_rng(7)
    sample = training_sample(rng)
    predictions = pd.DataFrame(
        {"late_probability": rng.uniform(0, 1, 500), "expected_delay": rng.normal(5, 20, 500)}
    )
    histogram = [ScoreBin.exact(0.1, 100, 30), ScoreBin.exact(0.3, 100, 20)]
    return model_reference(
        sample,
        predictions,
        histogram,
        features=["meter", "distance"],
        categorical=["meter"],
        date_column="day",
        ranges={"distance": Range(-40.0, 90.0)},
        rows={"train": 3_000_000, "holdout": 500},
    )


def test_the_range_of_an_input_is_the_exact_one_spark_measured_not_the_samples(
    reference: ModelReference,
) -> None:
    # a sample of normals never reaches -40 or 90: the range is the one passed in
    assert reference.ranges() == {"distance": Range(-40.0, 90.0)}
    assert reference.profile.features["meter"].kind == "categorical"


def test_predictions_are_profiled_under_the_answers_keys(reference: ModelReference) -> None:
    predictions = reference.profile.predictions
    assert set(predictions) == {"late_probability", "expected_delay"}
    assert isinstance(predictions["late_probability"], NumericProfile)
    assert predictions["late_probability"].count == 500
    assert 0.0 <= predictions["late_probability"].minimum < predictions["late_probability"].maximum


def test_the_calibration_map_is_the_holdouts(reference: ModelReference) -> None:
    # 0.1 observed 30%, 0.3 observed 20%: the isotonic fit pools them at 25%
    assert reference.calibration.probabilities == (0.25, 0.25)
    assert reference.calibration.scores == (0.1, 0.3)


def test_the_null_holds_each_months_drift_against_the_whole_window(
    reference: ModelReference,
) -> None:
    null = reference.null
    assert null.periods == ("2013-01", "2013-02", "2013-03")
    assert null.rows == {"2013-01": 1000, "2013-02": 1000, "2013-03": 1000}
    values = null.distribution.values["distance"]
    # the shifted March drifts most; each value is that month's drift report against the profile
    assert values[2] == max(values) > values[0]
    assert null.distribution.measures == {"meter": "js", "distance": "psi"}
    # the thresholds are the largest quiet drift, never below the rule of thumb
    assert null.thresholds.for_feature("distance", "psi") == max(max(values), PSI_THRESHOLD)


def test_a_months_null_value_is_its_drift_report_against_the_reference(
    reference: ModelReference,
) -> None:
    rng = np.random.default_rng(7)
    january = training_sample(rng).iloc[:1000]
    report = drift_report(
        reference.profile,
        {"distance": january["distance"].to_numpy(), "meter": list(january["meter"])},
    )
    by_feature = {d.feature: d.value for d in report.features}
    assert reference.null.distribution.values["distance"][0] == pytest.approx(
        by_feature["distance"]
    )


def test_profile_json_round_trips_and_records_the_samples(reference: ModelReference) -> None:
    body = json.loads(json.dumps(reference.to_dict()))

    assert body["format"] == 1
    assert body["sample"] == {
        "train": {"rows": 3000, "of": 3_000_000},
        "holdout": {"rows": 500, "of": 500},
    }
    assert ModelReference.from_dict(body) == reference

"""monitor_partition and its join, against hand-computed values; the alerts it raises."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from headwater.core.usecase import (
    NO_OUTCOME,
    AnswerShape,
    OutcomeSpec,
    Quantity,
    ServingSpec,
    TrainingSpec,
)
from headwater.monitoring.drift import Thresholds
from headwater.monitoring.live import score_bins
from headwater.monitoring.monitor import (
    MATCHED,
    MISSING,
    NO_KEY,
    NO_LABEL,
    PENDING,
    PartitionMonitoring,
    VersionInputs,
    alerts_of,
    canonical,
    join_outcomes,
    monitor_partition,
    summary_lines,
)
from headwater.monitoring.reference import model_reference
from headwater.serving.capture import SHADOW, CaptureRecord

DAY0 = date(2013, 1, 1)


def _event(echo: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(echo["at"])


OUTCOME = OutcomeSpec(
    key_columns=("thing", "day"),
    key_of_request=lambda echo: {"thing": echo["thing"], "day": _event(echo).date()},
    event_time=_event,
    known_after=timedelta(days=1),
)
TRAINING = TrainingSpec(
    dataset="things",
    date_column="day",
    references=(),
    label=Quantity("late", "late thing"),
    target=Quantity("minutes", "minutes late", "min"),
    categorical=("c",),
    numeric=("x",),
    input_columns=("x", "c"),
    baselines=(),
    human_names={"x": "size", "c": "colour"},
    build_lookups=lambda *a: None,
    features_frame=lambda frame, lookups: frame[["c", "x"]].copy(),
    load_lookups=lambda body: body,
)
ANSWER = AnswerShape(echo="thing", probability="p_late", decision="late", estimate="minutes")


@dataclass(frozen=True)
class Things:
    """A use case reduced to what monitoring reads."""

    name: str = "things"
    training: TrainingSpec = TRAINING
    serving: ServingSpec = ServingSpec(
        request_model=object, example={}, answer=ANSWER, features_record=None, describe=None
    )
    outcome: OutcomeSpec = OUTCOME


def record(thing: str, at: str, p: float, estimate: float = 5.0, **kw: Any) -> CaptureRecord:
    base = {
        "request_id": f"{thing}-{at}",
        "instance": 0,
        "usecase": "things",
        "model_version": "v1",
        "served_at": "2013-01-01T00:00:00.000000+00:00",
        "features": {"x": 1.0, "c": "red"},
        "probability": p,
        "decision": p > 0.5,
        "estimate": estimate,
        "threshold": 0.5,
        "echo": {"thing": thing, "at": at},
    }
    return CaptureRecord(**{**base, **kw})


def test_canonical_spells_a_key_the_same_on_both_sides() -> None:
    assert canonical(pd.Timestamp("2013-01-02 05:00")) == canonical(datetime(2013, 1, 2, 5))
    assert canonical(np.int64(7)) == canonical(7) == canonical(7.0) == "7"
    assert canonical(date(2013, 1, 2)) == "2013-01-02"
    assert canonical(None) == canonical(math.nan) == ""


def test_join_outcomes_gives_each_prediction_a_status() -> None:
    # Given a clean day with one labelled thing and one without a label
    clean = pd.DataFrame(
        {
            "thing": ["a", "b"],
            "day": [DAY0, DAY0],
            "late": [True, None],
            "minutes": [42.0, None],
        }
    )
    predictions = [
        record("a", "2013-01-01T08:00", 0.9),  # in the data, labelled
        record("b", "2013-01-01T09:00", 0.1),  # in the data, no label
        record("c", "2013-01-01T10:00", 0.2),  # due (a day after) and absent
        record("d", "2013-01-03T12:00", 0.3),  # not due until 2013-01-04 12:00
        replace(record("e", "2013-01-01T10:00", 0.4), echo={}),  # recorded without its echo
    ]
    # When they meet on 2013-01-03 at 13:00
    out = join_outcomes(predictions, clean, OUTCOME, "late", "minutes", datetime(2013, 1, 3, 13))
    # Then
    assert out.status == (MATCHED, NO_LABEL, MISSING, PENDING, NO_KEY)
    assert out.labels[0] == 1.0 and np.isnan(out.labels[1:]).all()
    assert out.targets[0] == 42.0
    assert out.days == ("2013-01-01", "2013-01-01", "2013-01-01", "2013-01-03", "")


def _reference(rng: np.random.Generator) -> Any:
    """A version's reference from 600 training rows over three months: x ~ N(0, 1), c in 3."""
    rows = 600
    train = pd.DataFrame(
        {
            "x": rng.normal(0.0, 1.0, rows),
            "c": rng.choice(["red", "green", "blue"], rows),
            "day": [date(2012, 10 + i % 3, 1 + i % 28) for i in range(rows)],
        }
    )
    # The holdout's answers: as the unchanged partition's (0.2 or 0.8; 5 to 195 minutes).
    scores = rng.choice([0.2, 0.8], rows)
    labels = (scores > 0.5).astype(float)
    minutes = 10.0 * rng.integers(0, 20, rows) + 5
    predictions = pd.DataFrame({"p_late": scores, "minutes": minutes})
    reference = model_reference(
        train,
        predictions,
        score_bins(scores, labels),
        features=("c", "x"),
        categorical=("c",),
        date_column="day",
        ranges={},
    )
    return reference, train


def _partition(
    degraded: bool, shifted: bool, rng: np.random.Generator, usecase: Any = None
) -> PartitionMonitoring:
    reference, train = _reference(rng)
    days = [DAY0 + timedelta(days=d) for d in range(10)]
    rows = []
    for day in days:
        for i in range(20):
            rows.append({"thing": f"t{i}", "day": day, "late": i % 2 == 0, "minutes": 10.0 * i})
    clean = pd.DataFrame(rows)
    features = train.sample(len(clean), replace=True, random_state=1).reset_index(drop=True)
    clean = clean.assign(x=features["x"] + (4.0 if shifted else 0.0), c=features["c"])
    predictions = []
    for row in clean.itertuples():
        # A good model scores the late ones high; a degraded one the other way round.
        good = 0.8 if row.late else 0.2
        predictions.append(
            record(
                row.thing,
                f"{row.day.isoformat()}T08:00",
                1 - good if degraded else good,
                estimate=row.minutes + 5,  # every estimate 5 minutes too high
                features={"x": row.x, "c": row.c},
            )
        )
    versions = {
        "v1": VersionInputs(
            "v1",
            reference,
            holdout={"auc_roc": 0.75, "brier": 0.2},
            regression={"mae": 5.0},
            lookups={},
        )
    }
    return monitor_partition(
        usecase or Things(), "2013-01", predictions, clean, versions, "v1", Thresholds(),
        datetime(2013, 2, 1),
    )  # fmt: skip


def test_monitor_partition_meets_predictions_with_outcomes_and_holdout() -> None:
    # Given 10 days of 20 served things, every outcome arrived, a model that ranks perfectly
    monitoring = _partition(degraded=False, shifted=False, rng=np.random.default_rng(0))
    (served,) = monitoring.served
    # Then every prediction met its outcome, and the figures are the hand-computed ones
    assert served.predictions == 200 and served.with_outcome == 200
    assert served.outcomes[MISSING] == served.outcomes[PENDING] == 0
    assert served.classification.metrics["auc_roc"] == pytest.approx(1.0)
    assert served.classification.metrics["brier"] == pytest.approx(0.04)  # 0.2 off, squared
    assert served.regression.metrics["mae"] == pytest.approx(
        5.0
    )  # every estimate 5 minutes too high
    (auc,) = [a for a in served.holdout if a.metric == "auc_roc"]
    assert auc.holdout == 0.75 and not auc.significantly_worse
    assert served.estimate is None  # nothing is left without an outcome
    assert served.estimate_of_realized.predictions == 200
    assert monitoring.clean_rows == 200 and monitoring.clean_drift is not None


def test_a_use_case_without_an_outcome_is_monitored_for_drift_and_says_why_no_performance() -> None:
    # Given a use case whose outcomes never arrive (it declares no outcome)
    usecase = replace(Things(), outcome=None)

    monitoring = _partition(False, True, np.random.default_rng(0), usecase)

    # Then its answers and clean data are still judged for drift, with no live performance
    (served,) = monitoring.served
    assert served.predictions == 200 and served.drift is not None
    assert served.classification is None and served.regression is None
    assert monitoring.clean_drift is not None and monitoring.clean_drift.drifted()
    assert NO_OUTCOME in monitoring.notes
    # and the summary says so, rather than counting 200 outcomes that "never arrived"
    lines = summary_lines(monitoring, usecase)
    assert f"  production v1: 200 predictions, {NO_OUTCOME}" in lines
    assert not any("never arrived" in line for line in lines)


def test_the_record_survives_its_json_form() -> None:
    monitoring = _partition(degraded=False, shifted=True, rng=np.random.default_rng(0))
    assert PartitionMonitoring.from_dict(monitoring.to_dict()) == monitoring


def test_no_alert_on_an_unchanged_partition() -> None:
    monitoring = _partition(degraded=False, shifted=False, rng=np.random.default_rng(0))
    assert alerts_of(monitoring, monitoring, Things(), min_predictions=100) == []


def test_a_degraded_partition_raises_a_performance_alert() -> None:
    monitoring = _partition(degraded=True, shifted=False, rng=np.random.default_rng(0))
    alerts = alerts_of(monitoring, None, Things(), min_predictions=100)
    kinds = {a.kind for a in alerts}
    assert "performance" in kinds
    (auc,) = [a for a in alerts if "AUC" in a.message]
    assert auc.message.startswith("things 2013-01: live AUC 0.000")
    assert "significantly worse" in auc.message
    # ...but not with fewer predictions with an outcome than configured
    assert not [
        a for a in alerts_of(monitoring, None, min_predictions=201) if a.kind == "performance"
    ]


def test_a_performance_alert_says_whether_the_scores_alone_expected_the_drop() -> None:
    # Given a degraded model: confident scores (CBPE expects a high AUC) ranking the wrong way
    monitoring = _partition(degraded=True, shifted=False, rng=np.random.default_rng(0))
    (served,) = monitoring.served

    def auc_alert(partition: PartitionMonitoring) -> str:
        alerts = alerts_of(partition, None, Things(), min_predictions=100)
        (message,) = [a.message for a in alerts if a.kind == "performance" and "AUC" in a.message]
        return message

    # Then the alert says the model does worse than its own scores promise
    expected = served.estimate_of_realized.metrics["auc_roc"]
    assert expected > 0.9
    assert f"its scores alone expected {expected:.3f} (CBPE): the model does worse" in (
        auc_alert(monitoring)
    )
    # and where the scores alone expected the live figure (the mix of requests moved), it says so
    mix = replace(
        served,
        estimate_of_realized=replace(
            served.estimate_of_realized, metrics={**served.estimate_of_realized.metrics,
                                                  "auc_roc": 0.0}
        ),
    )  # fmt: skip
    message = auc_alert(replace(monitoring, served=(mix,)))
    assert "its scores alone expected 0.000 (CBPE): the drop follows the mix of requests" in message


def test_a_shifted_partition_raises_a_drift_alert_naming_the_feature() -> None:
    monitoring = _partition(degraded=False, shifted=True, rng=np.random.default_rng(0))
    (drift,) = [
        a for a in alerts_of(monitoring, None, Things(), min_predictions=100) if a.kind == "drift"
    ]
    assert "size PSI" in drift.message  # the feature's human name
    assert "colour" not in drift.message


def test_capture_stopping_raises_an_alert() -> None:
    before = _partition(degraded=False, shifted=False, rng=np.random.default_rng(0))
    now = replace(before, partition="2013-02", served=())
    (alert,) = alerts_of(now, before, min_predictions=100)
    assert alert.kind == "capture"
    assert "where 2013-01 had 200" in alert.message


def test_shadow_predictions_are_monitored_apart_and_not_counted_as_served() -> None:
    monitoring = _partition(degraded=False, shifted=False, rng=np.random.default_rng(0))
    shadow = replace(monitoring.served[0], role=SHADOW)
    both = replace(monitoring, served=(*monitoring.served, shadow), shadow={"text": "AUC +0.01"})
    assert both.predictions == 200
    assert "  shadow vs production: AUC +0.01" in summary_lines(both, Things())


def test_clean_drift_judges_a_rolling_window_input_like_any_other() -> None:
    import dataclasses

    from headwater.core.usecase import Window
    from headwater.monitoring.monitor import clean_drift

    # Given a version whose input x is a rolling window, and clean rows like its training
    # whose window column is computed (monitor_published adds the windows as training does)
    rng = np.random.default_rng(0)
    reference, train = _reference(rng)
    window = Window("x", "minutes", "rolling_mean", "day", span=timedelta(hours=3))
    spec = dataclasses.replace(TRAINING, windows=(window,))
    usecase = dataclasses.replace(Things(), training=spec)
    clean = train.sample(200, replace=True, random_state=1).reset_index(drop=True)
    inputs = VersionInputs("v1", reference, holdout={}, regression={}, lookups={})

    # When the clean data's drift is measured against the version's reference
    report = clean_drift(usecase, clean.assign(minutes=1.0), inputs, Thresholds())

    # Then the window input is judged too, and like its training it has not drifted
    assert report is not None
    assert [f.feature for f in report.features] == ["c", "x"]
    assert not report.drifted()


# -- production's training window, calendar inputs, what the Live section says -------------------
def _clean_month(train: pd.DataFrame, month: date, rows: int = 200) -> pd.DataFrame:
    """Clean rows of ``month`` drawn from the training rows (nothing changed)."""
    clean = train.sample(rows, replace=True, random_state=1).reset_index(drop=True)
    return clean.assign(day=[month + timedelta(days=i % 28) for i in range(rows)])


def test_production_training_rows_are_not_judged_and_the_rows_after_are() -> None:
    from headwater.core.records import DateRange

    # Given a production version trained on 2012-10..2012-11 (its holdout from 2012-12), and
    # a partition half in its training window (November), half after it, shifted (December)
    reference, train = _reference(np.random.default_rng(0))
    trained = DateRange(date(2012, 10, 1), date(2012, 11, 30))
    inputs = VersionInputs("v1", reference, lookups={}, trained=trained)
    november = _clean_month(train, date(2012, 11, 1))
    december = _clean_month(train, date(2012, 12, 1)).assign(x=lambda f: f["x"] + 4.0)
    clean = pd.concat([november, december], ignore_index=True)

    def monitor(rows: pd.DataFrame) -> PartitionMonitoring:
        return monitor_partition(
            Things(), "2012-11", [], rows, {"v1": inputs}, "v1", Thresholds(), datetime(2013, 1, 1)
        )

    # When the training month alone, then both, are monitored
    training_month, both = monitor(november), monitor(clean)

    # Then the training month's rows are left out (not judged: no drift, no alert) ...
    assert training_month.clean_drift is None and training_month.trained_rows == 200
    assert alerts_of(training_month, min_predictions=1) == []
    assert training_month.notes == ()
    # ... and of both, only December's rows are judged (its shift is caught)
    assert both.trained_rows == 200 and both.clean_drift.rows == 200
    assert [d.feature for d in both.clean_drift.drifted()] == ["x"]
    assert PartitionMonitoring.from_dict(both.to_dict()) == both


def _calendar_features(frame: pd.DataFrame, lookups: Any) -> pd.DataFrame:
    """Features of a use case: calendar ones from the date, the rest from the data."""
    at = pd.to_datetime(frame["at"])
    return pd.DataFrame(
        {
            "month_sin": np.sin(2 * np.pi * at.dt.month / 12),
            "trend": (at - pd.Timestamp("2011-01-01")).dt.days / 365.25,
            "hour": at.dt.hour.astype(float),  # the schedule's: the data's, not the calendar's
            "x": frame["x"].astype(float),
            "flag": frame["flag"].astype(float),  # constant in this sample: still the data's
            "x_by_month": frame["x"] * at.dt.month,  # the date and the data
        },
        index=frame.index,
    )


def test_calendar_inputs_are_those_fixed_by_the_date_alone() -> None:
    from headwater.monitoring.monitor import calendar_inputs

    # Given a month of hourly rows with a data column and a constant data flag
    rng = np.random.default_rng(0)
    at = pd.date_range("2012-03-01", periods=300, freq="h")
    inputs = pd.DataFrame({"at": at, "x": rng.normal(size=300), "flag": 0.0})
    features = _calendar_features(inputs, None)

    # When the calendar inputs are told apart
    calendar = calendar_inputs(_calendar_features, inputs, None, features)

    # Then they are the month's and the trend's, nothing read from the data or the schedule
    assert calendar == {"month_sin", "trend"}
    # and a date column of Python dates is moved as well as a timestamp
    days = inputs.assign(at=[t.date() for t in at])
    assert calendar_inputs(_calendar_features, days, None, _calendar_features(days, None)) == {
        "month_sin",
        "trend",
    }


def test_a_calendar_input_is_measured_but_never_drifted_nor_ranked() -> None:
    from headwater.monitoring.drift import drift_report
    from headwater.monitoring.profile import build_profile

    # Given a reference over a year of months, and one month (its month sine at one value)
    months = np.arange(1, 13).repeat(30)
    reference = build_profile({"month_sin": np.sin(2 * np.pi * months / 12)})
    one_month = {"month_sin": np.full(30, np.sin(2 * np.pi * 3 / 12))}

    # When its drift is measured with and without it marked as calendar
    plain = drift_report(reference, one_month)
    marked = drift_report(reference, one_month, calendar={"month_sin"})

    # Then the value is the same (large: one month against the year) and only the plain one
    # drifted; the marked one is recorded, not ranked among the largest
    assert plain.features[0].value == marked.features[0].value > 5.0
    assert [d.feature for d in plain.drifted()] == ["month_sin"]
    assert marked.drifted() == () and marked.largest() == ()
    assert marked.features[0].calendar


def test_the_summary_names_the_inputs_out_of_range() -> None:
    # Given a partition after training whose x is past its training range in every row
    reference, train = _reference(np.random.default_rng(0))
    clean = _clean_month(train, date(2013, 1, 1)).assign(x=100.0)
    inputs = VersionInputs("v1", reference, lookups={})
    monitoring = monitor_partition(
        Things(), "2013-01", [], clean, {"v1": inputs}, "v1", Thresholds(), datetime(2013, 2, 1)
    )

    # When it is summarised
    (line,) = [line for line in summary_lines(monitoring, Things()) if "clean data" in line]

    # Then the line says which input is out of range, and in how many rows
    assert line.endswith("out of range 100.0% of rows (size 100.0%)")


def test_the_live_section_says_a_run_of_partitions_with_nothing_to_say_in_one_line() -> None:
    from headwater.core.records import DateRange
    from headwater.monitoring.monitor import live_lines

    # Given production trained on 2012-10..2012-11, two training months, then a quiet month
    # after, then a shifted one
    reference, train = _reference(np.random.default_rng(0))
    trained = DateRange(date(2012, 10, 1), date(2012, 11, 30))
    inputs = {"v1": VersionInputs("v1", reference, lookups={}, trained=trained)}

    def monitor(month: date, shift: float) -> PartitionMonitoring:
        clean = _clean_month(train, month).assign(x=lambda f: f["x"] + shift)
        return monitor_partition(
            Things(), month.strftime("%Y-%m"), [], clean, inputs, "v1", Thresholds(),
            datetime(2013, 3, 1),
        )  # fmt: skip

    records = [
        monitor(date(2012, 10, 1), 0.0),
        monitor(date(2012, 11, 1), 0.0),
        monitor(date(2012, 12, 1), 0.0),
        monitor(date(2013, 1, 1), 4.0),
    ]

    # When the Live section is written
    lines = live_lines(records, Things())

    # Then the two training months are one line, the quiet month one, the shifted one in full
    assert lines[0].startswith("2012-10..2012-11 (2 partitions): none served, production v1; ")
    assert "training data: drift not judged" in lines[0]
    assert lines[1].startswith("2012-12: 0 predictions served, production v1; ")
    assert "nothing over its drift threshold" in lines[1]
    assert lines[2] == "2013-01: 0 predictions served, production v1"
    assert "over threshold: size PSI" in lines[3]
    assert len(lines) == 4


def test_served_inputs_drift_leaves_the_calendar_inputs_undrifted_too() -> None:
    import dataclasses

    # Given a use case with a calendar input m (the month of the day), trained on Oct-Dec
    def features(frame: pd.DataFrame, lookups: Any) -> pd.DataFrame:
        month = pd.to_datetime(frame["day"]).dt.month.astype(float)
        return frame[["c", "x"]].assign(m=month)

    spec = dataclasses.replace(
        TRAINING, numeric=("x", "m"), input_columns=("x", "c", "day"), features_frame=features
    )
    usecase = dataclasses.replace(Things(), training=spec)
    rng = np.random.default_rng(0)
    _, train = _reference(rng)
    train = train.assign(m=pd.to_datetime(train["day"]).dt.month.astype(float))
    reference = model_reference(
        train,
        pd.DataFrame({"p_late": rng.uniform(size=2000)}),
        score_bins(rng.uniform(size=50), rng.integers(0, 2, 50).astype(float)),
        features=("c", "x", "m"),
        categorical=("c",),
        date_column="day",
        ranges={},
    )
    inputs = {"v1": VersionInputs("v1", reference, lookups={})}
    # and January served (m = 1 in every answer, against a reference of months 10 to 12)
    clean = _clean_month(train, date(2013, 1, 1))
    clean = clean.assign(thing=[f"t{i}" for i in range(len(clean))], late=False, minutes=1.0)
    served = [
        record(f"t{i}", f"{row.day.isoformat()}T08:00", float(rng.uniform()),
               features={"x": row.x, "c": row.c, "m": 1.0})
        for i, row in enumerate(clean.itertuples())
    ]  # fmt: skip

    # When the partition is monitored
    monitoring = monitor_partition(
        usecase, "2013-01", served, clean, inputs, "v1", Thresholds(), datetime(2013, 3, 1)
    )

    # Then m is measured (far off) but drifts neither in the served inputs nor the clean data
    (production,) = monitoring.served
    (m,) = [d for d in production.drift.features if d.feature == "m"]
    assert m.calendar and m.value > 1.0
    assert production.drift.drifted() == () and monitoring.clean_drift.drifted() == ()
    assert alerts_of(monitoring, usecase=usecase, min_predictions=1) == []

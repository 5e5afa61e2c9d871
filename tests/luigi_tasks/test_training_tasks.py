"""The training tasks of a use case without Spark: the gate, promotion, wiring, job submission.

The registries here are populated by hand (metrics.json and _SUCCESS, as a training run leaves
them); the training runner is a fake that records what it was asked to run.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from headwater.core import layout
from headwater.core.config import Settings
from headwater.core.partitions import partitions_between
from headwater.data.pipeline import lake_for
from headwater.model.comparison import Interval
from headwater.model.options import TrainOptions
from headwater.ops.checks import NotEnoughData
from headwater.registry.gate import gate_baseline
from headwater.registry.registry import Registry
from luigi_tasks import training as tasks
from luigi_tasks.training import (
    PromoteModel,
    TrainModel,
    training_entrypoint,
)

MakeStage = Callable[..., Settings]
START, END = date(2013, 1, 1), date(2013, 3, 12)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings(make_minimal_stage: MakeStage) -> Settings:
    # The stand-in range holds 9 clean rows: below the default minimum training size.
    return make_minimal_stage(grain="month", usecase__meters__min_training_rows="1")


def registry_of(settings: Settings, usecase: str = "meters") -> Registry:
    return Registry(lake_for(settings), usecase)


# A fair comparison by default: a year of training, two months of holdout with plenty of rows.
YEAR = {"date_range": "2013-01-01..2013-12-31", "holdout_from": "2013-11-01"}


def trained(
    settings: Settings,
    version: str,
    auc: float,
    production: tuple[str, float] | None = None,
    usecase: str = "meters",
    *,
    window: dict[str, str] = YEAR,
    holdout: tuple[int, int] = (5000, 61),
    spread: float = 0.0,
) -> str:
    """Leave what a training run leaves: metrics (with production's, if any), lineage, _SUCCESS.

    ``holdout`` is (rows, days); ``spread`` the half-width of the interval on each difference.
    """
    rows, days = holdout
    metrics: dict[str, Any] = {
        "holdout": {"auc_roc": auc, "log_loss": 1.0 - auc, "rows": rows},
        "holdout_window": {"from": "2013-11-01", "to": "2013-12-31", "rows": rows, "days": days},
    }
    if production is not None:
        name, production_auc = production
        metrics["production_on_holdout"] = {
            "version": name,
            "auc_roc": production_auc,
            "log_loss": 1.0 - production_auc,
        }
        differences = {"auc_roc": auc - production_auc, "log_loss": production_auc - auc}
        metrics["comparison"] = {
            "version": name,
            "intervals": {
                metric: Interval(metric, d, d - spread, d + spread, 0.95, blocks=days).to_dict()
                for metric, d in differences.items()
            },
        }
    registry = registry_of(settings, usecase)
    registry.write_json(version, layout.METRICS, metrics)
    registry.write_json(version, layout.LINEAGE, dict(window))
    registry.mark_complete(version)
    return version


def gate(version: str, tmp_path: Path, usecase: str = "meters", **options: Any) -> PromoteModel:
    """Run the gate's task body directly (its training dependency is not run)."""
    task = PromoteModel(
        usecase=usecase,
        start=START,
        end=END,
        version=version,
        run_id=f"run-{version}",
        state_dir=str(tmp_path),
        **options,
    )
    assert not task.complete()
    task.run()
    assert task.complete()
    return task


# --- gate_baseline -----------------------------------------------------------------------------


def test_no_production_means_nothing_to_compare_with() -> None:
    assert gate_baseline({"holdout": {"auc_roc": 0.7}}, None) is None


def test_the_baseline_is_productions_score_on_the_candidates_holdout() -> None:
    measured = {"version": "v1", "auc_roc": 0.69}

    assert gate_baseline({"production_on_holdout": measured}, "v1") == measured


@pytest.mark.parametrize(
    ("measured", "message"),
    [
        (None, "cannot compare with production v1: it was not measured on this holdout"),
        ({"version": "v0", "auc_roc": 0.7}, "it was not measured on this holdout"),
        (
            {"version": "v1", "error": "IllegalArgumentException: unknown column"},
            "cannot compare with production v1: IllegalArgumentException: unknown column",
        ),
    ],
    ids=["not measured", "another version measured", "production could not score"],
)
def test_the_gate_refuses_to_compare_what_was_not_measured_alike(
    measured: dict[str, Any] | None, message: str
) -> None:
    metrics: dict[str, Any] = {"holdout": {"auc_roc": 0.7}}
    if measured is not None:
        metrics["production_on_holdout"] = measured

    with pytest.raises(ValueError, match=message):
        gate_baseline(metrics, "v1")


# --- PromoteModel ------------------------------------------------------------------------------


def test_the_first_version_is_promoted_in_its_use_cases_registry(
    settings: Settings, tmp_path: Path
) -> None:
    first = trained(settings, "20130312T000000Z-first", 0.7123)

    gate(first, tmp_path)

    pointer = registry_of(settings).production()
    assert pointer is not None and pointer.version == first
    assert pointer.reason == "no production model yet: candidate AUC 0.7123 goes first"
    assert registry_of(settings).read_json(first, layout.DECISION)["decision"] == "promoted"
    assert registry_of(settings, "other").production() is None  # another use case's registry


def test_a_worse_candidate_is_rejected_with_both_numbers(
    settings: Settings, tmp_path: Path
) -> None:
    production = trained(settings, "20130312T000000Z-prod", 0.7150)
    registry_of(settings).promote(production, "seeded")
    candidate = trained(settings, "20130313T000000Z-cand", 0.7000, (production, 0.7200))

    gate(candidate, tmp_path)

    registry = registry_of(settings)
    assert registry.production().version == production
    decision = registry.read_json(candidate, layout.DECISION)
    assert decision["decision"] == "rejected"
    assert "candidate AUC 0.7000" in decision["reason"]
    assert "production 0.7200" in decision["reason"]


@pytest.mark.parametrize(
    ("metric", "production_loss", "candidate_loss", "promoted"),
    [
        ("log_loss", 0.50, 0.40, True),
        ("log_loss", 0.50, 0.60, False),
        ("brier", 0.20, 0.15, True),
        ("brier", 0.20, 0.25, False),
    ],
)
def test_a_loss_as_gate_metric_promotes_the_lower_one(
    make_minimal_stage: MakeStage,
    tmp_path: Path,
    metric: str,
    production_loss: float,
    candidate_loss: float,
    promoted: bool,
) -> None:
    settings = make_minimal_stage(grain="month", usecase__meters__gate__metric=metric)
    production = trained(settings, "20130312T000000Z-prod", 0.5)
    registry = registry_of(settings)
    registry.promote(production, "seeded")
    candidate = "20130313T000000Z-cand"
    difference = candidate_loss - production_loss
    registry.write_json(
        candidate,
        layout.METRICS,
        {
            "holdout": {metric: candidate_loss},
            "holdout_window": {"rows": 5000, "days": 61},
            "production_on_holdout": {"version": production, metric: production_loss},
            "comparison": {
                "version": production,
                "intervals": {
                    metric: Interval(metric, difference, difference, difference, 0.95).to_dict()
                },
            },
        },
    )
    registry.write_json(candidate, layout.LINEAGE, YEAR)
    registry.mark_complete(candidate)

    gate(candidate, tmp_path)

    assert (registry.production().version == candidate) is promoted
    assert "(lower is better)" in registry.read_json(candidate, layout.DECISION)["reason"]


def test_a_candidate_not_measured_against_production_fails_the_gate(
    settings: Settings, tmp_path: Path
) -> None:
    production = trained(settings, "20130312T000000Z-prod", 0.72)
    registry_of(settings).promote(production, "seeded")
    candidate = trained(settings, "20130313T000000Z-cand", 0.99)  # production never scored

    task = PromoteModel(
        usecase="meters", start=START, end=END, version=candidate, state_dir=str(tmp_path)
    )
    with pytest.raises(ValueError, match="cannot compare with production 20130312T000000Z-prod"):
        task.run()

    assert registry_of(settings).production().version == production
    assert not task.complete()


# --- an honest gate ----------------------------------------------------------------------------


def test_the_observed_one_month_candidate_is_not_promoted_over_the_full_year_model(
    settings: Settings, tmp_path: Path
) -> None:
    # Given the full-year model in production, and a one-month candidate held out on the last
    # five days of March (which production trained on), its AUC 0.0023 higher, margin 0.002
    production = trained(settings, "20131231T000000Z-year", 0.6506)
    registry = registry_of(settings)
    registry.promote(production, "seeded")
    month = {"date_range": "2013-03-01..2013-03-31", "holdout_from": "2013-03-27"}
    candidate = trained(
        settings,
        "20140101T000000Z-month",
        0.6529,
        (production, 0.6506),
        window=month,
        holdout=(27_000, 5),
    )

    gate(candidate, tmp_path)

    # Then production stays, and the decision says why the comparison was not fair
    assert registry.production().version == production
    decision = registry.read_json(candidate, layout.DECISION)
    assert decision["decision"] == "rejected"
    assert decision["reason"].startswith("cannot compare candidate with production fairly")
    assert "the holdout has 5 days, fewer than the 28 required" in decision["reason"]
    assert (
        "the holdout 2013-03-27..2013-03-31 overlaps the training window "
        f"2013-01-01..2013-10-31 of production {production}" in decision["reason"]
    )
    assert "the candidate trained on 26 days, less than 0.5 x the 304 days" in decision["reason"]


def test_a_noisy_gain_is_not_promoted_and_the_decision_records_the_interval(
    settings: Settings, tmp_path: Path
) -> None:
    # Given a fair comparison whose gain (0.0023) is within the noise (interval +-0.0074)
    production = trained(settings, "20131231T000000Z-prod", 0.6506)
    registry = registry_of(settings)
    registry.promote(production, "seeded")
    later = {"date_range": "2013-01-01..2014-12-31", "holdout_from": "2014-11-01"}
    candidate = trained(
        settings,
        "20141231T000000Z-cand",
        0.6529,
        (production, 0.6506),
        window=later,
        spread=0.0074,
    )

    gate(candidate, tmp_path)

    assert registry.production().version == production
    decision = registry.read_json(candidate, layout.DECISION)
    assert decision["decision"] == "rejected"
    assert "gain +0.0023, 95% interval [-0.0051, +0.0097]" in decision["reason"]
    assert decision["comparison"]["lower_gain"] == pytest.approx(-0.0051)
    assert decision["comparison"]["interval"]["blocks"] == 61


def test_a_candidate_without_an_interval_is_not_compared(
    settings: Settings, tmp_path: Path
) -> None:
    production = trained(settings, "20130312T000000Z-prod", 0.72)
    registry_of(settings).promote(production, "seeded")
    candidate = trained(settings, "20130313T000000Z-cand", 0.80, (production, 0.72))
    metrics = registry_of(settings).read_json(candidate, layout.METRICS)
    del metrics["comparison"]
    registry_of(settings).write_json(candidate, layout.METRICS, metrics)

    task = PromoteModel(
        usecase="meters", start=START, end=END, version=candidate, state_dir=str(tmp_path)
    )
    with pytest.raises(ValueError, match="no confidence interval on the difference"):
        task.run()

    assert registry_of(settings).production().version == production


def test_a_holdout_too_short_for_an_interval_is_refused_in_plain_words(
    make_minimal_stage: MakeStage, tmp_path: Path
) -> None:
    # Given a gate whose holdout minimums allow 2 days, and a candidate far ahead on 2 days
    settings = make_minimal_stage(
        grain="month", usecase__meters__gate__min_holdout_days=1,
        usecase__meters__gate__min_holdout_rows=1,
    )  # fmt: skip
    production = trained(settings, "20130312T000000Z-prod", 0.70)
    registry_of(settings).promote(production, "seeded")
    later = {"date_range": "2014-01-01..2014-12-31", "holdout_from": "2014-12-30"}
    candidate = trained(settings, "20141231T000000Z-cand", 0.80, window=later, holdout=(900, 2))
    reason = "2 day(s) of holdout: too few blocks for an interval (at least 5)"
    metrics = registry_of(settings).read_json(candidate, layout.METRICS)
    metrics["production_on_holdout"] = {"version": production, "auc_roc": 0.70, "log_loss": 0.3}
    metrics["comparison"] = {"version": production, "intervals": {}, "no_interval": reason}
    registry_of(settings).write_json(candidate, layout.METRICS, metrics)

    # When it is gated, then production stays and the decision says why
    gate(candidate, tmp_path)

    assert registry_of(settings).production().version == production
    decision = registry_of(settings).read_json(candidate, layout.DECISION)
    assert decision["decision"] == "rejected"
    assert f"no confidence interval on the gain: {reason}" in decision["reason"]


@pytest.mark.parametrize(
    ("how", "promoted"),
    [({}, False), ({"allow_shorter_window": True}, True), ("config", True)],
    ids=["refused", "--allow-shorter-window", "gate.allow_shorter_window"],
)
def test_a_much_shorter_window_needs_an_explicit_override(
    make_minimal_stage: MakeStage, tmp_path: Path, how: Any, promoted: bool
) -> None:
    overrides = {"usecase__meters__gate__allow_shorter_window": "true"} if how == "config" else {}
    settings = make_minimal_stage(grain="month", **overrides)
    production = trained(settings, "20131231T000000Z-year", 0.70)
    registry = registry_of(settings)
    registry.promote(production, "seeded")
    quarter = {"date_range": "2014-01-01..2014-04-30", "holdout_from": "2014-03-01"}
    candidate = trained(
        settings, "20140430T000000Z-short", 0.75, (production, 0.70), window=quarter
    )

    gate(candidate, tmp_path, **(how if isinstance(how, dict) else {}))

    assert (registry.production().version == candidate) is promoted
    reason = registry.read_json(candidate, layout.DECISION)["reason"]
    assert ("less than 0.5 x the 304 days" in reason) is not promoted


@pytest.mark.parametrize("has_production", [True, False], ids=["better", "first-version"])
def test_an_exploratory_run_never_touches_the_production_pointer(
    settings: Settings, tmp_path: Path, has_production: bool
) -> None:
    registry = registry_of(settings)
    production = None
    if has_production:
        production = trained(settings, "20130312T000000Z-prod", 0.70)
        registry.promote(production, "seeded")
    candidate = trained(
        settings,
        "20130313T000000Z-explore",
        0.80,
        (production, 0.70) if production else None,
        window={"date_range": "2013-01-01..2014-12-31", "holdout_from": "2014-11-01"},
    )

    gate(candidate, tmp_path, no_promote=True)

    pointer = registry.production()
    assert (pointer.version if pointer else None) == production
    decision = registry.read_json(candidate, layout.DECISION)
    assert decision["decision"] == "held"
    assert decision["reason"].startswith(
        "exploratory run (--no-promote): production untouched; the gate would have promoted it: "
    )
    assert registry.info(candidate).status == "candidate"


def test_the_training_entrypoint_is_the_repositorys_job() -> None:
    assert training_entrypoint() == REPO / "emr_jobs" / "train.py"


class FakeRunner:
    """Stands in for spark-submit: records the arguments, leaves a version as the job would."""

    def __init__(
        self,
        settings: Settings,
        auc: float = 0.7,
        production_auc: float = 0.6,
        window: dict[str, str] = YEAR,
    ) -> None:
        self.settings = settings
        self.auc, self.production_auc, self.window = auc, production_auc, window
        self.calls: list[tuple[TrainOptions, str]] = []

    def run(self, options: TrainOptions, run_id: str) -> dict[str, Any]:
        self.calls.append((options, run_id))
        version, usecase, key = options.version, options.usecase, options.training_key
        production = None
        if options.production_version:  # measured against production, as the job does
            production = (options.production_version, self.production_auc)
        trained(self.settings, version, self.auc, production, usecase=usecase, window=self.window)
        registry = registry_of(self.settings, usecase)
        lineage = registry.read_json(version, layout.LINEAGE, default={})
        registry.write_json(version, layout.LINEAGE, {**lineage, "training_key": key})
        return {"version": version}


def test_train_model_submits_the_job_for_its_use_case_with_production_to_compare(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a production version of the minimal use case, its clean range, and a runner
    # standing in for Spark
    production = trained(settings, "20130312T000000Z-prod", 0.72, usecase="meters")
    publish_meters(settings)
    registry_of(settings, "meters").promote(production, "seeded")
    fake = FakeRunner(settings)
    made: list[tuple[Settings, Path]] = []

    def create(stage: Settings, entrypoint: Path) -> FakeRunner:
        made.append((stage, entrypoint))
        return fake

    monkeypatch.setattr(tasks, "create_training_runner", create)

    # When the task runs
    task = TrainModel(
        usecase="meters", start=START, end=END, version="20130313T000000Z-cand", run_id="r2"
    )
    task.run()

    # Then the runner got the repository's job, and the job the use case, range and production
    assert made == [(settings, REPO / "emr_jobs" / "train.py")]
    ((options, run_id),) = fake.calls
    assert run_id == "r2-meters"  # one job per use case in a run: logs and artifacts apart
    assert options.usecase == "meters"
    assert options.lake == settings.lake.uri
    assert options.version == "20130313T000000Z-cand"
    assert options.production_version == production
    assert (options.start, options.end) == (START, END)
    assert task.complete()


def publish_meters(settings: Settings, rows: int = 3) -> None:
    """Publish the minimal use case's clean partitions of START..END (months)."""
    table = pa.table({"n": pa.array(range(rows), pa.int64())})
    for part in partitions_between(START, END, settings.partitioning.grain):
        lake_for(settings).publish(
            layout.CLEAN, layout.dataset("meters", "readings"), part.key, [table],
            schema=table.schema, source="test", run_id="r0",
        )  # fmt: skip


StandIn = Callable[..., "FakeRunner"]


@pytest.fixture
def stand_in(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> StandIn:
    """``stand_in(**options)``: publish the minimal use case's clean range and put a
    ``FakeRunner(settings, **options)`` in Spark's place; returns the runner."""

    def install(**options: Any) -> FakeRunner:
        publish_meters(settings)
        fake = FakeRunner(settings, **options)
        monkeypatch.setattr(tasks, "create_training_runner", lambda *_: fake)
        return fake

    return install


def test_an_unchanged_rerun_trains_nothing_and_reuses_the_version(
    settings: Settings, stand_in: StandIn, tmp_path: Path
) -> None:
    # Given a version trained on the clean range
    fake = stand_in()
    common = {"usecase": "meters", "start": START, "end": END, "state_dir": str(tmp_path)}
    TrainModel(version="v1", run_id="r1", **common).run()
    assert len(fake.calls) == 1

    # When a second run trains the same range on the same inputs, code and configuration
    second = TrainModel(version="v2", run_id="r2", **common)
    assert not second.complete()
    second.run()

    # Then nothing is trained or stored, the run reuses v1, and its gate decides on v1
    assert len(fake.calls) == 1
    assert not registry_of(settings, "meters").is_complete("v2")
    assert second.complete() and tasks.reused_version(str(tmp_path), "r2", "meters") == "v1"
    gate = PromoteModel(version="v2", run_id="r2", **common)
    assert not gate.complete()
    gate.run()
    assert gate.complete() and registry_of(settings, "meters").production().version == "v1"
    assert tasks.skipped_message("v1") == "training skipped: unchanged inputs (version v1)"

    # When told to retrain, it trains
    forced = TrainModel(version="v3", run_id="r3", retrain=True, **common)
    forced.run()
    assert len(fake.calls) == 2 and forced.complete()
    assert not PromoteModel(version="v3", run_id="r3", retrain=True, **common).complete()

    # When an input changed (a partition republished with other rows), it trains again
    publish_meters(settings, rows=4)
    TrainModel(version="v4", run_id="r4", **common).run()
    assert len(fake.calls) == 3
    keys = [options.training_key for options, _ in fake.calls]
    assert keys[0] == keys[1] != keys[2]


def test_a_version_whose_comparison_itself_failed_is_trained_again_not_reused(
    settings: Settings, stand_in: StandIn, tmp_path: Path
) -> None:
    # Given production, and a version of the same inputs whose comparison with it failed
    # (the job's own error, not production failing to score)
    production = trained(settings, "20130312T000000Z-prod", 0.72, usecase="meters")
    registry = registry_of(settings, "meters")
    registry.promote(production, "seeded")
    fake = stand_in()
    common = {"usecase": "meters", "start": START, "end": END, "state_dir": str(tmp_path)}
    TrainModel(version="v1", run_id="r1", **common).run()
    metrics = registry.read_json("v1", layout.METRICS)
    metrics["comparison"] = {
        "version": production,
        "outcome": "comparison_failed",
        "error": "MemoryError: out of memory",
    }
    registry.write_json("v1", layout.METRICS, metrics)

    # When a second run covers the same range, inputs, code and configuration
    second = TrainModel(version="v2", run_id="r2", **common)
    second.run()

    # Then it trains again instead of reusing the failed comparison
    assert len(fake.calls) == 2
    assert tasks.reused_version(str(tmp_path), "r2", "meters") is None
    assert registry.is_complete("v2")


def run_model(tmp_path: Path, run_id: str, **options: Any) -> tuple[TrainModel, PromoteModel]:
    """Train (or reuse) then gate the minimal use case's range as run ``run_id`` would."""
    common = {"usecase": "meters", "start": START, "end": END, "state_dir": str(tmp_path)}
    trainer = TrainModel(version=run_id, run_id=run_id, **common)
    if not trainer.complete():
        trainer.run()
    gate = PromoteModel(version=run_id, run_id=run_id, **common, **options)
    if not gate.complete():
        gate.run()
    assert gate.complete()
    return trainer, gate


def decisions_of(settings: Settings, version: str) -> list[str]:
    """The decisions recorded on a version, newest first."""
    body = registry_of(settings, "meters").read_json(version, layout.DECISION)
    return [body["decision"], *(d["decision"] for d in body.get("previous", []))]


def test_a_reused_exploratory_version_is_gated_by_a_run_that_may_promote(
    settings: Settings, stand_in: StandIn, tmp_path: Path
) -> None:
    # Given an exploratory run (--no-promote) of the range: its version is held
    fake = stand_in()
    run_model(tmp_path, "r1", no_promote=True)
    registry = registry_of(settings, "meters")
    assert registry.production() is None and decisions_of(settings, "r1") == ["held"]

    # When the same range runs again without --no-promote, on unchanged inputs
    run_model(tmp_path, "r2")

    # Then the training is reused, and this run's gate decides on it: promoted (no production)
    assert len(fake.calls) == 1
    assert tasks.reused_version(str(tmp_path), "r2", "meters") == "r1"
    assert registry.production().version == "r1"
    assert decisions_of(settings, "r1") == ["promoted", "held"]

    # And a third unchanged run finds it in production: nothing to decide, nothing recorded
    run_model(tmp_path, "r3")
    assert len(fake.calls) == 1 and decisions_of(settings, "r1") == ["promoted", "held"]


def test_a_reused_version_refused_for_its_short_window_is_promoted_with_the_override(
    settings: Settings, stand_in: StandIn, tmp_path: Path
) -> None:
    # Given production trained on a year, and a candidate of two months, better by far
    year_before = {"date_range": "2012-01-01..2012-12-31", "holdout_from": "2012-11-01"}
    production = trained(
        settings, "20130101T000000Z-prod", 0.6, usecase="meters", window=year_before
    )
    registry_of(settings, "meters").promote(production, "seeded")
    short = {"date_range": "2013-01-01..2013-03-12", "holdout_from": "2013-03-01"}
    fake = stand_in(auc=0.8, production_auc=0.6, window=short)
    run_model(tmp_path, "r1")
    assert decisions_of(settings, "r1") == ["rejected"]

    # When the same range runs again with the override
    run_model(tmp_path, "r2", allow_shorter_window=True)

    # Then the reused training is gated again with this run's options, and promoted
    assert len(fake.calls) == 1
    assert registry_of(settings, "meters").production().version == "r1"
    assert decisions_of(settings, "r1") == ["promoted", "rejected"]


def test_a_reused_version_retired_by_a_rollback_is_not_promoted_again(
    settings: Settings, stand_in: StandIn, tmp_path: Path
) -> None:
    # Given a candidate promoted over production p1, then rolled back by an operator
    year_before = {"date_range": "2012-01-01..2012-12-31", "holdout_from": "2012-11-01"}
    registry = registry_of(settings, "meters")
    p1 = trained(settings, "20130101T000000Z-p1", 0.6, usecase="meters", window=year_before)
    registry.promote(p1, "seeded")
    fake = stand_in(auc=0.8, production_auc=0.6)
    run_model(tmp_path, "r1")
    assert registry.production().version == "r1"
    registry.rollback("bad answers in production")

    # When the same command runs again on unchanged inputs
    run_model(tmp_path, "r2")

    # Then the rollback holds: the retired version is reused but not gated again
    assert len(fake.calls) == 1
    assert registry.production().version == p1
    assert decisions_of(settings, "r1") == ["retired", "promoted"]


def test_an_unchanged_rerun_keeps_the_decision_it_would_repeat(
    settings: Settings, stand_in: StandIn, tmp_path: Path
) -> None:
    # Given a candidate rejected (worse than production)
    production = trained(settings, "20130101T000000Z-prod", 0.9, usecase="meters")
    registry_of(settings, "meters").promote(production, "seeded")
    fake = stand_in(auc=0.7, production_auc=0.9)
    run_model(tmp_path, "r1")

    # When the same range runs again, unchanged
    run_model(tmp_path, "r2")

    # Then it is neither trained nor decided twice
    assert len(fake.calls) == 1
    assert decisions_of(settings, "r1") == ["rejected"]


def test_a_version_measured_against_an_earlier_production_is_trained_again(
    settings: Settings, stand_in: StandIn, tmp_path: Path
) -> None:
    # Given a held version measured against production p1
    registry = registry_of(settings, "meters")
    registry.promote(trained(settings, "20130101T000000Z-p1", 0.6, usecase="meters"), "seeded")
    fake = stand_in(auc=0.8, production_auc=0.6)
    run_model(tmp_path, "r1", no_promote=True)

    # When production moved on since (another version promoted)
    registry.promote(trained(settings, "20130102T000000Z-p2", 0.65, usecase="meters"), "by hand")
    run_model(tmp_path, "r2")

    # Then the unchanged inputs are trained again, to be compared with today's production
    assert len(fake.calls) == 2
    assert tasks.reused_version(str(tmp_path), "r2", "meters") is None
    assert fake.calls[1][0].production_version == "20130102T000000Z-p2"


def test_the_training_key_names_what_a_training_depends_on(settings: Settings) -> None:
    from headwater.model.runners import training_key

    publish_meters(settings)
    entrypoint = training_entrypoint()
    key = training_key(settings, "meters", START, END, entrypoint)

    assert key == training_key(settings, "meters", START, END, entrypoint)
    assert key != training_key(settings, "meters", START, date(2013, 3, 11), entrypoint)
    changed = settings.model_copy(
        update={"training": settings.training.model_copy(update={"reg_param": 0.5})}
    )
    assert key != training_key(changed, "meters", START, END, entrypoint)
    # nothing published: nothing to reuse
    assert training_key(settings, "meters", date(2014, 1, 1), date(2014, 1, 31), entrypoint) is None


def test_the_training_key_follows_the_code_not_the_commit(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from headwater.model import runners

    # Given the minimal use case's clean range and a key taken at one commit
    publish_meters(settings)
    entrypoint = training_entrypoint()
    monkeypatch.setattr(runners, "code_version", lambda *_: "1565b2f")
    key = runners.training_key(settings, "meters", START, END, entrypoint)

    # When a commit lands that changes none of the code a training runs (a test, a doc: the
    # unchanged rerun of test_main_job trained again when one landed between its runs)
    monkeypatch.setattr(runners, "code_version", lambda *_: "ea897ea")

    # Then the key is the same, and it still changes with the code the training runs
    assert runners.training_key(settings, "meters", START, END, entrypoint) == key
    monkeypatch.setattr(runners, "code_digest", lambda *_: "another library")
    assert runners.training_key(settings, "meters", START, END, entrypoint) != key


def test_a_range_with_too_few_clean_rows_is_refused_before_training(
    make_minimal_stage: MakeStage, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given the minimal use case's range published with no clean row at all (a shipped use case
    # over a year before its data: before, the job failed inside build_lookups with a TypeError)
    settings = make_minimal_stage(grain="month")
    publish_meters(settings, rows=0)
    fake = FakeRunner(settings)
    monkeypatch.setattr(tasks, "create_training_runner", lambda *_: fake)
    task = TrainModel(
        usecase="meters", start=START, end=END, version="v1", run_id="r1", state_dir=str(tmp_path)
    )

    # When it is to be trained, then it is refused in one line naming the use case, the
    # range, the rows found and the setting, and no job is submitted
    with pytest.raises(NotEnoughData) as caught:
        task.run()
    assert str(caught.value) == (
        "use case 'meters' has 0 clean rows in 2013-01-01..2013-03-12, fewer than the 100 "
        "needed to train (usecase.meters.min_training_rows)"
    )
    assert fake.calls == []

"""The training tasks and runners without Spark: the gate, promotion, wiring, and job submission.

The registries here are populated by hand (metrics.json and _SUCCESS, as a training run leaves
them); EMR is a fake runner over moto's S3, and spark-submit is replaced by small scripts.
"""

from __future__ import annotations

import io
import json
import sys
import zipfile
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from headwater import aws
from headwater.config import Settings
from headwater.lake import MANIFEST
from headwater.pipeline import RAW, lake_for
from headwater.registry import DECISION, METRICS, Registry
from headwater.training import (
    EmrTrainingRunner,
    LocalSparkRunner,
    TrainingFailed,
    bootstrap_script,
    build_code_zip,
    create_training_runner,
    parse_summary,
    train_arguments,
)
from luigi_tasks import training as tasks
from luigi_tasks.pipeline import Backfill
from luigi_tasks.training import (
    ExtractSnapshot,
    PromoteModel,
    RunAll,
    TrainModel,
    gate_baseline,
)

MakeSettings = Callable[..., Settings]
START, END = date(2013, 1, 1), date(2013, 3, 12)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings(make_settings: MakeSettings) -> Settings:
    return make_settings(grain="month")


def registry_of(settings: Settings) -> Registry:
    return Registry(lake_for(settings), settings.model.name)


def trained(
    settings: Settings, version: str, auc: float, production: tuple[str, float] | None = None
) -> str:
    """Leave what a training run leaves: metrics (with production's, if any) and _SUCCESS."""
    metrics: dict[str, Any] = {"holdout": {"auc_roc": auc, "log_loss": 1.0 - auc, "rows": 100}}
    if production is not None:
        name, production_auc = production
        metrics["production_on_holdout"] = {
            "version": name,
            "auc_roc": production_auc,
            "log_loss": 1.0 - production_auc,
        }
    registry = registry_of(settings)
    registry.write_json(version, METRICS, metrics)
    registry.mark_complete(version)
    return version


def gate(settings: Settings, version: str, tmp_path: Path) -> PromoteModel:
    """Run the gate's task body directly (its training dependency is not run)."""
    task = PromoteModel(
        start=START, end=END, version=version, run_id=f"run-{version}", state_dir=str(tmp_path)
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


def test_the_first_version_is_promoted_because_there_is_no_production(
    settings: Settings, tmp_path: Path
) -> None:
    first = trained(settings, "20130312T000000Z-first", 0.7123)

    gate(settings, first, tmp_path)

    registry = registry_of(settings)
    pointer = registry.production()
    assert pointer is not None and pointer.version == first
    assert pointer.reason == "no production model yet: candidate AUC 0.7123 goes first"
    decision = registry.read_json(first, DECISION)
    assert (decision["decision"], decision["reason"]) == ("promoted", pointer.reason)


def test_a_worse_candidate_is_rejected_with_both_numbers(
    settings: Settings, tmp_path: Path
) -> None:
    # Given a production version with AUC 0.72 on the candidate's holdout
    production = trained(settings, "20130312T000000Z-prod", 0.7150)
    registry_of(settings).promote(production, "seeded")
    candidate = trained(settings, "20130313T000000Z-cand", 0.7000, (production, 0.7200))

    # When the gate runs
    gate(settings, candidate, tmp_path)

    # Then production stays, and the candidate is rejected naming both numbers
    registry = registry_of(settings)
    assert registry.production().version == production
    decision = registry.read_json(candidate, DECISION)
    assert decision["decision"] == "rejected"
    assert "candidate AUC 0.7000" in decision["reason"]
    assert "production 0.7200" in decision["reason"]
    assert registry.info(candidate).status == "rejected"


@pytest.mark.parametrize(
    ("candidate_auc", "promoted"),
    [(0.725, False), (0.730, False), (0.7301, True), (0.74, True)],
    ids=["gain below margin", "gain equal to margin", "gain just above", "clear gain"],
)
def test_the_candidate_must_beat_production_by_more_than_the_margin(
    make_settings: MakeSettings, tmp_path: Path, candidate_auc: float, promoted: bool
) -> None:
    settings = make_settings(grain="month", model__gate_margin="0.01")
    production = trained(settings, "20130312T000000Z-prod", 0.72)
    registry_of(settings).promote(production, "seeded")
    candidate = trained(settings, "20130313T000000Z-cand", candidate_auc, (production, 0.72))

    gate(settings, candidate, tmp_path)

    registry = registry_of(settings)
    assert (registry.production().version == candidate) is promoted
    reason = registry.read_json(candidate, DECISION)["reason"]
    assert "margin 0.01" in reason
    assert ("beats production 0.7200" in reason) is promoted


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
    make_settings: MakeSettings,
    tmp_path: Path,
    metric: str,
    production_loss: float,
    candidate_loss: float,
    promoted: bool,
) -> None:
    # Given production with some loss on the candidate's holdout
    settings = make_settings(grain="month", model__gate_metric=metric)
    production = trained(settings, "20130312T000000Z-prod", 0.5)
    registry_of(settings).promote(production, "seeded")
    registry = registry_of(settings)
    candidate = "20130313T000000Z-cand"
    registry.write_json(
        candidate,
        METRICS,
        {
            "holdout": {metric: candidate_loss},
            "production_on_holdout": {"version": production, metric: production_loss},
        },
    )
    registry.mark_complete(candidate)

    # When the gate runs, then a lower loss wins and a higher one loses
    gate(settings, candidate, tmp_path)

    assert (registry.production().version == candidate) is promoted
    assert "(lower is better)" in registry.read_json(candidate, DECISION)["reason"]


def test_a_candidate_not_measured_against_production_fails_the_gate(
    settings: Settings, tmp_path: Path
) -> None:
    production = trained(settings, "20130312T000000Z-prod", 0.72)
    registry_of(settings).promote(production, "seeded")
    candidate = trained(settings, "20130313T000000Z-cand", 0.99)  # production never scored

    task = PromoteModel(start=START, end=END, version=candidate, state_dir=str(tmp_path))
    with pytest.raises(ValueError, match="cannot compare with production 20130312T000000Z-prod"):
        task.run()

    assert registry_of(settings).production().version == production
    assert not task.complete()


# --- wiring ------------------------------------------------------------------------------------


def test_train_model_requires_the_clean_range_and_the_planes_snapshot(settings: Settings) -> None:
    task = TrainModel(start=START, end=END, version="v1", run_id="r1", state_dir="/tmp/s")

    backfill, *snapshots = task.requires()

    assert isinstance(backfill, Backfill)
    assert (backfill.start, backfill.end, backfill.until) == (START, END, "clean")
    assert [(type(s), s.source, s.as_of) for s in snapshots] == [(ExtractSnapshot, "planes", END)]
    assert {t.run_id for t in (backfill, *snapshots)} == {"r1"}
    assert task.output().parts == ("models", "flights_delay", "v1", "_SUCCESS")


def test_run_all_goes_through_the_gate(settings: Settings) -> None:
    wrapper = RunAll(start=START, end=END, version="v1", run_id="r1")

    promote = wrapper.requires()

    assert isinstance(promote, PromoteModel)
    assert isinstance(promote.requires(), TrainModel)
    assert promote.output().parts == ("models", "flights_delay", "v1", DECISION)


def test_extract_snapshot_publishes_the_planes_table_as_of_its_date(settings: Settings) -> None:
    task = ExtractSnapshot(source="planes", as_of=END, run_id="r1")
    assert task.output().parts == (RAW, "planes", "snapshot=2013-03-12", MANIFEST)
    assert not task.complete()

    task.run()

    assert task.complete()
    table, manifest = lake_for(settings).read(RAW, "planes", "snapshot=2013-03-12")
    assert manifest.rows == table.num_rows > 3000
    assert {"tailnum", "year", "seats", "engines"} <= set(table.column_names)


class FakeRunner:
    """Stands in for spark-submit: records the arguments, leaves a version as the job would."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.calls: list[tuple[list[str], str]] = []

    def run(self, args: Sequence[str], run_id: str) -> dict[str, Any]:
        self.calls.append((list(args), run_id))
        version = args[args.index("--version") + 1]
        trained(self.settings, version, 0.7)
        return {"version": version}


def test_train_model_submits_the_job_with_the_production_version_to_compare(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a production version and a runner standing in for Spark
    production = trained(settings, "20130312T000000Z-prod", 0.72)
    registry_of(settings).promote(production, "seeded")
    fake = FakeRunner(settings)
    monkeypatch.setattr(tasks, "create_training_runner", lambda _: fake)

    # When the task runs
    task = TrainModel(start=START, end=END, version="20130313T000000Z-cand", run_id="r2")
    task.run()

    # Then the job got the range, the lake, the version and production to score on its holdout
    ((args, run_id),) = fake.calls
    assert run_id == "r2"
    assert args[args.index("--lake") + 1] == settings.lake.uri
    assert args[args.index("--version") + 1] == "20130313T000000Z-cand"
    assert args[args.index("--production-version") + 1] == production
    assert (args[args.index("--start") + 1], args[args.index("--end") + 1]) == (
        "2013-01-01",
        "2013-03-12",
    )
    assert args[args.index("--grain") + 1] == "month"
    assert task.complete()


# --- the runners -------------------------------------------------------------------------------


def test_train_arguments_carry_the_stage_configuration(make_settings: MakeSettings) -> None:
    settings = make_settings(
        grain="month",
        training__holdout_from="2013-03-01",
        aws__endpoint_url="http://127.0.0.1:5000",
    )

    args = train_arguments(
        settings, lake_uri="s3://b/lake", version="v2", start=START, end=END, run_id="r2",
        production_version="v1", code_version="abc123",
    )  # fmt: skip

    options = dict(zip(args[::2], args[1::2], strict=True))
    assert options["--lake"] == "s3://b/lake"
    assert options["--holdout-from"] == "2013-03-01"
    assert options["--production-version"] == "v1"
    assert options["--code-version"] == "abc123"
    assert options["--endpoint-url"] == "http://127.0.0.1:5000"
    assert options["--region"] == "us-east-1"
    config = json.loads(options["--config-json"])
    assert config["stage"] == "test"
    assert config["training"]["holdout_from"] == "2013-03-01"
    assert "emr" not in config["training"]
    from emr_jobs.train import parse_args

    parsed = parse_args(args)  # the job accepts every argument it is given
    assert (parsed.version, parsed.holdout_from) == ("v2", date(2013, 3, 1))


def test_parse_summary_takes_the_last_summary_line() -> None:
    out = (
        'noise\n{"headwater_train": {"version": "a"}}\n'
        'more\n{"headwater_train": {"version": "b"}}\n'
    )

    assert parse_summary(out) == {"version": "b"}
    with pytest.raises(TrainingFailed, match="printed no summary line"):
        parse_summary("Spark says hello\n")


def test_local_environment_points_spark_home_at_the_installed_pyspark(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pyspark

    monkeypatch.delenv("SPARK_HOME", raising=False)

    env = LocalSparkRunner.environment()

    assert Path(env["SPARK_HOME"]) == Path(pyspark.__file__).parent
    assert (Path(env["SPARK_HOME"]) / "bin" / "spark-submit").is_file()
    assert env["PYSPARK_PYTHON"] == env["PYSPARK_DRIVER_PYTHON"] == sys.executable
    monkeypatch.setenv("SPARK_HOME", "/opt/spark")
    assert LocalSparkRunner.environment()["SPARK_HOME"] == "/opt/spark"


def test_local_command_is_spark_submit_of_the_entrypoint(settings: Settings) -> None:
    command = LocalSparkRunner(settings).command(["--version", "v1"])

    assert Path(command[0]).name == "spark-submit"
    assert command[command.index("--master") + 1] == settings.training.master
    assert f"spark.pyspark.python={sys.executable}" in command
    assert command[command.index("--driver-java-options") + 1] == "-XX:+UseParallelGC"
    no_options = settings.model_copy(
        update={"training": settings.training.model_copy(update={"driver_java_options": ""})}
    )
    assert "--driver-java-options" not in LocalSparkRunner(no_options).command([])
    assert command[-3:] == [str(REPO / "emr_jobs" / "train.py"), "--version", "v1"]


def script_runner(settings: Settings, monkeypatch: pytest.MonkeyPatch, code: str) -> Any:
    """A LocalSparkRunner whose spark-submit is a Python one-liner."""
    monkeypatch.setattr(
        LocalSparkRunner, "command", lambda self, args: [sys.executable, "-c", code]
    )
    return LocalSparkRunner(settings)


def test_local_runner_returns_the_jobs_summary(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = (
        "import json, os, sys\n"
        "print('starting', file=sys.stderr)\n"
        "print('a line of output')\n"
        "print(json.dumps({'headwater_train': {'python': os.environ['PYSPARK_PYTHON']}}))\n"
    )

    summary = script_runner(settings, monkeypatch, code).run(["--version", "v1"], "run-ok")

    assert summary == {"python": sys.executable}
    log = Path(settings.run.log_dir) / "run-ok-train.log"
    assert log.read_text(encoding="utf-8") == "starting\n"


def test_a_failed_local_job_raises_with_the_tail_of_its_log(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = (
        "import sys\n"
        "for i in range(50): print(f'log line {i}', file=sys.stderr)\n"
        "print('Py4JJavaError: the cause', file=sys.stderr)\n"
        "sys.exit(3)\n"
    )

    runner = script_runner(settings, monkeypatch, code)
    with pytest.raises(TrainingFailed) as failure:
        runner.run(["--version", "v1"], "run-bad")

    message = str(failure.value)
    log = Path(settings.run.log_dir) / "run-bad-train.log"
    assert message.startswith(f"training job exited 3; log {log}; last lines:\n")
    assert message.endswith("Py4JJavaError: the cause\n")
    assert "log line 49\n" in message and "log line 21\n" in message
    assert "log line 20\n" not in message  # only the last 30 lines


def test_the_stage_chooses_the_runner(make_settings: MakeSettings) -> None:
    assert isinstance(create_training_runner(make_settings()), LocalSparkRunner)
    emr = make_settings(training__runner="emr")
    assert isinstance(create_training_runner(emr), EmrTrainingRunner)


def test_the_code_zip_holds_the_job_and_the_core_library_only() -> None:
    names = zipfile.ZipFile(io.BytesIO(build_code_zip())).namelist()

    assert {"headwater/scoring.py", "headwater/usecases/flights/features.py"} <= set(names)
    assert "emr_jobs/train.py" in names
    assert all(n.startswith(("headwater/", "emr_jobs/")) and n.endswith(".py") for n in names)


class FakeEmrRunner:
    """Stands in for headwater.aws.EmrRunner: records the spec instead of launching a cluster."""

    def __init__(self) -> None:
        self.calls: list[tuple[aws.EmrJobSpec, str, float]] = []

    def run(self, spec: aws.EmrJobSpec, run_id: str, timeout_seconds: float) -> aws.EmrRunResult:
        self.calls.append((spec, run_id, timeout_seconds))
        return aws.EmrRunResult("j-TEST", "s-TEST", "COMPLETED", False)


def test_emr_runner_ships_the_code_and_submits_one_cluster_mode_step(
    make_settings: MakeSettings, aws_env: None
) -> None:
    settings = make_settings(
        grain="month",
        training__runner="emr",
        training__emr__artifacts_uri="s3://hw-artifacts/train/",
        training__emr__log_uri="s3://hw-artifacts/logs/",
    )
    args = train_arguments(
        settings, lake_uri="s3://hw-lake/lake", version="v9", start=START, end=END, run_id="r9",
        production_version=None, code_version="abc123",
    )  # fmt: skip
    fake = FakeEmrRunner()
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="hw-artifacts")

        result = EmrTrainingRunner(settings, emr_runner=fake).run(args, "r9")

        def read(key: str) -> bytes:
            return s3.get_object(Bucket="hw-artifacts", Key=key)["Body"].read()

        code = zipfile.ZipFile(io.BytesIO(read("train/r9/headwater.zip")))
        bootstrap = read("train/r9/bootstrap.sh").decode()
        entrypoint = read("train/r9/train.py")

    # The artifacts are under the run's own prefix: the code, the entrypoint, the bootstrap
    assert {"headwater/scoring.py", "emr_jobs/train.py"} <= set(code.namelist())
    assert entrypoint == (REPO / "emr_jobs" / "train.py").read_bytes()
    assert bootstrap == bootstrap_script().decode()
    assert bootstrap.startswith("#!/bin/bash\nset -euo pipefail\n")
    assert "'pandas>=" in bootstrap and "'pyarrow>=" in bootstrap
    # and one step runs spark-submit in cluster mode with the code zip and the job's arguments
    assert result == {"cluster_id": "j-TEST", "step_id": "s-TEST"}
    ((spec, run_id, timeout),) = fake.calls
    assert (run_id, timeout) == ("r9", settings.training.timeout_seconds)
    assert list(spec.step_args) == [
        "spark-submit", "--deploy-mode", "cluster",
        "--py-files", "s3://hw-artifacts/train/r9/headwater.zip",
        "s3://hw-artifacts/train/r9/train.py", *args,
    ]  # fmt: skip
    step = list(spec.step_args)
    assert step[step.index("--lake") + 1] == "s3://hw-lake/lake"
    assert step[step.index("--version") + 1] == "v9"
    assert spec.bootstrap_actions == (
        ("python-deps", "s3://hw-artifacts/train/r9/bootstrap.sh", ()),
    )
    assert spec.log_uri == "s3://hw-artifacts/logs/"
    assert spec.tags == {
        "cost-centre": "data-science",
        "stage": "test",
        "for-use-with-amazon-emr-managed-policies": "true",  # the v2 service policy's condition
    }
    assert spec.name == "headwater-test-train-r9"  # the stage's failure rule matches the prefix
    assert spec.spark_conf[aws.EMR_ARROW_CONF] == "true"


def test_emr_runner_needs_somewhere_to_ship_code_and_logs(
    make_settings: MakeSettings, aws_env: None
) -> None:
    settings = make_settings(training__runner="emr")

    with pytest.raises(ValueError, match="artifacts_uri and training.emr.log_uri must be set"):
        EmrTrainingRunner(settings, emr_runner=FakeEmrRunner()).run(["--version", "v"], "r")

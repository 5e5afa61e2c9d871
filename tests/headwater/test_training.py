"""The training runners: the job's arguments per use case, the commands, the code shipped."""

from __future__ import annotations

import io
import json
import sys
import zipfile
from datetime import date
from pathlib import Path

import pytest

from headwater.config import Settings
from headwater.training import (
    LocalSparkRunner,
    build_code_zip,
    create_training_runner,
    train_arguments,
)

REPO = Path(__file__).resolve().parents[2]
ENTRYPOINT = REPO / "emr_jobs" / "train.py"


def stage(**usecase: object) -> Settings:
    """Two use cases; ``usecase`` overrides the second one's table."""
    return Settings.model_validate(
        {
            "stage": "test",
            "usecases": ["first", "second"],
            "usecase": {
                "first": {},
                "second": {"gate": {"metric": "log_loss", "margin": 0.01}, **usecase},
            },
            "aws": {"region": "eu-west-1", "endpoint_url": "http://127.0.0.1:5000"},
        }
    )


def arguments(settings: Settings, usecase: str) -> list[str]:
    return train_arguments(
        settings, usecase, lake_uri="s3://b/lake", version="v2", start=date(2011, 1, 1),
        end=date(2012, 12, 31), run_id="r2", production_version="v1", code_version="abc",
    )  # fmt: skip


def test_arguments_name_the_use_case_its_module_and_its_own_holdout() -> None:
    from emr_jobs.train import parse_args

    settings = stage(module="plugins.second", holdout_from="2012-10-01")

    args = arguments(settings, "second")

    parsed = parse_args(args)  # the job accepts every argument it is given
    assert (parsed.usecase, parsed.usecase_module) == ("second", "plugins.second")
    assert parsed.holdout_from == date(2012, 10, 1)
    assert (parsed.version, parsed.production_version, parsed.lake) == ("v2", "v1", "s3://b/lake")
    assert (parsed.region, parsed.endpoint_url) == ("eu-west-1", "http://127.0.0.1:5000")
    config = json.loads(parsed.config_json)
    assert config["usecase"] == "second"
    assert config["gate"] == {"metric": "log_loss", "margin": 0.01}
    assert "emr" not in config["training"]


def test_a_use_case_without_module_or_holdout_passes_neither() -> None:
    args = arguments(stage(), "first")

    assert args[:2] == ["--usecase", "first"]
    assert "--usecase-module" not in args and "--holdout-from" not in args


def test_an_unconfigured_use_case_is_refused() -> None:
    with pytest.raises(ValueError, match="use case 'third' is not configured"):
        arguments(stage(), "third")


def test_the_local_command_submits_the_entrypoint_it_was_given(tmp_path: Path) -> None:
    script = tmp_path / "job.py"

    command = LocalSparkRunner(stage(), script).command(["--version", "v1"])

    assert command[-3:] == [str(script), "--version", "v1"]
    assert f"spark.pyspark.python={sys.executable}" in command


def test_the_local_stage_runs_the_callers_entrypoint() -> None:
    runner = create_training_runner(stage(), ENTRYPOINT)

    assert isinstance(runner, LocalSparkRunner)
    assert runner.entrypoint == ENTRYPOINT


def test_the_code_zip_holds_the_core_library_and_any_package_asked_for() -> None:
    names = zipfile.ZipFile(io.BytesIO(build_code_zip(REPO))).namelist()

    assert {"headwater/spark_training.py", "headwater/usecases/bikeshare/features.py"} <= set(names)
    assert not any(n.startswith("emr_jobs/") for n in names)  # the entrypoint ships on its own
    extra = zipfile.ZipFile(io.BytesIO(build_code_zip(REPO, ("headwater", "emr_jobs")))).namelist()
    assert "emr_jobs/train.py" in extra

"""Run the training job: spark-submit locally, transient EMR on AWS.

Both runners submit the same entrypoint (a script path given by the layer that wires
them) with the same arguments; only where Spark runs differs. The job prints one JSON
line ``{"headwater_train": {...}}``, its summary.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections import deque
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any, Protocol

from headwater.config import Settings
from headwater.logs import get_logger

log = get_logger(__name__)
CODE_PACKAGE = "headwater"
# What the job needs on EMR nodes beyond what the release ships (pyspark comes with Spark).
NODE_REQUIREMENTS = ("pandas>=2.2,<4", "pyarrow>=17", "pydantic>=2.7,<3", "structlog>=24.1")


class TrainingFailed(RuntimeError):
    """The training job failed; the message carries the tail of its log."""


class TrainingRunner(Protocol):
    """Runs the training entrypoint with the given arguments and returns its summary."""

    def run(self, args: Sequence[str], run_id: str) -> dict[str, Any]:
        """Run the job to completion."""
        ...


def train_arguments(
    settings: Settings,
    usecase: str,
    *,
    lake_uri: str,
    version: str,
    start: date,
    end: date,
    run_id: str,
    production_version: str | None,
    code_version: str,
) -> list[str]:
    """The job's command-line arguments for ``usecase``, the same for every runner."""
    usecase_config = settings.usecase_config(usecase)
    config = {
        "stage": settings.stage,
        "usecase": usecase,
        "partitioning": settings.partitioning.model_dump(),
        "training": settings.training.model_dump(exclude={"emr"}),
        "gate": usecase_config.gate.model_dump(),
        "holdout_from": usecase_config.holdout_from,
    }
    args = ["--usecase", usecase]
    if usecase_config.module:
        args += ["--usecase-module", usecase_config.module]
    args += [
        "--lake",
        lake_uri,
        "--version",
        version,
        "--start",
        start.isoformat(),
        "--end",
        end.isoformat(),
        "--grain",
        settings.partitioning.grain,
        "--run-id",
        run_id,
        "--code-version",
        code_version,
        "--config-json",
        json.dumps(config, sort_keys=True),
        "--shuffle-partitions",
        str(settings.training.shuffle_partitions),
        "--reg-param",
        str(settings.training.reg_param),
    ]
    if usecase_config.holdout_from:
        args += ["--holdout-from", usecase_config.holdout_from]
    if production_version:
        args += ["--production-version", production_version]
    if settings.aws.region:
        args += ["--region", settings.aws.region]
    if settings.aws.endpoint_url:
        args += ["--endpoint-url", settings.aws.endpoint_url]
    return args


def parse_summary(stdout: str) -> dict[str, Any]:
    """Find the job's summary line in its standard output."""
    for line in reversed(stdout.splitlines()):
        if line.startswith('{"headwater_train"'):
            return json.loads(line)["headwater_train"]
    raise TrainingFailed("the training job printed no summary line")


def code_version(root: Path | None = None) -> str:
    """The git commit of the code being shipped (or 'unknown' outside a checkout)."""
    root = root or Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


class LocalSparkRunner:
    """spark-submit of the entrypoint script on this machine (``local[N]``), logs to a file."""

    def __init__(self, settings: Settings, entrypoint: Path, log_dir: Path | None = None) -> None:
        self.settings = settings
        self.entrypoint = Path(entrypoint)
        self.log_dir = Path(log_dir or settings.run.log_dir)

    def command(self, args: Sequence[str]) -> list[str]:
        """The spark-submit command line (the plain interpreter without spark-submit)."""
        submit = shutil.which("spark-submit", path=str(Path(sys.executable).parent))
        training = self.settings.training
        if submit:
            return [
                submit,
                "--master",
                training.master,
                "--driver-memory",
                training.driver_memory,
                *(
                    ["--driver-java-options", training.driver_java_options]
                    if training.driver_java_options
                    else []
                ),
                "--conf",
                "spark.ui.enabled=false",
                "--conf",
                f"spark.pyspark.python={sys.executable}",
                str(self.entrypoint),
                *args,
            ]
        return [sys.executable, str(self.entrypoint), "--master", training.master, *args]

    @staticmethod
    def environment() -> dict[str, str]:
        """Spark from the installed pyspark, and this interpreter on driver and workers."""
        import importlib.util

        env = dict(os.environ)
        spec = importlib.util.find_spec("pyspark")
        if spec is not None and spec.origin and "SPARK_HOME" not in env:
            env["SPARK_HOME"] = str(Path(spec.origin).parent)
        env["PYSPARK_PYTHON"] = sys.executable
        env["PYSPARK_DRIVER_PYTHON"] = sys.executable
        return env

    def run(self, args: Sequence[str], run_id: str) -> dict[str, Any]:
        """Run the job; on failure raise TrainingFailed with the tail of its log."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_file = self.log_dir / f"{run_id}-train.log"
        command = self.command(args)
        log.info("training started", runner="local", log=str(log_file))
        with log_file.open("w", encoding="utf-8") as err:
            proc = subprocess.run(
                command,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=self.environment(),
                timeout=self.settings.training.timeout_seconds,
            )
        if proc.returncode != 0:
            raise TrainingFailed(
                f"training job exited {proc.returncode}; log {log_file}; last lines:\n"
                + tail(log_file)
            )
        return parse_summary(proc.stdout)


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a text file."""
    with path.open(encoding="utf-8", errors="replace") as handle:
        return "".join(deque(handle, maxlen=lines))


def build_code_zip(root: Path | None = None, packages: Sequence[str] = (CODE_PACKAGE,)) -> bytes:
    """Zip the job's library code (``headwater`` and any extra package) for ``--py-files``."""
    root = root or Path(__file__).resolve().parents[1]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for package in dict.fromkeys(packages):
            for path in sorted((root / package).rglob("*.py")):
                archive.write(path, path.relative_to(root).as_posix())
    return buffer.getvalue()


def bootstrap_script() -> bytes:
    """The bootstrap action that installs the job's Python dependencies on every node."""
    requirements = " ".join(f"'{r}'" for r in NODE_REQUIREMENTS)
    return (
        f"#!/bin/bash\nset -euo pipefail\nsudo python3 -m pip install --quiet {requirements}\n"
    ).encode()


def cluster_name(stage: str, run_id: str) -> str:
    """The name of a run's training cluster; the stage's failure alert matches its prefix."""
    return f"headwater-{stage}-train-{run_id}"


class EmrTrainingRunner:
    """A transient EMR cluster per run: code shipped to S3, one step, self-terminating."""

    def __init__(
        self,
        settings: Settings,
        entrypoint: Path,
        emr_runner: Any = None,
        packages: Sequence[str] = (CODE_PACKAGE,),
    ) -> None:
        from headwater import aws

        self.settings = settings
        self.entrypoint = Path(entrypoint)
        self.packages = tuple(packages)
        self._aws = aws
        self._runner = emr_runner or aws.EmrRunner(region=settings.aws.region)

    def run(self, args: Sequence[str], run_id: str) -> dict[str, Any]:
        """Ship the code, run the step on a new (or this run's existing) cluster."""
        emr = self.settings.training.emr
        if not emr.artifacts_uri or not emr.log_uri:
            raise ValueError("training.emr.artifacts_uri and training.emr.log_uri must be set")
        root = Path(__file__).resolve().parents[1]
        uris = self._aws.upload_artifacts(
            f"{emr.artifacts_uri.rstrip('/')}/{run_id}",
            {
                "headwater.zip": build_code_zip(root, self.packages),
                "train.py": self.entrypoint.read_bytes(),
                "bootstrap.sh": bootstrap_script(),
            },
            region=self.settings.aws.region,
        )
        step = [
            "spark-submit",
            "--deploy-mode",
            "cluster",
            "--py-files",
            uris["headwater.zip"],
            uris["train.py"],
            *args,
        ]
        spec = self._aws.EmrJobSpec(
            name=cluster_name(self.settings.stage, run_id),
            release_label=emr.release_label,
            log_uri=emr.log_uri,
            service_role=emr.service_role,
            job_flow_role=emr.job_flow_role,
            master_instance_type=emr.master_instance_type,
            core_instance_type=emr.core_instance_type,
            core_instance_count=emr.core_instance_count,
            core_spot=emr.core_spot,
            idle_timeout_seconds=emr.idle_timeout_seconds,
            step_name="train",
            step_args=step,
            bootstrap_actions=[("python-deps", uris["bootstrap.sh"], [])],
            tags={
                "cost-centre": emr.cost_centre,
                "stage": self.settings.stage,
                # required by the AmazonEMRServicePolicy_v2 service role (infrastructure/)
                "for-use-with-amazon-emr-managed-policies": "true",
            },
            subnet_id=emr.subnet_id,
        )
        result = self._runner.run(spec, run_id, self.settings.training.timeout_seconds)
        log.info("training step completed", cluster=result.cluster_id, step=result.step_id)
        return {"cluster_id": result.cluster_id, "step_id": result.step_id}


def create_training_runner(settings: Settings, entrypoint: Path) -> TrainingRunner:
    """The runner the stage asks for, submitting the job script ``entrypoint``."""
    if settings.training.runner == "emr":
        return EmrTrainingRunner(settings, entrypoint)
    return LocalSparkRunner(settings, entrypoint)

"""Run the training job: spark-submit locally, transient EMR on AWS.

Both runners submit the same entrypoint (a script path given by the layer that wires
them) with the same options (one :class:`~headwater.model.options.TrainOptions` record, as
JSON); only where Spark runs differs. The job prints one JSON
line ``{"headwater_train": {...}}``, its summary.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import hashlib
import importlib.util
import io
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections import deque
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any, Protocol

from headwater import aws
from headwater.core import layout
from headwater.core.config import Settings
from headwater.core.logs import get_logger
from headwater.core.partitions import partitions_between
from headwater.core.progress import ProgressEvent
from headwater.data.lake import LakeError
from headwater.data.pipeline import lake_for, latest_snapshot, usecase_of
from headwater.model.options import TrainOptions

log = get_logger(__name__)
#: The job's argument carrying its options (:class:`TrainOptions` as JSON).
OPTIONS_FLAG = "--options-json"
CODE_PACKAGE = "headwater"
#: Subpackages of the library the job never imports (the operator's console, notifications,
#: checks): left out of the code shipped to the cluster (the layers keep model below ops).
NOT_SHIPPED = ("headwater/ops/",)
# What the job needs on EMR nodes beyond what the release ships (pyspark comes with Spark).
NODE_REQUIREMENTS = ("pandas>=2.2,<4", "pyarrow>=17", "pydantic>=2.7,<3", "structlog>=24.1")


class TrainingFailed(RuntimeError):
    """The training job failed; the message carries the tail of its log."""


class TrainingRunner(Protocol):
    """Runs the training entrypoint on the given options and returns its summary."""

    def run(self, options: TrainOptions, run_id: str) -> dict[str, Any]:
        """Run the job to completion."""
        ...


def training_options(
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
    training_key: str | None = None,
) -> TrainOptions:
    """The options of a training of ``usecase`` (the same for every runner)."""
    usecase_config = settings.usecase_config(usecase)
    holdout_from = usecase_config.holdout_from
    return TrainOptions(
        usecase=usecase,
        usecase_module=usecase_config.module or None,
        lake=lake_uri,
        version=version,
        start=start,
        end=end,
        grain=settings.partitioning.grain,
        holdout_from=date.fromisoformat(holdout_from) if holdout_from else None,
        production_version=production_version,
        run_id=run_id,
        code_version=code_version,
        training_key=training_key or "",
        config=training_config(settings, usecase),
        reg_param=settings.training.reg_param,
        shuffle_partitions=settings.training.shuffle_partitions,
        region=settings.aws.region,
        endpoint_url=settings.aws.endpoint_url,
    )


def job_arguments(options: TrainOptions) -> list[str]:
    """The job's command-line arguments: its options as one JSON document."""
    return [OPTIONS_FLAG, options.to_json()]


def training_config(settings: Settings, usecase: str) -> dict[str, Any]:
    """The configuration a training of ``usecase`` depends on (recorded in its lineage)."""
    usecase_config = settings.usecase_config(usecase)
    return {
        "stage": settings.stage,
        "usecase": usecase,
        "partitioning": settings.partitioning.model_dump(),
        "training": settings.training.model_dump(exclude={"emr"}),
        "gate": usecase_config.gate.model_dump(),
        "holdout_from": usecase_config.holdout_from,
    }


def training_inputs(settings: Settings, usecase: str, start: date, end: date) -> dict[str, str]:
    """The manifest checksum of every input of a training: clean partitions, latest snapshots.

    Read from the manifests alone (no Spark), named as the job's lineage names them.
    Raises LakeError when a clean partition of the range or a snapshot is not published.
    """
    lake, spec = lake_for(settings), usecase_of(settings, usecase).training
    dataset = layout.dataset(usecase, spec.dataset)
    inputs: dict[str, str] = {}
    for part in partitions_between(start, end, settings.partitioning.grain):  # type: ignore[arg-type]
        manifest = lake.manifest(layout.CLEAN, dataset, part.key)
        if manifest is None:
            raise LakeError(f"clean partition {part.key} of {dataset} is not published")
        inputs[f"{layout.CLEAN}/{dataset}/{part.key}"] = manifest.checksum
    for name in spec.references:
        reference = layout.dataset(usecase, name)
        snapshot = latest_snapshot(lake, usecase, name, end)
        manifest = lake.manifest(layout.RAW, reference, snapshot) if snapshot else None
        if manifest is None:
            raise LakeError(f"no snapshot of {reference} as of {end} is published")
        inputs[f"{layout.RAW}/{reference}/{snapshot}"] = manifest.checksum
    return inputs


def code_digest(settings: Settings, usecase: str, entrypoint: Path) -> str:
    """A digest of the code a training runs: the library, the job and the use case's module.

    Unlike the git commit, it changes with uncommitted edits too, and only with them: a commit
    of tests or docs leaves it as it was.
    """
    root = Path(__file__).resolve().parents[1]  # the headwater package
    files = sorted(root.rglob("*.py"))
    module = sys.modules.get(type(usecase_of(settings, usecase)).__module__)
    origin = Path(getattr(module, "__file__", "") or "")
    if origin.is_file() and root not in origin.resolve().parents:
        top = origin.parent if origin.name == "__init__.py" else origin
        files += sorted(top.rglob("*.py")) if top.is_dir() else [top]
    digest = hashlib.sha256()
    for path in [*files, Path(entrypoint)]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def training_key(
    settings: Settings, usecase: str, start: date, end: date, entrypoint: Path
) -> str | None:
    """What identifies a training: inputs' checksums, code, configuration, range, use case.

    The code is :func:`code_digest`, what the training runs, not the checkout's commit (which
    moves with any commit, a test's or a doc's, and then an unchanged rerun trained again); the
    commit is still recorded in the lineage (``TrainOptions.code_version``).
    None when an input is not published yet (then there is nothing to reuse).
    """
    try:
        inputs = training_inputs(settings, usecase, start, end)
    except LakeError:
        return None
    body = {
        "usecase": usecase,
        "range": [start.isoformat(), end.isoformat()],
        "inputs": inputs,
        "code": code_digest(settings, usecase, entrypoint),
        "config": training_config(settings, usecase),
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def parse_summary(stdout: str) -> dict[str, Any]:
    """Find the job's summary line in its standard output."""
    for line in reversed(stdout.splitlines()):
        if line.startswith('{"headwater_train"'):
            return json.loads(line)["headwater_train"]
    raise TrainingFailed("the training job printed no summary line")


def code_version(root: Path | None = None) -> str:
    """The git commit of the code being shipped (or 'unknown' outside a checkout)."""
    root = root or Path(__file__).resolve().parents[2]
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
    """spark-submit of the entrypoint script on this machine (``local[N]``), logs to a file.

    The job runs in a process group of its own that dies with the runner: on SIGTERM,
    Ctrl-C or any exit the group is stopped, and the job's first process gets a
    parent-death signal, so killing the orchestrator leaves no Spark behind. A rerun of
    the same run replaces the training its run left running (as the EMR runner adopts its
    run's cluster by tag). Both output streams (spark-submit sends the Python driver's
    output to stdout) go to the training log as they arrive; the progress lines also go
    to the run's log, and a failure names the Python exception and its last frames.
    """

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
        env = dict(os.environ)
        spec = importlib.util.find_spec("pyspark")
        if spec is not None and spec.origin and "SPARK_HOME" not in env:
            env["SPARK_HOME"] = str(Path(spec.origin).parent)
        env["PYSPARK_PYTHON"] = sys.executable
        env["PYSPARK_DRIVER_PYTHON"] = sys.executable
        env["PYTHONUNBUFFERED"] = "1"  # progress lines as they happen, not at exit
        return env

    def pid_file(self, run_id: str) -> Path:
        """Where a running training records its process group (for a rerun to replace it)."""
        return self.log_dir / f"{run_id}-train.pid"

    def run(self, options: TrainOptions, run_id: str) -> dict[str, Any]:
        """Run the job; on failure raise TrainingFailed naming the Python exception."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_file = self.log_dir / f"{run_id}-train.log"
        pid_file = self.pid_file(run_id)
        replace_stale_training(pid_file)
        if multiprocessing.parent_process() is not None:
            # A forked Luigi worker: die (and so stop the job, below) with the orchestrator.
            die_with_parent()
        log.info("training started", runner="local", log=str(log_file))
        summary: list[str] = []
        with log_file.open("w", encoding="utf-8") as out, _terminated_as_exception():
            proc = subprocess.Popen(
                self.command(job_arguments(options)),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                env=self.environment(),
                start_new_session=True,
                preexec_fn=_child_dies_with(os.getpid()),
            )
            pid_file.write_text(
                json.dumps({"pgid": proc.pid, "entrypoint": str(self.entrypoint)}),
                encoding="utf-8",
            )
            try:
                # The pump's lines carry this run's context (run id, use case, version).
                pump = threading.Thread(
                    target=contextvars.copy_context().run,
                    args=(_pump, proc.stdout, out, summary),
                    daemon=True,
                )
                pump.start()
                try:
                    returncode = proc.wait(timeout=self.settings.training.timeout_seconds)
                except subprocess.TimeoutExpired:
                    raise TrainingFailed(
                        f"training job timed out after {self.settings.training.timeout_seconds}"
                        f" s; log {log_file}"
                    ) from None
                pump.join()
            finally:
                stop_group(proc)
                pid_file.unlink(missing_ok=True)
                pump.join(timeout=STOP_GRACE_SECONDS)
                if proc.stdout is not None:
                    proc.stdout.close()
        if returncode != 0:
            raise TrainingFailed(failure_message(returncode, log_file))
        if not summary:
            raise TrainingFailed(f"the training job printed no summary line; log {log_file}")
        return parse_summary(summary[-1])


#: Frames of the failing job's traceback quoted in the error (the innermost ones).
ERROR_FRAMES = 3
#: Seconds a stopped job's process group has to exit before it is killed.
STOP_GRACE_SECONDS = 5.0
_PR_SET_PDEATHSIG = 1


def _pump(stream: Any, out: Any, summary: list[str]) -> None:
    """Copy the job's output to the log file; its progress records to the run's log as they come.

    Each progress line is parsed here, once, into its record (:class:`ProgressEvent`).
    """
    for line in stream:
        out.write(line)
        out.flush()
        text = line.rstrip("\n")
        progress = ProgressEvent.from_line(text)
        if progress is not None:
            log.info(progress.step, **progress.log_fields())
        elif text.startswith('{"headwater_train"'):
            summary.append(text)


def die_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Have Linux send ``sig`` to this process when its parent exits (False: not supported)."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def _child_dies_with(parent: int) -> Any:
    """A ``preexec_fn``: the child gets SIGTERM when ``parent`` exits, even by SIGKILL."""

    def preexec() -> None:
        die_with_parent()
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return preexec if sys.platform.startswith("linux") else None


class _Terminated(BaseException):
    """SIGTERM arrived while the job ran (raised so the job is stopped on the way out)."""


@contextlib.contextmanager
def _terminated_as_exception() -> Iterator[None]:
    """Turn SIGTERM into an exception for the block, then deliver it again once cleaned up."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the stop short
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    except _Terminated:
        signal.signal(signal.SIGTERM, previous)
        os.kill(os.getpid(), signal.SIGTERM)
        raise TrainingFailed("training stopped: the run was terminated") from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def stop_group(proc: subprocess.Popen[str]) -> None:
    """Stop the job's process group: SIGTERM, then SIGKILL after a grace period."""
    for sig, wait in ((signal.SIGTERM, STOP_GRACE_SECONDS), (signal.SIGKILL, 1.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _group_alive(proc.pid):
            proc.poll()
            time.sleep(0.05)
        if not _group_alive(proc.pid):
            break
    # Reap the job (killed by now): on a loaded machine that can take more than a second, and
    # a Popen dropped unreaped warns "subprocess ... is still running".
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=STOP_GRACE_SECONDS)


def _group_alive(pgid: int) -> bool:
    """True while a process of group ``pgid`` runs (zombies, finished but not reaped, do not)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def replace_stale_training(pid_file: Path) -> None:
    """Stop the training a pid file names if it still runs (its orchestrator died)."""
    try:
        record = json.loads(pid_file.read_text(encoding="utf-8"))
        pgid, entrypoint = int(record["pgid"]), str(record["entrypoint"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    try:
        cmdline = Path(f"/proc/{pgid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        cmdline = ""
    # Only a process still running this job: a pid reused by something else is left alone.
    if entrypoint in cmdline and _group_alive(pgid):
        log.warning("replacing the training this run left running", pgid=pgid)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
            deadline = time.monotonic() + STOP_GRACE_SECONDS
            while time.monotonic() < deadline and _group_alive(pgid):
                time.sleep(0.05)
    pid_file.unlink(missing_ok=True)


def python_error(text: str, frames: int = ERROR_FRAMES) -> str | None:
    """The last Python exception in a log: its line(s), then its innermost frames."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent")]
    if not starts:
        return None
    block = lines[starts[-1] + 1 :]
    stack: list[str] = []
    i = 0
    while i < len(block) and (block[i].startswith(" ") or not block[i].strip()):
        if block[i].lstrip().startswith("File "):
            code = block[i + 1].strip() if i + 1 < len(block) else ""
            indented = i + 1 < len(block) and block[i + 1].startswith("    ")
            stack.append(block[i].strip() + (f": {code}" if indented and code else ""))
        i += 1
    error = [line for line in block[i : i + 5] if line.strip()]
    # A Java exception behind a Py4J error carries its stack: keep the exception, not the stack.
    error = [line for line in error if not line.lstrip().startswith("at ")][:3]
    if not error:
        return None
    return "\n".join([*error, *(f"  {frame}" for frame in stack[-frames:])])


def failure_message(returncode: int, log_file: Path) -> str:
    """The error of a failed job: the Python exception and its last frames, else the log's tail."""
    text = log_file.read_text(encoding="utf-8", errors="replace")
    error = python_error(text)
    if error is None:
        return f"training job exited {returncode}; log {log_file}; last lines:\n{tail(log_file)}"
    return f"training job exited {returncode}: {error}\nlog {log_file}"


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a text file."""
    with path.open(encoding="utf-8", errors="replace") as handle:
        return "".join(deque(handle, maxlen=lines))


def build_code_zip(root: Path | None = None, packages: Sequence[str] = (CODE_PACKAGE,)) -> bytes:
    """Zip the job's library code (``headwater`` and any extra package) for ``--py-files``.

    Operations code (:data:`NOT_SHIPPED`) stays home: the job does not import it.
    """
    root = root or Path(__file__).resolve().parents[2]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for package in dict.fromkeys(packages):
            for path in sorted((root / package).rglob("*.py")):
                name = path.relative_to(root).as_posix()
                if not name.startswith(NOT_SHIPPED):
                    archive.write(path, name)
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
        self.settings = settings
        self.entrypoint = Path(entrypoint)
        self.packages = tuple(packages)
        self._aws = aws
        self._runner = emr_runner or aws.EmrRunner(region=settings.aws.region)

    def run(self, options: TrainOptions, run_id: str) -> dict[str, Any]:
        """Ship the code, run the step on a new (or this run's existing) cluster."""
        emr = self.settings.training.emr
        if not emr.artifacts_uri or not emr.log_uri:
            raise ValueError("training.emr.artifacts_uri and training.emr.log_uri must be set")
        root = Path(__file__).resolve().parents[2]
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
            *job_arguments(options),
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

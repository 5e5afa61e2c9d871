"""The training runners: the job's arguments per use case, the commands, the code shipped."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import pytest

from headwater.core.config import Settings
from headwater.core.logs import configure_logging, log_context
from headwater.core.progress import ProgressEvent
from headwater.model.options import TrainOptions
from headwater.model.runners import (
    LocalSparkRunner,
    TrainingFailed,
    build_code_zip,
    create_training_runner,
    job_arguments,
    training_options,
)
from tests.usecases.registered import packaged

REPO = Path(__file__).resolve().parents[3]
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


def options_of(settings: Settings, usecase: str) -> TrainOptions:
    return training_options(
        settings, usecase, lake_uri="s3://b/lake", version="v2", start=date(2011, 1, 1),
        end=date(2012, 12, 31), run_id="r2", production_version="v1", code_version="abc",
    )  # fmt: skip


def test_the_options_name_the_use_case_its_module_and_its_own_holdout() -> None:
    settings = stage(module="plugins.second", holdout_from="2012-10-01")

    options = options_of(settings, "second")

    assert (options.usecase, options.usecase_module) == ("second", "plugins.second")
    assert options.holdout_from == date(2012, 10, 1)
    assert (options.version, options.production_version, options.lake) == (
        "v2",
        "v1",
        "s3://b/lake",
    )
    assert (options.region, options.endpoint_url) == ("eu-west-1", "http://127.0.0.1:5000")
    assert options.config["usecase"] == "second"
    assert (options.config["gate"]["metric"], options.config["gate"]["margin"]) == (
        "log_loss",
        0.01,
    )
    assert "emr" not in options.config["training"]


def test_the_job_reads_back_the_options_it_is_given() -> None:
    from emr_jobs.train import parse_args

    options = options_of(stage(module="plugins.second", holdout_from="2012-10-01"), "second")

    parsed = parse_args(job_arguments(options))

    assert parsed.options == options  # one record, read back whole: no field spelled twice


def test_a_use_case_without_module_or_holdout_has_neither() -> None:
    options = options_of(stage(), "first")

    assert options.usecase == "first"
    assert (options.usecase_module, options.holdout_from) == (None, None)


def test_an_unconfigured_use_case_is_refused() -> None:
    with pytest.raises(ValueError, match="use case 'third' is not configured"):
        options_of(stage(), "third")


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

    usecases = {f"headwater/usecases/{name}/__init__.py" for name in packaged()}
    assert usecases
    assert {"headwater/model/spark_training.py", *usecases} <= set(names)
    assert not any(n.startswith("emr_jobs/") for n in names)  # the entrypoint ships on its own
    # operations code, the CLI and the API stay home: the job imports none of them
    assert not any(n.startswith(("headwater/ops/", "cli/", "api/")) for n in names)
    extra = zipfile.ZipFile(io.BytesIO(build_code_zip(REPO, ("headwater", "emr_jobs")))).namelist()
    assert "emr_jobs/train.py" in extra


# --- the local runner: streams, progress, failures, no orphans ----------------------------------
# A stand-in for spark-submit: like spark-submit, it sends the Python driver's stderr to its
# stdout, and writes its own start-up lines (log4j) to stderr.
FAKE_JOB = """
import os, sys, time
print("INFO SparkContext: Running Spark version 3.5", file=sys.stderr, flush=True)
for n in range(40):
    print(f"INFO Utils: start-up line {n}", file=sys.stderr, flush=True)
sys.stderr = sys.stdout
mode = sys.argv[1]
if mode == "progress":
    line = '{"headwater_progress": {"step": "read", "elapsed": 1.0, "seconds": 0.5, '
    print(line + '"fields": {"usecase": "u", "rows": 5}}}', file=sys.stderr, flush=True)
    go = sys.argv[2]
    for _ in range(200):
        if os.path.exists(go):
            break
        time.sleep(0.05)
    else:
        sys.exit(3)
    print('{"headwater_train": {"version": "v1"}}', flush=True)
elif mode == "fail":
    def split(holdout):
        raise ValueError(f"empty train or holdout split at {holdout}: widen the date range")
    def train():
        split("2013-03-01")
    train()
"""


class PlainRunner(LocalSparkRunner):
    """The local runner without spark-submit: the entrypoint under this interpreter, given
    ``argv`` (what the fake job should do) in place of the options."""

    argv: Sequence[str] = ()

    def command(self, args: Sequence[str]) -> list[str]:
        return [sys.executable, str(self.entrypoint), *self.argv]


def plain(entrypoint: Path, log_dir: Path, *argv: str) -> PlainRunner:
    runner = PlainRunner(stage(), entrypoint, log_dir=log_dir)
    runner.argv = argv
    return runner


#: The options of a run (the fake jobs ignore them).
OPTIONS = TrainOptions(
    usecase="u", lake="file:///l", version="v1", start=date(2013, 1, 1), end=date(2013, 1, 31)
)


def fake_job(tmp_path: Path, text: str = FAKE_JOB) -> Path:
    path = tmp_path / "fake_train.py"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_failed_jobs_error_and_log_carry_the_python_exception_and_its_last_frames(
    tmp_path: Path,
) -> None:
    # Given a job that fails in Python after 40 lines of start-up noise
    runner = plain(fake_job(tmp_path), tmp_path / "logs", "fail")

    # When it runs
    with pytest.raises(TrainingFailed) as failed:
        runner.run(OPTIONS, "r1")

    # Then the error leads with the exception, then its last frames, not Spark's start-up lines
    message = str(failed.value)
    assert message.startswith("training job exited 1: ValueError: empty train or holdout split")
    assert "in split" in message and "in train" in message
    assert "start-up line" not in message
    assert str(tmp_path / "logs" / "r1-train.log") in message
    # and the training log holds both streams
    text = (tmp_path / "logs" / "r1-train.log").read_text(encoding="utf-8")
    assert "INFO SparkContext" in text and "ValueError: empty train or holdout split" in text


def test_progress_lines_reach_the_runs_log_while_the_job_runs(tmp_path: Path) -> None:
    # Given a job that prints a progress line, then waits for the log to have seen it
    go = tmp_path / "go"
    seen: list[ProgressEvent] = []

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            progress = ProgressEvent.of(record.msg) if isinstance(record.msg, dict) else None
            if progress is not None:
                seen.append(progress)
                go.touch()

    configure_logging(console=False)  # structlog through the standard library, as a run does
    handler = Watch()
    logging.getLogger().addHandler(handler)
    try:
        runner = plain(fake_job(tmp_path), tmp_path / "logs", "progress", str(go))
        summary = runner.run(OPTIONS, "r1")
    finally:
        logging.getLogger().removeHandler(handler)

    # Then the line was logged before the job ended, and the summary still parsed
    assert seen == [ProgressEvent("read", 1.0, 0.5, {"usecase": "u", "rows": 5})]
    assert summary == {"version": "v1"}


def test_progress_lines_carry_the_context_of_the_training_they_belong_to(tmp_path: Path) -> None:
    # Given a training run inside its task's log context (as TrainModel runs it)
    go = tmp_path / "go"
    contexts: list[dict[str, object]] = []

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if isinstance(record.msg, dict) and record.msg.get("step") == "training":
                contexts.append(record.msg)
                go.touch()

    configure_logging(console=False)
    handler = Watch()
    logging.getLogger().addHandler(handler)
    try:
        runner = plain(fake_job(tmp_path), tmp_path / "logs", "progress", str(go))
        with log_context(run_id="r1", usecase="u", version="v1"):
            runner.run(OPTIONS, "r1")
    finally:
        logging.getLogger().removeHandler(handler)

    # Then its progress lines name the run and the use case (the console shows whose they are)
    assert contexts and {(c["run_id"], c["usecase"]) for c in contexts} == {("r1", "u")}


# The orchestrator: a runner in a process of its own (or in a forked worker, as Luigi's with
# more than one worker), running a job that starts a child as spark-submit starts the JVM.
ORCHESTRATOR = """
import multiprocessing, sys
from pathlib import Path
from datetime import date
from headwater.core.config import Settings
from headwater.model.options import TrainOptions
from headwater.model.runners import LocalSparkRunner

class PlainRunner(LocalSparkRunner):
    def command(self, args):
        return [sys.executable, str(self.entrypoint), self.pids]

def train(entrypoint, logs, pids):
    runner = PlainRunner(Settings.model_validate({"stage": "test"}), Path(entrypoint), Path(logs))
    runner.pids = pids
    runner.run(TrainOptions("u", "file:///l", "v1", date(2013, 1, 1), date(2013, 1, 1)), "r1")

if __name__ == "__main__":
    mode, entrypoint, logs, pids = sys.argv[1:]
    if mode == "forked":
        worker = multiprocessing.get_context("fork").Process(
            target=train, args=(entrypoint, logs, pids)
        )
        worker.start()
        worker.join()
    else:
        train(entrypoint, logs, pids)
"""
# The job: the "JVM" starts the "Python driver" (which, as emr_jobs/train.py, dies with its
# parent), each records its pid, then both wait as a long training does.
LONG_JOB = """
import os, subprocess, sys, time
from headwater.model.runners import die_with_parent
if len(sys.argv) > 2:
    die_with_parent()
    with open(sys.argv[1], "a") as out:
        out.write(f"{os.getpid()}\\n")
    time.sleep(120)
    sys.exit(0)
driver = subprocess.Popen([sys.executable, __file__, sys.argv[1], "driver"])
with open(sys.argv[1], "a") as out:
    out.write(f"{os.getpid()}\\n")
time.sleep(120)
"""


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie has finished)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal: Linux")
@pytest.mark.parametrize("mode", ["inprocess", "forked"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killing_the_orchestrator_during_training_leaves_no_process(
    tmp_path: Path, mode: str, sig: int
) -> None:
    # Given an orchestrator whose training started a job and its child
    script = tmp_path / "orchestrator.py"
    script.write_text(ORCHESTRATOR, encoding="utf-8")
    pids_file = tmp_path / "pids"
    entrypoint = fake_job(tmp_path, LONG_JOB)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    logs = tmp_path / "logs"
    orchestrator = subprocess.Popen(
        [sys.executable, str(script), mode, str(entrypoint), str(logs), str(pids_file)], env=env
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and orchestrator.poll() is None:
        if pids_file.exists() and len(pids_file.read_text().split()) == 2:
            break
        time.sleep(0.05)
    pids = [int(p) for p in pids_file.read_text().split()]
    assert len(pids) == 2 and all(alive(p) for p in pids)

    # When the orchestrator is killed
    orchestrator.send_signal(sig)
    orchestrator.wait(timeout=10)

    # Then the job and its child are gone within a few seconds
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    left = [p for p in pids if alive(p)]
    for pid in left:  # never leave them behind, even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not left


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process table: Linux")
def test_a_rerun_replaces_the_training_its_run_left_running(tmp_path: Path) -> None:
    # Given a training of run r1 still running from an orchestrator that died
    entrypoint = fake_job(tmp_path, LONG_JOB)
    runner = plain(entrypoint, tmp_path / "logs", str(tmp_path / "stale-pids"))
    stale = subprocess.Popen(
        runner.command([]),
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    # (running the job, as a training left behind is: wait until both its processes are up)
    pids = tmp_path / "stale-pids"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (
        pids.exists() and len(pids.read_text().split()) == 2
    ):
        time.sleep(0.05)
    runner.log_dir.mkdir()
    runner.pid_file("r1").write_text(
        json.dumps({"pgid": stale.pid, "entrypoint": str(entrypoint)}), encoding="utf-8"
    )

    # When the run's training starts again (here: a job that prints its summary at once)
    quick = PlainRunner(stage(), entrypoint, log_dir=tmp_path / "logs")
    quick.command = lambda args: [  # type: ignore[method-assign]
        sys.executable, "-c", f"print('{{\"headwater_train\": {{}}}}') # {entrypoint}"
    ]  # fmt: skip
    try:
        assert quick.run(OPTIONS, "r1") == {}
        # Then the stale training was stopped first, and the run's pid file is gone
        assert stale.wait(timeout=10) != 0
        assert not runner.pid_file("r1").exists()
    finally:
        if stale.poll() is None:
            os.killpg(stale.pid, signal.SIGKILL)
            stale.wait(timeout=10)

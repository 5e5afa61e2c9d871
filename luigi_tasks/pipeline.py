"""Extraction, cleaning and backfill tasks of a use case. Heavy work runs in the functions."""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import luigi

import functions.clean
import functions.extract
from headwater.core import layout
from headwater.core.config import Settings
from headwater.core.logs import get_logger, log_context
from headwater.core.partitions import Partition, is_settled, parse_partition, partitions_between
from headwater.data.executors import create_executor
from headwater.data.pipeline import lake_for, timezone_of, usecase_of
from headwater.data.sources import get_kind
from luigi_tasks.context import settings_for

log = get_logger("headwater.progress")
#: The Luigi resource shared by extractions from HTTP sources (the run's request budget).
HTTP_RESOURCE = "http_api"
#: The steps a run can redo (``--rerun``), in order: redoing one redoes those after it.
RERUN_STEPS = ("extract", "clean")
#: ``rerun`` parameter values: nothing (""), or the first step to redo.
RERUN_CHOICES = ("", *RERUN_STEPS)


def reruns(rerun: str, step: str) -> bool:
    """True when a run that redoes from step ``rerun`` redoes ``step``."""
    return bool(rerun) and RERUN_STEPS.index(step) >= RERUN_STEPS.index(rerun)


def function_handlers() -> Mapping[str, Callable[[dict[str, Any], Any], dict[str, Any]]]:
    """The Lambda handlers the in-process executor runs, by function kind."""
    return {"extract": functions.extract.lambda_handler, "clean": functions.clean.lambda_handler}


class LakeTarget(luigi.Target):
    """A published lake partition of a use case: it exists once its manifest does, and is final."""

    def __init__(
        self,
        settings: Settings,
        usecase: str,
        zone: str,
        dataset: str,
        partition: Partition,
        run_id: str | None = None,
        rerun: bool = False,
    ) -> None:
        self.settings = settings
        self.usecase = usecase
        self.zone = zone
        self.dataset = dataset
        self.partition = partition
        self.run_id = run_id
        self.rerun = rerun

    def exists(self) -> bool:
        """True when the partition is published by this run, or after its period ended.

        This month's partition, published yesterday, holds the days so far: this run
        replaces it whole (and then it exists for the rest of this run, so the tasks
        that depend on it can run), until a run after the month's end plus the settle
        time. A ``rerun`` target exists only once this run has published it.
        """
        manifest = lake_for(self.settings).manifest(
            self.zone, layout.dataset(self.usecase, self.dataset), self.partition.key
        )
        if manifest is None:
            return False
        if self.run_id is not None and manifest.run_id == self.run_id:
            return True
        if self.rerun:
            return False
        return is_settled(
            self.partition,
            datetime.fromisoformat(manifest.created_at),
            timezone_of(self.settings, self.usecase),
            timedelta(hours=self.settings.partitioning.settle_hours),
        )


def task_label(task: luigi.Task) -> str:
    """A task as a person reads it, e.g. ``CleanPartition <use case> 2013-01-02``.

    Its family, then its significant parameters' values: a true flag by its name, a list
    joined by commas, empty values and mappings left out. Luigi's task id (with its hash)
    stays in the JSON log.
    """
    words = [task.task_family]
    for name, param in task.get_params():
        value = getattr(task, name)
        if not param.significant or value is None or value is False or value == "":
            continue
        if isinstance(value, Mapping):
            continue
        if value is True:
            words.append(name)
        elif isinstance(value, list | tuple):
            words.append(",".join(str(v) for v in value))
        else:
            words.append(str(value))
    return " ".join(words)


def record_path(state_dir: str, run_id: str, kind: str, task_id: str) -> Path:
    """Where a task's outcome is recorded for the end-of-run report."""
    return Path(state_dir) / run_id / kind / f"{task_id}.json"


def write_record(path: Path, body: dict[str, Any]) -> None:
    """Write a run record atomically (a reader never sees half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, default=str), encoding="utf-8")
    os.replace(tmp, path)


class PipelineTask(luigi.Task):
    """Common parts: the use case, the run id (not part of identity) and outcome records."""

    usecase: str = luigi.Parameter()
    run_id: str = luigi.Parameter(default="adhoc", significant=False)
    state_dir: str = luigi.Parameter(default="var/runs", significant=False)
    # Redo the range's partitions from this step on, replacing them whole (--rerun).
    rerun: str = luigi.ChoiceParameter(choices=RERUN_CHOICES, default="", significant=False)

    def settings(self) -> Settings:
        """The run's settings (read once per run and process, never per task)."""
        return settings_for(self.run_id)

    def partition_of(self, label: str) -> Partition:
        """A partition label parsed at the stage's grain."""
        return parse_partition(label, self.settings().partitioning.grain)

    def invoke(self, kind: str, event: dict[str, Any]) -> dict[str, Any]:
        """Invoke the function of ``kind`` through the stage's executor."""
        with log_context(task=self.task_family, **event):
            executor = create_executor(self.settings(), function_handlers())
            result = executor.invoke(kind, event)
            log.info(
                f"{kind} done",
                rows=result.get("rows"),
                quarantined=result.get("quarantined"),
                seconds=result.get("seconds"),
            )
        write_record(record_path(self.state_dir, self.run_id, "done", self.task_id), result)
        return result

    def on_failure(self, exception: BaseException) -> str:
        """Record the failure for the run's notification, then report it to Luigi."""
        write_record(
            record_path(self.state_dir, self.run_id, "failed", self.task_id),
            {
                "task": task_label(self),
                "usecase": self.usecase,
                "error": f"{type(exception).__name__}: {exception}",
            },
        )
        # The same context as the task's other lines, so a failure can be found by partition.
        where = {
            k: v for k, v in self.param_kwargs.items() if k in ("usecase", "source", "partition")
        }
        with log_context(run_id=self.run_id, task=self.task_family, **where):
            log.error("task failed", task_id=self.task_id, error=str(exception))
        return "".join(traceback.format_exception(exception))


class ExtractPartition(PipelineTask):
    """Extract one partition of one source of a use case (one function invocation)."""

    source: str = luigi.Parameter()
    partition: str = luigi.Parameter()

    @property
    def resources(self) -> dict[str, int]:  # type: ignore[override]
        """Extractions from HTTP sources share the run's concurrency budget."""
        kind = self.settings().source(self.usecase, self.source).kind
        return {HTTP_RESOURCE: 1} if get_kind(kind).http else {}

    def output(self) -> LakeTarget:
        """The raw partition of this source."""
        return LakeTarget(
            self.settings(),
            self.usecase,
            layout.RAW,
            self.source,
            self.partition_of(self.partition),
            run_id=self.run_id,
            rerun=reruns(self.rerun, "extract"),
        )

    def run(self) -> None:
        """Invoke the extract function for this source and partition."""
        event = {
            "run_id": self.run_id,
            "usecase": self.usecase,
            "source": self.source,
            "partition": self.partition,
        }
        self.invoke("extract", event)


class CleanPartition(PipelineTask):
    """Clean one partition of a use case once all its sources are extracted (one invocation)."""

    partition: str = luigi.Parameter()

    def requires(self) -> list[ExtractPartition]:
        """One extraction per source of the use case."""
        usecase = usecase_of(self.settings(), self.usecase)
        return [
            ExtractPartition(
                usecase=self.usecase,
                source=name,
                partition=self.partition,
                run_id=self.run_id,
                state_dir=self.state_dir,
                rerun=self.rerun,
            )
            for name in usecase.sources
        ]

    def output(self) -> LakeTarget:
        """The clean partition."""
        settings = self.settings()
        return LakeTarget(
            settings,
            self.usecase,
            layout.CLEAN,
            usecase_of(settings, self.usecase).clean_dataset,
            self.partition_of(self.partition),
            run_id=self.run_id,
            rerun=reruns(self.rerun, "clean"),
        )

    def run(self) -> None:
        """Invoke the clean function for this partition."""
        event = {"run_id": self.run_id, "usecase": self.usecase, "partition": self.partition}
        self.invoke("clean", event)


class Backfill(luigi.WrapperTask):
    """Every partition of a use case between two dates (inclusive), up to the given step."""

    usecase: str = luigi.Parameter()
    start: Any = luigi.DateParameter()
    end: Any = luigi.DateParameter()
    until: str = luigi.ChoiceParameter(choices=["extract", "clean"], default="clean")
    run_id: str = luigi.Parameter(default="adhoc", significant=False)
    state_dir: str = luigi.Parameter(default="var/runs", significant=False)
    rerun: str = luigi.ChoiceParameter(choices=RERUN_CHOICES, default="", significant=False)

    def requires(self) -> list[luigi.Task]:
        """Clean tasks (or only extractions) for each partition of the range."""
        settings = settings_for(self.run_id)
        parts = partitions_between(self.start, self.end, settings.partitioning.grain)
        common = {"usecase": self.usecase, "run_id": self.run_id, "state_dir": self.state_dir}
        common["rerun"] = self.rerun
        if self.until == "extract":
            names = usecase_of(settings, self.usecase).sources
            return [
                ExtractPartition(source=n, partition=p.label, **common)
                for p in parts
                for n in names
            ]
        return [CleanPartition(partition=p.label, **common) for p in parts]

"""Extraction, cleaning and backfill tasks. Heavy work runs in the functions, not here."""

from __future__ import annotations

import json
import os
import traceback
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import luigi

from headwater.config import Settings, load_settings
from headwater.executors import create_executor
from headwater.logs import get_logger, log_context
from headwater.partitions import Partition, is_settled, parse_partition, partitions_between
from headwater.pipeline import CLEAN, RAW, lake_for
from headwater.usecases import get_usecase

log = get_logger("headwater.progress")
WEATHER_RESOURCE = "http_api"


class LakeTarget(luigi.Target):
    """A published lake partition: it exists once its manifest does, and is final."""

    def __init__(
        self, zone: str, dataset: str, partition: Partition, run_id: str | None = None
    ) -> None:
        self.zone = zone
        self.dataset = dataset
        self.partition = partition
        self.run_id = run_id

    def exists(self) -> bool:
        """True when the partition is published by this run, or after its period ended.

        This month's partition, published yesterday, holds the days so far: this run
        replaces it whole (and then it exists for the rest of this run, so the tasks
        that depend on it can run), until a run after the month's end plus the settle
        time.
        """
        settings = load_settings()
        manifest = lake_for(settings).manifest(self.zone, self.dataset, self.partition.key)
        if manifest is None:
            return False
        if self.run_id is not None and manifest.run_id == self.run_id:
            return True
        return is_settled(
            self.partition,
            datetime.fromisoformat(manifest.created_at),
            settings.partitioning.timezone,
            timedelta(hours=settings.partitioning.settle_hours),
        )


def record_path(state_dir: str, run_id: str, kind: str, task_id: str) -> Path:
    """Where a task's outcome is recorded for the end-of-run report."""
    return Path(state_dir) / run_id / kind / f"{task_id}.json"


def _record(path: Path, body: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, default=str), encoding="utf-8")
    os.replace(tmp, path)


class PipelineTask(luigi.Task):
    """Common parts: the run id (not part of a task's identity) and outcome records."""

    run_id: str = luigi.Parameter(default="adhoc", significant=False)
    state_dir: str = luigi.Parameter(default="var/runs", significant=False)

    def settings(self) -> Settings:
        """Configuration, read when the task runs (never at import)."""
        return load_settings()

    def invoke(self, kind: str, event: dict[str, Any]) -> dict[str, Any]:
        """Invoke the function of ``kind`` through the stage's executor."""
        with log_context(task=self.task_family, **event):
            result = create_executor(self.settings()).invoke(kind, event)
            log.info(
                f"{kind} done",
                rows=result.get("rows"),
                quarantined=result.get("quarantined"),
                seconds=result.get("seconds"),
            )
        _record(record_path(self.state_dir, self.run_id, "done", self.task_id), result)
        return result

    def on_failure(self, exception: BaseException) -> str:
        """Record the failure for the run's notification, then report it to Luigi."""
        _record(
            record_path(self.state_dir, self.run_id, "failed", self.task_id),
            {"task": self.task_id, "error": f"{type(exception).__name__}: {exception}"},
        )
        # The same context as the task's other lines, so a failure can be found by partition.
        where = {k: v for k, v in self.param_kwargs.items() if k in ("source", "partition")}
        with log_context(run_id=self.run_id, task=self.task_family, **where):
            log.error("task failed", task_id=self.task_id, error=str(exception))
        return "".join(traceback.format_exception(exception))


class ExtractPartition(PipelineTask):
    """Extract one partition of one source (one function invocation)."""

    source: str = luigi.Parameter()
    partition: str = luigi.Parameter()

    @property
    def resources(self) -> dict[str, int]:  # type: ignore[override]
        """Extractions from the rate-limited HTTP API share a concurrency budget."""
        kind = self.settings().source(self.source).kind
        return {WEATHER_RESOURCE: 1} if kind == "openmeteo" else {}

    def output(self) -> LakeTarget:
        """The raw partition of this source."""
        grain = self.settings().partitioning.grain
        return LakeTarget(
            RAW, self.source, parse_partition(self.partition, grain), run_id=self.run_id
        )

    def run(self) -> None:
        """Invoke the extract function for this source and partition."""
        event = {"run_id": self.run_id, "source": self.source, "partition": self.partition}
        self.invoke("extract", event)


class CleanPartition(PipelineTask):
    """Clean one partition once all its sources are extracted (one function invocation)."""

    partition: str = luigi.Parameter()

    def requires(self) -> list[ExtractPartition]:
        """One extraction per source of the use case."""
        usecase = get_usecase(self.settings().usecase)
        return [
            ExtractPartition(
                source=name,
                partition=self.partition,
                run_id=self.run_id,
                state_dir=self.state_dir,
            )
            for name in usecase.source_names
        ]

    def output(self) -> LakeTarget:
        """The clean partition."""
        settings = self.settings()
        dataset = get_usecase(settings.usecase).clean_dataset
        return LakeTarget(
            CLEAN,
            dataset,
            parse_partition(self.partition, settings.partitioning.grain),
            run_id=self.run_id,
        )

    def run(self) -> None:
        """Invoke the clean function for this partition."""
        self.invoke("clean", {"run_id": self.run_id, "partition": self.partition})


class Backfill(luigi.WrapperTask):
    """Every partition between two dates (inclusive), up to the given step."""

    start: Any = luigi.DateParameter()
    end: Any = luigi.DateParameter()
    until: str = luigi.ChoiceParameter(choices=["extract", "clean"], default="clean")
    run_id: str = luigi.Parameter(default="adhoc", significant=False)
    state_dir: str = luigi.Parameter(default="var/runs", significant=False)

    def requires(self) -> list[luigi.Task]:
        """Clean tasks (or only extractions) for each partition of the range."""
        settings = load_settings()
        parts = partitions_between(self.start, self.end, settings.partitioning.grain)
        common = {"run_id": self.run_id, "state_dir": self.state_dir}
        if self.until == "extract":
            names = get_usecase(settings.usecase).source_names
            return [
                ExtractPartition(source=n, partition=p.label, **common)
                for p in parts
                for n in names
            ]
        return [CleanPartition(partition=p.label, **common) for p in parts]

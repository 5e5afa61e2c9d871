"""Monitoring tasks of a use case: captured predictions collected into lake partitions, each
partition monitored (live performance, drift) into ``monitoring/<usecase>/``, and the use
case's monitoring report rendered from them into ``reports/<usecase>/monitoring.html``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import luigi

from headwater.core import layout
from headwater.core.config import Settings
from headwater.core.logs import log_context
from headwater.core.usecase import outcome_of
from headwater.data.pipeline import lake_for, timezone_of, usecase_of
from headwater.monitoring.collect import (
    captured_partitions,
    captured_since,
    collect_predictions,
)
from headwater.monitoring.monitor import configured_thresholds
from headwater.monitoring.published import monitor_published, publish_monitoring
from headwater.monitoring.report import publish_monitoring_report
from luigi_tasks.context import settings_for
from luigi_tasks.pipeline import (
    CleanPartition,
    LakeTarget,
    PipelineTask,
    log,
    record_path,
    write_record,
)


class CollectPredictions(PipelineTask):
    """Collect one partition's captured predictions into ``predictions/<usecase>/<partition>/``."""

    partition: str = luigi.Parameter()

    def output(self) -> LakeTarget:
        """The predictions partition (final once published after its period, plus settling)."""
        return LakeTarget(
            self.settings(),
            self.usecase,
            layout.PREDICTIONS,
            "",  # one dataset per use case: predictions/<usecase>/<partition>/
            self.partition_of(self.partition),
            run_id=self.run_id,
        )

    def complete(self) -> bool:
        """Published (see :meth:`output`), and no capture file changed since: a replay of a
        past month files its records into a partition that had settled."""
        if not self.output().exists():
            return False
        lake = lake_for(self.settings())
        manifest = lake.manifest(
            layout.PREDICTIONS, self.usecase, self.partition_of(self.partition).key
        )
        if manifest is None or manifest.run_id == self.run_id:
            return True  # this run's collection stands for the rest of the run
        return not captured_since(lake, self.usecase, datetime.fromisoformat(manifest.created_at))

    def run(self) -> None:
        """Read, deduplicate and publish the partition's records (atomic; a re-run replaces it)."""
        settings = self.settings()
        with log_context(task=self.task_family, usecase=self.usecase, partition=self.partition):
            collected = collect_predictions(
                lake_for(settings),
                self.usecase,
                self.partition_of(self.partition),
                timezone_of(settings, self.usecase),
                run_id=self.run_id,
                outcome=outcome_of(usecase_of(settings, self.usecase)),
            )
            log.info("predictions collected", **collected.to_dict())
        write_record(
            record_path(self.state_dir, self.run_id, "done", self.task_id), collected.to_dict()
        )


class CollectCaptured(luigi.WrapperTask):
    """Every partition of a use case that has captured predictions, collected."""

    usecase: str = luigi.Parameter()
    run_id: str = luigi.Parameter(default="adhoc", significant=False)
    state_dir: str = luigi.Parameter(default="var/runs", significant=False)

    def requires(self) -> list[CollectPredictions]:
        """One collection per partition the captured records touch (their events' partitions
        when the use case declares an outcome, else the days they were served)."""
        settings = settings_for(self.run_id)
        parts = captured_partitions(
            lake_for(settings),
            self.usecase,
            settings.partitioning.grain,
            timezone_of(settings, self.usecase),
            outcome_of(usecase_of(settings, self.usecase)),
        )
        return [
            CollectPredictions(
                usecase=self.usecase,
                partition=part.label,
                run_id=self.run_id,
                state_dir=self.state_dir,
            )
            for part in parts
        ]


class MonitorPartition(PipelineTask):
    """Monitor one partition: live performance, drift and out-of-range inputs, published as
    ``monitoring/<usecase>/<partition>/`` once the partition is clean and its predictions are
    collected."""

    partition: str = luigi.Parameter()

    def requires(self) -> list[luigi.Task]:
        """The partition's clean data and its collected predictions."""
        common = {
            "usecase": self.usecase,
            "partition": self.partition,
            "run_id": self.run_id,
            "state_dir": self.state_dir,
        }
        return [CleanPartition(rerun=self.rerun, **common), CollectPredictions(**common)]

    def output(self) -> LakeTarget:
        """The monitoring partition (final once published after its period, plus settling)."""
        return LakeTarget(
            self.settings(),
            self.usecase,
            layout.MONITORING,
            "",  # one dataset per use case: monitoring/<usecase>/<partition>/
            self.partition_of(self.partition),
            run_id=self.run_id,
        )

    def complete(self) -> bool:
        """Published (see :meth:`output`), after the partition's predictions were last
        collected and after the last change of capture (new capture is collected, then
        monitored, in the same run)."""
        if not self.output().exists():
            return False
        lake = lake_for(self.settings())
        key = self.partition_of(self.partition).key
        monitored = lake.manifest(layout.MONITORING, layout.dataset(self.usecase, ""), key)
        collected = lake.manifest(layout.PREDICTIONS, self.usecase, key)
        if monitored is None or monitored.run_id == self.run_id:
            return monitored is not None  # this run's monitoring stands for the rest of the run
        if captured_since(lake, self.usecase, datetime.fromisoformat(monitored.created_at)):
            return False  # its predictions are collected again first (a requirement)
        if collected is None:
            return True
        return datetime.fromisoformat(collected.created_at) <= datetime.fromisoformat(
            monitored.created_at
        )

    def run(self) -> None:
        """Monitor and publish the partition (atomic; a re-run replaces it whole)."""
        settings = self.settings()
        usecase = usecase_of(settings, self.usecase)
        config = settings.usecase_config(self.usecase).monitoring
        timezone = timezone_of(settings, self.usecase)
        as_of = datetime.now(ZoneInfo(timezone)).replace(tzinfo=None)
        lake = lake_for(settings)
        partition = self.partition_of(self.partition)
        with log_context(task=self.task_family, usecase=self.usecase, partition=self.partition):
            monitoring = monitor_published(
                lake,
                usecase,
                partition,
                settings.partitioning.grain,
                configured_thresholds(config.model_dump()),
                as_of,
                gate=settings.usecase_config(self.usecase).gate,
            )
            manifest = publish_monitoring(lake, monitoring, partition, self.run_id)
            log.info("partition monitored", **manifest.extra)
        write_record(
            record_path(self.state_dir, self.run_id, "done", self.task_id), dict(manifest.extra)
        )


def report_locations(settings: Settings, usecases: Sequence[str]) -> dict[str, str]:
    """Where each use case's monitoring report is (its lake URI), for those that have one: the
    lines the run's notification lists among its outputs."""
    lake = lake_for(settings)
    parts = {usecase: layout.monitoring_report_parts(usecase) for usecase in usecases}
    return {
        f"Monitoring report ({usecase})": lake.uri_of(*path)
        for usecase, path in parts.items()
        if lake.exists(*path)
    }


class MonitoringReport(PipelineTask):
    """The use case's monitoring report, rendered once per run after its partitions are
    monitored: ``reports/<usecase>/monitoring.html`` (every monitored partition, not only
    those of the run)."""

    partitions: tuple[str, ...] = luigi.ListParameter()

    def requires(self) -> list[MonitorPartition]:
        """The run's partitions, monitored."""
        return [
            MonitorPartition(
                usecase=self.usecase,
                partition=partition,
                run_id=self.run_id,
                state_dir=self.state_dir,
                rerun=self.rerun,
            )
            for partition in self.partitions
        ]

    def output(self) -> luigi.LocalTarget:
        """This run's record of the rendering: each run renders the page once, afresh."""
        return luigi.LocalTarget(
            str(record_path(self.state_dir, self.run_id, "done", self.task_id))
        )

    def run(self) -> None:
        """Render the page from the lake and write it (atomic: readers see the old or new page)."""
        settings = self.settings()
        with log_context(task=self.task_family, usecase=self.usecase):
            uri = publish_monitoring_report(
                lake_for(settings),
                usecase_of(settings, self.usecase),
                min_predictions=settings.usecase_config(self.usecase).monitoring.min_predictions,
                generated_at=datetime.now(ZoneInfo("UTC")).isoformat(timespec="seconds"),
            )
            log.info("monitoring report written", uri=uri)
        write_record(Path(self.output().path), {"report": uri})

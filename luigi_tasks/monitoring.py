"""Monitoring tasks of a use case: captured predictions collected into lake partitions."""

from __future__ import annotations

import luigi

from headwater.core import layout
from headwater.core.logs import log_context
from headwater.data.pipeline import lake_for, timezone_of
from headwater.monitoring.collect import captured_partitions, collect_predictions
from luigi_tasks.context import settings_for
from luigi_tasks.pipeline import LakeTarget, PipelineTask, log, record_path, write_record


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
        """One collection per partition the capture folders touch."""
        settings = settings_for(self.run_id)
        parts = captured_partitions(lake_for(settings), self.usecase, settings.partitioning.grain)
        return [
            CollectPredictions(
                usecase=self.usecase,
                partition=part.label,
                run_id=self.run_id,
                state_dir=self.state_dir,
            )
            for part in parts
        ]

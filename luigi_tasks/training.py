"""Training tasks: snapshot the reference tables, train a model version, gate and promote it."""

from __future__ import annotations

from typing import Any

import luigi

from headwater.config import load_settings
from headwater.lake import MANIFEST
from headwater.logs import get_logger, log_context
from headwater.pipeline import RAW, extract_snapshot, lake_for, snapshot_key
from headwater.registry import Registry, decide
from headwater.training import code_version, create_training_runner, train_arguments
from headwater.usecases import get_usecase
from luigi_tasks.pipeline import Backfill, PipelineTask

log = get_logger("headwater.progress")
# Gate metrics where the smaller value is the better model (losses).
LOWER_IS_BETTER = frozenset({"log_loss", "brier"})


class LakeObject(luigi.Target):
    """One object in the lake (exists once written)."""

    def __init__(self, *parts: str) -> None:
        self.parts = parts

    def exists(self) -> bool:
        """True when the object exists."""
        return lake_for(load_settings()).exists(*self.parts)


class ExtractSnapshot(PipelineTask):
    """Extract a reference table (e.g. planes) whole, as the snapshot of a date."""

    source: str = luigi.Parameter()
    as_of: Any = luigi.DateParameter()

    def output(self) -> LakeObject:
        """The snapshot's manifest."""
        return LakeObject(RAW, self.source, snapshot_key(self.as_of), MANIFEST)

    def run(self) -> None:
        """Snapshot the table (small: run here rather than fanned out)."""
        with log_context(run_id=self.run_id, task=self.task_family, source=self.source):
            result = extract_snapshot(load_settings(), self.source, self.as_of, self.run_id)
            log.info("snapshot done", rows=result.rows)


class TrainModel(PipelineTask):
    """Train one model version on the clean partitions of the range (Spark: local or EMR)."""

    start: Any = luigi.DateParameter()
    end: Any = luigi.DateParameter()
    version: str = luigi.Parameter()

    def requires(self) -> list[luigi.Task]:
        """The clean partitions of the range and the reference snapshots."""
        settings = load_settings()
        common = {"run_id": self.run_id, "state_dir": self.state_dir}
        refs = [
            ExtractSnapshot(source=name, as_of=self.end, **common)
            for name in get_usecase(settings.usecase).reference_names
        ]
        return [Backfill(start=self.start, end=self.end, **common), *refs]

    def output(self) -> LakeObject:
        """The version's completion flag."""
        return LakeObject("models", load_settings().model.name, self.version, "_SUCCESS")

    def run(self) -> None:
        """Submit the job with the current production version to compare against."""
        settings = load_settings()
        registry = Registry(lake_for(settings), settings.model.name)
        production = registry.production()
        args = train_arguments(
            settings,
            lake_uri=settings.lake.uri,
            version=self.version,
            start=self.start,
            end=self.end,
            run_id=self.run_id,
            production_version=production.version if production else None,
            code_version=code_version(),
        )
        with log_context(run_id=self.run_id, task=self.task_family, version=self.version):
            create_training_runner(settings).run(args, self.run_id)
            metrics = registry.read_json(self.version, "metrics.json")
            log.info("model trained", auc_roc=metrics["holdout"]["auc_roc"])


class PromoteModel(PipelineTask):
    """The quality gate: promote the new version or keep it as rejected, with the reason."""

    start: Any = luigi.DateParameter()
    end: Any = luigi.DateParameter()
    version: str = luigi.Parameter()

    def requires(self) -> TrainModel:
        """The trained version."""
        return TrainModel(
            start=self.start,
            end=self.end,
            version=self.version,
            run_id=self.run_id,
            state_dir=self.state_dir,
        )

    def output(self) -> LakeObject:
        """The gate's recorded decision."""
        return LakeObject("models", load_settings().model.name, self.version, "decision.json")

    def run(self) -> None:
        """Compare with production on the same holdout; switch the pointer atomically."""
        settings = load_settings()
        registry = Registry(lake_for(settings), settings.model.name)
        metrics = registry.read_json(self.version, "metrics.json")
        pointer = registry.production()
        production_metrics = gate_baseline(metrics, pointer.version if pointer else None)
        decision = decide(
            metrics["holdout"],
            production_metrics,
            metric=settings.model.gate_metric,
            margin=settings.model.gate_margin,
            higher_is_better=settings.model.gate_metric not in LOWER_IS_BETTER,
        )
        with log_context(run_id=self.run_id, task=self.task_family, version=self.version):
            if decision.promote:
                registry.promote(
                    self.version, decision.reason, expected=pointer.version if pointer else None
                )
                log.info("model promoted", reason=decision.reason)
            else:
                registry.reject(self.version, decision.reason)
                log.info("model rejected", reason=decision.reason)


def gate_baseline(metrics: dict[str, Any], production: str | None) -> dict[str, Any] | None:
    """The production model's metrics on the candidate's holdout (None: no production yet).

    The training job scores the production model on the same holdout; if it could not
    (say, a model of another feature set), the gate cannot compare and says so.
    """
    if production is None:
        return None
    measured = metrics.get("production_on_holdout") or {}
    if measured.get("version") != production or "error" in measured:
        why = measured.get("error", "it was not measured on this holdout")
        raise ValueError(f"cannot compare with production {production}: {why}")
    return measured


class RunAll(luigi.WrapperTask):
    """The main job: extract, clean, train, gate and promote for a date range."""

    start: Any = luigi.DateParameter()
    end: Any = luigi.DateParameter()
    version: str = luigi.Parameter()
    run_id: str = luigi.Parameter(default="adhoc", significant=False)
    state_dir: str = luigi.Parameter(default="var/runs", significant=False)

    def requires(self) -> PromoteModel:
        """Everything, through the gate."""
        return PromoteModel(
            start=self.start,
            end=self.end,
            version=self.version,
            run_id=self.run_id,
            state_dir=self.state_dir,
        )

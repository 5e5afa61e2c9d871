"""Training tasks of a use case: snapshot its references, train a version, gate and promote it."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import luigi

from headwater.core import layout
from headwater.core.config import Settings
from headwater.core.logs import get_logger, log_context
from headwater.core.partitions import partitions_between
from headwater.data.lake import MANIFEST
from headwater.data.pipeline import extract_snapshot, lake_for, usecase_of
from headwater.model.runners import (
    code_version,
    create_training_runner,
    training_key,
    training_options,
)
from headwater.ops.checks import check_training_rows
from headwater.registry.gate import DecisionKind, comparison_failed, judge
from headwater.registry.registry import Registry
from headwater.serving.store import ProductionPointer, decision_kind
from luigi_tasks.context import settings_for
from luigi_tasks.monitoring import CollectCaptured, MonitoringReport, MonitorPartition
from luigi_tasks.pipeline import (
    RERUN_CHOICES,
    Backfill,
    PipelineTask,
    record_path,
    reruns,
    write_record,
)

log = get_logger("headwater.progress")
#: The Spark job's module: its file is what spark-submit runs (locally or on EMR).
ENTRYPOINT_MODULE = "emr_jobs.train"
#: The Luigi resource held by a training run (local Spark trains one use case at a time).
TRAINING_RESOURCE = "training"
#: The kind of run record naming the version a run reuses instead of training.
REUSED = "reused"
#: The kind of run record saying this run's gate has seen the version it reuses.
GATED = "gated"


def training_entrypoint() -> Path:
    """The path of the Spark training job (found by import machinery, never imported here)."""
    spec = importlib.util.find_spec(ENTRYPOINT_MODULE)
    if spec is None or spec.origin is None:
        raise ImportError(f"cannot find the training job {ENTRYPOINT_MODULE}")
    return Path(spec.origin)


def registry_of(settings: Settings, usecase: str) -> Registry:
    """The model registry of a use case (the model's name is the use case's)."""
    return Registry(lake_for(settings), usecase)


class LakeObject(luigi.Target):
    """One object in the lake (exists once written)."""

    def __init__(self, settings: Settings, *parts: str) -> None:
        self.settings = settings
        self.parts = parts

    def exists(self) -> bool:
        """True when the object exists."""
        return lake_for(self.settings).exists(*self.parts)


class ExtractSnapshot(PipelineTask):
    """Extract a reference table of a use case whole, as the snapshot of a date."""

    source: str = luigi.Parameter()
    as_of: Any = luigi.DateParameter()

    def output(self) -> LakeObject:
        """The snapshot's manifest."""
        return LakeObject(
            self.settings(),
            layout.RAW,
            layout.dataset(self.usecase, self.source),
            layout.snapshot_key(self.as_of),
            MANIFEST,
        )

    def complete(self) -> bool:
        """Published; when this run redoes extraction (``--rerun extract``), by this run."""
        if not reruns(self.rerun, "extract"):
            return super().complete()
        manifest = lake_for(self.settings()).manifest(
            layout.RAW, layout.dataset(self.usecase, self.source), layout.snapshot_key(self.as_of)
        )
        return manifest is not None and manifest.run_id == self.run_id

    def run(self) -> None:
        """Snapshot the table (small: run here rather than fanned out)."""
        where = {"usecase": self.usecase, "source": self.source}
        with log_context(run_id=self.run_id, task=self.task_family, **where):
            result = extract_snapshot(
                self.settings(), self.usecase, self.source, self.as_of, self.run_id
            )
            log.info("snapshot done", rows=result.rows)


class TrainModel(PipelineTask):
    """Train one version of a use case's models on the clean range (Spark: local or EMR)."""

    start: Any = luigi.DateParameter()
    end: Any = luigi.DateParameter()
    version: str = luigi.Parameter()
    # Train even when a version of the same inputs, code and configuration exists.
    retrain: bool = luigi.BoolParameter(default=False, significant=False)

    @property
    def resources(self) -> dict[str, int]:  # type: ignore[override]
        """Trainings share the run's training budget (one at a time on local Spark)."""
        return {TRAINING_RESOURCE: 1}

    def complete(self) -> bool:
        """Trained, or this run reuses an identical training (unless told to retrain)."""
        reused = not self.retrain and reused_version(self.state_dir, self.run_id, self.usecase)
        return bool(reused) or super().complete()

    def requires(self) -> list[luigi.Task]:
        """The clean partitions of the range and the reference snapshots."""
        common = {"usecase": self.usecase, "run_id": self.run_id, "state_dir": self.state_dir}
        common["rerun"] = self.rerun
        refs = [
            ExtractSnapshot(source=name, as_of=self.end, **common)
            for name in usecase_of(self.settings(), self.usecase).references
        ]
        return [Backfill(start=self.start, end=self.end, **common), *refs]

    def output(self) -> LakeObject:
        """The version's completion flag."""
        parts = layout.model_parts(self.usecase, self.version, layout.SUCCESS)
        return LakeObject(self.settings(), *parts)

    def run(self) -> None:
        """Submit the job with the current production version to compare against.

        Unless told to retrain, a complete version with the same training key (inputs,
        code, configuration, range: computed here from the manifests) is reused instead.
        """
        settings = self.settings()
        check_training_rows(settings, self.usecase, self.start, self.end)  # before any job
        registry = registry_of(settings, self.usecase)
        key = training_key(settings, self.usecase, self.start, self.end, training_entrypoint())
        production = registry.production()
        if key and not self.retrain:
            found = registry.version_with_key(key)
            if found and self.reuse(comparable(registry, found, production), key):
                return
        options = training_options(
            settings,
            self.usecase,
            lake_uri=settings.lake.uri,
            version=self.version,
            start=self.start,
            end=self.end,
            run_id=self.run_id,
            production_version=production.version if production else None,
            code_version=code_version(),
            training_key=key,
        )
        where = {"usecase": self.usecase, "version": self.version}
        with log_context(run_id=self.run_id, task=self.task_family, **where):
            runner = create_training_runner(settings, training_entrypoint())
            # One job per use case in a run: its logs and artifacts are named for both.
            runner.run(options, f"{self.run_id}-{self.usecase}")
            metrics = registry.read_json(self.version, layout.METRICS)
            gate = settings.usecase_config(self.usecase).gate.metric
            log.info("model trained", **{gate: metrics["holdout"].get(gate)})

    def reuse(self, version: str | None, key: str) -> bool:
        """Record that this run reuses ``version`` (trained on the same key); False: none."""
        if version is None:
            return False
        path = record_path(self.state_dir, self.run_id, REUSED, self.usecase)
        write_record(path, {"version": version, "training_key": key})
        with log_context(run_id=self.run_id, task=self.task_family, usecase=self.usecase):
            log.info(skipped_message(version), reused=version)
        return True


def comparable(
    registry: Registry, version: str, production: ProductionPointer | None
) -> str | None:
    """``version`` if it is production or was measured against today's production, else None.

    A version trained on the same inputs is reused only while its comparison with
    production still holds: once production moved on, or when the comparison itself failed
    (:func:`headwater.registry.gate.comparison_failed`), the inputs are trained again.
    """
    current = production.version if production else None
    if version == current:
        return version
    metrics = registry.read_json(version, layout.METRICS, default={}) or {}
    if comparison_failed(metrics):
        # Not production's verdict but the job's own failure: reusing it would fail again.
        log.info("training again: its comparison with production failed", version=version)
        return None
    measured = (metrics.get("production_on_holdout") or {}).get("version")
    if measured == current:
        return version
    log.info(
        "training again: production moved on",
        version=version,
        compared_with=measured or "none",
        production=current,
    )
    return None


def reused_version(state_dir: str, run_id: str, usecase: str) -> str | None:
    """The version run ``run_id`` reuses for ``usecase`` instead of training (None: trained)."""
    path = record_path(state_dir, run_id, REUSED, usecase)
    try:
        return str(json.loads(path.read_text(encoding="utf-8"))["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def skipped_message(version: str) -> str:
    """What a run says when it reuses ``version`` rather than train an identical one."""
    return f"training skipped: unchanged inputs (version {version})"


class PromoteModel(PipelineTask):
    """The quality gate: promote the new version or keep it as rejected, with the reason.

    ``no_promote``: an exploratory run; the gate's verdict is recorded (``held``) and the
    production pointer is never touched. ``allow_shorter_window``: accept a candidate trained
    on a much shorter window than production's (as ``gate.allow_shorter_window``).
    """

    start: Any = luigi.DateParameter()
    end: Any = luigi.DateParameter()
    version: str = luigi.Parameter()
    no_promote: bool = luigi.BoolParameter(default=False)
    allow_shorter_window: bool = luigi.BoolParameter(default=False)
    retrain: bool = luigi.BoolParameter(default=False, significant=False)

    def requires(self) -> TrainModel:
        """The trained version."""
        return TrainModel(
            usecase=self.usecase,
            start=self.start,
            end=self.end,
            version=self.version,
            run_id=self.run_id,
            state_dir=self.state_dir,
            rerun=self.rerun,
            retrain=self.retrain,
        )

    def complete(self) -> bool:
        """Decided; when this run reuses a version, once this run's gate has seen it."""
        if not self.retrain and reused_version(self.state_dir, self.run_id, self.usecase):
            return self._gated_record().exists()
        return super().complete()

    def output(self) -> LakeObject:
        """The gate's recorded decision."""
        parts = layout.model_parts(self.usecase, self.version, layout.DECISION)
        return LakeObject(self.settings(), *parts)

    def _gated_record(self) -> Path:
        return record_path(self.state_dir, self.run_id, GATED, self.usecase)

    def run(self) -> None:
        """Compare with production on the same holdout; switch the pointer atomically.

        A reused version (same inputs, code and configuration) is gated again with this
        run's options (``--no-promote``, ``--allow-shorter-window``): the training is reused,
        not an earlier run's decision. Nothing is recorded when the decision would repeat the
        last one, when the version already is production, or when a rollback retired it.
        """
        reused = None if self.retrain else reused_version(self.state_dir, self.run_id, self.usecase)
        version = reused or self.version
        settings = self.settings()
        registry = registry_of(settings, self.usecase)
        pointer = registry.production()
        production = pointer.version if pointer else None
        # The reused version's last decision (a fresh version has none that counts).
        last = registry.read_json(version, layout.DECISION, default=None) if reused else None
        where = {"usecase": self.usecase, "version": version}
        with log_context(run_id=self.run_id, task=self.task_family, **where):
            if reused and reused == production:
                log.info("model already in production")
            elif decision_kind(last) == DecisionKind.RETIRED:
                # An operator's rollback is a decision no rerun overrides (promote by hand).
                log.info("model retired by a rollback: not gated again")
            else:
                self._decide(registry, version, production, last)
        if reused:
            write_record(self._gated_record(), {"version": version})

    def _decide(
        self,
        registry: Registry,
        version: str,
        production: str | None,
        last: Mapping[str, Any] | None,
    ) -> None:
        """Gate ``version`` against ``production``; nothing is recorded when the decision
        would repeat ``last`` (a reused version's last decision; None: always record)."""
        verdict = judge(
            registry.read_json(version, layout.METRICS),
            production,
            self.settings().usecase_config(self.usecase).gate,
            candidate_lineage=registry.read_json(version, layout.LINEAGE, default=None),
            production_lineage=(
                registry.read_json(production, layout.LINEAGE, default=None) if production else None
            ),
            no_promote=self.no_promote,
            allow_shorter_window=self.allow_shorter_window,
        )
        if last is not None and (decision_kind(last), last.get("reason")) == (
            verdict.kind,
            verdict.reason,
        ):
            log.info(f"model {verdict.kind} as before", reason=verdict.reason)
            return
        registry.record_verdict(version, verdict, expected=production)
        log.info(f"model {verdict.kind}", reason=verdict.reason)


class RunAll(luigi.WrapperTask):
    """The main job: every selected use case, up to a step, in one graph.

    ``until`` is ``extract``, ``clean`` or ``model`` (extract, clean, train, gate and
    promote); each use case's model version is named ``version``. Each use case runs over
    its entry of ``ranges`` (``[first, last]`` ISO dates), else over ``start``..``end``.
    """

    usecases: tuple[str, ...] = luigi.ListParameter()
    start: Any = luigi.DateParameter(default=None)
    end: Any = luigi.DateParameter(default=None)
    ranges: Any = luigi.DictParameter(default={})
    until: str = luigi.ChoiceParameter(choices=["extract", "clean", "model"], default="model")
    version: str = luigi.Parameter(default="")
    # An exploratory run (--no-promote), and the gate's shorter-window override.
    no_promote: bool = luigi.BoolParameter(default=False)
    allow_shorter_window: bool = luigi.BoolParameter(default=False)
    # Replace the range's partitions from this step on (--rerun), and train even when
    # nothing changed (--retrain).
    rerun: str = luigi.ChoiceParameter(choices=RERUN_CHOICES, default="", significant=False)
    retrain: bool = luigi.BoolParameter(default=False, significant=False)
    run_id: str = luigi.Parameter(default="adhoc", significant=False)
    state_dir: str = luigi.Parameter(default="var/runs", significant=False)

    def range_of(self, usecase: str) -> tuple[date, date]:
        """The first and last date of ``usecase`` in this run."""
        if usecase in self.ranges:
            first, last = self.ranges[usecase]
            return date.fromisoformat(first), date.fromisoformat(last)
        if self.start is None or self.end is None:
            raise ValueError(f"use case {usecase!r} has no range: pass ranges or start and end")
        return self.start, self.end

    def requires(self) -> list[luigi.Task]:
        """Per use case: the gate (through training), or the backfill up to ``until``."""
        common = {"run_id": self.run_id, "state_dir": self.state_dir, "rerun": self.rerun}
        tasks: list[luigi.Task] = []
        for name in self.usecases:
            first, last = self.range_of(name)
            if self.until == "model":
                version = self.version or self.run_id
                tasks.append(
                    PromoteModel(
                        usecase=name,
                        start=first,
                        end=last,
                        version=version,
                        no_promote=self.no_promote,
                        allow_shorter_window=self.allow_shorter_window,
                        retrain=self.retrain,
                        **common,
                    )
                )
            else:
                tasks.append(
                    Backfill(usecase=name, start=first, end=last, until=self.until, **common)
                )
            if self.until == "model" and settings_for(self.run_id).api.capture.enabled:
                # What the API answered, collected beside the run (docs/monitoring.md).
                tasks.append(
                    CollectCaptured(usecase=name, run_id=self.run_id, state_dir=self.state_dir)
                )
            tasks += self.monitoring(name, first, last)
        return tasks

    def monitoring(self, usecase: str, first: date, last: date) -> list[luigi.Task]:
        """Every partition of the range monitored, once the use case has a production version
        (a partition without predictions still gets the drift of its clean data), then the
        use case's monitoring report."""
        settings = settings_for(self.run_id)
        if self.until == "extract" or registry_of(settings, usecase).production() is None:
            return []
        monitored = [
            MonitorPartition(
                usecase=usecase,
                partition=part.label,
                run_id=self.run_id,
                state_dir=self.state_dir,
                rerun=self.rerun,
            )
            for part in partitions_between(first, last, settings.partitioning.grain)
        ]
        # Then the use case's report, from every monitored partition (docs/monitoring.md).
        report = MonitoringReport(
            usecase=usecase,
            partitions=[task.partition for task in monitored],
            run_id=self.run_id,
            state_dir=self.state_dir,
            rerun=self.rerun,
        )
        return [*monitored, report]

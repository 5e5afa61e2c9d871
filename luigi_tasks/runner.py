"""Run the selected use cases for a date range in one Luigi graph, and notify exactly once."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any

import luigi
import luigi.execution_summary

from headwater.core import layout
from headwater.core.config import ConfigError, Settings
from headwater.core.logs import get_logger, log_context
from headwater.core.partitions import partitions_between
from headwater.core.ranges import describe
from headwater.data.lake import LakeError
from headwater.data.pipeline import lake_for, resolve_reference, usecase_of
from headwater.data.sources import get_kind, validate_source
from headwater.data.sources.embedded import serve_stand_in
from headwater.model.comparison import comparison_text
from headwater.monitoring.monitor import Alert, PartitionMonitoring, alerts_of, live_lines
from headwater.monitoring.published import monitored_partitions, read_monitoring
from headwater.ops.notify import (
    ModelSummary,
    RunReport,
    TaskFailure,
    UseCaseSection,
    create_notifier,
)
from luigi_tasks.context import run_context
from luigi_tasks.monitoring import report_locations
from luigi_tasks.pipeline import (
    HTTP_RESOURCE,
    LakeTarget,
    function_handlers,
    reruns,
    task_label,
)
from luigi_tasks.training import (
    TRAINING_RESOURCE,
    RunAll,
    registry_of,
    reused_version,
    skipped_message,
)

log = get_logger("headwater.run")
progress = get_logger("headwater.progress")
OK = {luigi.LuigiStatusCode.SUCCESS, luigi.LuigiStatusCode.SUCCESS_WITH_RETRY}
# Trainings at once: one on local Spark (it takes the machine), one per use case on EMR.
LOCAL_TRAININGS, REMOTE_TRAININGS = 1, 64


class RunStopped(KeyboardInterrupt):
    """The run was stopped by a signal (SIGTERM: its container or host stopping it; SIGINT).

    A ``KeyboardInterrupt``, so that Luigi lets it through (it records any other exception
    as its task's failure and goes on) and stops its forked workers on the way out.
    """

    def __init__(self, why: str, signum: int = signal.SIGINT) -> None:
        super().__init__(why)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's code for a process ended by the signal (130 for SIGINT, 143 SIGTERM)."""
        return 128 + int(self.signum)


#: What a stopped run's notification tells the reader to do.
AFTER_A_STOP = (
    "nothing half-published is kept: run the same command again to finish "
    "(published partitions are skipped)"
)


@contextlib.contextmanager
def stops_on_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGINT into :class:`RunStopped` for the block (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    owner = os.getpid()

    def handler(signum: int, frame: Any) -> None:
        if os.getpid() != owner:
            # A forked Luigi worker, stopped by the run: end now. An exception would be caught
            # by Luigi and recorded as the task's failure; a training job was already stopped
            # by its runner's own handler, which sends the signal on to this one.
            os._exit(128 + signum)
        # Stopping takes a few seconds (a training job gets a grace period): a second signal
        # must not cut it short, nor the notification.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        name = signal.Signals(signum).name
        why = "terminated (SIGTERM)" if name == "SIGTERM" else f"interrupted ({name})"
        raise RunStopped(why, signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@dataclass(frozen=True)
class RunOptions:
    """What to run and how (no use cases: every enabled one).

    Each use case runs over its entry of ``ranges``, else over ``start``..``end``.
    """

    start: date | None = None
    end: date | None = None
    until: str = "clean"
    workers: int | None = None
    scheduler_url: str | None = None
    run_id: str | None = None
    usecases: tuple[str, ...] = ()
    ranges: Mapping[str, tuple[date, date]] = field(default_factory=dict)
    # An exploratory run: train, evaluate and report, never touch the production pointers.
    no_promote: bool = False
    # Let the gate accept a candidate trained on a much shorter window than production's.
    allow_shorter_window: bool = False
    # Replace the range's partitions from this step on ("extract" or "clean"; "": none).
    rerun: str = ""
    # Train even when a version of the same inputs, code and configuration exists.
    retrain: bool = False

    def range_of(self, usecase: str) -> tuple[date, date]:
        """The first and last date of ``usecase`` in this run."""
        if usecase in self.ranges:
            return self.ranges[usecase]
        if self.start is None or self.end is None:
            raise ConfigError(f"use case {usecase!r} has no date range in this run")
        return self.start, self.end

    def ranges_of(self, usecases: Sequence[str]) -> dict[str, tuple[date, date]]:
        """The range of each of ``usecases``, in order."""
        return {name: self.range_of(name) for name in usecases}


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, unique run id such as ``20261124T021500Z-1a2b3c``."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def configure_luigi(settings: Settings) -> None:
    """Luigi settings that suit many small, fast tasks, and the run's shared budgets."""
    config = luigi.configuration.get_config()
    config.set("resources", HTTP_RESOURCE, str(settings.run.api_concurrency))
    trainings = LOCAL_TRAININGS if settings.training.runner == "local" else REMOTE_TRAININGS
    config.set("resources", TRAINING_RESOURCE, str(trainings))
    config.set("worker", "wait_interval", "0.1")
    config.set("worker", "keep_alive", "false")
    config.set("worker", "ping_interval", "5")
    config.set("core", "no_configure_logging", "true")
    config.set("scheduler", "record_task_history", "false")


def _embedded_servers(settings: Settings, usecase: str) -> Iterator[tuple[str, Any]]:
    """(source, validated options) of each source of ``usecase`` asking for a server."""
    for name, source in settings.usecase_config(usecase).sources.items():
        options = validate_source(source, f"source {name!r} of use case {usecase!r}")
        if getattr(options, "embedded_server", False):
            yield name, options


def base_url_variable(usecase: str, source: str) -> str:
    """The environment variable that overrides a source's ``base_url`` (``HEADWATER_...``)."""
    return f"HEADWATER_USECASE__{usecase}__SOURCES__{source}__BASE_URL".upper()


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set ``values`` in ``os.environ`` for the block (forked workers inherit them)."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def embedded_services(settings: Settings, usecases: Sequence[str]) -> Iterator[dict[str, str]]:
    """Start, for the run, the local servers the use cases' sources ask for, on free ports.

    A fixed port would collide with another run (or a test) on the same machine, so each
    server binds a free one; its URL (the configured one on that port) reaches the
    extractions as the source's ``base_url`` override in the environment, which the
    handlers read as on Lambda. A server checks the credential its source sends (``auth``);
    an ``env:`` one whose variable is unset is generated for the run and exported with the
    URLs (:func:`~headwater.data.sources.embedded.serve_stand_in`). Yields those overrides,
    variable -> value.
    """
    with contextlib.ExitStack() as stack:
        overrides: dict[str, str] = {}
        for usecase in usecases:
            for source, options in _embedded_servers(settings, usecase):
                stand_in = stack.enter_context(
                    serve_stand_in(
                        usecase_of(settings, usecase),
                        source,
                        options,
                        resolve=lambda value: resolve_reference(value, settings),
                        # Two sources reading one variable are given one generated value.
                        environ={**os.environ, **overrides},
                    )
                )
                overrides[base_url_variable(usecase, source)] = stand_in.url
                overrides.update(stand_in.environment)
                log.info(
                    "embedded server started", usecase=usecase, source=source, url=stand_in.url
                )
        stack.enter_context(_environment(overrides))
        yield overrides


def warm_up(settings: Settings, usecases: Sequence[str]) -> None:
    """Import the handlers, the source kinds and the use cases once, so forked tasks start warm."""
    if settings.executor.kind != "inprocess":
        return
    function_handlers()
    for name in usecases:
        usecase = usecase_of(settings, name)
        usecase.clean_schema()
        for source in settings.usecase_config(name).sources.values():
            get_kind(source.kind)
        for source in usecase.sources:
            usecase.source_request(source)


def plan(settings: Settings, usecases: Sequence[str], options: RunOptions, run_id: str) -> None:
    """Log each use case's partitions, how many are already published, and their steps.

    Already published partitions are skipped (Luigi finds them complete, often without
    looking at each: a complete range is one complete task); the console's bars start after
    them, and after the extractions already published for partitions still to clean.
    """
    cleans = options.until != "extract"
    for name in usecases:
        first, last = options.range_of(name)
        parts = partitions_between(first, last, settings.partitioning.grain)
        spec = usecase_of(settings, name)
        steps = len(spec.sources) + cleans
        published = done = 0
        for part in parts:
            target = partial(LakeTarget, settings, name, partition=part, run_id=run_id)
            clean = target(layout.CLEAN, spec.clean_dataset, rerun=reruns(options.rerun, "clean"))
            if cleans and clean.exists():
                finished = steps
            else:
                rerun = reruns(options.rerun, "extract")
                finished = sum(target(layout.RAW, s, rerun=rerun).exists() for s in spec.sources)
            published += finished == steps
            done += finished
        with log_context(usecase=name):
            progress.info(
                "planned", partitions=len(parts), published=published, steps=steps, steps_done=done
            )


def _failures(state: Path) -> list[TaskFailure]:
    out = []
    for path in sorted((state / "failed").glob("*.json")):
        body = json.loads(path.read_text(encoding="utf-8"))
        out.append(TaskFailure(task=body["task"], error=body["error"]))
    return out


def summarise(
    settings: Settings, usecase: str, options: RunOptions, run_id: str | None = None
) -> UseCaseSection:
    """What the lake holds for a use case's range: partitions, rows per zone, quarantined rows.

    Partitions published before run ``run_id`` (default: the options') count as skipped.
    """
    run_id = run_id or options.run_id
    lake = lake_for(settings)
    spec = usecase_of(settings, usecase)
    first, last = options.range_of(usecase)
    parts = partitions_between(first, last, settings.partitioning.grain)
    rows: dict[str, int] = {}
    quarantined = {source: 0 for source in spec.sources}
    done = skipped = 0
    for part in parts:
        for source in spec.sources:
            manifest = lake.manifest(layout.RAW, layout.dataset(usecase, source), part.key)
            if manifest:
                rows[f"raw {source}"] = rows.get(f"raw {source}", 0) + manifest.rows
        dataset = layout.dataset(usecase, spec.clean_dataset)
        manifest = lake.manifest(layout.CLEAN, dataset, part.key)
        if manifest:
            done += 1
            skipped += manifest.run_id != run_id
            rows["clean"] = rows.get("clean", 0) + manifest.rows
            ledger = manifest.extra.get("reconciliation", {})
            for source, counts in ledger.items():
                quarantined[source] = quarantined.get(source, 0) + counts["quarantined"]
    return UseCaseSection(
        usecase=usecase,
        title=spec.title,
        date_range=f"{first}..{last}",
        partitions=len(parts),
        complete=done,
        skipped=skipped,
        rows=rows,
        quarantined=sum(quarantined.values()),
        quarantined_by_source=quarantined,
    )


def model_summary(settings: Settings, usecase: str, version: str) -> ModelSummary:
    """What the notification says about a use case's model: version, holdout, decision."""
    registry = registry_of(settings, usecase)
    if not registry.is_complete(version):
        return ModelSummary(version=version, trained=False)
    spec = usecase_of(settings, usecase).training
    metrics = registry.read_metrics(version)
    decision = registry.read_json(version, layout.DECISION, default={})
    return ModelSummary(
        version=version,
        trained=True,
        label=spec.label.name,
        target=spec.target.name,
        unit=spec.target.unit,
        holdout=dict(metrics.holdout),
        regression=dict(metrics.regression),
        decision=decision.get("decision", ""),
        reason=decision.get("reason", ""),
        interval=comparison_text(decision.get("comparison") or {}),
    )


def reused_model_summary(
    settings: Settings, usecase: str, version: str, since: datetime
) -> ModelSummary:
    """What a run that reused ``version`` (training skipped) did with it at the gate.

    A decision recorded since the run started is this run's; otherwise the version's last
    decision is an earlier run's, and the summary says nothing was decided now.
    """
    model = replace(model_summary(settings, usecase, version), skipped=skipped_message(version))
    registry = registry_of(settings, usecase)
    decided = registry.read_json(version, layout.DECISION, default={}).get("decided_at")
    if decided and datetime.fromisoformat(decided) >= since:
        return model
    pointer = registry.production()
    if pointer is not None and pointer.version == version:
        why = f"{version} already in production, training reused"
    else:
        earlier = f" (earlier: {model.decision}: {model.reason})" if model.decision else ""
        why = f"training reused, nothing decided in this run{earlier}"
    return replace(model, decision="unchanged", reason=why)


def live_summary(
    settings: Settings, usecase: str, options: RunOptions, run_id: str
) -> tuple[list[str], list[Alert]]:
    """The Live section of a use case (each monitored partition of its range at a glance) and
    the alerts of the partitions this run monitored (each against the partition before it)."""
    lake = lake_for(settings)
    spec = usecase_of(settings, usecase)
    first, last = options.range_of(usecase)
    wanted = {p.key for p in partitions_between(first, last, settings.partitioning.grain)}
    minimum = settings.usecase_config(usecase).monitoring.min_predictions
    keys = monitored_partitions(lake, usecase)
    lines: list[str] = []
    alerts: list[Alert] = []
    shown: list[PartitionMonitoring] = []  # consecutive readable ones, in one go (live_lines)
    previous = None
    for index, key in enumerate(keys):
        if key not in wanted and (index + 1 >= len(keys) or keys[index + 1] not in wanted):
            continue  # neither in the range nor the partition just before one
        try:
            record = read_monitoring(lake, usecase, key)
        except LakeError as exc:
            lines += live_lines(shown, spec)
            shown = []
            lines.append(f"{key}: unreadable ({exc})")
            previous = None
            continue
        if key in wanted:
            shown.append(record)
            manifest = lake.manifest(layout.MONITORING, layout.dataset(usecase, ""), key)
            if manifest is not None and manifest.run_id == run_id:
                alerts += alerts_of(record, previous, spec, min_predictions=minimum)
        previous = record
    return lines + live_lines(shown, spec), alerts


def main_task(options: RunOptions, usecases: Sequence[str], run_id: str, state_dir: str) -> RunAll:
    """The one wrapper task of the run: every use case, over its range, up to ``options.until``."""
    ranges = {
        name: [first.isoformat(), last.isoformat()]
        for name, (first, last) in options.ranges_of(usecases).items()
    }
    return RunAll(
        usecases=tuple(usecases),
        ranges=ranges,
        until=options.until,
        version=run_id if options.until == "model" else "",
        no_promote=options.no_promote,
        allow_shorter_window=options.allow_shorter_window,
        rerun=options.rerun,
        retrain=options.retrain,
        run_id=run_id,
        state_dir=state_dir,
    )


def _sections(
    settings: Settings,
    usecases: Sequence[str],
    options: RunOptions,
    run_id: str,
    started: datetime,
) -> list[UseCaseSection]:
    sections = []
    state_dir = str(Path(settings.run.state_dir))
    for usecase in usecases:
        section = summarise(settings, usecase, options, run_id)
        if options.until == "model":
            reused = None if options.retrain else reused_version(state_dir, run_id, usecase)
            if reused:
                model = reused_model_summary(settings, usecase, reused, started)
            else:
                model = model_summary(settings, usecase, run_id)
            section = replace(section, model=model)
        sections.append(section)
    return sections


def run_pipeline(settings: Settings, options: RunOptions) -> RunReport:
    """Run the selected use cases, then notify once; the report says whether all succeeded."""
    run_id = options.run_id or new_run_id()
    state = Path(settings.run.state_dir) / run_id
    started = time.perf_counter()
    started_now = datetime.now(UTC)
    started_at = started_now.isoformat(timespec="seconds")
    log_file = Path(settings.run.log_dir) / f"{run_id}.log"
    succeeded = False
    failures: list[TaskFailure] = []
    not_run: list[str] = []
    sections: list[UseCaseSection] = []
    usecases: tuple[str, ...] = ()
    alerts: list[Alert] = []
    outputs: dict[str, str] = {}  # where the run's reports are (lake URIs)
    dates = "" if options.start is None else f"{options.start}..{options.end}"
    with log_context(run_id=run_id), run_context(run_id, settings), stops_on_signals():
        try:
            usecases = settings.select(options.usecases)
            dates = describe(options.ranges_of(usecases))
            sections = [UseCaseSection(usecase=name) for name in usecases]
            configure_luigi(settings)
            warm_up(settings, usecases)
            task = main_task(options, usecases, run_id, str(Path(settings.run.state_dir)))
            build: dict[str, Any] = {"workers": options.workers or settings.run.workers}
            if options.scheduler_url:
                build["scheduler_url"] = options.scheduler_url
            else:
                build["local_scheduler"] = True
            log.info(
                "run started",
                dates=dates,
                until=options.until,
                usecases=list(usecases),
                workers=build["workers"],
                stage=settings.stage,
            )
            plan(settings, usecases, options, run_id)
            with embedded_services(settings, usecases):
                result = luigi.build([task], detailed_summary=True, **build)
            groups = luigi.execution_summary._summary_dict(result.worker)
            not_run = sorted(task_label(t) for t in groups.get("upstream_failure", set()))
            failures = _failures(state)
            succeeded = result.status in OK and not failures
            sections = _sections(settings, usecases, options, run_id, started_now)
            for index, section in enumerate(sections):
                live, found = live_summary(settings, section.usecase, options, run_id)
                sections[index] = replace(section, live=live)
                alerts += found
            outputs = report_locations(settings, usecases)
        except Exception as exc:  # the run itself broke: still notify, then re-raise
            failures.append(TaskFailure(task="run", error=f"{type(exc).__name__}: {exc}"))
            raise
        except KeyboardInterrupt as exc:  # stopped: say so in the one notification
            why = str(exc) or "interrupted"
            failures.append(TaskFailure(task="run", error=f"run {why}: {AFTER_A_STOP}"))
            log.error("run stopped", reason=why)
            if isinstance(exc, RunStopped):
                raise
            raise RunStopped(why) from None
        finally:
            report = RunReport(
                run_id=run_id,
                stage=settings.stage,
                succeeded=succeeded,
                started_at=started_at,
                duration_seconds=round(time.perf_counter() - started, 2),
                date_range=dates,
                sections=sections,
                failures=failures,
                not_run=not_run,
                logs=str(log_file.resolve()),
                alerts=alerts,
                extra=outputs,
            )
            notifier = create_notifier(settings)
            notifier.notify(report)
            for alert in alerts:  # each also on its own: one sentence an on-call reads
                notifier.alert(alert, run_id)
            log.info("run finished", succeeded=succeeded, seconds=report.duration_seconds)
    return report

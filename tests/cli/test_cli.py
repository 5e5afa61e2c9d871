"""The ``headwater`` command line, driven through typer's CliRunner."""

from __future__ import annotations

import json
import logging
import re
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import requests
import structlog
from typer.testing import CliRunner, Result

import cli
from cli import app
from headwater.core.config import ConfigError, Settings


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def flat(text: str) -> str:
    """The output with rich's boxes and line wrapping removed, for substring checks."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """``run`` configures logging for the process; undo it so later tests log as before."""
    saved = structlog.get_config()
    level = logging.getLogger().level
    yield
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_headwater", False)]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)
    structlog.configure(**saved)


# --- help --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], ["run", "demo-data", "serve-source", "serve", "config", "models"]),
        (
            ["run"],
            [
                "--start", "--end", "--usecase", "--stage", "--workers", "--scheduler-url",
                "--until", "--run-id",
            ],
        ),
        (["demo-data"], ["--usecase", "--stage", "--replace"]),
        (["serve-source"], ["--usecase", "--source", "--port", "--rate-limit"]),
        (["config"], ["--stage"]),
        (["models"], ["list", "show", "promote", "rollback"]),
        (["models", "list"], ["--usecase", "--status", "--stage"]),
        (["serve"], ["--host", "--port", "--workers", "--threads", "--lake"]),
        (["models", "show"], ["--usecase", "--stage"]),
        (["models", "promote"], ["--usecase", "--reason"]),
        (["models", "rollback"], ["--usecase"]),
    ],
    ids=[
        "app", "run", "demo-data", "serve-source", "config", "models", "models-list", "serve",
        "models-show", "models-promote", "models-rollback",
    ],
)  # fmt: skip
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_the_commands_and_options(
    args: list[str], expected: list[str], flag: str
) -> None:
    result = invoke(*args, flag)

    assert result.exit_code == 0, result.output
    words = set(flat(result.output).split())
    assert set(expected) <= words


def test_version_prints_the_package_version() -> None:
    from importlib.metadata import version

    result = invoke("--version")

    assert result.exit_code == 0, result.output
    assert result.output == f"headwater {version('headwater')}\n"


def test_run_help_types_its_dates() -> None:
    result = invoke("run", "-h")

    assert "--start DATE" in flat(result.output) and "--end DATE" in flat(result.output)


def test_the_console_script_is_the_cli_package() -> None:
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())

    assert pyproject["project"]["scripts"]["headwater"] == "cli:main"
    assert callable(cli.main)


#: What the quick commands must not import: the orchestrator and the data pipeline's stack.
HEAVY = ("luigi", "pandas", "pandera")


def heavy_imports_of(*argv: str) -> tuple[list[str], str]:
    """The HEAVY packages a fresh ``headwater <argv>`` process has imported when it ends,
    and what it printed."""
    code = (
        "import json, sys\n"
        "import cli\n"
        "try:\n"
        "    cli.app(sys.argv[1:])\n"
        "except SystemExit:\n"
        "    pass\n"
        "loaded = {name.split('.')[0] for name in sys.modules}\n"
        f"print(json.dumps(sorted(loaded & {set(HEAVY)!r})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    *printed, last = done.stdout.strip().splitlines() or [""]
    assert last.startswith("["), done.stdout + done.stderr
    return list(json.loads(last)), "\n".join(printed)


@pytest.mark.parametrize(
    ("argv", "says"),
    [((), "Usage: "), (("--help",), "Usage: "), (("--version",), "headwater ")],
    ids=["no-arguments", "help", "version"],
)
def test_the_quick_commands_load_neither_luigi_nor_pandas(argv: tuple[str, ...], says: str) -> None:
    heavy, printed = heavy_imports_of(*argv)

    assert says in printed and heavy == []


def test_models_list_loads_neither_luigi_nor_pandas(make_stage: Callable[..., Settings]) -> None:
    # Given a stage whose lake has no model yet (the subprocess inherits its variables)
    make_stage()

    heavy, printed = heavy_imports_of("models", "list", "--usecase", "flights")

    assert "no versions of model flights" in printed and heavy == []


# --- run ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "2013-13-01"], "'2013-13-01' is not a date: expected YYYY-MM-DD, today"),
        (["--start", "2013-01-01", "--end", "Jan 4"], "'Jan 4' is not a date: expected"),
        (
            ["--start", "2013-01-05", "--end", "2013-01-04"],
            "--end 2013-01-04 is before --start 2013-01-05",
        ),
        (["--start", "today-3", "--end", "today-5"], "(today-5) is before --start"),
        (
            ["--start", "2013-01-01", "--until", "train"],
            "--until must be 'extract', 'clean' or 'model'",
        ),
        (["--start", "2013-01-01", "--workers", "0"], "Invalid value for '--workers'"),
        (
            [],
            "error: use case 'flights' has no date range: give --start (and --end), "
            "or set usecase.flights.start (and end) in config/test.toml",
        ),
        (["--end", "2013-01-04"], "use case 'flights' has no date range"),
        (
            ["--start", "2013-01-01", "--usecase", "tides"],
            "error: use case 'tides' is not configured (configured: flights, meters)",
        ),
    ],
    ids=[
        "bad-start",
        "bad-end",
        "end-before-start",
        "relative-end-before-start",
        "bad-until",
        "no-workers",
        "no-range",
        "end-only-and-no-range",
        "unknown-usecase",
    ],
)
def test_run_rejects_bad_arguments_before_running_anything(
    make_stage: Callable[..., Settings], args: list[str], message: str
) -> None:
    settings = make_stage()

    result = invoke("run", *args)

    assert result.exit_code == 2
    assert message in flat(result.output)
    assert not Path(settings.notify.outbox).exists()
    assert not Path(settings.lake.uri.removeprefix("file://"), "raw").exists()


def test_a_config_error_exits_2_naming_the_key(make_stage: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigError):  # the stage is written, then refused
        make_stage(run__workers="many")

    result = invoke("run", "--start", "2013-01-01")

    assert result.exit_code == 2
    assert "run.workers" in result.output
    assert "Traceback" not in result.output


def test_an_empty_file_lake_uri_exits_2_naming_the_setting_and_writes_nothing(
    make_stage: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the lake set to file:// with no path, run from an empty working directory
    with pytest.raises(ConfigError):  # the stage is written, then refused
        make_stage(lake__uri="file://")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)

    # When a run is asked for
    result = invoke("run", "--start", "2013-01-01")

    # Then it stops before any work, naming the setting, and the directory stays empty
    assert result.exit_code == 2, result.output
    assert "lake.uri" in result.output
    assert "Traceback" not in result.output
    assert list(work.iterdir()) == []


@pytest.mark.slow
def test_run_one_day_of_every_enabled_use_case_prints_the_report_and_exits_0(
    make_stage: Callable[..., Settings], restore_logging: None
) -> None:
    # Given the test stage, with two use cases enabled
    settings = make_stage()

    # When one day runs from the command line, naming no use case
    result = invoke(
        "run", "--start", "2013-01-01", "--stage", "test", "--workers", "1", "--until", "clean"
    )

    # Then it succeeds and prints the report, which matches the single notification
    assert result.exit_code == 0, result.output
    [note] = [json.loads(p.read_text()) for p in Path(settings.notify.outbox).iterdir()]
    output = result.output
    assert f"run {note['run_id']}: flights, meters 2013-01-01..2013-01-01 on stage test" in output
    assert note["subject"] in output
    assert [s["usecase"] for s in note["sections"]] == ["flights", "meters"]
    assert "== flights" in output and "== meters" in output
    log_file = Path(note["logs"])
    assert log_file == Path(settings.run.log_dir).resolve() / f"{note['run_id']}.log"
    assert f"Logs: {log_file}" in output


@pytest.mark.slow
def test_run_with_a_failed_task_exits_1_naming_it(
    make_stage: Callable[..., Settings], restore_logging: None
) -> None:
    # Given a weather API that refuses connections
    port = free_port()
    make_stage(
        usecase__flights__sources__weather__base_url=f"http://127.0.0.1:{port}/v1/archive",
        usecase__flights__sources__weather__max_retries=0,
    )

    # When a day of flights runs
    result = invoke("run", "--start", "2013-01-01", "--until", "extract", "--usecase", "flights")

    # Then the command fails and the printed report names the task and the error
    assert result.exit_code == 1, result.output
    assert "FAILED: 1 task(s) failed, flights," in result.output
    failed = re.findall(r"^  - (ExtractPartition [^:]+): (.*)$", result.output, flags=re.MULTILINE)
    assert [task for task, _ in failed] == ["ExtractPartition flights weather 2013-01-01"]
    assert f"127.0.0.1:{port}" in failed[0][1]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"usecase__flights__gate__metric": "auc"},
            "usecase.flights.gate.metric = 'auc': is not a metric the gate compares; "
            "use one of: auc_roc,",
        ),
        (
            {"usecase__meters__timezone": "Mars/Olympus_Mons"},
            "usecase.meters.timezone = 'Mars/Olympus_Mons': is not a known time zone",
        ),
        (
            {"lake__uri": "hdfs://namenode/lake"},
            "lake.uri = 'hdfs://namenode/lake': unsupported lake scheme 'hdfs'; "
            "use file://PATH or s3://BUCKET/PREFIX",
        ),
        (
            {"usecase__flights__holdout_from": "2013-02-01"},
            "usecase.flights.holdout_from = '2013-02-01': is outside the run's range "
            "2013-01-01..2013-01-03",
        ),
        (
            {"usecase__flights__sources__weather__window_days": "0"},
            "usecase.flights.sources.weather.window_days = '0': Input should be greater than "
            "or equal to 1",
        ),
        (
            {"usecase__flights__sources__planes__kind": "ftp"},
            "usecase.flights.sources.planes.kind = 'ftp': unknown source kind 'ftp'",
        ),
    ],
    ids=["gate-metric", "timezone", "lake-scheme", "holdout", "source-option", "source-kind"],
)
def test_bad_configuration_exits_2_before_any_work_naming_key_and_value(
    make_stage: Callable[..., Settings],
    overrides: dict[str, str],
    expected: str,
    tmp_path: Path,
) -> None:
    # Given a stage with one bad value
    settings = make_stage(**overrides)

    # When a run starts
    result = invoke("run", "--start", "2013-01-01", "--end", "2013-01-03")

    # Then it stops at once, naming the key, the value and the next step; nothing ran
    assert result.exit_code == 2, result.output
    assert "error: the configuration of stage test cannot run:" in result.output
    assert expected in result.output
    assert "Traceback" not in result.output
    assert not Path(settings.notify.outbox).exists()
    assert not (tmp_path / "lake").exists() and not (tmp_path / "logs").exists()
    assert not (tmp_path / "namenode").exists()


def test_a_bad_holdout_only_matters_when_training(
    make_stage: Callable[..., Settings], tmp_path: Path
) -> None:
    make_stage(usecase__flights__holdout_from="2013-02-01", usecase__flights__timezone="Nowhere")

    result = invoke("run", "--start", "2013-01-01", "--until", "clean")

    assert result.exit_code == 2, result.output
    assert "usecase.flights.timezone = 'Nowhere'" in result.output
    assert "holdout_from" not in result.output


@pytest.mark.slow
def test_run_without_dates_runs_each_use_case_over_its_configured_range(
    make_stage: Callable[..., Settings], restore_logging: None
) -> None:
    # Given a stage giving each use case its own default range
    settings = make_stage(
        usecase__flights__start="2013-01-01",
        usecase__flights__end="2013-01-02",
        usecase__meters__start="2013-01-03",
    )

    # When a run names no dates
    result = invoke("run", "--until", "extract", "--workers", "1")

    # Then each use case ran over its own range, in one run with one notification
    assert result.exit_code == 0, result.output
    assert (
        ": flights, meters flights 2013-01-01..2013-01-02, meters 2013-01-03..2013-01-03 on "
        "stage test" in result.output
    )
    [note] = [json.loads(p.read_text()) for p in Path(settings.notify.outbox).iterdir()]
    assert [(s["usecase"], s["date_range"]) for s in note["sections"]] == [
        ("flights", "2013-01-01..2013-01-02"),
        ("meters", "2013-01-03..2013-01-03"),
    ]


# --- config ------------------------------------------------------------------------------------


def test_config_of_a_missing_stage_exits_2_naming_the_file(
    make_stage: Callable[..., Settings], tmp_path: Path
) -> None:
    make_stage()

    result = invoke("config", "--stage", "nope")

    assert result.exit_code == 2
    assert "no configuration for stage 'nope'" in result.output
    assert str(tmp_path / "config" / "nope.toml") in result.output


def test_config_checks_the_stage_as_run_does(make_stage: Callable[..., Settings]) -> None:
    make_stage(usecase__flights__gate__metric="auc", usecase__flights__start="2013-01-01")

    result = invoke("config")

    assert result.exit_code == 2
    assert "usecase.flights.gate.metric = 'auc'" in result.output


def test_config_checks_a_holdout_against_the_configured_range(
    make_stage: Callable[..., Settings],
) -> None:
    make_stage(
        usecase__flights__start="2013-01-01",
        usecase__flights__end="2013-12-31",
        usecase__flights__holdout_from="2014-01-01",
    )

    result = invoke("config")

    assert result.exit_code == 2
    assert "usecase.flights.holdout_from = '2014-01-01': is outside the run's range" in (
        result.output
    )


def test_a_run_of_one_day_that_would_train_exits_2_before_any_work(
    make_stage: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_stage()

    # --end defaults to --start: one day cannot be split into training and holdout days
    result = invoke("run", "--start", "2013-03-05", "--usecase", "flights", "--no-promote")

    assert result.exit_code == 2, result.output
    assert "usecase.flights = '2013-03-05..2013-03-05': the run's range has 1 day" in flat(
        result.output
    )
    assert "run a range of at least 2 days" in flat(result.output)
    assert not Path(settings.notify.outbox).exists() and not (tmp_path / "lake").exists()


def test_config_checks_that_the_configured_range_can_be_split(
    make_stage: Callable[..., Settings],
) -> None:
    make_stage(usecase__flights__start="2013-03-05")

    result = invoke("config")

    assert result.exit_code == 2
    assert "usecase.flights = '2013-03-05..2013-03-05': the run's range has 1 day" in flat(
        result.output
    )


def test_config_prints_the_resolved_stage_as_json(make_stage: Callable[..., Settings]) -> None:
    settings = make_stage(RUN__WORKERS=3)

    result = invoke("config", "--stage", "test")

    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["stage"] == "test"
    assert shown["run"]["workers"] == 3
    assert shown["usecases"] == ["flights", "meters"]
    assert shown["lake"]["uri"] == settings.lake.uri


# --- demo-data ---------------------------------------------------------------------------------


def test_demo_data_builds_each_selected_use_cases_sources(
    make_stage: Callable[..., Settings], tmp_path: Path
) -> None:
    # Given the minimal use case's source pointing at a database that does not exist yet
    url = f"sqlite:///{tmp_path}/demo/meters.sqlite"
    make_stage(usecase__meters__sources__readings__url=url)

    # When its demo data is built
    result = invoke("demo-data", "--usecase", "meters")

    # Then the use case built it where the configuration points, and the counts are printed
    assert result.exit_code == 0, result.output
    printed = dict(re.findall(r"^  (\w+)\s+([\d,]+) rows$", result.output, flags=re.MULTILINE))
    with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
        count = conn.execute("SELECT COUNT(*) FROM readings").fetchone()[0]
    assert printed == {"readings": f"{count:,}"}
    assert "building the demo data of meters" in result.output
    assert f"ready: {url}" in result.output
    assert "flights" not in result.output


def test_demo_data_of_every_enabled_use_case_by_default(
    make_stage: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the enabled use cases, each recording the sources and replace flag it is given
    settings = make_stage()
    from headwater.core.usecase import DemoReport, get_usecase

    calls: list[tuple[str, list[str], bool]] = []
    for name in settings.usecases:
        usecase = get_usecase(name, settings.usecase_config(name).module)

        def build(sources: Any, replace: bool, name: str = name) -> DemoReport:
            calls.append((name, sorted(sources), replace))
            return DemoReport(url=f"sqlite:///{name}.sqlite", tables={"t": 1})

        monkeypatch.setattr(type(usecase), "build_demo_data", lambda self, s, r, b=build: b(s, r))

    result = invoke("demo-data", "--replace")

    assert result.exit_code == 0, result.output
    assert calls == [
        ("flights", ["flights", "planes", "weather"], True),
        ("meters", ["readings"], True),
    ]
    assert result.output.count("ready: ") == 2


def test_demo_data_says_so_when_a_use_case_has_nothing_to_build(
    make_stage: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a use case whose only sources are APIs: its demo build returns no database
    make_stage()
    from headwater.core.usecase import DemoReport, get_usecase

    usecase = get_usecase("meters", "meters_usecase")
    nothing = DemoReport(url="", tables={})
    monkeypatch.setattr(type(usecase), "build_demo_data", lambda self, s, r: nothing)

    result = invoke("demo-data", "--usecase", "meters")

    # Then the command says there was nothing to build, not "ready: " and an empty location
    assert result.exit_code == 0, result.output
    assert "ready:" not in result.output
    assert "meters: nothing to build (no SQL source)" in result.output


# --- serve-source ------------------------------------------------------------------------------


def test_serve_source_serves_a_use_cases_http_source_until_interrupted(
    make_stage: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the flights weather source, and a wait that asks the server, then is interrupted
    # (patching time.sleep itself would reach every thread of the process)
    make_stage()
    port = free_port()
    answers: list[Any] = []

    def interrupted() -> None:
        answers.append(requests.get(f"http://127.0.0.1:{port}/health", timeout=5).json())
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "wait_until_interrupted", interrupted)

    # When it is served on a port
    result = invoke(
        "serve-source", "--usecase", "flights", "--source", "weather", "--port", str(port)
    )

    # Then it answered while serving, and stopped on Ctrl-C
    assert result.exit_code == 0, result.output
    assert answers == [{"status": "ok"}]
    assert f"serving http://127.0.0.1:{port}" in result.output
    assert "stopped" in result.output
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/health", timeout=2)


def test_serve_source_checks_the_sources_credential_and_says_where(
    make_stage: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the weather source sending a token from a variable nobody exported
    monkeypatch.delenv("HEADWATER_TEST_SERVE_TOKEN", raising=False)
    make_stage(
        usecase__flights__sources__weather__auth__header="X-Weather-Token",
        usecase__flights__sources__weather__auth__value="env:HEADWATER_TEST_SERVE_TOKEN",
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/archive"
    query = {"latitude": "40.64", "longitude": "-73.78", "start_date": "2013-01-01",
             "end_date": "2013-01-01", "hourly": "temperature_2m"}  # fmt: skip
    statuses: list[int] = []
    tokens: list[str] = []

    def interrupted() -> None:
        statuses.append(requests.get(url, params=query, timeout=5).status_code)
        printed = [line for line in tokens if "export" in line]
        token = printed[0].rpartition("HEADWATER_TEST_SERVE_TOKEN=")[2].rstrip(")")
        sent = requests.get(url, params=query, headers={"X-Weather-Token": token}, timeout=5)
        statuses.append(sent.status_code)
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "wait_until_interrupted", interrupted)
    monkeypatch.setattr(cli.typer, "echo", lambda text="", **kw: tokens.append(str(text)))

    # When it is served
    invoke("serve-source", "--usecase", "flights", "--source", "weather", "--port", str(port))

    # Then it says where the credential goes and the generated value, and checks it
    assert any("header 'X-Weather-Token' (generated: export" in line for line in tokens), tokens
    assert statuses == [401, 200]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--usecase", "flights", "--source", "tides"], "source 'tides' of use case 'flights'"),
        (["--usecase", "flights", "--source", "flights"], "has no base_url: not an HTTP source"),
        (["--usecase", "tides", "--source", "weather"], "use case 'tides' is not configured"),
    ],
    ids=["unknown-source", "sql-source", "unknown-usecase"],
)
def test_serve_source_refuses_what_it_cannot_serve(
    make_stage: Callable[..., Settings], args: list[str], message: str
) -> None:
    make_stage()

    result = invoke("serve-source", *args)

    assert result.exit_code == 2
    assert message in result.output


# --- serve -------------------------------------------------------------------------------------


def test_serve_names_the_use_cases_and_lake_then_runs_the_api(
    make_stage: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    import api.server

    settings = make_stage()
    started: list[Any] = []
    monkeypatch.setattr(api.server, "run_server", started.append)

    result = invoke("serve", "--port", "8123", "--workers", "1")

    assert result.exit_code == 0, result.output
    assert (
        f"serving the models of flights, meters from {settings.lake.uri} (stage test) "
        "on http://127.0.0.1:8123 with 1 worker(s)"
    ) in result.output
    [options] = started
    assert (options.port, options.workers) == (8123, 1)


def test_serve_with_a_bad_configuration_exits_2(make_stage: Callable[..., Settings]) -> None:
    make_stage()

    result = invoke("serve", "--stage", "nope")

    assert result.exit_code == 2
    assert "no configuration for stage 'nope'" in result.output


@pytest.mark.parametrize(
    ("flags", "expected"),
    [((), (False, False)), (("--no-promote", "--allow-shorter-window"), (True, True))],
    ids=["default", "exploratory"],
)
def test_run_passes_the_exploratory_and_window_options_to_the_graph(
    make_stage: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    restore_logging: None,
    flags: tuple[str, ...],
    expected: tuple[bool, bool],
) -> None:
    from luigi_tasks import runner
    from luigi_tasks.training import PromoteModel

    make_stage()
    seen: list[Any] = []

    def fake_run(settings: Settings, options: Any) -> Any:
        seen.append(runner.main_task(options, ("flights",), "r1", "/tmp/s").requires())
        raise SystemExit(0)

    monkeypatch.setattr(runner, "run_pipeline", fake_run)  # where `headwater run` looks it up

    invoke("run", "--start", "2013-01-01", "--end", "2013-01-02", "--usecase", "flights", *flags)

    [[gate]] = seen
    assert isinstance(gate, PromoteModel)
    assert (gate.no_promote, gate.allow_shorter_window) == expected


@pytest.mark.parametrize(
    ("flags", "expected"),
    [((), ("", False)), (("--rerun", "clean", "--retrain"), ("clean", True))],
    ids=["default", "rerun-retrain"],
)
def test_run_passes_rerun_and_retrain_down_to_the_training_and_its_partitions(
    make_stage: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    restore_logging: None,
    flags: tuple[str, ...],
    expected: tuple[str, bool],
) -> None:
    from luigi_tasks import runner

    make_stage()
    seen: list[Any] = []

    def fake_run(settings: Settings, options: Any) -> Any:
        [gate] = runner.main_task(options, ("flights",), "r1", "/tmp/s").requires()
        train = gate.requires()
        seen.append((train, train.requires()[0].requires()))
        raise SystemExit(0)

    monkeypatch.setattr(runner, "run_pipeline", fake_run)  # where `headwater run` looks it up

    invoke("run", "--start", "2013-01-01", "--end", "2013-01-02", "--usecase", "flights", *flags)

    [(train, partitions)] = seen
    assert (train.rerun, train.retrain) == expected
    assert partitions and {p.rerun for p in partitions} == {expected[0]}


def test_run_refuses_an_unknown_rerun_step(make_stage: Callable[..., Settings]) -> None:
    make_stage()

    result = invoke("run", "--start", "2013-01-01", "--rerun", "train")

    assert result.exit_code == 2 and "--rerun must be 'extract' or 'clean'" in result.output


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stopped_run_exits_as_the_signal_says_with_one_line(
    make_stage: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    restore_logging: None,
    sig: int,
    code: int,
) -> None:
    from luigi_tasks import runner

    make_stage()

    def stopped(settings: Settings, options: Any) -> Any:
        raise runner.RunStopped("terminated (SIGTERM)", sig)

    monkeypatch.setattr(runner, "run_pipeline", stopped)  # where `headwater run` looks it up

    result = invoke("run", "--start", "2013-01-01", "--end", "2013-01-02", "--usecase", "flights")

    assert result.exit_code == code
    assert "notified; run the same command again to finish" in result.output
    assert "Traceback" not in result.output

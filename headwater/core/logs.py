"""Structured JSON logging: every line carries the run id, task and partition in context.

One logging path: modules log through :func:`get_logger` (structlog over the standard
library), and the JSON log (file, or stderr on Lambda) keeps every field of every line,
``extra=`` fields of plain standard-library records (Luigi's, botocore's) included. A person
watching a run gets, instead, the console handler the CLI passes in
(:func:`headwater.ops.console.create_console_handler`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import structlog

_PRE_CHAIN: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def _formatter(renderer: Any) -> logging.Formatter:
    return structlog.stdlib.ProcessorFormatter(
        # A standard-library record's ``extra=`` fields are fields of its JSON line too.
        foreign_pre_chain=[*_PRE_CHAIN, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )


def _quiet_luigi(record: logging.LogRecord) -> bool:
    # Luigi narrates every scheduling step at INFO: keep that in the file, not the console.
    return record.levelno >= logging.WARNING or not record.name.startswith("luigi")


def _configure_structlog() -> None:
    """structlog hands every line to the standard library, whose handlers render it."""
    structlog.configure(
        processors=[*_PRE_CHAIN, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def configure_logging(
    level: str = "INFO",
    log_file: Path | None = None,
    console: bool = True,
    console_level: str | None = None,
    console_handler: logging.Handler | None = None,
) -> None:
    """Send stdlib and structlog records as JSON lines to a log file and/or stderr.

    The file always gets JSON, every field; the console gets JSON (the default, as in
    Lambda) or, when ``console_handler`` is given, that handler (the CLI passes the run
    display of :mod:`headwater.ops.console`: one short line per finished step, bars on a
    terminal). Idempotent: calling it again replaces (and closes) the handlers it installed.
    """
    _configure_structlog()
    as_json = _formatter(structlog.processors.JSONRenderer(sort_keys=False, default=str))
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_headwater", False):
            root.removeHandler(handler)
            handler.close()
    handlers: list[logging.Handler] = []
    if console and console_handler is not None:
        console_handler.setLevel(console_level or level)
        handlers.append(console_handler)
    elif console:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(as_json)
        stream.setLevel(console_level or level)
        stream.addFilter(_quiet_luigi)
        handlers.append(stream)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setFormatter(as_json)
        handlers.append(file_handler)
    for handler in handlers:
        handler._headwater = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    # Luigi installs its own console handler unless told not to; keep one format.
    logging.getLogger("luigi-interface").propagate = True


def ensure_logging() -> None:
    """Configure JSON logging once per process unless it already is (Lambda cold start)."""
    if not any(getattr(h, "_headwater", False) for h in logging.getLogger().handlers):
        configure_logging()


def get_logger(name: str) -> Any:
    """Return a structlog logger (bound context is added to every line).

    Its lines go through the standard library's logger ``name`` even in a process that never
    called :func:`configure_logging` (an embedding app, a test): one path for every line.
    """
    if not structlog.is_configured():
        _configure_structlog()
    return structlog.get_logger(name)


@contextmanager
def log_context(**values: Any) -> Iterator[None]:
    """Bind ``values`` (run_id, task, partition, ...) to every log line inside the block."""
    tokens = structlog.contextvars.bind_contextvars(**values)
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)

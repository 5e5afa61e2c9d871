"""Structured JSON logging: every line carries the run id, task and partition in context.

The JSON log (file, or stderr on Lambda) keeps every field of every line. A person watching
a run gets, instead, one short line per finished step (:func:`console_line`) and a progress
display (:mod:`headwater.ops.console`); a failure is one line there, its traceback in the file.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import threading
from collections.abc import Iterator, Mapping
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


#: Loggers whose INFO lines a person watching a run sees: finished steps and training phases.
CONSOLE_LOGGERS = ("headwater.progress", "headwater.model.runners", "headwater.run")
#: Events that drive the display but print no line (the CLI prints the start and the summary).
SILENT_EVENTS = frozenset({"run started", "run finished", "embedded server started"})
# Context and bulky fields a console line leaves to the JSON log.
_HIDDEN = frozenset(
    {"event", "level", "logger", "timestamp", "run_id", "task", "task_id", "exc_info"}
    | {"uri", "url", "path", "log", "usecase", "partition", "source", "version", "step"}
    | {"rows", "quarantined", "seconds", "error", "exception", "stack_info", "reason"}
    | {"reused"}  # the version a skipped training reuses: its message names it
)
#: A console line's longest error text (the whole of it is in the JSON log and the summary).
MAX_ERROR = 160
_LONGEST_FIELD = 40
# The longest value of a training progress line's figure shown on the console, and the
# figures it never shows (where, and what the subject already says).
_SHORT_VALUE = 12
_BULKY = frozenset({"uri", "url", "path", "log", "run_id", "usecase", "version"})


def wants_console(record: logging.LogRecord) -> bool:
    """True when a record is for the console: progress at INFO, anything at WARNING and above.

    Luigi's own failure records (a task's traceback) stay in the file: the task's
    ``task failed`` line says the same in one line.
    """
    if record.name.startswith("luigi"):
        return record.levelno >= logging.WARNING and not record.exc_info
    return record.levelno >= logging.WARNING or record.name in CONSOLE_LOGGERS


def console_event(record: logging.LogRecord) -> dict[str, Any]:
    """The fields of a record as a small plain dict (what the console shows, picklable)."""
    if isinstance(record.msg, dict):  # a structlog line: its event dict
        fields = {k: v for k, v in record.msg.items() if not k.startswith("_")}
    else:
        fields = {"event": record.getMessage()}
    fields = {**structlog.contextvars.get_contextvars(), **fields}
    out = {k: v if isinstance(v, int | float | str | bool) else str(v) for k, v in fields.items()}
    out["level"] = record.levelname.lower()
    out["logger"] = record.name
    if record.exc_info and record.exc_info[1] is not None and "error" not in out:
        exc = record.exc_info[1]
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


def _short_word(word: str) -> bool:
    """False for a ``key=value`` word of a progress line the console leaves to the log."""
    key, _, value = word.partition("=")
    return not value or (key not in _BULKY and len(value) <= _SHORT_VALUE)


def _first_line(text: str, limit: int = MAX_ERROR) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def console_line(event: Mapping[str, Any]) -> str | None:
    """One short line for a person: ``<usecase> 2013-03 clean  27,003 rows  12 quarantined  0.4 s``.

    None for events that only drive the display. Full URIs, context and tracebacks stay in
    the JSON log; an error is its first line, shortened.
    """
    name = str(event.get("event", ""))
    if name in SILENT_EVENTS:
        return None
    if name == "planned":  # "<usecase>  12 partitions (12 already published, skipped)"
        published = event.get("published") or 0
        skipped = f" ({published} already published, skipped)" if published else ""
        count = event.get("partitions")
        noun = "partition" if count == 1 else "partitions"
        return f"{event.get('usecase', '')}  {count} {noun}{skipped}"
    step = event.get("step") if event.get("step") not in (None, "training") else None
    what = name.removesuffix(" done")
    if name == "task failed":  # name the task: its family (the subject gives the rest)
        what = str(event.get("task") or "task")
    elif name.endswith(" skipped") and event.get("reason"):
        what = name.removesuffix(" skipped")
    subject = [event.get("usecase"), event.get("partition"), step, what, event.get("source")]
    if event.get("step") == "training":  # "evaluated auc_roc=0.733": the phase, short figures
        words = [w for w in name.split() if _short_word(w)]
        subject = [event.get("usecase"), "training:", " ".join(words)]
    parts = [" ".join(str(p) for p in subject if p)]
    if name.endswith(" skipped") and event.get("reason"):
        parts.append(f"skipped: {event['reason']}")
    if isinstance(event.get("rows"), int):
        parts.append(f"{event['rows']:,} rows")
    if isinstance(event.get("quarantined"), int) and event["quarantined"]:
        parts.append(f"{event['quarantined']:,} quarantined")
    if isinstance(event.get("seconds"), int | float):
        parts.append(f"{event['seconds']:.1f} s")
    extra = [
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in event.items()
        if k not in _HIDDEN and v is not None and len(str(v)) <= _LONGEST_FIELD
    ]
    if extra:
        parts.append(" ".join(extra))
    level = str(event.get("level", "info"))
    if level in ("error", "critical"):
        parts[0] = f"FAILED {parts[0]}"
    elif level == "warning":
        parts[0] = f"warning: {parts[0]}"
    if event.get("error"):
        parts.append(_first_line(str(event["error"])))
    return "  ".join(parts)


class ConsoleHandler(logging.Handler):
    """Send console records to one display in the process that configured logging.

    Luigi runs tasks in forked worker processes: their records travel to the configuring
    process through a queue, so one display draws every line and counts every step.
    """

    def __init__(self, display: Any) -> None:
        super().__init__()
        self.display = display
        self.owner = os.getpid()
        self._queue: Any = multiprocessing.SimpleQueue()
        self._shown = threading.Lock()
        self._drained = threading.Event()
        self._listener = threading.Thread(target=self._listen, daemon=True, name="console")
        self._listener.start()

    def emit(self, record: logging.LogRecord) -> None:
        """Show the record here, or pass it to the configuring process."""
        try:
            event = console_event(record)
            if os.getpid() != self.owner:
                self._queue.put(event)
                return
            if event.get("event") == "run finished":
                self.drain()
            self._show(event)
        except Exception:  # a display problem must never fail the run
            self.handleError(record)

    def _show(self, event: dict[str, Any]) -> None:
        with self._shown:
            self.display.handle(event)

    def _listen(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            if event == "drain":
                self._drained.set()
                continue
            self._show(event)

    def drain(self, timeout: float = 2.0) -> None:
        """Wait until the records other processes sent so far are shown."""
        self._drained.clear()
        self._queue.put("drain")
        self._drained.wait(timeout)

    def close(self) -> None:
        """Stop the listener and the display."""
        if os.getpid() == self.owner and self._listener.is_alive():
            self._queue.put(None)
            self._listener.join(timeout=2.0)
            with self._shown:
                self.display.close()
        super().close()


def configure_logging(
    level: str = "INFO",
    log_file: Path | None = None,
    console: bool = True,
    console_format: str = "json",
    console_level: str | None = None,
) -> None:
    """Send stdlib and structlog records as JSON lines to a log file and/or stderr.

    The file always gets JSON, every field; the console gets JSON (the default, as in
    Lambda) or ``"text"``: for a person watching a run, one short line per finished step,
    a failure as one line, and a progress display on a terminal (:mod:`headwater.ops.console`).
    Idempotent: calling it again replaces the handlers it installed before.
    """
    structlog.configure(
        processors=[*_PRE_CHAIN, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    as_json = _formatter(structlog.processors.JSONRenderer(sort_keys=False, default=str))
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_headwater", False):
            root.removeHandler(handler)
            handler.close()
    handlers: list[logging.Handler] = []
    if console and console_format == "text":
        from headwater.ops.console import create_display

        shown = ConsoleHandler(create_display())
        shown.setLevel(console_level or level)
        shown.addFilter(wants_console)
        handlers.append(shown)
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
    """Return a structlog logger (bound context is added to every line)."""
    return structlog.get_logger(name)


@contextmanager
def log_context(**values: Any) -> Iterator[None]:
    """Bind ``values`` (run_id, task, partition, ...) to every log line inside the block."""
    tokens = structlog.contextvars.bind_contextvars(**values)
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)

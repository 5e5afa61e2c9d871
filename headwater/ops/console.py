"""What a person watching a run sees: one short line per finished step, and progress bars.

The display is a sink of log events (:class:`ConsoleHandler` feeds it, from every process of
the run; the CLI passes it to :func:`headwater.core.logs.configure_logging`): ``planned``
adds a use case's partitions bar (already published ones done), each finished step advances
it, the training's phases update a training line. Bars are drawn with rich only on a
terminal; elsewhere (CI, a pipe, the tests) only lines. The JSON log keeps every field.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Mapping
from logging.handlers import QueueHandler, QueueListener
from typing import Any

import structlog
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from headwater.core.progress import ProgressEvent

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
# The longest value of a training step's figure shown on the console, and the
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


def _short_figure(key: str, value: Any) -> bool:
    """False for a figure of a training step the console leaves to the log."""
    return key not in _BULKY and len(str(value)) <= _SHORT_VALUE


def _training_line(usecase: Any, progress: ProgressEvent) -> str:
    """``<usecase> training: evaluate auc_roc=0.733  4.1 s``: the step, short figures, seconds."""
    figures = [f"{k}={v}" for k, v in progress.fields.items() if _short_figure(k, v)]
    parts = [" ".join(str(p) for p in (usecase, "training:", progress.step, *figures) if p)]
    if progress.seconds is not None:
        parts.append(f"{progress.seconds:.1f} s")
    return "  ".join(parts)


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
    progress = ProgressEvent.of(event)
    if progress is not None:  # a step of a training (its job's progress record)
        return _training_line(event.get("usecase"), progress)
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


#: Events that finish a step of a partition.
STEP_EVENTS = frozenset({"extract done", "clean done"})


def phase_of(progress: ProgressEvent) -> str:
    """The phase a training's progress record names (its step: ``fit``, ``evaluate``...)."""
    return progress.step


class RunDisplay:
    """Lines on a console, plus progress bars (partitions per use case, training) on a terminal."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress: Progress | None = None
        if console.is_terminal:
            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            )
        self._bars: dict[str, TaskID] = {}
        self._steps: dict[str, int] = {}
        self._done: dict[str, int] = {}
        self._training: dict[str, TaskID] = {}
        self._started = False

    def handle(self, event: Mapping[str, Any]) -> None:
        """Show one log event: its line, and what it changes in the bars."""
        line = console_line(event)
        if line:
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)
        if self.progress is not None:
            self._update(self.progress, event)
        if event.get("event") == "run finished":
            self.close()

    def _update(self, progress: Progress, event: Mapping[str, Any]) -> None:
        name, usecase = str(event.get("event", "")), str(event.get("usecase") or "")
        if name == "planned" and usecase:
            steps = max(1, int(event.get("steps") or 1))
            self._steps[usecase] = steps
            # The bar starts after what is already published (skipped partitions, and
            # extractions of partitions still to clean).
            published = steps * int(event.get("published") or 0)
            self._done[usecase] = int(event.get("steps_done") or published)
            self._bars[usecase] = progress.add_task(
                f"{usecase} partitions",
                total=int(event.get("partitions") or 0),
                completed=self._done[usecase] / steps,
            )
            self._start(progress)
        elif name in STEP_EVENTS and usecase in self._bars:
            # Steps are counted whole and divided each time: a finished partition shows as one.
            steps = self._steps[usecase]
            self._done[usecase] += 1
            progress.update(self._bars[usecase], completed=self._done[usecase] / steps)
        elif name == "training started" and usecase:
            self._training[usecase] = progress.add_task(f"{usecase} training: starting", total=None)
            self._start(progress)
        elif (step := ProgressEvent.of(event)) is not None and self._training:
            # Local Spark trains one use case at a time: the phase is that of the open training.
            task = self._training.get(usecase) or next(reversed(self._training.values()))
            label = next(k for k, v in self._training.items() if v == task)
            progress.update(task, description=f"{label} training: {phase_of(step)}")
        elif usecase in self._training and (
            name == "model trained" or (name == "task failed" and event.get("task") == "TrainModel")
        ):
            progress.remove_task(self._training.pop(usecase))

    def _start(self, progress: Progress) -> None:
        if not self._started:
            progress.start()
            self._started = True

    def close(self) -> None:
        """Stop drawing (the bars stay as they ended); lines after this are plain."""
        if self.progress is not None and self._started:
            self.progress.stop()
            self._started = False
        self.progress = None


def create_display(console: Console | None = None) -> RunDisplay:
    """The display of a run on stderr (bars only when stderr is a terminal)."""
    return RunDisplay(console or Console(stderr=True))


class DisplayHandler(logging.Handler):
    """Show records on one display: the end of every console record, from any process."""

    def __init__(self, display: Any) -> None:
        super().__init__()
        self.display = display

    def emit(self, record: logging.LogRecord) -> None:
        """Show one record (the handler's lock keeps the display to one thread at a time)."""
        try:
            self.display.handle(console_event(record))
        except Exception:  # a display problem must never fail the run
            self.handleError(record)

    def close(self) -> None:
        """Stop the display."""
        with self.lock:  # type: ignore[union-attr]
            self.display.close()
        super().close()


class _Listener(QueueListener):
    """A queue listener that ends quietly when the queue's pipe closes under it (at exit)."""

    def dequeue(self, block: bool) -> Any:
        """The next record, or the end when the pipe closed (was: an EOFError traceback)."""
        try:
            return super().dequeue(block)
        except (EOFError, OSError):  # the process is exiting: nothing more will come
            return self._sentinel


class ConsoleHandler(QueueHandler):
    """Send console records to one display in the process that configured logging.

    Luigi runs tasks in forked worker processes: there this handler is a plain
    :class:`~logging.handlers.QueueHandler` whose queue a :class:`~logging.handlers.QueueListener`
    of the configuring process empties into the display, so one display draws every line and
    counts every step. In the configuring process itself records are shown at once.
    """

    def __init__(self, display: Any) -> None:
        super().__init__(multiprocessing.Queue())
        self.owner = os.getpid()
        self.shown = DisplayHandler(display)
        self.listener = _Listener(self.queue, self.shown)
        self.listener.start()

    @property
    def display(self) -> Any:
        """The display records are shown on."""
        return self.shown.display

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        """A picklable copy of a worker's record whose message is its console fields."""
        event = console_event(record)  # here: the worker's bound context is in this process
        return logging.makeLogRecord(
            {"name": record.name, "levelno": record.levelno, "levelname": record.levelname}
            | {"msg": event, "args": None, "created": record.created}
        )

    def emit(self, record: logging.LogRecord) -> None:
        """Show the record here, or pass it to the configuring process."""
        if os.getpid() != self.owner:
            super().emit(record)
            return
        if isinstance(record.msg, dict) and record.msg.get("event") == "run finished":
            self.drain()
        self.shown.handle(record)

    def drain(self) -> None:
        """Show the records other processes sent so far (the listener stops at the queue's end)."""
        self.listener.stop()
        self.listener.start()

    def close(self) -> None:
        """Stop the listener and the display."""
        if os.getpid() == self.owner and self.listener._thread is not None:
            self.listener.stop()
            self.shown.close()
            self.queue.close()  # type: ignore[attr-defined]
        super().close()


def create_console_handler(console: Console | None = None) -> ConsoleHandler:
    """The console of ``headwater run``: console records only, on one display (stderr)."""
    handler = ConsoleHandler(create_display(console))
    handler.addFilter(wants_console)
    return handler

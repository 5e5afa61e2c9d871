"""What a person watching a run sees: one short line per finished step, and progress bars.

The display is a sink of log events (:class:`headwater.core.logs.ConsoleHandler` feeds it, from
every process of the run): ``planned`` adds a use case's partitions bar (already published
ones done), each finished step advances it, the training's phases update a training line.
Bars are drawn with rich only on a terminal; elsewhere (CI, a pipe, the tests) only lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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

from headwater.core.logs import console_line
from headwater.core.progress import ProgressEvent

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

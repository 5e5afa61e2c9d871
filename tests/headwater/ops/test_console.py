"""The run's display: bars on a terminal (partitions per use case, training), lines elsewhere."""

from __future__ import annotations

import io

from rich.console import Console

from headwater.core.progress import ProgressEvent
from headwater.ops.console import RunDisplay, phase_of

BAR = "━"


def events() -> list[dict[str, object]]:
    """A run of two partitions of flights (one already published), then its training."""
    step = {"usecase": "flights", "partition": "2013-02"}
    return [
        {"event": "planned", "usecase": "flights", "partitions": 2, "published": 1, "steps": 3},
        {"event": "extract done", "source": "flights", "rows": 5, "seconds": 0.1, **step},
        {"event": "extract done", "source": "weather", "rows": 5, "seconds": 0.1, **step},
        {"event": "clean done", "rows": 5, "quarantined": 1, "seconds": 0.1, **step},
        {"event": "training started", "usecase": "flights", "runner": "local"},
        {"event": "fit", **ProgressEvent("fit", 12.0, 3.25, {"iterations": 15}).log_fields()},
        {"event": "model trained", "usecase": "flights", "auc_roc": 0.7},
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
        "flights  2 partitions (1 already published, skipped)",
        "flights 2013-02 extract flights  5 rows  0.1 s",
        "flights 2013-02 extract weather  5 rows  0.1 s",
        "flights 2013-02 clean  5 rows  1 quarantined  0.1 s",
        "flights training started  runner=local",
        "training: fit iterations=15  3.2 s",
        "flights model trained  auc_roc=0.7",
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
    assert partitions.description == "flights partitions"
    assert (partitions.completed, partitions.total) == (2, 2)
    display.handle(events()[5])
    assert training.description == "flights training: fit"

    display.handle(events()[6])
    display.handle({"event": "run finished"})
    assert [t.description for t in progress.tasks] == ["flights partitions"]
    assert BAR in out.getvalue() and "flights partitions" in out.getvalue()
    assert display.progress is None


def test_the_phase_of_a_training_is_the_step_its_progress_record_names() -> None:
    event = ProgressEvent("compare with production", 30.0, 1.0, {"version": "v1"})

    assert phase_of(event) == "compare with production"

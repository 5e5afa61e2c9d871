"""A training's progress records: one JSON line from the job, one log event in the run."""

from __future__ import annotations

from headwater.core.progress import ProgressEvent


def test_a_progress_record_survives_the_job_line_and_the_log_event_it_travels_in() -> None:
    event = ProgressEvent("evaluate", 30.5, 4.0, {"auc_roc": 0.7123, "rows": 5, "ok": True})

    assert ProgressEvent.from_line(event.to_line()) == event
    assert ProgressEvent.of({"event": "evaluate", **event.log_fields()}) == event


def test_other_lines_and_events_carry_no_record() -> None:
    assert ProgressEvent.from_line("INFO SparkContext: Running Spark version 3.5") is None
    assert ProgressEvent.from_line('{"headwater_progress": {"elapsed": 1.0}}') is None
    assert ProgressEvent.of({"event": "evaluate auc_roc=0.71", "step": "training"}) is None
    assert ProgressEvent.of({"event": "clean done", "rows": 5}) is None

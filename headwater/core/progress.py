"""A training job's progress: one typed event per finished step, as one JSON line.

The job writes each event on its log (:meth:`ProgressEvent.to_line`); the runner reads the
lines once (:meth:`ProgressEvent.from_line`) and logs the record
(:meth:`ProgressEvent.log_fields`), which the console shows
(:func:`headwater.core.logs.console_line`, :func:`headwater.ops.console.phase_of`) after
reading it back from the log event (:meth:`ProgressEvent.of`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: The key of a progress line's one JSON object (``{"headwater_progress": {...}}``).
LINE_KEY = "headwater_progress"
#: The ``step`` of the run's log events that carry a training's progress.
TRAINING = "training"
#: The log event field holding the record (as JSON: log events cross processes as scalars).
LOG_FIELD = "progress"

Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class ProgressEvent:
    """One finished step of the training job."""

    #: The step's name (``fit``, ``evaluate``, ...).
    step: str
    #: Seconds since the job started, when the step finished.
    elapsed: float
    #: Seconds the step took (None: a milestone inside a step).
    seconds: float | None = None
    #: The step's figures (``rows``, ``auc_roc``, ...).
    fields: Mapping[str, Scalar] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-able values."""
        return {
            "step": self.step,
            "elapsed": self.elapsed,
            "seconds": self.seconds,
            "fields": dict(self.fields),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProgressEvent:
        """The event from :meth:`to_dict`'s form."""
        seconds = data.get("seconds")
        return cls(
            step=str(data["step"]),
            elapsed=float(data["elapsed"]),
            seconds=None if seconds is None else float(seconds),
            fields=dict(data.get("fields") or {}),
        )

    def to_line(self) -> str:
        """One line of the job's log: ``{"headwater_progress": {...}}``."""
        return json.dumps({LINE_KEY: self.to_dict()}, default=str)

    @classmethod
    def from_line(cls, line: str) -> ProgressEvent | None:
        """The event a line of the job's log carries; None for any other line."""
        text = line.strip()
        if not text.startswith('{"' + LINE_KEY + '"'):
            return None
        try:
            return cls.from_dict(json.loads(text)[LINE_KEY])
        except (ValueError, KeyError, TypeError):
            return None

    def log_fields(self) -> dict[str, Any]:
        """The fields of the run's log event for this step (its name is the event's)."""
        return {"step": TRAINING, LOG_FIELD: json.dumps(self.to_dict(), default=str)}

    @classmethod
    def of(cls, event: Mapping[str, Any]) -> ProgressEvent | None:
        """The record a log event carries (:meth:`log_fields`); None for any other event."""
        body = event.get(LOG_FIELD)
        if event.get("step") != TRAINING or body is None:
            return None
        try:
            data = json.loads(body) if isinstance(body, str) else body
            return cls.from_dict(data)
        except (ValueError, KeyError, TypeError):
            return None

"""The run context: a run's settings, read once and shared by every task of the run.

The runner registers the settings it was given under the run id before Luigi starts;
Luigi's forked workers inherit them. A task of a run nobody registered (a task run by
hand, or by ``luigi --module ...``) loads the stage's settings on first use, once per
process, and every later task of that run id reuses them. Nothing is read at import.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from headwater.core.config import Settings, load_settings

_RUNS: dict[str, Settings] = {}


def register(run_id: str, settings: Settings) -> None:
    """Make ``settings`` the settings of run ``run_id`` in this process (and its forks)."""
    _RUNS[run_id] = settings


def forget(run_id: str) -> None:
    """Drop the settings of run ``run_id`` (the next use loads them again)."""
    _RUNS.pop(run_id, None)


def settings_for(run_id: str) -> Settings:
    """The settings of run ``run_id``: the registered ones, else the stage's, loaded once."""
    settings = _RUNS.get(run_id)
    if settings is None:
        settings = _RUNS[run_id] = load_settings()
    return settings


@contextmanager
def run_context(run_id: str, settings: Settings) -> Iterator[Settings]:
    """Register ``settings`` for run ``run_id`` for the duration of the block."""
    register(run_id, settings)
    try:
        yield settings
    finally:
        forget(run_id)

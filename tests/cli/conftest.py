"""Each test starts with no run context: a task's settings are those of the test's stage."""

from __future__ import annotations

import pytest

from luigi_tasks import context


@pytest.fixture(autouse=True)
def fresh_run_context(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget the settings earlier tests' runs registered or loaded."""
    monkeypatch.setattr(context, "_RUNS", {})

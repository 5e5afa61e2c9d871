"""The orchestration and the command line are wiring for any use case: they name none."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The words of the shipped use cases (the platform's acceptance grep, issue 8).
NAMES = re.compile(r"flight|carrier|nycflights|bike", re.IGNORECASE)
PLATFORM = ["luigi_tasks", "cli", "headwater/notify.py", "headwater/executors.py"]


@pytest.mark.parametrize("where", PLATFORM)
def test_no_platform_file_names_a_use_case(where: str) -> None:
    root = REPO / where
    files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
    assert files

    found = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if NAMES.search(line)
    ]

    assert found == []

"""Outside headwater/usecases/, the platform names no use case (the acceptance grep of issue 8)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The words of the shipped use cases (the platform's acceptance grep, issue 8).
NAMES = re.compile(r"flight|carrier|nycflights|bike", re.IGNORECASE)
# Every room of the core library but the use cases' own, and every deployable.
PLATFORM = [
    *sorted(
        p.relative_to(REPO).as_posix()
        for p in (REPO / "headwater").iterdir()
        if p.name not in {"usecases", "__pycache__"} and (p.is_dir() or p.suffix == ".py")
    ),
    "emr_jobs",
    "luigi_tasks",
    "api",
    "functions",
    "cli",
]


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

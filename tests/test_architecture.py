"""The architecture is checked, not hoped for: layers, declared dependencies, lazy imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEPLOYABLES_AND_LIBRARY = ("headwater", "api", "cli", "functions", "luigi_tasks", "emr_jobs")


def run_tool(*command: str) -> subprocess.CompletedProcess[str]:
    """Run one of the venv's tools from the repository root, its output captured."""
    return subprocess.run(
        [str(BIN / command[0]), *command[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_import_linter_keeps_every_contract() -> None:
    result = run_tool("lint-imports", "--no-cache")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


def test_deptry_finds_every_import_declared_and_every_dependency_used() -> None:
    result = run_tool("deptry", ".")

    assert result.returncode == 0, result.stdout + result.stderr


def function_level_imports(source: str) -> list[tuple[int, str]]:
    """(line, text) of every import inside a function body, nested functions included."""
    lines = source.splitlines()
    found: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found |= {
                inner.lineno
                for inner in ast.walk(node)
                if isinstance(inner, ast.Import | ast.ImportFrom)
            }
    return [(n, lines[n - 1]) for n in sorted(found)]


def has_reason(lines: list[str], lineno: int) -> bool:
    """True when the import's line, or the line above it (or above its block of imports),
    carries a ``# lazy: <why>`` comment."""
    if "# lazy: " in lines[lineno - 1]:
        return True
    above = lineno - 2
    while above >= 0 and lines[above].strip().startswith(("import ", "from ")):
        above -= 1
    return above >= 0 and lines[above].strip().startswith("# lazy: ")


def unexplained_imports(root: Path) -> list[str]:
    """``path:line: import`` for each import in a function without its reason."""
    missing = []
    for top in DEPLOYABLES_AND_LIBRARY:
        for path in sorted((root / top).rglob("*.py")):
            name = path.relative_to(root).as_posix()
            source = path.read_text(encoding="utf-8")
            lines = source.splitlines()
            missing += [
                f"{name}:{n}: {text.strip()}"
                for n, text in function_level_imports(source)
                if not has_reason(lines, n)
            ]
    return missing


def test_every_import_inside_a_function_says_why_it_is_lazy() -> None:
    missing = unexplained_imports(ROOT)

    assert not missing, (
        "an import inside a function keeps the API's cold start or a host's dependencies "
        "small, and says so (`# lazy: <reason>`); otherwise it belongs at the top:\n"
        + "\n".join(missing)
    )


@pytest.mark.parametrize(
    ("source", "explained"),
    [
        ("def f():\n    import json\n", False),
        ("def f():\n    import json  # lazy: keeps the API's cold start small\n", True),
        ("def f():\n    # lazy: pyspark only on the training host\n    import pyspark\n", True),
        ("def f():\n    def g():\n        from x import y\n", False),
        ("def f():\n    # lazy: pandas off the API\n    import pandas\n    import numpy\n", True),
        (
            "def f():\n    # lazy: pandas off the API\n    import pandas\n\n    import numpy\n",
            False,
        ),
        ("import json\n\n\ndef f():\n    return json\n", True),
    ],
)
def test_the_check_sees_imports_in_functions(source: str, explained: bool, tmp_path: Path) -> None:
    (tmp_path / "headwater").mkdir()
    (tmp_path / "headwater" / "m.py").write_text(source)

    assert (unexplained_imports(tmp_path) == []) is explained

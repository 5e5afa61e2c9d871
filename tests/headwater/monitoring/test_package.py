"""The monitoring package's boundaries: what the API may import stays free of pandas, the
package leans on the core and the evaluation only, and every public function says what it does."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import headwater.monitoring

PACKAGE = Path(headwater.monitoring.__file__).parent
#: The modules the API and the pipeline call on plain values (no data frames).
PLAIN = ("profile", "drift", "estimate", "live")
#: What the package may import from the platform (issue 16: the core and the evaluation).
ALLOWED = ("headwater.core", "headwater.model.evaluation", "headwater.monitoring")
#: Beyond those, per module: the captured record's type, the lake and registry for the
#: modules that read and publish partitions, the gate's comparison for the live shadow
#: comparison, and the training job's window frames, the one definition of a window that
#: monitoring's pandas windows derive from (the layers contract allows them all; these are the
#: ones the package needs).
ALSO_ALLOWED = {
    "collect": ("headwater.data.lake", "headwater.serving.capture"),
    "monitor": ("headwater.serving.capture",),
    "published": (
        "headwater.data.lake",
        "headwater.registry.registry",
        "headwater.serving.capture",
    ),
    "windows": ("headwater.model.spark_training",),
    # the report draws with the model report's chart primitives and reads versions' metrics
    "report": (
        "headwater.model.comparison",
        "headwater.model.report",
        "headwater.data.lake",
        "headwater.registry.registry",
        "headwater.serving.capture",
    ),
    "shadow": (
        "headwater.model.comparison",
        "headwater.registry.gate",
        "headwater.serving.capture",
        "headwater.data.lake",
    ),
}


def test_the_plain_modules_import_neither_pandas_nor_pyarrow() -> None:
    imports = "; ".join(f"import headwater.monitoring.{name}" for name in PLAIN)
    code = f"import sys; {imports}; print(sorted({{'pandas', 'pyarrow'}} & set(sys.modules)))"

    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()

    assert loaded == "[]"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.stem)
def test_the_package_imports_only_the_core_and_the_evaluation(path: Path) -> None:
    platform = {m for m in imported_modules(path) if m.split(".")[0] == "headwater"}

    allowed = ALLOWED + ALSO_ALLOWED.get(path.stem, ())
    assert {m for m in platform if not m.startswith(allowed)} == set()


@pytest.mark.parametrize(
    "name",
    [
        "profile",
        "drift",
        "estimate",
        "live",
        "frames",
        "shadow",
        "monitor",
        "published",
        "windows",
        "report",
    ],
)
def test_every_public_function_and_method_has_a_one_line_docstring(name: str) -> None:
    module = __import__(f"headwater.monitoring.{name}", fromlist=["_"])
    missing = []
    for attr, value in vars(module).items():
        if attr.startswith("_") or getattr(value, "__module__", None) != module.__name__:
            continue
        members = [(attr, value)]
        if inspect.isclass(value):
            members += [
                (f"{attr}.{m}", f)
                for m, f in vars(value).items()
                if not m.startswith("_") and callable(getattr(f, "__func__", f))
            ]
        missing += [label for label, f in members if not inspect.getdoc(getattr(f, "__func__", f))]

    assert missing == []

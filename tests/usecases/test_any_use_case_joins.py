"""Proof that any use case joins the suite with no edit outside its own package and table.

A copy of a test-only use case, renamed and living only in a temporary directory, is
enabled in a copy of the stage files (``HEADWATER_CONFIG_DIR``); its label and target are
given human names holding ``'``, ``<``, ``>`` and ``&``. The conformance suite and the
configuration tests, run in a subprocess over that stage, pass for it unchanged.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CONFORMANCE_OPTION
from tests.usecases.registered import REPO, STAGE, only_in_tests

pytestmark = [pytest.mark.slow, pytest.mark.spark]

NEW = "gauges"  # a use case nobody registered
AWKWARD = " 'peak' <hour> & more"  # the report must escape these; its test compares escaped text
SUITE = ["tests/usecases", "tests/headwater/core/test_config.py"]


def _toml(table: dict[str, Any], prefix: str) -> str:
    """``table`` as TOML under ``[prefix]`` (strings, numbers, booleans and sub-tables)."""
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict) and v is not None}
    lines = [f"[{prefix}]", *(f"{k} = {json.dumps(v)}" for k, v in scalars.items())]
    nested = [_toml(v, f"{prefix}.{k}") for k, v in table.items() if isinstance(v, dict)]
    return "\n".join(lines) + "\n" + "".join(nested)


def copy_usecase(home: Path) -> str:
    """A test-only use case copied into ``home`` as ``NEW``: returns its ``[usecase.NEW]`` table."""
    name, original = next(iter(sorted(only_in_tests().items())))
    assert original.directory is not None
    module = f"{NEW}_usecase"
    text = (original.directory / f"{original.table['module']}.py").read_text(encoding="utf-8")
    text = re.sub(rf"\b{re.escape(name)}\b", NEW, text)
    text += f"""

import dataclasses as _dataclasses

_TRAINING = USECASE.training
USECASE = _dataclasses.replace(
    USECASE,
    training=_dataclasses.replace(
        _TRAINING,
        label=_dataclasses.replace(_TRAINING.label, name=_TRAINING.label.name + {AWKWARD!r}),
        target=_dataclasses.replace(_TRAINING.target, name=_TRAINING.target.name + {AWKWARD!r}),
    ),
)
"""
    (home / f"{module}.py").write_text(text, encoding="utf-8")
    table = _toml({**original.table, "module": module}, f"usecase.{NEW}")
    return re.sub(rf"\b{re.escape(name)}\b", NEW, table)


def enable(stages: Path, table: str) -> None:
    """The repository's stage files, with the local stage enabling ``NEW`` (alone) and its table."""
    shutil.copytree(REPO / "config", stages)
    local = stages / f"{STAGE}.toml"
    text = local.read_text(encoding="utf-8")
    text, count = re.subn(r"(?m)^usecases = .*$", f"usecases = [{json.dumps(NEW)}]", text)
    assert count == 1, "the local stage has no usecases line"
    local.write_text(text + "\n" + table, encoding="utf-8")


def test_a_use_case_living_elsewhere_passes_the_suite_with_no_edit(tmp_path: Path) -> None:
    # Given a new use case in a temporary directory, enabled in a copy of the stage files
    home, stages = tmp_path / "package", tmp_path / "config"
    home.mkdir()
    enable(stages, copy_usecase(home))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    env["HEADWATER_CONFIG_DIR"] = str(stages)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(home), str(REPO), env.get("PYTHONPATH")]))
    report = tmp_path / "junit.xml"

    # When the conformance suite (on the new use case: this session runs the others) and the
    # configuration tests run over that stage
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *SUITE, "-p", "no:cacheprovider", "-q", "-x"]
        + [f"--ignore={Path(__file__).relative_to(REPO)}", f"--junitxml={report}"]
        + [CONFORMANCE_OPTION, NEW],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )

    # Then everything passes, the new use case's whole conformance run included
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    cases = ET.parse(report).getroot().iter("testcase")
    outcomes = {c.get("name"): [child.tag for child in c] for c in cases}
    joined = {name: tags for name, tags in outcomes.items() if name.endswith(f"[{NEW}]")}
    assert {name.partition("[")[0] for name in joined} >= {
        "test_demo_data_is_built_where_the_configuration_points",
        "test_every_partition_is_published_and_reconciles_exactly",
        "test_the_portable_export_scores_as_spark_does",
        "test_the_report_uses_the_use_case_names",
        "test_every_real_response_validates_against_the_openapi_document",
        "test_every_use_case_declares_its_conformance_range",
    }
    assert all(tags == [] for tags in joined.values()), joined  # no failure, error or skip
    # and no other use case's conformance run was paid for twice
    others = [n for n in outcomes if n.startswith("test_every_partition_is_published")]
    assert others == [f"test_every_partition_is_published_and_reconciles_exactly[{NEW}]"]
    assert outcomes["test_repository_stage_files_validate[local-inprocess-file://]"] == []

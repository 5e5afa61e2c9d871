"""Fixtures of the flights tests through the API: real holdout flights Spark scored with the
flights test model (model/ here, its ``generate.py`` rebuilding ``spark_predictions.json``)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.luigi_tasks.conftest import fresh_run_context  # noqa: F401 (autouse: Luigi tests here)

SPARK_PREDICTIONS = Path(__file__).parent / "model" / "spark_predictions.json"


@pytest.fixture(scope="session")
def spark_cases() -> list[dict[str, Any]]:
    """Real holdout flights as API requests, with the probability and delay Spark gave them."""
    return json.loads(SPARK_PREDICTIONS.read_text())["cases"]


@pytest.fixture
def flight(spark_cases: list[dict[str, Any]]) -> dict[str, Any]:
    """One valid flight request (a real holdout flight, with all its inputs)."""
    return copy.deepcopy(spark_cases[0]["request"])

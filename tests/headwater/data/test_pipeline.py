"""The pipeline's ledger and secrets: reconcile, and references resolved at call time.

The steps against real demo sources (extract, clean, quarantine) are tested with each use case
(tests/headwater/usecases/<name>/test_pipeline.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from headwater.core.config import Settings
from headwater.data.pipeline import (
    ReconciliationError,
    reconcile,
    resolve_reference,
)

# --- reconcile ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows_in", "rows_out", "quarantined", "broken"),
    [
        pytest.param({"a": 10}, {"a": 9}, {"a": 0}, "a", id="row-lost"),
        pytest.param({"a": 10}, {"a": 10}, {"a": 1}, "a", id="row-invented"),
        pytest.param({"a": 3, "b": 5}, {"a": 3, "b": 2}, {"a": 0, "b": 2}, "b", id="second-source"),
    ],
)
def test_reconcile_rejects_an_unbalanced_ledger(
    rows_in: dict[str, int], rows_out: dict[str, int], quarantined: dict[str, int], broken: str
) -> None:
    with pytest.raises(ReconciliationError, match="partition does not reconcile") as caught:
        reconcile(rows_in, rows_out, quarantined)
    assert f"'{broken}'" in str(caught.value)
    assert all(f"'{name}'" not in str(caught.value) for name in set(rows_in) - {broken})


def test_reconcile_returns_the_balanced_ledger() -> None:
    ledger = reconcile({"a": 10, "b": 0}, {"a": 7, "b": 0}, {"a": 3, "b": 0})
    assert ledger == {
        "a": {"in": 10, "out": 7, "quarantined": 3},
        "b": {"in": 0, "out": 0, "quarantined": 0},
    }


# --- secrets ------------------------------------------------------------------------------------


@pytest.mark.parametrize("reference", ["ssm:/x", "secretsmanager:headwater/db-url"])
def test_resolve_reference_resolves_secrets(
    fake_secrets: dict[str, Any], tmp_path: Path, reference: str
) -> None:
    # Given a secret stored under a reference, and settings naming a region
    fake_secrets["secrets"][reference] = "postgresql://u:p@db/meters"
    settings = Settings.model_validate({"aws": {"region": "eu-west-1"}})

    # When the reference is resolved, then the secret comes back, looked up in that region
    assert resolve_reference(reference, settings) == "postgresql://u:p@db/meters"
    assert fake_secrets["calls"] == [(reference, "eu-west-1")]


@pytest.mark.parametrize("value", ["sqlite:///var/demo/meters.sqlite", "postgresql://db/x", ""])
def test_resolve_reference_passes_plain_values_through(
    fake_secrets: dict[str, Any], value: str
) -> None:
    assert resolve_reference(value, Settings()) == value
    assert fake_secrets["calls"] == []

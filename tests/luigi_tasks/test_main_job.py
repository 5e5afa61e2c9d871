"""The main job end to end: extract, clean, train with spark-submit, gate, promote, notify.

Real Luigi with the local scheduler, the demo SQLite source, the weather server on loopback and
the training job run by ``LocalSparkRunner`` (spark-submit, local[2]). Two runs on the same
range: the first version goes to production, the second is gated against it on its holdout.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from headwater.config import Settings
from headwater.pipeline import CLEAN, lake_for
from headwater.registry import DECISION, METRICS, Registry
from luigi_tasks.runner import RunOptions, run_pipeline

pytestmark = pytest.mark.slow

FIRST, LAST = date(2013, 1, 1), date(2013, 3, 12)


def notifications(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every notification in the outbox, by run id."""
    outbox = Path(settings.notify.outbox)
    return {
        p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(outbox.glob("*.json"))
    }


def test_two_runs_train_promote_then_gate_against_production(
    make_settings: Callable[..., Settings],
) -> None:
    # Given the demo sources, month partitions and a holdout from March 1st
    settings = make_settings(
        grain="month", training__holdout_from="2013-03-01", training__shuffle_partitions="2"
    )
    registry = Registry(lake_for(settings), settings.model.name)
    options = RunOptions(start=FIRST, end=LAST, until="model", workers=2)

    # When the main job runs
    first = run_pipeline(settings, options)

    # Then it succeeds, trains one version (named after the run) and promotes it: nothing was
    # in production
    assert first.succeeded, first.body()
    version = first.run_id
    assert registry.is_complete(version)
    assert registry.production().version == version
    assert registry.read_json(version, DECISION)["decision"] == "promoted"
    metrics = registry.read_json(version, METRICS)
    assert 0.5 < metrics["holdout"]["auc_roc"] <= 1.0
    assert "production_on_holdout" not in metrics
    assert len(lake_for(settings).partitions(CLEAN, "flights")) == 3
    # and exactly one notification says which version, how good, and that it was promoted
    sent = notifications(settings)
    assert list(sent) == [version]
    body = first.body()
    assert sent[version]["subject"] == first.subject
    assert sent[version]["extra"] == first.extra
    assert f"Model: flights_delay {version}" in body
    assert f"AUC {metrics['holdout']['auc_roc']:.4f}" in body
    assert "Promoted: yes: no production model yet" in body

    # When the job runs again on the same range (a new run id, so a new version)
    second = run_pipeline(settings, options)

    # Then the new candidate was scored against production on the same holdout
    assert second.succeeded, second.body()
    candidate = second.run_id
    assert candidate != version
    measured = registry.read_json(candidate, METRICS)["production_on_holdout"]
    assert measured["version"] == version
    assert "error" not in measured
    assert measured["auc_roc"] == pytest.approx(metrics["holdout"]["auc_roc"], abs=1e-9)
    assert measured["rows"] == metrics["holdout"]["rows"]
    # and was promoted or rejected with a reason, as its notification says
    decision = registry.read_json(candidate, DECISION)
    promoted = decision["decision"] == "promoted"
    assert decision["decision"] in ("promoted", "rejected")
    assert registry.production().version == (candidate if promoted else version)
    sent = notifications(settings)
    assert set(sent) == {version, candidate}
    body = second.body()
    assert f"Promoted: {'yes' if promoted else 'no'}: {decision['reason']}" in body
    assert f"production {measured['auc_roc']:.4f}" in decision["reason"]

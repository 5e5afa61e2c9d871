"""The main job end to end over two use cases: extract, clean, train, gate, promote, notify once.

Real Luigi with the local scheduler; flights reads the demo SQLite source and the weather server
on loopback, the minimal test-only use case its own SQLite source; each use case's job runs
through ``LocalSparkRunner`` (spark-submit, local[2]), one at a time. The first run promotes a
version of each; a second run of one use case gates its new version against production.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from headwater.core import layout
from headwater.core.config import Settings
from headwater.data.pipeline import lake_for
from headwater.registry.registry import Registry
from luigi_tasks.runner import RunOptions, run_pipeline
from tests.conftest import MINIMAL_USECASE_FILE

pytestmark = [pytest.mark.slow, pytest.mark.spark]  # spark-submit, local[2]

FIRST, LAST = date(2013, 1, 1), date(2013, 3, 12)
MINIMAL = MINIMAL_USECASE_FILE.parent  # the test-only use case's folder


def notifications(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every notification in the outbox, by run id."""
    outbox = Path(settings.notify.outbox)
    return {
        p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(outbox.glob("*.json"))
    }


def test_one_run_trains_and_promotes_each_use_case_then_a_rerun_is_gated(
    make_stage: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given month partitions, a holdout from March 1st for both use cases, and the minimal use
    # case importable by name here and in the Spark job (its file is outside the library)
    monkeypatch.syspath_prepend(str(MINIMAL))
    monkeypatch.setenv("PYTHONPATH", str(MINIMAL))
    settings = make_stage(
        grain="month",
        usecase__flights__holdout_from="2013-03-01",
        usecase__meters__holdout_from="2013-02-15",
        usecase__meters__module="meters_usecase",
    )
    options = RunOptions(start=FIRST, end=LAST, until="model", workers=2)

    # When the main job runs over both
    first = run_pipeline(settings, options)

    # Then it succeeds, and each use case has a version named after the run, in production
    assert first.succeeded, first.body()
    version = first.run_id
    for usecase in ("flights", "meters"):
        registry = Registry(lake_for(settings), usecase)
        assert registry.is_complete(version), usecase
        assert registry.production().version == version
        assert registry.read_json(version, layout.DECISION)["decision"] == "promoted"
    # and exactly one notification has a section per use case, each with its model's lines
    sent = notifications(settings)
    assert list(sent) == [version]
    body = first.body()
    assert [s["usecase"] for s in sent[version]["sections"]] == ["flights", "meters"]
    metrics = Registry(lake_for(settings), "meters").read_json(version, layout.METRICS)
    assert f"Model:       meters {version}" in body
    assert f"Model:       flights {version}" in body
    assert f"overloaded hour: AUC {metrics['holdout']['auc_roc']:.4f}" in body
    assert f"load: RMSE {metrics['regression']['rmse']:.2f} kW" in body
    assert body.count("Promoted:    yes: no production model yet") == 2

    # When the minimal use case alone runs again (a new run id, so a new version)
    # and told to retrain (its inputs, code and configuration are unchanged)
    retrain = RunOptions(FIRST, LAST, until="model", usecases=("meters",), retrain=True)
    second = run_pipeline(settings, retrain)

    # Then its candidate was scored against production on the same holdout and gated
    assert second.succeeded, second.body()
    registry = Registry(lake_for(settings), "meters")
    measured = registry.read_json(second.run_id, layout.METRICS)["production_on_holdout"]
    assert measured["version"] == version and "error" not in measured
    decision = registry.read_json(second.run_id, layout.DECISION)
    promoted = decision["decision"] == "promoted"
    assert registry.production().version == (second.run_id if promoted else version)
    assert f"Promoted:    {'yes' if promoted else 'no'}: {decision['reason']}" in second.body()
    assert Registry(lake_for(settings), "flights").production().version == version
    assert set(notifications(settings)) == {version, second.run_id}

    # When it runs once more, nothing changed and not told to retrain
    third = run_pipeline(settings, RunOptions(FIRST, LAST, until="model", usecases=("meters",)))

    # Then it trains nothing, reuses the last identical version and says so
    assert third.succeeded, third.body()
    assert "training skipped: unchanged inputs (version " + second.run_id + ")" in third.body()
    # and that it promoted nothing (before: the reused version's old "yes: ...")
    said = (
        f"Promoted:    no: {second.run_id} already in production, training reused"
        if promoted
        else "Promoted:    no: training reused, nothing decided in this run (earlier: "
    )
    assert said in third.body()
    assert not registry.lake.list_dir(*layout.model_parts("meters", third.run_id))
    assert set(notifications(settings)) == {version, second.run_id, third.run_id}

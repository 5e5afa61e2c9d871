"""`headwater models shadow`, and `show`/`promote` citing the shadow's live comparison."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli import app
from headwater.core.config import GateConfig, Settings
from headwater.core.layout import EXPORT, LOOKUPS, model_parts
from headwater.core.partitions import parse_partition
from headwater.data.pipeline import lake_for
from headwater.monitoring.monitor import PartitionMonitoring
from headwater.monitoring.published import publish_monitoring
from headwater.monitoring.shadow import ShadowPair, compare_shadow
from headwater.registry.registry import DECISION, METRICS, Registry, new_version

T0 = datetime(2026, 11, 24, 2, 15, tzinfo=UTC)
USECASE = "meters"  # the test-only use case (tests/usecases/minimal)
SERVABLE = Path(__file__).resolve().parents[1] / "api" / "model" / USECASE


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def registry(make_stage: Callable[..., Settings]) -> Registry:
    return Registry(lake_for(make_stage()), USECASE)


def models(runner: CliRunner, *args: str) -> Any:
    return runner.invoke(app, ["models", *args, "--usecase", USECASE])


def train(registry: Registry, minutes: int, *, servable: bool = True) -> str:
    """A complete version the API can serve (the API tests' model), or one it cannot."""
    version = new_version(T0 + timedelta(minutes=minutes), run_id=f"run{minutes:03d}")
    registry.write_json(version, METRICS, {"holdout": {"auc_roc": 0.7, "rows": 1200}})
    export = json.loads((SERVABLE / EXPORT).read_text())
    export["metadata"]["version"] = version
    registry.lake.write_bytes(json.dumps(export).encode(), *model_parts(USECASE, version, EXPORT))
    if servable:
        lookups = (SERVABLE / LOOKUPS).read_bytes()
        registry.lake.write_bytes(lookups, *model_parts(USECASE, version, LOOKUPS))
    registry.mark_complete(version)
    return version


def monitor(registry: Registry, partition: str, production: str, shadow: str, lift: float) -> None:
    """A published monitoring partition whose record carries the shadow section (as the
    monitoring task publishes it): five days where the shadow's scores are ``lift`` better
    separated."""
    pairs = [
        ShadowPair(f"r{d}", i, f"2026-12-0{d + 1}", 0.5, 0.5 + (lift if y else -lift), y)
        for d in range(5)
        for i, y in enumerate((True, True, False, False))
    ]
    gate = GateConfig(min_holdout_days=5, min_holdout_rows=0)
    section = compare_shadow(pairs, gate, production_version=production, shadow_version=shadow)
    record = PartitionMonitoring(
        USECASE, partition, f"{partition}T00:00:00", production, 0, None,
        shadow=section.to_dict(),
    )  # fmt: skip
    publish_monitoring(registry.lake, record, parse_partition(partition, "day"), "run")


def test_shadow_on_and_off_and_list_marks_it(runner: CliRunner, registry: Registry) -> None:
    production, candidate = train(registry, 0), train(registry, 5)
    registry.promote(production, "first")

    # When the candidate is shadowed
    on = models(runner, "shadow", candidate, "--reason", "live trial")

    # Then the pointer names it and list marks it
    assert on.exit_code == 0, on.output
    assert f"shadow is {candidate}; the API scores it beside production {production}" in on.stdout
    assert registry.shadow().reason == "live trial"
    listing = models(runner, "list").stdout
    assert f"{candidate}  2026-11-24 02:20  candidate (shadow)" in listing
    assert "production (shadow)" not in listing
    # and show says so, with no live comparison yet
    shown = models(runner, "show", candidate).stdout
    assert "shadow:     yes: the API scores it beside production" in shown
    assert "live:       no comparison with production on served requests yet" in shown
    assert json.loads(models(runner, "show", candidate, "--json").stdout)["shadow"] is True

    # When it is switched off, twice
    off, again = models(runner, "shadow", "--off"), models(runner, "shadow", "--off")

    assert off.exit_code == 0 and f"shadow {candidate} switched off" in off.stdout
    assert again.exit_code == 0 and "no shadow was set" in again.stdout
    assert registry.shadow() is None and "(shadow)" not in models(runner, "list").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give a version to shadow, or --off (not both)"),
        (("v1", "--off"), "give a version to shadow, or --off (not both)"),
    ],
)
def test_shadow_needs_a_version_or_off(
    runner: CliRunner, registry: Registry, args: tuple[str, ...], message: str
) -> None:
    result = models(runner, "shadow", *args)
    assert result.exit_code == 2 and message in result.stderr


def test_shadow_refuses_production_and_what_the_api_cannot_serve(
    runner: CliRunner, registry: Registry
) -> None:
    production, broken = train(registry, 0), train(registry, 5, servable=False)
    registry.promote(production, "first")

    itself = models(runner, "shadow", production)
    unservable = models(runner, "shadow", broken)

    assert itself.exit_code == 2
    assert f"version {production} of model {USECASE} is in production" in itself.stderr
    assert unservable.exit_code == 2
    assert f"cannot shadow {broken} of model {USECASE}: the API could not serve it" in (
        unservable.stderr
    )
    assert registry.shadow() is None and "Traceback" not in itself.output + unservable.output


def test_show_and_promote_cite_live_evidence_that_clears_the_margin(
    runner: CliRunner, registry: Registry
) -> None:
    # Given a shadow whose live comparison (newest partition) clears the margin
    production, candidate = train(registry, 0), train(registry, 5)
    registry.promote(production, "first")
    registry.set_shadow(candidate)
    monitor(registry, "2026-12-01", production, candidate, lift=-0.1)  # older: worse
    monitor(registry, "2026-12-05", production, candidate, lift=0.3)

    shown = models(runner, "show", candidate).stdout
    promoted = models(runner, "promote", candidate)

    # Then show quotes the newest comparison
    assert f"live:       shadow {candidate} vs production {production}: AUC gain +0.5000" in shown
    assert "over 5 days, 20 pairs (margin 0.002): better" in shown
    # and promote prints it, records it, and ends the shadow
    assert promoted.exit_code == 0, promoted.output
    assert "live evidence: shadow" in promoted.stdout and ": better" in promoted.stdout
    live = registry.read_json(candidate, DECISION)["live"]
    assert live["evidence"] is True and live["shadow_comparison"]["gain"] == pytest.approx(0.5)
    assert registry.production().version == candidate and registry.shadow() is None


def test_promote_refuses_to_claim_evidence_that_does_not_clear_the_margin(
    runner: CliRunner, registry: Registry
) -> None:
    # Given a shadow that did worse than production live
    production, candidate = train(registry, 0), train(registry, 5)
    registry.promote(production, "first")
    registry.set_shadow(candidate)
    monitor(registry, "2026-12-05", production, candidate, lift=-0.1)

    refused = models(runner, "promote", candidate)

    # Then nothing changes, and the message says how to go ahead anyway
    assert refused.exit_code == 2
    assert "cannot claim live evidence" in refused.stderr
    assert "--without-evidence" in refused.stderr and "Traceback" not in refused.output
    assert registry.production().version == production
    assert registry.shadow().version == candidate

    # When the operator goes ahead without evidence
    forced = models(runner, "promote", candidate, "--without-evidence")

    # Then it is promoted, and the decision records that no evidence was claimed
    assert forced.exit_code == 0, forced.output
    assert registry.production().version == candidate
    live = registry.read_json(candidate, DECISION)["live"]
    assert live["evidence"] is False and live["shadow_comparison"]["verdict"] == "not_better"


def test_promoting_another_version_keeps_the_shadow(runner: CliRunner, registry: Registry) -> None:
    first, second, shadow = train(registry, 0), train(registry, 5), train(registry, 10)
    registry.promote(first, "first")
    registry.set_shadow(shadow)

    # (no offline comparison either: promoted over production only without evidence)
    result = models(runner, "promote", second, "--without-evidence")

    assert result.exit_code == 0, result.output
    assert "live evidence" not in result.stdout
    assert "live" not in registry.read_json(second, DECISION)
    assert registry.shadow().version == shadow

"""`headwater models ...`: a use case's registry from the command line, on a stage's lake."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli import app
from headwater.core.config import Settings
from headwater.core.layout import EXPORT, LOOKUPS, REPORT, model_parts
from headwater.data.pipeline import lake_for
from headwater.registry.registry import DECISION, LINEAGE, METRICS, Registry, new_version

T0 = datetime(2026, 11, 24, 2, 15, tzinfo=UTC)
USECASE = "meters"  # the test-only use case (tests/usecases/minimal): its registry is the one used
# The metrics of a version as the training job writes them (the parts `models show` reads).
FULL_METRICS = {
    "label": {"column": "overload", "name": "overloaded hour", "unit": ""},
    "target": {"column": "load_kw", "name": "load", "unit": "kW"},
    "holdout": {"auc_roc": 0.7301, "log_loss": 0.5, "rows": 55000},
    "baselines": {"base_rate": {"auc_roc": 0.5}, "mean_load_kw": {"rmse": 40.12, "mae": 24.69}},
    "regression": {"rmse": 41.2},
    "holdout_window": {"from": "2013-11-01", "to": "2013-12-31", "rows": 55000, "days": 61},
}


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def settings(make_stage: Callable[..., Settings]) -> Settings:
    return make_stage()


@pytest.fixture
def registry(settings: Settings) -> Registry:
    return Registry(lake_for(settings), USECASE)


def models(runner: CliRunner, *args: str, usecase: str | None = USECASE) -> Any:
    """Invoke ``headwater models <args> --usecase <usecase>``."""
    return runner.invoke(app, ["models", *args, *(["--usecase", usecase] if usecase else [])])


# A servable model of the use case (the API tests' one): promoting by hand loads it first.
SERVABLE = Path(__file__).resolve().parents[1] / "api" / "model" / USECASE


def train(
    registry: Registry,
    minutes: int,
    auc: float,
    *,
    complete: bool = True,
    skip: tuple[str, ...] = (),
    replace: dict[str, bytes] | None = None,
    export_change: Callable[[dict[str, Any]], None] | None = None,
) -> str:
    version = new_version(T0 + timedelta(minutes=minutes), run_id=f"run{minutes:03d}")
    holdout = {"log_loss": 0.5, "auc_roc": auc, "rows": 1200}  # numbers only: metrics.json
    registry.write_json(version, METRICS, {"holdout": holdout})
    registry.write_json(version, LINEAGE, {"features": f"features/{USECASE}/2013-01"})
    export = json.loads((SERVABLE / EXPORT).read_text())
    export["metadata"]["version"] = version
    if export_change is not None:
        export_change(export)
    documents = {EXPORT: json.dumps(export).encode(), LOOKUPS: (SERVABLE / LOOKUPS).read_bytes()}
    for name, data in {**documents, **(replace or {})}.items():
        if name not in skip:
            registry.lake.write_bytes(data, *model_parts(USECASE, version, name))
    if complete:
        registry.mark_complete(version)
    return version


def test_list_an_empty_registry(runner: CliRunner, settings: Settings) -> None:
    result = models(runner, "list")

    assert result.exit_code == 0, result.output
    assert f"no versions of model {USECASE} in file://" in result.stdout


def test_list_shows_complete_versions_with_status_and_gate_metric_first(
    runner: CliRunner, registry: Registry
) -> None:
    # Given two complete versions, the first in production, and an unfinished one
    old, new = train(registry, 0, 0.7301), train(registry, 5, 0.74125)
    unfinished = train(registry, 9, 0.9, complete=False)
    registry.promote(old, "first")

    # When they are listed
    result = models(runner, "list")

    # Then the table has one row per complete version, oldest first, gate metric first
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"model {USECASE} in file://")
    assert re.split(r"\s{2,}", lines[1].strip()) == [
        "VERSION",
        "CREATED",
        "STATUS",
        "TRAINED",
        "HOLDOUT",
        "AUC",
        "log loss",
        "rows",
    ]
    assert lines[2].split() == [
        old,
        "2026-11-24",
        "02:15",
        "production",
        "-",
        "-",
        "0.7301",
        "0.5000",
        "1200",
    ]
    assert lines[3].split() == [
        new,
        "2026-11-24",
        "02:20",
        "candidate",
        "-",
        "-",
        "0.7412",
        "0.5000",
        "1200",
    ]
    assert len(lines) == 5 and unfinished not in result.stdout
    # and the unfinished one is counted, with the command that cleans it up
    assert lines[4].startswith("1 incomplete version (no _SUCCESS): headwater models prune")


def test_show_prints_metrics_lineage_and_decision(runner: CliRunner, registry: Registry) -> None:
    version = train(registry, 0, 0.7301)
    registry.reject(version, "worse than production")

    result = models(runner, "show", version)

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"model {USECASE} version {version}" in out
    assert "status:     rejected" in out and "created:    2026-11-24 02:15:00 UTC" in out
    assert "model:      AUC 0.7301, log loss 0.5000" in out
    assert "reason:     worse than production" in out

    # With --json: the three files whole, and where the report is
    result = models(runner, "show", version, "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["metrics"]["holdout"]["auc_roc"] == 0.7301
    assert body["lineage"] == {"features": f"features/{USECASE}/2013-01"}
    assert body["decision"]["reason"] == "worse than production"
    assert body["status"] == "rejected" and body["report"] is None


def test_show_is_a_readable_summary_with_windows_baselines_and_the_report_path(
    runner: CliRunner, registry: Registry
) -> None:
    # Given a version trained as the job writes it: windows, baselines, a report
    version = train(registry, 0, 0.7301)
    registry.write_json(version, METRICS, FULL_METRICS)
    registry.write_json(
        version, LINEAGE, {"date_range": "2013-01-01..2013-12-31", "holdout_from": "2013-11-01"}
    )
    registry.lake.write_bytes(b"<html></html>", *model_parts(USECASE, version, REPORT))

    # When it is shown
    result = models(runner, "show", version)

    # Then a person reads what it is, without JSON
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"model {USECASE} version {version}"
    assert "trained on: 2013-01-01..2013-10-31 (304 days)" in lines
    assert "holdout:    2013-11-01..2013-12-31 (61 days, 55,000 rows)" in lines
    assert "model:      overloaded hour: AUC 0.7301, log loss 0.5000" in lines
    assert "baseline:   base rate: AUC 0.5000" in lines
    assert "baseline:   mean load: RMSE 40.12, MAE 24.69" in lines
    assert "regression: load: RMSE 41.20 kW" in lines
    assert "gate:       no decision recorded" in lines
    report = registry.lake.uri_of(*model_parts(USECASE, version, REPORT))
    assert f"report:     {report}" in lines
    assert "{" not in result.stdout


# A version's range as the job writes it now (two fields), and as older versions hold it.
RANGES = {
    "new": {"range": {"start": "2013-01-01", "end": "2013-12-31"}},
    "old": {"date_range": "2013-01-01..2013-12-31"},
}


@pytest.mark.parametrize("form", sorted(RANGES))
def test_list_shows_each_versions_training_window_and_holdout(
    runner: CliRunner, registry: Registry, form: str
) -> None:
    version = train(registry, 0, 0.7301)
    registry.write_json(version, LINEAGE, {**RANGES[form], "holdout_from": "2013-11-01"})

    result = models(runner, "list")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[2].split()[4:6] == [
        "2013-01-01..2013-10-31",
        "2013-11-01..2013-12-31",
    ]


def test_show_reads_a_new_lineages_range(runner: CliRunner, registry: Registry) -> None:
    version = train(registry, 0, 0.7301)
    registry.write_json(version, LINEAGE, {**RANGES["new"], "holdout_from": "2013-11-01"})

    result = models(runner, "show", version)

    assert result.exit_code == 0, result.output
    assert "trained on: 2013-01-01..2013-10-31 (304 days)" in result.stdout.splitlines()


def test_show_of_a_malformed_metrics_file_names_the_file_and_field(
    runner: CliRunner, registry: Registry
) -> None:
    version = train(registry, 0, 0.7301)
    registry.write_json(version, METRICS, {"holdout": {"auc_roc": "high"}})

    result = models(runner, "show", version)

    assert result.exit_code == 2
    assert f"{version}/metrics.json: holdout.auc_roc is 'high', not a number" in result.output


@pytest.mark.parametrize("command", ["show", "promote"])
def test_unknown_version_exits_2_with_a_message(
    runner: CliRunner, registry: Registry, command: str
) -> None:
    result = models(runner, command, "20990101T000000Z-nope")

    assert result.exit_code == 2
    assert f"error: model {USECASE} has no version 20990101T000000Z-nope" in result.stderr
    assert "Traceback" not in result.output
    assert registry.production() is None


def test_promote_refuses_an_incomplete_version(runner: CliRunner, registry: Registry) -> None:
    unfinished = train(registry, 0, 0.9, complete=False)

    result = models(runner, "promote", unfinished)

    assert result.exit_code == 2
    assert f"error: version {unfinished} of model {USECASE} is incomplete" in result.stderr
    assert registry.production() is None


def drop_a_coefficient(export: dict[str, Any]) -> None:
    """The classifier one coefficient short: it does not fold into a scorer."""
    export["pipelines"]["classifier"]["stages"][-1]["coefficients"].pop()


def infinite_intercept(export: dict[str, Any]) -> None:
    """The regressor's intercept infinite: the version loads, then no answer is finite."""
    export["pipelines"]["regressor"]["stages"][-1]["intercept"] = float("inf")


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        ({"skip": (LOOKUPS,)}, "lookups.json does not exist"),
        ({"skip": (EXPORT,)}, "export.json does not exist"),
        ({"export_change": drop_a_coefficient}, "the linear model has 29 coefficients, not 30"),
        ({"export_change": infinite_intercept}, "cannot score the use case"),
    ],
    ids=["missing lookups", "missing export", "short export", "failing probe"],
)
def test_promote_refuses_a_version_the_api_could_not_serve(
    runner: CliRunner, registry: Registry, damage: dict[str, Any], why: str
) -> None:
    good = train(registry, 0, 0.70)
    registry.promote(good, "seeded")
    broken = train(registry, 5, 0.90, **damage)

    result = models(runner, "promote", broken)

    assert result.exit_code == 2
    assert f"error: cannot promote {broken} of model {USECASE}: the API could not serve it:" in (
        result.stderr
    )
    assert why in result.stderr
    assert registry.production().version == good


def test_promote_refuses_a_version_whose_export_disagreed_with_spark(
    runner: CliRunner, registry: Registry
) -> None:
    version = train(registry, 0, 0.70)
    metrics = registry.read_json(version, METRICS)
    metrics["export_parity"] = {"max_abs_probability": 0.2, "max_abs_regression": 0.0}
    registry.write_json(version, METRICS, metrics)

    result = models(runner, "promote", version)

    assert result.exit_code == 2
    assert "its export disagreed with Spark (max_abs_probability 0.2)" in result.stderr
    assert registry.production() is None


def test_show_quotes_the_gates_interval(runner: CliRunner, registry: Registry) -> None:
    old, new = train(registry, 0, 0.70), train(registry, 5, 0.7023)
    registry.promote(old, "seeded")
    registry.reject(
        new,
        "noisy",
        comparison={
            "metric": "auc_roc",
            "gain": 0.0023,
            "lower_gain": -0.0051,
            "upper_gain": 0.0097,
            "margin": 0.002,
            "interval": {"confidence": 0.95, "blocks": 5, "method": "paired block bootstrap"},
        },
    )

    result = models(runner, "show", new)

    assert result.exit_code == 0, result.output
    assert (
        "gate:       rejected: AUC gain +0.0023, 95% interval [-0.0051, +0.0097] over 5 "
        "blocks (margin 0.002)" in result.stdout
    )
    assert "reason:     noisy" in result.stdout


def test_promote_then_rollback(runner: CliRunner, registry: Registry) -> None:
    old, new = train(registry, 0, 0.70), train(registry, 5, 0.72)

    # When both are promoted by hand, the second with a reason
    first = models(runner, "promote", old)
    second = models(runner, "promote", new, "--reason", "weekly retrain", "--without-evidence")
    again = models(runner, "promote", new)

    # Then production is the second, the first is in its history, the reason recorded
    assert first.exit_code == 0, first.output
    assert f"promoted {old} to production (previous: none)" in first.stdout
    assert second.exit_code == 0, second.output
    assert f"promoted {new} to production (previous: {old})" in second.stdout
    assert again.exit_code == 0 and f"{new} is already in production" in again.stdout
    pointer = registry.production()
    assert (pointer.version, pointer.history) == (new, (old,))
    assert pointer.reason.startswith("weekly retrain (without evidence, --without-evidence: ")
    assert registry.read_json(new, DECISION)["reason"] == pointer.reason

    # When production is rolled back
    back = models(runner, "rollback", "--reason", "bad predictions")

    # Then the first is back and the second retired
    assert back.exit_code == 0, back.output
    assert f"rolled back to {old} (retired {new})" in back.stdout
    assert registry.production().version == old
    statuses = {v.version: v.status for v in registry.versions()}
    assert statuses == {old: "production", new: "retired"}
    assert registry.read_json(new, DECISION)["reason"] == "bad predictions"

    # And a second rollback has nowhere to go
    nothing = models(runner, "rollback")
    assert nothing.exit_code == 2
    assert f"error: model {USECASE} has no earlier production version" in nothing.stderr
    assert "Traceback" not in nothing.output


def test_rollback_without_production_exits_2(runner: CliRunner, settings: Settings) -> None:
    result = models(runner, "rollback")

    assert result.exit_code == 2
    assert f"error: model {USECASE} has no production version" in result.stderr


def test_invalid_version_name_exits_2(runner: CliRunner, settings: Settings) -> None:
    result = models(runner, "show", "../../etc")

    assert result.exit_code == 2
    assert "error: '../../etc' is not a valid version name" in result.stderr


def test_list_refuses_an_unknown_status(runner: CliRunner, settings: Settings) -> None:
    result = models(runner, "list", "--status", "prod")

    assert result.exit_code == 2
    assert "error: --status must be one of production, candidate, rejected, retired" in (
        result.stderr
    )


def test_the_gate_metric_column_is_the_use_cases_own(
    runner: CliRunner, make_stage: Callable[..., Settings]
) -> None:
    # Given the minimal use case gated on log loss
    settings = make_stage(**{f"usecase__{USECASE}__gate__metric": "log_loss"})
    version = train(Registry(lake_for(settings), USECASE), 0, 0.8)

    result = models(runner, "list")

    # Then its registry (named after it) is listed with log loss first
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"model {USECASE} in file://")
    assert lines[0].endswith(f"/models/{USECASE}")
    assert re.split(r"\s{2,}", lines[1].strip())[5:7] == ["log loss", "AUC"]
    assert version in result.stdout


def test_use_cases_have_separate_registries(
    runner: CliRunner, settings: Settings, registry: Registry
) -> None:
    # Given a version of one use case, and another use case the stage enables
    (other,) = [name for name in settings.usecases if name != USECASE]
    version = train(registry, 0, 0.8)

    mine, theirs = models(runner, "list"), models(runner, "list", usecase=other)

    assert version in mine.stdout
    assert f"no versions of model {other}" in theirs.stdout


@pytest.mark.parametrize(
    ("enabled", "usecase", "code", "message"),
    [
        (None, None, 2, "error: --usecase is required: stage test enables {enabled}"),
        ((USECASE,), None, 0, f"no versions of model {USECASE}"),
        ((USECASE,), "tides", 2, "error: use case 'tides' is not configured"),
    ],
    ids=["two-enabled", "one-enabled", "unknown"],
)
def test_which_use_case_without_or_with_a_bad_option(
    runner: CliRunner,
    make_stage: Callable[..., Settings],
    enabled: tuple[str, ...] | None,
    usecase: str | None,
    code: int,
    message: str,
) -> None:
    # Given a stage enabling those use cases (None: the test stage's own, two of them)
    settings = make_stage() if enabled is None else make_stage(usecases=enabled)
    assert len(settings.usecases) == (2 if enabled is None else len(enabled))

    result = models(runner, "list", usecase=usecase)

    assert result.exit_code == code
    assert message.format(enabled=", ".join(settings.usecases)) in result.output


def killed(registry: Registry, minutes: int) -> str:
    """A version whose training was killed: its folder holds only ``spark/``."""
    version = new_version(T0 + timedelta(minutes=minutes), run_id=f"run{minutes:03d}")
    registry.lake.write_bytes(b"{}", *model_parts(USECASE, version, "spark", "metadata"))
    return version


def test_prune_deletes_incomplete_versions_past_the_grace_period_and_list_counts_them(
    runner: CliRunner, registry: Registry
) -> None:
    # Given a version in production and a training killed midway (before: kept forever)
    production = train(registry, 0, 0.7)
    registry.promote(production, "seeded")
    leftover = killed(registry, 5)
    folder = Path(registry.lake.path(*model_parts(USECASE, leftover)))

    # When the versions are listed, then the leftover is counted and the command named
    listed = models(runner, "list")
    assert listed.exit_code == 0, listed.output
    assert "1 incomplete version (no _SUCCESS): headwater models prune" in listed.stdout

    # When pruned within the grace period (a training may still be writing), it is kept
    young = models(runner, "prune")
    assert young.exit_code == 0, young.output
    assert f"{leftover}: kept, last written less than 24 h ago" in young.stdout
    assert folder.is_dir()

    # When a dry run past the grace period, it is named and nothing is deleted
    dry = models(runner, "prune", "--older-than", "0", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert f"{leftover}: would delete (1 file" in dry.stdout
    assert folder.is_dir()

    # When pruned past the grace period, it is deleted; production is untouched
    done = models(runner, "prune", "--older-than", "0")
    assert done.exit_code == 0, done.output
    assert f"{leftover}: deleted (1 file" in done.stdout
    assert not folder.exists()
    assert registry.is_complete(production) and registry.production().version == production
    assert "incomplete version" not in models(runner, "list").stdout


# --- promote over production: the gate's evidence, or an explicit --without-evidence -----------

YEAR = {"date_range": "2013-01-01..2013-12-31", "holdout_from": "2013-11-01"}
NEXT = {"date_range": "2014-01-01..2014-12-31", "holdout_from": "2014-11-01"}


def measured(registry: Registry, version: str, production: str, low: float, high: float) -> None:
    """Give ``version`` the training job's comparison with ``production``: an AUC interval."""
    from headwater.model.comparison import Interval

    gain = (low + high) / 2
    interval = Interval("auc_roc", gain, low, high, 0.95, blocks=61, effective_blocks=20.0)
    metrics = registry.read_json(version, METRICS)
    metrics |= {
        "holdout": {**metrics["holdout"], "auc_roc": 0.70 + gain},
        "holdout_window": {"from": "2013-11-01", "to": "2013-12-31", "rows": 55_000, "days": 61},
        "production_on_holdout": {"version": production, "auc_roc": 0.70},
        "comparison": {
            "version": production, "outcome": "compared",
            "intervals": {"auc_roc": interval.to_dict()},
        },
    }  # fmt: skip
    registry.write_json(version, METRICS, metrics)
    registry.write_json(version, LINEAGE, NEXT)
    registry.write_json(production, LINEAGE, YEAR)


def test_promote_over_production_prints_the_gates_interval_and_records_it(
    runner: CliRunner, registry: Registry
) -> None:
    # Given production and a candidate whose AUC interval clears the margin
    old, new = train(registry, 0, 0.70), train(registry, 5, 0.72)
    registry.promote(old, "seeded")
    measured(registry, new, old, 0.01, 0.03)

    # When it is promoted by hand
    result = models(runner, "promote", new)

    # Then the evidence is printed in words and recorded with the decision
    assert result.exit_code == 0, result.output
    assert "95% interval [+0.0100, +0.0300]" in result.stdout
    assert "its lower bound clears margin 0.002" in result.stdout
    assert registry.production().version == new
    decision = registry.read_json(new, DECISION)
    assert decision["comparison"]["lower_gain"] == pytest.approx(0.01)
    assert "without_evidence" not in decision["comparison"]


def test_promote_refuses_when_the_interval_does_not_clear_the_margin(
    runner: CliRunner, registry: Registry
) -> None:
    # Given a candidate whose point gain is +0.01 but whose interval reaches below the margin
    old, new = train(registry, 0, 0.70), train(registry, 5, 0.71)
    registry.promote(old, "seeded")
    measured(registry, new, old, -0.004, 0.024)

    # When it is promoted by hand without saying it has no evidence
    result = models(runner, "promote", new)

    # Then it is refused, the interval quoted, production unchanged
    assert result.exit_code == 2
    assert "95% interval [-0.0040, +0.0240]" in result.stdout
    assert "does not clear margin 0.002" in result.stdout
    assert f"not promoting {new} of model {USECASE} over production {old}" in result.stderr
    assert "--without-evidence" in result.stderr
    assert registry.production().version == old


def test_promote_without_evidence_says_so_in_the_decision(
    runner: CliRunner, registry: Registry
) -> None:
    old, new = train(registry, 0, 0.70), train(registry, 5, 0.71)
    registry.promote(old, "seeded")
    measured(registry, new, old, -0.004, 0.024)

    result = models(runner, "promote", new, "--reason", "hotfix", "--force")

    assert result.exit_code == 0, result.output
    assert registry.production().version == new
    decision = registry.read_json(new, DECISION)
    assert decision["reason"].startswith("hotfix (without evidence, --without-evidence: ")
    assert "does not clear margin 0.002" in decision["reason"]
    assert decision["comparison"]["without_evidence"] is True
    assert decision["comparison"]["lower_gain"] == pytest.approx(-0.004)


def test_promote_refuses_a_version_never_measured_against_todays_production(
    runner: CliRunner, registry: Registry
) -> None:
    # Given a candidate measured against an older production, with a clear interval
    first, old, new = train(registry, 0, 0.69), train(registry, 3, 0.70), train(registry, 5, 0.72)
    registry.promote(old, "seeded")
    measured(registry, new, first, 0.01, 0.03)

    result = models(runner, "promote", new)

    assert result.exit_code == 2
    assert f"no evidence: cannot compare with production {old}" in result.stdout
    assert registry.production().version == old

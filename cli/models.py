"""``headwater models ...``: a use case's model registry in the lake (headwater.registry)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Annotated, Any

import typer

from cli.common import StageOption, fail, load_stage
from headwater.core.config import ConfigError, Settings
from headwater.core.layout import DECISION, LINEAGE, METRICS, REPORT, model_parts
from headwater.core.records import Lineage, TrainingMetrics
from headwater.data.lake import LakeError, lake_for
from headwater.model.comparison import comparison_text
from headwater.model.report import baseline_name, human_key
from headwater.monitoring.shadow import ShadowComparison
from headwater.ops.notify import metrics_text
from headwater.registry.gate import DecisionKind, TrainingWindow, Verdict, judge
from headwater.registry.prune import delete_version, incomplete_versions, prune_plan
from headwater.registry.registry import (
    STATUSES,
    ConcurrentShadowError,
    Registry,
    RegistryError,
)
from headwater.serving.predictor import load_serving_model
from headwater.serving.store import ModelStore, ProductionPointer

models_app = typer.Typer(
    help="Model versions of a use case in the lake: list, show, shadow, promote, roll back.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

UseCaseOption = Annotated[
    str | None,
    typer.Option(
        "--usecase",
        help="The use case whose models these are (default: the only enabled one).",
    ),
]
# At most this many metric columns in `models list`; `models show` prints them all.
MAX_METRIC_COLUMNS = 6


def _latest_comparison(lake: Any, usecase: str, version: str) -> Any:
    """The newest published live comparison of shadow ``version`` (None: none yet)."""
    # lazy: the published monitoring records need pandas; `headwater --help` loads none
    from headwater.monitoring.published import latest_comparison

    return latest_comparison(lake, usecase, version)


def _registry(stage: str | None, usecase: str | None) -> tuple[Registry, Settings]:
    """The registry of the use case (the model's name is the use case's), and the settings."""

    settings = load_stage(stage)
    if usecase is None:
        if len(settings.usecases) != 1:
            enabled = ", ".join(settings.usecases) or "none"
            raise fail(f"--usecase is required: stage {settings.stage} enables {enabled}")
        usecase = settings.usecases[0]
    try:
        settings.usecase_config(usecase)
        return Registry(lake_for(settings), usecase), settings
    except (ConfigError, RegistryError) as exc:
        raise fail(str(exc)) from None


@contextmanager
def _registry_errors() -> Iterator[None]:
    """Turn registry and lake errors into a message and exit status 2 (no traceback)."""

    try:
        yield
    except (RegistryError, LakeError) as exc:
        raise fail(str(exc)) from None


def _window_cells(lineage: Lineage | None) -> tuple[str, str]:
    """The TRAINED and HOLDOUT cells of a version (``-`` when its lineage has no dates)."""

    window = TrainingWindow.of(lineage)
    if window is None:
        return "-", "-"
    return f"{window.start}..{window.last_trained}", f"{window.holdout_from}..{window.end}"


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "-" if value is None else str(value)


@models_app.command("list")
def models_list(
    usecase: UseCaseOption = None,
    stage: StageOption = None,
    status: Annotated[
        str | None,
        typer.Option(
            help="Only versions in this status: production, candidate, rejected, retired."
        ),
    ] = None,
) -> None:
    """List the complete versions of a use case's model, oldest first: windows and metrics.

    TRAINED is the training window, HOLDOUT the dates the version was evaluated on.
    """

    if status and status not in STATUSES:
        raise fail(f"--status must be one of {', '.join(STATUSES)}")
    registry, settings = _registry(stage, usecase)
    with _registry_errors():
        versions = registry.versions()
    if status:
        versions = [v for v in versions if v.status == status]
    where = registry.lake.uri_of("models", registry.name)
    if not versions:
        typer.echo(
            f"no {status + ' ' if status else ''}versions of model {registry.name} in {where}"
        )
        _mention_leftovers(registry)
        return
    metrics: list[str] = []
    for info in versions:
        for key, value in info.metrics.items():
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            if numeric and key not in metrics:
                metrics.append(key)
    gate = settings.usecase_config(registry.name).gate.metric
    metrics = ([gate] if gate in metrics else []) + [m for m in metrics if m != gate]
    named = [human_key(m) for m in metrics[:MAX_METRIC_COLUMNS]]
    header = ["VERSION", "CREATED", "STATUS", "TRAINED", "HOLDOUT", *named]
    with _registry_errors():
        lineages = {v.version: registry.read_lineage(v.version) for v in versions}
    rows = [
        [
            info.version,
            f"{info.created_at:%Y-%m-%d %H:%M}" if info.created_at else "-",
            f"{info.status} (shadow)" if info.shadow else info.status,
            *_window_cells(lineages[info.version]),
            *(_cell(info.metrics.get(m)) for m in metrics[:MAX_METRIC_COLUMNS]),
        ]
        for info in versions
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    typer.echo(f"model {registry.name} in {where}")
    for row in [header, *rows]:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    _mention_leftovers(registry)


def _mention_leftovers(registry: Registry) -> None:
    """Say how many incomplete versions (killed trainings) the registry holds, and the fix."""
    with _registry_errors():
        count = len(incomplete_versions(registry))
    if count:
        typer.echo(
            f"{count} incomplete version{'s' if count > 1 else ''} (no _SUCCESS): headwater "
            f"models prune --usecase {registry.name} deletes those older than "
            f"{PRUNE_GRACE_HOURS:g} h (--dry-run to see them)"
        )


#: A version folder without _SUCCESS younger than this may be a training still writing.
PRUNE_GRACE_HOURS = 24.0


@models_app.command("prune")
def models_prune(
    usecase: Annotated[
        str | None,
        typer.Option("--usecase", help="Only this use case's models (default: every enabled one)."),
    ] = None,
    stage: StageOption = None,
    older_than: Annotated[
        float,
        typer.Option(
            "--older-than",
            min=0,
            help="Delete only versions last written more than this many hours ago.",
        ),
    ] = PRUNE_GRACE_HOURS,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be deleted; delete nothing.")
    ] = False,
) -> None:
    """Delete incomplete versions (no _SUCCESS: killed trainings), never production's."""
    settings = load_stage(stage)
    names = [usecase] if usecase else list(settings.usecases)
    for name in names:
        registry, _ = _registry(stage, name)
        with _registry_errors():
            old, young = prune_plan(incomplete_versions(registry), timedelta(hours=older_than))
            if not old and not young:
                typer.echo(f"model {registry.name}: no incomplete versions")
            for item in young:
                typer.echo(
                    f"model {registry.name}: {item.version}: kept, last written less than "
                    f"{older_than:g} h ago (a training may still be writing it)"
                )
            for item in old:
                files = f"{item.files} file{'s' if item.files != 1 else ''}"
                if dry_run:
                    typer.echo(f"model {registry.name}: {item.version}: would delete ({files})")
                    continue
                delete_version(registry, item)
                typer.echo(f"model {registry.name}: {item.version}: deleted ({files})")


@models_app.command("show")
def models_show(
    version: Annotated[str, typer.Argument(help="The version, e.g. 20261124T021500Z-ab12cd.")],
    usecase: UseCaseOption = None,
    stage: StageOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print metrics, lineage and decision as one JSON.")
    ] = False,
) -> None:
    """Show one version: status, windows, metrics, the gate's decision, and its report."""

    registry, settings = _registry(stage, usecase)
    with _registry_errors():
        info = registry.info(version)
        files = {
            f: registry.read_json(version, f, default=None) for f in (METRICS, LINEAGE, DECISION)
        }
        parts = model_parts(registry.name, version, REPORT)
        report = registry.lake.uri_of(*parts) if registry.lake.exists(*parts) else None
    if as_json:
        with _registry_errors():
            live = (
                _latest_comparison(registry.lake, registry.name, version) if info.shadow else None
            )
        body = {
            "model": registry.name,
            "version": info.version,
            "status": info.status,
            "shadow": info.shadow,
            "live": live.to_dict() if live else None,
            "created_at": info.created_at.isoformat() if info.created_at else None,
            "report": report,
            **{name.removesuffix(".json"): files[name] for name in files},
        }
        typer.echo(json.dumps(body, indent=2, sort_keys=True, default=str))
        return

    # lazy: the data pipeline (pandas, pandera) loads the use case; list needs neither
    from headwater.data.pipeline import usecase_of

    spec = usecase_of(settings, registry.name).training
    with _registry_errors():  # --json prints the files as they are; this reads their records
        metrics = registry.read_metrics(version, default=TrainingMetrics())
        lineage = registry.read_lineage(version)
    summary = describe_version(info, metrics, lineage, files[DECISION], report, spec)
    if info.shadow:
        with _registry_errors():
            live = _latest_comparison(registry.lake, registry.name, version)
        summary[-1:-1] = shadow_lines(live)
    for key, text in summary:
        typer.echo(f"{key + ':':<12}{text}" if key else f"model {registry.name} version {text}")


def describe_version(
    info: Any,
    metrics: TrainingMetrics,
    lineage: Lineage | None,
    decision: Any,
    report: str | None,
    spec: Any = None,
) -> list[tuple[str, str]]:
    """(heading, text) lines of ``models show``: a version's facts a person reads first.

    ``decision`` is the version's ``decision.json`` (None: none recorded); ``spec`` (the use
    case's TrainingSpec) names the baselines; without it, their keys.
    """

    created = f"{info.created_at:%Y-%m-%d %H:%M:%S} UTC" if info.created_at else "unknown"
    lines = [("", info.version), ("status", info.status), ("created", created)]
    trained, holdout = windows(lineage, metrics)
    lines += [("trained on", trained), ("holdout", holdout)]
    label = metrics.label.name if metrics.label else ""
    scores = metrics_text(metrics.holdout)
    if scores:
        lines.append(("model", f"{label}: {scores}" if label else scores))
    for name, values in metrics.baselines.items():
        text = metrics_text(values)
        if text:
            lines.append(("baseline", f"{baseline_name(name, spec)}: {text}"))
    target = metrics.target
    regression = metrics_text(metrics.regression, target.unit if target else "")
    if regression:
        lines.append(("regression", f"{target.name if target else ''}: {regression}".lstrip(": ")))
    if isinstance(decision, dict):
        lines.append(("gate", f"{decision.get('decision')}: {gate_summary(decision)}"))
        lines.append(("reason", str(decision.get("reason", ""))))
    else:
        lines.append(("gate", "no decision recorded"))
    lines.append(("report", report or "none"))
    return lines


def shadow_lines(live: ShadowComparison | None) -> list[tuple[str, str]]:
    """``models show``'s lines of the shadow version: what it is, and its live comparison."""
    lines = [("shadow", "yes: the API scores it beside production (recorded, never returned)")]
    if live is None:
        lines.append(("live", "no comparison with production on served requests yet"))
    else:
        lines.append(("live", live.text()))
        if live.refusals:
            lines.append(("", "not judged: " + "; ".join(live.refusals)))
    return lines


def windows(lineage: Lineage | None, metrics: TrainingMetrics) -> tuple[str, str]:
    """The training window and the holdout of a version, in words ("unknown" when absent)."""

    window = TrainingWindow.of(lineage)
    if window is None:
        return "unknown", "unknown"
    trained = f"{window.start}..{window.last_trained} ({window.train_days} days)"
    holdout = f"{window.holdout_from}..{window.end}"
    counted = metrics.holdout_window
    if counted is not None:
        holdout += f" ({counted.days} days, {counted.rows:,} rows)"
    return trained, holdout


def gate_summary(decision: dict[str, Any]) -> str:
    """The gate's numbers in one line: gain, its interval, the margin (or why not compared)."""

    return comparison_text(decision.get("comparison") or {}) or (
        "no comparison with production recorded"
    )


@models_app.command("shadow")
def models_shadow(
    version: Annotated[
        str | None, typer.Argument(help="The version to score beside production.")
    ] = None,
    off: Annotated[bool, typer.Option("--off", help="Switch shadow scoring off.")] = False,
    reason: Annotated[str, typer.Option(help="Why (recorded in SHADOW.json).")] = (
        "set by hand (headwater models shadow)"
    ),
    usecase: UseCaseOption = None,
    stage: StageOption = None,
) -> None:
    """Score a version beside production on the same requests (recorded only), or --off."""
    if off == (version is not None):
        raise fail("give a version to shadow, or --off (not both)")
    registry, settings = _registry(stage, usecase)
    with _registry_errors():
        if version is None:
            was = registry.clear_shadow("switched off by hand (headwater models shadow --off)")
            typer.echo(
                f"model {registry.name}: shadow {was} switched off"
                if was
                else f"model {registry.name}: no shadow was set"
            )
            return
        registry.info(version)  # exists and is complete, or says so
        problem = unservable(settings, registry, version)
        if problem:
            raise fail(f"cannot shadow {version} of model {registry.name}: {problem}")
        before = registry.shadow()
        pointer = registry.set_shadow(version, reason)
        production = registry.production()
    replaced = f" (was {before.version})" if before and before.version != version else ""
    typer.echo(
        f"model {registry.name}: shadow is {pointer.version}{replaced}; the API scores it beside "
        f"production {production.version if production else 'none'} on the same requests "
        "(recorded, never returned)"
    )


@models_app.command("promote")
def models_promote(
    version: Annotated[str, typer.Argument(help="The version to put in production.")],
    reason: Annotated[str, typer.Option(help="Why (recorded in decision.json).")] = (
        "promoted by hand (headwater models promote)"
    ),
    without_evidence: Annotated[
        bool,
        typer.Option(
            "--without-evidence",
            "--force",
            help="Promote over production even when the evidence (the shadow's live comparison, "
            "else the gate's interval) does not clear the margin, or there is none (recorded in "
            "decision.json).",
        ),
    ] = False,
    usecase: UseCaseOption = None,
    stage: StageOption = None,
) -> None:
    """Put a version in production by hand, over production only with evidence.

    Promoting the shadow cites its live comparison with production (the same requests, once
    their outcomes arrived) when one exists; otherwise the gate
    (:func:`headwater.registry.gate.judge`) reads the version's offline comparison with
    today's production. The evidence is printed, and a version whose lower bound does not
    clear the margin is refused unless ``--without-evidence`` says otherwise.
    """
    registry, settings = _registry(stage, usecase)
    with _registry_errors():
        registry.info(version)  # exists and is complete, or says so
        problem = unservable(settings, registry, version)
        if problem:
            raise fail(f"cannot promote {version} of model {registry.name}: {problem}")
        before = registry.production()
        if before is not None and before.version == version:
            typer.echo(f"model {registry.name}: {version} is already in production")
            return
        live = live_evidence(registry, version, without_evidence)
        comparison: dict[str, Any] = {}
        if live is None:  # no live comparison: the gate's offline evidence
            evidence = gate_evidence(settings, registry, version, before)
            typer.echo(f"model {registry.name}: the gate on {version}: {evidence.reason}")
            comparison = dict(evidence.comparison)
            if before is not None and evidence.kind != DecisionKind.PROMOTED:
                if not without_evidence:
                    raise fail(
                        f"not promoting {version} of model {registry.name} over production "
                        f"{before.version}: the gate's evidence does not support it (see "
                        "above); --without-evidence promotes it anyway, and says so in "
                        "decision.json"
                    )
                reason = f"{reason} (without evidence, --without-evidence: {evidence.reason})"
                comparison["without_evidence"] = True
        pointer = registry.promote(
            version,
            reason,
            expected=before.version if before else None,
            comparison=comparison or None,
            live=live,
        )
        end_shadow(registry, version)
    previous = pointer.history[0] if pointer.history else "none"
    typer.echo(f"model {registry.name}: promoted {version} to production (previous: {previous})")


def gate_evidence(
    settings: Settings, registry: Registry, version: str, production: ProductionPointer | None
) -> Verdict:
    """The gate's verdict on ``version`` against ``production``, as the pipeline would judge.

    A version never measured against this production (or whose comparison failed) gets a
    rejection saying so: a point gain alone is no evidence.
    """
    metrics = registry.read_json(version, METRICS, default=None) or {}
    gate = settings.usecase_config(registry.name).gate
    current = production.version if production else None
    try:
        return judge(
            metrics,
            current,
            gate,
            candidate_lineage=registry.read_json(version, LINEAGE, default=None),
            production_lineage=(
                registry.read_json(current, LINEAGE, default=None) if current else None
            ),
        )
    except (ValueError, KeyError) as exc:  # no comparison with this production to judge
        why = exc.args[0] if isinstance(exc, ValueError) else f"metrics.json has no {exc}"
        return Verdict(DecisionKind.REJECTED, f"no evidence: {why}")


def live_evidence(registry: Registry, version: str, without: bool) -> dict[str, Any] | None:
    """What a promotion of ``version`` cites from its live comparison as the shadow (None:
    it is not the shadow, or has no comparison yet); printed. Refuses (exit 2) when the
    comparison does not clear the margin, unless ``without`` (--without-evidence)."""
    shadow = registry.shadow()
    if shadow is None or shadow.version != version:
        return None
    live = _latest_comparison(registry.lake, registry.name, version)
    if live is None:
        typer.echo(f"model {registry.name}: shadow {version} has no live comparison yet")
        return None
    typer.echo(f"model {registry.name}: live evidence: {live.text()}")
    if live.clears_margin:
        return {"evidence": True, "shadow_comparison": live.to_dict()}
    if not without:
        why = "; ".join(live.refusals) or live.reason
        raise fail(
            f"cannot claim live evidence for {version} of model {registry.name}: the paired "
            f"interval does not clear margin {live.margin:g} ({why}); promote with "
            "--without-evidence to go ahead without it"
        )
    return {"evidence": False, "shadow_comparison": live.to_dict()}


def end_shadow(registry: Registry, version: str) -> None:
    """A shadow promoted to production is no longer the shadow: switch it off (if still it)."""
    try:
        if registry.clear_shadow(f"{version} promoted to production", expected=version):
            typer.echo(f"model {registry.name}: shadow {version} switched off (now production)")
    except ConcurrentShadowError:
        pass  # the shadow is another version (or off): nothing of this promotion's to end


def unservable(settings: Settings, registry: Registry, version: str) -> str | None:
    """Why the API could not serve ``version`` (None: it can), loading it as the API does."""
    # lazy: spark_training and the data pipeline (pandas, pandera): promote only, not list
    from headwater.data.pipeline import usecase_of
    from headwater.model.spark_training import PARITY_TOLERANCE

    parity = registry.read_metrics(version, default=TrainingMetrics()).export_parity or {}
    for key in ("max_abs_probability", "max_abs_regression"):
        value = parity.get(key)
        if isinstance(value, int | float) and value > PARITY_TOLERANCE:
            return f"its export disagreed with Spark ({key} {value:g})"
    store = ModelStore(
        settings.lake.uri,
        registry.name,
        region=settings.aws.region,
        endpoint_url=settings.aws.endpoint_url,
    )
    try:
        load_serving_model(store, ProductionPointer(version), usecase_of(settings, registry.name))
    except Exception as exc:  # whatever the API would fail on, it must not be promoted
        return f"the API could not serve it: {type(exc).__name__}: {exc}"
    return None


@models_app.command("rollback")
def models_rollback(
    reason: Annotated[str, typer.Option(help="Why (recorded in decision.json).")] = (
        "rolled back by hand (headwater models rollback)"
    ),
    usecase: UseCaseOption = None,
    stage: StageOption = None,
) -> None:
    """Put the previous production version back; the current one is retired."""
    registry, _ = _registry(stage, usecase)
    with _registry_errors():
        before = registry.production()
        pointer = registry.rollback(reason)
    retired = before.version if before else "?"
    typer.echo(f"model {registry.name}: rolled back to {pointer.version} (retired {retired})")

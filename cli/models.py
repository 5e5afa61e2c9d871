"""``headwater models ...``: a use case's model registry in the lake (headwater.registry)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from cli.common import StageOption, fail, load_stage
from headwater.core.config import ConfigError, Settings
from headwater.core.layout import DECISION, LINEAGE, METRICS, REPORT, model_parts
from headwater.data.lake import LakeError
from headwater.data.pipeline import lake_for, usecase_of
from headwater.model.comparison import comparison_text
from headwater.model.report import baseline_name, human_key
from headwater.model.spark_training import PARITY_TOLERANCE
from headwater.ops.notify import metrics_text
from headwater.registry.gate import DecisionKind, TrainingWindow, Verdict, judge
from headwater.registry.registry import STATUSES, Registry, RegistryError
from headwater.serving.predictor import load_serving_model
from headwater.serving.store import ModelStore, ProductionPointer

models_app = typer.Typer(
    help="Model versions of a use case in the lake: list, show, promote, roll back.",
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


def _window_cells(lineage: Any) -> tuple[str, str]:
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
        lineages = {
            v.version: registry.read_json(v.version, LINEAGE, default=None) for v in versions
        }
    rows = [
        [
            info.version,
            f"{info.created_at:%Y-%m-%d %H:%M}" if info.created_at else "-",
            info.status,
            *_window_cells(lineages[info.version]),
            *(_cell(info.metrics.get(m)) for m in metrics[:MAX_METRIC_COLUMNS]),
        ]
        for info in versions
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    typer.echo(f"model {registry.name} in {where}")
    for row in [header, *rows]:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


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
        body = {
            "model": registry.name,
            "version": info.version,
            "status": info.status,
            "created_at": info.created_at.isoformat() if info.created_at else None,
            "report": report,
            **{name.removesuffix(".json"): files[name] for name in files},
        }
        typer.echo(json.dumps(body, indent=2, sort_keys=True, default=str))
        return

    spec = usecase_of(settings, registry.name).training
    for key, text in describe_version(info, files, report, spec):
        typer.echo(f"{key + ':':<12}{text}" if key else f"model {registry.name} version {text}")


def describe_version(
    info: Any, files: dict[str, Any], report: str | None, spec: Any = None
) -> list[tuple[str, str]]:
    """(heading, text) lines of ``models show``: a version's facts a person reads first.

    ``spec`` (the use case's TrainingSpec) names the baselines; without it, their keys.
    """

    metrics = files.get(METRICS) if isinstance(files.get(METRICS), dict) else {}
    created = f"{info.created_at:%Y-%m-%d %H:%M:%S} UTC" if info.created_at else "unknown"
    lines = [("", info.version), ("status", info.status), ("created", created)]
    trained, holdout = windows(files.get(LINEAGE), metrics)
    lines += [("trained on", trained), ("holdout", holdout)]
    label = (metrics.get("label") or {}).get("name", "")
    scores = metrics_text(metrics.get("holdout") or {})
    if scores:
        lines.append(("model", f"{label}: {scores}" if label else scores))
    for name, values in (metrics.get("baselines") or {}).items():
        text = metrics_text(values if isinstance(values, dict) else {})
        if text:
            lines.append(("baseline", f"{baseline_name(name, spec)}: {text}"))
    target = metrics.get("target") or {}
    regression = metrics_text(metrics.get("regression") or {}, target.get("unit", ""))
    if regression:
        lines.append(("regression", f"{target.get('name', '')}: {regression}".lstrip(": ")))
    decision = files.get(DECISION)
    if isinstance(decision, dict):
        lines.append(("gate", f"{decision.get('decision')}: {gate_summary(decision)}"))
        lines.append(("reason", str(decision.get("reason", ""))))
    else:
        lines.append(("gate", "no decision recorded"))
    lines.append(("report", report or "none"))
    return lines


def windows(lineage: Any, metrics: dict[str, Any]) -> tuple[str, str]:
    """The training window and the holdout of a version, in words ("unknown" when absent)."""

    window = TrainingWindow.of(lineage)
    if window is None:
        return "unknown", "unknown"
    trained = f"{window.start}..{window.last_trained} ({window.train_days} days)"
    holdout = f"{window.holdout_from}..{window.end}"
    counted = metrics.get("holdout_window") or {}
    if "rows" in counted:
        holdout += f" ({counted.get('days', '?')} days, {counted['rows']:,} rows)"
    return trained, holdout


def gate_summary(decision: dict[str, Any]) -> str:
    """The gate's numbers in one line: gain, its interval, the margin (or why not compared)."""

    return comparison_text(decision.get("comparison") or {}) or (
        "no comparison with production recorded"
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
            help="Promote over production even when the gate's interval does not clear the "
            "margin, or there is none (recorded in decision.json).",
        ),
    ] = False,
    usecase: UseCaseOption = None,
    stage: StageOption = None,
) -> None:
    """Put a version in production by hand, over production only with the gate's evidence.

    The gate (:func:`headwater.registry.gate.judge`) reads the version's comparison with
    today's production; its interval is printed, and a version whose lower bound does not
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
        evidence = gate_evidence(settings, registry, version, before)
        typer.echo(f"model {registry.name}: the gate on {version}: {evidence.reason}")
        comparison = dict(evidence.comparison)
        if before is not None and evidence.kind != DecisionKind.PROMOTED:
            if not without_evidence:
                raise fail(
                    f"not promoting {version} of model {registry.name} over production "
                    f"{before.version}: the gate's evidence does not support it (see above); "
                    "--without-evidence promotes it anyway, and says so in decision.json"
                )
            reason = f"{reason} (without evidence, --without-evidence: {evidence.reason})"
            comparison["without_evidence"] = True
        pointer = registry.promote(
            version,
            reason,
            expected=before.version if before else None,
            comparison=comparison or None,
        )
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


def unservable(settings: Settings, registry: Registry, version: str) -> str | None:
    """Why the API could not serve ``version`` (None: it can), loading it as the API does."""

    parity = (registry.read_json(version, METRICS, default=None) or {}).get("export_parity")
    for key in ("max_abs_probability", "max_abs_regression"):
        value = (parity or {}).get(key)
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

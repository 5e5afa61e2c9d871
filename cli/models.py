"""``headwater models ...``: a use case's model registry in the lake (headwater.registry)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.common import StageOption, fail, load_stage

if TYPE_CHECKING:
    from headwater.config import Settings
    from headwater.registry import Registry

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
    from headwater.config import ConfigError
    from headwater.pipeline import lake_for
    from headwater.registry import Registry, RegistryError

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
    from headwater.lake import LakeError
    from headwater.registry import RegistryError

    try:
        yield
    except (RegistryError, LakeError) as exc:
        raise fail(str(exc)) from None


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
    """List the complete versions of a use case's model, oldest first, with headline metrics."""
    from headwater.registry import STATUSES

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
    header = ["VERSION", "CREATED", "STATUS", *metrics[:MAX_METRIC_COLUMNS]]
    rows = [
        [
            info.version,
            f"{info.created_at:%Y-%m-%d %H:%M}" if info.created_at else "-",
            info.status,
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
) -> None:
    """Show one version: status, metrics, lineage and the last decision about it."""
    from headwater.registry import DECISION, LINEAGE, METRICS

    registry, _ = _registry(stage, usecase)
    with _registry_errors():
        info = registry.info(version)
        files = {
            f: registry.read_json(version, f, default=None) for f in (METRICS, LINEAGE, DECISION)
        }
    created = f"{info.created_at:%Y-%m-%d %H:%M:%S} UTC" if info.created_at else "unknown"
    typer.echo(f"model {registry.name} version {info.version}")
    typer.echo(f"status:  {info.status}")
    typer.echo(f"created: {created}")
    decision = files[DECISION]
    if isinstance(decision, dict):
        typer.echo(f"gate:    {decision.get('decision')}: {gate_summary(decision)}")
        typer.echo(f"reason:  {decision.get('reason', '')}")
    for file, body in files.items():
        if body is not None:
            typer.echo(f"\n{file}:")
            typer.echo(json.dumps(body, indent=2, sort_keys=True))


def gate_summary(decision: dict[str, Any]) -> str:
    """The gate's numbers in one line: gain, its interval, the margin (or why not compared)."""
    numbers = decision.get("comparison") or {}
    if "gain" not in numbers:
        return "no comparison with production recorded"
    text = f"{numbers.get('metric')} gain {numbers['gain']:+.4f}"
    if "lower_gain" in numbers:
        interval = numbers.get("interval") or {}
        text += (
            f", {float(interval.get('confidence', 0)) * 100:g}% interval "
            f"[{numbers['lower_gain']:+.4f}, {numbers['upper_gain']:+.4f}] over "
            f"{interval.get('blocks', '?')} blocks"
        )
    return f"{text} (margin {numbers.get('margin', 0):g})"


@models_app.command("promote")
def models_promote(
    version: Annotated[str, typer.Argument(help="The version to put in production.")],
    reason: Annotated[str, typer.Option(help="Why (recorded in decision.json).")] = (
        "promoted by hand (headwater models promote)"
    ),
    usecase: UseCaseOption = None,
    stage: StageOption = None,
) -> None:
    """Put a version in production by hand (the gate is not consulted)."""
    registry, settings = _registry(stage, usecase)
    with _registry_errors():
        registry.info(version)  # exists and is complete, or says so
        problem = unservable(settings, registry, version)
        if problem:
            raise fail(f"cannot promote {version} of model {registry.name}: {problem}")
        before = registry.production()
        pointer = registry.promote(version, reason)
    if before is not None and before.version == pointer.version:
        typer.echo(f"model {registry.name}: {version} is already in production")
        return
    previous = pointer.history[0] if pointer.history else "none"
    typer.echo(f"model {registry.name}: promoted {version} to production (previous: {previous})")


def unservable(settings: Settings, registry: Registry, version: str) -> str | None:
    """Why the API could not serve ``version`` (None: it can), loading it as the API does."""
    from headwater.layout import METRICS
    from headwater.model_store import ModelStore, ProductionPointer
    from headwater.pipeline import usecase_of
    from headwater.serving import load_serving_model
    from headwater.spark_training import PARITY_TOLERANCE

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

"""``headwater monitor``: each use case's monitored partitions at a glance, from the lake."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import StageOption, UseCasesOption, load_stage, select
from headwater.data.lake import LakeError, lake_for


def monitor(
    usecase: UseCasesOption = None,
    stage: StageOption = None,
    last: Annotated[
        int, typer.Option(min=1, help="How many of the latest monitored partitions to show.")
    ] = 3,
) -> None:
    """Print live performance, drift and alerts of the latest monitored partitions."""
    # lazy: the use cases and the measures load pandas and numpy; `headwater --help` does not
    from headwater.data.pipeline import usecase_of
    from headwater.monitoring.monitor import alerts_of, summary_lines
    from headwater.monitoring.published import monitored_partitions, read_monitoring

    settings = load_stage(stage)
    lake = lake_for(settings)
    for name in select(settings, usecase):
        spec = usecase_of(settings, name)
        typer.echo(f"== {name}: {spec.title} ==")
        keys = monitored_partitions(lake, name)
        if not keys:
            typer.echo("  nothing monitored yet (a run monitors once a version is in production)")
            continue
        minimum = settings.usecase_config(name).monitoring.min_predictions
        previous = None
        # The partition before the first shown: whether capture stopped is against it.
        for key in keys[-(last + 1) :]:
            try:
                record = read_monitoring(lake, name, key)
            except LakeError as exc:
                typer.echo(f"  {key}: unreadable ({exc})")
                previous = None
                continue
            if key in keys[-last:]:
                for line in summary_lines(record, spec):
                    typer.echo(f"  {line}")
                for alert in alerts_of(record, previous, spec, min_predictions=minimum):
                    typer.echo(f"  ALERT {alert.message}")
            previous = record

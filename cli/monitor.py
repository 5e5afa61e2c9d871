"""``headwater monitor``: each use case's monitored partitions at a glance, from the lake."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from cli.common import StageOption, UseCasesOption, load_stage, select
from headwater.core.layout import monitoring_report_parts
from headwater.data.lake import LakeError, lake_for, open_lake


def monitor(
    usecase: UseCasesOption = None,
    stage: StageOption = None,
    last: Annotated[
        int, typer.Option(min=1, help="How many of the latest monitored partitions to show.")
    ] = 3,
    report: Annotated[
        Path | None,
        typer.Option(
            file_okay=False,
            help="Also write each use case's monitoring report (self-contained HTML: live "
            "metric against holdout, drift per feature per partition, calibration, shadow, "
            "alerts) into this folder as <usecase>.html. Each run writes the same page to "
            "the lake's reports/<usecase>/monitoring.html.",
        ),
    ] = None,
) -> None:
    """Print live performance, drift and alerts of the latest monitored partitions."""
    # lazy: the use cases and the measures load pandas and numpy; `headwater --help` does not
    from headwater.data.pipeline import usecase_of
    from headwater.monitoring.monitor import alerts_of, summary_lines
    from headwater.monitoring.published import monitored_partitions, read_monitoring
    from headwater.monitoring.report import monitoring_report

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
        if report is not None:
            page = monitoring_report(
                lake,
                spec,
                min_predictions=minimum,
                generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
            )
            # through a lake on the folder: written atomically (temp file, then rename)
            folder = open_lake(report.resolve().as_uri())
            folder.write_bytes(page.encode("utf-8"), f"{name}.html")
            typer.echo(f"  report written: {report / f'{name}.html'}")
        elif lake.exists(*monitoring_report_parts(name)):
            typer.echo(f"  report: {lake.uri_of(*monitoring_report_parts(name))}")

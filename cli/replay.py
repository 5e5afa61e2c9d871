"""``headwater replay``: send a period's clean rows to the running API, as its clients would.

Wiring only: the stage, the lake and the use case come from here; reading, turning rows into
requests, shifting, batching, sending and counting are :mod:`headwater.monitoring.replay`.
"""

from __future__ import annotations

import re
from typing import Annotated

import typer

from cli.common import StageOption, fail, load_stage
from headwater.core.ranges import RangeError, run_ranges
from headwater.data.lake import LakeError, lake_for
from headwater.monitoring.replay import (
    BATCH_SIZE,
    CONCURRENCY,
    HttpTransport,
    Progress,
    ReplayError,
    ReplayOptions,
    replay,
)

DEFAULT_URL = "http://127.0.0.1:8000"


def parse_rate(text: str | None) -> float | None:
    """``"50"`` or ``"50/s"`` -> 50.0 requests per second; None -> None (no limit)."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:/s)?\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise typer.BadParameter(f"--rate must be a positive number of requests/s, not {text!r}")
    return float(match.group(1))


def _show(progress: Progress) -> None:
    typer.echo(
        f"  {progress.sent:,}/{progress.total:,} instances ({progress.rate:,.0f}/s), "
        f"{progress.errors:,} errors",
        err=True,
    )


def replay_command(
    usecase: Annotated[str, typer.Option("--usecase", help="The use case whose period to replay.")],
    start: Annotated[
        str, typer.Option(metavar="DATE", help="First date: YYYY-MM-DD, today, yesterday, today-N.")
    ],
    end: Annotated[
        str | None,
        typer.Option(metavar="DATE", help="Last date, inclusive (default: the start date)."),
    ] = None,
    url: Annotated[str, typer.Option(help="The API's base URL.")] = DEFAULT_URL,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests outstanding at once.")] = (
        CONCURRENCY
    ),
    batch_size: Annotated[
        int, typer.Option(min=1, help="Instances per request, as a client batches them.")
    ] = BATCH_SIZE,
    rate: Annotated[
        str | None,
        typer.Option(metavar="N/s", help="At most N requests a second (default: no limit)."),
    ] = None,
    shift: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="Inject a shift the use case documents (ServingSpec.shifts), e.g. heatwave.",
        ),
    ] = None,
    wait: Annotated[
        float,
        typer.Option(min=0, help="Seconds to wait for the API to come up (a server just started)."),
    ] = 0.0,
    stage: StageOption = None,
) -> None:
    """Replay the clean rows of a period through the running API (real HTTP, in batches).

    Each row becomes the request a client would have sent (what is known at request time);
    exit 1 if any request was not answered, 2 if the replay cannot start.
    """
    # lazy: the use case loads pandas (the data pipeline); `headwater --help` does not
    from headwater.data.pipeline import timezone_of, usecase_of

    per_second = parse_rate(rate)
    settings = load_stage(stage)
    try:
        case = usecase_of(settings, usecase)
        first, last = run_ranges(settings, {usecase: timezone_of(settings, usecase)}, start, end)[
            usecase
        ]
    except (RangeError, ValueError) as exc:
        raise fail(str(exc)) from None
    options = ReplayOptions(
        usecase=usecase,
        start=first,
        end=last,
        url=url,
        concurrency=concurrency,
        batch_size=batch_size,
        rate=per_second,
        shift=shift,
        wait=wait,
    )
    shifted = (
        f", shift {shift}: {case.serving.shifts[shift].description}"
        if shift in (case.serving.shifts)
        else ""
    )
    typer.echo(f"replaying {usecase} {first}..{last} to {url}{shifted}", err=True)
    try:
        report = replay(
            lake_for(settings),
            case,
            options,
            settings.partitioning.grain,
            HttpTransport(url),
            progress=_show,
        )
    except (ReplayError, LakeError) as exc:
        raise fail(str(exc)) from None
    typer.echo(report.summary())
    for error, count in report.errors.items():
        typer.echo(f"  {count:,} request(s): {error}")
    raise typer.Exit(0 if report.answered == report.instances else 1)

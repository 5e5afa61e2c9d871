"""What the commands share: the stage and use-case options, loading the stage, errors."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from headwater.core.config import ConfigError, Settings, load_settings

StageOption = Annotated[
    str | None,
    typer.Option("--stage", help="Configuration stage (config/<stage>.toml): local or prod."),
]
UseCasesOption = Annotated[
    list[str] | None,
    typer.Option(
        "--usecase", help="A use case to act on (repeatable; default: every enabled one)."
    ),
]


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` on stderr; return the exit (status 2) to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def load_stage(stage: str | None) -> Settings:
    """The settings of ``stage``, or exit 2 with the configuration error."""
    if stage:
        # Functions run in this process or its children read the same stage.
        os.environ["HEADWATER_STAGE"] = stage
    try:
        return load_settings(stage)
    except ConfigError as exc:
        raise fail(str(exc)) from None


def select(settings: Settings, names: list[str] | None) -> tuple[str, ...]:
    """The use cases named (each must be configured), else the enabled ones; exit 2 if none."""
    try:
        selected = settings.select(names)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    if not selected:
        raise fail(f"stage {settings.stage} enables no use case (set usecases = [...])")
    return selected

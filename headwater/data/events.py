"""The events the Lambda functions accept: typed, validated, JSON on the wire."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Label = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-[0-9]{2}(-[0-9]{2})?$")]
Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: Annotated[str, Field(min_length=1, max_length=128)]
    usecase: Name
    partition: Label


class ExtractEvent(_Event):
    """Extract one partition of one source of a use case into the raw zone."""

    source: Name


class CleanEvent(_Event):
    """Clean one partition of a use case (all its sources) into the clean zone."""

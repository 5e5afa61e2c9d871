"""Use cases plug their domain knowledge (sources, contracts, cleaning) into the platform."""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from headwater.partitions import Partition
    from headwater.sources.openmeteo import Location


@dataclass(frozen=True)
class WeatherRequest:
    """What a use case asks of an Open-Meteo-style source: where, which variables, units."""

    locations: Sequence[Location]
    variables: Sequence[str]
    units: Mapping[str, str]


@dataclass(frozen=True)
class CleanResult:
    """The output of cleaning one partition.

    ``clean`` is the clean dataset; ``quarantine`` maps each source to its rejected
    raw rows (with a ``quarantine_reason`` column); ``rows_in`` counts raw rows read
    per source and ``rows_out`` the rows each source contributed to the output.
    """

    clean: pd.DataFrame
    quarantine: Mapping[str, pd.DataFrame]
    rows_in: Mapping[str, int]
    rows_out: Mapping[str, int] = field(default_factory=dict)


class UseCase(Protocol):
    """The contract between the platform and one use case."""

    name: str
    clean_dataset: str
    source_names: Sequence[str]
    reference_names: Sequence[str]

    def weather_request(self, source: str) -> WeatherRequest:
        """Describe what to ask an Open-Meteo-style source for."""
        ...

    def clean_schema(self) -> pa.Schema:
        """The Arrow schema of the clean dataset."""
        ...

    def clean(
        self, raw: Mapping[str, pd.DataFrame], partition: Partition, timezone: str
    ) -> CleanResult:
        """Validate and clean the raw frames of one partition."""
        ...


def get_usecase(name: str) -> UseCase:
    """Import the use case package ``headwater.usecases.<name>`` and return its USECASE."""
    try:
        module = importlib.import_module(f"headwater.usecases.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"headwater.usecases.{name}":
            raise
        raise ValueError(
            f"unknown use case {name!r}: no package headwater.usecases.{name}"
        ) from None
    return module.USECASE

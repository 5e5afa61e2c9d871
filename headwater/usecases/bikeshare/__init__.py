"""Hourly bike rentals in Washington, DC (Capital Bikeshare, 2011-2012): busy hours and counts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from headwater.core.usecase import CleanResult, ConformanceSpec, DemoReport, OutcomeSpec

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from headwater.core.partitions import Partition
    from headwater.core.usecase import ServingSpec, TrainingSpec
    from headwater.usecases.bikeshare.weather_server import WeatherServer


def hour_start(echo: Mapping[str, Any]) -> datetime:
    """The local start of a served hour."""
    return datetime.fromisoformat(str(echo["hour_start"]))


def hour_key(echo: Mapping[str, Any]) -> dict[str, Any]:
    """The clean key of a served hour: its local date and hour."""
    start = hour_start(echo)
    return {"date": start.date(), "hour": start.hour}


#: An hour's rentals are known once the hour is over.
OUTCOME = OutcomeSpec(
    key_columns=("date", "hour"),
    key_of_request=hour_key,
    event_time=hour_start,
    known_after=timedelta(hours=1),
)


@dataclass(frozen=True)
class BikeshareUseCase:
    """Rentals per hour from the SQL source, the hour's weather from a paginated JSON API."""

    name: str = "bikeshare"
    title: str = "Hourly bike rentals in Washington, DC (Capital Bikeshare, 2011-2012)"
    timezone: str = "America/New_York"
    sources: tuple[str, ...] = ("rentals", "weather")
    references: tuple[str, ...] = ()
    clean_dataset: str = "rentals"
    #: The conformance suite's small range of the demo data, and this use case's own words.
    conformance: ConformanceSpec = ConformanceSpec(
        date(2011, 1, 1), date(2011, 3, 31), vocabulary=("bike",)
    )
    #: How a served prediction meets its outcome: the hour's row of the clean data.
    outcome: OutcomeSpec = OUTCOME

    @property
    def serving(self) -> ServingSpec:
        """Request model, example and answer keys for the prediction API."""
        # lazy: a part of the use case loads where it is used (the API loads no pandas)
        from headwater.usecases.bikeshare.serving import SERVING

        return SERVING

    @property
    def training(self) -> TrainingSpec:
        """Label, target, features, lookups and baselines for the generic Spark job."""
        # lazy: a part of the use case loads where it is used (the API loads no pandas)
        from headwater.usecases.bikeshare.training import TRAINING

        return TRAINING

    @property
    def keys(self) -> Mapping[str, tuple[str, ...]]:
        """The columns identifying one raw row of each source (duplicates are quarantined)."""
        # lazy: a part of the use case loads where it is used (the API loads no pandas)
        from headwater.usecases.bikeshare.contracts import KEYS

        return KEYS

    def source_request(self, source: str) -> Any:
        """The weather API's record schema; nothing for the SQL source."""
        if source != "weather":
            return None
        # lazy: a part of the use case loads where it is used (the API loads no pandas)
        from headwater.data.sources.json_pages import PagedRequest
        from headwater.usecases.bikeshare.cleaning import RAW_WEATHER_SCHEMA

        return PagedRequest(schema=RAW_WEATHER_SCHEMA)

    def clean_schema(self) -> pa.Schema:
        """The Arrow schema of the clean rentals dataset."""
        # lazy: a part of the use case loads where it is used (the API loads no pandas)
        from headwater.usecases.bikeshare.cleaning import CLEAN_SCHEMA

        return CLEAN_SCHEMA

    def clean(
        self, raw: Mapping[str, pd.DataFrame], partition: Partition, timezone: str
    ) -> CleanResult:
        """Contracts, repairs, quarantine and the weather join for one partition."""
        # lazy: a part of the use case loads where it is used (the API loads no pandas)
        from headwater.usecases.bikeshare.cleaning import clean_partition

        return clean_partition(raw, partition, timezone)

    def build_demo_data(self, sources: Mapping[str, Any], replace: bool) -> DemoReport:
        """Build the SQLite database the ``rentals`` source points at, from the vendored CSV."""
        # lazy: a part of the use case loads where it is used (the API loads no pandas)
        from headwater.usecases.bikeshare.data import build_demo_data

        return build_demo_data(sources, replace=replace)

    def embedded_server(
        self, source: str, host: str, port: int, rate_limit: float
    ) -> WeatherServer:
        """The local paginated weather API for the ``weather`` source."""
        if source != "weather":
            raise ValueError(f"use case {self.name!r} has no embedded server for {source!r}")
        # lazy: a part of the use case loads where it is used (the API loads no pandas)
        from headwater.usecases.bikeshare.weather_server import WeatherServer

        return WeatherServer(host, port, rate_limit_per_second=rate_limit)


USECASE = BikeshareUseCase()

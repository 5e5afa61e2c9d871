"""POST /v1/flights/predictions: answers equal Spark's, the flight echoed, defaults and unseen
codes (the API's contract on any use case: tests/api/)."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

# The API tests' fixtures (tests/api/conftest.py), api_env autouse as there.
from tests.api.conftest import api_env, app, client  # noqa: F401

# ruff: noqa: F811 (those fixtures are the tests' arguments)

TOLERANCE = 1e-9


def test_single_flight_equals_spark(
    client: FlaskClient, spark_cases: list[dict[str, Any]], base_version: str
) -> None:
    # Given real holdout flights that Spark scored with this model version
    for case in spark_cases:
        # When each is posted on its own
        response = client.post("/v1/flights/predictions", json=case["request"])

        # Then the API answers Spark's numbers, decision and all
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert body["delay_probability"] == pytest.approx(
            case["spark"]["probability"], abs=TOLERANCE
        )
        assert body["expected_arrival_delay_minutes"] == pytest.approx(
            case["spark"]["arrival_delay"], abs=TOLERANCE
        )
        assert body["delayed"] is (case["spark"]["decision"] == 1.0)
        assert body["threshold"] == 0.5
        assert body["model"] == {"name": "flights", "version": base_version}
        assert body["unseen"] == []


def test_batch_answers_in_order(client: FlaskClient, spark_cases: list[dict[str, Any]]) -> None:
    # Given all the cases in one batch
    response = client.post(
        "/v1/flights/predictions", json={"instances": [c["request"] for c in spark_cases]}
    )

    # Then there is one prediction per instance, in the same order
    assert response.status_code == 200
    predictions = response.get_json()["predictions"]
    assert len(predictions) == len(spark_cases)
    for case, prediction in zip(spark_cases, predictions, strict=True):
        assert prediction["flight"]["flight"] == case["request"]["flight"]
        assert prediction["delay_probability"] == pytest.approx(
            case["spark"]["probability"], abs=TOLERANCE
        )


def test_response_echoes_the_flight_as_understood(
    client: FlaskClient, flight: dict[str, Any]
) -> None:
    # Given lower-case codes and a departure without seconds
    request = {
        **flight,
        "carrier": flight["carrier"].lower(),
        "origin": flight["origin"].lower(),
        "scheduled_departure": flight["scheduled_departure"][:16],
    }

    body = client.post("/v1/flights/predictions", json=request).get_json()

    # Then codes are upper-cased and the prediction is the same as with upper case
    assert body["flight"] == {
        "carrier": flight["carrier"],
        "flight": flight["flight"],
        "origin": flight["origin"],
        "dest": flight["dest"],
        "scheduled_departure": flight["scheduled_departure"][:16] + ":00",
    }
    same = client.post("/v1/flights/predictions", json=flight).get_json()
    assert body["delay_probability"] == same["delay_probability"]


def test_minimal_flight_reports_what_was_defaulted(client: FlaskClient) -> None:
    # Given only the required fields, on a day the model has no schedule for
    request = {
        "carrier": "UA",
        "flight": 1545,
        "origin": "EWR",
        "dest": "IAH",
        "scheduled_departure": "2014-03-10T07:05",
    }

    body = client.post("/v1/flights/predictions", json=request).get_json()

    # Then aircraft, weather, congestion and recent delays come from the defaults, and say so
    assert body["defaulted"] == ["aircraft", "weather", "congestion", "recent_delays"]
    assert 0.0 < body["delay_probability"] < 1.0
    assert body["unseen"] == []


def test_partial_weather_defaults_the_rest(client: FlaskClient, flight: dict[str, Any]) -> None:
    full = client.post("/v1/flights/predictions", json=flight).get_json()
    partial = client.post(
        "/v1/flights/predictions", json={**flight, "weather": {"temp_f": 20.0, "precip_in": None}}
    )

    assert "weather" not in full["defaulted"]
    assert "weather" in partial.get_json()["defaulted"]
    assert partial.get_json()["delay_probability"] != full["delay_probability"]


@pytest.mark.parametrize(
    ("change", "unseen"),
    [
        ({"origin": "SFO"}, ["origin"]),
        ({"dest": "XYZ"}, ["dest"]),
        ({"carrier": "ZZ"}, ["carrier"]),
        ({"carrier": "ZZ", "origin": "BOS", "dest": "XYZ"}, ["carrier", "origin", "dest"]),
    ],
)
def test_unseen_codes_are_scored_and_flagged(
    client: FlaskClient, flight: dict[str, Any], change: dict[str, str], unseen: list[str]
) -> None:
    # Given well-formed codes the model never saw in training
    response = client.post("/v1/flights/predictions", json={**flight, **change})

    # Then the flight is scored as Spark would (handleInvalid='keep') and the codes flagged
    assert response.status_code == 200
    body = response.get_json()
    assert body["unseen"] == unseen
    assert 0.0 < body["delay_probability"] < 1.0
    if "origin" in change or "dest" in change:
        assert "distance" in body["defaulted"]  # an unknown route has no known distance


def test_unseen_codes_are_listed_by_the_model_endpoint(client: FlaskClient) -> None:
    categories = client.get("/v1/flights/model").get_json()["categories"]
    assert set(categories["origin"]) == {"EWR", "JFK", "LGA"}
    assert "UA" in categories["carrier"] and "ZZ" not in categories["carrier"]

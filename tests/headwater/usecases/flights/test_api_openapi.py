"""The flights request in the OpenAPI document: its own fields' limits, what the schema refuses
the API refuses, real holdout flights' answers conform (the document on any use case:
tests/api/test_openapi.py)."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

# The API tests' fixtures (tests/api/conftest.py), api_env autouse as there.
from tests.api.conftest import api_env, app, client, empty_client  # noqa: F401
from tests.api.test_openapi import conforms

# ruff: noqa: F811 (those fixtures are the tests' arguments)


@pytest.fixture
def document(client: FlaskClient) -> dict[str, Any]:
    return client.get("/openapi.json").get_json()


def test_the_flight_number_is_bounded_and_each_use_case_has_its_own_weather(
    document: dict[str, Any],
) -> None:
    schemas = document["components"]["schemas"]
    assert schemas["flights.Request"]["properties"]["flight"]["maximum"] == 9999
    assert {"flights.Weather", "bikeshare.Weather"} <= set(schemas)


@pytest.mark.parametrize(
    "instance",
    [
        {"carrier": "UAL"},
        {"flight": 0},
        {"origin": "E1R"},
        {"tailnum": "N1 4228"},
        {"weather": {"cloud_cover": 3}},
        {"extra": 1},
    ],
)
def test_what_the_schema_refuses_the_api_refuses(
    client: FlaskClient, document: dict[str, Any], flight: dict[str, Any], instance: Any
) -> None:
    body = {**flight, **instance}
    assert conforms(document, "flights.Request", body) != []
    assert client.post("/v1/flights/predictions", json=body).status_code == 400


def test_real_answers_match_the_documented_schemas(
    client: FlaskClient,
    empty_client: FlaskClient,
    document: dict[str, Any],
    spark_cases: list[dict[str, Any]],
    flight: dict[str, Any],
) -> None:
    requests = [c["request"] for c in spark_cases]
    for request in requests:
        assert conforms(document, "flights.Request", request) == []
    one = client.post("/v1/flights/predictions", json=flight).get_json()
    unseen = client.post("/v1/flights/predictions", json={**flight, "origin": "BOS"}).get_json()
    batch = client.post("/v1/flights/predictions", json={"instances": requests}).get_json()
    assert conforms(document, "flights.Prediction", one) == []
    assert conforms(document, "flights.Prediction", unseen) == []
    assert conforms(document, "flights.BatchResponse", batch) == []
    assert conforms(document, "ModelInfo", client.get("/v1/flights/model").get_json()) == []
    assert conforms(document, "Health", client.get("/health").get_json()) == []
    assert conforms(document, "Health", empty_client.get("/health").get_json()) == []

"""Every bad input gets a JSON error naming the problem: never HTML, never a 500.

On the test model's use case (tests/conftest.py's MODEL) and its documented example; a shipped
use case's own fields are checked in its folder (tests/headwater/usecases/).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.conftest import MODEL

URL, MODEL_URL = f"/v1/{MODEL}/predictions", f"/v1/{MODEL}/model"


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
        ('{"field": "value",}', "not valid JSON"),
        ("{'field': 'value'}", "not valid JSON"),
        ('{"field": NaN}', "NaN is not valid JSON"),
        ('{"field": Infinity}', "Infinity is not valid JSON"),
        ("", "empty"),
        ("   \n", "empty"),
    ],
)
def test_malformed_json(client: FlaskClient, data: str, says: str) -> None:
    error = error_of(client.post(URL, data=data, content_type="application/json"), 400)
    assert error["code"] == "malformed_json"
    assert says in error["message"]


def test_body_that_is_not_utf8(client: FlaskClient) -> None:
    response = client.post(URL, data=b'{"field": "\xff\xfe"}', content_type="application/json")
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
    client: FlaskClient, example: dict[str, Any], content_type: str | None
) -> None:
    kwargs = {"content_type": content_type} if content_type else {}
    error = error_of(client.post(URL, data=json.dumps(example), **kwargs), 415)
    assert error["code"] == "unsupported_media_type"
    assert "application/json" in error["message"]


def test_json_with_charset_is_accepted(client: FlaskClient, example: dict[str, Any]) -> None:
    response = client.post(
        URL, data=json.dumps(example), content_type="application/json; charset=utf-8"
    )
    assert response.status_code == 200


@pytest.mark.parametrize("body", [[], [{"field": "value"}], "value", 42, None, True])
def test_body_that_is_not_an_object(client: FlaskClient, body: Any) -> None:
    response = client.post(URL, data=json.dumps(body), content_type="application/json")
    error = error_of(response, 400)
    assert error["code"] == "invalid_request"
    assert error["problems"][0]["expected"].startswith("a JSON object")


def test_body_over_the_size_limit(app_for: Any, model_lake: str, example: dict[str, Any]) -> None:
    client = app_for(model_lake, MAX_BODY_BYTES=2048).test_client()
    error = error_of(client.post(URL, json={"instances": [example] * 20}), 413)
    assert "2048 bytes" in error["message"]


# -- batches -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"instances": []}, "instances", "empty"),
        ({"instances": {"field": "value"}}, "instances", "got an object"),
        ({"instances": "all"}, "instances", "got a string"),
        ({"instances": ["UA"]}, "instances[0]", "got a string"),
    ],
)
def test_malformed_batch(client: FlaskClient, body: Any, field: str, message: str) -> None:
    problem = fields_of(error_of(client.post(URL, json=body), 400))[field]
    assert message in problem["message"]


def test_batch_with_other_top_level_fields(client: FlaskClient, example: dict[str, Any]) -> None:
    error = error_of(client.post(URL, json={"instances": [example], "model": "v2"}), 400)
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
        ("delete", MODEL_URL, "GET"),
        ("post", MODEL_URL, "GET"),
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
    app_for: Any, model_lake: str, example: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a scoring bug (simulated)
    import api.blueprints.predictions as predictions

    def broken(model: Any, request: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(predictions, "score", broken)
    client = app_for(model_lake).test_client()

    error = error_of(client.post(URL, json=example), 500)
    assert error["code"] == "internal_error"
    assert "bug" not in error["message"]  # internals are logged, not shown

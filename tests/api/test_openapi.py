"""The OpenAPI document is valid and matches the real routes and responses.

Each use case the API's test stage serves is checked through its own request model and example;
the test model's use case (tests/conftest.py's MODEL) where one suffices. A shipped use case's
own fields and figures are checked in its folder (tests/headwater/usecases/).
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from tests.api.test_input_limits import USECASES
from tests.conftest import MODEL

METHODS = {"get", "post", "put", "patch", "delete"}
JSON = "application/json"
URL, MODEL_URL = f"/v1/{MODEL}/predictions", f"/v1/{MODEL}/model"


@pytest.fixture
def document(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def conforms(document: dict[str, Any], schema_name: str, instance: Any) -> list[str]:
    """Errors of ``instance`` against ``#/components/schemas/<schema_name>``."""
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": document["components"]}
    return [error.message for error in Draft202012Validator(schema).iter_errors(instance)]


def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_every_route_is_documented_and_every_documented_route_exists(
    app: Flask, document: dict[str, Any]
) -> None:
    usecases = list(app.extensions["headwater_api"].usecases)
    routes = {
        (rule.rule.replace("<usecase>", name), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods or ()
        if method.lower() in METHODS
        for name in (usecases if "<usecase>" in rule.rule else [""])
    }
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert routes == documented


def test_documented_batch_limit_is_the_configured_one(app_for: Any, model_lake: str) -> None:
    document = app_for(model_lake, MAX_BATCH=25).test_client().get("/openapi.json").get_json()
    batch = document["components"]["schemas"][f"{MODEL}.BatchRequest"]["properties"]["instances"]
    assert batch["maxItems"] == 25


@pytest.mark.parametrize("usecase", USECASES)
def test_request_schema_is_the_request_model_s(document: dict[str, Any], usecase: str) -> None:
    from headwater.core.usecase import get_usecase

    model = get_usecase(usecase).serving.request_model
    schema = document["components"]["schemas"][f"{usecase}.Request"]
    assert schema["required"] == [n for n, f in model.model_fields.items() if f.is_required()]
    for name, field in model.model_fields.items():
        assert schema["properties"][name]["description"] == field.description
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("usecase", USECASES)
def test_documented_examples_are_answered(
    client: FlaskClient, document: dict[str, Any], usecase: str
) -> None:
    body = document["paths"][f"/v1/{usecase}/predictions"]["post"]["requestBody"]["content"]
    examples = body["application/json"]["examples"]
    assert conforms(document, f"{usecase}.Request", examples["one"]["value"]) == []
    assert conforms(document, f"{usecase}.BatchRequest", examples["batch"]["value"]) == []
    for example in examples.values():
        assert client.post(f"/v1/{usecase}/predictions", json=example["value"]).status_code == 200


@pytest.mark.parametrize("usecase", USECASES)
def test_real_answers_match_the_documented_schemas(
    client: FlaskClient, empty_client: FlaskClient, document: dict[str, Any], usecase: str
) -> None:
    example = dict(
        client.application.extensions["headwater_api"].usecases[usecase].usecase.serving.example
    )
    url = f"/v1/{usecase}/predictions"
    one = client.post(url, json=example).get_json()
    batch = client.post(url, json={"instances": [example, example]}).get_json()
    assert conforms(document, f"{usecase}.Prediction", one) == []
    assert conforms(document, f"{usecase}.BatchResponse", batch) == []
    assert conforms(document, "ModelInfo", client.get(f"/v1/{usecase}/model").get_json()) == []
    assert conforms(document, "Health", client.get("/health").get_json()) == []
    assert conforms(document, "Health", empty_client.get("/health").get_json()) == []


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("post", URL, {"json": {}}, "400"),
        (
            "post",
            URL,
            {"data": "{", "content_type": "application/json"},
            "400",
        ),
        ("post", URL, {"data": "x"}, "415"),
        ("post", URL, {"json": {"instances": [{}] * 1001}}, "400"),
    ],
)
def test_errors_match_the_documented_schema(
    client: FlaskClient,
    document: dict[str, Any],
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: str,
) -> None:
    response = getattr(client, method)(path, **kwargs)
    assert str(response.status_code) == status
    assert status in document["paths"][path][method]["responses"]
    assert conforms(document, "Error", response.get_json()) == []


def test_503_is_documented_and_conforms(
    empty_client: FlaskClient, document: dict[str, Any], example: dict[str, Any]
) -> None:
    response = empty_client.post(URL, json=example)
    assert response.status_code == 503
    assert "503" in document["paths"][URL]["post"]["responses"]
    assert conforms(document, "Error", response.get_json()) == []


def test_docs_page(app: Flask, client: FlaskClient, document: dict[str, Any]) -> None:
    response = client.get("/docs")

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    for path in document["paths"]:
        assert path in page
    for served in app.extensions["headwater_api"].usecases.values():
        assert all(name in page for name in served.usecase.serving.request_model.model_fields)
    assert "<script" not in page  # self-contained: nothing fetched from elsewhere


# -- every answer's schema comes from one pydantic model ------------------------------------------
def test_a_model_name_two_use_cases_share_is_two_components_with_distinct_titles() -> None:
    from pydantic import BaseModel, create_model

    from api.openapi import component_schemas

    # Given two use cases whose request models each nest a model named Weather
    def request(kind: type) -> type[BaseModel]:
        weather = create_model("Weather", reading=(kind, ...))
        return create_model("Request", weather=(weather | None, None))

    # When their components are generated
    first = component_schemas({"Request": (request(float), "validation")}, "first")
    second = component_schemas({"Request": (request(str), "validation")}, "second_one")

    # Then each is named and titled by its use case, and the references follow the names
    assert first["first.Weather"]["title"] == "FirstWeather"
    assert second["second_one.Weather"]["title"] == "SecondOneWeather"
    weather = second["second_one.Request"]["properties"]["weather"]["anyOf"][0]
    assert weather == {"$ref": "#/components/schemas/second_one.Weather"}


def test_two_components_of_one_title_are_refused() -> None:
    from api.openapi import _check_titles

    with pytest.raises(ValueError, match="both titled 'ModelRef'"):
        _check_titles({"ModelRef": {"title": "ModelRef"}, "model.Ref": {"title": "ModelRef"}})


def test_the_document_s_titles_are_unique_and_shared_models_are_referenced(
    document: dict[str, Any],
) -> None:
    schemas = document["components"]["schemas"]
    titles = [schema["title"] for schema in schemas.values()]
    assert len(titles) == len(set(titles))
    assert {*(f"{u}.Request" for u in USECASES), "ModelRef"} <= set(schemas)
    assert not [name for name in schemas if name.endswith(".ModelRef")]
    model = schemas[f"{MODEL}.Prediction"]["properties"]["model"]
    assert model == {**model, "$ref": "#/components/schemas/ModelRef"}


def patterns(node: Any) -> list[dict[str, Any]]:
    """Every schema of the document that carries a ``pattern``."""
    if isinstance(node, list):
        return [found for item in node for found in patterns(item)]
    if not isinstance(node, dict):
        return []
    own = [node] if isinstance(node.get("pattern"), str) else []
    return own + [found for value in node.values() for found in patterns(value)]


def test_every_pattern_is_on_a_plain_string(document: dict[str, Any]) -> None:
    # A pattern beside a list of types (a nullable string) is what client generators refuse;
    # a nullable pattern must be anyOf [{string, pattern}, {null}].
    found = patterns(document["components"])
    assert found
    assert [schema for schema in found if schema.get("type") != "string"] == []


@pytest.mark.parametrize("usecase", USECASES)
def test_an_answer_is_its_use_case_s_prediction_model_key_for_key(
    app: Flask, client: FlaskClient, usecase: str
) -> None:
    from headwater.serving.predictor import prediction_model

    served = app.extensions["headwater_api"].usecases[usecase].usecase
    model = prediction_model(served)
    answer = client.post(f"/v1/{usecase}/predictions", json=dict(served.serving.example)).get_json()

    assert list(answer) == [field.alias for field in model.model_fields.values()]
    assert model.model_validate(answer).model_dump(by_alias=True) == answer


def test_health_model_info_and_errors_are_their_models(
    client: FlaskClient, empty_client: FlaskClient
) -> None:
    from api.blueprints.health import Health
    from api.errors import Error
    from headwater.serving.predictor import ModelInfo

    for health in (client.get("/health"), empty_client.get("/health")):
        assert Health.model_validate(health.get_json()).model_dump(mode="json") == health.get_json()
    info = client.get(MODEL_URL).get_json()
    assert ModelInfo.model_validate(info).model_dump(mode="json") == info
    refused = client.post(URL, json={}).get_json()
    assert Error.model_validate(refused).model_dump(exclude_none=True) == refused
    assert refused["error"]["problems"]

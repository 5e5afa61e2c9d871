"""api/lambda_handler.py: API Gateway events in, proxy responses out, as Zappa's handler did.

The app is the real one where the answer matters (health, predictions, a bad request) and a
small echo app where the translation does (query strings, headers, the stage prefix, binary
bodies). Recorded events: ``events/apigw_v1_health.json`` (a REST API request through the
stage's URL) and ``events/keep_warm.json`` (what Zappa's keep-warm rule sends).
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response, jsonify, request

import api
import api.lambda_handler as lambda_module
from api.lambda_handler import create_handler

EVENTS = Path(__file__).parent / "events"


def recorded(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


def rest_event(method: str, path: str, body: bytes | None = None) -> dict[str, Any]:
    """The recorded REST API (v1) event readdressed; a body as API Gateway sends it with
    binary media types ``*/*`` (Zappa's ``binary_support``): base64."""
    event = recorded("apigw_v1_health.json")
    event["httpMethod"] = event["requestContext"]["httpMethod"] = method
    event["path"] = path
    event["requestContext"]["path"] = f"/prod{path}"
    if body is not None:
        event["body"] = base64.b64encode(body).decode()
        event["isBase64Encoded"] = True
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        event["headers"].update(headers)
        event["multiValueHeaders"].update({k: [v] for k, v in headers.items()})
    return event


def zappa_settings(**environment: str) -> types.SimpleNamespace:
    """What Zappa writes into the package as ``zappa_settings.py`` (the keys the handler reads)."""
    return types.SimpleNamespace(
        ENVIRONMENT_VARIABLES=environment, LOG_LEVEL="INFO", BINARY_SUPPORT=True
    )


@pytest.fixture(autouse=True)
def process_restored() -> Iterator[None]:
    """The handler sets the stage's environment and configures logging (JSON on stderr), as on
    Lambda: both undone after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    environ = dict(os.environ)
    sys.modules.pop("api.wsgi", None)  # its app is built when imported: by the test's handler
    yield
    sys.modules.pop("api.wsgi", None)
    os.environ.clear()
    os.environ.update(environ)
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)


def echo_app() -> Flask:
    """What the app saw of a request, and a PNG for the binary answer."""
    app = Flask("echo")
    app.calls = []  # type: ignore[attr-defined]

    @app.route("/echo", methods=["GET", "POST"])
    def echo() -> Response:
        app.calls.append(request.path)  # type: ignore[attr-defined]
        return jsonify(
            args={k: request.args.getlist(k) for k in request.args},
            accept=request.headers.get("Accept"),
            forwarded=request.headers.get("X-Forwarded-For"),
            script_root=request.script_root,
            url=request.url,
            body=request.get_data(as_text=True),
        )

    @app.get("/logo.png")
    def logo() -> Response:
        return Response(b"\x89PNG\r\n\x1a\n\x00\xff", mimetype="image/png")

    return app


def test_the_api_answers_rest_events_with_the_stage_environment_zappa_wrote(
    model_lake: str, model_usecase: str, example: dict[str, Any]
) -> None:
    # Given the handler of the real app, the stage's environment given as Zappa writes it
    handler = create_handler(zappa_settings(HEADWATER_STAGE="test", HEADWATER_LAKE__URI=model_lake))
    url = f"/v1/{model_usecase}/predictions"

    # When API Gateway sends GET /health, a prediction and an empty body (base64, as sent)
    health = handler(recorded("apigw_v1_health.json"), None)
    answer = handler(rest_event("POST", url, json.dumps(example).encode()), None)
    bad = handler(rest_event("POST", url, b"{}"), None)

    # Then the app loaded the model from the lake the environment names and answered
    assert health["statusCode"] == 200 and health["isBase64Encoded"] is False
    assert json.loads(health["body"])["models"][model_usecase]["loaded"] is True
    assert answer["statusCode"] == 200
    assert answer["multiValueHeaders"]["Content-Type"] == ["application/json"]
    assert "model" in json.loads(answer["body"])
    assert bad["statusCode"] == 400
    assert json.loads(bad["body"])["error"]["code"] == "invalid_request"


def test_query_strings_headers_and_the_stage_prefix_reach_the_app_as_sent() -> None:
    handler = create_handler(zappa_settings(), echo_app())
    event = rest_event("GET", "/echo")
    event["multiValueQueryStringParameters"] = {"x": ["1", "2"], "y": ["a b"]}
    event["queryStringParameters"] = {"x": "2", "y": "a b"}

    # When a request comes through the stage's own URL (/prod/echo)
    seen = json.loads(handler(event, None)["body"])

    # Then repeated parameters and headers arrive whole, and the app's URLs keep /prod
    assert seen["args"] == {"x": ["1", "2"], "y": ["a b"]}
    assert seen["accept"] == "application/json"
    assert seen["forwarded"] == "203.0.113.10, 130.176.1.2"
    assert seen["script_root"] == "/prod"
    assert (
        seen["url"]
        == "https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/prod/echo?x=1&x=2&y=a+b"
    )

    # and through a custom domain (no stage in the request's path), they have none
    event["requestContext"]["path"] = "/echo"
    assert json.loads(handler(event, None)["body"])["script_root"] == ""


def test_bodies_are_decoded_and_binary_answers_encoded() -> None:
    handler = create_handler(zappa_settings(), echo_app())

    sent = handler(rest_event("POST", "/echo", "été".encode()), None)
    logo = handler(rest_event("GET", "/logo.png"), None)

    assert json.loads(sent["body"])["body"] == "été"
    assert logo["isBase64Encoded"] is True
    assert base64.b64decode(logo["body"]) == b"\x89PNG\r\n\x1a\n\x00\xff"


def test_an_http_api_v2_event_is_a_request_too() -> None:
    handler = create_handler(zappa_settings(), echo_app())
    event = {
        "version": "2.0",
        "rawPath": "/echo",
        "rawQueryString": "x=1&x=2",
        "headers": {"accept": "application/json", "host": "api.example.com"},
        "requestContext": {
            "http": {"method": "GET", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.10"},
            "stage": "$default",
        },
        "isBase64Encoded": False,
    }

    answer = handler(event, None)

    assert answer["statusCode"] == 200
    assert json.loads(answer["body"])["args"] == {"x": ["1", "2"]}


def test_each_request_leaves_one_access_line(capsys: pytest.CaptureFixture[str]) -> None:
    # Zappa's handler logged one line per request (common log format); API Gateway's own access
    # log is off in the stack: without this line, CloudWatch would show no request at all
    handler = create_handler(zappa_settings(), echo_app())
    context = types.SimpleNamespace(aws_request_id="c6af9ac6-7b61-11e6-9a41-93e812345678")
    capsys.readouterr()

    handler(rest_event("GET", "/echo"), context)
    handler(rest_event("GET", "/nowhere"), context)

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    access = [line for line in lines if line.get("event") == "request"]
    assert [(a["method"], a["path"], a["status"]) for a in access] == [
        ("GET", "/echo", 200),
        ("GET", "/nowhere", 404),
    ]
    assert all(a["aws_request_id"] == context.aws_request_id for a in access)
    assert all(0 < a["ms"] < 10_000 for a in access)


def test_the_keep_warm_ping_is_not_a_request_and_other_events_go_to_zappa(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = echo_app()
    handler = create_handler(zappa_settings(), app)
    handed: list[dict[str, Any]] = []
    monkeypatch.setattr(lambda_module, "zappa_handler", lambda event, context: handed.append(event))

    # Zappa's keep-warm rule: answered by nobody, the app untouched
    assert handler(recorded("keep_warm.json"), None) is None
    # `zappa invoke prod module.function`, another schedule: Zappa's handler runs them
    invoke = {"command": "headwater.core.config.load_settings"}
    schedule = copy.deepcopy(recorded("keep_warm.json"))
    schedule["resources"] = ["arn:aws:events:us-east-1:123456789012:rule/nightly-jobs.run"]
    handler(invoke, None)
    handler(schedule, None)

    assert app.calls == []  # type: ignore[attr-defined]
    assert handed == [invoke, schedule]


def test_the_package_handler_is_built_once_from_zappas_settings_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the settings module Zappa writes into the package, and the app it names
    settings = types.ModuleType("zappa_settings")
    vars(settings).update(vars(zappa_settings(HEADWATER_PROBE="from zappa_settings")))
    monkeypatch.setitem(sys.modules, "zappa_settings", settings)
    monkeypatch.delenv("HEADWATER_PROBE", raising=False)
    built: list[str | None] = []

    def create_app() -> Flask:
        built.append(os.environ.get("HEADWATER_PROBE"))
        return echo_app()

    monkeypatch.setattr(api, "create_app", create_app)  # what api.wsgi calls
    lambda_module.package_handler.cache_clear()
    try:
        # When two requests arrive
        first = lambda_module.lambda_handler(rest_event("GET", "/echo"), None)
        second = lambda_module.lambda_handler(rest_event("GET", "/echo"), None)
    finally:
        lambda_module.package_handler.cache_clear()

    # Then the app was built once, after the stage's environment was set
    assert first["statusCode"] == second["statusCode"] == 200
    assert built == ["from zappa_settings"]

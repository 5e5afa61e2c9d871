"""The API logs through headwater.core.logs: every line's fields reach the JSON log by name."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.api.test_input_limits import BrokenStream

API = Path(__file__).resolve().parents[2] / "api"

JsonLog = Callable[[], list[dict[str, Any]]]


def lines_of(json_log: JsonLog, event: str) -> list[dict[str, Any]]:
    return [line for line in json_log() if line.get("event") == event]


@pytest.mark.parametrize("path", sorted(API.rglob("*.py")), ids=lambda p: p.name)
def test_no_api_module_logs_through_the_standard_library(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}

    assert "logging" not in imported


def test_the_start_names_stage_use_case_and_version(
    app_for: Any, model_lake: str, model_usecase: str, base_version: str, json_log: JsonLog
) -> None:
    app_for(model_lake)

    started = {line["usecase"]: line for line in lines_of(json_log, "headwater api started")}
    line = started[model_usecase]
    assert line["stage"] == "test" and line["version"] == base_version
    assert line["logger"] == "api" and line["level"] == "info"


def test_a_failed_model_check_names_the_model_what_is_served_and_why(
    app_for: Any,
    model_lake: str,
    publish: Any,
    model_usecase: str,
    base_version: str,
    json_log: JsonLog,
) -> None:
    # Given a broken version promoted over the working one
    broken = publish(model_lake, "20261203T000000Z-broken", skip=("lookups.json",))

    # When a worker starts
    app_for(model_lake)

    # Then the JSON log says which model failed, why, and what is served instead
    (failed,) = lines_of(json_log, "model check failed")
    assert failed["model"] == model_usecase and failed["serving"] == base_version
    assert broken in failed["error"] and failed["level"] == "error"
    assert failed["logger"] == "api.model"


def test_an_unreadable_body_logs_its_reason(
    app: Any, predictions_url: str, json_log: JsonLog
) -> None:
    app.test_client().post(
        predictions_url,
        input_stream=BrokenStream(OSError("connection reset")),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )

    (line,) = lines_of(json_log, "unreadable request body")
    assert line["reason"] == "connection reset"


def test_a_crash_logs_the_request_and_the_traceback(
    app_for: Any,
    model_lake: str,
    example: dict[str, Any],
    predictions_url: str,
    json_log: JsonLog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import api.blueprints.predictions as predictions

    def broken(model: Any, request: Any) -> Any:
        raise RuntimeError("scoring bug")

    monkeypatch.setattr(predictions, "score", broken)
    app_for(model_lake).test_client().post(predictions_url, json=example)

    (line,) = lines_of(json_log, "unhandled error")
    assert line["method"] == "POST" and line["path"] == predictions_url
    assert "RuntimeError: scoring bug" in line["exception"]

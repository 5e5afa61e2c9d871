"""GET /v1/<usecase>/model and GET /health, with and without a promoted model (the test model:
its use case ``model_usecase``, tests/api/conftest.py)."""

from __future__ import annotations

import json
from typing import Any

from flask.testing import FlaskClient


def test_model_describes_the_serving_version(
    client: FlaskClient, model_documents: dict[str, Any], model_usecase: str, base_version: str
) -> None:
    body = client.get(f"/v1/{model_usecase}/model").get_json()

    metadata = model_documents["export.json"]["metadata"]
    metrics = model_documents["metrics.json"]
    assert body["name"] == model_usecase
    assert body["version"] == base_version
    assert body["trained_at"] == metadata["trained_at"]
    assert body["promoted_at"]  # from PRODUCTION.json
    assert body["threshold"] == metadata["threshold"]
    assert body["features"] == metadata["features"]
    assert body["metrics"]["holdout"] == metrics["holdout"]
    assert body["metrics"]["regression"] == metrics["regression"]
    assert body["metrics"]["holdout_from"] == metrics["holdout_from"]
    assert body["metrics"]["baselines"]["base_rate"]["auc_roc"] == 0.5


def test_non_finite_metrics_become_null(
    app_for: Any, lake_uri: str, publish: Any, model_documents: dict[str, Any], model_usecase: str
) -> None:
    # Given a version whose metrics.json holds a NaN (Spark can produce one, e.g. R² of nothing)
    metrics = {
        **model_documents["metrics.json"],
        "regression": {"rmse": float("nan"), "r2": float("-inf")},
    }
    publish(lake_uri, replace={"metrics.json": json.dumps(metrics).encode()})

    response = app_for(lake_uri).test_client().get(f"/v1/{model_usecase}/model")

    # Then the answer is still valid JSON, with nulls
    text = response.get_data(as_text=True)
    assert "NaN" not in text and "Infinity" not in text
    assert response.get_json()["metrics"]["regression"] == {"rmse": None, "r2": None}


def test_health_with_a_model(client: FlaskClient, model_usecase: str, base_version: str) -> None:
    response = client.get("/health")

    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["stage"] == "test"
    entry = body["models"][model_usecase]
    assert entry["loaded"] is True
    assert entry["model"] == {"name": model_usecase, "version": base_version}
    assert entry["error"] is None


def test_before_any_promotion(
    empty_client: FlaskClient, model_usecase: str, example: dict[str, Any], predictions_url: str
) -> None:
    # Given a lake where nothing was promoted yet
    health = empty_client.get("/health")
    prediction = empty_client.post(predictions_url, json=example)
    model = empty_client.get(f"/v1/{model_usecase}/model")

    # Then the process is alive and says it has no model
    assert health.status_code == 200
    entry = health.get_json()["models"][model_usecase]
    assert entry["loaded"] is False
    assert entry["model"] is None
    assert f"{predictions_url} answers 503" in entry["message"]
    # And predictions are a clear 503, not a crash
    assert prediction.status_code == 503
    error = prediction.get_json()["error"]
    assert error["code"] == "no_model"
    assert f"no {model_usecase} model has been promoted to production yet" in error["message"]
    assert prediction.headers["Retry-After"] == "30"
    assert model.status_code == 503


def test_validation_comes_before_the_model(empty_client: FlaskClient, predictions_url: str) -> None:
    # A client's mistake (here: no field at all) is its own 4xx even when no model is there
    assert empty_client.post(predictions_url, json={}).status_code == 400


def test_incomplete_version_is_not_served(
    app_for: Any,
    lake_uri: str,
    publish: Any,
    model_usecase: str,
    example: dict[str, Any],
    predictions_url: str,
) -> None:
    # Given a pointer naming a version whose _SUCCESS is missing (hand-edited, or deleted)
    version = publish(lake_uri)
    (_, _, path) = lake_uri.partition("file://")
    from pathlib import Path

    (Path(path) / "models" / model_usecase / version / "_SUCCESS").unlink()

    client = app_for(lake_uri).test_client()

    # Then nothing is served, and /health and the 503 say why
    health = client.get("/health").get_json()["models"][model_usecase]
    assert health["loaded"] is False
    assert "incomplete" in health["error"]
    error = client.post(predictions_url, json=example).get_json()["error"]
    assert "incomplete" in error["message"]

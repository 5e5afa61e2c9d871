"""GET /v1/<usecase>/model and GET /health, with and without a promoted model."""

from __future__ import annotations

import json
from typing import Any

from flask.testing import FlaskClient


def test_model_describes_the_serving_version(
    client: FlaskClient, model_documents: dict[str, Any], base_version: str
) -> None:
    body = client.get("/v1/flights/model").get_json()

    metadata = model_documents["export.json"]["metadata"]
    metrics = model_documents["metrics.json"]
    assert body["name"] == "flights"
    assert body["version"] == base_version
    assert body["trained_at"] == metadata["trained_at"]
    assert body["promoted_at"]  # from PRODUCTION.json
    assert body["threshold"] == metadata["threshold"]
    assert body["features"] == metadata["features"]
    assert body["metrics"]["holdout"] == metrics["holdout"]
    assert body["metrics"]["regression"] == metrics["regression"]
    assert body["metrics"]["holdout_from"] == metrics["holdout_from"]
    assert body["metrics"]["baselines"]["base_rate"]["auc_roc"] == 0.5


def test_model_lineage_is_summarised(client: FlaskClient, model_documents: dict[str, Any]) -> None:
    lineage = client.get("/v1/flights/model").get_json()["lineage"]
    full = model_documents["lineage.json"]
    assert lineage["run_id"] == full["run_id"]
    assert lineage["code_version"] == full["code_version"]
    assert lineage["date_range"] == full["date_range"]
    assert lineage["spark_version"] == full["spark_version"]
    assert lineage["input_partitions"] == len(full["inputs"]) == 13
    assert lineage["input_datasets"] == ["clean/flights", "raw/planes"]


def test_non_finite_metrics_become_null(
    app_for: Any, lake_uri: str, publish: Any, model_documents: dict[str, Any]
) -> None:
    # Given a version whose metrics.json holds a NaN (Spark can produce one, e.g. R² of nothing)
    metrics = {
        **model_documents["metrics.json"],
        "regression": {"rmse": float("nan"), "r2": float("-inf")},
    }
    publish(lake_uri, replace={"metrics.json": json.dumps(metrics).encode()})

    response = app_for(lake_uri).test_client().get("/v1/flights/model")

    # Then the answer is still valid JSON, with nulls
    text = response.get_data(as_text=True)
    assert "NaN" not in text and "Infinity" not in text
    assert response.get_json()["metrics"]["regression"] == {"rmse": None, "r2": None}


def test_health_with_a_model(client: FlaskClient, base_version: str) -> None:
    response = client.get("/health")

    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["stage"] == "test"
    flights = body["models"]["flights"]
    assert flights["loaded"] is True
    assert flights["model"] == {"name": "flights", "version": base_version}
    assert flights["error"] is None


def test_before_any_promotion(empty_client: FlaskClient, flight: dict[str, Any]) -> None:
    # Given a lake where nothing was promoted yet
    health = empty_client.get("/health")
    prediction = empty_client.post("/v1/flights/predictions", json=flight)
    model = empty_client.get("/v1/flights/model")

    # Then the process is alive and says it has no model
    assert health.status_code == 200
    entry = health.get_json()["models"]["flights"]
    assert entry["loaded"] is False
    assert entry["model"] is None
    assert "/v1/flights/predictions answers 503" in entry["message"]
    # And predictions are a clear 503, not a crash
    assert prediction.status_code == 503
    error = prediction.get_json()["error"]
    assert error["code"] == "no_model"
    assert "no flights model has been promoted to production yet" in error["message"]
    assert prediction.headers["Retry-After"] == "30"
    assert model.status_code == 503


def test_validation_comes_before_the_model(empty_client: FlaskClient) -> None:
    # A client's mistake is its own 4xx even when no model is there to answer
    assert empty_client.post("/v1/flights/predictions", json={"carrier": "UA"}).status_code == 400


def test_incomplete_version_is_not_served(
    app_for: Any, lake_uri: str, publish: Any, flight: dict[str, Any]
) -> None:
    # Given a pointer naming a version whose _SUCCESS is missing (hand-edited, or deleted)
    version = publish(lake_uri)
    (_, _, path) = lake_uri.partition("file://")
    from pathlib import Path

    (Path(path) / "models" / "flights" / version / "_SUCCESS").unlink()

    client = app_for(lake_uri).test_client()

    # Then nothing is served, and /health and the 503 say why
    health = client.get("/health").get_json()["models"]["flights"]
    assert health["loaded"] is False
    assert "incomplete" in health["error"]
    error = client.post("/v1/flights/predictions", json=flight).get_json()["error"]
    assert "incomplete" in error["message"]

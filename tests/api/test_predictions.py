"""POST /v1/<usecase>/predictions: the batch limits, on the test model's use case and example
(a shipped use case's own answers, defaults and codes: its folder, tests/headwater/usecases/)."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient


def test_batch_limit_is_configured(
    app_for: Any, model_lake: str, example: dict[str, Any], predictions_url: str
) -> None:
    client = app_for(model_lake, MAX_BATCH=3).test_client()

    at_limit = client.post(predictions_url, json={"instances": [example] * 3})
    over = client.post(predictions_url, json={"instances": [example] * 4})

    assert at_limit.status_code == 200
    assert over.status_code == 400  # a schema violation (maxItems), not a body too large
    error = over.get_json()["error"]
    assert error["code"] == "batch_too_large"
    assert "4 instances" in error["message"] and "at most 3" in error["message"]


def test_default_batch_limit_is_1000(
    client: FlaskClient, example: dict[str, Any], predictions_url: str
) -> None:
    ok = client.post(predictions_url, json={"instances": [example] * 1000})
    over = client.post(predictions_url, json={"instances": [example] * 1001})

    assert ok.status_code == 200 and len(ok.get_json()["predictions"]) == 1000
    assert over.status_code == 400
    assert over.get_json()["error"]["code"] == "batch_too_large"

"""GET /v1/flights/model on the flights test model: its lineage's own figures."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

# The API tests' fixtures (tests/api/conftest.py), api_env autouse as there.
from tests.api.conftest import api_env, app, client  # noqa: F401

# ruff: noqa: F811 (those fixtures are the tests' arguments)


def test_model_lineage_is_summarised(client: FlaskClient, model_documents: dict[str, Any]) -> None:
    lineage = client.get("/v1/flights/model").get_json()["lineage"]
    full = model_documents["lineage.json"]
    assert lineage["run_id"] == full["run_id"]
    assert lineage["code_version"] == full["code_version"]
    assert lineage["date_range"] == full["date_range"]
    assert lineage["spark_version"] == full["spark_version"]
    assert lineage["input_partitions"] == len(full["inputs"]) == 13
    assert lineage["input_datasets"] == ["clean/flights", "raw/planes"]

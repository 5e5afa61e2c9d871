"""The API over the lake it is given: S3 through the store, errors reported, a light import."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

REGION = "us-east-1"


def test_api_serves_from_s3(
    moto_endpoint: str,
    s3_lake_uri: str,
    publish: Any,
    app_for: Any,
    flight: dict[str, Any],
    base_version: str,
) -> None:
    publish(s3_lake_uri, region=REGION, endpoint_url=moto_endpoint)

    client = app_for(s3_lake_uri, AWS_ENDPOINT_URL=moto_endpoint, AWS_REGION=REGION).test_client()

    body = client.post("/v1/flights/predictions", json=flight).get_json()
    assert body["model"]["version"] == base_version


def test_s3_errors_are_reported_not_raised(
    moto_endpoint: str, aws_env: None, app_for: Any, flight: dict[str, Any]
) -> None:
    # Given a lake on a bucket that does not exist
    client = app_for("s3://no-such-bucket/lake", AWS_ENDPOINT_URL=moto_endpoint).test_client()

    health = client.get("/health").get_json()["models"]["flights"]
    assert health["loaded"] is False
    assert "NoSuchBucket" in health["error"]
    assert client.post("/v1/flights/predictions", json=flight).status_code == 503


def test_the_api_imports_neither_pyarrow_nor_pandas_nor_spark(model_lake: str) -> None:
    # The Lambda package has none of them: building the app and predicting must not need them.
    script = f"""
import json, sys
from api import create_app
client = create_app({{"STAGE": "test", "LAKE_URI": {model_lake!r}}}).test_client()
flight = json.loads(sys.argv[1])
assert client.post("/v1/flights/predictions", json=flight).status_code == 200
assert client.get("/v1/flights/model").status_code == 200
assert client.get("/openapi.json").status_code == 200
heavy = sorted(m for m in ("pyarrow", "pandas", "numpy", "pyspark", "boto3", "sqlalchemy")
               if m in sys.modules)
print(json.dumps(heavy))
"""
    flight = {
        "carrier": "UA",
        "flight": 1,
        "origin": "EWR",
        "dest": "IAH",
        "scheduled_departure": "2013-11-04T17:15",
    }
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(flight)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []

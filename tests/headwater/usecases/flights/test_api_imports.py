"""The flights use case served without pyarrow, pandas or Spark: the Lambda package has none."""

from __future__ import annotations

import json
import subprocess
import sys

# The API tests' stage (tests/api/conftest.py), api_env autouse as there.
from tests.api.conftest import api_env  # noqa: F401


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

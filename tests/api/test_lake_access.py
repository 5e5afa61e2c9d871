"""The API over the lake it is given: S3 through the store, errors reported.

Each use case the test stage serves is addressed by its name and its documented example, read
from the app (a shipped use case's own import footprint is in its folder).
"""

from __future__ import annotations

from typing import Any

REGION = "us-east-1"


def examples(app: Any) -> dict[str, dict[str, Any]]:
    """Each served use case's documented example request, by name."""
    served = app.extensions["headwater_api"].usecases
    return {name: dict(s.usecase.serving.example) for name, s in served.items()}


def test_api_serves_from_s3(
    moto_endpoint: str, s3_lake_uri: str, publish: Any, app_for: Any
) -> None:
    # Given the test model published and promoted on a bucket
    version = publish(s3_lake_uri, region=REGION, endpoint_url=moto_endpoint)
    app = app_for(s3_lake_uri, AWS_ENDPOINT_URL=moto_endpoint, AWS_REGION=REGION)
    client = app.test_client()

    # When each served use case is asked its example
    answers = {
        name: client.post(f"/v1/{name}/predictions", json=example)
        for name, example in examples(app).items()
    }

    # Then the one with a model answers with that version (from S3), the others have none
    ok = [r.get_json()["model"]["version"] for r in answers.values() if r.status_code == 200]
    assert ok == [version]
    assert all(r.status_code in (200, 503) for r in answers.values())


def test_s3_errors_are_reported_not_raised(moto_endpoint: str, aws_env: None, app_for: Any) -> None:
    # Given a lake on a bucket that does not exist
    app = app_for("s3://no-such-bucket/lake", AWS_ENDPOINT_URL=moto_endpoint)
    client = app.test_client()

    health = client.get("/health").get_json()["models"]
    for name, example in examples(app).items():
        assert health[name]["loaded"] is False
        assert "NoSuchBucket" in health[name]["error"]
        assert client.post(f"/v1/{name}/predictions", json=example).status_code == 503

"""Fixtures for the AWS adapter's tests: moto in-process and as a server, Lambda and SNS helpers."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from moto import mock_aws
from moto.core.config import default_user_config
from moto.server import ThreadedMotoServer

from headwater import aws

REGION = "us-east-1"
MOTO_API = "http://motoapi.amazonaws.com"
SIMPLE_LAMBDA = {"lambda": {"use_docker": False}}


@pytest.fixture
def mocked_aws(aws_env: None) -> Iterator[None]:
    """Run the test inside moto's in-process mock."""
    with mock_aws():
        yield


@pytest.fixture
def simple_lambda(aws_env: None) -> Iterator[None]:
    """Run the test inside moto with Lambda in its Docker-free 'simple' mode."""
    with mock_aws(config=SIMPLE_LAMBDA):
        yield


@pytest.fixture
def moto_server(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Start a moto server on loopback and point Headwater at it through the endpoint variable."""
    # The server writes Lambda mode into moto's process-wide config; restore it afterwards.
    monkeypatch.setitem(default_user_config, "lambda", default_user_config["lambda"])
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    monkeypatch.setenv(aws.ENDPOINT_URL_ENV, endpoint)
    try:
        yield endpoint
    finally:
        requests.post(f"{endpoint}/moto-api/reset", timeout=10)
        server.stop()


def queue_lambda_results(results: list[Any], region: str = REGION, base: str = MOTO_API) -> None:
    """Queue what moto's simple Lambda returns next, one invocation per item."""
    payloads = [r if isinstance(r, str) else json.dumps(r) for r in results]
    response = requests.post(
        f"{base}/moto-api/static/lambda-simple/response",
        json={"results": payloads, "region": region},
        timeout=10,
    )
    assert response.status_code == 201


def create_function(name: str, region: str | None = None) -> str:
    """Create a Lambda function (and the IAM role it needs) in moto; return its ARN."""
    role = aws.client("iam", region).create_role(
        RoleName=f"{name}-role",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return event\n")
    created = aws.client("lambda", region).create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=role,
        Handler="handler.handler",
        Code={"ZipFile": code.getvalue()},
    )
    return created["FunctionArn"]


@pytest.fixture
def make_function() -> Callable[..., str]:
    """Create a function in moto: make_function(name, region=None) -> ARN."""
    return create_function


@pytest.fixture
def queue_results() -> Callable[..., None]:
    """Queue moto's simple Lambda answers: queue_results(results, region=..., base=...)."""
    return queue_lambda_results


class SnsInbox:
    """An SQS queue subscribed to a topic: reads back what the topic delivered."""

    def __init__(self, topic_arn: str, region: str = REGION) -> None:
        self.region = region
        sqs = aws.client("sqs", region)
        self.queue_url = sqs.create_queue(QueueName="headwater-alerts")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        aws.client("sns", region).subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)

    def receive_one(self) -> dict[str, Any]:
        """Read the single SNS envelope delivered to the queue."""
        messages = aws.client("sqs", self.region).receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        )["Messages"]
        assert len(messages) == 1
        return json.loads(messages[0]["Body"])


@pytest.fixture
def sns_inbox() -> Callable[..., SnsInbox]:
    """Subscribe a queue to a topic: sns_inbox(topic_arn, region=REGION).receive_one()."""
    return SnsInbox

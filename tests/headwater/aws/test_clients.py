"""Tests for headwater.aws.clients: caching, region and endpoint precedence, lazy creation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from headwater import aws

REPO_ROOT = Path(__file__).resolve().parents[3]
REGION = "us-east-1"
FUNCTION = "headwater-clean"
SIMPLE_LAMBDA = {"lambda": {"use_docker": False}}


def test_client_is_cached_per_service_region_and_endpoint(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = aws.client("sns")
    assert aws.client("sns") is first
    assert aws.client("sns", REGION) is first

    other_region = aws.client("sns", "eu-west-1")
    assert other_region is not first
    assert other_region.meta.region_name == "eu-west-1"
    assert aws.client("sqs") is not first

    monkeypatch.setenv(aws.ENDPOINT_URL_ENV, "http://127.0.0.1:5999")
    local = aws.client("sns")
    assert local is not first
    assert local.meta.endpoint_url == "http://127.0.0.1:5999"
    assert aws.client("sns", endpoint_url="http://127.0.0.1:6000") is not local

    aws.reset_clients()
    monkeypatch.delenv(aws.ENDPOINT_URL_ENV)
    assert aws.client("sns") is not first


@pytest.mark.parametrize(
    ("argument", "aws_region", "aws_default_region", "expected"),
    [
        ("ap-south-1", "eu-west-1", "us-west-2", "ap-south-1"),
        (None, "eu-west-1", "us-west-2", "eu-west-1"),
        (None, None, "us-west-2", "us-west-2"),
        (None, None, None, "us-east-1"),
    ],
)
def test_client_region_precedence(
    aws_env: None,
    monkeypatch: pytest.MonkeyPatch,
    argument: str | None,
    aws_region: str | None,
    aws_default_region: str | None,
    expected: str,
) -> None:
    for name, value in [("AWS_REGION", aws_region), ("AWS_DEFAULT_REGION", aws_default_region)]:
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)

    assert aws.client("ssm", argument).meta.region_name == expected


def test_client_config_has_timeouts_and_standard_retries(aws_env: None) -> None:
    sns_config = aws.client("sns").meta.config
    lambda_config = aws.client("lambda").meta.config

    assert sns_config.connect_timeout == aws.CONNECT_TIMEOUT_SECONDS
    assert sns_config.read_timeout == aws.READ_TIMEOUT_SECONDS
    assert sns_config.retries == {"mode": "standard", "total_max_attempts": 5}
    # A synchronous invoke may run for Lambda's full 15 minutes; the executor does the retrying.
    assert lambda_config.read_timeout > 15 * 60
    assert lambda_config.retries["mode"] == "standard"
    assert lambda_config.retries["total_max_attempts"] == 1


def test_import_creates_no_client_and_needs_no_credentials_or_network(tmp_path: Path) -> None:
    script = """
import socket

def refuse(*args, **kwargs):
    raise OSError("network is disabled in this test")

socket.socket.connect = refuse
socket.create_connection = refuse

import boto3
import boto3.session

def no_client(*args, **kwargs):
    raise AssertionError("a boto3 client was created at import")

boto3.client = no_client
boto3.session.Session.client = no_client

import headwater.aws as aws

aws.LambdaExecutor()
aws.SnsNotifier("arn:aws:sns:eu-west-1:123456789012:headwater")
aws.EmrRunner()
assert aws.clients._clients == {}, aws.clients._clients
print("imported")
"""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AWS_") and key != aws.ENDPOINT_URL_ENV
    }
    env.update(
        PYTHONPATH=str(REPO_ROOT),
        HOME=str(tmp_path),
        AWS_CONFIG_FILE=str(tmp_path / "no-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
    )

    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "imported"


def test_a_service_module_gets_its_client_through_clients_client(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given one replacement for the client factory
    made: list[tuple[str, str | None]] = []

    def fake_client(
        service: str, region: str | None = None, endpoint_url: str | None = None
    ) -> Any:
        made.append((service, region))
        return (service, region)

    monkeypatch.setattr(aws.clients, "client", fake_client)

    # When each service object asks for its client
    runner = aws.EmrRunner(region="us-west-2")
    got = [
        aws.LambdaExecutor(region="eu-west-1").client,
        aws.SnsNotifier("arn:aws:sns:ap-south-1:123456789012:t").client,
        runner.client,
        runner.s3,
    ]

    # Then every one came from that factory, in the region it was given
    expected = [
        ("lambda", "eu-west-1"),
        ("sns", "ap-south-1"),
        ("emr", "us-west-2"),
        ("s3", "us-west-2"),
    ]
    assert made == expected
    assert got == expected


# --- the same code against a moto server, through HEADWATER_AWS_ENDPOINT_URL -------------------


def test_every_service_follows_the_endpoint_variable_to_a_moto_server(
    moto_server: str,
    make_function: Callable[..., str],
    queue_results: Callable[..., None],
    sns_inbox: Callable[..., Any],
) -> None:
    # Lambda's Docker-free mode is switched on through moto's HTTP config API, as for a real server.
    config = requests.post(f"{moto_server}/moto-api/config", json=SIMPLE_LAMBDA, timeout=10)
    assert config.json()["lambda"] == {"use_docker": False}
    make_function(FUNCTION)
    queue_results([{"status": "published"}], base=moto_server)
    aws.client("ssm").put_parameter(Name="/hw/token", Value="tok", Type="SecureString")
    topic_arn = aws.client("sns").create_topic(Name="headwater-alerts")["TopicArn"]
    inbox = sns_inbox(topic_arn)

    result = aws.LambdaExecutor().invoke(FUNCTION, {"partition": "2013-01-01"})
    token = aws.resolve_secret("ssm:/hw/token")
    message_id = aws.SnsNotifier(topic_arn).send("Run finished", json.dumps(result))

    assert aws.client("lambda").meta.endpoint_url == moto_server
    assert result == {"status": "published"}
    assert token == "tok"
    envelope = inbox.receive_one()
    assert (envelope["MessageId"], envelope["Subject"]) == (message_id, "Run finished")
    assert json.loads(envelope["Message"]) == {"status": "published"}

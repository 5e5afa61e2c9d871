"""Tests for headwater.aws against moto (in-process and server mode) and botocore stubs."""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError
from botocore.response import StreamingBody
from botocore.stub import Stubber
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.config import default_user_config
from moto.server import ThreadedMotoServer
from moto.sns.models import sns_backends

from headwater import aws

REPO_ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
FUNCTION = "headwater-clean"
MOTO_API = "http://motoapi.amazonaws.com"
SIMPLE_LAMBDA = {"lambda": {"use_docker": False}}


# --- fixtures and helpers ----------------------------------------------------------------------


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


def create_function(name: str = FUNCTION, region: str | None = None) -> str:
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


def invoke_response(payload: bytes, function_error: str | None = None) -> dict[str, Any]:
    """Build a stubbed Lambda Invoke response."""
    response: dict[str, Any] = {
        "StatusCode": 200,
        "ExecutedVersion": "$LATEST",
        "Payload": StreamingBody(io.BytesIO(payload), len(payload)),
    }
    if function_error:
        response["FunctionError"] = function_error
    return response


def invoke_params(event: dict[str, Any], name: str = FUNCTION) -> dict[str, Any]:
    """Build the Invoke parameters LambdaExecutor is expected to send for event."""
    return {
        "FunctionName": name,
        "InvocationType": "RequestResponse",
        "Payload": json.dumps(event, separators=(",", ":")).encode(),
    }


@pytest.fixture
def stubbed_lambda(aws_env: None) -> Iterator[tuple[Any, Stubber]]:
    """A Lambda client whose responses come from a botocore Stubber (no HTTP at all)."""
    lambda_client = aws.client("lambda")
    with Stubber(lambda_client) as stubber:
        yield lambda_client, stubber
        stubber.assert_no_pending_responses()


class SleepRecorder:
    """Stands in for time.sleep and records the requested delays."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


# --- clients -----------------------------------------------------------------------------------


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
assert aws._clients == {}, aws._clients
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


# --- Lambda with moto's simple (Docker-free) mode ----------------------------------------------


def test_invoke_returns_the_functions_decoded_result(simple_lambda: None) -> None:
    create_function()
    queue_lambda_results([{"rows_in": 120, "rows_out": 118, "partition": "2013-01-01"}])

    result = aws.LambdaExecutor().invoke(FUNCTION, {"partition": "2013-01-01"})

    assert result == {"rows_in": 120, "rows_out": 118, "partition": "2013-01-01"}


def test_invoke_sends_the_event_as_json(simple_lambda: None) -> None:
    # With nothing queued, moto's simple Lambda answers with the request payload it received.
    create_function()
    event = {"source": "flights", "dates": ["2013-01-01"], "dry_run": False, "note": "café"}

    assert aws.LambdaExecutor().invoke(FUNCTION, event) == event


def test_invoke_takes_queued_results_in_order(simple_lambda: None) -> None:
    create_function()
    queue_lambda_results([{"n": 1}, {"n": 2}])
    executor = aws.LambdaExecutor()

    assert [executor.invoke(FUNCTION, {}) for _ in range(2)] == [{"n": 1}, {"n": 2}]


def test_invoke_uses_the_executors_region(simple_lambda: None) -> None:
    create_function(region="eu-west-1")
    queue_lambda_results([{"region": "eu-west-1"}], region="eu-west-1")

    assert aws.LambdaExecutor(region="eu-west-1").invoke(FUNCTION, {}) == {"region": "eu-west-1"}


@pytest.mark.parametrize("answer", ["not json at all", "[1, 2, 3]", "null"])
def test_invoke_rejects_a_result_that_is_not_a_json_object(
    simple_lambda: None, answer: str
) -> None:
    create_function()
    queue_lambda_results([answer])

    with pytest.raises(aws.LambdaResponseError, match=FUNCTION):
        aws.LambdaExecutor().invoke(FUNCTION, {})


def test_invoke_raises_function_error_reported_by_moto(simple_lambda: None) -> None:
    # moto's simple mode sets FunctionError only for an oversized response; it is a real one.
    create_function()
    queue_lambda_results(["x" * 6_000_000])

    with pytest.raises(aws.FunctionInvocationError) as caught:
        aws.LambdaExecutor().invoke(FUNCTION, {})

    error = caught.value
    assert error.function_name == FUNCTION
    assert error.error_type == "Function.ResponseSizeTooLarge"
    assert error.function_error == "Unhandled"
    assert str(error).startswith(f"{FUNCTION} failed: Function.ResponseSizeTooLarge: Response")


# --- Lambda with a botocore Stubber ------------------------------------------------------------


def test_invoke_raises_function_invocation_error_with_the_functions_message(
    stubbed_lambda: tuple[Any, Stubber],
) -> None:
    lambda_client, stubber = stubbed_lambda
    failure = {
        "errorMessage": "column 'x' missing",
        "errorType": "ValueError",
        "requestId": "0f1e2d3c",
        "stackTrace": [
            '  File "/var/task/handler.py", line 9, in lambda_handler\n    return clean(df)\n',
            '  File "/var/task/clean.py", line 4, in clean\n    raise ValueError(...)\n',
        ],
    }
    event = {"partition": "2013-01-01"}
    stubber.add_response(
        "invoke", invoke_response(json.dumps(failure).encode(), "Unhandled"), invoke_params(event)
    )

    with pytest.raises(aws.FunctionInvocationError) as caught:
        aws.LambdaExecutor(client=lambda_client).invoke(FUNCTION, event)

    error = caught.value
    assert str(error) == "headwater-clean failed: ValueError: column 'x' missing"
    assert (error.function_name, error.error_type, error.error_message) == (
        FUNCTION,
        "ValueError",
        "column 'x' missing",
    )
    assert error.stack_trace == tuple(failure["stackTrace"])
    assert isinstance(error, RuntimeError)
    # Luigi ships worker exceptions between processes, so the error must survive pickling.
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.stack_trace) == (str(error), error.stack_trace)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"errorMessage": "Task timed out after 3.00 seconds"}', "Unhandled: Task timed out"),
        (b"Internal crash", "Unhandled: Internal crash"),
        (b"", "Unhandled: (no error message)"),
    ],
)
def test_function_invocation_error_tolerates_sparse_payloads(payload: bytes, expected: str) -> None:
    error = aws.FunctionInvocationError.from_payload(FUNCTION, payload, "Unhandled")

    assert str(error).startswith(f"{FUNCTION} failed: {expected}")
    assert error.stack_trace == ()


def test_invoke_retries_throttling_with_backoff_then_succeeds(
    stubbed_lambda: tuple[Any, Stubber], caplog: pytest.LogCaptureFixture
) -> None:
    lambda_client, stubber = stubbed_lambda
    event = {"partition": "2013-01-01"}
    for _ in range(2):
        stubber.add_client_error(
            "invoke",
            service_error_code="TooManyRequestsException",
            service_message="Rate Exceeded.",
            http_status_code=429,
            expected_params=invoke_params(event),
        )
    stubber.add_response("invoke", invoke_response(b'{"ok": true}'), invoke_params(event))
    sleep = SleepRecorder()
    executor = aws.LambdaExecutor(client=lambda_client, sleep=sleep)

    with caplog.at_level(logging.WARNING, logger="headwater.aws"):
        result = executor.invoke(FUNCTION, event)

    assert result == {"ok": True}
    assert len(sleep.delays) == 2
    assert 0.25 <= sleep.delays[0] <= 0.5
    assert 0.5 <= sleep.delays[1] <= 1.0
    retries = [r for r in caplog.records if r.name == "headwater.aws"]
    assert len(retries) == 2
    assert "TooManyRequestsException" in retries[0].getMessage()
    assert "attempt 1/5" in retries[0].getMessage()


def test_invoke_gives_up_after_max_attempts(stubbed_lambda: tuple[Any, Stubber]) -> None:
    lambda_client, stubber = stubbed_lambda
    for _ in range(3):
        stubber.add_client_error(
            "invoke", service_error_code="TooManyRequestsException", http_status_code=429
        )
    sleep = SleepRecorder()

    with pytest.raises(ClientError) as caught:
        aws.LambdaExecutor(client=lambda_client, max_attempts=3, sleep=sleep).invoke(FUNCTION, {})

    assert caught.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert len(sleep.delays) == 2


@pytest.mark.parametrize(
    ("code", "status", "retried"),
    [
        ("ServiceException", 500, True),
        ("EC2ThrottledException", 502, True),
        ("ResourceNotReadyException", 502, True),
        ("ThrottlingException", 400, True),
        ("SomethingNew", 503, True),
        ("KMSAccessDeniedException", 502, False),
        ("ResourceNotFoundException", 404, False),
        ("InvalidRequestContentException", 400, False),
        ("AccessDeniedException", 403, False),
    ],
)
def test_invoke_retries_only_throttling_and_transient_errors(
    stubbed_lambda: tuple[Any, Stubber], code: str, status: int, retried: bool
) -> None:
    lambda_client, stubber = stubbed_lambda
    stubber.add_client_error("invoke", service_error_code=code, http_status_code=status)
    if retried:
        stubber.add_response("invoke", invoke_response(b'{"ok": true}'))
    sleep = SleepRecorder()
    executor = aws.LambdaExecutor(client=lambda_client, sleep=sleep)

    if retried:
        assert executor.invoke(FUNCTION, {}) == {"ok": True}
        assert len(sleep.delays) == 1
    else:
        with pytest.raises(ClientError, match=code):
            executor.invoke(FUNCTION, {})
        assert sleep.delays == []


def test_backoff_grows_exponentially_with_jitter_up_to_a_cap() -> None:
    executor = aws.LambdaExecutor(client=object(), base_delay=1.0, max_delay=8.0)

    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0), (9, 8.0)]:
        delays = {executor.backoff(attempt) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1


def test_oversize_payload_is_rejected_before_any_call(
    stubbed_lambda: tuple[Any, Stubber],
) -> None:
    # The stubber has no responses queued: any call would fail with UnStubbedResponseError.
    lambda_client, _ = stubbed_lambda
    event = {"rows": "x" * aws.MAX_SYNC_PAYLOAD_BYTES}

    with pytest.raises(aws.PayloadTooLargeError, match="over the 6291456-byte limit") as caught:
        aws.LambdaExecutor(client=lambda_client).invoke(FUNCTION, event)

    assert caught.value.direction == "request"
    assert caught.value.size > aws.MAX_SYNC_PAYLOAD_BYTES
    assert FUNCTION in str(caught.value)


def test_payload_at_the_limit_is_sent(stubbed_lambda: tuple[Any, Stubber]) -> None:
    lambda_client, stubber = stubbed_lambda
    overhead = len(json.dumps({"rows": ""}, separators=(",", ":")))
    event = {"rows": "x" * (aws.MAX_SYNC_PAYLOAD_BYTES - overhead)}
    stubber.add_response("invoke", invoke_response(b"{}"), invoke_params(event))

    assert aws.LambdaExecutor(client=lambda_client).invoke(FUNCTION, event) == {}


def test_oversize_response_is_rejected(stubbed_lambda: tuple[Any, Stubber]) -> None:
    lambda_client, stubber = stubbed_lambda
    body = json.dumps({"rows": "x" * aws.MAX_SYNC_PAYLOAD_BYTES}).encode()
    stubber.add_response("invoke", invoke_response(body))

    with pytest.raises(aws.PayloadTooLargeError) as caught:
        aws.LambdaExecutor(client=lambda_client).invoke(FUNCTION, {})

    assert caught.value.direction == "response"


@pytest.mark.parametrize("event", [{"x": float("nan")}, {"when": object()}])
def test_event_that_is_not_json_is_rejected_before_any_call(
    stubbed_lambda: tuple[Any, Stubber], event: dict[str, Any]
) -> None:
    lambda_client, _ = stubbed_lambda

    with pytest.raises(ValueError, match="not serialisable as JSON"):
        aws.LambdaExecutor(client=lambda_client).invoke(FUNCTION, event)


def test_executor_requires_at_least_one_attempt() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        aws.LambdaExecutor(max_attempts=0)


# --- SNS ---------------------------------------------------------------------------------------


def subscribe_queue(topic_arn: str, region: str = REGION) -> str:
    """Subscribe a new SQS queue to topic_arn; return the queue URL."""
    sqs = aws.client("sqs", region)
    queue_url = sqs.create_queue(QueueName="headwater-alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    aws.client("sns", region).subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return queue_url


def receive_notification(queue_url: str, region: str = REGION) -> dict[str, Any]:
    """Read the single SNS envelope delivered to queue_url."""
    messages = aws.client("sqs", region).receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
    )["Messages"]
    assert len(messages) == 1
    return json.loads(messages[0]["Body"])


def test_send_delivers_subject_and_message(mocked_aws: None) -> None:
    topic_arn = aws.client("sns").create_topic(Name="headwater-alerts")["TopicArn"]
    queue_url = subscribe_queue(topic_arn)

    message_id = aws.SnsNotifier(topic_arn).send(
        "Flights pipeline failed", "CleanPartition(2013-01-01): column 'x' missing"
    )

    envelope = receive_notification(queue_url)
    assert envelope["MessageId"] == message_id
    assert envelope["Subject"] == "Flights pipeline failed"
    assert envelope["Message"] == "CleanPartition(2013-01-01): column 'x' missing"


def test_send_sanitises_the_subject(mocked_aws: None) -> None:
    topic_arn = aws.client("sns").create_topic(Name="headwater-alerts")["TopicArn"]
    queue_url = subscribe_queue(topic_arn)

    aws.SnsNotifier(topic_arn).send("Nightly run\nfailed: café ✓ " + "x" * 200, "body")

    subject = receive_notification(queue_url)["Subject"]
    assert subject.startswith("Nightly run failed: cafe ? xxx")
    assert subject.endswith("...")
    assert len(subject) == aws.SNS_MAX_SUBJECT_CHARS


def test_send_publishes_in_the_topics_region(mocked_aws: None) -> None:
    topic_arn = aws.client("sns", "eu-west-1").create_topic(Name="headwater-alerts")["TopicArn"]
    queue_url = subscribe_queue(topic_arn, "eu-west-1")

    aws.SnsNotifier(topic_arn).send("Done", "all partitions published")

    assert receive_notification(queue_url, "eu-west-1")["Message"] == "all partitions published"


def test_send_truncates_an_oversize_message(mocked_aws: None) -> None:
    topic_arn = aws.client("sns").create_topic(Name="headwater-alerts")["TopicArn"]
    message = "é" * 200_000  # 400,000 bytes of UTF-8

    message_id = aws.SnsNotifier(topic_arn).send("Big report", message)

    [(sent_id, sent, subject, *_)] = (
        sns_backends[DEFAULT_ACCOUNT_ID][REGION].topics[topic_arn].sent_notifications
    )
    assert (sent_id, subject) == (message_id, "Big report")
    assert len(sent.encode("utf-8")) <= aws.SNS_MAX_MESSAGE_BYTES
    assert sent.startswith("é" * 1000)
    assert sent.endswith(f"the original message was 400000 bytes, SNS accepts {262144}]")


def test_send_omits_a_blank_subject(aws_env: None) -> None:
    sns = aws.client("sns")
    topic_arn = "arn:aws:sns:us-east-1:123456789012:headwater-alerts"
    with Stubber(sns) as stubber:
        stubber.add_response(
            "publish", {"MessageId": "m-1"}, {"TopicArn": topic_arn, "Message": "body"}
        )

        assert aws.SnsNotifier(topic_arn, client=sns).send(" \n\t", "body") == "m-1"

        stubber.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Daily report", "Daily report"),
        ("line one\nline two\r\n", "line one line two"),
        ("tabs\tand   spaces\u2028too", "tabs and spaces too"),
        ("Café résumé naïve", "Cafe resume naive"),
        ("Pipeline ✓ done 🚀", "Pipeline ? done ?"),
        ("数据 ready", "?? ready"),
        ("\x00bell\x07 ring", "bell ring"),
        ("zero\u200bwidth", "zerowidth"),
        ("", ""),
        ("a" * 100, "a" * 100),
        ("a" * 101, "a" * 97 + "..."),
        ("word " * 40, "word " * 19 + "wo..."),
        ("a" * 96 + " bcdef", "a" * 96 + "..."),
    ],
)
def test_sns_subject(text: str, expected: str) -> None:
    assert aws.sns_subject(text) == expected


@pytest.mark.parametrize(
    "text",
    ["x" * 500, "é" * 500, "🚀" * 500, "\n" * 500, "ab\x00\x1f\x7f\u0085cd" * 40, "数据" * 300],
)
def test_sns_subject_is_always_valid(text: str) -> None:
    subject = aws.sns_subject(text)

    assert len(subject) <= aws.SNS_MAX_SUBJECT_CHARS
    assert all(" " <= char <= "~" for char in subject)
    assert subject == subject.strip()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("short message\nwith lines\tand tabs", "short message\nwith lines\tand tabs"),
        ("nul\x00 and bell\x07", "nul\ufffd and bell\ufffd"),
        ("", "(empty message)"),
    ],
)
def test_sns_message_keeps_valid_text_and_replaces_invalid_characters(
    text: str, expected: str
) -> None:
    assert aws.sns_message(text) == expected


def test_sns_message_truncates_on_a_character_boundary() -> None:
    message = "a" + "🚀" * 100_000  # 4-byte characters, so the cut lands mid-character

    result = aws.sns_message(message)

    encoded = result.encode("utf-8")
    assert len(encoded) <= aws.SNS_MAX_MESSAGE_BYTES
    assert len(encoded) > aws.SNS_MAX_MESSAGE_BYTES - 200
    head, note = result.split("\n\n[truncated by Headwater", 1)
    assert head == "a" + "🚀" * (len(head) - 1)
    assert "400001 bytes" in note


# --- secrets -----------------------------------------------------------------------------------


def test_resolve_ssm_secure_string(mocked_aws: None) -> None:
    aws.client("ssm").put_parameter(
        Name="/headwater/prod/db/password", Value="s3cr3t!", Type="SecureString"
    )

    assert aws.resolve_secret("ssm:/headwater/prod/db/password") == "s3cr3t!"


def test_resolve_ssm_in_another_region(mocked_aws: None) -> None:
    aws.client("ssm", "eu-west-1").put_parameter(Name="/hw/token", Value="eu", Type="String")

    assert aws.resolve_secret("ssm:/hw/token", region="eu-west-1") == "eu"
    with pytest.raises(aws.SecretNotFoundError):
        aws.resolve_secret("ssm:/hw/token")


def test_resolve_secretsmanager_plain_and_json_key(mocked_aws: None) -> None:
    secrets = aws.client("secretsmanager")
    secrets.create_secret(Name="headwater/api-token", SecretString="tok-123")
    secrets.create_secret(
        Name="headwater/db",
        SecretString=json.dumps({"username": "hw", "password": "pa#ss", "port": 5432}),
    )

    assert aws.resolve_secret("secretsmanager:headwater/api-token") == "tok-123"
    assert aws.resolve_secret("secretsmanager:headwater/db#password") == "pa#ss"
    assert aws.resolve_secret("secretsmanager:headwater/db#port") == "5432"


def test_resolve_secretsmanager_binary_secret(mocked_aws: None) -> None:
    aws.client("secretsmanager").create_secret(Name="headwater/bin", SecretBinary=b"raw-value")

    assert aws.resolve_secret("secretsmanager:headwater/bin") == "raw-value"


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("ssm:/headwater/missing", "SSM parameter '/headwater/missing' not found in us-east-1"),
        ("secretsmanager:headwater/missing", "secret 'headwater/missing' not found in us-east-1"),
        ("secretsmanager:headwater/db#missing", "secret 'headwater/db' has no key 'missing'"),
    ],
)
def test_missing_secrets_are_named(mocked_aws: None, ref: str, message: str) -> None:
    aws.client("secretsmanager").create_secret(
        Name="headwater/db", SecretString=json.dumps({"password": "hunter2"})
    )

    with pytest.raises(aws.SecretNotFoundError) as caught:
        aws.resolve_secret(ref)

    assert message in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_json_key_of_a_non_json_secret_is_a_clear_error(mocked_aws: None) -> None:
    aws.client("secretsmanager").create_secret(Name="headwater/plain", SecretString="hunter2")

    with pytest.raises(ValueError, match="'headwater/plain' is not a JSON object") as caught:
        aws.resolve_secret("secretsmanager:headwater/plain#password")

    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    "ref",
    [
        "",
        "/headwater/db/password",
        "ssm:",
        "SSM:/headwater/db",
        "vault:secret/headwater",
        "secretsmanager:",
        "secretsmanager:#password",
        "secretsmanager:headwater/db#",
        "env:HEADWATER_TOKEN",
    ],
)
def test_bad_reference_is_rejected_without_calling_aws(ref: str) -> None:
    def no_client(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no AWS client should be needed")

    with pytest.raises(ValueError, match="bad secret reference") as caught:
        aws.resolve_secret(ref, client_factory=no_client)

    assert repr(ref) in str(caught.value)


# --- the same code against a moto server, through HEADWATER_AWS_ENDPOINT_URL -------------------


def test_everything_runs_against_a_moto_server(moto_server: str) -> None:
    # Lambda's Docker-free mode is switched on through moto's HTTP config API, as for a real server.
    config = requests.post(f"{moto_server}/moto-api/config", json=SIMPLE_LAMBDA, timeout=10)
    assert config.json()["lambda"] == {"use_docker": False}
    create_function()
    queue_lambda_results([{"status": "published"}], base=moto_server)
    aws.client("ssm").put_parameter(Name="/hw/token", Value="tok", Type="SecureString")
    topic_arn = aws.client("sns").create_topic(Name="headwater-alerts")["TopicArn"]
    queue_url = subscribe_queue(topic_arn)

    result = aws.LambdaExecutor().invoke(FUNCTION, {"partition": "2013-01-01"})
    token = aws.resolve_secret("ssm:/hw/token")
    message_id = aws.SnsNotifier(topic_arn).send("Run finished", json.dumps(result))

    assert aws.client("lambda").meta.endpoint_url == moto_server
    assert result == {"status": "published"}
    assert token == "tok"
    envelope = receive_notification(queue_url)
    assert (envelope["MessageId"], envelope["Subject"]) == (message_id, "Run finished")
    assert json.loads(envelope["Message"]) == {"status": "published"}

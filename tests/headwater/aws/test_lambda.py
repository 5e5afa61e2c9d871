"""Tests for headwater.aws.lambda_ against moto's Docker-free Lambda and botocore stubs."""

from __future__ import annotations

import io
import json
import logging
import pickle
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from botocore.response import StreamingBody
from botocore.stub import Stubber

from headwater import aws
from headwater.core.errors import FunctionFailed

FUNCTION = "headwater-clean"
MakeFunction = Callable[..., str]
QueueResults = Callable[..., None]


class SleepRecorder:
    """Stands in for time.sleep and records the requested delays."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sleeps() -> SleepRecorder:
    """A sleep that returns at once and records each requested delay."""
    return SleepRecorder()


class ScriptedLambda:
    """A Lambda client whose Invoke raises the scripted errors in turn, then answers."""

    def __init__(self, *errors: BaseException, answer: bytes = b'{"ok": true}') -> None:
        self.errors = list(errors)
        self.answer = answer
        self.calls = 0

    def invoke(self, **request: Any) -> dict[str, Any]:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return {"StatusCode": 200, "Payload": io.BytesIO(self.answer)}


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


# --- Lambda with moto's simple (Docker-free) mode ----------------------------------------------


def test_invoke_returns_the_functions_decoded_result(
    simple_lambda: None, make_function: MakeFunction, queue_results: QueueResults
) -> None:
    make_function(FUNCTION)
    queue_results([{"rows_in": 120, "rows_out": 118, "partition": "2013-01-01"}])

    result = aws.LambdaExecutor().invoke(FUNCTION, {"partition": "2013-01-01"})

    assert result == {"rows_in": 120, "rows_out": 118, "partition": "2013-01-01"}


def test_invoke_sends_the_event_as_json(
    simple_lambda: None, make_function: MakeFunction, queue_results: QueueResults
) -> None:
    # With nothing queued, moto's simple Lambda answers with the request payload it received.
    make_function(FUNCTION)
    event = {"source": "records", "dates": ["2013-01-01"], "dry_run": False, "note": "café"}

    assert aws.LambdaExecutor().invoke(FUNCTION, event) == event


def test_invoke_takes_queued_results_in_order(
    simple_lambda: None, make_function: MakeFunction, queue_results: QueueResults
) -> None:
    make_function(FUNCTION)
    queue_results([{"n": 1}, {"n": 2}])
    executor = aws.LambdaExecutor()

    assert [executor.invoke(FUNCTION, {}) for _ in range(2)] == [{"n": 1}, {"n": 2}]


def test_invoke_uses_the_executors_region(
    simple_lambda: None, make_function: MakeFunction, queue_results: QueueResults
) -> None:
    make_function(FUNCTION, region="eu-west-1")
    queue_results([{"region": "eu-west-1"}], region="eu-west-1")

    assert aws.LambdaExecutor(region="eu-west-1").invoke(FUNCTION, {}) == {"region": "eu-west-1"}


@pytest.mark.parametrize("answer", ["not json at all", "[1, 2, 3]", "null"])
def test_invoke_rejects_a_result_that_is_not_a_json_object(
    simple_lambda: None, make_function: MakeFunction, queue_results: QueueResults, answer: str
) -> None:
    make_function(FUNCTION)
    queue_results([answer])

    with pytest.raises(aws.LambdaResponseError, match=FUNCTION):
        aws.LambdaExecutor().invoke(FUNCTION, {})


def test_invoke_raises_function_error_reported_by_moto(
    simple_lambda: None, make_function: MakeFunction, queue_results: QueueResults
) -> None:
    # moto's simple mode sets FunctionError only for an oversized response; it is a real one.
    make_function(FUNCTION)
    queue_results(["x" * 6_000_000])

    with pytest.raises(aws.FunctionFailed) as caught:
        aws.LambdaExecutor().invoke(FUNCTION, {})

    error = caught.value
    assert error.function == FUNCTION
    assert error.error_type == "Function.ResponseSizeTooLarge"
    assert str(error).startswith(f"{FUNCTION} failed: Function.ResponseSizeTooLarge: Response")


# --- Lambda with a botocore Stubber ------------------------------------------------------------


def test_invoke_raises_function_failed_with_the_functions_message_and_trace(
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

    with pytest.raises(aws.FunctionFailed) as caught:
        aws.LambdaExecutor(client=lambda_client).invoke(FUNCTION, event)

    error = caught.value
    assert str(error) == "headwater-clean failed: ValueError: column 'x' missing"
    assert (error.function, error.error_type, error.message) == (
        FUNCTION,
        "ValueError",
        "column 'x' missing",
    )
    assert error.trace.splitlines() == [
        '  File "/var/task/handler.py", line 9, in lambda_handler',
        "    return clean(df)",
        '  File "/var/task/clean.py", line 4, in clean',
        "    raise ValueError(...)",
    ]
    # The same type the in-process executor raises, so callers handle one failure.
    assert type(error) is FunctionFailed
    # Luigi ships worker exceptions between processes, so the error must survive pickling.
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.trace) == (str(error), error.trace)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"errorMessage": "Task timed out after 3.00 seconds"}', "Unhandled: Task timed out"),
        (b"Internal crash", "Unhandled: Internal crash"),
        (b"", "Unhandled: (no error message)"),
    ],
)
def test_failure_from_a_sparse_payload(payload: bytes, expected: str) -> None:
    error = aws.function_failed_from_payload(FUNCTION, payload, "Unhandled")

    assert str(error).startswith(f"{FUNCTION} failed: {expected}")
    assert error.trace == ""


def test_invoke_retries_throttling_with_backoff_then_succeeds(
    stubbed_lambda: tuple[Any, Stubber],
    caplog: pytest.LogCaptureFixture,
    sleeps: SleepRecorder,
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
    executor = aws.LambdaExecutor(client=lambda_client, sleep=sleeps)

    with caplog.at_level(logging.WARNING, logger="headwater.aws"):
        result = executor.invoke(FUNCTION, event)

    assert result == {"ok": True}
    assert len(sleeps.delays) == 2
    assert 0.25 <= sleeps.delays[0] <= 0.5
    assert 0.5 <= sleeps.delays[1] <= 1.0
    retries = [r.msg for r in caplog.records if r.name == "headwater.aws"]
    assert len(retries) == 2
    assert retries[0]["reason"] == "TooManyRequestsException"
    assert (retries[0]["attempt"], retries[0]["max_attempts"]) == (1, 5)


def test_invoke_gives_up_after_max_attempts(
    stubbed_lambda: tuple[Any, Stubber], sleeps: SleepRecorder
) -> None:
    lambda_client, stubber = stubbed_lambda
    for _ in range(3):
        stubber.add_client_error(
            "invoke", service_error_code="TooManyRequestsException", http_status_code=429
        )

    with pytest.raises(ClientError) as caught:
        aws.LambdaExecutor(client=lambda_client, max_attempts=3, sleep=sleeps).invoke(FUNCTION, {})

    assert caught.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert len(sleeps.delays) == 2


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
    stubbed_lambda: tuple[Any, Stubber],
    sleeps: SleepRecorder,
    code: str,
    status: int,
    retried: bool,
) -> None:
    lambda_client, stubber = stubbed_lambda
    stubber.add_client_error("invoke", service_error_code=code, http_status_code=status)
    if retried:
        stubber.add_response("invoke", invoke_response(b'{"ok": true}'))
    executor = aws.LambdaExecutor(client=lambda_client, sleep=sleeps)

    if retried:
        assert executor.invoke(FUNCTION, {}) == {"ok": True}
        assert len(sleeps.delays) == 1
    else:
        with pytest.raises(ClientError, match=code):
            executor.invoke(FUNCTION, {})
        assert sleeps.delays == []


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


# --- retries through tenacity: what the hand-written loop did not pin -------------------------

ENDPOINT = "https://lambda.us-east-1.amazonaws.com"


@pytest.mark.parametrize(
    "error",
    [EndpointConnectionError(endpoint_url=ENDPOINT), ConnectTimeoutError(endpoint_url=ENDPOINT)],
    ids=["no-connection", "connect-timeout"],
)
def test_a_request_that_never_reached_lambda_is_sent_again(
    sleeps: SleepRecorder, caplog: pytest.LogCaptureFixture, error: BaseException
) -> None:
    # Given a client whose first two requests never reach Lambda
    client = ScriptedLambda(error, error)

    # When the function is invoked
    with caplog.at_level(logging.WARNING, logger="headwater.aws"):
        result = aws.LambdaExecutor(client=client, sleep=sleeps).invoke(FUNCTION, {})

    # Then it was sent three times, waiting between, and each retry names the cause
    assert result == {"ok": True}
    assert client.calls == 3
    assert len(sleeps.delays) == 2
    retries = [r.msg for r in caplog.records if r.name == "headwater.aws"]
    assert [r["reason"] for r in retries] == [type(error).__name__] * 2
    assert (retries[1]["attempt"], retries[1]["max_attempts"]) == (2, 5)


def test_a_read_timeout_is_not_retried_since_the_function_may_be_running(
    sleeps: SleepRecorder,
) -> None:
    # Given a request that reached Lambda but whose answer never came back
    client = ScriptedLambda(ReadTimeoutError(endpoint_url=ENDPOINT))

    # When / then the timeout propagates at once: a second send could run the function twice
    with pytest.raises(ReadTimeoutError):
        aws.LambdaExecutor(client=client, sleep=sleeps).invoke(FUNCTION, {})
    assert client.calls == 1
    assert sleeps.delays == []


def test_a_function_error_is_never_retried(sleeps: SleepRecorder) -> None:
    # Given a function that raised (Lambda answers 200 with FunctionError set)
    class Failing(ScriptedLambda):
        def invoke(self, **request: Any) -> dict[str, Any]:
            self.calls += 1
            body = b'{"errorType": "KeyError", "errorMessage": "\'rows\'"}'
            return {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": io.BytesIO(body)}

    client = Failing()

    # When / then it fails once, with the function's own error
    with pytest.raises(FunctionFailed, match="KeyError"):
        aws.LambdaExecutor(client=client, sleep=sleeps).invoke(FUNCTION, {})
    assert client.calls == 1
    assert sleeps.delays == []


def test_the_waits_are_the_executors_backoff_in_order(sleeps: SleepRecorder) -> None:
    # Given four throttled answers and a seeded jitter
    throttled = ClientError(
        {
            "Error": {"Code": "TooManyRequestsException", "Message": "Rate Exceeded."},
            "ResponseMetadata": {"HTTPStatusCode": 429},
        },
        "Invoke",
    )
    client = ScriptedLambda(*[throttled] * 4)
    executor = aws.LambdaExecutor(
        client=client, sleep=sleeps, base_delay=1.0, max_delay=4.0, rng=random.Random(11)
    )

    # When the function is invoked
    executor.invoke(FUNCTION, {})

    # Then the waits are exactly backoff(1..4) of the same seed: doubling, capped, jittered
    twin = aws.LambdaExecutor(client=client, base_delay=1.0, max_delay=4.0, rng=random.Random(11))
    assert sleeps.delays == [twin.backoff(attempt) for attempt in range(1, 5)]
    for delay, ceiling in zip(sleeps.delays, [1.0, 2.0, 4.0, 4.0], strict=True):
        assert ceiling / 2 <= delay <= ceiling


def test_one_attempt_means_no_retry(sleeps: SleepRecorder) -> None:
    client = ScriptedLambda(EndpointConnectionError(endpoint_url=ENDPOINT))

    with pytest.raises(EndpointConnectionError):
        aws.LambdaExecutor(client=client, max_attempts=1, sleep=sleeps).invoke(FUNCTION, {})

    assert (client.calls, sleeps.delays) == (1, [])


def test_function_exists_tells_a_deployed_function_from_none(
    simple_lambda: None, make_function: Callable[..., str]
) -> None:
    make_function("headwater-api-prod")

    assert aws.function_exists("headwater-api-prod") is True
    assert aws.function_exists("headwater-api-dev") is False

"""Executors: in-process invocation as Lambda does it (JSON both ways), and the Lambda mapping."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from datetime import date
from types import MappingProxyType
from typing import Any

import pytest

import functions.clean
import functions.extract
from headwater import aws
from headwater.core.config import Settings
from headwater.data.executors import (
    FunctionFailed,
    InProcessExecutor,
    LambdaFunctions,
    LocalContext,
    create_executor,
    resolve_handler,
)


class FakeHandlers:
    """Handlers living in a throwaway module, recording what they were called with."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, Any]] = []

    def echo(self, event: Any, context: Any) -> Any:
        self.calls.append((event, context))
        event["seen"] = True  # must not leak back to the caller
        return {"event": event, "function": context.function_name}

    def returns_date(self, event: Any, context: Any) -> Any:
        return {"day": date(2013, 1, 2)}

    def returns_nan(self, event: Any, context: Any) -> Any:
        return {"delay": float("nan")}

    def returns_set(self, event: Any, context: Any) -> Any:
        return {"origins": {"EWR", "JFK"}}

    def fails(self, event: Any, context: Any) -> Any:
        raise LookupError(f"no partition {event['partition']}")


@pytest.fixture
def fake() -> tuple[FakeHandlers, InProcessExecutor]:
    """Fake handlers, and an in-process executor given them by kind (as luigi_tasks does)."""
    handlers = FakeHandlers()
    kinds = [name for name in vars(FakeHandlers) if not name.startswith("_")]
    return handlers, InProcessExecutor({kind: getattr(handlers, kind) for kind in kinds})


# -- InProcessExecutor ------------------------------------------------------------------------


def test_the_event_and_result_round_trip_through_json(
    fake: tuple[FakeHandlers, InProcessExecutor],
) -> None:
    # Given an event holding a tuple (JSON has only arrays)
    handlers, executor = fake
    event = {"run_id": "r1", "partition": "2013-01-02", "sources": ("readings", "weather")}

    # When it is invoked in-process
    result = executor.invoke("echo", event)

    # Then the handler got a fresh JSON copy and a Lambda-like context, the caller's event is
    # untouched, and the result is JSON as well
    ((received, context),) = handlers.calls
    assert received is not event
    assert received["sources"] == ["readings", "weather"]
    assert "seen" not in event
    assert isinstance(context, LocalContext) and context.function_name == "echo"
    assert 0 < context.get_remaining_time_in_millis() <= 900_000
    assert result == {
        "event": {
            "run_id": "r1",
            "partition": "2013-01-02",
            "sources": ["readings", "weather"],
            "seen": True,
        },
        "function": "echo",
    }


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("returns_date", "date is not JSON serializable"),
        ("returns_set", "set is not JSON serializable"),
        ("returns_nan", "Out of range float values are not JSON compliant"),
    ],
)
def test_a_result_that_is_not_json_fails(
    fake: tuple[FakeHandlers, InProcessExecutor], kind: str, message: str
) -> None:
    # Given a handler whose answer Lambda could not serialise
    _, executor = fake

    # When / then invoking it fails as Lambda's runtime would, not passing objects through
    with pytest.raises(FunctionFailed, match=message) as failed:
        executor.invoke(kind, {"partition": "2013-01-02"})
    assert failed.value.error_type == "Runtime.MarshalError"


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ({"partition": date(2013, 1, 2)}, TypeError),
        ({"run_id": b"r1"}, TypeError),
        ({"delay": float("inf")}, ValueError),
    ],
    ids=["date", "bytes", "infinity"],
)
def test_an_event_that_is_not_json_is_rejected_before_the_handler_runs(
    fake: tuple[FakeHandlers, InProcessExecutor], event: dict[str, Any], error: type
) -> None:
    # Given an event Lambda could not carry
    handlers, executor = fake

    # When / then it is refused and the handler never sees it
    with pytest.raises(error):
        executor.invoke("echo", event)
    assert handlers.calls == []


def test_a_handler_exception_becomes_function_failed(
    fake: tuple[FakeHandlers, InProcessExecutor],
) -> None:
    # Given a handler that raises
    _, executor = fake

    # When it is invoked
    with pytest.raises(FunctionFailed) as caught:
        executor.invoke("fails", {"partition": "2013-13-01"})

    # Then the failure keeps the function, the error's type and message, and the trace
    failed = caught.value
    assert (failed.function, failed.error_type, failed.message) == (
        "fails",
        "LookupError",
        "no partition 2013-13-01",
    )
    assert str(failed) == "fails failed: LookupError: no partition 2013-13-01"
    assert "LookupError: no partition 2013-13-01" in failed.trace
    assert isinstance(failed.__cause__, LookupError)


def test_an_unknown_kind_is_refused(fake: tuple[FakeHandlers, InProcessExecutor]) -> None:
    handlers, executor = fake

    with pytest.raises(KeyError, match="train"):
        executor.invoke("train", {})
    assert handlers.calls == []


REAL_HANDLERS = {
    "extract": functions.extract.lambda_handler,
    "clean": functions.clean.lambda_handler,
}


def test_the_real_handlers_run_in_process(make_minimal_stage: Callable[..., Settings]) -> None:
    # Given the test stage and the default in-process executor, given the real handlers
    executor = create_executor(make_minimal_stage(), REAL_HANDLERS)
    assert isinstance(executor, InProcessExecutor)
    event = {"run_id": "r1", "usecase": "meters", "source": "readings", "partition": "2013-01-02"}

    # When events are invoked through it
    good = executor.invoke("extract", event)
    with pytest.raises(FunctionFailed) as bad_partition:
        executor.invoke("extract", {**event, "partition": "2013-13-01"})
    with pytest.raises(FunctionFailed) as no_source:
        executor.invoke("extract", {k: v for k, v in event.items() if k != "source"})

    # Then a good one answers JSON (a day of three meters' hours), and bad ones fail with the
    # handler's error type
    assert (good["dataset"], good["partition"], good["rows"]) == (
        "meters/readings",
        "date=2013-01-02",
        3 * 24,
    )
    assert bad_partition.value.error_type == "ValueError"
    assert "2013-13-01" in bad_partition.value.message
    assert no_source.value.error_type == "ValidationError"
    assert "source" in no_source.value.message


# -- LocalContext and resolve_handler ---------------------------------------------------------


def test_remaining_time_decreases_and_stops_at_zero() -> None:
    # Given a fresh context with a one-minute timeout, and one whose time ran out
    context = LocalContext(function_name="extract", timeout_seconds=60.0)
    expired = LocalContext(
        function_name="extract", timeout_seconds=1.0, _started=time.monotonic() - 5
    )

    # When the remaining time is read twice, some time apart
    first = context.get_remaining_time_in_millis()
    time.sleep(0.02)
    second = context.get_remaining_time_in_millis()

    # Then it went down by at least the time slept, and never below zero
    assert 0 < second <= first - 20 < 60_000
    assert expired.get_remaining_time_in_millis() == 0
    assert context.aws_request_id != LocalContext(function_name="extract").aws_request_id


@pytest.mark.parametrize(
    "spec", ["functions.extract:lambda_handler", "functions.extract.lambda_handler"]
)
def test_resolve_handler_accepts_both_spellings(spec: str) -> None:
    from functions.extract import lambda_handler

    assert resolve_handler(spec) is lambda_handler


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("functions.extract:handler", "does not name a function"),
        ("functions.extract:", "does not name a function"),
        ("headwater.data.executors:__doc__", "does not name a function"),
        ("headwater_no_such_module:lambda_handler", "No module named 'headwater_no_such_module'"),
        ("lambda_handler", "names no module"),
        ("", "names no module"),
    ],
    ids=[
        "missing-function",
        "empty-function",
        "not-callable",
        "missing-module",
        "no-module",
        "empty",
    ],
)
def test_resolve_handler_refuses_a_bad_string(spec: str, message: str) -> None:
    with pytest.raises(ImportError, match=message):
        resolve_handler(spec)


# -- LambdaFunctions and create_executor ------------------------------------------------------


class RecordingLambda:
    """Stands in for aws.LambdaExecutor: records invocations, answers a canned result."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def invoke(self, function_name: str, event: dict) -> dict:
        self.calls.append((function_name, event))
        return {"rows": 842, "function": function_name}


@pytest.mark.parametrize(
    ("kind", "function"), [("extract", "hw-x-extract"), ("clean", "hw-x-clean")]
)
def test_lambda_functions_invokes_the_configured_function_of_each_kind(
    make_minimal_stage: Callable[..., Settings], kind: str, function: str
) -> None:
    # Given a stage naming its deployed functions, and a recording Lambda client
    stage = make_minimal_stage(
        EXECUTOR__EXTRACT_FUNCTION="hw-x-extract", EXECUTOR__CLEAN_FUNCTION="hw-x-clean"
    )
    recorder = RecordingLambda()
    functions = LambdaFunctions(stage, lambda_executor=recorder)

    # When a kind is invoked with a read-only mapping as the event
    result = functions.invoke(kind, MappingProxyType({"run_id": "r1", "partition": "2013-01"}))

    # Then that function got the event as a plain dict, and its answer is returned
    assert recorder.calls == [(function, {"run_id": "r1", "partition": "2013-01"})]
    assert type(recorder.calls[0][1]) is dict
    assert result == {"rows": 842, "function": function}


def test_lambda_functions_refuses_an_unknown_kind(
    make_minimal_stage: Callable[..., Settings],
) -> None:
    recorder = RecordingLambda()
    functions = LambdaFunctions(make_minimal_stage(), lambda_executor=recorder)

    with pytest.raises(KeyError, match="train"):
        functions.invoke("train", {})
    assert recorder.calls == []


class FakeLambdaClient:
    """The boto3 Lambda client surface LambdaExecutor uses."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def invoke(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        return {"StatusCode": 200, "Payload": io.BytesIO(b'{"rows": 943}')}


def test_create_executor_builds_lambda_functions_without_calling_aws(
    aws_env: None, make_minimal_stage: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a stage asking for Lambda, and any AWS client creation made to fail loudly
    stage = make_minimal_stage(EXECUTOR__KIND="lambda", AWS__REGION="eu-west-1")

    def no_aws(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"an AWS client was created: {args} {kwargs}")

    monkeypatch.setattr(aws.clients, "client", no_aws)
    monkeypatch.setattr(aws.clients.boto3.session, "Session", no_aws)

    # When the executor is created
    executor = create_executor(stage, REAL_HANDLERS)

    # Then it is the Lambda mapping, and no client exists yet
    assert isinstance(executor, LambdaFunctions)

    # ... the client is made on first invoke, in the stage's region, for the configured function
    made: list[tuple[str, str | None]] = []
    lambda_client = FakeLambdaClient()

    def client(service: str, region: str | None = None) -> FakeLambdaClient:
        made.append((service, region))
        return lambda_client

    monkeypatch.setattr(aws.clients, "client", client)
    result = executor.invoke("clean", {"run_id": "r1", "partition": "2013-01-02"})
    assert made == [("lambda", "eu-west-1")]
    (request,) = lambda_client.requests
    assert request["FunctionName"] == "headwater-clean"
    assert request["InvocationType"] == "RequestResponse"
    assert json.loads(request["Payload"]) == {"run_id": "r1", "partition": "2013-01-02"}
    assert result == {"rows": 943}


def test_create_executor_defaults_to_in_process_with_the_handlers_given(
    make_minimal_stage: Callable[..., Settings],
) -> None:
    handlers = FakeHandlers()

    executor = create_executor(make_minimal_stage(), {"echo": handlers.echo})

    assert isinstance(executor, InProcessExecutor)
    assert executor.invoke("echo", {"n": 1})["function"] == "echo"
    assert [event for event, _ in handlers.calls] == [{"n": 1, "seen": True}]

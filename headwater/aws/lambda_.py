"""Synchronous Lambda invocation: JSON both ways, size limits, retries through tenacity."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from typing import Any

from botocore.client import BaseClient
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from headwater.aws import clients
from headwater.aws.errors import (
    FunctionFailed,
    LambdaResponseError,
    PayloadTooLargeError,
    error_code,
    http_status,
)
from headwater.core.logs import get_logger

log = get_logger("headwater.aws")

# Synchronous (RequestResponse) invocations are capped at 6 MB each way; AWS counts 6 MiB.
MAX_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024

_THROTTLING_CODES = frozenset(
    {
        "TooManyRequestsException",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "EC2ThrottledException",
    }
)
_TRANSIENT_CODES = frozenset(
    {
        "ServiceException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "ResourceNotReadyException",
    }
)
# Lambda also answers 502 for permanent configuration faults (KMS, ENI, runtime), so 502 is only
# retried when its code is listed above.
_TRANSIENT_STATUSES = frozenset({500, 503, 504})


def is_retryable_invoke_error(error: BaseException) -> bool:
    """Tell whether an Invoke error is worth retrying: throttling, a transient fault, no contact.

    A connection that never reached Lambda cannot have run the function, so sending the request
    again is safe; a read timeout is not retried, since the function may be running.
    """
    if isinstance(error, EndpointConnectionError | ConnectTimeoutError):
        return True
    if not isinstance(error, ClientError):
        return False
    code = error_code(error)
    return (
        code in _THROTTLING_CODES
        or code in _TRANSIENT_CODES
        or http_status(error) in _TRANSIENT_STATUSES
    )


def function_failed_from_payload(
    function_name: str, payload: bytes, function_error: str = "Unhandled"
) -> FunctionFailed:
    """Build the FunctionFailed of a Lambda FunctionError response payload."""
    text = payload.decode("utf-8", errors="replace")
    try:
        body = json.loads(text) if text else {}
    except ValueError:
        body = text
    if not isinstance(body, dict):
        return FunctionFailed(function_name, function_error, str(body).strip())
    trace = body.get("stackTrace") or []
    if not isinstance(trace, list):
        trace = [str(trace)]
    return FunctionFailed(
        function_name,
        str(body.get("errorType") or function_error),
        str(body.get("errorMessage") or "(no error message)"),
        "\n".join(str(line).rstrip("\n") for line in trace),
    )


def function_exists(
    function_name: str, client: BaseClient | None = None, region: str | None = None
) -> bool:
    """Tell whether a Lambda function of that name exists in the region."""
    lambda_client = client or clients.client("lambda", region)
    try:
        lambda_client.get_function(FunctionName=function_name)
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return False
        raise
    return True


class LambdaExecutor:
    """Invokes Lambda functions synchronously, retrying throttling and transient faults."""

    def __init__(
        self,
        region: str | None = None,
        client: BaseClient | None = None,
        max_attempts: int = 5,
        *,
        base_delay: float = 0.5,
        max_delay: float = 20.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self.region = region
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._client = client
        self._sleep = sleep
        self._rng = rng or random.Random()

    @property
    def client(self) -> BaseClient:
        """Return the Lambda client, creating the shared one on first use."""
        if self._client is None:
            self._client = clients.client("lambda", self.region)
        return self._client

    def backoff(self, attempt: int) -> float:
        """Return the delay before retry number attempt (1-based): exponential, equal jitter."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def invoke(self, function_name: str, event: dict) -> dict:
        """Invoke function_name with event (RequestResponse) and return its decoded JSON result.

        Raises FunctionFailed when the function itself raised.
        """
        try:
            payload = json.dumps(event, separators=(",", ":"), allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{function_name}: event is not serialisable as JSON: {exc}") from exc
        if len(payload) > MAX_SYNC_PAYLOAD_BYTES:
            raise PayloadTooLargeError(
                function_name, "request", len(payload), MAX_SYNC_PAYLOAD_BYTES
            )

        response = self._invoke_with_retries(function_name, payload)
        body = response["Payload"].read()
        if response.get("FunctionError"):
            raise function_failed_from_payload(function_name, body, response["FunctionError"])
        if len(body) > MAX_SYNC_PAYLOAD_BYTES:
            raise PayloadTooLargeError(function_name, "response", len(body), MAX_SYNC_PAYLOAD_BYTES)
        try:
            result = json.loads(body)
        except ValueError as exc:
            raise LambdaResponseError(
                f"{function_name} returned a payload that is not JSON: {body[:200]!r}"
            ) from exc
        if not isinstance(result, dict):
            raise LambdaResponseError(
                f"{function_name} returned {type(result).__name__}, expected a JSON object"
            )
        return result

    def _invoke_with_retries(self, function_name: str, payload: bytes) -> dict[str, Any]:
        """Call Invoke, sleeping and retrying on throttling and transient faults."""

        def log_retry(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            if isinstance(error, ClientError):
                reason = error_code(error) or f"HTTP {http_status(error)}"
            else:
                reason = type(error).__name__
            log.warning(
                "Lambda invoke failed, retrying",
                function=function_name,
                reason=reason,
                attempt=state.attempt_number,
                max_attempts=self.max_attempts,
                wait_seconds=round(state.next_action.sleep if state.next_action else 0.0, 3),
            )

        retrying = Retrying(
            retry=retry_if_exception(is_retryable_invoke_error),
            stop=stop_after_attempt(self.max_attempts),
            wait=lambda state: self.backoff(state.attempt_number),
            sleep=self._sleep,
            before_sleep=log_retry,
            reraise=True,
        )
        return retrying(
            self.client.invoke,
            FunctionName=function_name,
            InvocationType="RequestResponse",
            Payload=payload,
        )

"""The AWS adapter's errors (one type per failure) and how to read a botocore ClientError."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from headwater.core.errors import (
    FunctionFailed as FunctionFailed,  # re-exported: one type, local or Lambda
)


def error_code(error: ClientError) -> str:
    """Return the error code of a botocore ClientError."""
    return str(error.response.get("Error", {}).get("Code", ""))


def http_status(error: ClientError) -> int:
    """Return the HTTP status of a botocore ClientError, 0 when unknown."""
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


class PayloadTooLargeError(ValueError):
    """A Lambda request or response exceeds the synchronous invocation limit."""

    def __init__(self, function_name: str, direction: str, size: int, limit: int) -> None:
        self.function_name = function_name
        self.direction = direction
        self.size = size
        self.limit = limit
        super().__init__(
            f"{function_name}: {direction} payload is {size} bytes, over the {limit}-byte limit "
            "for synchronous Lambda invocation; pass large data through S3 and send its key"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.function_name, self.direction, self.size, self.limit))


class LambdaResponseError(RuntimeError):
    """A Lambda function answered with something other than a JSON object."""


class SecretNotFoundError(LookupError):
    """A referenced SSM parameter, secret or JSON key does not exist."""


class EmrStepFailed(RuntimeError):
    """The EMR step ended FAILED, CANCELLED or INTERRUPTED: carries its reason and stderr tail."""

    def __init__(
        self, cluster_id: str, step_id: str, state: str, reason: str, log_tail: str = ""
    ) -> None:
        self.cluster_id = cluster_id
        self.step_id = step_id
        self.state = state
        self.reason = reason
        self.log_tail = log_tail
        message = (
            f"EMR step {step_id} on cluster {cluster_id} ended {state}: "
            f"{reason or '(no reason given)'}"
        )
        if log_tail:
            message += f"\n--- last lines of the step's stderr ---\n{log_tail}"
        else:
            message += "\n(the step's stderr was not found in the cluster's log location)"
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            type(self),
            (self.cluster_id, self.step_id, self.state, self.reason, self.log_tail),
        )


class EmrTimeout(RuntimeError):
    """The EMR step did not finish within the run's timeout."""

    def __init__(self, cluster_id: str, step_id: str, state: str, timeout_seconds: float) -> None:
        self.cluster_id = cluster_id
        self.step_id = step_id
        self.state = state
        self.timeout_seconds = timeout_seconds
        super().__init__(
            f"EMR step {step_id} on cluster {cluster_id} was still {state} after "
            f"{timeout_seconds:g}s; the cluster is being terminated"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.cluster_id, self.step_id, self.state, self.timeout_seconds))


class TemplateTooLarge(ValueError):
    """A CloudFormation template is over the size CloudFormation takes inline."""

    def __init__(self, stack: str, size: int, limit: int) -> None:
        self.stack = stack
        self.size = size
        self.limit = limit
        super().__init__(
            f"the template of stack {stack} is {size} bytes, over the {limit} bytes "
            "CloudFormation takes inline: upload it to S3"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.stack, self.size, self.limit))


class StackNeedsDeletion(RuntimeError):
    """The stack's creation failed (it rolled back): it must be deleted before a new one."""

    def __init__(self, stack: str, status: str) -> None:
        self.stack = stack
        self.status = status
        super().__init__(
            f"stack {stack} is {status} (its creation failed): read its events, delete it "
            f"(aws cloudformation delete-stack --stack-name {stack}) and deploy again"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.stack, self.status))

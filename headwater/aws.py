"""The single adapter through which Headwater talks to AWS: clients, Lambda, SNS and secrets."""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
import unicodedata
from collections.abc import Callable
from typing import Any

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError

__all__ = [
    "DEFAULT_REGION",
    "ENDPOINT_URL_ENV",
    "MAX_SYNC_PAYLOAD_BYTES",
    "SNS_MAX_MESSAGE_BYTES",
    "SNS_MAX_SUBJECT_CHARS",
    "FunctionInvocationError",
    "LambdaExecutor",
    "LambdaResponseError",
    "PayloadTooLargeError",
    "SecretNotFoundError",
    "SnsNotifier",
    "client",
    "reset_clients",
    "resolve_region",
    "resolve_secret",
    "sns_message",
    "sns_subject",
]

logger = logging.getLogger("headwater.aws")

DEFAULT_REGION = "us-east-1"
ENDPOINT_URL_ENV = "HEADWATER_AWS_ENDPOINT_URL"

# Synchronous (RequestResponse) invocations are capped at 6 MB each way; AWS counts 6 MiB.
MAX_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024
SNS_MAX_SUBJECT_CHARS = 100
SNS_MAX_MESSAGE_BYTES = 256 * 1024

CONNECT_TIMEOUT_SECONDS = 10
READ_TIMEOUT_SECONDS = 60
# A synchronous invoke holds the connection open for the whole run (Lambda's limit is 15 min).
LAMBDA_READ_TIMEOUT_SECONDS = 15 * 60 + 30

_clients: dict[tuple[str, str, str | None], BaseClient] = {}
_clients_lock = threading.Lock()


def resolve_region(region: str | None = None) -> str:
    """Return the region: the argument, else AWS_REGION / AWS_DEFAULT_REGION, else us-east-1."""
    return (
        region
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or DEFAULT_REGION
    )


def _client_config(service: str, region: str) -> Config:
    """Build the botocore Config (timeouts, retries) for one service client."""
    if service == "lambda":
        # LambdaExecutor owns the retry policy for invokes; botocore retrying underneath it would
        # multiply attempts and could re-run a function whose response merely timed out.
        return Config(
            region_name=region,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            read_timeout=LAMBDA_READ_TIMEOUT_SECONDS,
            retries={"mode": "standard", "total_max_attempts": 1},
            tcp_keepalive=True,
        )
    return Config(
        region_name=region,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        retries={"mode": "standard", "total_max_attempts": 5},
    )


def client(service: str, region: str | None = None, endpoint_url: str | None = None) -> BaseClient:
    """Return a cached boto3 client for service, created on first use."""
    region = resolve_region(region)
    endpoint_url = endpoint_url or os.environ.get(ENDPOINT_URL_ENV) or None
    key = (service, region, endpoint_url)
    with _clients_lock:
        cached = _clients.get(key)
        if cached is None:
            # One Session per client: boto3's default session is not safe to share across threads.
            cached = boto3.session.Session().client(
                service,
                region_name=region,
                endpoint_url=endpoint_url,
                config=_client_config(service, region),
            )
            _clients[key] = cached
    return cached


def reset_clients() -> None:
    """Forget every cached client (tests call this between mocks)."""
    with _clients_lock:
        _clients.clear()


def _error_code(error: ClientError) -> str:
    """Return the error code of a botocore ClientError."""
    return str(error.response.get("Error", {}).get("Code", ""))


def _http_status(error: ClientError) -> int:
    """Return the HTTP status of a botocore ClientError, 0 when unknown."""
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


# ---------------------------------------------------------------------------------------------
# Lambda
# ---------------------------------------------------------------------------------------------

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


def _is_retryable(error: ClientError) -> bool:
    """Tell whether a ClientError is throttling or a transient service fault."""
    code = _error_code(error)
    return (
        code in _THROTTLING_CODES
        or code in _TRANSIENT_CODES
        or _http_status(error) in _TRANSIENT_STATUSES
    )


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


class FunctionInvocationError(RuntimeError):
    """A Lambda function raised: carries its error type, message and stack trace."""

    def __init__(
        self,
        function_name: str,
        error_type: str,
        error_message: str,
        stack_trace: list[str] | tuple[str, ...] = (),
        function_error: str = "Unhandled",
    ) -> None:
        self.function_name = function_name
        self.error_type = error_type
        self.error_message = error_message
        self.stack_trace = tuple(stack_trace)
        self.function_error = function_error
        super().__init__(f"{function_name} failed: {error_type}: {error_message}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            type(self),
            (
                self.function_name,
                self.error_type,
                self.error_message,
                self.stack_trace,
                self.function_error,
            ),
        )

    @classmethod
    def from_payload(
        cls, function_name: str, payload: bytes, function_error: str = "Unhandled"
    ) -> FunctionInvocationError:
        """Build the error from a Lambda FunctionError response payload."""
        text = payload.decode("utf-8", errors="replace")
        try:
            body = json.loads(text) if text else {}
        except ValueError:
            body = text
        if not isinstance(body, dict):
            return cls(function_name, function_error, str(body).strip(), (), function_error)
        trace = body.get("stackTrace") or []
        if not isinstance(trace, list):
            trace = [str(trace)]
        return cls(
            function_name,
            str(body.get("errorType") or function_error),
            str(body.get("errorMessage") or "(no error message)"),
            [str(line) for line in trace],
            function_error,
        )


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
            self._client = client("lambda", self.region)
        return self._client

    def backoff(self, attempt: int) -> float:
        """Return the delay before retry number attempt (1-based): exponential, equal jitter."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def invoke(self, function_name: str, event: dict) -> dict:
        """Invoke function_name with event (RequestResponse) and return its decoded JSON result."""
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
            raise FunctionInvocationError.from_payload(
                function_name, body, response["FunctionError"]
            )
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
        for attempt in range(1, self.max_attempts + 1):
            try:
                return self.client.invoke(
                    FunctionName=function_name,
                    InvocationType="RequestResponse",
                    Payload=payload,
                )
            except ClientError as exc:
                if not _is_retryable(exc) or attempt == self.max_attempts:
                    raise
                reason = _error_code(exc) or f"HTTP {_http_status(exc)}"
            except (EndpointConnectionError, ConnectTimeoutError) as exc:
                # The request never reached Lambda, so sending it again cannot run it twice.
                if attempt == self.max_attempts:
                    raise
                reason = type(exc).__name__
            delay = self.backoff(attempt)
            logger.warning(
                "Invoking %s failed with %s (attempt %d/%d); retrying in %.2fs",
                function_name,
                reason,
                attempt,
                self.max_attempts,
                delay,
            )
            self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover


# ---------------------------------------------------------------------------------------------
# SNS
# ---------------------------------------------------------------------------------------------

_ELLIPSIS = "..."


def sns_subject(text: str) -> str:
    """Make text a valid SNS subject: printable ASCII, one line, at most 100 characters."""
    # NFKD splits accents off their letters, so "Café" keeps its "e" instead of becoming "Caf?".
    decomposed = unicodedata.normalize("NFKD", text)
    chars: list[str] = []
    for char in decomposed:
        if char.isspace() or unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            chars.append(" ")
        elif unicodedata.combining(char):
            continue
        elif " " <= char <= "~":
            chars.append(char)
        elif unicodedata.category(char) in ("Cf", "Mn", "Me"):
            continue
        else:
            chars.append("?")
    subject = " ".join("".join(chars).split())
    if len(subject) > SNS_MAX_SUBJECT_CHARS:
        subject = subject[: SNS_MAX_SUBJECT_CHARS - len(_ELLIPSIS)].rstrip() + _ELLIPSIS
    return subject


def _is_sns_char(char: str) -> bool:
    """Tell whether SNS accepts char in a message body (the XML character range)."""
    code = ord(char)
    return (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    )


def sns_message(text: str) -> str:
    """Make text a valid SNS message body: allowed characters only, at most 256 KB of UTF-8."""
    cleaned = "".join(c if _is_sns_char(c) else "\ufffd" for c in text) or "(empty message)"
    encoded = cleaned.encode("utf-8")
    if len(encoded) <= SNS_MAX_MESSAGE_BYTES:
        return cleaned
    note = (
        f"\n\n[truncated by Headwater: the original message was {len(encoded)} bytes, "
        f"SNS accepts {SNS_MAX_MESSAGE_BYTES}]"
    )
    budget = SNS_MAX_MESSAGE_BYTES - len(note.encode("utf-8"))
    # Decoding with errors="ignore" drops a multi-byte character cut in half at the boundary.
    head = encoded[:budget].decode("utf-8", errors="ignore")
    return head + note


class SnsNotifier:
    """Publishes notifications to one SNS topic."""

    def __init__(
        self, topic_arn: str, region: str | None = None, client: BaseClient | None = None
    ) -> None:
        self.topic_arn = topic_arn
        # A topic ARN names its region; prefer it so a notifier cannot publish to the wrong one.
        self.region = region or _arn_region(topic_arn)
        self._client = client

    @property
    def client(self) -> BaseClient:
        """Return the SNS client, creating the shared one on first use."""
        if self._client is None:
            self._client = client("sns", self.region)
        return self._client

    def send(self, subject: str, message: str) -> str:
        """Publish message under subject and return the SNS MessageId."""
        params: dict[str, str] = {"TopicArn": self.topic_arn, "Message": sns_message(message)}
        clean_subject = sns_subject(subject)
        if clean_subject:
            params["Subject"] = clean_subject
        response = self.client.publish(**params)
        message_id = str(response["MessageId"])
        logger.info("Published %s to %s", message_id, self.topic_arn)
        return message_id


def _arn_region(arn: str) -> str | None:
    """Return the region field of an ARN, or None when it has none."""
    parts = arn.split(":")
    if len(parts) > 3 and parts[0] == "arn" and parts[3]:
        return parts[3]
    return None


# ---------------------------------------------------------------------------------------------
# Secrets
# ---------------------------------------------------------------------------------------------


class SecretNotFoundError(LookupError):
    """A referenced SSM parameter, secret or JSON key does not exist."""


def resolve_secret(
    ref: str,
    region: str | None = None,
    client_factory: Callable[..., BaseClient] = client,
) -> str:
    """Resolve 'ssm:/name' or 'secretsmanager:name[#key]' to its secret value."""
    scheme, _, name = ref.partition(":")
    secret_id, has_key, key = name.partition("#")
    if scheme == "ssm" and name:
        return _read_ssm_parameter(name, client_factory("ssm", region))
    if scheme == "secretsmanager" and secret_id and (key or not has_key):
        value = _read_secretsmanager(secret_id, client_factory("secretsmanager", region))
        return _json_key(value, secret_id, key) if key else value
    raise ValueError(
        f"bad secret reference {ref!r}: expected 'ssm:/path/to/param', "
        "'secretsmanager:name' or 'secretsmanager:name#jsonkey'"
    )


def _read_ssm_parameter(name: str, ssm: BaseClient) -> str:
    """Read one SSM parameter, decrypting SecureStrings."""
    try:
        response = ssm.get_parameter(Name=name, WithDecryption=True)
    except ClientError as exc:
        if _error_code(exc) in ("ParameterNotFound", "ParameterVersionNotFound"):
            raise SecretNotFoundError(
                f"SSM parameter {name!r} not found in {ssm.meta.region_name}"
            ) from exc
        raise
    return str(response["Parameter"]["Value"])


def _read_secretsmanager(secret_id: str, secrets: BaseClient) -> str:
    """Read the current value of one Secrets Manager secret as text."""
    try:
        response = secrets.get_secret_value(SecretId=secret_id)
    except ClientError as exc:
        if _error_code(exc) == "ResourceNotFoundException":
            raise SecretNotFoundError(
                f"Secrets Manager secret {secret_id!r} not found in {secrets.meta.region_name}"
            ) from exc
        raise
    if "SecretString" in response:
        return str(response["SecretString"])
    try:
        return bytes(response["SecretBinary"]).decode("utf-8")
    except (KeyError, UnicodeDecodeError) as exc:
        raise ValueError(f"Secrets Manager secret {secret_id!r} has no text value") from exc


def _json_key(value: str, secret_id: str, key: str) -> str:
    """Return key from a secret holding a JSON object; never echo the secret itself."""
    try:
        document = json.loads(value)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise ValueError(
            f"Secrets Manager secret {secret_id!r} is not a JSON object, cannot read key {key!r}"
        )
    if key not in document:
        raise SecretNotFoundError(f"Secrets Manager secret {secret_id!r} has no key {key!r}")
    item = document[key]
    return item if isinstance(item, str) else json.dumps(item)

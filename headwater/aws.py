"""The single adapter through which Headwater talks to AWS: clients, Lambda, SNS, secrets, EMR."""

from __future__ import annotations

import gzip
import json
import logging
import os
import random
import threading
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError

__all__ = [
    "DEFAULT_REGION",
    "EMR_RUN_ID_TAG",
    "ENDPOINT_URL_ENV",
    "MAX_SYNC_PAYLOAD_BYTES",
    "SNS_MAX_MESSAGE_BYTES",
    "SNS_MAX_SUBJECT_CHARS",
    "EmrJobSpec",
    "EmrRunResult",
    "EmrRunner",
    "EmrStepFailed",
    "EmrTimeout",
    "FunctionInvocationError",
    "LambdaExecutor",
    "LambdaResponseError",
    "PayloadTooLargeError",
    "SecretNotFoundError",
    "SnsNotifier",
    "build_job_flow_request",
    "client",
    "reset_clients",
    "resolve_region",
    "resolve_secret",
    "s3_compare_and_swap",
    "sns_message",
    "sns_subject",
    "upload_artifacts",
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


# ---------------------------------------------------------------------------------------------
# S3 conditional writes
# ---------------------------------------------------------------------------------------------

# 412: the If-Match / If-None-Match condition failed. 409: another conditional write to the
# key was in flight. 404: an If-Match PUT found the object deleted meanwhile.
_S3_CONFLICT_CODES = frozenset(
    {"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "404", "409", "412"}
)


def _s3_read(s3: BaseClient, bucket: str, key: str) -> tuple[bytes, str] | None:
    """Return an object's bytes and ETag (one GET, so they match), or None when absent."""
    try:
        response = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if _error_code(exc) in ("NoSuchKey", "404"):
            return None
        raise
    return response["Body"].read(), str(response["ETag"])


def s3_compare_and_swap(
    bucket: str,
    key: str,
    expected: bytes | None,
    new: bytes,
    *,
    region: str | None = None,
    endpoint_url: str | None = None,
    s3: BaseClient | None = None,
) -> bool:
    """Write new to s3://bucket/key only if it holds expected (None: only if absent).

    Returns False, writing nothing, when the object holds something else. The object is
    read once for its bytes and ETag, then replaced with ``If-Match: <ETag>`` (or created
    with ``If-None-Match: *``), so S3 itself rejects a write that lost a race.
    """
    s3 = s3 or client("s3", region, endpoint_url)
    condition: dict[str, str]
    if expected is None:
        condition = {"IfNoneMatch": "*"}
    else:
        current = _s3_read(s3, bucket, key)
        if current is None or current[0] != expected:
            return False
        condition = {"IfMatch": current[1]}
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=new, **condition)
    except ClientError as exc:
        if _error_code(exc) not in _S3_CONFLICT_CODES and _http_status(exc) not in (409, 412):
            raise
        # botocore retries a PUT whose answer was lost; if the first attempt landed, the retry
        # fails its own condition. The object holding our bytes then means the swap happened.
        after = _s3_read(s3, bucket, key)
        return after is not None and after[0] == new
    return True


# ---------------------------------------------------------------------------------------------
# EMR: one transient cluster per training run
# ---------------------------------------------------------------------------------------------
#
# The cluster is launched with its one step inline, KeepJobFlowAliveWhenNoSteps=False and an
# idle AutoTerminationPolicy, so it ends itself when the step ends. The runner decides on the
# STEP's state only: a cluster in RUNNING or WAITING says nothing about the job's outcome.
#
# Idempotency: every cluster carries the tag EMR_RUN_ID_TAG = run_id. run() first looks for an
# active (STARTING, BOOTSTRAPPING, RUNNING, WAITING) cluster with that tag and, if there is
# one, resumes polling its step instead of launching another. Only active clusters are
# adopted: a finished run is recorded by the calling task's own output, not by EMR history.
# Any exception raised while run() is responsible for a cluster, KeyboardInterrupt and
# SystemExit included, terminates that cluster before propagating, so a cluster is only left
# behind when the orchestrator dies without running Python code (SIGKILL, OOM killer, host
# loss). That is the one case adoption exists for. Limits: RunJobFlow has no idempotency
# token, so two orchestrators starting the same run at the same moment (the scheduler must
# prevent that) or a botocore retry of a RunJobFlow whose answer was lost can still launch a
# second cluster; the oldest is adopted and the other ends with its step or its idle timeout.

EMR_RUN_ID_TAG = "headwater:run-id"
EMR_ACTIVE_CLUSTER_STATES = ("STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING")
EMR_STEP_FAILED_STATES = frozenset({"FAILED", "CANCELLED", "INTERRUPTED"})
EMR_ARROW_CONF = "spark.sql.execution.arrow.pyspark.enabled"
# AutoTerminationPolicy accepts an idle timeout from one minute to seven days.
EMR_MIN_IDLE_SECONDS = 60
EMR_MAX_IDLE_SECONDS = 7 * 24 * 3600
EMR_LOG_TAIL_LINES = 50
EMR_LOG_TAIL_BYTES = 8 * 1024


@dataclass(frozen=True, kw_only=True)
class EmrJobSpec:
    """What to run on a transient EMR cluster: instances, software, the one Spark step, tags."""

    name: str
    release_label: str
    log_uri: str
    service_role: str
    job_flow_role: str
    master_instance_type: str
    core_instance_type: str
    core_instance_count: int
    step_name: str
    step_args: Sequence[str]
    core_spot: bool = False
    idle_timeout_seconds: int = 3600
    bootstrap_actions: Sequence[tuple[str, str, Sequence[str]]] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    subnet_id: str | None = None
    python_executable: str = "/usr/bin/python3"
    spark_conf: Mapping[str, str] = field(default_factory=lambda: {EMR_ARROW_CONF: "true"})

    def __post_init__(self) -> None:
        # Freeze the sequences and copy the mappings: a spec must not change after validation.
        set_field = object.__setattr__
        set_field(self, "step_args", tuple(str(arg) for arg in self.step_args))
        actions = tuple(
            (str(name), str(path), tuple(str(arg) for arg in args))
            for name, path, args in self.bootstrap_actions
        )
        set_field(self, "bootstrap_actions", actions)
        set_field(self, "tags", {str(k): str(v) for k, v in self.tags.items()})
        conf = {str(k): _spark_conf_value(v) for k, v in self.spark_conf.items()}
        if conf.setdefault(EMR_ARROW_CONF, "true") != "true":
            raise ValueError(f"{EMR_ARROW_CONF} must be 'true': the training job uses pandas UDFs")
        set_field(self, "spark_conf", conf)
        if not self.step_args:
            raise ValueError("step_args must hold the command to run (e.g. spark-submit ...)")
        if self.core_instance_count < 0:
            raise ValueError(f"core_instance_count must be >= 0, got {self.core_instance_count}")
        if not EMR_MIN_IDLE_SECONDS <= self.idle_timeout_seconds <= EMR_MAX_IDLE_SECONDS:
            raise ValueError(
                f"idle_timeout_seconds must be within {EMR_MIN_IDLE_SECONDS}.."
                f"{EMR_MAX_IDLE_SECONDS}, got {self.idle_timeout_seconds}"
            )
        _split_emr_s3_uri(self.log_uri)
        for _, path, _ in self.bootstrap_actions:
            _split_emr_s3_uri(path)


def _spark_conf_value(value: object) -> str:
    """Render a Spark property as EMR expects it: a string, booleans in lower case."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _split_emr_s3_uri(uri: str) -> tuple[str, str]:
    """Split 's3://bucket/key' (or EMR's s3n://) into bucket and key."""
    scheme, sep, rest = uri.partition("://")
    bucket, _, key = rest.partition("/")
    if not sep or scheme not in ("s3", "s3n") or not bucket:
        raise ValueError(f"not an S3 URI: {uri!r}")
    return bucket, key


def build_job_flow_request(spec: EmrJobSpec, run_id: str) -> dict[str, Any]:
    """Build the RunJobFlow parameters for one transient cluster running spec's step."""
    if not run_id:
        raise ValueError("run_id must not be empty: it is how a retry finds its cluster")
    groups: list[dict[str, Any]] = [
        {
            "Name": "master",
            "InstanceRole": "MASTER",
            "Market": "ON_DEMAND",
            "InstanceType": spec.master_instance_type,
            "InstanceCount": 1,
        }
    ]
    if spec.core_instance_count:
        # No BidPrice: a SPOT group without one bids up to the on-demand price.
        groups.append(
            {
                "Name": "core",
                "InstanceRole": "CORE",
                "Market": "SPOT" if spec.core_spot else "ON_DEMAND",
                "InstanceType": spec.core_instance_type,
                "InstanceCount": spec.core_instance_count,
            }
        )
    instances: dict[str, Any] = {
        "InstanceGroups": groups,
        "KeepJobFlowAliveWhenNoSteps": False,
        "TerminationProtected": False,
    }
    if spec.subnet_id:
        instances["Ec2SubnetId"] = spec.subnet_id
    tags = {**spec.tags, EMR_RUN_ID_TAG: run_id}
    return {
        "Name": spec.name,
        "ReleaseLabel": spec.release_label,
        "Applications": [{"Name": "Spark"}],
        "LogUri": spec.log_uri,
        "Instances": instances,
        "Steps": [
            {
                "Name": spec.step_name,
                "ActionOnFailure": "TERMINATE_CLUSTER",
                "HadoopJarStep": {"Jar": "command-runner.jar", "Args": list(spec.step_args)},
            }
        ],
        "BootstrapActions": [
            {"Name": name, "ScriptBootstrapAction": {"Path": path, "Args": list(args)}}
            for name, path, args in spec.bootstrap_actions
        ],
        "Configurations": [
            {"Classification": "spark-defaults", "Properties": dict(spec.spark_conf)},
            {
                # Workers run pandas UDFs, so they need the interpreter that has pandas/pyarrow.
                "Classification": "spark-env",
                "Properties": {},
                "Configurations": [
                    {
                        "Classification": "export",
                        "Properties": {"PYSPARK_PYTHON": spec.python_executable},
                    }
                ],
            },
        ],
        "AutoTerminationPolicy": {"IdleTimeout": spec.idle_timeout_seconds},
        "ServiceRole": spec.service_role,
        "JobFlowRole": spec.job_flow_role,
        "VisibleToAllUsers": True,
        "Tags": [{"Key": key, "Value": value} for key, value in sorted(tags.items())],
    }


# upload_artifacts takes a ``client`` argument, which hides the module's client() inside it.
_shared_client = client


def upload_artifacts(
    s3_prefix: str,
    files: Mapping[str, bytes],
    region: str | None = None,
    client: BaseClient | None = None,
) -> dict[str, str]:
    """Put each file under s3_prefix (a run-versioned prefix); return name -> s3:// URI."""
    bucket, prefix = _split_emr_s3_uri(s3_prefix)
    prefix = prefix.strip("/")
    for name in files:
        if not name or name.startswith("/") or ".." in name.split("/"):
            raise ValueError(f"artifact name {name!r} must be a relative path without '..'")
    s3 = client or _shared_client("s3", region)
    uris: dict[str, str] = {}
    for name, body in files.items():
        key = f"{prefix}/{name}" if prefix else name
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        uris[name] = f"s3://{bucket}/{key}"
        logger.info("Uploaded %s (%d bytes)", uris[name], len(body))
    return uris


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


@dataclass(frozen=True)
class EmrRunResult:
    """The outcome of EmrRunner.run: which cluster and step ran, and whether it was adopted."""

    cluster_id: str
    step_id: str
    state: str
    reused: bool


class EmrRunner:
    """Runs one Spark step on a transient EMR cluster and waits for the step's outcome."""

    def __init__(
        self,
        region: str | None = None,
        client: BaseClient | None = None,
        s3_client: BaseClient | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        poll_initial: float = 15.0,
        poll_max: float = 120.0,
        *,
        jitter: float = 0.1,
        log_wait_seconds: float = 120.0,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < poll_initial <= poll_max:
            raise ValueError(f"need 0 < poll_initial <= poll_max, got {poll_initial}, {poll_max}")
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter is a fraction in [0, 1), got {jitter}")
        self.region = region
        self.poll_initial = poll_initial
        self.poll_max = poll_max
        self.jitter = jitter
        self.log_wait_seconds = log_wait_seconds
        self._client = client
        self._s3 = s3_client
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()

    @property
    def client(self) -> BaseClient:
        """Return the EMR client, creating the shared one on first use."""
        if self._client is None:
            self._client = client("emr", self.region)
        return self._client

    @property
    def s3(self) -> BaseClient:
        """Return the S3 client that reads step logs, creating the shared one on first use."""
        if self._s3 is None:
            self._s3 = client("s3", self.region)
        return self._s3

    def poll_interval(self, poll: int) -> float:
        """Return the wait after poll number poll (0-based): doubling to poll_max, minus jitter."""
        ceiling = min(self.poll_max, self.poll_initial * 2**poll)
        # Jitter only shortens the wait, so poll_max stays a hard cap.
        return ceiling * (1 - self._rng.uniform(0, self.jitter))

    def run(self, spec: EmrJobSpec, run_id: str, timeout_seconds: float) -> EmrRunResult:
        """Run spec's step for run_id on a transient cluster (adopting a live one) and wait."""
        if timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds}")
        deadline = self._clock() + timeout_seconds
        found = self.find_active_run(spec, run_id)
        reused = found is not None
        cluster_id, step_id = found if found is not None else (self._launch(spec, run_id), None)
        # From here on this call owns a cluster: whatever happens, it must not outlive us.
        try:
            if step_id is None:
                step_id = self._step_id(cluster_id, spec.step_name)
                if step_id is None:
                    raise RuntimeError(
                        f"EMR cluster {cluster_id} has no step named {spec.step_name!r}"
                    )
            status = self._wait_for_step(cluster_id, step_id, deadline, timeout_seconds)
            state = str(status.get("State"))
            if state == "COMPLETED":
                logger.info("EMR step %s on cluster %s completed", step_id, cluster_id)
                return EmrRunResult(cluster_id, step_id, state, reused)
            reason = self._failure_reason(cluster_id, status)
        except BaseException as exc:
            _add_note(exc, self._terminate(cluster_id))
            raise
        # Terminating first also makes EMR push the step's final logs to S3.
        note = self._terminate(cluster_id)
        log_tail = self._read_step_log_tail(spec.log_uri, cluster_id, step_id)
        error = EmrStepFailed(cluster_id, step_id, state, reason, log_tail)
        _add_note(error, note)
        raise error

    def find_active_run(self, spec: EmrJobSpec, run_id: str) -> tuple[str, str | None] | None:
        """Return (cluster_id, step_id) of a live cluster tagged with run_id, or None.

        step_id is None when the cluster has no step named spec.step_name; such a stray
        cluster is terminated here and None is returned so that a fresh one is launched.
        """
        matches = self._active_clusters_of(run_id)
        if not matches:
            return None
        if len(matches) > 1:
            logger.warning(
                "Run %s has %d live EMR clusters (%s); adopting the oldest",
                run_id,
                len(matches),
                ", ".join(m["Id"] for m in matches),
            )
        cluster_id = str(matches[0]["Id"])
        step_id = self._step_id(cluster_id, spec.step_name)
        if step_id is None:
            logger.warning(
                "EMR cluster %s of run %s has no step named %r; terminating it",
                cluster_id,
                run_id,
                spec.step_name,
            )
            self.client.terminate_job_flows(JobFlowIds=[cluster_id])
            return None
        logger.info("Adopting EMR cluster %s (step %s) of run %s", cluster_id, step_id, run_id)
        return cluster_id, step_id

    def _active_clusters_of(self, run_id: str) -> list[dict[str, Any]]:
        """Return the live clusters tagged with run_id, oldest first."""
        matches = []
        pages = self.client.get_paginator("list_clusters").paginate(
            ClusterStates=list(EMR_ACTIVE_CLUSTER_STATES)
        )
        for page in pages:
            for summary in page.get("Clusters", []):
                # ListClusters carries no tags, so each live cluster is described once.
                cluster = self.client.describe_cluster(ClusterId=summary["Id"])["Cluster"]
                tags = {t.get("Key"): t.get("Value") for t in cluster.get("Tags", [])}
                state = cluster.get("Status", {}).get("State")
                if tags.get(EMR_RUN_ID_TAG) == run_id and state in EMR_ACTIVE_CLUSTER_STATES:
                    matches.append(cluster)
        return sorted(matches, key=_cluster_creation_time)

    def _launch(self, spec: EmrJobSpec, run_id: str) -> str:
        """Start the transient cluster for run_id and return its id."""
        request = build_job_flow_request(spec, run_id)
        try:
            response = self.client.run_job_flow(**request)
        except BaseException as exc:
            # RunJobFlow has no idempotency token: when its answer is lost (timeout, interrupt)
            # EMR may still have started the cluster, so look before giving up.
            survivors = self._clusters_after_failed_launch(run_id)
            if survivors and isinstance(exc, Exception):
                logger.warning(
                    "RunJobFlow for run %s failed (%r) but cluster %s exists; adopting it",
                    run_id,
                    exc,
                    survivors[0],
                )
                return survivors[0]
            for cluster_id in survivors:
                _add_note(exc, self._terminate(cluster_id))
            raise
        cluster_id = str(response["JobFlowId"])
        logger.info(
            "Launched EMR cluster %s (%s, %s) for run %s",
            cluster_id,
            spec.name,
            spec.release_label,
            run_id,
        )
        return cluster_id

    def _clusters_after_failed_launch(self, run_id: str) -> list[str]:
        """Return the ids of live clusters of run_id, or [] when even that lookup fails."""
        try:
            return [str(c["Id"]) for c in self._active_clusters_of(run_id)]
        except Exception as exc:
            logger.warning("Could not look for clusters of run %s: %s", run_id, exc)
            return []

    def _step_id(self, cluster_id: str, step_name: str) -> str | None:
        """Return the id of the newest step named step_name on the cluster, or None."""
        for page in self.client.get_paginator("list_steps").paginate(ClusterId=cluster_id):
            # ListSteps returns the newest step first.
            for step in page.get("Steps", []):
                if step.get("Name") == step_name:
                    return str(step["Id"])
        return None

    def _wait_for_step(
        self, cluster_id: str, step_id: str, deadline: float, timeout_seconds: float
    ) -> dict[str, Any]:
        """Poll the step until it is COMPLETED, FAILED, CANCELLED or INTERRUPTED; return Status."""
        previous = None
        poll = 0
        while True:
            step = self.client.describe_step(ClusterId=cluster_id, StepId=step_id)["Step"]
            status: dict[str, Any] = step.get("Status", {})
            state = str(status.get("State", "UNKNOWN"))
            if state != previous:
                logger.info(
                    "EMR step %s (%s) on cluster %s: %s -> %s",
                    step_id,
                    step.get("Name", "?"),
                    cluster_id,
                    previous or "(start)",
                    state,
                )
                previous = state
            if state == "COMPLETED" or state in EMR_STEP_FAILED_STATES:
                return status
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise EmrTimeout(cluster_id, step_id, state, timeout_seconds)
            self._sleep(min(self.poll_interval(poll), remaining))
            poll += 1

    def _terminate(self, cluster_id: str) -> str | None:
        """Terminate the cluster; on failure return a note for the error being raised."""
        try:
            self.client.terminate_job_flows(JobFlowIds=[cluster_id])
        except Exception as exc:
            # Raising this would hide the error that made us terminate: report it beside it.
            logger.error("Could not terminate EMR cluster %s: %s", cluster_id, exc)
            return f"terminating EMR cluster {cluster_id} failed too: {exc!r}"
        logger.info("Terminating EMR cluster %s", cluster_id)
        return None

    def _failure_reason(self, cluster_id: str, status: Mapping[str, Any]) -> str:
        """Describe why the step failed: its FailureDetails, else the state change reasons."""
        details = status.get("FailureDetails") or {}
        parts = [str(details[k]) for k in ("Reason", "Message") if details.get(k)]
        if details.get("LogFile"):
            parts.append(f"(log: {details['LogFile']})")
        if not parts:
            change = status.get("StateChangeReason") or {}
            parts = [str(change[k]) for k in ("Code", "Message") if change.get(k)]
        try:
            cluster = self.client.describe_cluster(ClusterId=cluster_id)["Cluster"]
        except Exception as exc:  # the reason is a courtesy: never let it mask the failure
            logger.warning("Could not describe EMR cluster %s: %s", cluster_id, exc)
        else:
            change = cluster.get("Status", {}).get("StateChangeReason") or {}
            cluster_reason = ": ".join(str(change[k]) for k in ("Code", "Message") if change.get(k))
            if cluster_reason:
                parts.append(f"[cluster: {cluster_reason}]")
        return " ".join(parts)

    def _read_step_log_tail(self, log_uri: str, cluster_id: str, step_id: str) -> str:
        """Return the last lines of the step's stderr, waiting a while for EMR to upload it."""
        bucket, prefix = _split_emr_s3_uri(log_uri)
        base = "/".join(p for p in (prefix.strip("/"), cluster_id, "steps", step_id) if p)
        deadline = self._clock() + self.log_wait_seconds
        while True:
            for key, compressed in ((f"{base}/stderr.gz", True), (f"{base}/stderr", False)):
                try:
                    tail = _s3_log_tail(self.s3, bucket, key, compressed)
                except Exception as exc:  # a missing log must never mask the step's failure
                    logger.warning("Could not read s3://%s/%s: %s", bucket, key, exc)
                    tail = None
                if tail is not None:
                    return tail
            remaining = deadline - self._clock()
            if remaining <= 0:
                logger.warning("No stderr for EMR step %s under s3://%s/%s", step_id, bucket, base)
                return ""
            # EMR uploads step logs every few minutes and when the cluster shuts down.
            self._sleep(min(self.poll_initial, remaining))


def _add_note(error: BaseException, note: str | None) -> None:
    """Attach note to error when there is one."""
    if note:
        error.add_note(note)


def _cluster_creation_time(cluster: Mapping[str, Any]) -> Any:
    """Sort key for clusters: creation time, then id."""
    created = cluster.get("Status", {}).get("Timeline", {}).get("CreationDateTime")
    return (created is None, created.timestamp() if created else 0.0, str(cluster.get("Id")))


def _s3_log_tail(s3: BaseClient, bucket: str, key: str, compressed: bool) -> str | None:
    """Return the tail of an S3 log object (gzip or plain), or None when it does not exist."""
    try:
        if compressed:
            response = s3.get_object(Bucket=bucket, Key=key)
        else:
            response = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=-{EMR_LOG_TAIL_BYTES}")
    except ClientError as exc:
        if _error_code(exc) in ("InvalidRange", "416"):
            return ""  # the log exists but is empty
        if _error_code(exc) in ("NoSuchKey", "404"):
            return None
        raise
    body = response["Body"]
    if not compressed:
        data = body.read()
        truncated = int(response.get("ContentLength") or len(data)) < _content_total(response)
        return _tail_lines(data, truncated)
    tail = b""
    total = 0
    # Decompress as a stream, keeping only the last bytes: step logs can be large.
    with gzip.GzipFile(fileobj=body, mode="rb") as stream:
        while chunk := stream.read(256 * 1024):
            total += len(chunk)
            tail = (tail + chunk)[-EMR_LOG_TAIL_BYTES:]
    return _tail_lines(tail, total > len(tail))


def _content_total(response: Mapping[str, Any]) -> int:
    """Return the full object size from a ranged GET's Content-Range ('bytes a-b/total')."""
    content_range = str(response.get("ContentRange") or "")
    total = content_range.rpartition("/")[2]
    return int(total) if total.isdigit() else int(response.get("ContentLength") or 0)


def _tail_lines(data: bytes, truncated: bool) -> str:
    """Decode a log's last bytes and keep its last EMR_LOG_TAIL_LINES whole lines."""
    lines = data.decode("utf-8", errors="replace").splitlines()
    if truncated and lines:
        lines = lines[1:]  # the first line was cut by the byte limit
    return "\n".join(lines[-EMR_LOG_TAIL_LINES:])

"""The single adapter through which Headwater talks to AWS, one module per service.

clients (lazy, cached, injectable boto3 clients), lambda_ (synchronous invocation), sns,
secrets, s3 (compare-and-swap, uploads, log tails) and emr (one step on a transient
cluster); errors holds one exception type per failure. The public names are re-exported
here, so callers write ``from headwater import aws`` and ``aws.LambdaExecutor(...)``.
Importing this package creates no client and needs neither credentials nor network.
"""

from __future__ import annotations

from headwater.aws.clients import (
    CONNECT_TIMEOUT_SECONDS,
    DEFAULT_REGION,
    ENDPOINT_URL_ENV,
    LAMBDA_READ_TIMEOUT_SECONDS,
    READ_TIMEOUT_SECONDS,
    client,
    reset_clients,
    resolve_region,
)
from headwater.aws.emr import (
    EMR_ACTIVE_CLUSTER_STATES,
    EMR_ARROW_CONF,
    EMR_LOG_TAIL_BYTES,
    EMR_LOG_TAIL_LINES,
    EMR_RUN_ID_TAG,
    EMR_STEP_FAILED_STATES,
    EmrJobSpec,
    EmrRunner,
    EmrRunResult,
    build_job_flow_request,
)
from headwater.aws.errors import (
    EmrStepFailed,
    EmrTimeout,
    FunctionFailed,
    LambdaResponseError,
    PayloadTooLargeError,
    SecretNotFoundError,
)
from headwater.aws.lambda_ import (
    MAX_SYNC_PAYLOAD_BYTES,
    LambdaExecutor,
    function_failed_from_payload,
)
from headwater.aws.s3 import s3_compare_and_swap, split_s3_uri, upload_artifacts
from headwater.aws.secrets import resolve_secret
from headwater.aws.sns import (
    SNS_MAX_MESSAGE_BYTES,
    SNS_MAX_SUBJECT_CHARS,
    SnsNotifier,
    sns_message,
    sns_subject,
)

__all__ = [
    "CONNECT_TIMEOUT_SECONDS",
    "DEFAULT_REGION",
    "EMR_ACTIVE_CLUSTER_STATES",
    "EMR_ARROW_CONF",
    "EMR_LOG_TAIL_BYTES",
    "EMR_LOG_TAIL_LINES",
    "EMR_RUN_ID_TAG",
    "EMR_STEP_FAILED_STATES",
    "ENDPOINT_URL_ENV",
    "LAMBDA_READ_TIMEOUT_SECONDS",
    "MAX_SYNC_PAYLOAD_BYTES",
    "READ_TIMEOUT_SECONDS",
    "SNS_MAX_MESSAGE_BYTES",
    "SNS_MAX_SUBJECT_CHARS",
    "EmrJobSpec",
    "EmrRunResult",
    "EmrRunner",
    "EmrStepFailed",
    "EmrTimeout",
    "FunctionFailed",
    "LambdaExecutor",
    "LambdaResponseError",
    "PayloadTooLargeError",
    "SecretNotFoundError",
    "SnsNotifier",
    "build_job_flow_request",
    "client",
    "function_failed_from_payload",
    "reset_clients",
    "resolve_region",
    "resolve_secret",
    "s3_compare_and_swap",
    "sns_message",
    "sns_subject",
    "split_s3_uri",
    "upload_artifacts",
]

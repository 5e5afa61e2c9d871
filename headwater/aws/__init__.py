"""The single adapter through which Headwater talks to AWS, one module per service.

clients (lazy, cached, injectable boto3 clients), lambda_ (synchronous invocation), sns,
secrets, s3 (compare-and-swap, uploads, log tails), emr (one step on a transient
cluster), and what a deploy needs: cloudformation (apply a stack, its outputs) and
apigateway (stage throttles, usage plans, keys); errors holds one exception type per
failure. The public names are re-exported
here, so callers write ``from headwater import aws`` and ``aws.LambdaExecutor(...)``.
Importing this package creates no client and needs neither credentials nor network, and
loads no service module: a re-exported name imports its module on first use (PEP 562), so
``import headwater.aws.clients`` (the API's model store) loads neither tenacity nor the EMR
and Lambda modules.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Service module -> the names this package re-exports from it (the one list of them).
_EXPORTS: dict[str, tuple[str, ...]] = {
    "apigateway": (
        "UsageLimits",
        "UsagePlanRef",
        "api_key_ids",
        "attach_api_key",
        "ensure_usage_plan",
        "rest_api_id",
        "throttle_stage",
    ),
    "clients": (
        "CONNECT_TIMEOUT_SECONDS",
        "DEFAULT_REGION",
        "ENDPOINT_URL_ENV",
        "LAMBDA_READ_TIMEOUT_SECONDS",
        "READ_TIMEOUT_SECONDS",
        "client",
        "reset_clients",
        "resolve_region",
    ),
    "cloudformation": (
        "MAX_TEMPLATE_BODY_BYTES",
        "StackOutcome",
        "apply_stack",
        "stack_outputs",
        "stack_status",
    ),
    "emr": (
        "EMR_ACTIVE_CLUSTER_STATES",
        "EMR_ARROW_CONF",
        "EMR_LOG_TAIL_BYTES",
        "EMR_LOG_TAIL_LINES",
        "EMR_RUN_ID_TAG",
        "EMR_STEP_FAILED_STATES",
        "EmrJobSpec",
        "EmrRunResult",
        "EmrRunner",
        "build_job_flow_request",
    ),
    "errors": (
        "EmrStepFailed",
        "EmrTimeout",
        "FunctionFailed",
        "LambdaResponseError",
        "PayloadTooLargeError",
        "SecretNotFoundError",
        "StackNeedsDeletion",
        "TemplateTooLarge",
    ),
    "lambda_": (
        "MAX_SYNC_PAYLOAD_BYTES",
        "LambdaExecutor",
        "function_exists",
        "function_failed_from_payload",
    ),
    "s3": ("s3_compare_and_swap", "split_s3_uri", "upload_artifacts"),
    "secrets": ("resolve_secret",),
    "sns": (
        "SNS_MAX_MESSAGE_BYTES",
        "SNS_MAX_SUBJECT_CHARS",
        "SnsNotifier",
        "pending_confirmations",
        "sns_message",
        "sns_subject",
    ),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    """Import the service module of a re-exported name on first use (PEP 562)."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

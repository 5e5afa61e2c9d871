"""CloudFormation: create or update a stack and wait for it, read its status and outputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from botocore.client import BaseClient
from botocore.exceptions import ClientError

from headwater.aws import clients
from headwater.aws.errors import StackNeedsDeletion, TemplateTooLarge, error_code
from headwater.core.logs import get_logger

log = get_logger("headwater.aws")

#: CloudFormation takes a template body of at most this many bytes inline (else from S3).
MAX_TEMPLATE_BODY_BYTES = 51_200
#: How many times a stack waiter polls before giving up (at 15 s, an hour).
STACK_WAIT_MAX_ATTEMPTS = 240
#: What applying a template did to the stack.
StackOutcome = Literal["created", "updated", "unchanged"]
# A stack whose creation failed and rolled back cannot be updated, only deleted and created.
_CREATION_FAILED = "ROLLBACK_COMPLETE"


def stack_status(
    name: str, client: BaseClient | None = None, region: str | None = None
) -> str | None:
    """Return the stack's status (``CREATE_COMPLETE``, ...), or None when there is no such stack."""
    cfn = client or clients.client("cloudformation", region)
    try:
        (stack,) = cfn.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        # CloudFormation answers a missing stack with a generic ValidationError; only its
        # message ("Stack with id <name> does not exist") tells it from a bad request.
        if error_code(exc) == "ValidationError" and "does not exist" in str(exc):
            return None
        raise
    return str(stack["StackStatus"])


def apply_stack(
    name: str,
    template_body: str,
    parameters: Mapping[str, str],
    *,
    capabilities: Sequence[str] = ("CAPABILITY_NAMED_IAM",),
    poll_seconds: int = 15,
    client: BaseClient | None = None,
    region: str | None = None,
) -> StackOutcome:
    """Create the stack, or update it, and wait until CloudFormation is done with it.

    Returns ``unchanged`` when the template and parameters are those the stack already has.
    Raises TemplateTooLarge over the inline limit, StackNeedsDeletion for a stack whose
    creation failed, and botocore's WaiterError when the stack ends in a failed state.
    """
    size = len(template_body.encode())
    if size > MAX_TEMPLATE_BODY_BYTES:
        raise TemplateTooLarge(name, size, MAX_TEMPLATE_BODY_BYTES)
    cfn = client or clients.client("cloudformation", region)
    status = stack_status(name, cfn)
    if status == _CREATION_FAILED:
        raise StackNeedsDeletion(name, status)
    arguments = {
        "StackName": name,
        "TemplateBody": template_body,
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        "Capabilities": list(capabilities),
    }
    wait = {
        "StackName": name,
        "WaiterConfig": {"Delay": poll_seconds, "MaxAttempts": STACK_WAIT_MAX_ATTEMPTS},
    }
    if status is None:
        cfn.create_stack(**arguments)
        cfn.get_waiter("stack_create_complete").wait(**wait)
        log.info("CloudFormation stack created", stack=name)
        return "created"
    try:
        cfn.update_stack(**arguments)
    except ClientError as exc:
        # Nothing to change is an error to CloudFormation, and success to a deploy.
        if "No updates are to be performed" in str(exc):
            log.info("CloudFormation stack unchanged", stack=name)
            return "unchanged"
        raise
    cfn.get_waiter("stack_update_complete").wait(**wait)
    log.info("CloudFormation stack updated", stack=name)
    return "updated"


def stack_outputs(
    name: str, client: BaseClient | None = None, region: str | None = None
) -> dict[str, str]:
    """Return the stack's outputs by key."""
    cfn = client or clients.client("cloudformation", region)
    (stack,) = cfn.describe_stacks(StackName=name)["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}

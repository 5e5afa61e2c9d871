"""Tests for headwater.aws.cloudformation: create, update, unchanged, outputs, refusals."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest
from botocore.exceptions import ClientError

from headwater import aws

TOPIC_TEMPLATE = {
    "Parameters": {"Stage": {"Type": "String"}},
    "Resources": {"Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "t"}}},
    "Outputs": {"TopicArn": {"Value": {"Ref": "Topic"}}, "Stage": {"Value": {"Ref": "Stage"}}},
}


def body(**changes: Any) -> str:
    template = json.loads(json.dumps(TOPIC_TEMPLATE))
    template["Resources"]["Topic"]["Properties"].update(changes)
    return json.dumps(template)


def test_a_stack_is_created_then_updated_then_left_unchanged(mocked_aws: None) -> None:
    assert aws.stack_status("s") is None

    created = aws.apply_stack("s", body(), {"Stage": "dev"}, poll_seconds=1)
    updated = aws.apply_stack("s", body(), {"Stage": "prod"}, poll_seconds=1)

    assert (created, updated) == ("created", "updated")
    assert aws.stack_status("s") in ("CREATE_COMPLETE", "UPDATE_COMPLETE")
    outputs = aws.stack_outputs("s")
    assert outputs["Stage"] == "prod" and outputs["TopicArn"].startswith("arn:aws:sns:")


def client_error(code: str, message: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


class FakeCfn:
    """A CloudFormation client with one stack in a given status that records every call."""

    def __init__(self, status: str | None, update_error: str | None = None) -> None:
        self.status = status
        self.update_error = update_error
        self.calls: list[str] = []

    def describe_stacks(self, StackName: str) -> dict[str, Any]:  # noqa: N803
        self.calls.append("describe_stacks")
        if self.status is None:
            error = {
                "Code": "ValidationError",
                "Message": f"Stack with id {StackName} does not exist",
            }
            raise ClientError({"Error": error}, "DescribeStacks")
        return {"Stacks": [{"StackStatus": self.status}]}

    def update_stack(self, **arguments: Any) -> None:
        self.calls.append("update_stack")
        if self.update_error:
            raise ClientError(
                {"Error": {"Code": "ValidationError", "Message": self.update_error}}, "UpdateStack"
            )

    def get_waiter(self, name: str) -> Any:
        self.calls.append(name)
        return type("Waiter", (), {"wait": lambda self, **kwargs: None})()


def test_no_change_is_unchanged_and_nothing_is_awaited() -> None:
    cfn = FakeCfn("UPDATE_COMPLETE", update_error="No updates are to be performed.")

    assert aws.apply_stack("s", "{}", {}, client=cfn) == "unchanged"
    assert cfn.calls == ["describe_stacks", "update_stack"]


def test_another_update_error_is_raised() -> None:
    cfn = FakeCfn("UPDATE_COMPLETE", update_error="Parameter Stage is not declared")

    with pytest.raises(ClientError, match="Parameter Stage"):
        aws.apply_stack("s", "{}", {}, client=cfn)


def test_a_stack_whose_creation_rolled_back_must_be_deleted_first() -> None:
    cfn = FakeCfn("ROLLBACK_COMPLETE")

    with pytest.raises(aws.StackNeedsDeletion) as raised:
        aws.apply_stack("s", "{}", {}, client=cfn)

    assert "delete-stack --stack-name s" in str(raised.value)
    assert cfn.calls == ["describe_stacks"]  # nothing created, nothing updated
    again = pickle.loads(pickle.dumps(raised.value))
    assert (again.stack, again.status, str(again)) == ("s", "ROLLBACK_COMPLETE", str(raised.value))


def test_a_template_over_the_inline_limit_is_refused_before_any_call() -> None:
    cfn = FakeCfn(None)
    too_big = " " * (aws.MAX_TEMPLATE_BODY_BYTES + 1)

    with pytest.raises(aws.TemplateTooLarge, match="upload it to S3"):
        aws.apply_stack("s", too_big, {}, client=cfn)
    assert cfn.calls == []


def test_another_describe_error_is_raised() -> None:
    class Denied(FakeCfn):
        def describe_stacks(self, StackName: str) -> dict[str, Any]:  # noqa: N803
            raise ClientError(
                {"Error": {"Code": "AccessDenied", "Message": "no"}}, "DescribeStacks"
            )

    with pytest.raises(ClientError, match="AccessDenied"):
        aws.stack_status("s", client=Denied(None))

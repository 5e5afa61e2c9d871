"""Tests for headwater.aws.apigateway on moto: stage throttles, usage plans, their keys."""

from __future__ import annotations

import pytest

from headwater import aws

LIMITS = aws.UsageLimits(rate_limit=10.0, burst_limit=20, quota_limit=20000, quota_period="DAY")


@pytest.fixture
def api(mocked_aws: None) -> str:
    """A REST API called ``hw-api`` with a ``prod`` stage; its id."""
    apigateway = aws.client("apigateway")
    api_id = apigateway.create_rest_api(name="hw-api")["id"]
    root = apigateway.get_resources(restApiId=api_id)["items"][0]["id"]
    apigateway.put_method(
        restApiId=api_id, resourceId=root, httpMethod="GET", authorizationType="NONE"
    )
    apigateway.put_integration(restApiId=api_id, resourceId=root, httpMethod="GET", type="MOCK")
    apigateway.create_deployment(restApiId=api_id, stageName="prod")
    return str(api_id)


def test_an_api_is_found_by_name(api: str) -> None:
    assert aws.rest_api_id("hw-api") == api
    assert aws.rest_api_id("hw-other") is None


def test_a_stage_is_throttled(api: str) -> None:
    aws.throttle_stage(api, "prod", 50.0, 100)

    stage = aws.client("apigateway").get_stage(restApiId=api, stageName="prod")
    settings = stage["methodSettings"]["*/*"]
    assert settings["throttlingRateLimit"] == 50.0 and settings["throttlingBurstLimit"] == 100


def test_a_usage_plan_is_created_then_updated_to_the_new_limits(api: str) -> None:
    first = aws.ensure_usage_plan("hw-plan", api, "prod", LIMITS, description="callers")
    second = aws.ensure_usage_plan(
        "hw-plan",
        api,
        "prod",
        aws.UsageLimits(rate_limit=5.0, burst_limit=8, quota_limit=100, quota_period="WEEK"),
    )

    assert first.created and not second.created and first.plan_id == second.plan_id
    (plan,) = aws.client("apigateway").get_usage_plans()["items"]
    assert plan["apiStages"] == [{"apiId": api, "stage": "prod"}]
    assert plan["throttle"] == {"rateLimit": 5.0, "burstLimit": 8}
    assert plan["quota"]["limit"] == 100 and plan["quota"]["period"] == "WEEK"


def test_a_key_is_attached_once(api: str) -> None:
    apigateway = aws.client("apigateway")
    key = apigateway.create_api_key(name=f"prod_{api}", enabled=True)["id"]
    apigateway.create_api_key(name="other", enabled=True)
    plan = aws.ensure_usage_plan("hw-plan", api, "prod", LIMITS)

    assert aws.api_key_ids(f"prod_{api}") == [key]
    assert aws.attach_api_key(plan.plan_id, key) is True
    assert aws.attach_api_key(plan.plan_id, key) is False
    (attached,) = apigateway.get_usage_plan_keys(usagePlanId=plan.plan_id)["items"]
    assert attached["id"] == key

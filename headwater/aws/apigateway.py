"""API Gateway (REST APIs): find an API by name, throttle a stage, usage plans and their keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from botocore.client import BaseClient

from headwater.aws import clients
from headwater.core.logs import get_logger

log = get_logger("headwater.aws")


@dataclass(frozen=True)
class UsageLimits:
    """What a usage plan allows each of its keys: a throttle and a quota."""

    #: Steady requests per second.
    rate_limit: float
    #: Requests in a burst above the steady rate.
    burst_limit: int
    #: Requests per quota period.
    quota_limit: int
    #: The period the quota counts over.
    quota_period: Literal["DAY", "WEEK", "MONTH"]


@dataclass(frozen=True)
class UsagePlanRef:
    """A usage plan made to match: its id, and whether this call created it."""

    plan_id: str
    created: bool


def _apigateway(client: BaseClient | None, region: str | None) -> BaseClient:
    return client or clients.client("apigateway", region)


def _items(client: BaseClient, operation: str, **arguments: Any) -> list[dict[str, Any]]:
    """Every item of a paginated API Gateway listing."""
    pages = client.get_paginator(operation).paginate(**arguments)
    return [item for page in pages for item in page["items"]]


def _throttle_patch(prefix: str, rate_limit: float, burst_limit: int) -> list[dict[str, str]]:
    return [
        {"op": "replace", "path": f"{prefix}/rateLimit", "value": f"{rate_limit:g}"},
        {"op": "replace", "path": f"{prefix}/burstLimit", "value": str(burst_limit)},
    ]


def rest_api_id(
    api_name: str, client: BaseClient | None = None, region: str | None = None
) -> str | None:
    """Return the id of the REST API called api_name, or None when there is none."""
    for api in _items(_apigateway(client, region), "get_rest_apis"):
        if api["name"] == api_name:
            return str(api["id"])
    return None


def throttle_stage(
    api_id: str,
    stage: str,
    rate_limit: float,
    burst_limit: int,
    client: BaseClient | None = None,
    region: str | None = None,
) -> None:
    """Throttle every method of a stage (``/*/*``) to rate_limit req/s and burst_limit."""
    _apigateway(client, region).update_stage(
        restApiId=api_id,
        stageName=stage,
        patchOperations=_throttle_patch("/*/*/throttling", rate_limit, burst_limit),
    )
    log.info("API stage throttled", api_id=api_id, stage=stage, rate_limit=rate_limit)


def ensure_usage_plan(
    name: str,
    api_id: str,
    stage: str,
    limits: UsageLimits,
    *,
    description: str = "",
    client: BaseClient | None = None,
    region: str | None = None,
) -> UsagePlanRef:
    """Make the usage plan called name allow limits on the API's stage: update it, or create it.

    Idempotent: an existing plan (the first of that name) gets the limits and, when it lacks
    it, the stage; a missing one is created with both.
    """
    apigateway = _apigateway(client, region)
    existing = [p for p in _items(apigateway, "get_usage_plans") if p["name"] == name]
    if existing:
        plan = existing[0]
        operations = [
            *_throttle_patch("/throttle", limits.rate_limit, limits.burst_limit),
            {"op": "replace", "path": "/quota/limit", "value": str(limits.quota_limit)},
            {"op": "replace", "path": "/quota/period", "value": limits.quota_period},
        ]
        stages = {(s["apiId"], s["stage"]) for s in plan.get("apiStages", [])}
        if (api_id, stage) not in stages:
            operations.append({"op": "add", "path": "/apiStages", "value": f"{api_id}:{stage}"})
        apigateway.update_usage_plan(usagePlanId=plan["id"], patchOperations=operations)
        log.info("usage plan updated", plan=name, plan_id=plan["id"])
        return UsagePlanRef(str(plan["id"]), created=False)
    created = apigateway.create_usage_plan(
        name=name,
        description=description,
        apiStages=[{"apiId": api_id, "stage": stage}],
        throttle={"rateLimit": limits.rate_limit, "burstLimit": limits.burst_limit},
        quota={"limit": limits.quota_limit, "period": limits.quota_period},
    )
    log.info("usage plan created", plan=name, plan_id=created["id"])
    return UsagePlanRef(str(created["id"]), created=True)


def api_key_ids(
    name_query: str, client: BaseClient | None = None, region: str | None = None
) -> list[str]:
    """Return the ids of the API keys whose name starts with name_query."""
    keys = _apigateway(client, region).get_api_keys(nameQuery=name_query)["items"]
    return [str(key["id"]) for key in keys]


def attach_api_key(
    plan_id: str, key_id: str, client: BaseClient | None = None, region: str | None = None
) -> bool:
    """Add the API key to the usage plan; False (nothing done) when the plan has it already."""
    apigateway = _apigateway(client, region)
    attached = {k["id"] for k in _items(apigateway, "get_usage_plan_keys", usagePlanId=plan_id)}
    if key_id in attached:
        return False
    apigateway.create_usage_plan_key(usagePlanId=plan_id, keyId=key_id, keyType="API_KEY")
    log.info("API key attached to a usage plan", plan_id=plan_id, key_id=key_id)
    return True

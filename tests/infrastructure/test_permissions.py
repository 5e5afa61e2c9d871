"""Who may do what in the stack: the roles' policies evaluated against what the code does.

The statements of each role in infrastructure/headwater.yaml are resolved for the prod stage
and evaluated the way IAM does (an explicit Deny wins, otherwise any matching Allow whose
conditions hold) against the requests the code really makes: the keys the training job
writes, the production pointer the gate switches, the RunJobFlow request of the EMR runner.
"""

from __future__ import annotations

import re
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import boto3
import pytest
from cfnlint.decode import decode_str
from moto import mock_aws

from headwater import aws
from headwater.core import layout
from headwater.core.config import load_settings
from headwater.data.lake import open_lake
from headwater.model.options import TrainOptions
from headwater.model.runners import EmrTrainingRunner
from luigi_tasks.training import training_entrypoint

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "infrastructure" / "headwater.yaml"
REGION, ACCOUNT = "us-east-1", "123456789012"
LAKE = "arn:aws:s3:::headwater-prod-lake"
CLUSTER = f"arn:aws:elasticmapreduce:{REGION}:{ACCOUNT}:cluster/j-1"
# what the template's ${...} and !GetAtt name, for the prod stage
NAMES = {
    "Stage": "prod",
    "AWS::Partition": "aws",
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "LakeBucket.Arn": LAKE,
    "ArtifactsBucket.Arn": "arn:aws:s3:::headwater-prod-artifacts",
    "LogsBucket.Arn": "arn:aws:s3:::headwater-prod-logs",
}


def resolve(node: Any) -> str:
    """A CloudFormation value as deployed for prod (names outside NAMES stay placeholders)."""
    if isinstance(node, str):
        return node
    if "Ref" in node:
        return NAMES.get(node["Ref"], f"<{node['Ref']}>")
    if "Fn::GetAtt" in node:
        name = ".".join(node["Fn::GetAtt"])
        return NAMES.get(name, f"<{name}>")
    if "Fn::Sub" in node:
        return re.sub(r"\$\{([^}]+)\}", lambda m: NAMES.get(m[1], f"<{m[1]}>"), node["Fn::Sub"])
    raise AssertionError(f"unexpected value {node!r}")


def listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def matches(pattern: str, value: str) -> bool:
    """IAM's wildcards: * is any run of characters (slashes included), ? is one."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, flags=re.DOTALL | re.IGNORECASE) is not None


def conditions_hold(condition: dict[str, Any], context: dict[str, str]) -> bool:
    for operator, clauses in condition.items():
        for key, expected in clauses.items():
            values = [resolve(v) for v in listed(expected)]
            if operator in ("StringEquals", "Bool"):
                holds = context.get(key) in values
            elif operator == "Null":
                holds = (key not in context) == (values == ["true"])
            else:
                raise AssertionError(f"the evaluator does not know {operator}: teach it")
            if not holds:
                return False
    return True


def statements(role: str) -> list[dict[str, Any]]:
    body, problems = decode_str(TEMPLATE.read_text())
    assert not problems
    policies = body["Resources"][role]["Properties"]["Policies"]
    return [s for p in policies for s in p["PolicyDocument"]["Statement"]]


def allowed(role: str, action: str, resource: str, context: dict[str, str] | None = None) -> bool:
    """IAM's decision for one request by ``role``: a matching Deny wins over every Allow."""
    verdict = False
    for statement in statements(role):
        if not any(matches(a, action) for a in listed(statement["Action"])):
            continue
        if not any(matches(resolve(r), resource) for r in listed(statement["Resource"])):
            continue
        if not conditions_hold(statement.get("Condition", {}), context or {}):
            continue
        if statement["Effect"] == "Deny":
            return False
        verdict = True
    return verdict


def test_the_evaluator_reads_wildcards_as_iam_does() -> None:
    assert matches(
        "arn:aws:s3:::b/models/*/????????T??????Z-*",
        "arn:aws:s3:::b/models/x/20261124T063000Z-ab/c",
    )
    assert not matches(
        "arn:aws:s3:::b/models/*/????????T??????Z-*", "arn:aws:s3:::b/models/x/PRODUCTION.json"
    )
    assert matches("arn:aws:s3:::b/models_$folder$", "arn:aws:s3:::b/models_$folder$")
    assert not matches("arn:aws:s3:::b/models_$folder$", "arn:aws:s3:::b/models_folder")


# -- the lake: the training job writes its version, the gate switches the pointer ------------


@pytest.fixture
def job_keys(trained_model: Any, moto_endpoint: str, aws_env: None) -> list[str]:
    """Every key a training run leaves in an S3 lake: its version's files and pyarrow's markers.

    The job's output (trained here by the real job on a local lake) is written again through
    the lake's own writer into an S3 lake on the moto server, as the job does on EMR.
    """
    local = trained_model.lake
    version_dir = Path(
        local.path(*layout.model_parts(trained_model.usecase, trained_model.version))
    )
    files = sorted(p for p in version_dir.rglob("*") if p.is_file())
    assert any(p.name == layout.SUCCESS for p in files) and len(files) > 5

    s3 = boto3.client("s3", region_name=REGION, endpoint_url=moto_endpoint)
    bucket = f"job-keys-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    lake = open_lake(f"s3://{bucket}", region=REGION, endpoint_url=moto_endpoint)
    root = Path(local.path())
    for path in files:
        lake.write_bytes(path.read_bytes(), *path.relative_to(root).parts)
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]


def test_the_training_job_may_write_every_key_it_writes(job_keys: list[str]) -> None:
    # pyarrow puts directory markers above the version before each write: they are keys too
    assert "models/" in job_keys and any(k.endswith("/_SUCCESS") for k in job_keys)

    refused = [k for k in job_keys if not allowed("EmrInstanceRole", "s3:PutObject", f"{LAKE}/{k}")]

    assert refused == []


@pytest.mark.parametrize(
    "key",
    [
        # EMRFS marks the directories it creates with <dir>_$folder$ objects
        "models_$folder$",
        "models/meters_$folder$",
        "models/meters/20261124T063000Z-ab12cd_$folder$",
        "models/meters/20261124T063000Z-ab12cd/spark/classifier_$folder$",
    ],
)
def test_the_training_job_may_write_emrfs_directory_markers(key: str) -> None:
    assert allowed("EmrInstanceRole", "s3:PutObject", f"{LAKE}/{key}")


@pytest.mark.parametrize("action", ["s3:PutObject", "s3:DeleteObject"])
@pytest.mark.parametrize(
    "key",
    [
        "models/meters/PRODUCTION.json",
        "models/another/PRODUCTION.json",
        "raw/meters/readings/month=2013-01/_manifest.json",
        "clean/meters/readings/month=2013-01/part-1.parquet",
        "quarantine/meters/weather/month=2013-01/_manifest.json",
        "models/meters/not-a-version/export.json",
    ],
)
def test_the_training_job_may_not_touch_a_pointer_or_anything_but_versions(
    action: str, key: str
) -> None:
    assert not allowed("EmrInstanceRole", action, f"{LAKE}/{key}")


def test_the_pointer_is_switched_by_the_scheduler_and_only_there() -> None:
    pointer = f"{LAKE}/{'/'.join(layout.model_parts('meters', layout.POINTER))}"

    assert allowed("SchedulerTaskRole", "s3:PutObject", pointer)
    assert not allowed("EmrInstanceRole", "s3:PutObject", pointer)
    assert not allowed("FunctionRole", "s3:PutObject", pointer)


@pytest.mark.parametrize("zone", [layout.RAW, layout.CLEAN, layout.QUARANTINE])
def test_the_functions_write_the_data_zones_and_read_the_models(zone: str) -> None:
    key = f"{LAKE}/{zone}/meters/readings/month=2013-01/_manifest.json"

    assert allowed("FunctionRole", "s3:PutObject", key)
    assert allowed("FunctionRole", "s3:GetObject", f"{LAKE}/models/meters/v1/export.json")
    assert not allowed("FunctionRole", "s3:PutObject", f"{LAKE}/models/meters/v1/export.json")


# -- EMR: the scheduler launches and ends only its stage's tagged training clusters ----------


@pytest.fixture
def job_flow_request(aws_env: None) -> dict[str, Any]:
    """The RunJobFlow request prod's EMR runner sends for a training run."""
    launched: list[aws.EmrJobSpec] = []

    class Recorder:
        def run(self, spec: aws.EmrJobSpec, run_id: str, timeout: float) -> aws.EmrRunResult:
            launched.append(spec)
            return aws.EmrRunResult("j-1", "s-1", "COMPLETED", False)

    with mock_aws():
        prod = load_settings("prod")
        bucket = prod.training.emr.artifacts_uri.removeprefix("s3://").split("/")[0]
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=bucket)
        EmrTrainingRunner(prod, training_entrypoint(), emr_runner=Recorder()).run(
            TrainOptions(
                usecase=prod.usecases[0],  # any use case prod enables
                lake=prod.lake.uri,
                version="v1",
                start=date(2013, 1, 1),
                end=date(2013, 12, 31),
            ),
            "r1",
        )
    (spec,) = launched
    return aws.build_job_flow_request(spec, "r1")


def tag_context(prefix: str, tags: dict[str, str]) -> dict[str, str]:
    return {f"aws:{prefix}/{key}": value for key, value in tags.items()}


def test_the_runners_clusters_are_launched_and_ended_under_their_tags(
    job_flow_request: dict[str, Any],
) -> None:
    tags = {t["Key"]: t["Value"] for t in job_flow_request["Tags"]}

    assert allowed(
        "SchedulerTaskRole", "elasticmapreduce:RunJobFlow", "*", tag_context("RequestTag", tags)
    )
    on_cluster = tag_context("ResourceTag", tags)
    for action in ("TerminateJobFlows", "DescribeStep", "ListSteps", "AddTags"):
        assert allowed("SchedulerTaskRole", f"elasticmapreduce:{action}", CLUSTER, on_cluster)


@pytest.mark.parametrize(
    "change",
    [
        {"stage": "dev"},  # another stage's cluster
        {"stage": None},  # untagged
        {aws.EMR_RUN_ID_TAG: None},  # not a headwater run's
    ],
)
def test_no_other_cluster_can_be_launched_or_ended(
    job_flow_request: dict[str, Any], change: dict[str, str | None]
) -> None:
    tags = {t["Key"]: t["Value"] for t in job_flow_request["Tags"]}
    tags = {k: v for k, v in {**tags, **change}.items() if v is not None}

    assert not allowed(
        "SchedulerTaskRole", "elasticmapreduce:RunJobFlow", "*", tag_context("RequestTag", tags)
    )
    for action in ("TerminateJobFlows", "AddTags"):
        on_cluster = tag_context("ResourceTag", tags)
        assert not allowed("SchedulerTaskRole", f"elasticmapreduce:{action}", CLUSTER, on_cluster)


@pytest.mark.parametrize("role", ["SchedulerTaskRole", "EmrInstanceRole", "FunctionRole"])
def test_nothing_but_reads_is_granted_on_every_resource_unconditionally(role: str) -> None:
    unconditional = [
        action
        for s in statements(role)
        if s["Effect"] == "Allow" and "*" in listed(s["Resource"]) and not s.get("Condition")
        for action in listed(s["Action"])
    ]

    assert set(unconditional) <= {
        "elasticmapreduce:ListClusters",
        "elasticmapreduce:DescribeCluster",
    }

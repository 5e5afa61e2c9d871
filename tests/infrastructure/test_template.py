"""The CloudFormation template: valid, deployable (moto), and in step with the code and config.

The stack is created in moto's CloudFormation; resources moto cannot create (alarms,
the e-mail subscription, the topic policy) are checked on the template as parsed by
cfn-lint's decoder. Failure alerts are checked by matching sample events against the
deployed rules' patterns with moto's EventBridge matcher.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from datetime import date
from importlib import import_module
from pathlib import Path
from typing import Any

import boto3
import pytest
from cfnlint.api import lint_all
from cfnlint.decode import decode_str
from moto import mock_aws
from moto.events.models import EventPattern

from headwater import aws
from headwater.core.config import load_settings
from headwater.core.partitions import resolve_date
from headwater.model.options import TrainOptions
from headwater.model.runners import EmrTrainingRunner, cluster_name
from luigi_tasks.training import training_entrypoint

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "infrastructure" / "headwater.yaml"
# checkov's own environment (its pins clash with .venv's): `make checkov`, which `make test` runs
CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"
REGION = "us-east-1"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/headwater"

# moto creates what it supports and warns about the rest (checked on the template below)
pytestmark = pytest.mark.filterwarnings(
    "ignore:Tried to parse AWS.+not supported by moto:UserWarning"
)


def template() -> dict[str, Any]:
    body, problems = decode_str(TEMPLATE.read_text())
    assert not problems
    return body


def test_the_template_passes_cfn_lint() -> None:
    findings = lint_all(TEMPLATE.read_text())

    # errors, warnings and the informational checks we act on (retention of stateful resources)
    relevant = [f for f in findings if f.rule.severity != "informational" or f.rule.id == "I3011"]
    assert [str(f) for f in relevant] == []


def test_the_template_passes_checkov_and_every_skip_says_why() -> None:
    if not CHECKOV.exists():
        reason = f"{CHECKOV.parent.parent.name} is absent: `make checkov` creates it"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (make test does, before pytest)")
        pytest.skip(reason)

    done = subprocess.run(
        [str(CHECKOV), "--file", str(TEMPLATE), "--framework", "cloudformation"]
        + ["--output", "json", "--skip-download", "--compact"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(done.stdout)
    results = report["results"]

    failed = [f"{c['check_id']} {c['resource']}" for c in results["failed_checks"]]
    assert (failed, done.returncode) == ([], 0)
    # a template checkov cannot parse passes vacuously: it must have checked what matters most
    checked = {c["resource"] for c in results["passed_checks"] + results["skipped_checks"]}
    assert {
        "AWS::S3::Bucket.LakeBucket",
        "AWS::IAM::Role.SchedulerTaskRole",
        "AWS::IAM::Role.EmrInstanceRole",
        "AWS::Lambda::Function.ExtractFunction",
    } <= checked
    for check in results["skipped_checks"]:
        reason = check["check_result"].get("suppress_comment", "")
        assert len(reason.split()) >= 8, f"{check['check_id']} {check['resource']}: {reason!r}"


@pytest.fixture(scope="module")
def stack() -> Any:
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        group = ec2.create_security_group(GroupName="scheduler", Description="egress", VpcId=vpc)
        cfn = boto3.client("cloudformation", region_name=REGION)
        parameters = {
            "Stage": "prod",
            "FunctionImageUri": f"{IMAGE}-functions:1",
            "SchedulerImageUri": f"{IMAGE}-scheduler:1",
            "SchedulerSubnetIds": subnet,
            "SchedulerSecurityGroupIds": group["GroupId"],
            "AlertEmail": "ops@example.com",
        }
        cfn.create_stack(
            StackName="headwater-prod",
            TemplateBody=TEMPLATE.read_text(),
            Capabilities=["CAPABILITY_NAMED_IAM"],
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        )
        yield cfn.describe_stacks(StackName="headwater-prod")["Stacks"][0]


@pytest.fixture(scope="module")
def vpc_stack(stack: Any) -> Any:
    """A second stage, ``vpc``, whose functions are placed in a VPC, with endpoint and NAT."""
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    private = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.1.{n}.0/24")["Subnet"]["SubnetId"]
        for n in (1, 2)
    ]
    public = ec2.create_subnet(VpcId=vpc, CidrBlock="10.1.9.0/24")["Subnet"]["SubnetId"]
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    group = ec2.create_security_group(GroupName="functions", Description="egress", VpcId=vpc)
    placement = {
        "FunctionSubnetIds": ",".join(private),
        "FunctionSecurityGroupIds": group["GroupId"],
        "FunctionVpcId": vpc,
        "FunctionRouteTableId": table,
        "FunctionNatSubnetId": public,
    }
    parameters = {
        "Stage": "vpc",
        "FunctionImageUri": f"{IMAGE}-functions:1",
        "SchedulerImageUri": f"{IMAGE}-scheduler:1",
        "SchedulerSubnetIds": private[0],
        "SchedulerSecurityGroupIds": group["GroupId"],
        **placement,
    }
    cfn = boto3.client("cloudformation", region_name=REGION)
    cfn.create_stack(
        StackName="headwater-vpc",
        TemplateBody=TEMPLATE.read_text(),
        Capabilities=["CAPABILITY_NAMED_IAM"],
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
    )
    return cfn.describe_stacks(StackName="headwater-vpc")["Stacks"][0], placement


def outputs(stack: Any) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}


def test_the_stack_creates_and_its_outputs_are_what_config_prod_names(stack: Any) -> None:
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    out = outputs(stack)
    prod = load_settings("prod")

    assert out["LakeUri"] == prod.lake.uri
    assert out["ExtractFunctionName"] == prod.executor.extract_function
    assert out["CleanFunctionName"] == prod.executor.clean_function
    assert out["ArtifactsUri"] == prod.training.emr.artifacts_uri
    assert out["EmrLogUri"] == prod.training.emr.log_uri
    assert out["EmrServiceRoleName"] == prod.training.emr.service_role
    assert out["EmrInstanceProfileName"] == prod.training.emr.job_flow_role
    # the topic's account differs per deployment (the task gets the real ARN in its env)
    assert out["RunsTopicArn"].rsplit(":", 1)[1] == prod.notify.topic_arn.rsplit(":", 1)[1]


def test_zappa_deploys_into_the_stages_artifacts_bucket_and_reads_its_lake(stack: Any) -> None:
    zappa = json.loads((REPO / "zappa_settings.json").read_text())["prod"]
    out = outputs(stack)

    assert f"s3://{zappa['s3_bucket']}/runs/" == out["ArtifactsUri"]
    assert zappa["environment_variables"]["HEADWATER_LAKE__URI"] == out["LakeUri"]


def test_the_lake_bucket_is_versioned_retained_encrypted_and_private(stack: Any) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    bucket = outputs(stack)["LakeUri"].removeprefix("s3://")
    lake = template()["Resources"]["LakeBucket"]

    # moto's CloudFormation does not apply versioning: checked on the template
    assert lake["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}
    assert lake["DeletionPolicy"] == lake["UpdateReplacePolicy"] == "Retain"
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    block = lake["Properties"]["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4


def test_every_bucket_refuses_plain_http_and_the_lake_logs_its_access() -> None:
    # moto's CloudFormation applies neither bucket policies nor logging: checked on the template
    resources = template()["Resources"]
    buckets = {k for k, v in resources.items() if v["Type"] == "AWS::S3::Bucket"}
    policies = [v["Properties"] for v in resources.values() if v["Type"] == "AWS::S3::BucketPolicy"]

    assert {p["Bucket"]["Ref"] for p in policies} == buckets
    for policy in policies:
        bucket = policy["Bucket"]["Ref"]
        (deny,) = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
        assert deny["Principal"] == "*" and deny["Action"] == "s3:*"
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        assert deny["Resource"] == [
            {"Fn::GetAtt": [bucket, "Arn"]},
            {"Fn::Sub": f"${{{bucket}.Arn}}/*"},
        ]
    for name, prefix in (
        ("LakeBucket", "s3-access/lake/"),
        ("ArtifactsBucket", "s3-access/artifacts/"),
    ):
        logging = resources[name]["Properties"]["LoggingConfiguration"]
        assert logging == {"DestinationBucketName": {"Ref": "LogsBucket"}, "LogFilePrefix": prefix}
    (delivery,) = [
        s
        for s in resources["LogsBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Allow"
    ]
    assert delivery["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert delivery["Resource"] == {"Fn::Sub": "${LogsBucket.Arn}/s3-access/*"}
    sources = [s["Fn::Sub"] for s in delivery["Condition"]["ArnLike"]["aws:SourceArn"]]
    named = {
        resources[n]["Properties"]["BucketName"]["Fn::Sub"]
        for n in ("LakeBucket", "ArtifactsBucket")
    }
    assert {s.removeprefix("arn:${AWS::Partition}:s3:::") for s in sources} == named


def test_the_functions_reserve_what_a_run_can_use_at_once(stack: Any) -> None:
    lam = boto3.client("lambda", region_name=REGION)
    default = template()["Parameters"]["FunctionReservedConcurrency"]["Default"]

    # one Luigi worker invokes one function at a time: prod's run never throttles itself
    assert default == load_settings("prod").run.workers
    for name in ("extract", "clean"):
        reserved = lam.get_function_concurrency(FunctionName=f"headwater-prod-{name}")
        assert reserved["ReservedConcurrentExecutions"] == default


def test_functions_are_images_whose_commands_are_the_real_handlers(stack: Any) -> None:
    lam = boto3.client("lambda", region_name=REGION)
    body = template()["Resources"]

    for logical, name in (("ExtractFunction", "extract"), ("CleanFunction", "clean")):
        config = lam.get_function(FunctionName=f"headwater-prod-{name}")["Configuration"]
        assert config["Timeout"] == 900
        # moto's CloudFormation ignores the package type: checked on the template
        assert body[logical]["Properties"]["PackageType"] == "Image"
        assert config["Environment"]["Variables"]["HEADWATER_STAGE"] == "prod"
        (command,) = body[logical]["Properties"]["ImageConfig"]["Command"]
        module, function = command.rsplit(".", 1)
        assert callable(getattr(import_module(module), function)), command


def test_the_daily_rule_runs_headwater_run_on_fargate(stack: Any) -> None:
    events = boto3.client("events", region_name=REGION)
    ecs = boto3.client("ecs", region_name=REGION)

    rule = events.describe_rule(Name="headwater-prod-daily-run")
    assert rule["ScheduleExpression"] == "cron(30 6 * * ? *)"
    assert rule["State"] == "ENABLED"
    (target,) = events.list_targets_by_rule(Rule="headwater-prod-daily-run")["Targets"]
    assert target["Arn"].endswith(":cluster/headwater-prod")
    assert target["EcsParameters"]["LaunchType"] == "FARGATE"
    task = ecs.describe_task_definition(taskDefinition=target["EcsParameters"]["TaskDefinitionArn"])
    (container,) = task["taskDefinition"]["containerDefinitions"]
    command = container["command"]
    assert command[:4] == ["headwater", "run", "--stage", "prod"]
    # a rolling window the CLI resolves each day: the trailing year up to yesterday
    assert command[command.index("--start") + 1] == "today-365"
    assert command[command.index("--end") + 1] == "yesterday"
    today = date(2026, 3, 1)
    assert resolve_date("today-365", today) < resolve_date("yesterday", today)
    # moto's CloudFormation drops the launch settings: checked on the template
    properties = template()["Resources"]["SchedulerTaskDefinition"]["Properties"]
    assert properties["RequiresCompatibilities"] == ["FARGATE"]
    assert properties["NetworkMode"] == "awsvpc"


def test_a_stopped_scheduler_has_the_time_to_stop_its_training_and_notify() -> None:
    from headwater.model.runners import STOP_GRACE_SECONDS

    (container,) = template()["Resources"]["SchedulerTaskDefinition"]["Properties"][
        "ContainerDefinitions"
    ]
    # the job's grace period, SIGKILL and reaping, then the notification (a few seconds)
    needed = 2 * STOP_GRACE_SECONDS + 1 + 10
    assert container["StopTimeout"] >= needed  # ECS's default, 30 s on Fargate, is not assumed


def test_the_schedulers_environment_overrides_are_settings_the_code_accepts(
    stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ecs = boto3.client("ecs", region_name=REGION)
    task = ecs.describe_task_definition(taskDefinition="headwater-prod-scheduler")
    env = {
        e["name"]: e["value"]
        for e in task["taskDefinition"]["containerDefinitions"][0]["environment"]
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    settings = load_settings()

    out = outputs(stack)
    assert settings.stage == "prod"
    assert settings.notify.topic_arn == out["RunsTopicArn"]
    assert settings.executor.extract_function == out["ExtractFunctionName"]
    assert settings.executor.clean_function == out["CleanFunctionName"]
    assert settings.lake.uri == out["LakeUri"]
    emr = settings.training.emr
    assert (emr.artifacts_uri, emr.log_uri) == (out["ArtifactsUri"], out["EmrLogUri"])
    assert (emr.service_role, emr.job_flow_role) == (
        out["EmrServiceRoleName"],
        out["EmrInstanceProfileName"],
    )


def event(source: str, detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "e1",
        "source": source,
        "detail-type": detail_type,
        "account": "123456789012",
        "time": "2026-11-24T06:45:00Z",
        "region": REGION,
        "resources": [],
        "detail": detail,
    }


def rule_matches(name: str, sample: dict[str, Any]) -> bool:
    rule = boto3.client("events", region_name=REGION).describe_rule(Name=name)
    return EventPattern.load(rule["EventPattern"]).matches_event(sample)


def test_a_failed_scheduled_run_alerts_and_a_clean_exit_does_not(stack: Any) -> None:
    # moto's matcher does not descend into arrays of objects (the containers): the pattern is
    # checked as deployed, against the task's cluster, by its clauses
    rule = boto3.client("events", region_name=REGION).describe_rule(
        Name="headwater-prod-run-failed"
    )
    pattern = json.loads(rule["EventPattern"])
    cluster = boto3.client("ecs", region_name=REGION).describe_clusters(
        clusters=["headwater-prod"]
    )["clusters"][0]["clusterArn"]

    assert pattern["source"] == ["aws.ecs"]
    assert pattern["detail-type"] == ["ECS Task State Change"]
    assert pattern["detail"]["clusterArn"] == [cluster]
    assert pattern["detail"]["lastStatus"] == ["STOPPED"]
    assert pattern["detail"]["containers"] == {"exitCode": [{"anything-but": 0}]}


def test_a_failed_training_cluster_of_this_stage_alerts(stack: Any) -> None:
    def ended(state: str, name: str) -> dict[str, Any]:
        return event("aws.emr", "EMR Cluster State Change", {"state": state, "name": name})

    ours = cluster_name("prod", "20261124T063000Z")
    assert rule_matches(
        "headwater-prod-training-cluster-failed", ended("TERMINATED_WITH_ERRORS", ours)
    )
    assert not rule_matches("headwater-prod-training-cluster-failed", ended("TERMINATED", ours))
    other = ended("TERMINATED_WITH_ERRORS", "someone-elses-cluster")
    assert not rule_matches("headwater-prod-training-cluster-failed", other)


def test_every_alert_publishes_to_the_runs_topic() -> None:
    resources = template()["Resources"]

    alarms = {k: v for k, v in resources.items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    watched = {
        (a["Properties"]["MetricName"], json.dumps(a["Properties"]["Dimensions"][0]["Value"]))
        for a in alarms.values()
    }
    assert watched == {
        ("Errors", '{"Ref": "ExtractFunction"}'),
        ("Errors", '{"Ref": "CleanFunction"}'),
        ("FailedInvocations", '{"Ref": "DailyRunRule"}'),
        ("Errors", '{"Fn::Sub": "headwater-api-${Stage}"}'),
        ("5XXError", '{"Fn::Sub": "headwater-api-${Stage}"}'),
    }
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "RunsTopic"}]
    for name in ("SchedulerFailedRule", "SchedulerNotStartedRule", "TrainingClusterFailedRule"):
        (target,) = resources[name]["Properties"]["Targets"]
        assert target["Arn"] == {"Ref": "RunsTopic"}
        # a sentence for the people on the topic, not the raw event: every placeholder is mapped
        transformer = target["InputTransformer"]
        text = transformer["InputTemplate"]["Fn::Sub"]
        placeholders = set(re.findall(r"<(\w+)>", text))
        assert placeholders == set(transformer["InputPathsMap"]), name
        assert text.startswith('"Headwater ${Stage}: ') and text.endswith('"')
    policy = resources["RunsTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert set(policy["Principal"]["Service"]) == {
        "events.amazonaws.com",
        "cloudwatch.amazonaws.com",
    }
    assert resources["AlertSubscription"]["Condition"] == "HasAlertEmail"


def test_api_alarms_watch_the_names_zappa_deploys() -> None:
    # Zappa names the function and the REST API <project_name>-<stage>
    zappa = json.loads((REPO / "zappa_settings.json").read_text())["prod"]
    resources = template()["Resources"]

    for name in ("ApiErrorsAlarm", "Api5xxAlarm"):
        (dimension,) = resources[name]["Properties"]["Dimensions"]
        deployed = dimension["Value"]["Fn::Sub"].replace("${Stage}", "prod")
        assert deployed == f"{zappa['project_name']}-prod", name


def test_a_run_that_never_started_alerts(stack: Any) -> None:
    def stopped(stop_code: str) -> dict[str, Any]:
        cluster = "arn:aws:ecs:us-east-1:123456789012:cluster/headwater-prod"
        detail = {"clusterArn": cluster, "lastStatus": "STOPPED", "stopCode": stop_code}
        return event("aws.ecs", "ECS Task State Change", detail)

    assert rule_matches("headwater-prod-run-not-started", stopped("TaskFailedToStart"))
    assert not rule_matches("headwater-prod-run-not-started", stopped("EssentialContainerExited"))


def test_training_clusters_carry_the_tag_the_emr_service_policy_requires(stack: Any) -> None:
    # Given the stack's EMR service role on the managed v2 policy, which only acts on
    # clusters tagged for it
    role = template()["Resources"]["EmrServiceRole"]["Properties"]
    assert role["ManagedPolicyArns"] == [
        "arn:aws:iam::aws:policy/service-role/AmazonEMRServicePolicy_v2"
    ]
    launched: list[aws.EmrJobSpec] = []

    class Recorder:
        def run(self, spec: aws.EmrJobSpec, run_id: str, timeout: float) -> aws.EmrRunResult:
            launched.append(spec)
            return aws.EmrRunResult("j-1", "s-1", "COMPLETED", False)

    # When prod's runner launches a training run into the stack's buckets and roles
    prod = load_settings("prod")
    runner = EmrTrainingRunner(prod, training_entrypoint(), emr_runner=Recorder())
    options = TrainOptions(
        usecase=prod.usecases[0], lake=prod.lake.uri, version="v1", start=date(2013, 1, 1),
        end=date(2013, 12, 31),
    )  # fmt: skip
    runner.run(options, "r1")

    # Then the cluster carries the tag, the stack's roles, and a name the failure rule matches
    (spec,) = launched
    assert spec.tags["for-use-with-amazon-emr-managed-policies"] == "true"
    assert (spec.service_role, spec.job_flow_role) == (
        outputs(stack)["EmrServiceRoleName"],
        outputs(stack)["EmrInstanceProfileName"],
    )
    assert spec.name == cluster_name("prod", "r1")


def test_the_scheduler_may_pass_only_the_stages_emr_roles() -> None:
    resources = template()["Resources"]
    statements = resources["SchedulerTaskRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    (pass_role,) = [s for s in statements["Statement"] if s["Action"] == "iam:PassRole"]

    assert pass_role["Resource"] == [
        {"Fn::GetAtt": ["EmrServiceRole", "Arn"]},
        {"Fn::GetAtt": ["EmrInstanceRole", "Arn"]},
    ]


def test_the_image_build_files_install_extras_that_exist() -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for dockerfile, extra in (
        ("functions.Dockerfile", "data"),
        ("scheduler.Dockerfile", "orchestration"),
    ):
        text = (REPO / "infrastructure" / dockerfile).read_text()
        assert f".[{extra}]" in text, dockerfile
        assert extra in extras


def created_by(stack_name: str, resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The EC2 resources (endpoints, NAT gateways) CloudFormation tagged as the stack's."""
    return [
        r
        for r in resources
        if {"Key": "aws:cloudformation:stack-name", "Value": stack_name} in r.get("Tags", [])
    ]


def test_by_default_the_functions_run_outside_any_vpc_and_the_stack_adds_no_network(
    stack: Any,
) -> None:
    lam = boto3.client("lambda", region_name=REGION)
    ec2 = boto3.client("ec2", region_name=REGION)

    for name in ("extract", "clean"):
        config = lam.get_function(FunctionName=f"headwater-prod-{name}")["Configuration"]
        assert not config.get("VpcConfig", {}).get("SubnetIds")
    assert created_by("headwater-prod", ec2.describe_vpc_endpoints()["VpcEndpoints"]) == []
    assert created_by("headwater-prod", ec2.describe_nat_gateways()["NatGateways"]) == []
    assert "FunctionEgressIp" not in outputs(stack)


def test_given_subnets_the_functions_run_in_the_vpc_reaching_s3_and_the_internet(
    vpc_stack: Any,
) -> None:
    # Given the stage vpc's stack, deployed with the placement parameters (fixture)
    stack, placement = vpc_stack
    lam = boto3.client("lambda", region_name=REGION)
    ec2 = boto3.client("ec2", region_name=REGION)
    table = placement["FunctionRouteTableId"]

    # Then both functions run in the given subnets with the given security groups
    for name in ("extract", "clean"):
        config = lam.get_function(FunctionName=f"headwater-vpc-{name}")["Configuration"]
        assert config["VpcConfig"]["SubnetIds"] == placement["FunctionSubnetIds"].split(",")
        assert config["VpcConfig"]["SecurityGroupIds"] == [placement["FunctionSecurityGroupIds"]]

    # And the lake is reached through an S3 gateway endpoint on their route table
    (endpoint,) = created_by("headwater-vpc", ec2.describe_vpc_endpoints()["VpcEndpoints"])
    assert endpoint["VpcEndpointType"] == "Gateway"
    assert endpoint["ServiceName"] == f"com.amazonaws.{REGION}.s3"
    assert (endpoint["VpcId"], endpoint["RouteTableIds"]) == (placement["FunctionVpcId"], [table])

    # And the HTTP sources (and SSM, Secrets Manager) through a NAT gateway in the public subnet
    (nat,) = created_by("headwater-vpc", ec2.describe_nat_gateways()["NatGateways"])
    assert nat["SubnetId"] == placement["FunctionNatSubnetId"]
    routes = ec2.describe_route_tables(RouteTableIds=[table])["RouteTables"][0]["Routes"]
    default = [r for r in routes if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
    assert [r.get("NatGatewayId") for r in default] == [nat["NatGatewayId"]]
    (address,) = nat["NatGatewayAddresses"]
    assert outputs(stack)["FunctionEgressIp"] == address["PublicIp"]


def test_in_a_vpc_the_functions_role_may_manage_their_network_interfaces() -> None:
    # moto's CloudFormation attaches no AWS-managed policy: checked on the template
    arns = template()["Resources"]["FunctionRole"]["Properties"]["ManagedPolicyArns"]
    (conditional,) = [a for a in arns if isinstance(a, dict)]
    assert conditional == {
        "Fn::If": [
            "FunctionsInVpc",
            "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
            {"Ref": "AWS::NoValue"},
        ]
    }


def test_no_check_is_skipped_on_the_claim_that_the_functions_read_only_public_sources() -> None:
    # prod's functions read SQL databases too (config/prod.toml): the VPC check is met by the
    # conditional placement, not skipped with a reason that is not true there
    prod = load_settings("prod")
    kinds = {s.kind for name in prod.usecases for s in prod.usecase_config(name).sources.values()}
    assert "sql" in kinds
    resources = template()["Resources"]
    for name in ("ExtractFunction", "CleanFunction"):
        skips = resources[name].get("Metadata", {}).get("checkov", {}).get("skip", [])
        assert "CKV_AWS_117" not in {s["id"] for s in skips}, name
        assert resources[name]["Properties"]["VpcConfig"] == {
            "Fn::If": [
                "FunctionsInVpc",
                {
                    "SubnetIds": {"Ref": "FunctionSubnetIds"},
                    "SecurityGroupIds": {"Ref": "FunctionSecurityGroupIds"},
                },
                {"Ref": "AWS::NoValue"},
            ]
        }


def evaluate_rule(node: Any, values: dict[str, Any]) -> Any:
    """A CloudFormation rule function over parameter values (the functions the template uses)."""
    if not isinstance(node, dict):
        return node
    ((function, argument),) = node.items()
    if function == "Ref":
        return values[argument]
    arguments = [evaluate_rule(a, values) for a in argument]
    operations = {
        "Fn::And": lambda: all(arguments),
        "Fn::Or": lambda: any(arguments),
        "Fn::Not": lambda: not arguments[0],
        "Fn::Equals": lambda: arguments[0] == arguments[1],
        "Fn::Contains": lambda: arguments[1] in arguments[0],
    }
    return operations[function]()


VPC = {
    "FunctionSubnetIds": ["subnet-1", "subnet-2"],
    "FunctionSecurityGroupIds": ["sg-1"],
    "FunctionVpcId": "vpc-1",
    "FunctionRouteTableId": "rtb-1",
    "FunctionNatSubnetId": "subnet-9",
}


@pytest.mark.parametrize(
    ("given", "refused"),
    [
        ({}, None),
        (VPC, None),
        ({k: VPC[k] for k in ("FunctionSubnetIds", "FunctionSecurityGroupIds")}, None),
        ({k: v for k, v in VPC.items() if k != "FunctionNatSubnetId"}, None),
        ({"FunctionSubnetIds": VPC["FunctionSubnetIds"]}, "go together"),
        ({"FunctionSecurityGroupIds": VPC["FunctionSecurityGroupIds"]}, "go together"),
        ({k: v for k, v in VPC.items() if k != "FunctionVpcId"}, "needs FunctionSubnetIds and"),
        ({"FunctionRouteTableId": "rtb-1", "FunctionVpcId": "vpc-1"}, "needs FunctionSubnetIds"),
        ({k: v for k, v in VPC.items() if k != "FunctionRouteTableId"}, "FunctionNatSubnetId"),
    ],
)
def test_a_partial_vpc_placement_is_refused_before_anything_is_created(
    given: dict[str, Any], refused: str | None
) -> None:
    # CloudFormation checks Rules before creating or updating anything; moto does not: the
    # assertions are evaluated here on the parameters' values (an empty list is [""])
    body = template()
    values = {
        name: ([""] if spec["Type"] == "CommaDelimitedList" else "")
        for name, spec in body["Parameters"].items()
        if name.startswith("Function") and spec.get("Default") == ""
    }
    assert set(values) == set(VPC)
    values.update(given)
    failed = [
        a["AssertDescription"]
        for rule in body["Rules"].values()
        for a in rule["Assertions"]
        if not evaluate_rule(a["Assert"], values)
    ]
    if refused is None:
        assert failed == []
    else:
        (reason,) = failed
        assert refused in reason


def test_the_vpc_parameters_are_optional_and_pass_through_headwater_deploy() -> None:
    from cli.deploy_steps import DeployRequest, plan_deploy

    def plan(parameters: dict[str, str]) -> Any:
        request = DeployRequest(stage="prod", repo=REPO, image_tag="t", parameters=parameters)
        return plan_deploy(request)

    # no placement: nothing of it is missing (the scheduler's network still is)
    assert set(plan({}).missing_parameters) == {"SchedulerSubnetIds", "SchedulerSecurityGroupIds"}
    # `--parameter FunctionSubnetIds=subnet-1,subnet-2 ...` reaches the stack as given
    given = {k: ",".join(v) if isinstance(v, list) else v for k, v in VPC.items()}
    assert {k: plan(given).stack_parameters[k] for k in VPC} == given

"""cli.deploy_steps: the plan from local files, access control, and the AWS path on moto."""

from __future__ import annotations

import ast
import functools
import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest

from cli.deploy_steps import (
    STACK_TEMPLATE,
    DeployContext,
    DeployError,
    DeployRequest,
    api_access,
    api_requirements,
    find_python,
    lint_templates,
    package_bytecode,
    plan_deploy,
    require_python,
    run_plan,
    stack_parameters,
    template_parameters,
    wire_access,
    zappa_stage,
    zappa_template_command,
)
from headwater import aws

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com/headwater"

# moto creates what it supports and warns about the rest
pytestmark = pytest.mark.filterwarnings(
    "ignore:Tried to parse AWS.+not supported by moto:UserWarning"
)


def request(**changes: Any) -> DeployRequest:
    fields: dict[str, Any] = {
        "stage": "prod",
        "repo": REPO,
        "image_tag": "abc1234",
        "image_repository": ECR,
        "python": Path("/opt/python3.13/bin/python3.13"),
    }
    return DeployRequest(**{**fields, **changes})


# ----------------------------------------------------------------- the plan


def test_the_plan_runs_every_step_in_order_with_the_runtimes_python() -> None:
    plan = plan_deploy(request(docker=True))

    keys = [s.key for s in plan.steps]
    assert keys == ["images", "api-package", "validate", "stack", "api", "access", "alerts"]
    assert plan.runtime == "python3.13" and plan.api_name == "headwater-api-prod"
    assert [s.needs_aws for s in plan.steps] == [True, False, False, True, True, True, True]
    images, package = plan.steps[0], plan.steps[1]
    assert images.skipped is None
    assert ("docker", "push", f"{ECR}-functions:abc1234") in images.commands
    venv, install, zappa = package.commands
    assert venv[:3] == ("/opt/python3.13/bin/python3.13", "-m", "venv")
    assert install[0] == str(REPO / ".venv-lambda/bin/python")
    assert zappa[1:3] == ("package", "prod")
    assert plan.stack_parameters["FunctionImageUri"] == f"{ECR}-functions:abc1234"
    assert plan.stack_parameters["SchedulerImageUri"] == f"{ECR}-scheduler:abc1234"
    assert set(plan.missing_parameters) == {"SchedulerSubnetIds", "SchedulerSecurityGroupIds"}
    text = plan.describe()
    assert "API key (x-api-key header)" in text and "reserved concurrency 20" in text
    assert "missing stack parameters" in text


def test_without_docker_the_images_step_says_why_it_is_skipped() -> None:
    plan = plan_deploy(request(docker=False, image_repository=None))

    (images,) = [s for s in plan.steps if s.key == "images"]
    assert images.skipped and "no Docker daemon" in images.skipped
    assert "<account>.dkr.ecr.us-east-1.amazonaws.com" in plan.stack_parameters["FunctionImageUri"]


def test_only_selects_steps_and_unknown_steps_are_refused() -> None:
    assert [s.key for s in plan_deploy(request(only=("api-package",))).steps] == ["api-package"]
    with pytest.raises(DeployError, match="unknown step"):
        plan_deploy(request(only=("nope",)))


def test_unknown_stack_parameters_are_refused() -> None:
    with pytest.raises(DeployError, match="Colour"):
        stack_parameters(template_parameters(REPO), "prod", {}, {"Colour": "blue"})


def test_a_dry_run_runs_only_local_steps_and_builds_with_the_runtimes_python(
    tmp_path: Path,
) -> None:
    calls: list[list[str]] = []

    def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        if command[1:3] == ["-m", "venv"]:
            Path(command[-1]).mkdir()
        if command[1:2] == ["package"]:  # Zappa, its zip callback included
            zappa_package(Path(command[-1]), with_bytecode=True)
        return subprocess.CompletedProcess(command, 0, "", "")

    plan = plan_deploy(request(only=("api-package", "stack", "api", "access")))
    plan = type(plan)(**{**plan.__dict__, "package": tmp_path / "p.zip", "venv": tmp_path / "v"})
    lines: list[str] = []
    context = DeployContext(
        repo=REPO, python=Path("/py313"), docker=False, run=run, echo=lines.append, dry_run=True
    )

    done = run_plan(plan, context)

    assert [c[0] for c in calls] == [
        "/py313",
        str(tmp_path / "v/bin/python"),
        f"{tmp_path}/v/bin/zappa",
    ]
    assert len(done) == 1 and "built with /py313" in done[0]
    assert "cpython-313 bytecode of 2 modules" in done[0]
    assert sum("dry run, not done" in line for line in lines) == 3  # stack, api, access


def zappa_package(archive: Path, with_bytecode: bool) -> Path:
    """A two-module zip as Zappa writes it, with the zip callback's bytecode or without."""
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("handler.py", "")
        zipped.writestr("api/__init__.py", "")
        zipped.writestr("api/openapi.json", "{}")
        if with_bytecode:
            zipped.writestr("__pycache__/handler.cpython-313.pyc", "")
            zipped.writestr("api/__pycache__/__init__.cpython-313.pyc", "")
    return archive


def test_a_package_without_the_runtimes_bytecode_is_refused(tmp_path: Path) -> None:
    # Zappa's own zip, the callback not run (or another Python's bytecode)
    bare = zappa_package(tmp_path / "bare.zip", with_bytecode=False)
    with pytest.raises(DeployError, match=r"2 module\(s\) without cpython-313 bytecode.*handler"):
        package_bytecode(bare, "python3.13")
    built = zappa_package(tmp_path / "built.zip", with_bytecode=True)
    with pytest.raises(DeployError, match="without cpython-314 bytecode"):
        package_bytecode(built, "python3.14")
    assert package_bytecode(built, "python3.13") == 2


def test_a_missing_runtime_python_is_a_clear_error() -> None:
    with pytest.raises(DeployError, match=r"no Python 3\.13 interpreter.*pyenv install 3\.13"):
        require_python("3.13", None)


def test_find_python_takes_pyenvs_newest_patch_release(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for version in ("3.13.0", "3.13.2", "3.12.9"):
        python = tmp_path / "versions" / version / "bin" / f"python{version[:4]}"
        python.parent.mkdir(parents=True)
        python.touch()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))

    assert find_python("3.13", tmp_path) == tmp_path / "versions/3.13.2/bin/python3.13"
    assert find_python("3.14", tmp_path) is None


def test_the_lambda_venv_installs_the_api_without_gunicorn_plus_zappa() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    names = [re.split(r"[<>=\[]", r)[0] for r in api_requirements(pyproject)]

    # apig-wsgi: the package's own Lambda handler (api/lambda_handler.py) translates events
    assert {"flask", "pydantic", "structlog", "zappa", "apig-wsgi"} <= set(names)
    assert not {"gunicorn", "pandas", "pyspark", "luigi"} & set(names)


def test_images_and_the_api_run_the_same_python() -> None:
    runtime = zappa_stage(REPO, "prod")["runtime"].removeprefix("python")
    for name in ("functions", "scheduler"):
        dockerfile = (REPO / f"infrastructure/{name}.Dockerfile").read_text()
        (base,) = re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
        assert re.search(rf"python:{re.escape(runtime)}(\b|-)", base), base


def test_the_templates_lint_clean_and_a_broken_one_does_not(tmp_path: Path) -> None:
    assert lint_templates([REPO / STACK_TEMPLATE]) == []
    broken = tmp_path / "broken.yaml"
    broken.write_text("Resources:\n  Topic:\n    Type: AWS::SNS::Topicc\n")
    assert lint_templates([broken])


# ------------------------------------------------------------ access control


def test_the_stages_access_is_a_key_with_a_plan() -> None:
    access = api_access(zappa_stage(REPO, "dev"), "dev")

    assert access.mode == "api_key" and access.reserved_concurrency == 5
    assert access.usage_plan is not None and access.usage_plan.quota_period == "DAY"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"api_key_required": False}, "the API would be public"),
        ({"iam_authorization": True}, "both is set"),
        ({"lambda_concurrency": None}, "reserved concurrency"),
        ({"lambda_concurrency": 0}, "reserved concurrency"),
        (
            {"headwater_api_access": {"stage_throttle": {"rate_limit": 5, "burst_limit": 5}}},
            "needs headwater_api_access.usage_plan",
        ),
        (
            {"headwater_api_access": {"stage_throttle": {"rate_limit": -1, "burst_limit": 5}}},
            "invalid",
        ),
    ],
)
def test_access_settings_that_leave_the_api_open_are_refused(
    changes: dict[str, Any], message: str
) -> None:
    settings = {**zappa_stage(REPO, "prod"), **changes}
    with pytest.raises(DeployError, match=message):
        api_access(settings, "prod")


def test_iam_auth_needs_no_usage_plan() -> None:
    settings = {**zappa_stage(REPO, "prod"), "api_key_required": False, "iam_authorization": True}
    access = api_access(settings, "prod")

    assert access.mode == "iam" and access.usage_plan is None


# ------------------------------------------------------ AWS, on the moto server


@pytest.fixture
def clients(moto_endpoint: str, aws_env: None) -> Any:
    made: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in made:
            made[service] = boto3.client(service, region_name=REGION, endpoint_url=moto_endpoint)
        return made[service]

    return client


def network(ec2: Any) -> dict[str, str]:
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName=f"s-{vpc}", Description="egress", VpcId=vpc)
    return {"SchedulerSubnetIds": subnet, "SchedulerSecurityGroupIds": group["GroupId"]}


@pytest.fixture(scope="module")
def zappa_template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The API template ``zappa template prod`` generates (no AWS call is made)."""
    out = tmp_path_factory.mktemp("zappa") / "template.json"
    command = zappa_template_command(Path(sys.prefix), "prod", "headwater-api-prod", REGION, out)
    env = {
        **os.environ,
        "VIRTUAL_ENV": sys.prefix,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }
    done = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(json.loads(out.read_text()))


def zappa_like_api(clients: Any, template: dict[str, Any], name: str, stage: str) -> str:
    """What ``zappa deploy`` leaves: its API stack (Zappa's template), a stage, and a key."""
    body = json.loads(json.dumps(template))
    body["Resources"]["Api"]["Properties"]["Name"] = name
    cfn, apigateway = clients("cloudformation"), clients("apigateway")
    cfn.create_stack(StackName=name, TemplateBody=json.dumps(body))
    api_id = cfn.describe_stack_resource(StackName=name, LogicalResourceId="Api")[
        "StackResourceDetail"
    ]["PhysicalResourceId"]
    apigateway.create_deployment(restApiId=api_id, stageName=stage)
    apigateway.create_api_key(
        name=f"{stage}_{api_id}",
        enabled=True,
        stageKeys=[{"restApiId": api_id, "stageName": stage}],
    )
    return str(api_id)


def test_wire_access_creates_the_plan_attaches_the_key_and_throttles(
    clients: Any, zappa_template: dict[str, Any]
) -> None:
    # Given the API as Zappa creates it (its own template, in moto's CloudFormation)
    apigateway = clients("apigateway")
    name = "headwater-api-wire"
    api_id = zappa_like_api(clients, zappa_template, name, "prod")
    access = api_access(zappa_stage(REPO, "prod"), "prod")

    first = wire_access(apigateway, name, "prod", access)
    second = wire_access(apigateway, name, "prod", access)

    (plan,) = [p for p in apigateway.get_usage_plans()["items"] if p["name"] == f"{name}-plan"]
    assert plan["apiStages"] == [{"apiId": api_id, "stage": "prod"}]
    assert plan["throttle"] == {"rateLimit": 10.0, "burstLimit": 20}
    assert plan["quota"]["limit"] == 20000 and plan["quota"]["period"] == "DAY"
    (key,) = apigateway.get_usage_plan_keys(usagePlanId=plan["id"])["items"]
    assert key["name"] == f"prod_{api_id}"
    settings = apigateway.get_stage(restApiId=api_id, stageName="prod")["methodSettings"]["*/*"]
    assert settings["throttlingRateLimit"] == 50.0 and settings["throttlingBurstLimit"] == 100
    assert any("created" in line for line in first) and any("attached" in line for line in first)
    assert any("updated" in line for line in second) and any("already" in line for line in second)
    # every method of the API (/ and /{proxy+}) refuses a request without a key: API
    # Gateway answers 403 there; moto records the flag but does not enforce it
    methods = [
        apigateway.get_method(restApiId=api_id, resourceId=resource["id"], httpMethod=method)
        for resource in apigateway.get_resources(restApiId=api_id)["items"]
        for method in resource.get("resourceMethods", {})
    ]
    assert len(methods) == 2 and all(m["apiKeyRequired"] is True for m in methods)


def test_wire_access_needs_the_api(clients: Any) -> None:
    access = api_access(zappa_stage(REPO, "prod"), "prod")
    with pytest.raises(DeployError, match="no REST API named headwater-api-none"):
        wire_access(clients("apigateway"), "headwater-api-none", "prod", access)


def test_apply_stack_creates_then_updates(clients: Any) -> None:
    cfn = clients("cloudformation")
    body = (REPO / STACK_TEMPLATE).read_text()
    parameters = {
        **plan_deploy(request()).stack_parameters,
        **network(clients("ec2")),
        "Stage": "apply",
    }

    apply = functools.partial(aws.apply_stack, "headwater-apply", body, poll_seconds=1, client=cfn)

    assert apply(parameters) == "created"
    changed = {**parameters, "LogRetentionDays": "30"}
    # moto updates in place; AWS answers "No updates are to be performed" when nothing changed
    assert apply(changed) in (
        "updated",
        "unchanged",
    )
    (stack,) = cfn.describe_stacks(StackName="headwater-apply")["Stacks"]
    assert stack["StackStatus"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE")
    assert {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}[
        "LogRetentionDays"
    ] == "30"


def test_a_stack_whose_creation_failed_must_be_deleted_first() -> None:
    # Given a stack whose creation rolled back
    class Failed:
        def describe_stacks(self, StackName: str) -> dict[str, Any]:  # noqa: N803
            return {"Stacks": [{"StackStatus": "ROLLBACK_COMPLETE"}]}

    parameters = {"SchedulerSubnetIds": "subnet-1", "SchedulerSecurityGroupIds": "sg-1"}
    plan = plan_deploy(request(only=("stack",), parameters=parameters))
    context = DeployContext(
        repo=REPO, python=None, docker=False, clients=lambda _: Failed(), echo=lambda _: None
    )

    # Then the stack step stops the deploy (exit 2: the operator acts), saying how to go on
    with pytest.raises(DeployError, match="delete-stack --stack-name headwater-prod"):
        run_plan(plan, context)


def test_a_deploy_against_moto_creates_then_updates(
    clients: Any, tmp_path: Path, zappa_template: dict[str, Any]
) -> None:
    # Given the stage "mprod" (prod's settings), a network, and Zappa replaced by a fake that
    # leaves in moto what zappa deploy leaves: the function and the keyed API
    settings = json.loads((REPO / "zappa_settings.json").read_text())
    (tmp_path / "zappa_settings.json").write_text(
        json.dumps({"mprod": {**settings["prod"], "extends": None}})
    )
    (tmp_path / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text())
    (tmp_path / "infrastructure").mkdir()
    (tmp_path / "infrastructure/headwater.yaml").write_text((REPO / STACK_TEMPLATE).read_text())
    zappa_calls: list[str] = []

    def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        verb = command[1]
        zappa_calls.append(verb)
        if verb == "deploy":
            iam = clients("iam").create_role(RoleName="r-mprod", AssumeRolePolicyDocument="{}")
            clients("lambda").create_function(
                FunctionName="headwater-api-mprod",
                Runtime="python3.13",
                Role=iam["Role"]["Arn"],
                Handler=settings["prod"]["lambda_handler"],  # what zappa deploy sets
                Code={"ZipFile": b"PK\x05\x06" + b"\x00" * 18},
            )
            zappa_like_api(clients, zappa_template, "headwater-api-mprod", "mprod")
        return subprocess.CompletedProcess(command, 0, "", "")

    given = {**network(clients("ec2")), "AlertEmail": "ops@example.com"}
    plan = plan_deploy(
        request(
            stage="mprod",
            repo=tmp_path,
            parameters=given,
            only=("stack", "api", "access", "alerts"),
        )
    )
    lines: list[str] = []

    def deploy() -> list[str]:
        context = DeployContext(
            repo=tmp_path,
            python=None,
            docker=False,
            clients=clients,
            run=run,
            echo=lines.append,
            poll_seconds=1,
        )
        return run_plan(plan, context)

    # When it is deployed twice
    first = deploy()
    assert aws.function_exists("headwater-api-mprod", client=clients("lambda"))
    second = deploy()

    # Then the stack is created, then updated; zappa deploy, then zappa update
    assert zappa_calls == ["deploy", "update"]
    assert first[0] == "stack headwater-mprod created"
    assert second[0] in ("stack headwater-mprod updated", "stack headwater-mprod unchanged")
    assert any(line.startswith("usage plan headwater-api-mprod-plan created") for line in first)
    assert any(line.startswith("usage plan headwater-api-mprod-plan updated") for line in second)
    assert any("subscription" in line for line in first)  # pending e-mail, or none pending


def test_a_real_deploy_refuses_missing_stack_parameters() -> None:
    plan = plan_deploy(request(only=("stack",)))
    context = DeployContext(repo=REPO, python=None, docker=False, echo=lambda _: None)
    with pytest.raises(DeployError, match="SchedulerSubnetIds"):
        run_plan(plan, context)


# ------------------------------------------- access settings are read strictly


@pytest.mark.parametrize(
    ("changes", "key", "value"),
    [
        # Zappa (troposphere's boolean()) reads each of these as false: a public API
        ({"api_key_required": "false"}, "api_key_required", '"false"'),
        ({"api_key_required": "no"}, "api_key_required", '"no"'),
        ({"api_key_required": 0.5}, "api_key_required", "0.5"),
        ({"api_key_required": "true"}, "api_key_required", '"true"'),
        ({"api_key_required": 1}, "api_key_required", "1"),
        (
            {"api_key_required": False, "iam_authorization": "true"},
            "iam_authorization",
            '"true"',
        ),
    ],
)
def test_access_booleans_must_be_json_booleans(
    changes: dict[str, Any], key: str, value: str
) -> None:
    settings = {**zappa_stage(REPO, "prod"), **changes}

    with pytest.raises(DeployError) as raised:
        api_access(settings, "prod")

    message = str(raised.value)
    assert f"{key} = {value}" in message and "expected JSON true or false" in message


@pytest.mark.parametrize(
    ("changes", "text"),
    [
        ({"lambda_concurrency": "20"}, 'lambda_concurrency = "20": expected a JSON integer'),
        ({"lambda_concurrency": True}, "lambda_concurrency = true: expected a JSON integer"),
        (
            {
                "headwater_api_access": {
                    "stage_throttle": {"rate_limit": 5, "burst_limit": "5"},
                    "usage_plan": {
                        "rate_limit": 1,
                        "burst_limit": 2,
                        "quota_limit": 3,
                        "quota_period": "DAY",
                    },
                }
            },
            'headwater_api_access.stage_throttle.burst_limit = "5": expected a JSON integer',
        ),
    ],
)
def test_access_numbers_must_be_json_numbers(changes: dict[str, Any], text: str) -> None:
    settings = {**zappa_stage(REPO, "prod"), **changes}

    with pytest.raises(DeployError) as raised:
        api_access(settings, "prod")

    assert text in str(raised.value)


def test_the_plan_names_missing_stack_parameters_only_when_it_creates_the_stack() -> None:
    assert "missing stack parameters" in plan_deploy(request(only=("stack",))).describe()
    package_only = plan_deploy(request(only=("api-package",))).describe()
    assert "missing stack parameters" not in package_only and "access:" not in package_only


# ------------------------------------ the validate step reads the API's methods


def validate_with(
    tmp_path: Path, template: dict[str, Any], settings_changes: dict[str, Any]
) -> list[str]:
    """Run the validate step of a stage (prod's settings changed) whose zappa template is given."""
    settings = json.loads((REPO / "zappa_settings.json").read_text())
    repo = tmp_path / "repo"
    (repo / "infrastructure").mkdir(parents=True)
    (repo / "zappa_settings.json").write_text(
        json.dumps({"vprod": {**settings["prod"], **settings_changes}})
    )
    (repo / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text())
    (repo / STACK_TEMPLATE).write_text((REPO / STACK_TEMPLATE).read_text())
    plan = plan_deploy(request(stage="vprod", repo=repo, only=("validate",)))
    (plan.venv / "bin").mkdir(parents=True)
    (plan.venv / "bin" / "zappa").touch()

    def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        Path(command[-1]).parent.mkdir(parents=True, exist_ok=True)
        Path(command[-1]).write_text(json.dumps(template))
        return subprocess.run(["true"], capture_output=True, text=True, check=False)

    context = DeployContext(repo=repo, python=None, docker=False, run=run, echo=lambda _: None)
    return run_plan(plan, context)


def with_methods(template: dict[str, Any], **properties: Any) -> dict[str, Any]:
    """The template with those properties set on its first API Gateway method."""
    changed = json.loads(json.dumps(template))
    first = next(r for r in changed["Resources"].values() if r["Type"] == "AWS::ApiGateway::Method")
    first["Properties"].update(properties)
    return changed


def test_the_validate_step_passes_zappas_own_template(
    tmp_path: Path, zappa_template: dict[str, Any]
) -> None:
    done = validate_with(tmp_path, zappa_template, {})

    assert any("every API method needs an API key" in line for line in done)


@pytest.mark.parametrize("flag", [False, "false"])
def test_the_validate_step_refuses_a_method_without_the_key(
    tmp_path: Path, zappa_template: dict[str, Any], flag: Any
) -> None:
    # What Zappa generates when api_key_required reaches it as something false
    public = with_methods(zappa_template, ApiKeyRequired=flag)

    with pytest.raises(DeployError, match=r"ANY0.*ApiKeyRequired"):
        validate_with(tmp_path, public, {})


def test_an_iam_stage_needs_the_iam_authorizer_on_every_method(
    tmp_path: Path, zappa_template: dict[str, Any]
) -> None:
    iam = {"api_key_required": False, "iam_authorization": True}
    keyed_only = with_methods(zappa_template, ApiKeyRequired=False)

    with pytest.raises(DeployError, match=r"AuthorizationType.*AWS_IAM"):
        validate_with(tmp_path, keyed_only, iam)


# ---------------------------------------- AWS calls go through the AWS adapter


def test_deploy_calls_no_aws_operation_itself() -> None:
    # Every AWS call of a deploy goes through headwater.aws (one module per service), which
    # owns clients, waiting and error handling; cli.deploy_steps only composes the steps.
    operations = {"get_paginator", "get_waiter"}
    for service in ("cloudformation", "apigateway", "lambda", "sns"):
        client = boto3.client(service, region_name=REGION)
        operations |= set(client.meta.method_to_api_mapping)
    source = (REPO / "cli" / "deploy_steps.py").read_text()
    called = {
        node.func.attr
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }

    assert called & operations == set()

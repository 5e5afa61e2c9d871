"""``headwater deploy``: the dry run prints the plan; what is missing stops it with a reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli import app

ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com/headwater"


@pytest.fixture
def no_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    import cli.deploy_steps

    monkeypatch.setattr(cli.deploy_steps, "docker_available", lambda: False)


def deploy(*args: str) -> Any:
    return CliRunner().invoke(app, ["deploy", *args])


def test_the_dry_run_prints_the_plan_and_does_no_aws_step(no_docker: None) -> None:
    result = deploy(
        "--stage", "prod", "--dry-run", "--image-tag", "v7", "--image-repository", ECR,
        "--only", "images", "--only", "stack", "--only", "api", "--only", "access",
        "--parameter", "AlertEmail=ops@example.com",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    out = result.output
    assert "deploy of stage prod to us-east-1: stack headwater-prod, API headwater-api-prod on " \
        "python3.13" in out  # fmt: skip
    assert "API key (x-api-key header)" in out and "usage plan 10 req/s, burst 20" in out
    assert f"FunctionImageUri={ECR}-functions:v7" in out and "AlertEmail=ops@example.com" in out
    assert "skipped: no Docker daemon answers" in out
    assert "zappa deploy prod (first time) or zappa update prod" in out
    assert out.count("dry run, not done") == 3  # stack, api, access
    assert "missing stack parameters" in out and "SchedulerSubnetIds" in out
    assert "dry run of prod finished" in out


def test_without_the_runtimes_python_the_package_step_says_so(
    no_docker: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cli.deploy_steps

    monkeypatch.setattr(cli.deploy_steps, "find_python", lambda version: None)
    result = deploy("--stage", "prod", "--dry-run", "--only", "api-package")

    assert result.exit_code == 2
    assert "no Python 3.13 interpreter" in result.output
    assert "pyenv install 3.13" in result.output


def test_a_real_deploy_needs_the_image_repository(no_docker: None) -> None:
    result = deploy("--stage", "prod")

    assert result.exit_code == 2
    assert "--image-repository is required" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stage", "nope", "--dry-run"], "has no stage 'nope'"),
        (["--stage", "prod", "--dry-run", "--parameter", "Colour=blue"], "Colour"),
        (["--stage", "prod", "--dry-run", "--parameter", "novalue"], "not KEY=VALUE"),
    ],
)
def test_bad_input_is_refused_before_anything_runs(
    no_docker: None, args: list[str], message: str, tmp_path: Path
) -> None:
    result = deploy(*args)

    assert result.exit_code == 2
    assert message in result.output


def test_a_dry_run_of_the_package_alone_says_nothing_of_the_stack(
    no_docker: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cli.deploy_steps

    # no runtime Python: the plan is printed, then the package step stops (nothing is built)
    monkeypatch.setattr(cli.deploy_steps, "find_python", lambda version: None)
    result = deploy("--stage", "prod", "--dry-run", "--only", "api-package")

    assert "[api-package, local]" in result.output
    assert "missing stack parameters" not in result.output
    assert "access:" not in result.output


NETWORK = (
    "--parameter",
    "SchedulerSubnetIds=subnet-1",
    "--parameter",
    "SchedulerSecurityGroupIds=sg-1",
)


def real_stack_step() -> Any:
    return deploy("--stage", "prod", "--image-repository", ECR, "--only", "stack", *NETWORK)


def test_a_deploy_without_aws_credentials_says_which_step_and_how_to_configure_them(
    no_docker: None, aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given no credentials anywhere botocore looks (the fixture's files do not exist)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)

    result = real_stack_step()

    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    (line,) = [x for x in result.output.splitlines() if x.startswith("error:")]
    assert "step stack failed" in line and "NoCredentialsError" in line
    assert "aws configure" in line and "AWS_PROFILE" in line
    assert "Traceback" not in result.output


def stubbed_cloudformation(*errors: tuple[str, str, str]) -> Any:
    """A CloudFormation client that answers each call in turn with the given AWS error."""
    import boto3
    from botocore.stub import Stubber

    cfn = boto3.client(
        "cloudformation",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    stubber = Stubber(cfn)
    for operation, code, message in errors:
        stubber.add_client_error(operation, service_error_code=code, service_message=message)
    stubber.activate()
    return cfn


@pytest.mark.parametrize(
    ("errors", "expected"),
    [
        (
            [("describe_stacks", "AccessDenied", "User: arn:aws:iam::1:user/x is not authorized")],
            ["AccessDenied", "is not authorized", "aws sts get-caller-identity"],
        ),
        (
            [
                (
                    "describe_stacks",
                    "ValidationError",
                    "Stack with id headwater-prod does not exist",
                ),
                ("create_stack", "ValidationError", "Template format error: bad"),
            ],
            ["ValidationError", "Template format error: bad", "--only validate"],
        ),
    ],
)
def test_an_aws_error_ends_in_one_line_naming_the_step_the_error_and_the_next_step(
    no_docker: None,
    monkeypatch: pytest.MonkeyPatch,
    errors: list[tuple[str, str, str]],
    expected: list[str],
) -> None:
    from headwater import aws

    cfn = stubbed_cloudformation(*errors)
    monkeypatch.setattr(aws, "client", lambda service, region=None: cfn)

    result = real_stack_step()

    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("error:")]
    assert "step stack failed" in line
    for text in expected:
        assert text in line


def test_a_string_where_a_boolean_belongs_stops_the_deploy_before_any_step(
    no_docker: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given prod's settings with api_key_required as the string "false" (Zappa: a public API)
    import importlib
    import json

    # the module: cli's package attribute ``deploy`` is the command function
    command = importlib.import_module("cli.deploy")
    repo = Path(command.REPO)
    settings = json.loads((repo / "zappa_settings.json").read_text())
    settings["prod"]["api_key_required"] = "false"
    (tmp_path / "zappa_settings.json").write_text(json.dumps(settings))
    monkeypatch.setattr(command, "REPO", tmp_path)

    result = deploy("--stage", "prod", "--dry-run")

    assert result.exit_code == 2
    assert 'api_key_required = "false": expected JSON true or false' in result.output
    assert "[api-package]" not in result.output  # no step ran

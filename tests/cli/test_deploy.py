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
    import headwater.deploy

    monkeypatch.setattr(headwater.deploy, "docker_available", lambda: False)


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
    import headwater.deploy

    monkeypatch.setattr(headwater.deploy, "find_python", lambda version: None)
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

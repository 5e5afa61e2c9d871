"""``headwater deploy``: build, validate and deploy a stage (cli.deploy_steps holds the logic)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Annotated

import typer

from cli.common import fail
from headwater import aws

# The repository: zappa_settings.json, pyproject.toml, the Dockerfiles and the template.
REPO = Path(__file__).resolve().parents[1]


def _parameters(values: list[str] | None) -> dict[str, str]:
    parameters = {}
    for value in values or []:
        key, sep, content = value.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--parameter {value!r} is not KEY=VALUE")
        parameters[key] = content
    return parameters


def _git_tag(repo: Path) -> str:
    """The image tag by default: the short commit id, ``-dirty`` with local changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=repo, check=False)
    except (OSError, subprocess.CalledProcessError):
        return "latest"
    return commit + ("-dirty" if dirty.returncode else "")


def deploy(
    stage: Annotated[str, typer.Option("--stage", help="Zappa and stack stage, e.g. prod.")],
    dry_run: Annotated[
        bool,
        typer.Option(help="Do what needs no AWS account (images, package, lint); print the rest."),
    ] = False,
    image_repository: Annotated[
        str | None,
        typer.Option(help="ECR repository prefix, e.g. 1234.dkr.ecr.us-east-1.amazonaws.com/hw."),
    ] = None,
    image_tag: Annotated[
        str | None, typer.Option(help="Tag of both images (default: the git commit).")
    ] = None,
    parameter: Annotated[
        list[str] | None,
        typer.Option(help="A stack parameter KEY=VALUE (repeatable), e.g. AlertEmail=a@b.c."),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(
            help="Run only this step (repeatable): images, api-package, validate, "
            "stack, api, access, alerts."
        ),
    ] = None,
) -> None:
    """Build the images and the API package, validate, then deploy the stack and the API."""
    # lazy: the deploy steps load botocore and pydantic's models when deploying, not for --help
    from cli import deploy_steps
    from cli.deploy_steps import (
        DeployAwsError,
        DeployContext,
        DeployError,
        DeployRequest,
        plan_deploy,
        run_plan,
        runtime_version,
        zappa_stage,
    )

    try:
        version = runtime_version(zappa_stage(REPO, stage)["runtime"])
        python, docker = deploy_steps.find_python(version), deploy_steps.docker_available()
        request = DeployRequest(
            stage=stage,
            repo=REPO,
            image_tag=image_tag or _git_tag(REPO),
            image_repository=image_repository,
            parameters=_parameters(parameter),
            docker=docker,
            python=python,
            only=tuple(only or ()),
        )
        plan = plan_deploy(request)
        if (
            not dry_run
            and not image_repository
            and any(s.key in ("images", "stack") for s in plan.steps)
        ):
            raise DeployError("--image-repository is required (the ECR prefix of both images)")
        typer.echo(plan.describe())
        typer.echo("dry run: only the local steps run" if dry_run else "deploying")
        context = DeployContext(
            repo=REPO,
            python=python,
            docker=docker,
            clients=None if dry_run else (lambda service: aws.client(service, plan.region)),
            dry_run=dry_run,
            echo=typer.echo,
        )
        done = run_plan(plan, context)
    except DeployError as exc:
        raise fail(str(exc)) from None
    except DeployAwsError as exc:
        # the inputs were fine (exit 2 is for those): AWS refused a step
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{'dry run' if dry_run else 'deploy'} of {stage} finished: {len(done)} action(s)")

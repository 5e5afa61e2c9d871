"""Deploying a stage: a plan of steps built from the repository's own files, then run.

``headwater deploy`` (cli/deploy.py) builds the plan with :func:`plan_deploy` from
``zappa_settings.json``, ``pyproject.toml`` and the stack template alone, so that
``--dry-run`` can print it without an AWS account; :func:`run_plan` then runs the
local steps (images, the API package, validation) and the AWS ones (the stack, the
API through Zappa, its access control) through the AWS adapter (:mod:`headwater.aws`:
cloudformation, apigateway, lambda_, sns) with injected clients and an injected command
runner.

Zappa sets what it can per stage (``runtime``, ``api_key_required`` or
``iam_authorization``, ``lambda_concurrency`` = reserved concurrency); what it cannot
(usage plans: rate, burst, quota; stage-wide throttling) is the stage's
``headwater_api_access`` block, applied here after ``zappa deploy``/``zappa update``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from cli.zappa_guard import VENV_STAMP, bytecode_gaps, cache_tag
from headwater import aws
from headwater.aws.errors import error_code

ZAPPA_SETTINGS = "zappa_settings.json"
STACK_TEMPLATE = "infrastructure/headwater.yaml"
IMAGES = {
    "functions": "infrastructure/functions.Dockerfile",
    "scheduler": "infrastructure/scheduler.Dockerfile",
}
# The stack parameter each image fills.
IMAGE_PARAMETERS = {"functions": "FunctionImageUri", "scheduler": "SchedulerImageUri"}
LAMBDA_VENV = ".venv-lambda"
# Inside var/: ignored by git and excluded from the package by zappa_settings.json.
BUILD_DIR = "var/deploy"
# Stand-ins for ARNs that exist only once deployed (the Zappa template is linted before).
PLACEHOLDER_ACCOUNT = "123456789012"
STEPS = ("images", "api-package", "validate", "stack", "api", "access", "alerts")
# The steps the stage's access settings concern (validate checks the API's methods).
ACCESS_STEPS = frozenset({"validate", "api", "access"})

Runner = Callable[..., subprocess.CompletedProcess[str]]
Echo = Callable[[str], None]


class DeployError(RuntimeError):
    """A deploy cannot go on: the message says what is missing or what failed."""


class DeployAwsError(RuntimeError):
    """An AWS call of a step failed: the message names the step, the AWS error and what next."""


class Throttle(BaseModel):
    """Steady requests per second and the burst above it."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    rate_limit: float = Field(gt=0, description="requests per second, steady")
    burst_limit: int = Field(gt=0, description="requests in a burst")


class UsagePlan(Throttle):
    """An API key's throttle plus its quota."""

    quota_limit: int = Field(gt=0, description="requests per quota period")
    quota_period: Literal["DAY", "WEEK", "MONTH"]


class AccessSettings(BaseModel):
    """The stage's ``headwater_api_access`` block of zappa_settings.json."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    stage_throttle: Throttle
    usage_plan: UsagePlan | None = None


class StageAccess(BaseModel):
    """A Zappa stage's access keys, read strictly: Zappa reads ``"false"``, ``"no"`` as false."""

    # strict: a JSON string or number where a boolean belongs is refused, never coerced
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)
    api_key_required: bool = Field(False, description="every method needs an x-api-key")
    iam_authorization: bool = Field(False, description="every method needs SigV4 (AWS_IAM)")
    lambda_concurrency: int | None = Field(None, description="reserved concurrency of the API")
    api_key: str | None = Field(None, description="an existing API key's id (else Zappa's)")
    headwater_api_access: AccessSettings = Field(description="throttle and usage plan")


# What a JSON value of each kind must be, by pydantic's error type.
_EXPECTED = {
    "bool_type": "expected JSON true or false",
    "int_type": "expected a JSON integer",
    "float_type": "expected a JSON number",
    "string_type": "expected a JSON string",
    "model_type": "expected a JSON object",
    "dict_type": "expected a JSON object",
}


def _setting_problem(error: ErrorDetails) -> str:
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "missing":
        return f"{key} is missing"
    expected = _EXPECTED.get(error["type"], error["msg"][:1].lower() + error["msg"][1:])
    return f"{key} = {json.dumps(error['input'], default=repr)}: {expected}"


@dataclass(frozen=True)
class ApiAccess:
    """How a stage's API is protected: who may call it, how fast, how many at once."""

    mode: Literal["api_key", "iam"]
    stage_throttle: Throttle
    usage_plan: UsagePlan | None
    reserved_concurrency: int


@dataclass(frozen=True)
class Step:
    """One step of a deploy: what it does, the commands it runs, whether it needs AWS."""

    key: str
    summary: str
    commands: tuple[tuple[str, ...], ...] = ()
    needs_aws: bool = False
    skipped: str | None = None


@dataclass(frozen=True)
class DeployRequest:
    """What the operator asked for (the CLI's options) and what this machine has."""

    stage: str
    repo: Path
    image_tag: str
    image_repository: str | None = None
    parameters: Mapping[str, str] = field(default_factory=dict)
    docker: bool = False
    python: Path | None = None
    only: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeployPlan:
    """Every step of one deploy of a stage, and the facts they share."""

    stage: str
    region: str
    stack_name: str
    api_name: str
    runtime: str
    access: ApiAccess
    package: Path
    venv: Path
    stack_parameters: dict[str, str]
    missing_parameters: tuple[str, ...]
    steps: tuple[Step, ...]

    def describe(self) -> str:
        """The plan as text: one numbered step per line, its commands; nothing of other steps."""
        keys = {step.key for step in self.steps}
        lines = [
            f"deploy of stage {self.stage} to {self.region}: stack {self.stack_name}, "
            f"API {self.api_name} on {self.runtime}",
        ]
        if keys & ACCESS_STEPS:
            lines.append(f"  access: {describe_access(self.access)}")
        for number, step in enumerate(self.steps, 1):
            where = "AWS" if step.needs_aws else "local"
            lines.append(f"{number}. [{step.key}, {where}] {step.summary}")
            if step.skipped:
                lines.append(f"     skipped: {step.skipped}")
            lines.extend(f"     $ {' '.join(command)}" for command in step.commands)
        if self.missing_parameters and "stack" in keys:
            lines.append(
                "missing stack parameters (give them with --parameter KEY=VALUE): "
                + ", ".join(self.missing_parameters)
            )
        return "\n".join(lines)


def describe_access(access: ApiAccess) -> str:
    """One line: the API's authentication, throttling and reserved concurrency."""
    who = "API key (x-api-key header)" if access.mode == "api_key" else "IAM (SigV4)"
    throttle = access.stage_throttle
    text = (
        f"{who}; stage throttle {throttle.rate_limit:g} req/s, burst {throttle.burst_limit}; "
        f"reserved concurrency {access.reserved_concurrency}"
    )
    if access.usage_plan:
        plan = access.usage_plan
        text += (
            f"; usage plan {plan.rate_limit:g} req/s, burst {plan.burst_limit}, "
            f"{plan.quota_limit} per {plan.quota_period.lower()}"
        )
    return text


def zappa_stage(repo: Path, stage: str) -> dict[str, Any]:
    """A stage of zappa_settings.json with ``extends`` applied, as Zappa merges it (shallow)."""
    settings = json.loads((repo / ZAPPA_SETTINGS).read_text())
    if stage not in settings:
        raise DeployError(f"{ZAPPA_SETTINGS} has no stage {stage!r} (it has {', '.join(settings)})")
    body = dict(settings[stage])
    parent = body.get("extends")
    return {**zappa_stage(repo, parent), **body} if parent else body


def api_function_name(stage_settings: Mapping[str, Any], stage: str) -> str:
    """The Lambda function (and REST API) name Zappa gives a stage: ``<project>-<stage>``."""
    return f"{stage_settings['project_name']}-{stage}"


def runtime_version(runtime: str) -> str:
    """``python3.13`` -> ``3.13``; anything but a Python runtime is an error."""
    match = re.fullmatch(r"python(3\.\d+)", runtime)
    if not match:
        raise DeployError(f"runtime {runtime!r} is not a Python Lambda runtime (python3.N)")
    return match.group(1)


def find_python(version: str, pyenv_root: Path | None = None) -> Path | None:
    """The newest interpreter of ``version`` (pyenv's, else ``python3.N`` on PATH), or None."""
    root = pyenv_root or Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    found = []
    for candidate in (root / "versions").glob(f"{version}.*/bin/python{version}"):
        patch = candidate.parents[1].name.removeprefix(f"{version}.")
        if patch.isdigit():
            found.append((int(patch), candidate))
    if found:
        return max(found)[1]
    on_path = shutil.which(f"python{version}")
    return Path(on_path) if on_path else None


def require_python(version: str, python: Path | None) -> Path:
    """``python`` or a DeployError that says how to get the runtime's interpreter."""
    if python is None:
        raise DeployError(
            f"no Python {version} interpreter: the Lambda runtime is python{version}, and the API "
            f"package must be built with that version (compiled wheels differ). Install it "
            f"(e.g. `pyenv install {version}`) or put python{version} on PATH."
        )
    return python


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower()


def api_requirements(pyproject: Mapping[str, Any]) -> list[str]:
    """What the Lambda venv installs: the core, the ``api`` extra minus gunicorn, plus zappa."""
    project = pyproject["project"]
    extras = project["optional-dependencies"]
    wanted = [*project["dependencies"], *extras["api"]]
    zappa = [r for r in extras["dev"] if _requirement_name(r) == "zappa"]
    return [r for r in wanted if _requirement_name(r) != "gunicorn"] + zappa


def lambda_venv_commands(
    python: Path, venv: Path, requirements: Sequence[str]
) -> list[tuple[str, ...]]:
    """The commands that make ``venv`` a virtual environment of the runtime's Python."""
    return [
        (str(python), "-m", "venv", "--clear", str(venv)),
        (str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *requirements),
    ]


def package_command(venv: Path, stage: str, output: Path) -> tuple[str, ...]:
    """``zappa package`` from the Lambda venv (run with VIRTUAL_ENV set to it)."""
    return (str(venv / "bin" / "zappa"), "package", stage, "--output", str(output))


def zappa_template_command(
    venv: Path, stage: str, api_name: str, region: str, output: Path
) -> tuple[str, ...]:
    """``zappa template`` with placeholder ARNs: the API's template, to lint before deploying."""
    account = PLACEHOLDER_ACCOUNT
    return (
        str(venv / "bin" / "zappa"),
        "template",
        stage,
        "--lambda-arn",
        f"arn:aws:lambda:{region}:{account}:function:{api_name}",
        "--role-arn",
        f"arn:aws:iam::{account}:role/{api_name}-ZappaLambdaExecutionRole",
        "--output",
        str(output),
    )


def api_access(stage_settings: Mapping[str, Any], stage: str) -> ApiAccess:
    """The stage's access control, checked: never public, keys need a plan, concurrency set."""
    try:
        settings = StageAccess.model_validate(dict(stage_settings))
    except ValidationError as exc:
        problems = "; ".join(_setting_problem(error) for error in exc.errors())
        raise DeployError(
            f"stage {stage}: invalid access settings in {ZAPPA_SETTINGS}: {problems}"
        ) from None
    key, iam = settings.api_key_required, settings.iam_authorization
    if key == iam:
        state = "both" if key else "neither"
        raise DeployError(
            f"stage {stage}: set exactly one of api_key_required and iam_authorization "
            f"({state} is set){'; the API would be public' if not key else ''}"
        )
    concurrency = settings.lambda_concurrency
    if concurrency is None or concurrency < 1:
        raise DeployError(f"stage {stage}: lambda_concurrency (reserved concurrency) must be >= 1")
    limits = settings.headwater_api_access
    if key and limits.usage_plan is None:
        raise DeployError(
            f"stage {stage}: api_key_required needs headwater_api_access.usage_plan "
            "(API Gateway refuses a key that no usage plan includes)"
        )
    return ApiAccess(
        mode="api_key" if key else "iam",
        stage_throttle=limits.stage_throttle,
        usage_plan=limits.usage_plan if key else None,
        reserved_concurrency=concurrency,
    )


# What every method of the API's template must require, by access mode.
METHOD_GUARDS = {"api_key": "an API key", "iam": "IAM authorization (AWS_IAM)"}


def api_method_problems(template: Mapping[str, Any], mode: Literal["api_key", "iam"]) -> list[str]:
    """Each API Gateway method of a template open to a caller without the key (or IAM), named."""
    methods = {
        name: resource.get("Properties", {})
        for name, resource in template.get("Resources", {}).items()
        if resource.get("Type") == "AWS::ApiGateway::Method"
    }
    if not methods:
        return ["the template has no AWS::ApiGateway::Method"]
    problems = []
    for name, properties in methods.items():
        method = f"{name} ({properties.get('HttpMethod', '?')})"
        key, authorization = properties.get("ApiKeyRequired"), properties.get("AuthorizationType")
        # JSON true only: CloudFormation would read the string "true", Zappa never writes it
        if mode == "api_key" and key is not True:
            problems.append(f"{method}: ApiKeyRequired is {json.dumps(key)}, not true")
        if mode == "iam" and authorization != "AWS_IAM":
            problems.append(
                f"{method}: AuthorizationType is {json.dumps(authorization)}, not AWS_IAM"
            )
    return problems


def template_parameters(repo: Path) -> dict[str, dict[str, Any]]:
    """The stack template's Parameters section."""
    from cfnlint.decode import decode_str  # lazy: cfn-lint is a dev tool (deploy from a checkout)

    body, problems = decode_str((repo / STACK_TEMPLATE).read_text())
    if problems or body is None:
        raise DeployError(f"{STACK_TEMPLATE} does not parse: {problems}")
    return dict(body.get("Parameters", {}))


def image_uris(repository: str, tag: str) -> dict[str, str]:
    """The URI of each image: ``<repository>-<name>:<tag>``."""
    return {name: f"{repository}-{name}:{tag}" for name in IMAGES}


def stack_parameters(
    declared: Mapping[str, Mapping[str, Any]],
    stage: str,
    images: Mapping[str, str],
    given: Mapping[str, str],
) -> tuple[dict[str, str], tuple[str, ...]]:
    """The stack's parameter values (stage, images, then the operator's), and those missing."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise DeployError(
            f"unknown stack parameter(s) {', '.join(unknown)}; the template declares "
            + ", ".join(declared)
        )
    values = {"Stage": stage, **{IMAGE_PARAMETERS[k]: v for k, v in images.items()}, **given}
    missing = tuple(k for k, spec in declared.items() if k not in values and "Default" not in spec)
    return values, missing


def plan_deploy(request: DeployRequest) -> DeployPlan:
    """Every step of deploying ``request.stage``, from local files only (no AWS call)."""
    repo, stage = request.repo, request.stage
    settings = zappa_stage(repo, stage)
    region = settings["aws_region"]
    api_name = api_function_name(settings, stage)
    access = api_access(settings, stage)
    runtime = settings["runtime"]
    version = runtime_version(runtime)
    venv = repo / LAMBDA_VENV
    build = repo / BUILD_DIR
    package = build / f"{api_name}.zip"
    repository = request.image_repository or f"<account>.dkr.ecr.{region}.amazonaws.com/headwater"
    images = image_uris(repository, request.image_tag)
    parameters, missing = stack_parameters(
        template_parameters(repo), stage, images, request.parameters
    )
    stack_name = f"headwater-{stage}"
    python = request.python or Path(f"python{version}")
    requirements = api_requirements(tomllib.loads((repo / "pyproject.toml").read_text()))

    builds = tuple(
        ("docker", "build", "-f", dockerfile, "-t", images[name], ".")
        for name, dockerfile in IMAGES.items()
    )
    steps = [
        Step(
            "images",
            "build the functions' and the scheduler's images and push them to ECR",
            (*builds, *(("docker", "push", uri) for uri in images.values())),
            needs_aws=True,
            skipped=None
            if request.docker
            else "no Docker daemon answers: images not built; the stack uses "
            f"{', '.join(images.values())} as already pushed",
        ),
        Step(
            "api-package",
            f"build the API package in {LAMBDA_VENV} (Python {version}, the runtime's) "
            "with zappa package",
            (
                *lambda_venv_commands(python, venv, requirements),
                package_command(venv, stage, package),
            ),
        ),
        Step(
            "validate",
            f"cfn-lint {STACK_TEMPLATE} and the API's template (zappa template)",
            (zappa_template_command(venv, stage, api_name, region, build / "zappa-template.json"),),
        ),
        Step(
            "stack",
            f"create or update the CloudFormation stack {stack_name} "
            f"({', '.join(f'{k}={v}' for k, v in parameters.items())})",
            needs_aws=True,
        ),
        Step(
            "api",
            f"zappa deploy {stage} (first time) or zappa update {stage} with {package.name} "
            f"(runtime {runtime}, reserved concurrency {access.reserved_concurrency})",
            ((str(venv / "bin" / "zappa"), "deploy|update", stage, "--zip", str(package)),),
            needs_aws=True,
        ),
        Step(
            "access",
            f"throttle stage {stage} of {api_name}"
            + (
                ", create or update its usage plan and attach Zappa's API key"
                if access.mode == "api_key"
                else " (IAM auth: callers need execute-api:Invoke)"
            ),
            needs_aws=True,
        ),
        Step(
            "alerts",
            f"list the alert e-mail subscriptions of headwater-{stage}-runs still to confirm",
            needs_aws=True,
        ),
    ]
    if request.only:
        unknown = sorted(set(request.only) - set(STEPS))
        if unknown:
            raise DeployError(f"unknown step(s) {', '.join(unknown)}; steps: {', '.join(STEPS)}")
        steps = [s for s in steps if s.key in request.only]
    return DeployPlan(
        stage=stage,
        region=region,
        stack_name=stack_name,
        api_name=api_name,
        runtime=runtime,
        access=access,
        package=package,
        venv=venv,
        stack_parameters=parameters,
        missing_parameters=missing,
        steps=tuple(steps),
    )


# ---------------------------------------------------------------- local steps


def run_command(command: Sequence[str], run: Runner, cwd: Path, env: Mapping[str, str]) -> str:
    """Run one command; its output, or a DeployError carrying the end of its output."""
    done = run(list(command), cwd=cwd, env=dict(env), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise DeployError(f"`{' '.join(command)}` failed (exit {done.returncode}):\n{tail}")
    return done.stdout


def build_api_package(
    repo: Path,
    stage: str,
    python: Path,
    output: Path,
    venv: Path | None = None,
    run: Runner = subprocess.run,
) -> Path:
    """Build the stage's Zappa package in a venv of ``python``; reuse the venv if up to date."""
    venv = venv or repo / LAMBDA_VENV
    requirements = api_requirements(tomllib.loads((repo / "pyproject.toml").read_text()))
    stamp = venv / VENV_STAMP  # also what zappa_settings.json's callback checks
    wanted = json.dumps({"python": str(python), "requirements": requirements})
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    if not (stamp.exists() and stamp.read_text() == wanted):
        for command in lambda_venv_commands(python, venv, requirements):
            run_command(command, run, repo, env)
        stamp.write_text(wanted)
    output.parent.mkdir(parents=True, exist_ok=True)
    env = {**env, "VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}{os.pathsep}{env['PATH']}"}
    run_command(package_command(venv, stage, output), run, repo, env)
    return output


def lint_templates(paths: Sequence[Path]) -> list[str]:
    """cfn-lint errors and warnings of each template (informational findings left out)."""
    from cfnlint.api import lint_all  # lazy: cfn-lint is a dev tool (deploy from a checkout)

    return [
        f"{path.name}: {finding}"
        for path in paths
        for finding in lint_all(path.read_text())
        if finding.rule.severity != "informational"
    ]


def docker_available(run: Runner = subprocess.run) -> bool:
    """Whether a Docker daemon answers here."""
    if not shutil.which("docker"):
        return False
    try:
        done = run(["docker", "info"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


# ------------------------------------------------------------------ AWS steps


# AWS error codes (ClientError) and botocore exception names, by what the operator does next.
_CREDENTIAL_ERRORS = frozenset(
    {
        "NoCredentialsError",
        "PartialCredentialsError",
        "CredentialRetrievalError",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
    }
)
_SSO_ERRORS = frozenset({"SSOTokenLoadError", "TokenRetrievalError", "UnauthorizedSSOTokenError"})
_PERMISSION_ERRORS = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError"}
)
_NETWORK_ERRORS = frozenset(
    {"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError"}
)


def aws_error_message(plan: DeployPlan, step: str, error: Exception) -> str:
    """One line: the step that failed, the AWS error, and what to do next."""
    code = error_code(error) if isinstance(error, ClientError) else ""
    if code:
        message = error.response["Error"].get("Message", "")
        detail = f"{code} on {getattr(error, 'operation_name', '?')}: {message}"
    else:
        code = type(error).__name__
        detail = f"{code}: {error}"
    rerun = f"`headwater deploy --stage {plan.stage} --only {step} ...` repeats this step alone"
    if code in _CREDENTIAL_ERRORS:
        hint = (
            "configure AWS credentials (`aws configure`, or export AWS_PROFILE=<profile>; "
            "`aws sts get-caller-identity` checks them), then run the same command again"
        )
    elif code in _SSO_ERRORS:
        hint = "renew the session (`aws sso login`, with AWS_PROFILE set), then run again"
    elif code in _PERMISSION_ERRORS:
        hint = (
            "the identity `aws sts get-caller-identity` shows lacks a permission this step "
            "needs (see Prerequisites in docs/operations.md): grant it, then run again"
        )
    elif code == "ValidationError" and step == "stack":
        hint = (
            "fix the template or the --parameter value it names (`headwater deploy --stage "
            f"{plan.stage} --dry-run --only validate` lints the template), then run again"
        )
    elif code == "WaiterError" and step == "stack":
        hint = (
            "read why in the stack's events (`aws cloudformation describe-stack-events "
            f"--stack-name {plan.stack_name}`), fix it, then run again"
        )
    elif code in _NETWORK_ERRORS:
        hint = f"check the network and the region ({plan.region}), then run again; {rerun}"
    else:
        hint = f"fix the cause, then run again (every step is idempotent); {rerun}"
    return " ".join(f"step {step} failed: AWS error {detail}; next: {hint}".split())


def wire_access(
    apigateway: BaseClient, api_name: str, stage: str, access: ApiAccess, api_key: str | None = None
) -> list[str]:
    """Throttle the stage; with API keys, ensure its usage plan and attach the keys. Idempotent.

    ``api_key`` is the stage's ``api_key`` setting (an existing key's id); without it, the
    key Zappa created (named ``<stage>_<api id>``) is attached.
    """
    api_id = aws.rest_api_id(api_name, client=apigateway)
    if api_id is None:
        raise DeployError(f"no REST API named {api_name}: run zappa deploy first")
    throttle = access.stage_throttle
    aws.throttle_stage(api_id, stage, throttle.rate_limit, throttle.burst_limit, client=apigateway)
    done = [
        f"stage {stage} of {api_name} ({api_id}) throttled to {throttle.rate_limit:g} req/s, "
        f"burst {throttle.burst_limit}"
    ]
    plan = access.usage_plan
    if access.mode != "api_key" or plan is None:
        return done
    plan_name = f"{api_name}-plan"
    usage_plan = aws.ensure_usage_plan(
        plan_name,
        api_id,
        stage,
        aws.UsageLimits(**plan.model_dump()),
        description=f"Headwater API callers of stage {stage}",
        client=apigateway,
    )
    done.append(
        f"usage plan {plan_name} {'created' if usage_plan.created else 'updated'}: "
        f"{plan.rate_limit:g} req/s, burst {plan.burst_limit}, "
        f"{plan.quota_limit} per {plan.quota_period.lower()}"
    )
    keys = [api_key] if api_key else aws.api_key_ids(f"{stage}_{api_id}", client=apigateway)
    if not keys:
        raise DeployError(
            f"no API key {stage}_{api_id}: zappa deploy creates it (api_key_required)"
        )
    for key_id in keys:
        if aws.attach_api_key(usage_plan.plan_id, key_id, client=apigateway):
            done.append(
                f"API key {key_id} attached to the plan (read its value: "
                f"aws apigateway get-api-key --api-key {key_id} --include-value)"
            )
        else:
            done.append(f"API key {key_id} already in the plan")
    return done


# ---------------------------------------------------------------------- run


@dataclass
class DeployContext:
    """What running a plan needs besides the plan: the repo, clients, a runner, an echo."""

    repo: Path
    python: Path | None
    docker: bool
    clients: Callable[[str], BaseClient] | None = None
    run: Runner = subprocess.run
    echo: Echo = print
    dry_run: bool = False
    poll_seconds: int = 15
    done: list[str] = field(default_factory=list)

    def did(self, line: str) -> None:
        """Record and print one thing the deploy did."""
        self.done.append(line)
        self.echo(f"  - {line}")


def _api_env(plan: DeployPlan) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return {**env, "VIRTUAL_ENV": str(plan.venv)}


def run_plan(plan: DeployPlan, context: DeployContext) -> list[str]:
    """Run the plan's steps in order (only the local ones on a dry run); what was done.

    An AWS error of a step becomes a :class:`DeployAwsError` naming the step and what next.
    """

    if (
        not context.dry_run
        and plan.missing_parameters
        and any(s.key == "stack" for s in plan.steps)
    ):
        raise DeployError(
            "missing stack parameters (give them with --parameter KEY=VALUE): "
            + ", ".join(plan.missing_parameters)
        )
    version = runtime_version(plan.runtime)
    for step in plan.steps:
        local_part = step.key in ("images", "api-package", "validate")
        if context.dry_run and not local_part:
            context.echo(f"[{step.key}] dry run, not done: {step.summary}")
            continue
        context.echo(f"[{step.key}] {step.summary}")
        if step.skipped:
            context.did(f"{step.key} skipped: {step.skipped}")
            continue
        try:
            _STEP_RUNNERS[step.key](plan, step, context, version)
        except (BotoCoreError, ClientError) as exc:
            raise DeployAwsError(aws_error_message(plan, step.key, exc)) from exc
    return context.done


def _images(plan: DeployPlan, step: Step, context: DeployContext, version: str) -> None:
    for command in step.commands:
        if command[:2] == ("docker", "push") and context.dry_run:
            context.did(f"not pushed (dry run): {command[2]}")
            continue
        run_command(command, context.run, context.repo, os.environ)
        context.did(" ".join(command))


def package_bytecode(package: Path, runtime: str) -> int:
    """How many modules of ``package`` carry the runtime's bytecode; a DeployError if one lacks it.

    Lambda's disk is read-only and Zappa ships no ``__pycache__``: a module without its .pyc
    is compiled again at every cold start (zappa_settings.json's zip callback adds them).
    """
    tag = cache_tag(runtime)
    with zipfile.ZipFile(package) as zipped:
        names = zipped.namelist()
    missing = bytecode_gaps(names, tag)
    if missing:
        raise DeployError(
            f"{package.name} ships {len(missing)} module(s) without {tag} bytecode (e.g. "
            f"{', '.join(missing[:3])}): each cold start would compile them; zappa_settings.json's "
            "zip callback (cli.zappa_guard.compile_package) adds it when Zappa packages"
        )
    return sum(name.endswith(".py") for name in names)


def _api_package(plan: DeployPlan, step: Step, context: DeployContext, version: str) -> None:
    python = require_python(version, context.python)
    build_api_package(context.repo, plan.stage, python, plan.package, plan.venv, context.run)
    size = plan.package.stat().st_size / 2**20
    modules = package_bytecode(plan.package, plan.runtime)
    context.did(
        f"API package {plan.package} ({size:.2f} MiB, {cache_tag(plan.runtime)} bytecode of "
        f"{modules} modules) built with {python}"
    )


def _validate(plan: DeployPlan, step: Step, context: DeployContext, version: str) -> None:
    zappa_template = plan.package.parent / "zappa-template.json"
    if not (plan.venv / "bin" / "zappa").exists():
        require_python(version, context.python)
        raise DeployError(f"{plan.venv} has no zappa: run the api-package step first")
    command = zappa_template_command(
        plan.venv, plan.stage, plan.api_name, plan.region, zappa_template
    )
    env = {
        **_api_env(plan),
        # `zappa template` makes no AWS call, but its boto3 session wants a region.
        "AWS_DEFAULT_REGION": plan.region,
    }
    run_command(command, context.run, context.repo, env)
    open_methods = api_method_problems(json.loads(zappa_template.read_text()), plan.access.mode)
    if open_methods:
        raise DeployError(
            f"the API's template ({zappa_template.name}) leaves methods open to callers the "
            f"stage's access ({plan.access.mode}) should refuse: " + "; ".join(open_methods)
        )
    context.did(f"{zappa_template.name}: every API method needs {METHOD_GUARDS[plan.access.mode]}")
    findings = lint_templates([context.repo / STACK_TEMPLATE, zappa_template])
    if findings:
        raise DeployError("cfn-lint findings:\n" + "\n".join(findings))
    context.did(f"cfn-lint clean: {STACK_TEMPLATE}, {zappa_template.name}")


def _client(context: DeployContext, service: str) -> BaseClient:
    if context.clients is None:
        raise DeployError(f"no AWS client for {service}")
    return context.clients(service)


def _stack(plan: DeployPlan, step: Step, context: DeployContext, version: str) -> None:
    try:
        outcome = aws.apply_stack(
            plan.stack_name,
            (context.repo / STACK_TEMPLATE).read_text(),
            plan.stack_parameters,
            poll_seconds=context.poll_seconds,
            client=_client(context, "cloudformation"),
        )
    except (aws.TemplateTooLarge, aws.StackNeedsDeletion) as exc:
        raise DeployError(str(exc)) from None
    context.did(f"stack {plan.stack_name} {outcome}")


def _api(plan: DeployPlan, step: Step, context: DeployContext, version: str) -> None:
    exists = aws.function_exists(plan.api_name, client=_client(context, "lambda"))
    verb = "update" if exists else "deploy"
    zappa = str(plan.venv / "bin" / "zappa")
    run_command(
        (zappa, verb, plan.stage, "--zip", str(plan.package)),
        context.run,
        context.repo,
        _api_env(plan),
    )
    context.did(f"zappa {verb} {plan.stage} ({plan.api_name}, {plan.runtime})")


def _access(plan: DeployPlan, step: Step, context: DeployContext, version: str) -> None:
    settings = zappa_stage(context.repo, plan.stage)
    lines = wire_access(
        _client(context, "apigateway"),
        plan.api_name,
        plan.stage,
        plan.access,
        settings.get("api_key"),
    )
    for line in lines:
        context.did(line)


def _alerts(plan: DeployPlan, step: Step, context: DeployContext, version: str) -> None:
    outputs = aws.stack_outputs(plan.stack_name, client=_client(context, "cloudformation"))
    topic = outputs.get("RunsTopicArn")
    pending = aws.pending_confirmations(topic, client=_client(context, "sns")) if topic else []
    for endpoint in pending:
        context.did(f"confirm the subscription e-mail sent to {endpoint} (alerts wait for it)")
    if not pending:
        context.did("no alert subscription waits for confirmation")


_STEP_RUNNERS: dict[str, Callable[[DeployPlan, Step, DeployContext, str], None]] = {
    "images": _images,
    "api-package": _api_package,
    "validate": _validate,
    "stack": _stack,
    "api": _api,
    "access": _access,
    "alerts": _alerts,
}

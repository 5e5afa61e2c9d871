"""zappa_settings.json: every handler string resolves, and `zappa package prod` really runs.

The packaging test builds the Lambda package as ``headwater deploy`` does: with Zappa in a
virtual environment of the Lambda runtime's Python (``runtime`` of the stage, 3.13), once
per session. It unzips it into an empty directory and calls the Lambda handler the stage
names (``lambda_handler``: api/lambda_handler.py, not Zappa's) with API Gateway (REST, v1
proxy) events and Zappa's keep-warm ping in a fresh interpreter of that same Python whose
path is only that directory plus boto3 (which the Lambda runtime provides), reading the
model from S3 (the moto server) under the prod stage's own environment. The package carries
the runtime's bytecode (zappa_settings.json's zip callback): that interpreter, writing none,
must load every module the handler imports from it.

Access control is checked on what Zappa generates (``zappa template``): every method of
every stage's API requires a key or IAM auth. ``zappa template`` runs from this (3.11) venv
and the package is built in the lean 3.13 one: zappa_settings.json's settings callback
(cli/zappa_guard.py, tests/cli/test_zappa_guard.py) lets both through.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest

from cli.deploy_steps import (
    api_access,
    build_api_package,
    find_python,
    runtime_version,
    zappa_template_command,
)
from cli.zappa_guard import VENV_STAMP, bytecode_gaps, cache_tag
from headwater.core.usecase import get_usecase
from tests.conftest import MODEL
from tests.usecases.registered import packaged

REPO = Path(__file__).resolve().parents[2]
SETTINGS = REPO / "zappa_settings.json"
EVENTS = Path(__file__).parent / "events"


def api_gateway_event(method: str, path: str, body: Any = None) -> dict[str, Any]:
    """An API Gateway (REST, v1) proxy event for ``method path``: the recorded health event
    (events/apigw_v1_health.json) readdressed, with a JSON body if given."""
    event = json.loads((EVENTS / "apigw_v1_health.json").read_text(encoding="utf-8"))
    event["httpMethod"] = event["requestContext"]["httpMethod"] = method
    event["path"] = path
    event["pathParameters"] = {"proxy": path.lstrip("/")}
    event["requestContext"]["path"] = f"/prod{path}"
    if body is not None:
        event["body"] = json.dumps(body)
        length = str(len(event["body"].encode()))
        headers = {"Content-Type": "application/json", "Content-Length": length}
        event["headers"].update(headers)
        event["multiValueHeaders"].update({k: [v] for k, v in headers.items()})
    return event


MAX_PACKAGE_BYTES = 8 * 1024 * 1024
# What the Lambda Python runtime provides: boto3 and its dependencies.
RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")
# Keys of Zappa settings whose value names a Python object ("module.attribute").
FUNCTION_KEYS = {
    "app_function",
    "exception_handler",
    "function",
    "lambda_handler",
    "authorizer_function",
    "websocket_handler_module",
}


def stage_settings(stage: str) -> dict[str, Any]:
    """A stage's settings with ``extends`` applied, as Zappa merges them (shallow)."""
    settings = json.loads(SETTINGS.read_text())
    body = dict(settings[stage])
    if "extends" in body:
        return {**stage_settings(body["extends"]), **body}
    return body


def function_strings(node: Any) -> list[str]:
    """Every value under a function-naming key, anywhere in the settings."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in FUNCTION_KEYS and isinstance(value, str):
                found.append(value)
            else:
                found.extend(function_strings(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(function_strings(item))
    return found


@pytest.mark.parametrize("stage", ["prod", "dev"])
def test_every_handler_string_resolves(
    stage: str, model_lake: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The module-level app reads its configuration from the environment, as on Lambda.
    monkeypatch.setenv("HEADWATER_STAGE", "test")
    monkeypatch.setenv("HEADWATER_LAKE__URI", model_lake)
    settings = stage_settings(stage)
    names = function_strings(settings)
    assert "api.wsgi.app" in names and "api.lambda_handler.lambda_handler" in names
    for name in names:
        module, _, attribute = name.rpartition(".")
        monkeypatch.delitem(sys.modules, module, raising=False)
        target = getattr(importlib.import_module(module), attribute)
        assert callable(target), name
    monkeypatch.delitem(sys.modules, "api.wsgi", raising=False)


@pytest.mark.parametrize("stage", ["prod", "dev"])
def test_stage_settings(stage: str) -> None:
    settings = stage_settings(stage)
    assert settings["app_function"] == "api.wsgi.app"
    # AWS Lambda's runtime table: python3.13 runs on Amazon Linux 2023, deprecated 2029-06-30
    assert settings["runtime"] == "python3.13"
    assert settings["aws_region"] and settings["memory_size"] >= 512
    assert 1 <= settings["timeout_seconds"] <= 30  # API Gateway gives up after 29 s
    env = settings["environment_variables"]
    assert env["HEADWATER_STAGE"] == stage
    assert env["HEADWATER_LAKE__URI"].startswith("s3://")
    assert settings["use_precompiled_packages"] is False  # packaging never downloads
    # never public: a key (with a usage plan) or IAM; throttled; reserved concurrency
    access = api_access(settings, stage)
    assert access.mode == "api_key" and access.usage_plan is not None
    assert access.stage_throttle.rate_limit > 0 and access.usage_plan.quota_limit > 0
    assert 1 <= access.reserved_concurrency <= 100


@pytest.fixture(scope="session")
def zappa_templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """What ``zappa template <stage>`` generates for each stage (no AWS call is made)."""
    zappa_bin = Path(sys.executable).parent / "zappa"
    out = tmp_path_factory.mktemp("zappa-template")
    env = {
        **os.environ,
        "VIRTUAL_ENV": sys.prefix,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    templates = {}
    for stage in ("prod", "dev"):
        name = f"headwater-api-{stage}"
        command = zappa_template_command(
            Path(sys.prefix), stage, name, "us-east-1", out / f"{stage}.json"
        )
        done = subprocess.run(
            [str(zappa_bin), *command[1:]],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        templates[stage] = json.loads((out / f"{stage}.json").read_text())
    return templates


@pytest.mark.parametrize("stage", ["prod", "dev"])
def test_every_method_zappa_creates_refuses_a_request_without_a_key(
    stage: str, zappa_templates: dict[str, dict[str, Any]]
) -> None:
    # API Gateway answers 403 to a request without a valid x-api-key on such a method
    resources = zappa_templates[stage]["Resources"]
    methods = [
        r["Properties"] for r in resources.values() if r["Type"] == "AWS::ApiGateway::Method"
    ]
    # the root and the {proxy+} resource, ANY method each: every route of the Flask app
    assert {m["HttpMethod"] for m in methods} == {"ANY"} and len(methods) == 2
    for method in methods:
        assert method["ApiKeyRequired"] is True
        assert method["AuthorizationType"] == "NONE"


def test_exclude_list_keeps_the_heavy_stack_out_and_botocore_data_in() -> None:
    exclude = stage_settings("prod")["exclude"]
    # tenacity too: the API's model store imports headwater.aws.clients alone, which needs none
    for name in ("pyspark", "pandas", "numpy", "pyarrow", "tests", "bench", "var", "tenacity"):
        assert name in exclude
    # Zappa matches each pattern against every file and folder name, at any depth.
    must_stay = [
        "endpoints.json.gz",
        "service-2.json.gz",
        "data",
        "config",
        "api",
        "headwater",
        "flask",
        "werkzeug",
        "jinja2",
        "zappa",
        "handler.py",
        "scoring.py",
        "usecases",
        *packaged(),  # every use-case package
        "features.py",
        "serving.py",
        "calendar.py",
        "layout.py",
        "pydantic",
        "pydantic_core",
        "annotated_types",
        "typing_inspection",
        "typing_extensions.py",
    ]
    for name in must_stay:
        assert not [p for p in exclude if fnmatch.fnmatch(name, p)], name


IMPORTS = """
import sys
import api, headwater.serving.store, headwater.serving.predictor, headwater.aws.clients
print(sorted(m for m in sys.modules if m.startswith(("tenacity", "headwater.aws"))))
from headwater import aws
print(aws.LambdaExecutor.__module__, aws.EmrRunner.__module__, "tenacity" in sys.modules)
"""


def test_the_api_and_the_s3_client_module_load_no_tenacity_nor_emr_or_lambda() -> None:
    # Given a fresh interpreter importing what the API's Lambda package runs
    ran = subprocess.run(
        [sys.executable, "-c", IMPORTS], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert ran.returncode == 0, ran.stderr
    alone, package = ran.stdout.splitlines()

    # Then the S3 client module comes alone (so the package may exclude tenacity), and the
    # package's re-exports still import their service modules on first use
    assert alone == "['headwater.aws', 'headwater.aws.clients']"
    assert package == "headwater.aws.lambda_ headwater.aws.emr True"


def runtime_dir(target: Path, site_packages: Path) -> Path:
    """A folder holding only boto3 and its dependencies, as the Lambda runtime has them."""
    target.mkdir()
    for name in RUNTIME_MODULES:
        matches = [p for p in (site_packages / name, site_packages / f"{name}.py") if p.exists()]
        assert matches, f"{name} is not in {site_packages}"
        os.symlink(matches[0], target / matches[0].name)
    return target


@pytest.fixture(scope="session")
def lambda_python() -> Path:
    """The interpreter of the stage's Lambda runtime (CI machines have it; else skip)."""
    version = runtime_version(stage_settings("prod")["runtime"])
    python = find_python(version)
    if python is None:
        pytest.skip(f"no Python {version} here (pyenv install {version}): the Lambda runtime's")
    return python


@pytest.fixture(scope="session")
def api_package(tmp_path_factory: pytest.TempPathFactory, lambda_python: Path) -> tuple[Path, Path]:
    """The prod package, built as ``headwater deploy`` builds it; and its venv."""
    build = tmp_path_factory.mktemp("api-package")
    venv = build / "venv-lambda"
    archive = build_api_package(REPO, "prod", lambda_python, build / "headwater-api-prod.zip", venv)
    return archive, venv


INVOKE = r"""
import importlib, importlib.util, json, sys, time
package, runtime, name = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path[:0] = [package, runtime]
module, _, function = name.rpartition(".")

class Context:
    function_name = "headwater-api-prod"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:headwater-api-prod"
    memory_limit_in_mb = 1024
    aws_request_id = "8f3b2c1e-5a4d-4e6f-9b8a-7c6d5e4f3a2b"
    log_group_name = "/aws/lambda/headwater-api-prod"
    log_stream_name = "2026/11/24/[$LATEST]0123456789abcdef"
    def get_remaining_time_in_millis(self):
        return 30000

started = time.perf_counter()
handler = getattr(importlib.import_module(module), function)
out = {"responses": {}, "origins": {}}
for name in sys.argv[4:]:
    with open(name) as f:
        event = json.load(f)
    out["responses"][name] = handler(event, Context())
out["seconds"] = time.perf_counter() - started
out["python"] = "%d.%d" % sys.version_info[:2]
for module in ("flask", "zappa", "api", "headwater", "boto3"):
    out["origins"][module] = importlib.util.find_spec(module).origin
out["modules"] = sorted(m.__file__ for m in list(sys.modules.values())
                       if (getattr(m, "__file__", None) or "").startswith(package)
                       and m.__file__.endswith(".py"))
out["absent"] = [m for m in ("pandas", "numpy", "pyarrow", "pyspark", "pandera", "gunicorn",
                             "troposphere", "tenacity") if importlib.util.find_spec(m) is None]
out["zappa"] = sorted(m for m in sys.modules if m.partition(".")[0] in ("zappa", "handler"))
print("RESULT " + json.dumps(out))
"""


@pytest.mark.slow
def test_zappa_package_runs_on_lambda(
    tmp_path: Path,
    moto_endpoint: str,
    aws_env: None,
    publish: Any,
    base_version: str,
    lambda_python: Path,
    api_package: tuple[Path, Path],
) -> None:
    import boto3

    # Given the prod stage's model in the prod stage's bucket (on the moto server)
    lake = stage_settings("prod")["environment_variables"]["HEADWATER_LAKE__URI"]
    bucket = lake.removeprefix("s3://").split("/")[0]
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_endpoint)
    if bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=bucket)
    served = tomllib.loads((REPO / "config" / "prod.toml").read_text())["usecases"]
    assert MODEL in served and len(served) > 1
    for name in served:  # the test model of each use case prod serves
        publish(lake, usecase=name, region="us-east-1", endpoint_url=moto_endpoint)

    # When Zappa packages the prod stage from a venv of the runtime's Python (the fixture),
    # marked as the lean one: the settings callback let it through
    archive, venv = api_package
    assert (venv / VENV_STAMP).is_file() and archive.is_file()
    (site_packages,) = (venv / "lib").glob("python3.*/site-packages")
    assert (
        site_packages.parent.name == f"python{runtime_version(stage_settings('prod')['runtime'])}"
    )

    # Then it is small, and holds no Spark, pandas, tests, data or benchmarks
    size = archive.stat().st_size
    assert size <= MAX_PACKAGE_BYTES, f"package is {size / 2**20:.1f} MiB"
    names = zipfile.ZipFile(archive).namelist()
    tops = {name.split("/")[0] for name in names}
    assert {"handler.py", "zappa_settings.py", "api", "headwater", "flask", "zappa"} <= tops
    assert "config/prod.toml" in names
    assert not [n for n in names if n.endswith(".csv.gz")]  # vendored demo data stays out
    forbidden = {
        "cli",
        "pyspark",
        "pandas",
        "numpy",
        "pyarrow",
        "boto3",
        "botocore",
        "tests",
        "bench",
        "var",
        "emr_jobs",
        "luigi_tasks",
        "tenacity",
    }
    assert not tops & forbidden

    # And every module it ships carries the runtime's bytecode (Lambda's disk is read-only:
    # without it each cold start compiles them all), hash-based and unchecked (zip times are
    # 1980's), of the runtime's magic number
    runtime_python = runtime_version(stage_settings("prod")["runtime"])
    tag = cache_tag(stage_settings("prod")["runtime"])
    assert bytecode_gaps(names, tag) == []
    magic = subprocess.run(
        [
            str(lambda_python),
            "-c",
            "import importlib.util; print(importlib.util.MAGIC_NUMBER.hex())",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    compiled = [n for n in names if n.endswith(f".{tag}.pyc")]
    assert len(compiled) == sum(n.endswith(".py") for n in names) > 300
    with zipfile.ZipFile(archive) as zipped:
        headers = {zipped.open(name).read(8).hex() for name in compiled}
    assert headers == {magic + "01000000"}

    # And, unzipped alone beside boto3, its Lambda handler answers API Gateway events
    package = tmp_path / "task"
    zipfile.ZipFile(archive).extractall(package)
    runtime = runtime_dir(tmp_path / "runtime", site_packages)
    lambda_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LAMBDA_TASK_ROOT": str(package),
        "AWS_LAMBDA_FUNCTION_NAME": "headwater-api-prod",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "HEADWATER_AWS__ENDPOINT_URL": moto_endpoint,  # the only thing not from the package
    }
    usecase = get_usecase(MODEL)
    url = f"/v1/{MODEL}/predictions"
    example = dict(usecase.serving.example)
    events = [str(EVENTS / "apigw_v1_health.json"), str(EVENTS / "keep_warm.json")]
    for name, body in (("prediction", example), ("bad_prediction", {})):
        events.append(str(tmp_path / f"apigw_v1_{name}.json"))
        Path(events[-1]).write_text(json.dumps(api_gateway_event("POST", url, body)))
    ran = subprocess.run(
        # -B: writes no bytecode (Lambda's disk is read-only); -v: says where each code came from
        [str(lambda_python), "-I", "-S", "-B", "-v", "-c", INVOKE, str(package), str(runtime)]
        + [stage_settings("prod")["lambda_handler"], *events],
        cwd=package,
        env=lambda_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    before, after = ran.stdout.split("RESULT ", 1)
    result_line, *later = after.splitlines()
    result = json.loads(result_line)
    print(f"package {size / 2**20:.2f} MiB; handler import + 3 events {result['seconds']:.2f} s")
    for module in ("flask", "zappa", "api", "headwater"):
        assert result["origins"][module].startswith(str(package)), module
    assert result["origins"]["boto3"].startswith(str(runtime))
    assert result["python"] == runtime_version(stage_settings("prod")["runtime"])
    assert len(result["absent"]) == 8  # nothing else of this venv is importable there
    # every module of the package it imported came from the package's bytecode, none compiled
    loaded = [
        line.removeprefix("# code object from ").strip("'")
        for line in ran.stderr.splitlines()
        if line.startswith("# code object from") and str(package) in line
    ]
    expected = {
        str(Path(f).parent / "__pycache__" / f"{Path(f).stem}.{tag}.pyc") for f in result["modules"]
    }
    assert len(expected) > 100 and expected <= set(loaded)
    assert all(path.endswith(f".{tag}.pyc") for path in loaded), [
        path for path in loaded if not path.endswith(".pyc")
    ][:5]
    assert runtime_python == result["python"]
    health, warm, prediction, bad = (result["responses"][name] for name in events)
    # the handler the stage names answered without Zappa's (nor its boto3 before the app: the
    # model store's S3 client imports it here), and Zappa's keep-warm ping was answered by nothing
    assert result["zappa"] == []
    assert warm is None

    assert health["statusCode"] == 200
    models = json.loads(health["body"])["models"]
    assert models[MODEL]["model"] == {"name": MODEL, "version": base_version}
    assert all(models[name]["loaded"] for name in served)
    assert prediction["statusCode"] == 200
    body = json.loads(prediction["body"])
    assert 0.0 < body[usecase.serving.answer.probability] < 1.0
    assert body["model"]["version"] == base_version
    assert bad["statusCode"] == 400
    problems = json.loads(bad["body"])["error"]["problems"]
    required = {n for n, f in usecase.serving.request_model.model_fields.items() if f.is_required()}
    assert required and {p["field"] for p in problems} >= required
    # prod's capture (the log sink) wrote the answered prediction as one line on stdout
    captured = [
        json.loads(line)
        for line in [*before.splitlines(), *later]
        if line.startswith('{"capture":')
    ]
    assert [(c["usecase"], c["model_version"]) for c in captured] == [(MODEL, base_version)]

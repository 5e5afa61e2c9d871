"""What a cold start of the API loads: nothing the Lambda package leaves out, no OpenAPI schema.

A fresh interpreter imports the app, builds it and answers one prediction per use case, as
Lambda's init phase and first request (or a gunicorn worker's start) do, with every package
that ``zappa_settings.json`` keeps out of the Lambda package made unimportable (rich among
them: structlog imports it only when installed). Only ``/openapi.json`` and ``/docs`` need
the document, so the cold start neither imports its generator (:mod:`api.openapi`) nor
builds the schema of any answer model. Through the Lambda handler zappa_settings.json names
(as the package runs it, its ``zappa_settings.py`` beside it), no AWS SDK and no Zappa either:
Zappa's own handler imported boto3, botocore and asyncio before the app, about a quarter of
the package's cold start. Counted, not timed: ``bench/api_latency.py`` times it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from headwater.core.usecase import get_usecase
from tests.api.test_zappa import api_gateway_event, stage_settings
from tests.conftest import model_directories

REPO = Path(__file__).resolve().parents[2]
# What the Lambda runtime provides although the package leaves it out (tests/api/test_zappa.py).
RUNTIME_MODULES = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3"}


def excluded_from_package() -> list[str]:
    """The importable top-level names the prod stage's Lambda package leaves out."""
    exclude = json.loads((REPO / "zappa_settings.json").read_text())["prod"]["exclude"]
    names = {
        name.removesuffix(".py")
        for name in exclude
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.py)?", name)
    }
    return sorted(names - RUNTIME_MODULES)


COLD = r"""
import importlib.abc, json, sys

excluded = set(json.loads(sys.argv[1]))


class NotInPackage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in excluded:
            raise ModuleNotFoundError(f"No module named {name!r} (not in the package)", name=name)
        return None


sys.meta_path.insert(0, NotInPackage())
from pydantic import BaseModel

from api import create_app

client = create_app({"STAGE": "test", "LAKE_URI": sys.argv[2]}).test_client()
for usecase, example in json.loads(sys.argv[3]).items():
    response = client.post(f"/v1/{usecase}/predictions", json=example)
    assert response.status_code == 200, response.get_data(as_text=True)


def subclasses(model):
    for sub in model.__subclasses__():
        yield sub
        yield from subclasses(sub)


# the answers' shapes: declared beside the code that builds the answers
answers = ("headwater.serving.predictor", "api.errors", "api.blueprints.health")
built = sorted(
    m.__name__ for m in subclasses(BaseModel) if m.__module__ in answers and m.__pydantic_complete__
)
# our models whose own annotations are strings (``from __future__ import annotations``)
postponed = sorted(
    f"{m.__module__}.{m.__name__}"
    for m in subclasses(BaseModel)
    if m.__module__.startswith(("headwater.", "api."))
    and any(isinstance(a, str) for a in vars(m).get("__annotations__", {}).values())
)
modules = sorted(sys.modules)
document = client.get("/openapi.json")
print(json.dumps({
    "modules": modules,
    "built": built,
    "postponed": postponed,
    "openapi": document.status_code,
    "schemas": len(document.get_json()["components"]["schemas"]),
}))
"""


@pytest.fixture
def cold_start(model_lake: str, api_env: Path) -> dict[str, Any]:
    """What a fresh interpreter loaded to answer once per use case, then its /openapi.json."""
    examples = {name: dict(get_usecase(name).serving.example) for name in model_directories()}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            COLD,
            json.dumps(excluded_from_package()),
            model_lake,
            json.dumps(examples),
        ],
        cwd=REPO,
        env={**os.environ, "HEADWATER_CONFIG_DIR": str(api_env)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_api_answers_without_any_package_the_lambda_package_leaves_out(
    cold_start: dict[str, Any],
) -> None:
    # Given the excluded packages unimportable, the app started and answered (the fixture);
    # then it loaded no code of another layer's deployables either (no Spark, report, console,
    # deploy, registry or monitoring code)
    ours = [m for m in cold_start["modules"] if m.startswith(("headwater.", "api"))]
    assert [m for m in ours if m.startswith(("headwater.model", "headwater.ops"))] == []
    assert [m for m in ours if m.startswith(("headwater.registry", "headwater.monitoring"))] == []
    assert "rich" in excluded_from_package() and "pandas" in excluded_from_package()


def test_a_cold_start_neither_imports_the_openapi_generator_nor_builds_answer_schemas(
    cold_start: dict[str, Any],
) -> None:
    # Then answering predictions needed neither the document's generator nor the schemas
    # of the answers (ModelInfo, Health, Error...: built when the document is)
    assert "api.openapi" not in cold_start["modules"]
    # nor what only training uses (statistics: medians of a use case's lookups, Spark side)
    assert "statistics" not in cold_start["modules"]
    assert cold_start["built"] == []
    # and the document is still there when asked for, generated on first use
    assert cold_start["openapi"] == 200 and cold_start["schemas"] > 10


def test_no_model_a_cold_start_creates_has_postponed_annotations(
    cold_start: dict[str, Any],
) -> None:
    # Then every pydantic model of ours that the cold start created (the settings' sections,
    # the request models, the answers' shapes) was declared with its annotations evaluated:
    # pydantic compiles and evaluates a string annotation (``from __future__ import
    # annotations``) once per field when it creates the class: 19 M instructions (1 %) of
    # the package's cold start for these modules (docs/benchmarks.md)
    assert cold_start["postponed"] == []


GC_COLD = r"""
import gc, importlib.util, json, sys

# import api by hand, its code compiled first (compiling its source is no part of importing
# it: the package ships its bytecode), so that only the import itself is watched
spec = importlib.util.find_spec("api")
code = spec.loader.get_code("api")
sys.modules["api"] = module = importlib.util.module_from_spec(spec)
collections = []
gc.callbacks.append(lambda phase, info: phase == "stop" and collections.append(info))
exec(code, module.__dict__)
gc.callbacks.clear()
print(json.dumps({"collections": len(collections), "enabled": gc.isenabled()}))
"""


def test_importing_the_app_leaves_the_collector_nothing_to_scan() -> None:
    # When a fresh interpreter imports the app's package (what the Lambda runtime imports first)
    done = subprocess.run(
        [sys.executable, "-c", GC_COLD],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])

    # Then no collection ran while the imports created the process's long-lived objects (34
    # passes over them before, 3% of the cold start), and none is due for them afterwards
    # (frozen), with the collector on again for what requests create
    assert found == {"collections": 0, "enabled": True}


#: Zappa's default ``lambda_handler``: its handler.py, which it copies to the package's root.
ZAPPA_HANDLER = "handler.lambda_handler"
#: What Zappa writes into the package as zappa_settings.py (the prod stage's, lake swapped).
SETTINGS_MODULE = """
APP_MODULE = "api.wsgi"
APP_FUNCTION = "app"
EXCEPTION_HANDLER = None
DEBUG = False
LOG_LEVEL = "INFO"
BINARY_SUPPORT = True
CONTEXT_HEADER_MAPPINGS = {{}}
DOMAIN = None
BASE_PATH = None
ENVIRONMENT_VARIABLES = {environment!r}
API_STAGE = "prod"
PROJECT_NAME = "headwater-api"
SETTINGS_FILE = None
DJANGO_SETTINGS = None
AWS_EVENT_MAPPING = {{}}
AWS_BOT_EVENT_MAPPING = {{}}
COGNITO_TRIGGER_MAPPING = {{}}
ASYNC_RESPONSE_TABLE = ""
ADDITIONAL_TEXT_MIMETYPES = []
"""
HANDLER_COLD = r"""
import importlib, json, sys

sys.path.insert(0, sys.argv[1])
module, _, function = sys.argv[2].rpartition(".")
if module == "handler":  # Zappa copies zappa/handler.py to the package's root
    module = "zappa.handler"
handler = getattr(importlib.import_module(module), function)
for event in json.loads(sys.argv[3]):
    answer = handler(event, None)
    assert answer["statusCode"] == 200, answer
print(json.dumps(sorted(sys.modules)))
"""


def test_the_lambda_handler_answers_without_the_aws_sdk_or_zappa(
    model_lake: str, tmp_path: Path
) -> None:
    # Given the prod stage's handler and settings module, as in the package, on the test lake
    handler = stage_settings("prod").get("lambda_handler", ZAPPA_HANDLER)
    environment = {"HEADWATER_STAGE": "test", "HEADWATER_LAKE__URI": model_lake}
    (tmp_path / "zappa_settings.py").write_text(SETTINGS_MODULE.format(environment=environment))
    events = [api_gateway_event("GET", "/health")] + [
        api_gateway_event(
            "POST", f"/v1/{name}/predictions", dict(get_usecase(name).serving.example)
        )
        for name in model_directories()
    ]

    # When a fresh interpreter answers GET /health and one prediction per use case through it
    done = subprocess.run(
        [sys.executable, "-c", HANDLER_COLD, str(tmp_path), handler, json.dumps(events)],
        cwd=REPO,
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    modules = set(json.loads(done.stdout.strip().splitlines()[-1]))

    # Then neither the AWS SDK (the lake is local; S3 clients are made on first use) nor Zappa
    # was imported: the runtime's boto3 was there to be imported, and nothing did
    assert {"boto3", "botocore", "s3transfer", "zappa", "zappa.handler"} & modules == set()
    assert "api.lambda_handler" in modules and "apig_wsgi" in modules

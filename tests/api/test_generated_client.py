"""A client generated from ``/openapi.json`` by openapi-python-client works, for every use case.

As a new user would: the real server (``headwater serve``) answers its document, the
generator (0.29.1, offline) turns it into a Python package in ``tmp_path``, and every route
of every enabled use case is called through it (one prediction, a batch, a refused
request, the model, health), each answer parsed into the generator's typed objects and
compared with what the server sends. The generator runs in an environment of its own
(``make openapi-client``): it pins typer below what the CLI uses.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.api.conftest import request

REPO = Path(__file__).resolve().parents[2]
GENERATOR = REPO / ".venv-openapi-client" / "bin" / "openapi-python-client"
PACKAGE = "headwater_generated_client"


def snake(name: str) -> str:
    """The generator's module name of an operationId (``<usecase>_createPredictions``)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


@pytest.fixture
def document(server: int) -> dict[str, Any]:
    """The document the running server answers."""
    status, _, document = request(server, "GET", "/openapi.json")
    assert status == 200
    return document


@pytest.fixture
def generated(document: dict[str, Any], tmp_path: Path) -> Iterator[tuple[ModuleType, str]]:
    """The client package generated from ``document`` and imported, and the generator's output."""
    if not GENERATOR.exists():
        reason = f"{GENERATOR.parent.parent.name} is absent: `make openapi-client` creates it"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (make test does, before pytest)")
        pytest.skip(reason)
    source = tmp_path / "openapi.json"
    source.write_text(json.dumps(document), encoding="utf-8")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"package_name_override": PACKAGE, "post_hooks": []}))
    done = subprocess.run(
        [str(GENERATOR), "generate", "--path", str(source), "--meta", "none"]
        + ["--output-path", str(tmp_path / PACKAGE), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "PATH": f"{GENERATOR.parent}{os.pathsep}{os.environ['PATH']}"},
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE), output
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def operation(package: ModuleType, document: dict[str, Any], path: str, method: str) -> Any:
    """The generated module of one documented operation."""
    spec = document["paths"][path][method]
    tag = spec.get("tags", ["default"])[0]
    return importlib.import_module(f"{package.__name__}.api.{tag}.{snake(spec['operationId'])}")


def component(package: ModuleType, document: dict[str, Any], name: str) -> type:
    """The generated model class of a component schema (named by its title, as the generator)."""
    title = document["components"]["schemas"][name].get("title", name)
    cls = "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", title))
    return getattr(importlib.import_module(f"{package.__name__}.models"), cls)


def request_class(package: ModuleType, document: dict[str, Any], path: str) -> tuple[type, type]:
    """The generated classes of the one-instance and the batch request bodies of ``path``."""
    body = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    one, batch = (ref["$ref"].rsplit("/", 1)[1] for ref in body["schema"]["oneOf"])
    return component(package, document, one), component(package, document, batch)


def test_the_generator_generates_every_operation_without_warnings(
    generated: tuple[ModuleType, str], document: dict[str, Any]
) -> None:
    package, output = generated
    assert "Warning" not in output, output
    for path, item in document["paths"].items():
        for method in item:
            assert operation(package, document, path, method) is not None, (method, path)


def test_every_route_of_every_use_case_answers_typed_objects(
    server: int,
    generated: tuple[ModuleType, str],
    document: dict[str, Any],
    base_version: str,
) -> None:
    package, _ = generated
    with package.Client(base_url=f"http://127.0.0.1:{server}") as client:
        check_every_route(server, package, client, document, base_version)


def check_every_route(
    server: int, package: ModuleType, client: Any, document: dict[str, Any], base_version: str
) -> None:
    """Call every operation through the generated client; compare its objects with the JSON."""
    from headwater.core.config import load_settings
    from headwater.core.usecase import get_usecase
    from tests.conftest import MODEL

    max_batch = document["x-limits"]["max_batch"]
    _, _, health_json = request(server, "GET", "/health")
    usecases = list(health_json["models"])
    assert usecases == list(load_settings("test").usecases)  # the test stage serves them all
    assert len(usecases) > 1 and MODEL in usecases

    for name in usecases:
        usecase = get_usecase(name)
        keys, example = usecase.serving.answer, dict(usecase.serving.example)
        path = f"/v1/{name}/predictions"
        predictions = operation(package, document, path, "post")
        one_class, batch_class = request_class(package, document, path)

        # one instance: a typed prediction, the same as the server's JSON
        one = predictions.sync(client=client, body=one_class.from_dict(example))
        _, _, raw = request(server, "POST", path, example)
        assert type(one).__name__ != "dict" and one.to_dict() == raw, name
        assert 0.0 <= getattr(one, keys.probability) <= 1.0
        assert getattr(one, keys.decision) is (getattr(one, keys.probability) > one.threshold)
        assert getattr(one, keys.estimate) == raw[keys.estimate]
        assert (one.model.name, one.model.version) == (name, raw["model"]["version"])

        # a batch: typed predictions, in order
        batch_body = batch_class.from_dict({"instances": [example, example]})
        batch = predictions.sync(client=client, body=batch_body)
        assert [p.to_dict() for p in batch.predictions] == [raw, raw]

        # a batch over the limit: the typed error body
        too_many = batch_class.from_dict({"instances": [example] * (max_batch + 1)})
        refused = predictions.sync_detailed(client=client, body=too_many)
        assert refused.status_code == 400
        assert refused.parsed.error.code == "batch_too_large"
        assert refused.parsed.error.status == 400

        # invalid fields: the typed error, each problem typed
        kwargs = predictions._get_kwargs(body=one_class.from_dict(example))
        kwargs["json"] = {"instances": [{}]}
        response = client.get_httpx_client().request(**kwargs)
        invalid = predictions._build_response(client=client, response=response)
        assert invalid.status_code == 400
        error = invalid.parsed.error
        assert error.code == "invalid_request" and error.status == 400
        assert error.problems and all(p.field.startswith("instances[0]") for p in error.problems)

        # the model in service
        info = operation(package, document, f"/v1/{name}/model", "get").sync(client=client)
        _, _, raw_info = request(server, "GET", f"/v1/{name}/model")
        # (two requests may reach two workers, each with its own load time: compare the rest)
        assert {**info.to_dict(), "loaded_at": None} == {**raw_info, "loaded_at": None}
        assert (info.name, info.version, info.threshold) == (name, one.model.version, one.threshold)
        assert list(info.features) == raw_info["features"] and info.features

    health = operation(package, document, "/health", "get").sync(client=client)

    # (two requests may reach two workers: pointer checks and capture counters are per worker,
    # so what is compared is what every worker agrees on, and the shape of the rest)
    def steady(body: dict[str, Any]) -> dict[str, Any]:
        models = {
            name: {key: model.get(key) for key in ("loaded", "model", "production", "error")}
            for name, model in body["models"].items()
        }
        return {"status": body["status"], "stage": body["stage"], "models": models}

    typed = health.to_dict()
    assert steady(typed) == steady(health_json)
    assert set(typed["capture"]) == set(health_json["capture"])
    assert {n: set(m) for n, m in typed["models"].items()} == {
        n: set(m) for n, m in health_json["models"].items()
    }
    assert health.status == "ok" and health.stage == "test"
    served = health.models.additional_properties
    assert set(served) == set(usecases)
    assert all(served[n].loaded for n in usecases)
    assert served[MODEL].model.version == base_version  # the test model's

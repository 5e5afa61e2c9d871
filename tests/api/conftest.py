"""Fixtures of the API tests: a model version per use case, published in a tmp lake.

``tests/api/model`` holds a real export, trimmed lookups and real metrics of a
Spark-trained flights version, plus flights Spark itself scored with that version
(``spark_predictions.json``); ``generate.py`` there rebuilds them.
``tests/api/model/bikeshare`` holds a tiny hand-made bike-share version in the same
format (its ``generate.py`` writes it). Versions are published and promoted with the
real registry under ``models/<use case>/``, so the API reads exactly what training writes.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

MODEL_DIR = Path(__file__).parent / "model"
EVENTS_DIR = Path(__file__).parent / "events"
MODEL = "flights"  # the registry name is the use case's
MODEL_DIRS = {"flights": MODEL_DIR, "bikeshare": MODEL_DIR / "bikeshare"}
FILES = ("export.json", "lookups.json", "metrics.json", "lineage.json")


#: The stage file of the tests (stage ``test``): both use cases enabled, no sources needed.
TEST_STAGE = """
usecases = ["flights", "bikeshare"]

[lake]
uri = "file:///nonexistent/lake"

[usecase.flights]
[usecase.bikeshare]
"""


@pytest.fixture(autouse=True)
def api_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No HEADWATER_* variable of the outer environment leaks in; stage files: ``test`` only."""
    for name in [n for n in os.environ if n.startswith("HEADWATER_")]:
        monkeypatch.delenv(name)
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "test.toml").write_text(TEST_STAGE, encoding="utf-8")
    monkeypatch.setenv("HEADWATER_CONFIG_DIR", str(folder))
    return folder


def read_documents(usecase: str) -> dict[str, Any]:
    """The test version of ``usecase``: its documents by file name."""
    return {name: json.loads((MODEL_DIRS[usecase] / name).read_text()) for name in FILES}


@pytest.fixture(scope="session")
def model_documents() -> dict[str, Any]:
    """The flights version's documents by file name (do not mutate: copy first)."""
    return read_documents("flights")


@pytest.fixture(scope="session")
def bike_documents() -> dict[str, Any]:
    """The bike-share version's documents by file name (do not mutate: copy first)."""
    return read_documents("bikeshare")


@pytest.fixture(scope="session")
def bike_version(bike_documents: dict[str, Any]) -> str:
    """The version of the bike-share test model."""
    return bike_documents["export.json"]["metadata"]["version"]


@pytest.fixture(scope="session")
def base_version(model_documents: dict[str, Any]) -> str:
    """The version the test model was trained as."""
    return model_documents["export.json"]["metadata"]["version"]


@pytest.fixture(scope="session")
def spark_cases() -> list[dict[str, Any]]:
    """Real holdout flights as API requests, with the probability and delay Spark gave them."""
    return json.loads((MODEL_DIR / "spark_predictions.json").read_text())["cases"]


def variant(documents: dict[str, Any], version: str, shift: float) -> dict[str, Any]:
    """The same model as another version, its classifier's intercept moved by ``shift``."""
    out = copy.deepcopy(documents)
    out["export.json"]["metadata"]["version"] = version
    stages = out["export.json"]["pipelines"]["classifier"]["stages"]
    stages[-1]["intercept"] += shift
    return out


Publish = Callable[..., str]


@pytest.fixture
def lake_uri(tmp_path: Path) -> str:
    """An empty lake (no model promoted)."""
    return f"file://{tmp_path}/lake"


@pytest.fixture
def publish(model_documents: dict[str, Any]) -> Publish:
    """Write a version with the real registry (``_SUCCESS`` last) and, by default, promote it.

    ``publish(lake_uri, version=None, usecase="flights", shift=0.0, promote=True,
    complete=True, skip=(), replace={})``: ``skip`` leaves files out, ``replace`` maps file
    names to raw bytes.
    """
    from headwater.lake import open_lake
    from headwater.layout import model_parts
    from headwater.registry import Registry

    def publish_version(
        uri: str,
        version: str | None = None,
        *,
        usecase: str = MODEL,
        shift: float = 0.0,
        promote: bool = True,
        complete: bool = True,
        skip: tuple[str, ...] = (),
        replace: dict[str, bytes] | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
    ) -> str:
        originals = model_documents if usecase == MODEL else read_documents(usecase)
        version = version or originals["export.json"]["metadata"]["version"]
        documents = variant(originals, version, shift)
        lake = open_lake(uri, region=region, endpoint_url=endpoint_url)
        registry = Registry(lake, usecase)
        for name in FILES:
            if name in skip:
                continue
            data = (replace or {}).get(name)
            if data is None:
                data = json.dumps(documents[name]).encode()
            lake.write_bytes(data, *model_parts(usecase, version, name))
        if complete:
            registry.mark_complete(version)
        if promote:
            registry.promote(version, "promoted by the API tests")
        return version

    return publish_version


@pytest.fixture
def model_lake(lake_uri: str, publish: Publish) -> str:
    """A lake whose production versions are the test models of both use cases."""
    publish(lake_uri)
    publish(lake_uri, usecase="bikeshare")
    return lake_uri


def _make_app(lake: str, **config: Any) -> Flask:
    from api import create_app

    return create_app({"STAGE": "test", "LAKE_URI": lake, "TESTING": True, **config})


@pytest.fixture
def app_for() -> Callable[..., Flask]:
    """``app_for(lake_uri, **config)``: an app on that lake, stage ``test``, with overrides."""
    return _make_app


@pytest.fixture
def app(model_lake: str) -> Flask:
    """The app serving the test model (pointer re-checked every 30 s: not within a test)."""
    return _make_app(model_lake)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of :func:`app`."""
    return app.test_client()


@pytest.fixture
def empty_client(lake_uri: str) -> FlaskClient:
    """A test client of an app whose lake has no promoted model."""
    return _make_app(lake_uri).test_client()


@pytest.fixture
def flight(spark_cases: list[dict[str, Any]]) -> dict[str, Any]:
    """One valid flight request (a real holdout flight, with all its inputs)."""
    return copy.deepcopy(spark_cases[0]["request"])


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    """A clock for the model cache's reload interval."""
    yield FakeClock()

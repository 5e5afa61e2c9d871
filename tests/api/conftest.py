"""Fixtures of the API tests: a model version per use case, published in a tmp lake.

The test models are tests/conftest.py's (``model_directories()``: one version per use case, each
folder's ``generate.py`` rebuilding it); the API's test stage serves exactly those use cases.
Versions are published and promoted with the real registry under ``models/<use case>/``, so
the API reads exactly what training writes. A request to the test model is its use case's
documented example (``example``); a shipped use case's own requests are in its folder.
"""

from __future__ import annotations

import contextlib
import copy
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import model_directories

EVENTS_DIR = Path(__file__).parent / "events"
#: Every use case with a test model (its fixtures.py's TEST_MODEL), by name.
MODEL_DIRS = model_directories()

#: The stage file of the tests (stage ``test``): every use case with a test model enabled, no
#: sources needed.
TEST_STAGE = f"""
usecases = {json.dumps(list(MODEL_DIRS))}

[lake]
uri = "file:///nonexistent/lake"
""" + "".join(f"[usecase.{name}]\n" for name in MODEL_DIRS)


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


@pytest.fixture(scope="session")
def model_usecase() -> str:
    """The use case of the test model ``publish`` writes by default (tests/conftest.py)."""
    from tests.conftest import MODEL

    return MODEL


@pytest.fixture
def example(model_usecase: str) -> dict[str, Any]:
    """One valid request to the test model: its use case's documented example."""
    from headwater.core.usecase import get_usecase

    return copy.deepcopy(dict(get_usecase(model_usecase).serving.example))


@pytest.fixture
def predictions_url(model_usecase: str) -> str:
    """Where the test model answers."""
    return f"/v1/{model_usecase}/predictions"


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


# -- `headwater serve`: the real server (gunicorn) on loopback -----------------------------------
def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def request(port: int, method: str, path: str, body: Any = None) -> tuple[int, str, Any]:
    """One JSON exchange with the server on ``port``: status, content type, parsed body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, None if body is None else json.dumps(body), headers)
        response = connection.getresponse()
        data = response.read()
        return response.status, response.getheader("Content-Type", ""), json.loads(data)
    finally:
        connection.close()


@contextlib.contextmanager
def serving(lake: str, folder: Path, config_dir: Path | None = None) -> Iterator[int]:
    """`headwater serve` of stage ``test`` over ``lake`` on a free loopback port (its log
    ``folder/serve.log``), stopped (SIGTERM) on exit. ``config_dir`` holds the stage file when
    the process's own environment does not name one (a fixture wider than ``api_env``)."""
    command = shutil.which("headwater", path=str(Path(sys.executable).parent))
    assert command
    env = None
    if config_dir is not None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
        env["HEADWATER_CONFIG_DIR"] = str(config_dir)
    port = free_port()
    log = (folder / "serve.log").open("w")
    process = subprocess.Popen(
        [
            command,
            "serve",
            "--port",
            str(port),
            "--workers",
            "2",
            "--lake",
            lake,
            "--stage",
            "test",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if request(port, "GET", "/health")[0] == 200:
                    break
            except OSError:
                pass
            assert process.poll() is None, (folder / "serve.log").read_text()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


@pytest.fixture
def server(model_lake: str, tmp_path: Path) -> Iterator[int]:
    """`headwater serve` on a free loopback port, stopped (SIGTERM) after the test."""
    with serving(model_lake, tmp_path) as port:
        yield port


@pytest.fixture(scope="module")
def module_server(
    tmp_path_factory: pytest.TempPathFactory, test_models: dict[str, Any]
) -> Iterator[int]:
    """One `headwater serve` for a module whose tests only exchange requests with it, on a
    lake of every test model (as ``server``), stopped (SIGTERM) after the module."""
    from tests.conftest import publish_every_test_model

    folder = tmp_path_factory.mktemp("served")
    config = folder / "config"
    config.mkdir()
    (config / "test.toml").write_text(TEST_STAGE, encoding="utf-8")
    lake = publish_every_test_model(test_models, f"file://{folder}/lake")
    with serving(lake, folder, config) as port:
        yield port

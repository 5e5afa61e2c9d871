"""`headwater serve`: the same app under gunicorn, over real HTTP on loopback."""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def request(port: int, method: str, path: str, body: Any = None) -> tuple[int, str, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, None if body is None else json.dumps(body), headers)
        response = connection.getresponse()
        data = response.read()
        return response.status, response.getheader("Content-Type", ""), json.loads(data)
    finally:
        connection.close()


@pytest.fixture
def server(model_lake: str, tmp_path: Path) -> Iterator[int]:
    """`headwater serve` on a free loopback port, stopped (SIGTERM) after the test."""
    command = shutil.which("headwater", path=str(Path(sys.executable).parent))
    assert command
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [
            command,
            "serve",
            "--port",
            str(port),
            "--workers",
            "2",
            "--lake",
            model_lake,
            "--stage",
            "test",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if request(port, "GET", "/health")[0] == 200:
                    break
            except OSError:
                pass
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
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


def test_serve_answers_over_http(server: int, flight: dict[str, Any], base_version: str) -> None:
    status, _, health = request(server, "GET", "/health")
    assert status == 200 and health["models"]["flights"]["model"]["version"] == base_version
    assert health["stage"] == "test"

    status, content_type, prediction = request(server, "POST", "/v1/flights/predictions", flight)
    assert status == 200 and content_type == "application/json"
    assert prediction["model"]["version"] == base_version

    status, content_type, error = request(server, "GET", "/v1/nothing")
    assert status == 404 and content_type == "application/json"
    assert error["error"]["code"] == "not_found"


def test_serve_refuses_a_stage_without_a_file(tmp_path: Path) -> None:
    command = shutil.which("headwater", path=str(Path(sys.executable).parent))
    assert command
    done = subprocess.run(
        [command, "serve", "--stage", "nowhere"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "no configuration for stage 'nowhere'" in done.stderr

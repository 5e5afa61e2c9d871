"""`headwater serve`: the same app under gunicorn, over real HTTP on loopback."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import request
from tests.conftest import MODEL

#: Where the test model (its use case: tests/conftest.py's MODEL) answers, as text and bytes.
URL = f"/v1/{MODEL}/predictions"
POST = b"POST %s HTTP/1.1\r\nHost: x\r\n" % URL.encode()


@pytest.fixture(scope="module")
def server(module_server: int) -> int:
    """One server for the module: each test only exchanges requests with it (a server per
    test was twelve starts and graceful stops, 3-15 s each)."""
    return module_server


def test_serve_answers_over_http(server: int, example: dict[str, Any], base_version: str) -> None:
    status, _, health = request(server, "GET", "/health")
    assert status == 200 and health["models"][MODEL]["model"]["version"] == base_version
    assert health["stage"] == "test"

    status, content_type, prediction = request(server, "POST", URL, example)
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


def test_a_stop_sent_while_the_workers_boot_stops_each_of_them(
    model_lake: str, tmp_path: Path
) -> None:
    # Given `headwater serve` whose two workers were just forked (gevent still patching)
    command = shutil.which("headwater", path=str(Path(sys.executable).parent))
    assert command
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [command, "serve", "--port", "0", "--workers", "2", "--lake", model_lake]
            + ["--stage", "test"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while log.read_text().count("Booting worker") < 2:
                assert process.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.005)
            # When it is stopped at once
            process.send_signal(signal.SIGTERM)
            process.wait(30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(5)
    # Then every worker ended itself (a worker that missed the signal served on until the master
    # killed it at graceful_timeout, 12 s later, with no "Worker exiting" line)
    text = log.read_text()
    booted = re.findall(r"Booting worker with pid: (\d+)", text)
    exited = re.findall(r"Worker exiting \(pid: (\d+)\)", text)
    assert sorted(exited) == sorted(booted), text[-2000:]
    assert process.returncode == 0


# -- hardening: what gunicorn itself answers, slow clients, streamed bodies -----------------------
def raw_exchange(port: int, data: bytes, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read the whole answer (the server closes): status, headers, body."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
            head, _, body = received.partition(b"\r\n\r\n")
            if b"\r\n\r\n" in received and b"content-length" in head.lower():
                length = int(
                    next(
                        line.split(b":", 1)[1]
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    )
                )
                if len(body) >= length:
                    break
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"b" * 10_000 + b"\r\n\r\n", 431),
        (
            b"GET /health HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-%d: y\r\n" % i for i in range(200))
            + b"\r\n",
            431,
        ),
        (b"NOT A REQUEST\r\n\r\n", 400),
        (b"GET /health HTTP/9.9\r\nHost: x\r\n\r\n", 400),
    ],
)
def test_server_errors_are_json(server: int, data: bytes, status: int) -> None:
    got, headers, body = raw_exchange(server, data)
    assert got == status, body
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert error["status"] == status and error["code"] and error["message"]


def test_a_chunked_body_over_the_limit_is_a_413_over_http(server: int) -> None:
    # Given a body of 5 MiB (the limit is 4 MiB) sent in chunks, without Content-Length
    piece = b" " * 65536
    chunks = [b'{"field": "value"', *[piece] * 80, b"}"]
    data = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    head = POST + (
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    try:
        status, headers, body = raw_exchange(server, head + data, timeout=30)
    except ConnectionResetError:  # pragma: no cover - the server may close before reading all
        pytest.fail("connection reset instead of a 413")
    assert status == 413, body
    assert json.loads(body)["error"]["code"] == "request_entity_too_large"


SLOW_CLIENTS = 16
BOUND = 5.0  # seconds; with gthread workers these requests stalled past 10 s


def test_slow_clients_do_not_starve_the_server(server: int, example: dict[str, Any]) -> None:
    import threading

    # Given 16 connections trickling their headers, one line every half second
    stop = threading.Event()
    sockets = []
    for _ in range(SLOW_CLIENTS):
        sock = socket.create_connection(("127.0.0.1", server), timeout=5)
        sock.sendall(POST)
        sockets.append(sock)

    def trickle() -> None:
        while not stop.wait(0.5):
            for sock in sockets:
                try:
                    sock.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    pass

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        time.sleep(1.5)  # every slow connection has been accepted and is mid-headers
        # When a normal client asks, several times
        for _ in range(5):
            started = time.monotonic()
            status, _, prediction = request(server, "POST", URL, example)
            elapsed = time.monotonic() - started
            # Then it is answered promptly
            assert status == 200 and "model" in prediction
            assert elapsed < BOUND, f"a normal request took {elapsed:.1f} s behind slow clients"
    finally:
        stop.set()
        thread.join(5)
        for sock in sockets:
            sock.close()


CHUNKED_HEAD = POST + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(
    ("framing", "named"),
    [
        (b"zz\r\n{}\r\n0\r\n\r\n", "chunk size"),
        (b"2\r\n{}XX0\r\n\r\n", "chunk terminator"),
        (b"2;@\r\n{}\r\n0\r\n\r\n", "chunk extension"),
    ],
    ids=["size", "terminator", "extension"],
)
def test_malformed_chunked_framing_is_a_400_over_http(
    server: int, framing: bytes, named: str
) -> None:
    # Given a chunked body whose framing is broken (the server's reader raises mid-body)
    # When it is posted, Then the answer is the API's JSON 400 naming the problem, not a 500
    status, headers, body = raw_exchange(server, CHUNKED_HEAD + framing)
    assert status == 400, body
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert error["code"] == "malformed_body"
    assert named in error["message"].lower()


def test_a_body_shorter_than_its_content_length_is_a_400_over_http(
    server: int, example: dict[str, Any]
) -> None:
    # Given a complete JSON instance announced 50 bytes longer than it is, the client then
    # closing its side (before: gunicorn handed the short body over and it was scored, a 200)
    body = json.dumps(example).encode()
    head = POST + b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (len(body) + 50)
    with socket.create_connection(("127.0.0.1", server), timeout=10) as sock:
        sock.sendall(head + body)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk

    # Then the answer is the API's JSON 400 saying the body ended early
    status_line, _, rest = received.partition(b"\r\n")
    assert int(status_line.split()[1]) == 400, received
    error = json.loads(rest.partition(b"\r\n\r\n")[2])["error"]
    assert error["code"] == "malformed_body"
    assert error["message"].endswith(
        "could not be read as sent: it ended before its declared length"
    )

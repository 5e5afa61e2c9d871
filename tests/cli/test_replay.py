"""``headwater replay``: its arguments, its one-line errors, and a replay through HTTP.

On the test-only use case (tests/usecases/minimal); a shipped use case's shifts and a whole
replay through ``headwater serve`` are in its folder (tests/headwater/usecases/).
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import typer
from typer.testing import CliRunner, Result

from cli import app
from cli.replay import parse_rate
from headwater.core import layout
from headwater.data.lake import open_lake
from tests.conftest import MINIMAL_USECASE_MODULE

USECASE, SOURCE = "meters", "readings"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, ["replay", *args])


def flat(text: str) -> str:
    """The output with rich's boxes and line wrapping removed, for substring checks."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def publish_clean_hours(meters_module: Any, lake_uri: str, first: datetime, hours: int) -> int:
    """Publish ``hours`` clean hours of one meter from ``first`` (one month partition)."""
    rows = [
        {
            "date": (first + timedelta(hours=i)).date(),
            "hour": (first + timedelta(hours=i)).hour,
            "meter": "m1",
            "load_kw": 5.0,
            "overload": False,
        }
        for i in range(hours)
    ]
    schema = meters_module.CLEAN_SCHEMA
    open_lake(lake_uri).publish(
        layout.CLEAN,
        layout.dataset(USECASE, SOURCE),
        f"month={first:%Y-%m}",
        [pa.Table.from_pylist(rows, schema=schema)],
        schema=schema,
        source="test",
        run_id="test",
    )
    return len(rows)


@pytest.fixture
def stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, meters_module: Any) -> str:
    """A ``test`` stage enabling the test-only use case over a temporary lake; its lake URI."""
    for name in [n for n in os.environ if n.startswith("HEADWATER_")]:
        monkeypatch.delenv(name)
    config = tmp_path / "config"
    config.mkdir()
    lake = f"file://{tmp_path}/lake"
    (config / "test.toml").write_text(
        f'usecases = ["{USECASE}"]\n[lake]\nuri = "{lake}"\n'
        f'[usecase.{USECASE}]\nmodule = "{MINIMAL_USECASE_MODULE}"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("HEADWATER_CONFIG_DIR", str(config))
    monkeypatch.setenv("HEADWATER_STAGE", "test")
    return lake


def answering_api(usecase: str) -> Iterator[tuple[str, list[Any]]]:
    """An HTTP server answering as the API does for ``usecase`` (400 for an hour at 23:00)."""
    received: list[Any] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self._answer(200, {"models": {usecase: {"loaded": True}}})

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append(body)
            if any(i["hour_start"].endswith("T23:00") for i in body["instances"]):
                self._answer(400, {"error": {"code": "invalid_request", "message": "late"}})
            else:
                self._answer(200, {"predictions": [{} for _ in body["instances"]]})

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def fake_api() -> Iterator[tuple[str, list[Any]]]:
    """An HTTP server answering as the API does for the test-only use case."""
    yield from answering_api(USECASE)


@pytest.mark.parametrize(("text", "rate"), [(None, None), ("50", 50.0), ("2.5/s", 2.5)])
def test_the_rate_is_requests_per_second(text: str | None, rate: float | None) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["0", "-3", "fast", "5/min"])
def test_a_rate_that_is_not_a_positive_number_per_second_is_refused(text: str) -> None:
    with pytest.raises(typer.BadParameter, match="--rate must be a positive number"):
        parse_rate(text)


def test_an_api_not_reachable_is_one_line_naming_the_url_and_headwater_serve(stage: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    result = invoke("--usecase", USECASE, "--start", "2013-01-02", "--url", url)

    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert f"the API at {url} is not reachable" in errors[0]
    assert "`headwater serve`" in errors[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--end", "2013-01-01"], "is before"),
        (["--rate", "fast"], "--rate must be a positive number"),
    ],
)
def test_arguments_that_cannot_work_exit_2_saying_why(
    stage: str, args: list[str], message: str
) -> None:
    result = invoke("--usecase", USECASE, "--start", "2013-01-02", *args)

    assert result.exit_code == 2
    assert message in flat(result.output)


def test_an_unconfigured_use_case_exits_2(stage: str) -> None:
    result = invoke("--usecase", "tides", "--start", "2013-01-02")

    assert result.exit_code == 2
    assert "tides" in result.output and "Traceback" not in result.output


def test_a_period_not_yet_cleaned_exits_2_naming_the_partition(
    stage: str, fake_api: tuple[str, list[Any]]
) -> None:
    result = invoke("--usecase", USECASE, "--start", "2013-01-02", "--url", fake_api[0])

    assert result.exit_code == 2
    assert "error:" in result.output and "2013-01" in result.output


def test_a_replay_sends_the_periods_rows_in_batches_and_prints_the_counts(
    stage: str, fake_api: tuple[str, list[Any]], meters_module: Any
) -> None:
    url, received = fake_api
    publish_clean_hours(meters_module, stage, datetime(2013, 1, 2), 48)

    result = invoke(
        "--usecase", USECASE, "--start", "2013-01-02", "--end", "2013-01-02",
        "--url", url, "--batch-size", "6", "--concurrency", "2",
    )  # fmt: skip

    # one day of 24 hours, in 4 batches of 6; the batch holding 23:00 is rejected
    assert result.exit_code == 1, result.output
    assert sorted(len(body["instances"]) for body in received) == [6, 6, 6, 6]
    first = min((i for b in received for i in b["instances"]), key=lambda i: i["hour_start"])
    assert first == {"meter": "m1", "hour_start": "2013-01-02T00:00"}
    assert "24 instances in 4 requests" in result.output
    assert "answered 18, rejected 6, failed 0" in result.output
    assert "1 request(s): HTTP 400 invalid_request: late" in result.output


def test_a_replay_answered_in_full_exits_0(
    stage: str, fake_api: tuple[str, list[Any]], meters_module: Any
) -> None:
    publish_clean_hours(meters_module, stage, datetime(2013, 1, 2), 20)

    result = invoke("--usecase", USECASE, "--start", "2013-01-02", "--url", fake_api[0])

    assert result.exit_code == 0, result.output
    assert "answered 20, rejected 0, failed 0" in result.output
    assert date(2013, 1, 2).isoformat() in result.output

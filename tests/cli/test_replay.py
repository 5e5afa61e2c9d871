"""``headwater replay``: its arguments, its one-line errors, and a whole replay through HTTP."""

from __future__ import annotations

import json
import os
import re
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
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


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, ["replay", *args])


def flat(text: str) -> str:
    """The output with rich's boxes and line wrapping removed, for substring checks."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def publish_clean_hours(lake_uri: str, first: datetime, hours: int) -> int:
    """Publish ``hours`` clean bike-share hours from local ``first`` (one month partition)."""
    from headwater.usecases.bikeshare.cleaning import CLEAN_SCHEMA

    rows = []
    for i in range(hours):
        local = first + timedelta(hours=i)
        rows.append(
            {
                "hour_start": (local + timedelta(hours=4)).replace(tzinfo=UTC),
                "date": local.date(),
                "hour": local.hour,
                "weekday": local.weekday(),
                "month": local.month,
                "holiday": False,
                "workingday": local.weekday() < 5,
                "season": "Summer",
                "weather_situation": "Clear",
                "temp_c": 20.0 + local.hour / 2,
                "feels_like_c": 21.0 + local.hour / 2,
                "humidity_pct": 60.0,
                "wind_speed_kmh": 9.0,
                "casual": 10,
                "registered": 90,
                "rentals": 100,
                "high_demand": False,
            }
        )
    lake = open_lake(lake_uri)
    lake.publish(
        layout.CLEAN,
        layout.dataset("bikeshare", "rentals"),
        f"month={first:%Y-%m}",
        [pa.Table.from_pylist(rows, schema=CLEAN_SCHEMA)],
        schema=CLEAN_SCHEMA,
        source="test",
        run_id="test",
    )
    return len(rows)


@pytest.fixture
def stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A ``test`` stage enabling both shipped use cases over a temporary lake; its lake URI."""
    for name in [n for n in os.environ if n.startswith("HEADWATER_")]:
        monkeypatch.delenv(name)
    config = tmp_path / "config"
    config.mkdir()
    lake = f"file://{tmp_path}/lake"
    (config / "test.toml").write_text(
        f'usecases = ["flights", "bikeshare"]\n[lake]\nuri = "{lake}"\n'
        "[usecase.flights]\n[usecase.bikeshare]\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("HEADWATER_CONFIG_DIR", str(config))
    monkeypatch.setenv("HEADWATER_STAGE", "test")
    return lake


@pytest.fixture
def fake_api() -> Iterator[tuple[str, list[Any]]]:
    """An HTTP server answering as the API does for bikeshare (400 for a bad holiday flag)."""
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
            self._answer(200, {"models": {"bikeshare": {"loaded": True}}})

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


@pytest.mark.parametrize(("text", "rate"), [(None, None), ("50", 50.0), ("2.5/s", 2.5)])
def test_the_rate_is_requests_per_second(text: str | None, rate: float | None) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["0", "-3", "fast", "5/min"])
def test_a_rate_that_is_not_a_positive_number_per_second_is_refused(text: str) -> None:
    with pytest.raises(typer.BadParameter, match="--rate must be a positive number"):
        parse_rate(text)


def test_an_api_not_reachable_is_one_line_naming_the_url_and_headwater_serve(stage: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    result = invoke("--usecase", "bikeshare", "--start", "2012-06-01", "--url", url)

    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert f"the API at {url} is not reachable" in errors[0]
    assert "`headwater serve`" in errors[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--shift", "frost"],
            "unknown shift 'frost' (this use case declares: heatwave, humidity-as-fraction)",
        ),
        (["--end", "2012-05-01"], "is before"),
        (["--rate", "fast"], "--rate must be a positive number"),
    ],
)
def test_arguments_that_cannot_work_exit_2_saying_why(
    stage: str, args: list[str], message: str
) -> None:
    result = invoke("--usecase", "bikeshare", "--start", "2012-06-01", *args)

    assert result.exit_code == 2
    assert message in flat(result.output)


def test_an_unconfigured_use_case_exits_2(stage: str) -> None:
    result = invoke("--usecase", "tides", "--start", "2012-06-01")

    assert result.exit_code == 2
    assert "tides" in result.output and "Traceback" not in result.output


def test_a_period_not_yet_cleaned_exits_2_naming_the_partition(
    stage: str, fake_api: tuple[str, list[Any]]
) -> None:
    result = invoke("--usecase", "bikeshare", "--start", "2012-06-01", "--url", fake_api[0])

    assert result.exit_code == 2
    assert "error:" in result.output and "2012-06" in result.output


def test_a_replay_sends_the_periods_rows_in_batches_and_prints_the_counts(
    stage: str, fake_api: tuple[str, list[Any]]
) -> None:
    url, received = fake_api
    publish_clean_hours(stage, datetime(2012, 6, 1), 48)

    result = invoke(
        "--usecase", "bikeshare", "--start", "2012-06-01", "--end", "2012-06-01",
        "--url", url, "--batch-size", "6", "--concurrency", "2", "--shift", "heatwave",
    )  # fmt: skip

    # one day of 24 hours, in 4 batches of 6; the batch holding 23:00 is rejected
    assert result.exit_code == 1, result.output
    assert sorted(len(body["instances"]) for body in received) == [6, 6, 6, 6]
    first = min((i for b in received for i in b["instances"]), key=lambda i: i["hour_start"])
    assert first["hour_start"] == "2012-06-01T00:00"
    assert first["weather"]["temp_c"] == 28.0  # 20 + 8: the heatwave
    assert "24 instances in 4 requests" in result.output
    assert "answered 18, rejected 6, failed 0" in result.output
    assert "1 request(s): HTTP 400 invalid_request: late" in result.output


def test_a_replay_answered_in_full_exits_0(stage: str, fake_api: tuple[str, list[Any]]) -> None:
    publish_clean_hours(stage, datetime(2012, 6, 1), 20)

    result = invoke("--usecase", "bikeshare", "--start", "2012-06-01", "--url", fake_api[0])

    assert result.exit_code == 0, result.output
    assert "answered 20, rejected 0, failed 0" in result.output
    assert date(2012, 6, 1).isoformat() in result.output


# -- end to end: `headwater serve`, a replay, a graceful stop, collection ------------------------
class Served:
    """`headwater serve` over a lake with capture on, in a subprocess."""

    def __init__(self, lake: str, log: Path) -> None:
        import shutil
        import subprocess
        import sys

        command = shutil.which("headwater", path=str(Path(sys.executable).parent))
        assert command
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "HEADWATER_API__CAPTURE__ENABLED": "true"}
        env["HEADWATER_API__CAPTURE__FLUSH_SECONDS"] = "0.1"
        self.log = log.open("w")
        self.process = subprocess.Popen(
            [command, "serve", "--port", str(port), "--workers", "2", "--lake", lake],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def stop(self) -> int | None:
        """SIGTERM (graceful: the workers flush their capture); its exit status."""
        import subprocess

        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.log.close()
        return self.process.returncode


@pytest.fixture
def served(stage: str, model_lake: str, tmp_path: Path) -> Iterator[Served]:
    """The test models served with capture on (the test stops it; else teardown does)."""
    server = Served(model_lake, tmp_path / "serve.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.slow
def test_a_replay_through_headwater_serve_is_captured_once_per_instance(
    served: Served, model_lake: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from headwater.monitoring.collect import (
        captured_partitions,
        collect_predictions,
        read_predictions,
    )

    # Given three clean days of bike share in the served lake, and the real server on it
    monkeypatch.setenv("HEADWATER_LAKE__URI", model_lake)
    hours = publish_clean_hours(model_lake, datetime(2012, 6, 1), 72)

    # When the three days are replayed through HTTP and the server stops gracefully
    result = invoke(
        "--usecase", "bikeshare", "--start", "2012-06-01", "--end", "2012-06-03",
        "--url", served.url, "--batch-size", "5", "--concurrency", "4", "--wait", "60",
    )  # fmt: skip
    served.stop()
    assert result.exit_code == 0, result.output
    assert f"{hours} instances in 15 requests" in result.output

    # Then collection finds one record per instance sent, one request id per request sent
    lake = open_lake(model_lake)
    records = []
    for part in captured_partitions(lake, "bikeshare", "month"):
        collect_predictions(lake, "bikeshare", part, "America/New_York", run_id="replay")
        records += read_predictions(lake, "bikeshare", part.key)
    assert len(records) == hours
    assert len({r.request_id for r in records}) == 15
    assert {r.model_version for r in records} == {records[0].model_version}

"""``headwater replay`` of bike share: its declared shifts, and a whole replay through
``headwater serve`` captured once per instance (the command on any use case: tests/cli/)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from headwater.core import layout
from headwater.data.lake import open_lake
from tests.cli.test_replay import answering_api, flat, free_port, invoke


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
    """An HTTP server answering as the API does for bikeshare (400 for an hour at 23:00)."""
    yield from answering_api("bikeshare")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--shift", "frost"],
            "unknown shift 'frost' (this use case declares: heatwave, humidity-as-fraction)",
        ),
    ],
)
def test_arguments_that_cannot_work_exit_2_saying_why(
    stage: str, args: list[str], message: str
) -> None:
    result = invoke("--usecase", "bikeshare", "--start", "2012-06-01", *args)

    assert result.exit_code == 2
    assert message in flat(result.output)


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

"""``headwater monitor``: the published monitoring partitions at a glance."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli import app
from headwater.core.layout import monitoring_report_parts
from headwater.core.partitions import parse_partition
from headwater.data.lake import open_lake
from headwater.monitoring.monitor import PartitionMonitoring, ServedMonitoring
from headwater.monitoring.published import publish_monitoring
from tests.conftest import MINIMAL_USECASE_MODULE


@pytest.fixture
def stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, meters_module: Any) -> Path:
    """A stage enabling the test-only use case over a lake in ``tmp_path``."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "test.toml").write_text(
        f'usecases = ["meters"]\n[lake]\nuri = "file://{tmp_path}/lake"\n'
        '[partitioning]\ngrain = "month"\n'
        f'[usecase.meters]\nmodule = "{MINIMAL_USECASE_MODULE}"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("HEADWATER_CONFIG_DIR", str(config))
    return tmp_path


def test_monitor_prints_the_latest_partitions_and_their_alerts(stage: Path) -> None:
    # Given two monitored months: answers in March, none in April
    lake = open_lake(f"file://{stage}/lake")
    march = PartitionMonitoring(
        "meters", "2013-03", "2013-05-01T00:00:00", "v1", 10, None,
        served=(ServedMonitoring("v1", "production", 250, {"matched": 240, "pending": 10}),),
    )  # fmt: skip
    april = replace(march, partition="2013-04", served=())
    publish_monitoring(lake, march, parse_partition("2013-03", "month"), "r1")
    publish_monitoring(lake, april, parse_partition("2013-04", "month"), "r2")
    # When
    result = CliRunner().invoke(app, ["monitor", "--usecase", "meters", "--stage", "test"])
    # Then both months, the served version's counts, and the alert that capture stopped
    assert result.exit_code == 0, result.output
    assert "2013-03: 250 predictions served, production v1" in result.output
    assert "production v1: 250 predictions, 240 with outcome, 10 pending" in result.output
    assert "2013-04: 0 predictions served" in result.output
    assert "ALERT meters 2013-04: no prediction was captured, where 2013-03 had 250" in (
        result.output
    )
    # and --last 1 shows April alone, still judged against March
    latest = CliRunner().invoke(app, ["monitor", "--stage", "test", "--last", "1"])
    assert "2013-03:" not in latest.output and "ALERT meters 2013-04" in latest.output


def test_monitor_says_when_nothing_is_monitored(stage: Path) -> None:
    result = CliRunner().invoke(app, ["monitor", "--stage", "test"])
    assert result.exit_code == 0
    assert "nothing monitored yet" in result.output


def test_monitor_writes_the_report_where_asked_and_names_the_runs_copy(stage: Path) -> None:
    # Given a monitored month
    lake = open_lake(f"file://{stage}/lake")
    march = PartitionMonitoring(
        "meters", "2013-03", "2013-05-01T00:00:00", "v1", 10, None,
        served=(ServedMonitoring("v1", "production", 250, {"matched": 240, "pending": 10}),),
    )  # fmt: skip
    publish_monitoring(lake, march, parse_partition("2013-03", "month"), "r1")
    # When asked for the report into a folder that does not exist yet
    folder = stage / "out" / "reports"
    args = ["monitor", "--stage", "test", "--report", str(folder)]
    result = CliRunner().invoke(app, args)
    # Then the page is there, one per use case, and says so
    assert result.exit_code == 0, result.output
    page = (folder / "meters.html").read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and "2013-03 to 2013-03 (1)" in page
    assert f"report written: {folder / 'meters.html'}" in result.output
    assert [p.name for p in folder.iterdir()] == ["meters.html"]  # no temporary file left
    # and once a run has published the lake's copy, a plain `monitor` names it
    assert "report:" not in CliRunner().invoke(app, ["monitor", "--stage", "test"]).output
    lake.write_bytes(page.encode(), *monitoring_report_parts("meters"))
    plain = CliRunner().invoke(app, ["monitor", "--stage", "test"])
    assert f"report: {lake.uri_of(*monitoring_report_parts('meters'))}" in plain.output


def test_monitor_help_tells_of_the_report() -> None:
    result = CliRunner().invoke(app, ["monitor", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "--report" in result.output and "monitoring.html" in result.output

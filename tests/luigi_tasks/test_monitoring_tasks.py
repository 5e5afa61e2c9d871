"""CollectPredictions and MonitorPartition: through Luigi, idempotently, atomically, verified."""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import luigi
import pyarrow as pa
import pytest

from headwater.core import layout
from headwater.core.config import Settings, load_settings
from headwater.core.partitions import parse_partition
from headwater.data.lake import LakeError, open_lake
from headwater.monitoring.collect import read_predictions
from headwater.monitoring.monitor import PartitionMonitoring, ServedMonitoring
from headwater.monitoring.published import publish_monitoring, read_monitoring
from headwater.registry.registry import Registry
from headwater.serving.capture import CaptureRecord
from headwater.serving.store import ProductionPointer
from luigi_tasks.monitoring import (
    CollectCaptured,
    CollectPredictions,
    MonitoringReport,
    MonitorPartition,
)
from luigi_tasks.runner import RunOptions, live_summary
from luigi_tasks.training import RunAll
from tests.conftest import MINIMAL_USECASE_MODULE, minimal_usecase

minimal_usecase()  # the test-only use case, importable by its module name


def stage(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capture: bool,
    name: str = "meters",
    module: str | None = MINIMAL_USECASE_MODULE,
) -> Settings:
    """A day-grain stage of one use case (default: the test-only one, by its module)."""
    table = f"[usecase.{name}]\n" + (f'module = "{module}"\n' if module else "")
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    (config / "test.toml").write_text(
        f"""
usecases = ["{name}"]
[lake]
uri = "file://{tmp_path}/lake"
[partitioning]
grain = "day"
[api.capture]
enabled = {"true" if capture else "false"}
{table}""",
        encoding="utf-8",
    )
    monkeypatch.setenv("HEADWATER_CONFIG_DIR", str(config))
    monkeypatch.setenv("HEADWATER_STAGE", "test")
    return load_settings()


def line(i: int, served_at: str, usecase: str = "meters", features: Any = None) -> str:
    return CaptureRecord(
        request_id=f"r{i}",
        instance=0,
        usecase=usecase,
        model_version="v1",
        served_at=served_at,
        features=features or {"meter": "m1"},
        probability=0.2,
        decision=False,
        estimate=1.0,
        threshold=0.5,
    ).to_json()


def spool(
    root: Path, day: str, hour: str, name: str, lines: list[str], usecase: str = "meters"
) -> None:
    folder = root.joinpath(*layout.capture_parts(usecase, day, hour))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(x + "\n" for x in lines))


def test_collect_captured_publishes_each_captured_partition_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given capture on two (UTC) days, one line delivered twice
    settings = stage(tmp_path, monkeypatch, capture=True)
    root = tmp_path / "lake"
    spool(root, "2013-03-01", "15", "a.jsonl", [line(1, "2013-03-01T15:00:00.000000+00:00")] * 2)
    spool(root, "2013-03-02", "15", "a.jsonl", [line(2, "2013-03-02T15:00:00.000000+00:00")])
    # When the wrapper runs, twice
    for run_id in ("run1", "run2"):
        task = CollectCaptured(usecase="meters", run_id=run_id, state_dir=str(tmp_path / "runs"))
        assert luigi.build([task], local_scheduler=True, workers=1)
    # Then the days with records hold them once each, and only those days are collected
    # (records without an event in their echo are filed by the local day they were served)
    lake = open_lake(settings.lake.uri)
    published = lake.partitions(layout.PREDICTIONS, "meters")
    assert published == ["date=2013-03-01", "date=2013-03-02"]
    assert [r.request_id for r in read_predictions(lake, "meters", "date=2013-03-01")] == ["r1"]
    assert [r.request_id for r in read_predictions(lake, "meters", "date=2013-03-02")] == ["r2"]
    # and a settled partition is not collected again (published after its day ended)
    assert CollectPredictions(usecase="meters", partition="2013-03-01").complete()
    # until a capture file changes after it was collected (a replay of a past day)
    later = root.joinpath(*layout.capture_parts("meters", "2013-03-01", "15"), "a.jsonl")
    os.utime(later, (time.time() + 5, time.time() + 5))
    assert not CollectPredictions(usecase="meters", partition="2013-03-01").complete()


@pytest.mark.parametrize("capture", [True, False])
def test_a_full_run_collects_only_when_capture_is_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capture: bool
) -> None:
    stage(tmp_path, monkeypatch, capture=capture)
    wrapper = RunAll(usecases=("meters",), start=date(2013, 1, 1), end=date(2013, 1, 31))
    families = [t.task_family for t in wrapper.requires()]
    assert ("CollectCaptured" in families) is capture
    assert "CollectCaptured" not in [
        t.task_family
        for t in RunAll(
            usecases=("meters",), start=date(2013, 1, 1), end=date(2013, 1, 31), until="clean"
        ).requires()
    ]


def served(i: int, meter: str, served_at: str) -> str:
    """A captured answer whose echo names the meter-hour (the outcome's key)."""
    body = CaptureRecord.from_dict(json.loads(line(i, served_at)))
    echo = {"meter": meter, "hour_start": "2013-03-01T17:00"}
    return replace(body, echo=echo).to_json()


def test_monitor_partition_publishes_once_atomically_and_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a clean day holding one meter-hour's outcome, published by this run, and two answers
    settings = stage(tmp_path, monkeypatch, capture=True)
    lake = open_lake(settings.lake.uri)
    clean = pa.table(
        {
            "date": [date(2013, 3, 1)],
            "hour": pa.array([17], pa.int32()),
            "meter": ["m1"],
            "load_kw": [9.5],
            "overload": [True],
        }
    )
    lake.publish(layout.CLEAN, "meters/readings", "date=2013-03-01", [clean],
                 schema=clean.schema, source="test", run_id="run1")  # fmt: skip
    at = "2013-03-01T15:00:00.000000+00:00"
    spool(
        tmp_path / "lake", "2013-03-01", "15", "a.jsonl", [served(1, "m1", at), served(2, "m9", at)]
    )
    runs = str(tmp_path / "runs")
    # When the task runs, and again in a later run
    task = MonitorPartition(usecase="meters", partition="2013-03-01", run_id="run1", state_dir=runs)
    assert luigi.build([task], local_scheduler=True, workers=1)
    first = lake.manifest(layout.MONITORING, "meters", "date=2013-03-01")
    again = MonitorPartition(
        usecase="meters", partition="2013-03-01", run_id="run2", state_dir=runs
    )
    assert luigi.build([again], local_scheduler=True, workers=1)
    # Then one record, met with its outcome, published once (the settled partition is final)
    monitoring = read_monitoring(lake, "meters", "date=2013-03-01")
    (production,) = monitoring.served
    assert production.predictions == 2
    assert (production.outcomes["matched"], production.outcomes["missing"]) == (1, 1)
    assert lake.manifest(layout.MONITORING, "meters", "date=2013-03-01") == first
    files = [n for n in lake.list_dir(layout.MONITORING, "meters", "date=2013-03-01")]
    assert sorted(files) == sorted([first.file, "_manifest.json"])
    # A capture file written after the collection (a late replay): collected and monitored again
    time.sleep(1.1)  # manifests keep whole seconds
    late = "2013-03-01T16:00:00.000000+00:00"
    spool(tmp_path / "lake", "2013-03-01", "16", "b.jsonl", [served(3, "m1", late)])
    third = MonitorPartition(
        usecase="meters", partition="2013-03-01", run_id="run3", state_dir=runs
    )
    assert not third.complete()
    assert luigi.build([third], local_scheduler=True, workers=1)
    (recounted,) = read_monitoring(lake, "meters", "date=2013-03-01").served
    assert recounted.predictions == 3
    first = lake.manifest(layout.MONITORING, "meters", "date=2013-03-01")
    monitoring = read_monitoring(lake, "meters", "date=2013-03-01")
    # A re-run replaces it whole (same record, one data file)
    task.run()
    assert read_monitoring(lake, "meters", "date=2013-03-01").served == monitoring.served
    assert len(lake.list_dir(layout.MONITORING, "meters", "date=2013-03-01")) == 2
    # and a damaged file is refused when read
    manifest = lake.manifest(layout.MONITORING, "meters", "date=2013-03-01")
    path = tmp_path / "lake" / "monitoring" / "meters" / "date=2013-03-01" / manifest.file
    path.write_bytes(path.read_bytes()[:-8] + b"XXXXXXXX")
    with pytest.raises(LakeError, match="checksum mismatch"):
        read_monitoring(lake, "meters", "date=2013-03-01")


def test_a_run_monitors_its_range_once_production_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stage(tmp_path, monkeypatch, capture=True)
    wrapper = RunAll(
        usecases=("meters",), start=date(2013, 1, 1), end=date(2013, 1, 3), until="clean"
    )
    assert "MonitorPartition" not in [t.task_family for t in wrapper.requires()]
    pointer = ProductionPointer(
        version="v1", promoted_at="2013-01-01T00:00:00+00:00", reason="test"
    )
    monkeypatch.setattr(Registry, "production", lambda self: pointer)
    monitored = [t.partition for t in wrapper.requires() if t.task_family == "MonitorPartition"]
    assert monitored == ["2013-01-01", "2013-01-02", "2013-01-03"]


def test_the_live_summary_alerts_on_the_partitions_this_run_monitored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given 2013-03-01 monitored with two answers, then 2013-03-02 with none, by this run
    settings = stage(tmp_path, monkeypatch, capture=True)
    lake = open_lake(settings.lake.uri)
    before = PartitionMonitoring(
        "meters", "2013-03-01", "2013-03-05T00:00:00", "v1", 10, None,
        served=(ServedMonitoring("v1", "production", 2, {"matched": 2}),),
    )  # fmt: skip
    after = replace(before, partition="2013-03-02", served=())
    publish_monitoring(lake, before, parse_partition("2013-03-01", "day"), "earlier")
    publish_monitoring(lake, after, parse_partition("2013-03-02", "day"), "run2")
    options = RunOptions(start=date(2013, 3, 2), end=date(2013, 3, 2))
    # When the run sums up the day it ran
    lines, alerts = live_summary(settings, "meters", options, "run2")
    # Then the Live section shows that day, and capture stopping is an alert
    assert lines[0] == "2013-03-02: 0 predictions served, production v1"
    assert [a.kind for a in alerts] == ["capture"]
    assert "where 2013-03-01 had 2" in alerts[0].message
    # and a later run that monitored nothing raises none again
    assert live_summary(settings, "meters", options, "run3")[1] == []


def test_a_run_renders_the_monitoring_report_once_after_its_partitions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a use case in production, and a run over three days
    settings = stage(tmp_path, monkeypatch, capture=False)
    pointer = ProductionPointer(
        version="v1", promoted_at="2013-01-01T00:00:00+00:00", reason="test"
    )
    monkeypatch.setattr(Registry, "production", lambda self: pointer)
    wrapper = RunAll(
        usecases=("meters",), start=date(2013, 1, 1), end=date(2013, 1, 3), until="clean"
    )
    # The run's report requires the very partitions the run monitors
    (report,) = [t for t in wrapper.requires() if isinstance(t, MonitoringReport)]
    monitored = [t for t in wrapper.requires() if t.task_family == "MonitorPartition"]
    assert report.requires() == monitored
    # When the report runs, over a monitored partition (published as MonitorPartition would)
    lake = open_lake(settings.lake.uri)
    record = PartitionMonitoring(
        "meters", "2013-01-02", "2013-01-05T00:00:00", "v1", 10, None,
        served=(ServedMonitoring("v1", "production", 2, {"matched": 2}),),
    )  # fmt: skip
    publish_monitoring(lake, record, parse_partition("2013-01-02", "day"), "run1")
    runs = str(tmp_path / "runs")
    first = MonitoringReport(
        usecase="meters", partitions=["2013-01-02"], run_id="run1", state_dir=runs
    )
    assert not first.complete()
    first.run()
    # Then the page is in the lake where the layout says, and the run counts it done
    page = lake.read_bytes(*layout.monitoring_report_parts("meters")).decode("utf-8")
    assert "2013-01-02 to 2013-01-02 (1)" in page
    assert first.complete()
    # and the next run renders it afresh
    again = MonitoringReport(
        usecase="meters", partitions=["2013-01-02"], run_id="run2", state_dir=runs
    )
    assert not again.complete()


# -- shadow against production, from served answers to the report ------------------------------
